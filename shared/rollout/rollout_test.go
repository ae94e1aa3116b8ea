package rollout_test

import (
	"context"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/unitenant/unitenant/shared/provisioning"
	"github.com/unitenant/unitenant/shared/rollout"
)

// The must-show: 100 tenant databases, one with a hand-made table that makes
// the new migration's CREATE TABLE fail. The 99 others reach the new
// version, the failure is reported with its error, and a rerun after the
// fix completes without touching the 99 again.
func TestRollout100TenantsOneFails(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newFixture(t)
	ms1, ms2 := upTo2(t, "tags", "CREATE TABLE tags (id INT PRIMARY KEY, name VARCHAR(50) NOT NULL);\nALTER TABLE notes ADD COLUMN tag_id INT NULL;\n")
	tenants := f.tenants(t, 100, ms1, false)
	broken := tenants[50]
	if _, err := f.server.Exec("CREATE TABLE `" + broken.database + "`.tags (hand_made INT)"); err != nil {
		t.Fatal(err)
	}

	rep, err := rollout.Run(ctx, f.options(ms2))
	if err != nil {
		t.Fatal(err)
	}
	if rep.Status != rollout.StatusFailed || rep.Stopped != "" || rep.Succeeded != 99 || len(rep.Failures) != 1 || rep.Behind != 100 {
		t.Fatalf("first run: %+v", rep)
	}
	fail := rep.Failures[0]
	if fail.Code != broken.code || fail.Version != 2 || !strings.Contains(fail.Error, "0002_tags.sql") || !strings.Contains(fail.Error, "already exists") {
		t.Errorf("failure = %+v, want %s at version 2 with the CREATE TABLE error", fail, broken.code)
	}
	if got := waveSizes(rep); got != "1,10,89" {
		t.Errorf("waves %s, want 1,10,89", got)
	}
	if len(rep.Templates) != 1 || rep.Templates[0].To != 2 {
		t.Errorf("templates %+v, want the template at 2 first", rep.Templates)
	}
	if rep.TenantConnections != 100 {
		t.Errorf("tenant connections %d, want 100", rep.TenantConnections)
	}
	for _, tn := range tenants {
		want := 2
		if tn == broken {
			want = 1
		}
		if got := f.version(t, tn.database); got != want {
			t.Errorf("%s at version %d, want %d", tn.code, got, want)
		}
	}
	if f.mirrored(t, 2) != 99 || f.mirrored(t, 1) != 1 {
		t.Errorf("mirror: %d at 2, %d at 1; want 99 and 1", f.mirrored(t, 2), f.mirrored(t, 1))
	}
	var status, lastErr string
	var attempts int
	if err := f.sys.QueryRow("SELECT status, attempts, last_error FROM tenant_schema_migrations WHERE tenant_id = ? AND version = 2", broken.id).
		Scan(&status, &attempts, &lastErr); err != nil || status != "failed" || attempts != 1 || !strings.Contains(lastErr, "already exists") {
		t.Errorf("ledger of %s: %s, %d attempts, %q (%v)", broken.code, status, attempts, lastErr, err)
	}
	fleet, err := rollout.Status(ctx, f.sys, ms2)
	if err != nil {
		t.Fatal(err)
	}
	if fleet.Behind != 1 || len(fleet.Versions) != 2 || fleet.Versions[1].Tenants != 99 || len(fleet.Failures) != 1 || fleet.Failures[0].Code != broken.code {
		t.Errorf("status %+v", fleet)
	}
	if fleet.LastRollout == nil || fleet.LastRollout.Status != rollout.StatusFailed || fleet.LastRollout.Succeeded != 99 || fleet.LastRollout.Failed != 1 {
		t.Errorf("last roll-out %+v", fleet.LastRollout)
	}

	// The fix, then a rerun: only the broken tenant is connected to.
	if _, err := f.server.Exec("DROP TABLE `" + broken.database + "`.tags"); err != nil {
		t.Fatal(err)
	}
	rep, err = rollout.Run(ctx, f.options(ms2))
	if err != nil {
		t.Fatal(err)
	}
	if rep.Status != rollout.StatusCompleted || rep.Succeeded != 1 || rep.UpToDate != 99 || len(rep.Failures) != 0 || rep.TenantConnections != 1 {
		t.Fatalf("rerun: %+v", rep)
	}
	if f.version(t, broken.database) != 2 || f.mirrored(t, 2) != 100 {
		t.Errorf("after the rerun: %s at %d, %d mirrored at 2", broken.code, f.version(t, broken.database), f.mirrored(t, 2))
	}
	if err := f.sys.QueryRow("SELECT status, attempts FROM tenant_schema_migrations WHERE tenant_id = ? AND version = 2", broken.id).
		Scan(&status, &attempts); err != nil || status != "applied" || attempts != 2 {
		t.Errorf("ledger of %s after the fix: %s, %d attempts (%v)", broken.code, status, attempts, err)
	}
	if fleet, err = rollout.Status(ctx, f.sys, ms2); err != nil || fleet.Behind != 0 || len(fleet.Failures) != 0 {
		t.Errorf("status after the fix: %+v (%v)", fleet, err)
	}

	// Nothing left: no roll-out, no tenant connection.
	rep, err = rollout.Run(ctx, f.options(ms2))
	if err != nil || rep.Status != rollout.StatusUpToDate || rep.TenantConnections != 0 || rep.RolloutID != 0 {
		t.Fatalf("third run: %+v (%v)", rep, err)
	}
}

