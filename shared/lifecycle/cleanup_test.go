package lifecycle_test

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/unitenant/unitenant/shared/config"
	"github.com/unitenant/unitenant/shared/fault"
	"github.com/unitenant/unitenant/shared/lifecycle"
	"github.com/unitenant/unitenant/shared/logging"
	"github.com/unitenant/unitenant/shared/objectstore"
	"github.com/unitenant/unitenant/shared/provisioning"
	"github.com/unitenant/unitenant/shared/sqldb"
	"github.com/unitenant/unitenant/tests/testenv"
)

// purgeEnv is a system database of the test's own with real tenants made
// through the provisioning pipeline, their objects in a local store under
// dir, and a clock (now) the cleanup runs on.
type purgeEnv struct {
	t       testing.TB
	sys     testenv.System
	tenants *testenv.Tenants
	store   *objectstore.Service
	dir     string
	now     time.Time
}

func newPurgeEnv(t testing.TB) *purgeEnv {
	t.Helper()
	sys := testenv.NewSystem(t)
	ts := testenv.NewTenants(t, sys.DB, sys.Box)
	dir := t.TempDir()
	store, err := objectstore.Load(config.FromMap(map[string]string{
		"STORAGE_BACKEND": "local", "LOCAL_STORAGE_DIR": dir, "LOCAL_STORAGE_SECRET": strings.Repeat("s", 32),
	}), true)
	if err != nil {
		t.Fatal(err)
	}
	ts.Pipeline.Storage = store
	return &purgeEnv{t: t, sys: sys, tenants: ts, store: store, dir: dir, now: time.Now().UTC().Truncate(time.Millisecond)}
}

// deletedTenant is a tenant made, filled, deleted and scheduled for purge.
type deletedTenant struct {
	id       int64
	code     string
	database string
	dbUser   string
	counts   map[string]int64  // rows per table before the purge
	sums     map[string]string // CHECKSUM TABLE per table before the purge
}

// createDeleted provisions tenant code (plan: "" or "enterprise" for a
// siloed one), adds rows that are hard to archive and objects (more pages
// than one), then deletes it with its resources due an hour ago.
func (e *purgeEnv) createDeleted(code, plan string) *deletedTenant {
	e.t.Helper()
	ctx := context.Background()
	p := e.tenants.Pipeline
	id, err := p.Start(ctx, provisioning.Request{Code: code, Name: "Kindergarten " + code, ContactName: "Contact",
		ContactEmail: "c@" + code + ".example.com", ContactPhone: "13900009999", PlanType: plan})
	if err != nil {
		e.t.Fatal(err)
	}
	if err := p.Run(ctx, code); err != nil {
		e.t.Fatal(err)
	}
	d := &deletedTenant{id: id, code: code}
	// usage-cron measured its storage before the deletion.
	if _, err := e.sys.DB.Exec("INSERT INTO tenant_storage_usage (tenant_id, used_bytes, object_count, measured_at) VALUES (?, 1234, 5, NOW(3))", id); err != nil {
		e.t.Fatal(err)
	}
	var user sql.NullString
	if err := e.sys.DB.QueryRow("SELECT database_name, db_user FROM tenant_databases WHERE tenant_id = ?", id).Scan(&d.database, &user); err != nil {
		e.t.Fatal(err)
	}
	d.dbUser = user.String
	server := e.tenants.Server
	q := "`" + d.database + "`"
	for i, v := range []string{"it's \"quoted\"", `back\slash`, "new\nline\r\ttab", "nul\x00byte", "中文 😀", "x'); DROP DATABASE mysql; --"} {
		if _, err := server.Exec("INSERT INTO "+q+".tenant_config (config_key, config_value) VALUES (?, ?)", fmt.Sprintf("test.%d", i), v); err != nil {
			e.t.Fatal(err)
		}
	}
	if _, err := server.Exec("INSERT INTO " + q + ".tenant_config (config_key, config_value) VALUES ('test.null', NULL)"); err != nil {
		e.t.Fatal(err)
	}
	d.counts, d.sums = tableState(e.t, server, d.database)
	tn, _ := e.store.Tenant(code)
	for i := range 12 {
		if err := tn.Put(ctx, fmt.Sprintf("uploads/files/f%02d.txt", i), strings.NewReader("data"), 4, "text/plain"); err != nil {
			e.t.Fatal(err)
		}
	}
	e.softDelete(d.id, e.now.Add(-time.Hour))
	return d
}

// softDelete does what the lifecycle's confirmed delete does to the
// tables: the tenant deleted, its resources scheduled at due.
func (e *purgeEnv) softDelete(id int64, due time.Time) {
	e.t.Helper()
	ctx := context.Background()
	err := sqldb.InTx(ctx, e.sys.DB, func(tx *sql.Tx) error {
		if _, err := tx.Exec(`UPDATE tenants SET previous_status = status, status = 'deleted', deleted_at = ?, scheduled_deletion_at = ?
			WHERE id = ?`, due.Add(-lifecycle.DefaultGrace), due, id); err != nil {
			return err
		}
		return lifecycle.Schedule(ctx, tx, id, 0, due)
	})
	if err != nil {
		e.t.Fatal(err)
	}
}

