package provisioning_test

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/unitenant/unitenant/infra/schema"
	"github.com/unitenant/unitenant/shared/logging"
	"github.com/unitenant/unitenant/shared/migration"
	"github.com/unitenant/unitenant/shared/provisioning"
	"github.com/unitenant/unitenant/shared/secretbox"
	"github.com/unitenant/unitenant/shared/sqldb"
	"github.com/unitenant/unitenant/shared/sqldb/sqldbtest"
	"github.com/unitenant/unitenant/tests/testenv"
)

// poolEnv is a migrated system database with the test server registered as
// a cluster, and a prefix of the test's own for warm databases (dropped at
// the end).
type poolEnv struct {
	sys     *sql.DB
	server  *sql.DB
	box     *secretbox.Box
	cluster int64
	prefix  string
}

func newPoolEnv(tb testing.TB) *poolEnv {
	tb.Helper()
	ctx := context.Background()
	sys, _ := sqldbtest.NewDatabase(tb)
	if _, err := provisioning.MigrateSystem(ctx, sys, logging.Discard()); err != nil {
		tb.Fatal(err)
	}
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	box, err := secretbox.New(key)
	if err != nil {
		tb.Fatal(err)
	}
	cluster, err := provisioning.EnsureCluster(ctx, sys, box, "default", sqldbtest.ServerDSN(tb), 0)
	if err != nil {
		tb.Fatal(err)
	}
	e := &poolEnv{sys: sys, server: sqldbtest.Server(tb), box: box, cluster: cluster, prefix: sqldbtest.Name(tb) + "_"}
	testenv.DropDatabasesLike(tb, e.prefix)
	return e
}

// template materializes a tenant template of the test's own on the
// cluster (dropped at the end) and returns its name.
func (e *poolEnv) template(tb testing.TB) string {
	tb.Helper()
	name := sqldbtest.Name(tb)
	sqldbtest.CreateDatabase(tb, name)
	if _, err := provisioning.EnsureClusterTemplate(context.Background(), e.sys, e.box, e.cluster, name, logging.Discard()); err != nil {
		tb.Fatal(err)
	}
	return name
}

// refill runs RefillPool and fails the test on an error.
func (e *poolEnv) refill(tb testing.TB, template string, size int) provisioning.PoolReport {
	tb.Helper()
	rep, err := provisioning.RefillPool(context.Background(), e.sys, e.box, e.cluster, template, size, e.prefix, logging.Discard())
	if err != nil {
		tb.Fatalf("refill: %v", err)
	}
	return rep
}

// ready returns the ready warm databases of version, oldest first.
func (e *poolEnv) ready(tb testing.TB, version int) []string {
	tb.Helper()
	rows, err := e.sys.Query("SELECT database_name FROM warm_pool_databases WHERE status = 'ready' AND schema_version = ? ORDER BY id", version)
	if err != nil {
		tb.Fatal(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			tb.Fatal(err)
		}
		out = append(out, n)
	}
	return out
}

func checkReport(t *testing.T, got, want provisioning.PoolReport) {
	t.Helper()
	got.Duration = 0
	if got != want {
		t.Fatalf("report %+v, want %+v", got, want)
	}
}