// The must-show: a roll-out killed half-way and run again finishes, and no
// migration ran twice: the migration inserts rows into a table without a
// key, and every tenant has each row exactly once. The kill is both kinds at
// once: the context is cancelled when the 15th tenant starts (a shutdown:
// tenants in flight finish, no new one starts), and tenants 10 to 15 "crash"
// right after their database was migrated, before anything was recorded.
func TestRolloutKilledHalfWayResumes(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newFixture(t)
	// Not idempotent on purpose: a statement run twice shows as a second
	// row (marks has no key).
	ms1, ms2 := upTo2(t, "marks", "INSERT INTO marks (n) VALUES (1);\n"+
		"CREATE TABLE archive (id INT PRIMARY KEY);\n"+
		"INSERT INTO marks (n) VALUES (2);\n")
	tenants := f.tenants(t, 40, ms1, false)

	kill, cancel := context.WithCancel(ctx)
	defer cancel()
	var mu sync.Mutex
	order := map[int64]int{}
	o := f.options(ms2)
	rollout.SetBeforeTenant(&o, func(id int64) {
		mu.Lock()
		defer mu.Unlock()
		order[id] = len(order) + 1
		if len(order) == 15 {
			cancel()
		}
	})
	crashed := map[int64]bool{}
	rollout.SetCrashAfterMigrate(&o, func(id int64) bool {
		mu.Lock()
		defer mu.Unlock()
		crashed[id] = order[id] >= 10
		return crashed[id]
	})
	first, err := rollout.Run(kill, o)
	if err != nil {
		t.Fatal(err)
	}
	if first.Status != rollout.StatusPaused || first.Succeeded != 9 || len(order) != 15 {
		t.Fatalf("killed run: %+v, %d started; want paused, 9 recorded, 15 started", first, len(order))
	}
	for _, tn := range tenants {
		if crashed[tn.id] && f.version(t, tn.database) != 2 {
			t.Fatalf("%s crashed before its migration ran: the test proves nothing", tn.code)
		}
	}

	rep, err := rollout.Run(ctx, f.options(ms2))
	if err != nil {
		t.Fatal(err)
	}
	if rep.Status != rollout.StatusCompleted || !rep.Resumed || rep.RolloutID != first.RolloutID || len(rep.Failures) != 0 {
		t.Fatalf("rerun: %+v", rep)
	}
	if rep.UpToDate != 9 || rep.Behind != 31 || rep.Succeeded != 31 {
		t.Errorf("rerun: %d up to date, %d behind, %d succeeded; want 9, 31, 31", rep.UpToDate, rep.Behind, rep.Succeeded)
	}
	for _, tn := range tenants {
		var one, two, archive int
		err := f.server.QueryRow("SELECT COALESCE(SUM(n = 1), 0), COALESCE(SUM(n = 2), 0), (SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? AND TABLE_NAME = 'archive') FROM `"+tn.database+"`.marks", tn.database).
			Scan(&one, &two, &archive)
		if err != nil || one != 1 || two != 1 || archive != 1 {
			t.Errorf("%s: mark 1 ×%d, mark 2 ×%d, archive %d (%v); want each once", tn.code, one, two, archive, err)
		}
		if v := f.version(t, tn.database); v != 2 {
			t.Errorf("%s at version %d, want 2", tn.code, v)
		}
	}
	if f.mirrored(t, 2) != 40 {
		t.Errorf("%d mirrored at 2, want 40", f.mirrored(t, 2))
	}
	var status string
	var succeeded, running int
	if err := f.sys.QueryRow("SELECT status, succeeded_count FROM schema_rollouts WHERE id = ?", rep.RolloutID).Scan(&status, &succeeded); err != nil ||
		status != rollout.StatusCompleted || succeeded != 40 {
		t.Errorf("roll-out row: %s, %d succeeded (%v); want completed, 40", status, succeeded, err)
	}
	if err := f.sys.QueryRow("SELECT COUNT(*) FROM tenant_schema_migrations WHERE status <> 'applied'").Scan(&running); err != nil || running != 0 {
		t.Errorf("%d ledger rows not applied (%v)", running, err)
	}
}