// tableState returns the row count and checksum of every table of database.
func tableState(t testing.TB, server *sql.DB, database string) (map[string]int64, map[string]string) {
	t.Helper()
	counts, sums := map[string]int64{}, map[string]string{}
	rows, err := server.Query("SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? AND TABLE_TYPE = 'BASE TABLE'", database)
	if err != nil {
		t.Fatal(err)
	}
	var tables []string
	for rows.Next() {
		var n string
		_ = rows.Scan(&n)
		tables = append(tables, n)
	}
	rows.Close()
	for _, tb := range tables {
		var n int64
		if err := server.QueryRow("SELECT COUNT(*) FROM `" + database + "`.`" + tb + "`").Scan(&n); err != nil {
			t.Fatal(err)
		}
		var name string
		var sum sql.NullString
		if err := server.QueryRow("CHECKSUM TABLE `"+database+"`.`"+tb+"`").Scan(&name, &sum); err != nil {
			t.Fatal(err)
		}
		counts[tb], sums[tb] = n, sum.String
	}
	return counts, sums
}

// options are the cleanup options of a run at now by owner.
func (e *purgeEnv) options(owner string, now time.Time) lifecycle.Options {
	return lifecycle.Options{Sys: e.sys.DB, Box: e.sys.Box, Store: e.store, Owner: owner,
		Now: func() time.Time { return now }, PageSize: 5, Log: logging.Discard()}
}

func (e *purgeEnv) count(q string, args ...any) int {
	e.t.Helper()
	var n int
	if err := e.sys.DB.QueryRow(q, args...).Scan(&n); err != nil {
		e.t.Fatalf("%s: %v", q, err)
	}
	return n
}

// objectKeys lists the store's keys under prefix.
func (e *purgeEnv) objectKeys(prefix string) []string {
	e.t.Helper()
	page, err := e.store.Store.List(context.Background(), prefix, "", objectstore.MaxList)
	if err != nil {
		e.t.Fatal(err)
	}
	var keys []string
	for _, o := range page.Objects {
		keys = append(keys, o.Key)
	}
	return keys
}

func (e *purgeEnv) databaseExists(name string) bool {
	e.t.Helper()
	var n int
	if err := e.tenants.Server.QueryRow("SELECT COUNT(*) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = ?", name).Scan(&n); err != nil {
		e.t.Fatal(err)
	}
	return n > 0
}

// checkPurged checks that nothing of d is left but exactly one archive,
// complete and holding the rows d had, and returns its key.
func (e *purgeEnv) checkPurged(d *deletedTenant) string {
	e.t.Helper()
	if e.databaseExists(d.database) {
		e.t.Errorf("database %s still exists", d.database)
	}
	if keys := e.objectKeys(e.store.Prefix(d.code)); len(keys) > 0 {
		e.t.Errorf("objects left: %v", keys)
	}
	if d.dbUser != "" {
		var n int
		_ = e.tenants.Server.QueryRow("SELECT COUNT(*) FROM mysql.user WHERE User = ?", d.dbUser).Scan(&n)
		if n != 0 {
			e.t.Errorf("siloed user %s still exists", d.dbUser)
		}
	}
	if n := e.count("SELECT COUNT(*) FROM tenant_resource_cleanup WHERE tenant_id = ? AND status <> 'completed'", d.id); n != 0 {
		e.t.Errorf("%d cleanup rows not completed", n)
	}
	if n := e.count("SELECT COUNT(*) FROM tenants WHERE id = ? AND status = 'purged' AND purged_at IS NOT NULL", d.id); n != 1 {
		e.t.Errorf("tenant %s not purged", d.code)
	}
	if n := e.count("SELECT COUNT(*) FROM tenant_databases WHERE tenant_id = ? AND status = 'dropped' AND dropped_at IS NOT NULL", d.id); n != 1 {
		e.t.Errorf("tenant_databases of %s not dropped", d.code)
	}
	if n := e.count("SELECT COUNT(*) FROM tenant_storage_usage WHERE tenant_id = ?", d.id); n != 0 {
		e.t.Errorf("tenant %s keeps its storage usage after the purge", d.code)
	}
	if n := e.count("SELECT COUNT(*) FROM webhook_events WHERE tenant_id = ? AND event_type = 'tenant.purged'", d.id); n != 1 {
		e.t.Errorf("%d tenant.purged events, want 1", n)
	}
	objs := e.objectKeys("archives/" + d.code + "/")
	if n := e.count("SELECT COUNT(*) FROM tenant_archives WHERE tenant_id = ?", d.id); n != 1 || len(objs) != 1 {
		e.t.Fatalf("%d archive rows and objects %v, want exactly one", n, objs)
	}
	a, err := lifecycle.FindArchive(context.Background(), e.sys.DB, objs[0])
	if err != nil {
		e.t.Fatal(err)
	}
	if a.Status != "completed" || a.Size == 0 || len(a.Checksum) != 64 || a.SchemaVersion == 0 ||
		a.ExpiresAt.Sub(a.CreatedAt) != lifecycle.ArchiveRetention {
		e.t.Errorf("archive record %+v", a)
	}
	if !mapsEqual(a.RowCounts, d.counts) {
		e.t.Errorf("archived row counts %v, want %v", a.RowCounts, d.counts)
	}
	return a.Key
}

