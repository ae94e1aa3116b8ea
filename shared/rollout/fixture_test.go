package rollout_test

import (
	"context"
	"database/sql"
	"fmt"
	"maps"
	"strings"
	"sync"
	"testing"
	"testing/fstest"

	"github.com/unitenant/unitenant/shared/logging"
	"github.com/unitenant/unitenant/shared/migration"
	"github.com/unitenant/unitenant/shared/provisioning"
	"github.com/unitenant/unitenant/shared/rollout"
	"github.com/unitenant/unitenant/shared/secretbox"
	"github.com/unitenant/unitenant/shared/sqldb"
	"github.com/unitenant/unitenant/shared/sqldb/sqldbtest"
	"github.com/unitenant/unitenant/tests/testenv"
)

// fixture is a system database of the test's own with the test server
// registered as its one cluster; tenant databases and the template are named
// after the test and dropped at its end.
type fixture struct {
	sys       *sql.DB
	box       *secretbox.Box
	cluster   int64
	server    *sql.DB // the cluster, no database selected
	serverDSN string
	prefix    string
	template  string
}

func newFixture(tb testing.TB) *fixture {
	tb.Helper()
	sys := testenv.NewSystem(tb)
	id, err := provisioning.EnsureCluster(context.Background(), sys.DB, sys.Box, "default", sqldbtest.ServerDSN(tb), 0)
	if err != nil {
		tb.Fatal(err)
	}
	prefix := sqldbtest.Name(tb) + "_"
	testenv.DropDatabasesLike(tb, prefix)
	server := sqldbtest.Server(tb)
	server.SetMaxOpenConns(8)
	return &fixture{sys: sys.DB, box: sys.Box, cluster: id, server: server, serverDSN: sqldbtest.ServerDSN(tb), prefix: prefix, template: sys.Template}
}

// options are roll-out options on the fixture for migrations ms.
func (f *fixture) options(ms []migration.Migration) rollout.Options {
	return rollout.Options{Sys: f.sys, Box: f.box, Migrations: ms, Template: f.template, Concurrency: 8, Log: logging.Discard()}
}

// tenant is a tenant the fixture made.
type tenant struct {
	id       int64
	code     string
	database string
}

// tenants makes n active tenants whose databases really exist, migrated with
// ms and mirrored at that version in tenant_databases. With noDatabases
// only the system rows are made (a fleet that must never be connected to).
func (f *fixture) tenants(tb testing.TB, n int, ms []migration.Migration, noDatabases bool) []tenant {
	tb.Helper()
	ctx := context.Background()
	out := make([]tenant, n)
	for i := range out {
		out[i].code = fmt.Sprintf("t%04d", i)
		out[i].database = f.prefix + out[i].code
	}
	if !noDatabases {
		work := make(chan string)
		errs := make(chan error, n)
		var wg sync.WaitGroup
		for range 8 {
			wg.Go(func() {
				for db := range work {
					errs <- f.migrate(ctx, db, ms)
				}
			})
		}
		for _, t := range out {
			work <- t.database
		}
		close(work)
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				tb.Fatal(err)
			}
		}
	}
	// System rows in batches: one statement per 500 tenants.
	for lo := 0; lo < n; lo += 500 {
		batch := out[lo:min(n, lo+500)]
		var values []string
		var args []any
		for _, t := range batch {
			values = append(values, "(?, ?, ?, 'active')")
			args = append(args, t.code, "Tenant "+t.code, t.code)
		}
		if _, err := f.sys.ExecContext(ctx, "INSERT INTO tenants (tenant_code, tenant_name, subdomain, status) VALUES "+strings.Join(values, ", "), args...); err != nil {
			tb.Fatal(err)
		}
		values, args = values[:0], args[:0]
		for i := range batch {
			if err := f.sys.QueryRowContext(ctx, "SELECT id FROM tenants WHERE tenant_code = ?", batch[i].code).Scan(&batch[i].id); err != nil {
				tb.Fatal(err)
			}
			values = append(values, "(?, ?, ?, 'pooled', ?, 'ready')")
			args = append(args, batch[i].id, f.cluster, batch[i].database, migration.Latest(ms))
		}
		if _, err := f.sys.ExecContext(ctx, "INSERT INTO tenant_databases (tenant_id, cluster_id, database_name, tier, schema_version, status) VALUES "+strings.Join(values, ", "), args...); err != nil {
			tb.Fatal(err)
		}
	}
	return out
}

// migrate creates database db and applies ms to it.
func (f *fixture) migrate(ctx context.Context, db string, ms []migration.Migration) error {
	if err := sqldb.CreateDatabase(ctx, f.server, db); err != nil {
		return err
	}
	conn, err := f.server.Conn(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, "USE `"+db+"`"); err != nil {
		return err
	}
	r := migration.Runner{Migrations: ms}
	_, err = r.UpConn(ctx, conn)
	return err
}

// version is database db's own ledger version.
func (f *fixture) version(tb testing.TB, db string) int {
	tb.Helper()
	v, err := provisioning.DatabaseVersion(context.Background(), f.server, db)
	if err != nil {
		tb.Fatal(err)
	}
	return v
}

// mirrored counts tenant_databases rows at version v.
func (f *fixture) mirrored(tb testing.TB, v int) int {
	tb.Helper()
	var n int
	if err := f.sys.QueryRow("SELECT COUNT(*) FROM tenant_databases WHERE schema_version = ?", v).Scan(&n); err != nil {
		tb.Fatal(err)
	}
	return n
}

// load builds migrations from file name -> SQL.
func load(tb testing.TB, files map[string]string) []migration.Migration {
	tb.Helper()
	fsys := fstest.MapFS{}
	for name, body := range files {
		fsys[name] = &fstest.MapFile{Data: []byte(body)}
	}
	ms, err := migration.Load(fsys)
	if err != nil {
		tb.Fatal(err)
	}
	return ms
}

// with returns base plus more files.
func with(base map[string]string, more map[string]string) map[string]string {
	out := maps.Clone(base)
	maps.Copy(out, more)
	return out
}

// upTo2 returns v1 and v1 followed by 0002_<name>.sql holding body.
func upTo2(tb testing.TB, name, body string) (ms1, ms2 []migration.Migration) {
	tb.Helper()
	return load(tb, v1), load(tb, with(v1, map[string]string{"0002_" + name + ".sql": body}))
}

var v1 = map[string]string{
	"0001_notes.sql": "CREATE TABLE notes (id INT PRIMARY KEY, body VARCHAR(50) NOT NULL);\nCREATE TABLE marks (n INT NOT NULL);\n",
}