// A failing canary stops the roll-out before anyone else is touched, and is
// not the canary next time; failures over the budget stop it too, leaving
// the rest untouched.
func TestRolloutStops(t *testing.T) {
	t.Parallel()
	ms1, ms2 := upTo2(t, "tags", tagsSQL)
	breakTenant := func(t *testing.T, f *fixture, tn tenant) {
		t.Helper()
		if _, err := f.server.Exec("CREATE TABLE `" + tn.database + "`.tags (hand_made INT)"); err != nil {
			t.Fatal(err)
		}
	}

	t.Run("CanaryFails", func(t *testing.T) {
		t.Parallel()
		ctx := context.Background()
		f := newFixture(t)
		tenants := f.tenants(t, 12, ms1, false)
		breakTenant(t, f, tenants[0])
		rep, err := rollout.Run(ctx, f.options(ms2))
		if err != nil {
			t.Fatal(err)
		}
		if rep.Status != rollout.StatusFailed || !strings.Contains(rep.Stopped, "first wave") || len(rep.Failures) != 1 || rep.Succeeded != 0 || rep.TenantConnections != 1 {
			t.Fatalf("report %+v", rep)
		}
		if f.mirrored(t, 1) != 12 {
			t.Errorf("%d tenants at 1, want all 12 untouched", f.mirrored(t, 1))
		}
		// Next time the broken tenant goes last: a healthy canary passes
		// and the others go on; the broken one fails within the budget.
		rep, err = rollout.Run(ctx, f.options(ms2))
		if err != nil {
			t.Fatal(err)
		}
		if rep.Stopped != "" || rep.Succeeded != 11 || len(rep.Failures) != 1 || rep.Failures[0].Code != tenants[0].code || rep.Failures[0].Attempts != 2 {
			t.Fatalf("second run %+v", rep)
		}
	})

	t.Run("BudgetExceeded", func(t *testing.T) {
		t.Parallel()
		ctx := context.Background()
		f := newFixture(t)
		tenants := f.tenants(t, 30, ms1, false)
		for _, i := range []int{2, 3, 4, 5} {
			breakTenant(t, f, tenants[i])
		}
		o := f.options(ms2)
		o.Concurrency, o.FailureBudget = 1, 2
		rep, err := rollout.Run(ctx, o)
		if err != nil {
			t.Fatal(err)
		}
		if rep.Status != rollout.StatusFailed || !strings.Contains(rep.Stopped, "failure budget of 2") || len(rep.Failures) != 3 {
			t.Fatalf("report %+v", rep)
		}
		// Tried: the canary t0, wave 2 (t1 ok, t2 and t3 failed: at the
		// budget), then t4 in wave 3, the failure too many. The 25 others
		// were not touched, not even in the ledger.
		if f.mirrored(t, 1) != 28 || rep.TenantConnections != 5 {
			t.Errorf("%d at 1 (want 28), %d connections (want 5)", f.mirrored(t, 1), rep.TenantConnections)
		}
		var ledger int
		if err := f.sys.QueryRow("SELECT COUNT(*) FROM tenant_schema_migrations").Scan(&ledger); err != nil || ledger != 5 {
			t.Errorf("ledger rows %d (%v), want 5", ledger, err)
		}
	})
}

