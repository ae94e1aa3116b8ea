package provisioning_test

import (
	"context"
	"testing"

	"github.com/unitenant/unitenant/infra/schema"
	"github.com/unitenant/unitenant/shared/logging"
	"github.com/unitenant/unitenant/shared/migration"
	"github.com/unitenant/unitenant/shared/provisioning"
	"github.com/unitenant/unitenant/shared/sqldb/sqldbtest"
)

func TestEnsureClusterTemplate(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newPoolEnv(t)
	tmpl := sqldbtest.Name(t)
	sqldbtest.CreateDatabase(t, tmpl)
	ms, _ := schema.Tenant()
	for i, want := range []int{len(ms), 0} { // the second run has nothing to do
		res, err := provisioning.EnsureClusterTemplate(ctx, e.sys, e.box, e.cluster, tmpl, logging.Discard())
		if err != nil {
			t.Fatal(err)
		}
		if res.To != migration.Latest(ms) || len(res.Applied) != want {
			t.Fatalf("run %d: %+v, want %d applied up to %d", i+1, res, want, migration.Latest(ms))
		}
	}
	if v, err := provisioning.DatabaseVersion(ctx, e.server, tmpl); err != nil || v != migration.Latest(ms) {
		t.Fatalf("DatabaseVersion = %d, %v", v, err)
	}

	t.Run("ErrDisabledCluster", func(t *testing.T) {
		if _, err := e.sys.Exec("UPDATE db_clusters SET status = 'disabled' WHERE id = ?", e.cluster); err != nil {
			t.Fatal(err)
		}
		if _, err := provisioning.EnsureClusterTemplate(ctx, e.sys, e.box, e.cluster, tmpl, nil); err == nil {
			t.Fatal("want an error for a disabled cluster")
		}
	})
}
