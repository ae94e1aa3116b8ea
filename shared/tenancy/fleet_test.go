package tenancy_test

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/unitenant/unitenant/shared/logging"
	"github.com/unitenant/unitenant/shared/provisioning"
	"github.com/unitenant/unitenant/shared/secretbox"
	"github.com/unitenant/unitenant/shared/sqldb"
	"github.com/unitenant/unitenant/shared/sqldb/sqldbtest"
	"github.com/unitenant/unitenant/shared/tenancy"
)

// fleet is a system database and tenants with small real databases of their
// own: each holds a marker table naming its tenant, so any row read through
// the wrong connection is caught.
type fleet struct {
	sys       *sql.DB
	box       *secretbox.Box
	clusterID int64
	prefix    string
	server    *sql.DB
}

func newFleet(t testing.TB) *fleet {
	t.Helper()
	sys, _ := sqldbtest.NewDatabase(t)
	if _, err := provisioning.MigrateSystem(context.Background(), sys, logging.Discard()); err != nil {
		t.Fatal(err)
	}
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	box, err := secretbox.New(key)
	if err != nil {
		t.Fatal(err)
	}
	id, err := provisioning.EnsureCluster(context.Background(), sys, box, "default", sqldbtest.ServerDSN(t), 0)
	if err != nil {
		t.Fatal(err)
	}
	return &fleet{sys: sys, box: box, clusterID: id, prefix: sqldbtest.Name(t) + "_", server: sqldbtest.Server(t)}
}

// add creates tenant code with status and a database holding its marker.
func (f *fleet) add(t testing.TB, code, status string) int64 {
	t.Helper()
	ctx := context.Background()
	db := f.prefix + code
	if err := sqldb.CreateDatabase(ctx, f.server, db); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sqldb.DropDatabase(context.Background(), f.server, db) })
	for _, q := range []string{
		"CREATE TABLE `" + db + "`.marker (id INT PRIMARY KEY, tenant VARCHAR(50) NOT NULL)",
		"INSERT INTO `" + db + "`.marker VALUES (1, '" + code + "')",
	} {
		if _, err := f.server.ExecContext(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	res, err := f.sys.ExecContext(ctx, "INSERT INTO tenants (tenant_code, tenant_name, subdomain, status) VALUES (?, ?, ?, ?)",
		code, "Tenant "+code, code, status)
	if err != nil {
		t.Fatal(err)
	}
	id, _ := res.LastInsertId()
	if _, err := f.sys.ExecContext(ctx, "INSERT INTO tenant_databases (tenant_id, cluster_id, database_name, tier, status) VALUES (?, ?, ?, 'pooled', 'ready')",
		id, f.clusterID, db); err != nil {
		t.Fatal(err)
	}
	return id
}

// silo turns tenant code into a siloed tenant: a MySQL user granted only its
// database, the password sealed for it.
func (f *fleet) silo(t testing.TB, code string, id int64) string {
	t.Helper()
	ctx := context.Background()
	var b [6]byte
	_, _ = rand.Read(b[:])
	user := "ut_silo_" + hex.EncodeToString(b[:])
	pw := hex.EncodeToString(b[:]) + "Pw9!"
	db := f.prefix + code
	for _, q := range []string{
		fmt.Sprintf("CREATE USER '%s'@'%%' IDENTIFIED BY '%s'", user, pw),
		fmt.Sprintf("GRANT SELECT, INSERT, UPDATE, DELETE ON `%s`.* TO '%s'@'%%'", db, user),
	} {
		if _, err := f.server.ExecContext(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() { _, _ = f.server.ExecContext(context.Background(), fmt.Sprintf("DROP USER '%s'@'%%'", user)) })
	sealed := f.box.Seal([]byte(pw), tenancy.SiloSecretAAD(id))
	if _, err := f.sys.ExecContext(ctx, "UPDATE tenant_databases SET tier = 'siloed', db_user = ?, db_password_encrypted = ? WHERE tenant_id = ?",
		user, sealed, id); err != nil {
		t.Fatal(err)
	}
	return user
}

func (f *fleet) service(opts tenancy.RouterOptions) *tenancy.Service {
	return &tenancy.Service{
		Registry: tenancy.NewRegistry(f.sys, tenancy.RegistryOptions{TTL: time.Minute}),
		Router:   tenancy.NewRouter(f.sys, f.box, opts),
		Hosts:    tenancy.ParseHosts("unitenant.test", "", tenancy.DefaultPlatformHosts),
		Log:      logging.Discard(),
	}
}

// marker reads the marker row through conn.
func marker(ctx context.Context, conn *sql.Conn) (string, error) {
	var got string
	err := conn.QueryRowContext(ctx, "SELECT tenant FROM marker WHERE id = 1").Scan(&got)
	return got, err
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}