// A roll-out out of time starts no tenant and pauses; the next run resumes
// the same roll-out.
func TestRolloutDeadlinePauses(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newFixture(t)
	ms1, ms2 := upTo2(t, "tags", tagsSQL)
	f.tenants(t, 5, ms1, false)
	o := f.options(ms2)
	o.Deadline = time.Now()
	rep, err := rollout.Run(ctx, o)
	if err != nil || rep.Status != rollout.StatusPaused || rep.TenantConnections != 0 || rep.RolloutID == 0 {
		t.Fatalf("out of time: %+v (%v)", rep, err)
	}
	again, err := rollout.Run(ctx, f.options(ms2))
	if err != nil || again.Status != rollout.StatusCompleted || !again.Resumed || again.RolloutID != rep.RolloutID || again.Succeeded != 5 {
		t.Fatalf("resumed: %+v (%v)", again, err)
	}
}

// Two roll-outs never run at once: the second finds the first and leaves.
func TestRolloutIsExclusive(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newFixture(t)
	ms1, ms2 := upTo2(t, "tags", tagsSQL)
	f.tenants(t, 2, ms1, false)
	var second rollout.Report
	var secondErr error
	o := f.options(ms2)
	rollout.SetBeforeTenant(&o, func(int64) {
		if second.Status == "" {
			second, secondErr = rollout.Run(ctx, f.options(ms2))
		}
	})
	rep, err := rollout.Run(ctx, o)
	if err != nil || rep.Status != rollout.StatusCompleted {
		t.Fatalf("first: %+v (%v)", rep, err)
	}
	if secondErr != nil || second.Status != rollout.StatusBusy || second.TenantConnections != 0 {
		t.Fatalf("second while the first ran: %+v (%v), want busy", second, secondErr)
	}
}

func waveSizes(rep rollout.Report) string {
	var parts []string
	for _, w := range rep.Waves {
		parts = append(parts, strconv.Itoa(w.Tenants))
	}
	return strings.Join(parts, ",")
}

// A cluster whose template cannot be migrated holds its tenants back (never
// a tenant ahead of its template); the other clusters go on.
func TestRolloutHoldsTenantsOfAFailedTemplate(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newFixture(t)
	ms1, ms2 := upTo2(t, "tags", tagsSQL)
	tenants := f.tenants(t, 3, ms1, false)
	down, err := provisioning.EnsureCluster(ctx, f.sys, f.box, "down", "root@tcp(127.0.0.1:1)/?timeout=1s", 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.sys.Exec("UPDATE tenant_databases SET cluster_id = ? WHERE tenant_id = ?", down, tenants[2].id); err != nil {
		t.Fatal(err)
	}
	rep, err := rollout.Run(ctx, f.options(ms2))
	if err != nil {
		t.Fatal(err)
	}
	if rep.Succeeded != 2 || rep.Held != 1 || rep.Behind != 2 || len(rep.Templates) != 2 || rep.Templates[1].Error == "" {
		t.Fatalf("report %+v", rep)
	}
	if err := rep.Err(); err == nil || !strings.Contains(err.Error(), "template") {
		t.Fatalf("Err() = %v, want the template failure", err)
	}
	if f.mirrored(t, 1) != 1 || rep.TenantConnections != 2 {
		t.Errorf("%d at 1 (want the held one), %d connections (want 2)", f.mirrored(t, 1), rep.TenantConnections)
	}
}

const tagsSQL = "CREATE TABLE tags (id INT PRIMARY KEY);\n"
