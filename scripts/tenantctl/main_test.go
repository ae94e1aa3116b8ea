package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/crypto/bcrypt"

	"github.com/unitenant/unitenant/shared/config"
	"github.com/unitenant/unitenant/shared/sqldb"
	"github.com/unitenant/unitenant/shared/sqldb/sqldbtest"
	"github.com/unitenant/unitenant/tests/testenv"
)

// testEnv is a fresh, migrated system database and the environment that
// points tenantctl at it; tenant databases get a prefix of their own and are
// dropped when the test ends.
type testEnv struct {
	t      *testing.T
	vars   map[string]string
	sys    *sql.DB
	prefix string
	creds  string
}

func newTestEnv(t *testing.T) *testEnv {
	t.Helper()
	sys, dsn := sqldbtest.NewDatabase(t)
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	e := &testEnv{t: t, sys: sys, prefix: sqldbtest.Name(t) + "_", creds: filepath.Join(t.TempDir(), "credentials.json")}
	e.vars = map[string]string{
		"MYSQL_DSN":          dsn,
		"MASTER_KEY":         base64.StdEncoding.EncodeToString(key),
		"TENANT_DB_PREFIX":   e.prefix,
		"TENANT_CLUSTER_DSN": sqldbtest.ServerDSN(t),
		"TEMPLATE_DATABASE":  e.prefix + "template",
		"BCRYPT_COST":        "4",
		"LOG_LEVEL":          "error",
		// Objects of the tenants it makes stay in the test's own directory.
		"LOCAL_STORAGE_DIR":    t.TempDir(),
		"LOCAL_STORAGE_SECRET": strings.Repeat("t", 32),
	}
	testenv.DropDatabasesLike(t, e.prefix)
	e.mustRun("migrate", "system")
	return e
}

// run runs tenantctl in-process with extra environment variables.
func (e *testEnv) runEnv(extra map[string]string, args ...string) (string, string, error) {
	vars := maps.Clone(e.vars)
	maps.Copy(vars, extra)
	var out, errOut bytes.Buffer
	err := run(context.Background(), args, config.FromMap(vars), &out, &errOut)
	return out.String(), errOut.String(), err
}

func (e *testEnv) run(args ...string) (string, error) {
	out, _, err := e.runEnv(nil, args...)
	return out, err
}

func (e *testEnv) mustRun(args ...string) string {
	e.t.Helper()
	out, err := e.run(args...)
	if err != nil {
		e.t.Fatalf("tenantctl %s: %v", strings.Join(args, " "), err)
	}
	return out
}

// tenantDB opens tenant code's database directly.
func (e *testEnv) tenantDB(code string) *sql.DB {
	e.t.Helper()
	dsn, err := sqldb.WithDatabase(sqldbtest.ServerDSN(e.t), e.prefix+code)
	if err != nil {
		e.t.Fatal(err)
	}
	db, err := sqldb.OpenDSN(dsn)
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { db.Close() })
	return db
}

// dump renders every row of table, to compare states before and after.
func dump(t *testing.T, db *sql.DB, table string) string {
	t.Helper()
	rows, err := db.Query("SELECT * FROM " + table + " ORDER BY id")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	cols, _ := rows.Columns()
	var b strings.Builder
	for rows.Next() {
		vals := make([]sql.RawBytes, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			t.Fatal(err)
		}
		for i, v := range vals {
			fmt.Fprintf(&b, "%s=%s ", cols[i], v)
		}
		b.WriteString("\n")
	}
	return b.String()
}

// state is every row the commands may write.
func (e *testEnv) state(tenants ...string) string {
	e.t.Helper()
	var b strings.Builder
	for _, table := range []string{"admin_users", "global_users", "global_user_tenant_relations", "tenants", "tenant_databases", "tenant_accounts", "db_clusters"} {
		b.WriteString(table + ":\n" + dump(e.t, e.sys, table))
	}
	for _, code := range tenants {
		db := e.tenantDB(code)
		for _, table := range []string{"users", "user_roles", "kindergartens"} {
			b.WriteString(code + "." + table + ":\n" + dump(e.t, db, table))
		}
	}
	return b.String()
}