func mapsEqual[V comparable](a, b map[string]V) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

// A deleted tenant past its grace period is purged whole, its archive
// restores to an equal database, and a second run finds nothing to do.
func TestPurge(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newPurgeEnv(t)
	pooled := e.createDeleted("k001", "")
	siloed := e.createDeleted("k002", "enterprise")
	if siloed.dbUser == "" {
		t.Fatal("the enterprise tenant has no siloed user")
	}
	rep, err := lifecycle.Purge(ctx, e.options("run", e.now))
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(rep.Purged)
	if !slices.Equal(rep.Purged, []string{"k001", "k002"}) || rep.Completed != 5 || len(rep.Archives) != 2 || rep.Failed+rep.Retrying != 0 || rep.Stopped {
		t.Fatalf("report %+v", rep)
	}
	for _, d := range []*deletedTenant{pooled, siloed} {
		key := e.checkPurged(d)
		a, _ := lifecycle.FindArchive(ctx, e.sys.DB, key)
		body, _, err := e.store.Store.Get(ctx, key)
		if err != nil {
			t.Fatal(err)
		}
		var buf bytes.Buffer
		_, _ = buf.ReadFrom(body)
		body.Close()
		if int64(buf.Len()) != a.Size {
			t.Errorf("archive object has %d bytes, recorded %d", buf.Len(), a.Size)
		}

		server, err := lifecycle.OpenServer(ctx, e.sys.DB, e.sys.Box, clusterID(t, e.sys.DB))
		if err != nil {
			t.Fatal(err)
		}
		defer server.Close()
		into := e.tenants.Prefix + "restored_" + d.code
		counts, err := lifecycle.RestoreArchive(ctx, server, e.store.Store, key, into)
		if err != nil {
			t.Fatal(err)
		}
		if !mapsEqual(counts, d.counts) {
			t.Errorf("restored counts %v, want %v", counts, d.counts)
		}
		gotCounts, gotSums := tableState(t, e.tenants.Server, into)
		if !mapsEqual(gotCounts, d.counts) || !mapsEqual(gotSums, d.sums) {
			t.Errorf("restored tables differ:\n counts %v\n want   %v\n sums %v\n want %v", gotCounts, d.counts, gotSums, d.sums)
		}
		var v string
		if err := e.tenants.Server.QueryRow("SELECT config_value FROM `" + into + "`.tenant_config WHERE config_key = 'test.3'").Scan(&v); err != nil || v != "nul\x00byte" {
			t.Errorf("restored value %q (%v)", v, err)
		}
	}

	rep, err = lifecycle.Purge(ctx, e.options("run", e.now.Add(48*time.Hour)))
	if err != nil || rep.Completed+len(rep.Purged)+len(rep.Archives) != 0 {
		t.Fatalf("second run %+v, %v: want nothing done", rep, err)
	}
}

func clusterID(t testing.TB, sys *sql.DB) int64 {
	t.Helper()
	var id int64
	if err := sys.QueryRow("SELECT id FROM db_clusters WHERE name = 'default'").Scan(&id); err != nil {
		t.Fatal(err)
	}
	return id
}

var errCrash = errors.New("injected crash")

// A run that dies in the middle of any resource leaves its lease; once the
// lease has expired the next run finishes the purge with one archive, the
// one recorded (none lost, none written twice).
func TestPurgeResumesAfterACrash(t *testing.T) {
	t.Parallel()
	for _, step := range []string{"database:archived", "database:dropped", "db_user:dropped", "objects:page", "objects:removed"} {
		t.Run(strings.ReplaceAll(step, ":", "_"), func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			e := newPurgeEnv(t)
			d := e.createDeleted("k001", "enterprise")
			o := e.options("crashing", e.now)
			o.Crash = func(s string) error {
				if s == step {
					return errCrash
				}
				return nil
			}
			if _, err := lifecycle.Purge(ctx, o); !errors.Is(err, errCrash) {
				t.Fatalf("err = %v, want the crash", err)
			}
			if n := e.count("SELECT COUNT(*) FROM tenant_resource_cleanup WHERE tenant_id = ? AND status = 'in_progress'", d.id); n == 0 {
				t.Fatal("no row left in progress by the crashed run")
			}
			// While the lease holds, another run leaves the tenant alone.
			rep, err := lifecycle.Purge(ctx, e.options("early", e.now.Add(time.Minute)))
			if err != nil || rep.Completed != 0 {
				t.Fatalf("run during the lease: %+v, %v", rep, err)
			}
			later := e.now.Add(lifecycle.DefaultLeaseTTL + time.Minute)
			rep, err = lifecycle.Purge(ctx, e.options("rerun", later))
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(rep.Purged, []string{"k001"}) {
				t.Fatalf("rerun report %+v", rep)
			}
			// Every step is after the archive: it is kept, not redone.
			if len(rep.Archives) != 0 {
				t.Errorf("rerun wrote archives %v, want none", rep.Archives)
			}
			e.checkPurged(d)
		})
	}
}