func TestRefillPool(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newPoolEnv(t)
	tmpl := e.template(t)
	ms, _ := schema.Tenant()
	latest := migration.Latest(ms)

	checkReport(t, e.refill(t, tmpl, 2), provisioning.PoolReport{Version: latest, Ready: 2, Made: 2})
	ready := e.ready(t, latest)
	if len(ready) != 2 {
		t.Fatalf("ready rows %v", ready)
	}
	for _, name := range ready {
		if diffs, err := provisioning.CheckDatabase(ctx, e.server, tmpl, name); err != nil || len(diffs) > 0 {
			t.Fatalf("warm database %s: %v %v", name, diffs, err)
		}
	}
	rep := e.refill(t, tmpl, 2)
	checkReport(t, rep, provisioning.PoolReport{Version: latest, Ready: 2})
	if b, err := json.Marshal(rep); err != nil || !strings.Contains(string(b), `"ready":2,`) || !strings.Contains(string(b), `"durationMs":`) {
		t.Fatalf("report JSON %s (%v)", b, err)
	}

	t.Run("CrashLeftovers", func(t *testing.T) {
		// A refill killed mid-clone left a "creating" row and a half-made
		// database; one that is not stale yet may still be in progress.
		stale, fresh := e.prefix+"wdeadbeef0001", e.prefix+"wdeadbeef0002"
		for _, name := range []string{stale, fresh} {
			if err := sqldb.CreateDatabase(ctx, e.server, name); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := e.sys.Exec(`INSERT INTO warm_pool_databases (cluster_id, database_name, schema_version, status, updated_at)
			VALUES (?, ?, ?, 'creating', CURRENT_TIMESTAMP(3) - INTERVAL 10 MINUTE), (?, ?, ?, 'creating', CURRENT_TIMESTAMP(3))`,
			e.cluster, stale, latest, e.cluster, fresh, latest); err != nil {
			t.Fatal(err)
		}
		// And someone dropped a ready database by hand.
		if err := sqldb.DropDatabase(ctx, e.server, ready[0]); err != nil {
			t.Fatal(err)
		}
		checkReport(t, e.refill(t, tmpl, 2), provisioning.PoolReport{Version: latest, Ready: 2, Made: 1, Discarded: 2})
		if databaseExists(t, e.server, stale) || !databaseExists(t, e.server, fresh) {
			t.Fatal("want the stale leftover dropped and the fresh one kept")
		}
		var status string
		if err := e.sys.QueryRow("SELECT status FROM warm_pool_databases WHERE database_name = ?", stale).Scan(&status); err != nil || status != "discarded" {
			t.Fatalf("stale row status %q (%v)", status, err)
		}
	})

	t.Run("Busy", func(t *testing.T) {
		// Refills of one cluster never run at once: the second returns.
		var wg sync.WaitGroup
		reps := make([]provisioning.PoolReport, 2)
		for i := range reps {
			wg.Add(1)
			go func() {
				defer wg.Done()
				reps[i] = e.refill(t, tmpl, 3)
			}()
		}
		wg.Wait()
		if made := reps[0].Made + reps[1].Made; made != 1 {
			t.Fatalf("two concurrent refills made %d databases, want 1: %+v", made, reps)
		}
	})
}

// Ready databases of an older version are upgraded and verified, or dropped
// when they cannot be: never handed out.
func TestRefillPoolUpgrades(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newPoolEnv(t)
	ms, _ := schema.Tenant()
	latest := migration.Latest(ms)
	old := latest - 1
	_, tmpl := materializedTemplate(t, old)

	checkReport(t, e.refill(t, tmpl, 3), provisioning.PoolReport{Version: old, Ready: 3, Made: 3})
	before := e.ready(t, old)
	// One was changed by hand: its upgrade cannot be verified.
	if _, err := e.server.Exec(fmt.Sprintf("ALTER TABLE `%s`.classes DROP COLUMN classroom", before[1])); err != nil {
		t.Fatal(err)
	}
	// The template moves on.
	if _, err := provisioning.EnsureClusterTemplate(ctx, e.sys, e.box, e.cluster, tmpl, logging.Discard()); err != nil {
		t.Fatal(err)
	}
	// Meanwhile a claim of the new version finds nothing to hand out.
	if _, ok, err := provisioning.ClaimWarm(ctx, e.sys, e.cluster, latest, 1); err != nil || ok {
		t.Fatalf("claim before the upgrade: ok %v, err %v", ok, err)
	}
	checkReport(t, e.refill(t, tmpl, 3), provisioning.PoolReport{Version: latest, Ready: 3, Made: 1, Upgraded: 2, Discarded: 1})
	after := e.ready(t, latest)
	if len(after) != 3 || after[0] != before[0] || after[1] != before[2] {
		t.Fatalf("ready after the upgrade %v, before %v: want the intact ones kept", after, before)
	}
	if databaseExists(t, e.server, before[1]) {
		t.Fatal("the database that failed verification was kept")
	}
	for _, name := range after {
		if diffs, err := provisioning.CheckDatabase(ctx, e.server, tmpl, name); err != nil || len(diffs) > 0 {
			t.Fatalf("%s after the upgrade: %v %v", name, diffs, err)
		}
	}
}

func TestRefillPoolErrNoTemplate(t *testing.T) {
	t.Parallel()
	e := newPoolEnv(t)
	_, err := provisioning.RefillPool(context.Background(), e.sys, e.box, e.cluster, sqldbtest.Name(t), 1, e.prefix, nil)
	if err == nil {
		t.Fatal("want an error for a template that is not there")
	}
	if _, err := provisioning.RefillPool(context.Background(), e.sys, e.box, e.cluster, "ok", 1, "Bad-", nil); err == nil {
		t.Fatal("want an error for a bad prefix")
	}
}

// addTenants inserts n bare tenants (claims reference them) and returns ids.
func addTenants(tb testing.TB, sys *sql.DB, n int) []int64 {
	tb.Helper()
	ids := make([]int64, n)
	for i := range ids {
		code := fmt.Sprintf("k%03d", i+1)
		res, err := sys.Exec("INSERT INTO tenants (tenant_code, tenant_name, subdomain) VALUES (?, ?, ?)", code, code, code)
		if err != nil {
			tb.Fatal(err)
		}
		ids[i], _ = res.LastInsertId()
	}
	return ids
}

// addWarmRows records n ready warm databases of version (rows only: a claim
// never touches the database itself).
func addWarmRows(tb testing.TB, e *poolEnv, cluster int64, version, n int) {
	tb.Helper()
	for i := 0; i < n; i++ {
		var b [6]byte
		_, _ = rand.Read(b[:])
		if _, err := e.sys.Exec("INSERT INTO warm_pool_databases (cluster_id, database_name, schema_version, status, ready_at) VALUES (?, ?, ?, 'ready', CURRENT_TIMESTAMP(3))",
			cluster, fmt.Sprintf("%sw%x", e.prefix, b), version); err != nil {
			tb.Fatal(err)
		}
	}
}

func TestClaimWarm(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newPoolEnv(t)
	other, err := provisioning.EnsureCluster(ctx, e.sys, e.box, "other", sqldbtest.ServerDSN(t), 0)
	if err != nil {
		t.Fatal(err)
	}
	addWarmRows(t, e, e.cluster, 10, 5)
	addWarmRows(t, e, e.cluster, 9, 2) // older: never handed out
	addWarmRows(t, e, other, 10, 2)    // another cluster's
	tenants := addTenants(t, e.sys, 20)

	var wg sync.WaitGroup
	got := make([]string, len(tenants))
	errs := make([]error, len(tenants))
	for i, id := range tenants {
		wg.Add(1)
		go func() {
			defer wg.Done()
			got[i], _, errs[i] = provisioning.ClaimWarm(ctx, e.sys, e.cluster, 10, id)
		}()
	}
	wg.Wait()
	seen := map[string]int64{}
	for i, name := range got {
		if errs[i] != nil {
			t.Fatalf("claim of tenant %d: %v", tenants[i], errs[i])
		}
		if name == "" {
			continue
		}
		if prev, dup := seen[name]; dup {
			t.Fatalf("%s handed to tenants %d and %d", name, prev, tenants[i])
		}
		seen[name] = tenants[i]
	}
	if len(seen) != 5 {
		t.Fatalf("%d claims succeeded, want 5", len(seen))
	}
	if n := count(t, e.sys, "SELECT COUNT(*) FROM warm_pool_databases WHERE status = 'ready'"); n != 4 {
		t.Fatalf("%d rows left ready, want the 4 of another version or cluster", n)
	}

	t.Run("Idempotent", func(t *testing.T) {
		for name, tenant := range seen {
			again, ok, err := provisioning.ClaimWarm(ctx, e.sys, e.cluster, 10, tenant)
			if err != nil || !ok || again != name {
				t.Fatalf("claim again by tenant %d: %q %v %v, want %q", tenant, again, ok, err, name)
			}
		}
	})
	t.Run("Empty", func(t *testing.T) {
		for i, name := range got {
			if name != "" {
				continue
			}
			if again, ok, err := provisioning.ClaimWarm(ctx, e.sys, e.cluster, 10, tenants[i]); err != nil || ok {
				t.Fatalf("claim from an empty pool: %q %v %v", again, ok, err)
			}
		}
	})
}

// Concurrent claims of one tenant (a retried request) end up with one
// database; any extra goes back to the pool.
func TestClaimWarmSameTenant(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newPoolEnv(t)
	addWarmRows(t, e, e.cluster, 10, 3)
	tenant := addTenants(t, e.sys, 1)[0]
	var wg sync.WaitGroup
	got := make([]string, 6)
	for i := range got {
		wg.Add(1)
		go func() {
			defer wg.Done()
			name, ok, err := provisioning.ClaimWarm(ctx, e.sys, e.cluster, 10, tenant)
			if err != nil || !ok {
				t.Errorf("claim: %v %v", ok, err)
			}
			got[i] = name
		}()
	}
	wg.Wait()
	for _, name := range got {
		if name != got[0] {
			t.Fatalf("one tenant got several databases: %v", got)
		}
	}
	if n := count(t, e.sys, "SELECT COUNT(*) FROM warm_pool_databases WHERE status = 'claimed'"); n != 1 {
		t.Fatalf("%d rows claimed, want 1", n)
	}
}

// BenchmarkRefillPool measures refilling an empty pool of 4 warm databases.
func BenchmarkRefillPool(b *testing.B) {
	const size = 4
	ctx := context.Background()
	e := newPoolEnv(b)
	tmpl := e.template(b)
	refill := func() provisioning.PoolReport {
		rep, err := provisioning.RefillPool(ctx, e.sys, e.box, e.cluster, tmpl, size, e.prefix, logging.Discard())
		if err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		defer b.StartTimer()
		for _, name := range e.ready(b, rep.Version) {
			if err := sqldb.DropDatabase(ctx, e.server, name); err != nil {
				b.Fatal(err)
			}
		}
		if _, err := e.sys.Exec("DELETE FROM warm_pool_databases"); err != nil {
			b.Fatal(err)
		}
		return rep
	}
	refill() // warm up: the first clone of a new template is slower
	var made int
	var spent time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		rep := refill()
		made += rep.Made
		spent += rep.Duration
	}
	b.ReportMetric(float64(made)/spent.Seconds(), "dbs/s")
}