func TestUsageErrors(t *testing.T) {
	t.Parallel()
	env := config.FromMap(map[string]string{"MYSQL_DSN": "root@tcp(127.0.0.1:1)/none"})
	for _, tt := range []struct {
		args []string
		want string
	}{
		{nil, "no command"},
		{[]string{"frobnicate"}, `unknown command "frobnicate"`},
		{[]string{"tenant", "remove"}, `unknown command "tenant remove"`},
		{[]string{"tenant", "add", "--name", "x"}, "--code required"},
		{[]string{"member", "add", "--tenant", "k001"}, "--phone, --role required"},
		{[]string{"user", "add", "--phone", "13900000000", "--bogus"}, "flag provided but not defined: -bogus"},
		{[]string{"admin", "add", "--username", "a", "--password", "b", "extra"}, `unexpected argument "extra"`},
		{[]string{"migrate", "sideways"}, `migrate "sideways"`},
	} {
		err := run(context.Background(), tt.args, env, &bytes.Buffer{}, &bytes.Buffer{})
		var ue usageError
		if !errors.As(err, &ue) || !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), "usage:") {
			t.Errorf("%v: got %v, want a usage error containing %q", tt.args, err, tt.want)
		}
	}
}

func TestAccounts(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	var u globalUser
	if err := json.Unmarshal([]byte(e.mustRun("user", "add", "--phone", "13900000001", "--password", "secret123", "--name", "Ann")), &u); err != nil {
		t.Fatal(err)
	}
	var hash string
	if err := e.sys.QueryRow("SELECT password_hash FROM global_users WHERE id = ?", u.ID).Scan(&hash); err != nil {
		t.Fatal(err)
	}
	if u.Phone != "13900000001" || u.RealName != "Ann" || bcrypt.CompareHashAndPassword([]byte(hash), []byte("secret123")) != nil {
		t.Errorf("user %+v, hash matches: %v", u, bcrypt.CompareHashAndPassword([]byte(hash), []byte("secret123")))
	}
	e.mustRun("admin", "add", "--username", "root", "--password", "rootpass1")
	before := e.state()
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"user", "add", "--phone", "13900000001", "--password", "secret123", "--name", "Again"}, "taken"},
		{[]string{"user", "add", "--phone", "12345", "--password", "secret123", "--name", "Bad"}, "not a valid mobile number"},
		{[]string{"user", "add", "--phone", "13900000002", "--password", "short", "--name", "Weak"}, "password"},
		{[]string{"admin", "add", "--username", "root", "--password", "rootpass1"}, "taken"},
		{[]string{"admin", "add", "--username", "ops", "--password", "rootpass1", "--role", "god"}, `role "god"`},
	} {
		if _, err := e.run(tt.args...); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%v: got %v, want an error containing %q", tt.args, err, tt.want)
		}
	}
	if after := e.state(); after != before {
		t.Errorf("refused commands changed the database:\nbefore %s\nafter %s", before, after)
	}
}