// A resource that keeps failing is retried with backoff, and its third
// failure marks it failed and alerts; later resources of the tenant wait,
// and there is no fourth attempt.
func TestPurgeGivesUpAfterThreeFailures(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newPurgeEnv(t)
	d := e.createDeleted("k001", "")
	down, err := provisioning.EnsureCluster(ctx, e.sys.DB, e.sys.Box, "down", "root@tcp(127.0.0.1:1)/?timeout=1s", 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.sys.DB.Exec("UPDATE tenant_resource_cleanup SET cluster_id = ? WHERE tenant_id = ? AND resource_type = 'database'", down, d.id); err != nil {
		t.Fatal(err)
	}
	row := func() (status string, retries int, next sql.NullTime, alerted sql.NullTime) {
		t.Helper()
		if err := e.sys.DB.QueryRow(`SELECT status, retry_count, next_attempt_at, alerted_at FROM tenant_resource_cleanup
			WHERE tenant_id = ? AND resource_type = 'database'`, d.id).Scan(&status, &retries, &next, &alerted); err != nil {
			t.Fatal(err)
		}
		return
	}
	at := e.now
	for attempt := 1; attempt <= 3; attempt++ {
		rep, err := lifecycle.Purge(ctx, e.options("run", at))
		if err != nil {
			t.Fatal(err)
		}
		status, retries, next, alerted := row()
		if retries != attempt {
			t.Fatalf("attempt %d: retry_count %d", attempt, retries)
		}
		if attempt < 3 {
			wantNext := at.Add(lifecycle.DefaultBackoff << (attempt - 1))
			if status != "pending" || rep.Retrying != 1 || !next.Valid || !next.Time.Equal(wantNext) || alerted.Valid {
				t.Fatalf("attempt %d: %s next %v (want %v) alerted %v, report %+v", attempt, status, next.Time, wantNext, alerted, rep)
			}
			// Not before the backoff has passed.
			if rep, _ := lifecycle.Purge(ctx, e.options("run", next.Time.Add(-time.Minute))); rep.Retrying+rep.Failed != 0 {
				t.Fatalf("attempt %d retried before its backoff: %+v", attempt, rep)
			}
			at = next.Time
			continue
		}
		if status != "failed" || rep.Failed != 1 || !alerted.Valid {
			t.Fatalf("third failure: %s alerted %v, report %+v", status, alerted, rep)
		}
	}
	if n := e.count("SELECT COUNT(*) FROM webhook_events WHERE tenant_id = ? AND event_type = 'tenant.cleanup_failed'", d.id); n != 1 {
		t.Fatalf("%d tenant.cleanup_failed events, want 1", n)
	}
	rep, err := lifecycle.Purge(ctx, e.options("run", at.Add(1000*time.Hour)))
	if err != nil || rep.Retrying+rep.Failed+rep.Completed != 0 {
		t.Fatalf("run after the failure: %+v, %v", rep, err)
	}
	if _, retries, _, _ := row(); retries != 3 {
		t.Fatalf("a fourth attempt was made: retry_count %d", retries)
	}
	// The objects never went: the database was not archived.
	if n := e.count("SELECT COUNT(*) FROM tenant_resource_cleanup WHERE tenant_id = ? AND resource_type = 'objects' AND status = 'pending' AND retry_count = 0", d.id); n != 1 {
		t.Fatal("the objects row was touched")
	}
	if keys := e.objectKeys(e.store.Prefix(d.code)); len(keys) == 0 {
		t.Fatal("the objects were deleted before the database was archived")
	}
	if n := e.count("SELECT COUNT(*) FROM tenants WHERE id = ? AND status = 'deleted'", d.id); n != 1 {
		t.Fatal("the tenant is no longer deleted")
	}
}

// Runs at once share the work without ever doing one resource twice: each
// database is archived once, each tenant purged once.
func TestConcurrentPurgesNeverShareARow(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newPurgeEnv(t)
	const n = 4
	var ds []*deletedTenant
	for i := range n {
		ds = append(ds, e.createDeleted(fmt.Sprintf("k%03d", i+1), ""))
	}
	// A run out of budget starts nothing and leaves the rows due.
	o := e.options("broke", e.now)
	o.Budget = time.Nanosecond
	rep, err := lifecycle.Purge(ctx, o)
	if err != nil || !rep.Stopped || rep.Completed != 0 {
		t.Fatalf("run without budget: %+v, %v", rep, err)
	}
	if c := e.count("SELECT COUNT(*) FROM tenant_resource_cleanup WHERE status <> 'pending'"); c != 0 {
		t.Fatalf("%d rows touched by a run without budget", c)
	}

	var mu sync.Mutex
	steps := map[string]int{}
	var wg sync.WaitGroup
	reps := make([]lifecycle.Report, 3)
	errs := make([]error, 3)
	for i := range reps {
		wg.Add(1)
		go func() {
			defer wg.Done()
			o := e.options(fmt.Sprintf("run-%d", i), e.now)
			o.Parallel = 2
			o.Crash = func(s string) error { mu.Lock(); steps[s]++; mu.Unlock(); return nil }
			reps[i], errs[i] = lifecycle.Purge(ctx, o)
		}()
	}
	wg.Wait()
	var purged []string
	completed, archives := 0, 0
	for i := range reps {
		if errs[i] != nil {
			t.Fatal(errs[i])
		}
		purged = append(purged, reps[i].Purged...)
		completed += reps[i].Completed
		archives += len(reps[i].Archives)
	}
	slices.Sort(purged)
	if !slices.Equal(purged, []string{"k001", "k002", "k003", "k004"}) || completed != 2*n || archives != n {
		t.Fatalf("purged %v, %d resources completed, %d archives", purged, completed, archives)
	}
	if steps["database:archived"] != n || steps["database:dropped"] != n || steps["objects:removed"] != n {
		t.Fatalf("steps %v: a resource was done more than once", steps)
	}
	for _, d := range ds {
		e.checkPurged(d)
	}
}

// A restore wins: a tenant restored (rows cancelled) or back to active with
// its rows still pending is never touched.
func TestPurgeLeavesRestoredTenants(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newPurgeEnv(t)
	cancelled := e.createDeleted("k001", "")
	raced := e.createDeleted("k002", "")
	if _, err := e.sys.DB.Exec("UPDATE tenant_resource_cleanup SET status = 'cancelled' WHERE tenant_id = ?", cancelled.id); err != nil {
		t.Fatal(err)
	}
	if _, err := e.sys.DB.Exec("UPDATE tenants SET status = 'active', deleted_at = NULL, scheduled_deletion_at = NULL WHERE id IN (?, ?)", cancelled.id, raced.id); err != nil {
		t.Fatal(err)
	}
	rep, err := lifecycle.Purge(ctx, e.options("run", e.now.Add(1000*time.Hour)))
	if err != nil || rep.Completed+len(rep.Archives) != 0 {
		t.Fatalf("report %+v, %v", rep, err)
	}
	for _, d := range []*deletedTenant{cancelled, raced} {
		if !e.databaseExists(d.database) || len(e.objectKeys(e.store.Prefix(d.code))) == 0 {
			t.Errorf("tenant %s lost its database or objects", d.code)
		}
		if n := e.count("SELECT COUNT(*) FROM tenants WHERE id = ? AND status = 'active'", d.id); n != 1 {
			t.Errorf("tenant %s is no longer active", d.code)
		}
	}
	// Deleted again: the cancelled rows are scheduled anew and purged.
	e.softDelete(cancelled.id, e.now)
	rep, err = lifecycle.Purge(ctx, e.options("run", e.now))
	if err != nil || !slices.Equal(rep.Purged, []string{"k001"}) {
		t.Fatalf("after deleting again: %+v, %v", rep, err)
	}
	e.checkPurged(cancelled)
}

// Sweep cancels stale deletion requests, deletes expired archives and old
// temp objects, and nothing else.
func TestSweep(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newPurgeEnv(t)
	id, _, err := e.tenants.Create(t, "k001", 0)
	if err != nil {
		t.Fatal(err)
	}
	tn, _ := e.store.Tenant("k001")
	old := e.now.Add(-8 * 24 * time.Hour)
	for _, k := range []string{"temp/old.txt", "temp/new.txt", "temp/sub/old.txt", "uploads/files/old.txt"} {
		if err := tn.Put(ctx, k, strings.NewReader("x"), 1, ""); err != nil {
			t.Fatal(err)
		}
		if strings.Contains(k, "old") {
			age(t, e.dir, tn.Prefix()+k, old)
		}
	}
	age(t, e.dir, tn.Prefix()+"temp/.keep", old)
	for i, expires := range []time.Time{e.now.Add(-time.Hour), e.now.Add(time.Hour)} {
		key := fmt.Sprintf("archives/k001/2024010%dT000000Z.sql.gz", i)
		if err := e.store.Store.Put(ctx, key, strings.NewReader("a"), 1, ""); err != nil {
			t.Fatal(err)
		}
		if _, err := e.sys.DB.Exec(`INSERT INTO tenant_archives (tenant_id, tenant_code, database_name, object_key, status, expires_at)
			VALUES (?, 'k001', 'x', ?, 'completed', ?)`, id, key, expires); err != nil {
			t.Fatal(err)
		}
	}
	for i, expires := range []time.Time{e.now.Add(-time.Hour), e.now.Add(time.Hour)} {
		if _, err := e.sys.DB.Exec(`INSERT INTO tenant_deletion_requests (tenant_id, tenant_code, token_hash, expires_at)
			VALUES (?, 'k001', ?, ?)`, id, strings.Repeat(fmt.Sprint(i), 64), expires); err != nil {
			t.Fatal(err)
		}
	}
	rep, err := lifecycle.Sweep(ctx, e.options("sweep", e.now))
	if err != nil {
		t.Fatal(err)
	}
	if rep != (lifecycle.SweepReport{TempObjects: 2, ArchivesExpired: 1, RequestsCancelled: 1}) {
		t.Fatalf("report %+v", rep)
	}
	keys := e.objectKeys(tn.Prefix() + "temp/")
	if !slices.Equal(keys, []string{tn.Prefix() + "temp/.keep", tn.Prefix() + "temp/new.txt"}) {
		t.Errorf("temp keys left %v", keys)
	}
	if len(e.objectKeys(tn.Prefix()+"uploads/files/old.txt")) != 1 {
		t.Error("an old object outside temp/ was deleted")
	}
	if keys := e.objectKeys("archives/k001/"); !slices.Equal(keys, []string{"archives/k001/20240101T000000Z.sql.gz"}) {
		t.Errorf("archives left %v", keys)
	}
	if n := e.count("SELECT COUNT(*) FROM tenant_archives WHERE status = 'expired' AND deleted_at IS NOT NULL"); n != 1 {
		t.Errorf("%d archives marked expired", n)
	}
	if n := e.count("SELECT COUNT(*) FROM tenant_deletion_requests WHERE status = 'cancelled' AND cancelled_at IS NOT NULL AND expires_at < ?", e.now); n != 1 {
		t.Errorf("%d stale requests cancelled", n)
	}
	if n := e.count("SELECT COUNT(*) FROM tenant_deletion_requests WHERE status = 'pending'"); n != 1 {
		t.Errorf("%d requests pending, want the fresh one", n)
	}
}

// age sets the modification time of key in the local store under dir.
func age(t testing.TB, dir, key string, at time.Time) {
	t.Helper()
	if err := os.Chtimes(filepath.Join(dir, "data", key), at, at); err != nil {
		t.Fatal(err)
	}
}

// BenchmarkPurge measures cleanup-cron's throughput: benchTenants real
// tenants (cloned from the template, with their objects) deleted and
// purged in one run, archives included. Run with -benchtime 1x.
func BenchmarkPurge(b *testing.B) {
	const benchTenants = 6
	ctx := context.Background()
	e := newPurgeEnv(b)
	var total time.Duration
	purged := 0
	for i := range b.N {
		b.StopTimer()
		for j := range benchTenants {
			e.createDeleted(fmt.Sprintf("k%03d", i*benchTenants+j+1), "")
		}
		b.StartTimer()
		start := time.Now()
		rep, err := lifecycle.Purge(ctx, e.options("bench", e.now))
		total += time.Since(start)
		if err != nil || len(rep.Purged) != benchTenants || len(rep.Archives) != benchTenants {
			b.Fatalf("purge %+v, %v", rep, err)
		}
		purged += len(rep.Purged)
	}
	b.ReportMetric(float64(purged)/total.Minutes(), "tenants/min")
}

// A purge attempt that failed has begun the purge as much as one still
// running: its drop may have gone half way before the error (here a table
// referenced from another database stops DROP DATABASE after it dropped the
// others). Restore refuses the tenant, whose database is no longer whole,
// until the retries finish the purge.
func TestRestoreRefusedOnceAPurgeAttemptFailed(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newPurgeEnv(t)
	d := e.createDeleted("k001", "")
	server := e.tenants.Server
	reporting := e.tenants.Prefix + "reporting"
	if err := sqldb.CreateDatabase(ctx, server, reporting); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sqldb.DropDatabase(context.Background(), server, reporting) }) // before the tenant database goes
	if _, err := server.Exec("CREATE TABLE `" + reporting + "`.config_copy (id BIGINT UNSIGNED PRIMARY KEY, " +
		"FOREIGN KEY (id) REFERENCES `" + d.database + "`.tenant_config (id))"); err != nil {
		t.Fatal(err)
	}
	rep, err := lifecycle.Purge(ctx, e.options("run", e.now))
	if err != nil || rep.Retrying != 1 || rep.Completed != 0 {
		t.Fatalf("report %+v, %v: want the database row to fail once", rep, err)
	}
	if counts, _ := tableState(t, server, d.database); len(counts) >= len(d.counts) {
		t.Fatalf("tables left %d of %d: the drop did not go half way, the test proves nothing", len(counts), len(d.counts))
	}

	life := &lifecycle.Service{DB: e.sys.DB, Now: func() time.Time { return e.now }}
	_, err = life.Restore(ctx, d.code, lifecycle.Actor{Type: "admin", ID: 1, Name: "super_admin"})
	if fault.CodeOf(err) != "purge_started" {
		t.Fatalf("restore: err = %v, want purge_started", err)
	}
	if n := e.count("SELECT COUNT(*) FROM tenants WHERE id = ? AND status = 'deleted'", d.id); n != 1 {
		t.Fatal("the tenant was brought back with half its database")
	}
	if n := e.count("SELECT COUNT(*) FROM tenant_resource_cleanup WHERE tenant_id = ? AND status = 'cancelled'", d.id); n != 0 {
		t.Fatalf("%d cleanup rows cancelled", n)
	}
}

