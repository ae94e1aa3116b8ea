package main

import (
	"context"
	"strings"
	"testing"

	"github.com/unitenant/unitenant/infra/schema"
	"github.com/unitenant/unitenant/shared/logging"
	"github.com/unitenant/unitenant/shared/migration"
	"github.com/unitenant/unitenant/shared/provisioning"
	"github.com/unitenant/unitenant/shared/rollout"
	"github.com/unitenant/unitenant/shared/sqldb"
	"github.com/unitenant/unitenant/shared/sqldb/sqldbtest"
)

// A tenant one migration behind the template is brought to it by the next
// run; the run after finds nothing behind and connects to no tenant.
func TestJobRollsOutToTenantsBehind(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	j := newJob(t, 0)
	if _, err := provisioning.MigrateSystem(ctx, j.db, logging.Discard()); err != nil {
		t.Fatal(err)
	}
	box, _ := j.box()
	cluster, err := provisioning.EnsureCluster(ctx, j.db, box, "default", sqldbtest.ServerDSN(t), 0)
	if err != nil {
		t.Fatal(err)
	}
	ms, err := schema.Tenant()
	if err != nil {
		t.Fatal(err)
	}
	latest := migration.Latest(ms)
	// A tenant database made before the last tenant migration existed.
	name := j.prefix + "k001"
	server := sqldbtest.Server(t)
	if err := sqldb.CreateDatabase(ctx, server, name); err != nil {
		t.Fatal(err)
	}
	dsn, _ := sqldb.WithDatabase(sqldbtest.ServerDSN(t), name)
	tdb, err := sqldb.OpenDSN(dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer tdb.Close()
	r := migration.Runner{DB: tdb, Migrations: ms[:len(ms)-1]}
	if _, err := r.Up(ctx); err != nil {
		t.Fatal(err)
	}
	res, err := j.db.Exec("INSERT INTO tenants (tenant_code, tenant_name, subdomain, status) VALUES ('k001', 'One', 'k001', 'active')")
	if err != nil {
		t.Fatal(err)
	}
	id, _ := res.LastInsertId()
	if _, err := j.db.Exec("INSERT INTO tenant_databases (tenant_id, cluster_id, database_name, schema_version, status) VALUES (?, ?, ?, ?, 'ready')",
		id, cluster, name, latest-1); err != nil {
		t.Fatal(err)
	}

	out, err := j.run(ctx)
	if err != nil {
		t.Fatal(err)
	}
	rep := out.(result).Rollout
	if rep == nil || rep.Status != rollout.StatusCompleted || rep.Succeeded != 1 || rep.Target != latest {
		t.Fatalf("roll-out %+v", rep)
	}
	if v, err := provisioning.DatabaseVersion(ctx, server, name); err != nil || v != latest {
		t.Fatalf("tenant database at %d (%v), want %d", v, err, latest)
	}

	out, err = j.run(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if rep := out.(result).Rollout; rep == nil || rep.Status != rollout.StatusUpToDate || rep.TenantConnections != 0 {
		t.Fatalf("second roll-out %+v", rep)
	}

	// A tenant whose database is gone fails the step (it alarms); the
	// other steps still ran.
	if _, err := j.db.Exec("UPDATE tenant_databases SET schema_version = 1, database_name = 'gone_db_x' WHERE tenant_id = ?", id); err != nil {
		t.Fatal(err)
	}
	if _, err := j.run(ctx); err == nil || !strings.Contains(err.Error(), "schema roll-out") || !strings.Contains(err.Error(), "k001") {
		t.Fatalf("err = %v, want the roll-out failure of k001", err)
	}
}