func TestTenantAndMembers(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	e.mustRun("user", "add", "--phone", "13900000001", "--password", "owner1234", "--name", "Owner")
	e.mustRun("user", "add", "--phone", "13900000002", "--password", "teach1234", "--name", "Teacher")

	// Bad input is refused before anything is written.
	before := e.state()
	for _, tt := range []struct {
		args []string
		want string
	}{
		{[]string{"tenant", "add", "--code", "K 1", "--name", "x", "--contact-phone", "13900000000"}, "tenantCode"},
		{[]string{"tenant", "add", "--code", "k001", "--name", "x"}, "contactPhone"},
		{[]string{"tenant", "add", "--code", "k001", "--name", "x", "--owner-phone", "13900000009"}, "no global user"},
		{[]string{"tenant", "add", "--code", "k001", "--name", "x", "--contact-phone", "13900000000", "--plan", "gold"}, "planType"},
	} {
		if _, err := e.run(tt.args...); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%v: got %v, want an error containing %q", tt.args, err, tt.want)
		}
	}
	if after := e.state(); after != before {
		t.Errorf("refused commands changed the database:\nbefore %s\nafter %s", before, after)
	}

	var tr tenantResult
	if err := json.Unmarshal([]byte(e.mustRun("tenant", "add", "--code", "k001", "--name", "K One", "--owner-phone", "13900000001")), &tr); err != nil {
		t.Fatal(err)
	}
	if tr.Database != e.prefix+"k001" || tr.Cluster != "default" || !tr.Created {
		t.Errorf("tenant add = %+v", tr)
	}
	if _, err := e.run("tenant", "add", "--code", "k001", "--name", "K One", "--contact-phone", "13900000000"); err == nil || !strings.Contains(err.Error(), "taken") {
		t.Errorf("second tenant add: %v, want taken", err)
	}

	tdb := e.tenantDB("k001")
	memberRole := func(phone string) (string, string, string) {
		t.Helper()
		var rel, status, roles string
		err := e.sys.QueryRow(`SELECT r.role_in_tenant, r.status FROM global_user_tenant_relations r
			JOIN global_users g ON g.id = r.global_user_id WHERE g.phone = ?`, phone).Scan(&rel, &status)
		if err != nil {
			return "", "", ""
		}
		_ = tdb.QueryRow(`SELECT GROUP_CONCAT(ro.code ORDER BY ro.code) FROM users u JOIN user_roles ur ON ur.user_id = u.id
			JOIN roles ro ON ro.id = ur.role_id WHERE u.phone = ? AND u.status = 'active'`, phone).Scan(&roles)
		return rel, status, roles
	}
	if rel, status, roles := memberRole("13900000001"); rel != "admin" || status != "active" || roles != "admin" {
		t.Errorf("owner: relation %s %s, tenant roles %q", rel, status, roles)
	}

	e.mustRun("member", "add", "--tenant", "k001", "--phone", "13900000002", "--role", "teacher")
	if rel, _, roles := memberRole("13900000002"); rel != "teacher" || roles != "teacher" {
		t.Errorf("teacher: relation %s, tenant roles %q", rel, roles)
	}
	var tenantUserID string
	if err := e.sys.QueryRow("SELECT tenant_user_id FROM global_user_tenant_relations WHERE role_in_tenant = 'teacher'").Scan(&tenantUserID); err != nil {
		t.Fatal(err)
	}
	var uid string
	if err := tdb.QueryRow("SELECT id FROM users WHERE phone = '13900000002'").Scan(&uid); err != nil || uid != tenantUserID {
		t.Errorf("relation tenant_user_id %s, tenant user id %s (%v)", tenantUserID, uid, err)
	}

	t.Run("Idempotent", func(t *testing.T) {
		before := e.state("k001")
		var m memberInfo
		if err := json.Unmarshal([]byte(e.mustRun("member", "add", "--tenant", "k001", "--phone", "13900000002", "--role", "teacher")), &m); err != nil {
			t.Fatal(err)
		}
		if m.UserCreated || m.UserActivated || m.RoleGranted || m.RelationChanged {
			t.Errorf("rerun reports changes: %+v", m)
		}
		if after := e.state("k001"); after != before {
			t.Errorf("rerun changed the database:\nbefore %s\nafter %s", before, after)
		}
	})

	t.Run("UnknownRole", func(t *testing.T) {
		before := e.state("k001")
		_, err := e.run("member", "add", "--tenant", "k001", "--phone", "13900000002", "--role", "janitor")
		if err == nil || !strings.Contains(err.Error(), `no role "janitor"`) || !strings.Contains(err.Error(), "teacher") {
			t.Errorf("got %v, want an error naming the role and the tenant's roles", err)
		}
		if after := e.state("k001"); after != before {
			t.Errorf("a refused member add changed the database")
		}
		if _, err := e.run("member", "add", "--tenant", "k999", "--phone", "13900000002", "--role", "teacher"); err == nil {
			t.Error("member add to an unknown tenant succeeded")
		}
	})

	t.Run("RepairAfterCrash", func(t *testing.T) {
		// A crash between the databases leaves the tenant user without its relation.
		if _, err := e.sys.Exec("DELETE FROM global_user_tenant_relations WHERE role_in_tenant = 'teacher'"); err != nil {
			t.Fatal(err)
		}
		var m memberInfo
		if err := json.Unmarshal([]byte(e.mustRun("member", "add", "--tenant", "k001", "--phone", "13900000002", "--role", "teacher")), &m); err != nil {
			t.Fatal(err)
		}
		if m.UserCreated || m.RoleGranted || !m.RelationChanged || fmt.Sprint(m.TenantUserID) != tenantUserID {
			t.Errorf("repair = %+v, want the relation back on tenant user %s", m, tenantUserID)
		}
		if rel, status, roles := memberRole("13900000002"); rel != "teacher" || status != "active" || roles != "teacher" {
			t.Errorf("after repair: relation %s %s, roles %q", rel, status, roles)
		}
	})
}