// A resource whose every attempt kills the run (a dump longer than the
// function timeout, an out-of-memory kill) is not taken up again forever in
// silence: each attempt a lease expired on counts as a failure, and the
// third marks it failed and alerts, as an attempt that returned an error
// would.
func TestPurgeAlertsOnAResourceThatKeepsCrashing(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newPurgeEnv(t)
	d := e.createDeleted("k001", "")
	at := e.now
	for run := 1; run <= 3; run++ {
		o := e.options(fmt.Sprintf("run-%d", run), at)
		o.Crash = func(s string) error {
			if s == "database:archived" {
				return errCrash
			}
			return nil
		}
		if _, err := lifecycle.Purge(ctx, o); !errors.Is(err, errCrash) {
			t.Fatalf("run %d: err = %v, want the crash", run, err)
		}
		at = at.Add(lifecycle.DefaultLeaseTTL + time.Minute)
	}
	rep, err := lifecycle.Purge(ctx, e.options("after", at))
	if err != nil {
		t.Fatal(err)
	}
	var status string
	var retries int
	var alerted sql.NullTime
	if err := e.sys.DB.QueryRow(`SELECT status, retry_count, alerted_at FROM tenant_resource_cleanup
		WHERE tenant_id = ? AND resource_type = 'database'`, d.id).Scan(&status, &retries, &alerted); err != nil {
		t.Fatal(err)
	}
	if status != "failed" || retries != 3 || !alerted.Valid || rep.Failed != 1 || rep.Completed != 0 {
		t.Fatalf("after three crashed attempts: %s, retry_count %d, alerted %v, report %+v", status, retries, alerted.Valid, rep)
	}
	if n := e.count("SELECT COUNT(*) FROM webhook_events WHERE tenant_id = ? AND event_type = 'tenant.cleanup_failed'", d.id); n != 1 {
		t.Fatalf("%d tenant.cleanup_failed events, want 1", n)
	}
	if !e.databaseExists(d.database) {
		t.Fatal("the database was dropped")
	}
}

