package provisioning

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"

	"github.com/go-sql-driver/mysql"

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
