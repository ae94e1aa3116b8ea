package provisioning

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"log/slog"
	"strconv"
	"strings"

	"github.com/go-sql-driver/mysql"

	"github.com/unitenant/unitenant/shared/fault"
	"github.com/unitenant/unitenant/shared/secretbox"
	"github.com/unitenant/unitenant/shared/sqldb"
	"github.com/unitenant/unitenant/shared/tenancy"
)

// DefaultDatabasePrefix starts every tenant database name.
const DefaultDatabasePrefix = "tenant_"

// DatabaseName is the database of tenant code: prefix + code, with the
// hyphens a code may hold turned into underscores.
func DatabaseName(prefix, code string) (string, error) {
	name := prefix + strings.ReplaceAll(code, "-", "_")
	if err := sqldb.ValidateIdent(name); err != nil {
		return "", fmt.Errorf("database name for tenant %q: %w", code, err)
	}
	return name, nil
}

// EnsureCluster registers the MySQL server of serverDSN (admin credentials)
// as cluster name, or updates its address and credentials, and returns its
// id. The password is sealed under the master key.
func EnsureCluster(ctx context.Context, sys *sql.DB, box *secretbox.Box, name, serverDSN string, maxTenants int) (int64, error) {
	mc, err := mysql.ParseDSN(serverDSN)
	if err != nil {
		return 0, fmt.Errorf("cluster %s dsn: %w", name, err)
	}
	host, portStr, ok := strings.Cut(mc.Addr, ":")
	if !ok {
		portStr = "3306"
	}
	port, err := strconv.Atoi(portStr)
	if err != nil {
		return 0, fmt.Errorf("cluster %s port %q: %w", name, portStr, err)
	}
	var sealed []byte
	if mc.Passwd != "" {
		sealed = box.Seal([]byte(mc.Passwd), tenancy.ClusterSecretAAD(name))
	}
	var params []byte
	if len(mc.Params) > 0 {
		params, _ = json.Marshal(mc.Params)
	}
	if maxTenants <= 0 {
		maxTenants = 1000
	}
	_, err = sys.ExecContext(ctx, `
		INSERT INTO db_clusters (name, host, port, admin_user, admin_password_encrypted, params, max_tenants, status)
		VALUES (?, ?, ?, ?, ?, ?, ?, 'active')
		ON DUPLICATE KEY UPDATE host = VALUES(host), port = VALUES(port), admin_user = VALUES(admin_user),
		  admin_password_encrypted = VALUES(admin_password_encrypted), params = VALUES(params)`,
		name, host, port, mc.User, sealed, nullJSON(params), maxTenants)
	if err != nil {
		return 0, fmt.Errorf("register cluster %s: %w", name, err)
	}
	var id int64
	if err := sys.QueryRowContext(ctx, "SELECT id FROM db_clusters WHERE name = ?", name).Scan(&id); err != nil {
		return 0, fmt.Errorf("register cluster %s: %w", name, err)
	}
	return id, nil
}

func nullJSON(b []byte) any {
	if len(b) == 0 {
		return nil
	}
	return string(b)
}

// NewTenant is what CreateTenant needs.
type NewTenant struct {
	Code         string
	Name         string
	ContactName  string
	ContactPhone string
	ContactEmail string
	PlanType     string
	ClusterID    int64
	Database     string // see DatabaseName
}

// CreateTenant makes an active tenant: its row, its database on the cluster
// at the latest tenant schema, its placement. A code already taken is
// refused with tenant_code_taken and changes nothing.
func CreateTenant(ctx context.Context, sys *sql.DB, box *secretbox.Box, nt NewTenant, log *slog.Logger) (int64, error) {
	if !tenancy.ValidCode(nt.Code) {
		return 0, fault.Field("invalid_tenant_code", "tenantCode", "must be a lower-case DNS label (letters, digits, hyphens)")
	}
	if err := sqldb.ValidateIdent(nt.Database); err != nil {
		return 0, err
	}
	if nt.PlanType == "" {
		nt.PlanType = "basic"
	}
	res, err := sys.ExecContext(ctx, `
		INSERT INTO tenants (tenant_code, tenant_name, subdomain, status, plan_type, contact_name, contact_phone, contact_email, storage_prefix)
		VALUES (?, ?, ?, 'provisioning', ?, ?, ?, ?, ?)`,
		nt.Code, nt.Name, nt.Code, nt.PlanType, nt.ContactName, nt.ContactPhone, nt.ContactEmail, "tenants/"+nt.Code+"/")
	if sqldb.IsDuplicate(err) {
		return 0, fault.New(fault.Conflict, "tenant_code_taken", "tenant code %q is taken", nt.Code)
	}
	if err != nil {
		return 0, fmt.Errorf("insert tenant %s: %w", nt.Code, err)
	}
	id, _ := res.LastInsertId()

	cfg, _, err := tenancy.LoadCluster(ctx, sys, box, nt.ClusterID)
	if err != nil {
		return id, err
	}
	server, err := sqldb.OpenDSN(cfg.FormatDSN())
	if err != nil {
		return id, err
	}
	defer server.Close()
	mig, err := MigrateTenantDatabase(ctx, server, cfg.FormatDSN(), nt.Database, log)
	if err != nil {
		return id, fmt.Errorf("tenant %s database: %w", nt.Code, err)
	}
	err = sqldb.InTx(ctx, sys, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `
			INSERT INTO tenant_databases (tenant_id, cluster_id, database_name, tier, schema_version, status)
			VALUES (?, ?, ?, 'pooled', ?, 'ready')`, id, nt.ClusterID, nt.Database, mig.To); err != nil {
			return fmt.Errorf("place tenant %s: %w", nt.Code, err)
		}
		if _, err := tx.ExecContext(ctx, "INSERT INTO tenant_accounts (tenant_id) VALUES (?)", id); err != nil {
			return fmt.Errorf("tenant %s account: %w", nt.Code, err)
		}
		_, err := tx.ExecContext(ctx, "UPDATE tenants SET status = 'active', activated_at = CURRENT_TIMESTAMP(3) WHERE id = ?", id)
		return err
	})
	if err != nil {
		return id, err
	}
	return id, nil
}