func TestDevSeed(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	seed := func(extra map[string]string) (seedResult, string) {
		t.Helper()
		out, diag, err := e.runEnv(extra, "dev-seed", "--credentials", e.creds, "--port", "18080")
		if err != nil {
			t.Fatalf("dev-seed: %v\n%s", err, diag)
		}
		var res seedResult
		if err := json.Unmarshal([]byte(out), &res); err != nil {
			t.Fatalf("output %q: %v", out, err)
		}
		return res, diag
	}
	first, diag := seed(nil)
	if first.AlreadySeeded || first.Admin.Login != "admin" || first.User.Login != "13800000000" ||
		first.Admin.PasswordFrom != "generated" || first.User.PasswordFrom != "generated" || len(first.Tenants) != 2 {
		t.Fatalf("first seed = %+v", first)
	}
	for _, want := range []string{first.Admin.Password, first.User.Password, "Host: k001.localhost", "http://localhost:18080/api/auth/switch-tenant", "/api/app/me"} {
		if !strings.Contains(diag, want) {
			t.Errorf("summary lacks %q:\n%s", want, diag)
		}
	}
	fi, err := os.Stat(e.creds)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("credentials file: %v %v, want mode 0600", fi, err)
	}
	var adminHash, userHash string
	_ = e.sys.QueryRow("SELECT password_hash FROM admin_users WHERE username = 'admin' AND role = 'super_admin'").Scan(&adminHash)
	_ = e.sys.QueryRow("SELECT password_hash FROM global_users WHERE phone = '13800000000'").Scan(&userHash)
	if !matches(adminHash, first.Admin.Password) || !matches(userHash, first.User.Password) {
		t.Error("the printed passwords do not log in")
	}
	var memberships int
	_ = e.sys.QueryRow(`SELECT COUNT(*) FROM global_user_tenant_relations r JOIN global_users g ON g.id = r.global_user_id
		WHERE g.phone = '13800000000' AND r.role_in_tenant = 'admin' AND r.status = 'active' AND r.tenant_code IN ('k001', 'k002')`).Scan(&memberships)
	if memberships != 2 {
		t.Errorf("demo user is admin in %d tenants, want 2", memberships)
	}

	// The demo AI model: sealed key, enabled for both demo tenants, whose
	// accounts are credited.
	var (
		endpoint string
		sealed   []byte
		enabled  int
	)
	if err := e.sys.QueryRow("SELECT endpoint_url, api_key_encrypted FROM ai_model_config WHERE model_name = 'dev-fake' AND status = 'active'").Scan(&endpoint, &sealed); err != nil {
		t.Fatalf("demo AI model: %v", err)
	}
	if endpoint != devAIEndpoint || len(sealed) == 0 || strings.Contains(string(sealed), devAIKey) {
		t.Errorf("demo AI model at %s with key %q, want %s and a sealed key", endpoint, sealed, devAIEndpoint)
	}
	_ = e.sys.QueryRow(`SELECT COUNT(*) FROM tenant_ai_model_configs c JOIN tenants t ON t.id = c.tenant_id JOIN tenant_accounts a ON a.tenant_id = t.id
		JOIN ai_model_config m ON m.id = c.model_id WHERE m.model_name = 'dev-fake' AND c.is_enabled = 1 AND a.balance = 100 AND t.tenant_code IN ('k001', 'k002')`).Scan(&enabled)
	if enabled != 2 || first.AIModel != "dev-fake" || !strings.Contains(diag, `/v1/chat/completions`) || !strings.Contains(diag, `"model":"dev-fake"`) {
		t.Errorf("demo AI model enabled and credited for %d tenants, want 2; summary:\n%s", enabled, diag)
	}

	before := e.state("k001", "k002")
	again, diag := seed(nil)
	if !again.AlreadySeeded || len(again.Changes) != 0 || again.Admin != first.Admin || again.User != first.User {
		t.Errorf("second seed = %+v, want already seeded with the same credentials", again)
	}
	if !strings.Contains(diag, "already seeded, see "+e.creds) || !strings.Contains(diag, first.User.Password) {
		t.Errorf("second seed says:\n%s", diag)
	}
	if after := e.state("k001", "k002"); after != before {
		t.Errorf("rerun changed the database:\nbefore %s\nafter %s", before, after)
	}

	// What a person changed afterwards stays: a spent account is not
	// credited again, a disabled model not enabled.
	if _, err := e.sys.Exec("UPDATE tenant_accounts a JOIN tenants t ON t.id = a.tenant_id SET a.balance = 0 WHERE t.tenant_code = 'k001'"); err != nil {
		t.Fatal(err)
	}
	if _, err := e.sys.Exec("UPDATE tenant_ai_model_configs c JOIN tenants t ON t.id = c.tenant_id SET c.is_enabled = 0 WHERE t.tenant_code = 'k002'"); err != nil {
		t.Fatal(err)
	}
	before = e.state("k001", "k002")
	if res, _ := seed(nil); !res.AlreadySeeded {
		t.Errorf("seed after changes = %+v, want nothing changed", res)
	}
	var balance string
	_ = e.sys.QueryRow("SELECT a.balance FROM tenant_accounts a JOIN tenants t ON t.id = a.tenant_id WHERE t.tenant_code = 'k001'").Scan(&balance)
	_ = e.sys.QueryRow("SELECT c.is_enabled FROM tenant_ai_model_configs c JOIN tenants t ON t.id = c.tenant_id WHERE t.tenant_code = 'k002'").Scan(&enabled)
	if balance != "0.0000" || enabled != 0 {
		t.Errorf("rerun undid changes: k001 balance %s, k002 enabled %d", balance, enabled)
	}
	if _, diag, err := e.runEnv(map[string]string{"DEV_AI_ENDPOINT": "ftp://x"}, "dev-seed", "--credentials", e.creds); err == nil || !strings.Contains(diag+err.Error(), "DEV_AI_ENDPOINT") {
		t.Errorf("a bad DEV_AI_ENDPOINT: %v, want an error naming it", err)
	}

	// Passwords from the environment win, and are never written to the file.
	res, _ := seed(map[string]string{"DEV_ADMIN_PASSWORD": "chosen123"})
	_ = e.sys.QueryRow("SELECT password_hash FROM admin_users WHERE username = 'admin'").Scan(&adminHash)
	if res.AlreadySeeded || res.Admin.PasswordFrom != "DEV_ADMIN_PASSWORD" || !matches(adminHash, "chosen123") {
		t.Errorf("seed with DEV_ADMIN_PASSWORD = %+v", res)
	}
	if b, _ := os.ReadFile(e.creds); strings.Contains(string(b), "chosen123") {
		t.Error("the credentials file holds a password from the environment")
	}

	// Another checkout, without this one's credentials file, seeding the
	// same database: the passwords are not known to it, and the summary
	// says how to set them.
	if err := os.Remove(e.creds); err != nil {
		t.Fatal(err)
	}
	lost, diag := seed(nil)
	if lost.Admin.PasswordFrom != "unknown" || lost.User.PasswordFrom != "unknown" ||
		!strings.Contains(diag, "rerun with DEV_ADMIN_PASSWORD=<password> to set it") || !strings.Contains(diag, "rerun with DEV_USER_PASSWORD=<password> to set it") {
		t.Errorf("seed without the credentials file = %+v, says:\n%s", lost, diag)
	}
}
