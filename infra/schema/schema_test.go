package schema_test

import (
	"context"
	"database/sql"
	"strings"
	"testing"

	"github.com/unitenant/unitenant/infra/schema"
	"github.com/unitenant/unitenant/shared/migration"
	"github.com/unitenant/unitenant/shared/sqldb/sqldbtest"
)

func tables(t *testing.T, db *sql.DB) map[string]bool {
	t.Helper()
	rows, err := db.Query("SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE()")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	out := map[string]bool{}
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			t.Fatal(err)
		}
		out[n] = true
	}
	return out
}

func count(t *testing.T, db *sql.DB, q string, args ...any) int {
	t.Helper()
	var n int
	if err := db.QueryRow(q, args...).Scan(&n); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	return n
}

func migrate(t *testing.T, db *sql.DB, ms []migration.Migration) migration.Result {
	t.Helper()
	res, err := (&migration.Runner{DB: db, Migrations: ms}).Up(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return res
}

func TestTenantTemplate(t *testing.T) {
	t.Parallel()
	ms, err := schema.Tenant()
	if err != nil {
		t.Fatal(err)
	}
	db, _ := sqldbtest.NewDatabase(t)
	if res := migrate(t, db, ms); res.To != migration.Latest(ms) {
		t.Fatalf("migrated to %d, want %d", res.To, migration.Latest(ms))
	}
	got := tables(t, db)
	delete(got, "schema_migrations")
	delete(got, "schema_migration_progress")
	if len(got) < 70 {
		t.Fatalf("tenant template has %d tables, want at least 70", len(got))
	}
	// The tables tenant-api and the auth flow of seed 000 rely on.
	for _, name := range []string{"users", "roles", "permissions", "user_roles", "role_permissions",
		"students", "parents", "classes", "teachers", "tenant_config", "activities", "enrollment_applications"} {
		if !got[name] {
			t.Errorf("tenant template lacks table %s", name)
		}
	}
	if fks := count(t, db, "SELECT COUNT(*) FROM information_schema.REFERENTIAL_CONSTRAINTS WHERE CONSTRAINT_SCHEMA = DATABASE()"); fks < 40 {
		t.Errorf("tenant template has %d foreign keys, want at least 40", fks)
	}
	if n := count(t, db, "SELECT COUNT(*) FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 'users' AND COLUMN_NAME = 'global_user_id'"); n != 1 {
		t.Error("users.global_user_id is missing: tenant users could not be bound to global users")
	}
	// Seed rows: the admin role holds every permission.
	perms := count(t, db, "SELECT COUNT(*) FROM permissions")
	if perms == 0 || count(t, db, "SELECT COUNT(*) FROM role_permissions rp JOIN roles r ON r.id = rp.role_id WHERE r.code = 'admin'") != perms {
		t.Error("the admin role does not hold every permission")
	}
	for _, code := range []string{"users:read", "classes:write", "students:read"} {
		if count(t, db, "SELECT COUNT(*) FROM permissions WHERE code = ?", code) != 1 {
			t.Errorf("permission %s missing", code)
		}
	}
	if count(t, db, "SELECT COUNT(*) FROM tenant_config") == 0 {
		t.Error("tenant_config has no default rows")
	}
	// Applying again changes nothing.
	before := count(t, db, "SELECT COUNT(*) FROM role_permissions")
	if res := migrate(t, db, ms); len(res.Applied) != 0 {
		t.Fatalf("second run applied %v", res.Applied)
	}
	if after := count(t, db, "SELECT COUNT(*) FROM role_permissions"); after != before {
		t.Fatalf("seed rows changed on the second run: %d -> %d", before, after)
	}
}

func TestSystemSchema(t *testing.T) {
	t.Parallel()
	ms, err := schema.System()
	if err != nil {
		t.Fatal(err)
	}
	db, _ := sqldbtest.NewDatabase(t)
	migrate(t, db, ms)
	got := tables(t, db)
	// Every system table DESIGN.md names (seed 000 §2.1 and §5.4 names where given).
	for _, name := range []string{
		"admin_users", "global_users", "global_user_tenant_relations", "refresh_tokens", "sms_codes",
		"login_history", "tenants", "tenant_domains", "db_clusters", "tenant_databases", "tenant_accounts",
		"tenant_init_progress", "tenant_init_steps", "tenant_resource_cleanup", "tenant_deletion_requests",
		"ai_model_config", "tenant_ai_model_configs", "ai_service_call_logs", "tenant_ai_usage_summary",
		"rate_limit_counters", "audit_logs", "webhook_endpoints", "notification_logs", "system_config",
	} {
		if !got[name] {
			t.Errorf("system schema lacks table %s", name)
		}
	}
	if n := count(t, db, "SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() AND ENGINE <> 'InnoDB'"); n != 0 {
		t.Errorf("%d system tables are not InnoDB", n)
	}
	if res := migrate(t, db, ms); len(res.Applied) != 0 {
		t.Fatalf("second run applied %v", res.Applied)
	}
}

// 0013 tells the tenants a user made by self-service from those an admin
// made, for tenants created before it, from their provisioning requests.
func TestTenantCreatorBackfill(t *testing.T) {
	t.Parallel()
	db, ms := systemBefore(t, 13)
	for _, tn := range []struct {
		code, params string
		by           any
	}{
		{"k001", `{"code":"k001","createdBy":7}`, 7},                       // a user's
		{"k002", `{"code":"k002","createdBy":7,"createdByAdmin":true}`, 7}, // admin 7's
		{"k003", `{"code":"k003"}`, nil},                                   // nobody's (made by a tool)
	} {
		res, err := db.Exec("INSERT INTO tenants (tenant_code, tenant_name, subdomain, created_by) VALUES (?, ?, ?, ?)", tn.code, tn.code, tn.code, tn.by)
		if err != nil {
			t.Fatal(err)
		}
		id, _ := res.LastInsertId()
		if _, err := db.Exec("INSERT INTO tenant_init_progress (tenant_id, tenant_code, params) VALUES (?, ?, ?)", id, tn.code, tn.params); err != nil {
			t.Fatal(err)
		}
	}
	migrate(t, db, ms)
	want := map[string]sql.NullInt64{"k001": {Int64: 7, Valid: true}, "k002": {}, "k003": {}}
	for code, w := range want {
		var got sql.NullInt64
		if err := db.QueryRow("SELECT created_by_user FROM tenants WHERE tenant_code = ?", code).Scan(&got); err != nil {
			t.Fatal(err)
		}
		if got != w {
			t.Errorf("%s: created_by_user %v, want %v", code, got, w)
		}
	}
}

// systemBefore is a system database migrated up to version v, not
// included, and the system migrations.
func systemBefore(t *testing.T, v int) (*sql.DB, []migration.Migration) {
	t.Helper()
	ms, err := schema.System()
	if err != nil {
		t.Fatal(err)
	}
	for i, m := range ms {
		if m.Version == v {
			db, _ := sqldbtest.NewDatabase(t)
			migrate(t, db, ms[:i])
			return db, ms
		}
	}
	t.Fatalf("no system migration %04d", v)
	return nil, nil
}

// 0014 keeps the errors recorded before it, in full, for admins only.
func TestProvisioningErrorDetailBackfill(t *testing.T) {
	t.Parallel()
	db, ms := systemBefore(t, 14)
	const full = "database: dial tcp 10.1.2.3:3306: connect: connection refused"
	res, err := db.Exec("INSERT INTO tenants (tenant_code, tenant_name, subdomain) VALUES ('k001', 'k001', 'k001')")
	if err != nil {
		t.Fatal(err)
	}
	id, _ := res.LastInsertId()
	res, err = db.Exec("INSERT INTO tenant_init_progress (tenant_id, tenant_code, status, error_message) VALUES (?, 'k001', 'failed', ?)", id, full)
	if err != nil {
		t.Fatal(err)
	}
	progress, _ := res.LastInsertId()
	for i, msg := range []any{nil, full} {
		if _, err := db.Exec("INSERT INTO tenant_init_steps (tenant_id, progress_id, step_name, step_order, error_message) VALUES (?, ?, ?, ?, ?)",
			id, progress, []string{"place", "database"}[i], i+1, msg); err != nil {
			t.Fatal(err)
		}
	}
	migrate(t, db, ms)
	var shown, detail sql.NullString
	if err := db.QueryRow("SELECT error_message, error_detail FROM tenant_init_progress").Scan(&shown, &detail); err != nil {
		t.Fatal(err)
	}
	if detail.String != full || strings.Contains(shown.String, "10.1.2.3") || shown.String == "" {
		t.Errorf("progress: shown %q, detail %q", shown.String, detail.String)
	}
	if n := count(t, db, "SELECT COUNT(*) FROM tenant_init_steps WHERE error_detail = ? AND error_message NOT LIKE '%10.1.2.3%'", full); n != 1 {
		t.Errorf("%d failed steps moved their error to error_detail, want 1", n)
	}
	if n := count(t, db, "SELECT COUNT(*) FROM tenant_init_steps WHERE error_message IS NULL AND error_detail IS NULL"); n != 1 {
		t.Errorf("%d steps without an error kept none, want 1", n)
	}
}
