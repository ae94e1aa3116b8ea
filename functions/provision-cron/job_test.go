package main

import (
	"context"
	"crypto/rand"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/unitenant/unitenant/infra/schema"
	"github.com/unitenant/unitenant/shared/logging"
	"github.com/unitenant/unitenant/shared/migration"
	"github.com/unitenant/unitenant/shared/notify"
	"github.com/unitenant/unitenant/shared/provisioning"
	"github.com/unitenant/unitenant/shared/secretbox"
	"github.com/unitenant/unitenant/shared/sqldb/sqldbtest"
	"github.com/unitenant/unitenant/tests/testenv"
)

// newJob returns a job on a fresh system database and template of the
// test's own, with a database prefix of its own (dropped at the end).
func newJob(t *testing.T, poolSize int) *job {
	t.Helper()
	db, dsn := sqldbtest.NewDatabase(t)
	tmplName := sqldbtest.Name(t)
	sqldbtest.CreateDatabase(t, tmplName)
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	box, err := secretbox.New(key)
	if err != nil {
		t.Fatal(err)
	}
	prefix := sqldbtest.Name(t) + "_"
	testenv.DropDatabasesLike(t, prefix)
	return &job{db: db, dsn: dsn, template: tmplName, poolSize: poolSize, prefix: prefix, log: logging.Discard(),
		box: func() (*secretbox.Box, error) { return box, nil },
		notify: func() (*notify.Dispatcher, error) {
			return &notify.Dispatcher{DB: db, Box: box, Client: notify.NewHTTPClient(true), Owner: "provision-cron"}, nil
		}}
}