// crashAfterWriting runs a purge at at that dies once d's archive object is
// written, before the archive is recorded complete (a function killed at its
// timeout), and returns the archive's key.
func (e *purgeEnv) crashAfterWriting(d *deletedTenant, owner string, at time.Time) string {
	e.t.Helper()
	o := e.options(owner, at)
	o.Crash = func(s string) error {
		if s == "database:written" {
			return errCrash
		}
		return nil
	}
	if _, err := lifecycle.Purge(context.Background(), o); !errors.Is(err, errCrash) {
		e.t.Fatalf("purge of %s: err = %v, want the crash", d.code, err)
	}
	var key string
	if err := e.sys.DB.QueryRow("SELECT a.object_key FROM tenant_archives a WHERE a.tenant_id = ? AND a.status = 'in_progress'", d.id).Scan(&key); err != nil {
		e.t.Fatalf("archive of %s: %v", d.code, err)
	}
	if len(e.objectKeys(key)) != 1 {
		e.t.Fatalf("archive %s was not written", key)
	}
	return key
}

// restoreByHand brings d back as a restore did before a started purge
// refused it (and as an operator still can): its cleanup rows cancelled, the
// tenant active again.
func (e *purgeEnv) restoreByHand(d *deletedTenant) {
	e.t.Helper()
	err := sqldb.InTx(context.Background(), e.sys.DB, func(tx *sql.Tx) error {
		if _, err := tx.Exec(`UPDATE tenant_resource_cleanup SET status = 'cancelled', lease_owner = NULL, lease_expires_at = NULL
			WHERE tenant_id = ? AND status <> 'completed'`, d.id); err != nil {
			return err
		}
		_, err := tx.Exec("UPDATE tenants SET status = 'active', previous_status = 'deleted', deleted_at = NULL, scheduled_deletion_at = NULL WHERE id = ?", d.id)
		return err
	})
	if err != nil {
		e.t.Fatal(err)
	}
}