// Each run delivers the due lifecycle events to the webhook endpoints.
func TestJobDeliversNotifications(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	j := newJob(t, 0)
	if _, err := provisioning.MigrateSystem(ctx, j.db, logging.Discard()); err != nil {
		t.Fatal(err)
	}
	const secret = "provision-cron-test-secret"
	var mu sync.Mutex
	var got []string
	recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if err := notify.VerifySignature([]byte(secret), r.Header.Get(notify.HeaderTimestamp), r.Header.Get(notify.HeaderSignature),
			body, time.Now(), notify.DefaultTolerance); err != nil {
			t.Errorf("receiver: %v", err)
		}
		mu.Lock()
		got = append(got, r.Header.Get(notify.HeaderEventID))
		mu.Unlock()
	}))
	defer recv.Close()
	box, _ := j.box()
	if _, err := notify.AddEndpoint(ctx, j.db, box, notify.Endpoint{URL: recv.URL, Secret: secret}); err != nil {
		t.Fatal(err)
	}
	id, err := notify.Emit(ctx, j.db, notify.Event{Type: notify.TenantSuspended, TenantCode: "k001"})
	if err != nil {
		t.Fatal(err)
	}
	out, err := j.run(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if rep := out.(result).Notify; rep == nil || *rep != (notify.Report{Events: 1, Dispatched: 1, Sent: 1}) {
		t.Fatalf("notify report %+v", rep)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(got) != 1 || got[0] != id {
		t.Fatalf("receiver got %v, want [%s]", got, id)
	}
}

func TestJobMigratesSystemAndTemplate(t *testing.T) {
	t.Parallel()
	j := newJob(t, 2)

	out, err := j.run(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	res := out.(result)
	sys, _ := schema.System()
	ten, _ := schema.Tenant()
	if res.System.To != migration.Latest(sys) || res.Template.To != migration.Latest(ten) {
		t.Fatalf("result %+v, want system %d template %d", res, migration.Latest(sys), migration.Latest(ten))
	}
	var v int
	if err := sqldbtest.Server(t).QueryRow("SELECT MAX(version) FROM `" + j.template + "`.schema_migrations").Scan(&v); err != nil || v != migration.Latest(ten) {
		t.Fatalf("template version %d (%v)", v, err)
	}
	if len(res.Clusters) != 0 {
		t.Fatalf("clusters %+v, want none (none registered)", res.Clusters)
	}
	// The next run finds nothing to do.
	out, err = j.run(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if res := out.(result); len(res.System.Applied)+len(res.Template.Applied) != 0 {
		t.Fatalf("second run applied %+v", res)
	}
}

// Every active cluster gets its template and a full warm pool; a cluster
// that fails is reported and does not stop the others.
func TestJobFillsClusterPools(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	j := newJob(t, 1)
	if _, err := provisioning.MigrateSystem(ctx, j.db, logging.Discard()); err != nil {
		t.Fatal(err)
	}
	box, _ := j.box()
	for _, c := range []struct{ name, dsn string }{
		{"default", sqldbtest.ServerDSN(t)},
		{"down", "root@tcp(127.0.0.1:1)/?timeout=1s"},
		{"disabled", "root@tcp(127.0.0.1:1)/?timeout=1s"},
	} {
		if _, err := provisioning.EnsureCluster(ctx, j.db, box, c.name, c.dsn, 0); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := j.db.Exec("UPDATE db_clusters SET status = 'disabled' WHERE name = 'disabled'"); err != nil {
		t.Fatal(err)
	}
	_, err := j.run(ctx)
	if err == nil || !strings.Contains(err.Error(), "db cluster down") || strings.Contains(err.Error(), "disabled") {
		t.Fatalf("err = %v, want the down cluster (only) reported", err)
	}
	var ready int
	if err := j.db.QueryRow(`SELECT COUNT(*) FROM warm_pool_databases w JOIN db_clusters c ON c.id = w.cluster_id
		WHERE c.name = 'default' AND w.status = 'ready'`).Scan(&ready); err != nil || ready != 1 {
		t.Fatalf("ready warm databases on the default cluster: %d (%v), want 1", ready, err)
	}

	// Without the broken cluster the job succeeds and finds the pool full.
	if _, err := j.db.Exec("UPDATE db_clusters SET status = 'disabled' WHERE name = 'down'"); err != nil {
		t.Fatal(err)
	}
	out, err := j.run(ctx)
	if err != nil {
		t.Fatal(err)
	}
	res := out.(result)
	if len(res.Clusters) != 1 || res.Clusters[0].Name != "default" || res.Clusters[0].Pool == nil ||
		res.Clusters[0].Pool.Ready != 1 || res.Clusters[0].Pool.Made != 0 {
		t.Fatalf("clusters %+v", res.Clusters)
	}
}

// TestJobResumesUnfinishedProvisioning: a create that died half way (its
// lease expired) is finished by the next run of the job.
func TestJobResumesUnfinishedProvisioning(t *testing.T) {
	t.Parallel()
	sys := testenv.NewSystem(t)
	tenants := testenv.NewTenants(t, sys.DB, sys.Box)
	ctx := context.Background()
	crashing := &provisioning.Pipeline{Sys: sys.DB, Box: sys.Box, Storage: tenants.Pipeline.Storage, Template: tenants.Pipeline.Template,
		Prefix: tenants.Prefix, Owner: "api", LeaseTTL: time.Millisecond, Log: logging.Discard(),
		Crash: func(step string) error {
			if step == "seed" {
				return errors.New("killed")
			}
			return nil
		}}
	if _, err := crashing.Start(ctx, provisioning.Request{Code: "k001", Name: "One", ContactName: "Li", ContactEmail: "li@example.com",
		ContactPhone: "13800001111"}); err != nil {
		t.Fatal(err)
	}
	if err := crashing.Run(ctx, "k001"); err == nil {
		t.Fatal("want the simulated crash")
	}
	time.Sleep(10 * time.Millisecond) // the dead process's lease runs out

	j := &job{db: sys.DB, dsn: sys.DSN, template: tenants.Pipeline.Template, prefix: tenants.Prefix, log: logging.Discard(),
		box:      func() (*secretbox.Box, error) { return sys.Box, nil },
		pipeline: func() (*provisioning.Pipeline, error) { return tenants.Pipeline, nil }}
	out, err := j.run(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got := out.(result).Resumed; len(got) != 1 || got[0] != "k001" {
		t.Fatalf("resumed %v, want [k001]", got)
	}
	v, err := provisioning.Progress(ctx, sys.DB, "k001")
	if err != nil || v.Status != "completed" {
		t.Fatalf("progress %+v %v", v, err)
	}
	var status string
	if err := sys.DB.QueryRow("SELECT status FROM tenants WHERE tenant_code = 'k001'").Scan(&status); err != nil || status != "active" {
		t.Fatalf("tenant status %q %v", status, err)
	}
}