func (e *purgeEnv) archiveStatus(key string) string {
	e.t.Helper()
	var status string
	if err := e.sys.DB.QueryRow("SELECT status FROM tenant_archives WHERE object_key = ?", key).Scan(&status); err != nil {
		e.t.Fatalf("archive %s: %v", key, err)
	}
	return status
}

// An archive a purge left in_progress whose tenant was then restored is no
// purge's any more: the sweep deletes its object and marks it expired, once,
// even when a sweep died half way through it. An archive a purge still needs
// (running, to be retried, or given up on and waiting for an operator) is
// never touched, and that purge then finishes with it.
func TestSweepDeletesArchivesAbandonedByARestore(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newPurgeEnv(t)
	t0 := e.now
	later := func(n int) time.Time { return t0.Add(time.Duration(n) * (lifecycle.DefaultLeaseTTL + time.Minute)) }

	// k004's purge died after writing three times and was given up on.
	failed := e.createDeleted("k004", "")
	failedKey := e.crashAfterWriting(failed, "run-1", later(0))
	e.crashAfterWriting(failed, "run-2", later(1))
	e.crashAfterWriting(failed, "run-3", later(2))
	if rep, err := lifecycle.Purge(ctx, e.options("run-4", later(3))); err != nil || rep.Failed != 1 {
		t.Fatalf("fourth run: %+v, %v; want k004 given up on", rep, err)
	}
	// k001's purge died after writing, then the tenant was restored.
	restored := e.createDeleted("k001", "")
	restoredKey := e.crashAfterWriting(restored, "run-k001", t0)
	e.restoreByHand(restored)
	// k002's purge died after writing and holds its lease: it is running.
	live := e.createDeleted("k002", "")
	liveKey := e.crashAfterWriting(live, "run-k002", t0)
	// k003 the same as k001, then deleted again: due for a purge of its own,
	// which makes a new archive.
	again := e.createDeleted("k003", "")
	againKey := e.crashAfterWriting(again, "run-k003", t0)
	e.restoreByHand(again)
	e.softDelete(again.id, t0.Add(-time.Hour))

	// A sweep dies after deleting the first abandoned archive's object.
	o := e.options("sweep", t0)
	o.Crash = func(s string) error {
		if s == "archive:deleted" {
			return errCrash
		}
		return nil
	}
	if _, err := lifecycle.Sweep(ctx, o); !errors.Is(err, errCrash) {
		t.Fatalf("sweep: err = %v, want the crash", err)
	}
	rep, err := lifecycle.Sweep(ctx, e.options("sweep", t0))
	if err != nil || rep.ArchivesAbandoned != 2 || rep.ArchivesExpired != 0 {
		t.Fatalf("sweep: %+v, %v; want the two abandoned archives deleted", rep, err)
	}
	for _, key := range []string{restoredKey, againKey} {
		if s := e.archiveStatus(key); s != "expired" || len(e.objectKeys(key)) != 0 {
			t.Errorf("abandoned archive %s is %s, objects %v: want expired, deleted", key, s, e.objectKeys(key))
		}
	}
	if n := e.count("SELECT COUNT(*) FROM tenant_archives WHERE status = 'expired' AND deleted_at IS NULL"); n != 0 {
		t.Errorf("%d expired archives without deleted_at", n)
	}
	for _, key := range []string{failedKey, liveKey} {
		if s := e.archiveStatus(key); s != "in_progress" || len(e.objectKeys(key)) != 1 {
			t.Errorf("archive %s a purge still needs is %s, objects %v: want untouched", key, s, e.objectKeys(key))
		}
	}
	if !e.databaseExists(restored.database) || e.count("SELECT COUNT(*) FROM tenants WHERE id = ? AND status = 'active'", restored.id) != 1 {
		t.Error("the restored tenant lost its database or its status")
	}
	if rep, err := lifecycle.Sweep(ctx, e.options("sweep", t0.Add(time.Hour))); err != nil || rep.ArchivesAbandoned != 0 {
		t.Fatalf("second sweep: %+v, %v; want nothing done", rep, err)
	}

	// Once k002's lease has expired its purge finishes with its archive, and
	// k003's purge makes its own.
	prep, err := lifecycle.Purge(ctx, e.options("rerun", later(1)))
	slices.Sort(prep.Purged)
	if err != nil || !slices.Equal(prep.Purged, []string{"k002", "k003"}) {
		t.Fatalf("purge: %+v, %v", prep, err)
	}
	if key := e.checkPurged(live); key != liveKey {
		t.Errorf("k002 purged with archive %s, want %s", key, liveKey)
	}
	var newKey string
	if err := e.sys.DB.QueryRow("SELECT object_key FROM tenant_archives WHERE tenant_id = ? AND status = 'completed'", again.id).Scan(&newKey); err != nil {
		t.Fatal(err)
	}
	if keys := e.objectKeys("archives/k003/"); !slices.Equal(keys, []string{newKey}) || newKey == againKey {
		t.Errorf("k003's archives %v, want only the new %s", keys, newKey)
	}
	if s := e.archiveStatus(failedKey); s != "in_progress" || len(e.objectKeys(failedKey)) != 1 {
		t.Errorf("k004's archive is %s: want untouched", s)
	}
}

// A run still writing an archive when its tenant was restored and the sweep
// took the archive for abandoned neither records it complete nor drops the
// restored tenant's database on the strength of it, and leaves no object.
func TestPurgeStillWritingAnAbandonedArchiveKeepsNothing(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newPurgeEnv(t)
	d := e.createDeleted("k001", "")
	var key string
	o := e.options("slow", e.now)
	o.Crash = func(s string) error {
		if s != "database:written" {
			return nil
		}
		if err := e.sys.DB.QueryRow("SELECT object_key FROM tenant_archives WHERE tenant_id = ?", d.id).Scan(&key); err != nil {
			t.Error(err)
		}
		e.restoreByHand(d)
		if rep, err := lifecycle.Sweep(ctx, e.options("sweep", e.now)); err != nil || rep.ArchivesAbandoned != 1 {
			t.Errorf("sweep while the archive is written: %+v, %v", rep, err)
		}
		return nil
	}
	rep, err := lifecycle.Purge(ctx, o)
	if err != nil || rep.Completed != 0 || len(rep.Archives) != 0 {
		t.Fatalf("purge: %+v, %v; want nothing done", rep, err)
	}
	if s := e.archiveStatus(key); s != "expired" || len(e.objectKeys("archives/")) != 0 {
		t.Errorf("archive %s is %s, objects %v: want expired and none", key, s, e.objectKeys("archives/"))
	}
	if !e.databaseExists(d.database) || len(e.objectKeys(e.store.Prefix(d.code))) == 0 {
		t.Error("the restored tenant lost its database or objects")
	}
}
