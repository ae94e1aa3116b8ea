package budget_test

import (
	"context"
	"database/sql"
	"reflect"
	"strconv"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/unitenant/unitenant/shared/budget"
	"github.com/unitenant/unitenant/shared/logging"
	"github.com/unitenant/unitenant/shared/provisioning"
	"github.com/unitenant/unitenant/shared/sqldb"
	"github.com/unitenant/unitenant/shared/sqldb/sqldbtest"
)

// lockWait is the innodb_lock_wait_timeout of the pools Reconcile runs on in
// these tests, in seconds: short, so that a Reconcile that waits for a lock
// fails the test in seconds rather than in the server's default 50.
const lockWait = 5

// openImpatient returns a migrated system database of the test's own, and a
// second pool on it whose sessions wait at most lockWait seconds for a row
// lock.
func openImpatient(tb testing.TB) (db, impatient *sql.DB) {
	tb.Helper()
	db, dsn := sqldbtest.NewDatabase(tb)
	if _, err := provisioning.MigrateSystem(context.Background(), db, logging.Discard()); err != nil {
		tb.Fatal(err)
	}
	mc, err := mysql.ParseDSN(dsn)
	if err != nil {
		tb.Fatal(err)
	}
	if mc.Params == nil {
		mc.Params = map[string]string{}
	}
	mc.Params["innodb_lock_wait_timeout"] = strconv.Itoa(lockWait) // the driver sets it on every session
	impatient, err = sqldb.OpenDSN(mc.FormatDSN())
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { impatient.Close() })
	return db, impatient
}

// holdLock begins a transaction that locks the rows query selects and keeps
// them until release (also called at the end of the test), as a stuck
// transaction would.
func holdLock(t *testing.T, db *sql.DB, query string, args ...any) (release func()) {
	t.Helper()
	tx, err := db.Begin()
	if err != nil {
		t.Fatal(err)
	}
	rows, err := tx.Query(query, args...)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for rows.Next() {
		n++
	}
	if err := rows.Close(); err != nil || n != 1 {
		t.Fatalf("locked %d rows (%v), want 1", n, err)
	}
	done := false
	release = func() {
		if !done {
			done = true
			_ = tx.Rollback()
		}
	}
	t.Cleanup(release)
	return release
}

// TestReconcileSkipsLockedRows: a reservation whose row, or whose tenant's
// account, another transaction holds (a stuck one: it never lets go while
// Reconcile runs) neither stalls nor fails the run. The run closes every
// other expired reservation at once, reports the held ones as locked and
// leaves them open; the first run after the lock is released closes them,
// each exactly once.
func TestReconcileSkipsLockedRows(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	for _, tc := range []struct {
		name  string
		table string // of the held row
		lock  string // locks the held reservation's row, or its tenant's account (parameter: the tenant)
	}{
		{"ReservationRow", "ai_budget_reservations", "SELECT id FROM ai_budget_reservations WHERE request_id = 'held' AND tenant_id = ? FOR UPDATE"},
		{"AccountRow", "tenant_accounts", "SELECT id FROM tenant_accounts WHERE tenant_id = ? FOR UPDATE"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			db, impatient := openImpatient(t)
			held, other := newTenant(t, db, "10", "0"), newTenant(t, db, "10", "0")
			var expiry time.Time
			// The held reservations come first in id order: the ones
			// after them must still be closed in the same run. The
			// held tenant has a second reservation too: with its
			// account held, it waits as well; with only the first
			// reservation's row held, it is closed.
			for _, r := range []struct {
				tenant  int64
				request string
				cost    string // its call log's; "" for none
			}{{held, "held", "0.25"}, {held, "held-2", ""}, {other, "other-1", "0.5"}, {other, "other-2", ""}} {
				res, err := budget.Reserve(ctx, db, r.tenant, r.request, amt("1"), time.Minute)
				if err != nil {
					t.Fatal(err)
				}
				expiry = res.ExpiresAt
				if r.cost != "" {
					insertCallLog(t, db, r.tenant, r.request, 1, "success", r.cost)
				}
			}
			release := holdLock(t, db, tc.lock, held)

			runCtx, cancel := context.WithTimeout(ctx, 3*lockWait*time.Second)
			defer cancel()
			start := time.Now()
			rep, err := budget.Reconcile(runCtx, impatient, expiry.Add(time.Second))
			took := time.Since(start)
			if err != nil {
				t.Fatalf("reconcile with a row locked: %v (after %s)", err, took)
			}
			t.Logf("reconciled in %s with a row locked", took)
			if took > lockWait*time.Second/2 {
				t.Errorf("reconcile took %s with a row locked, want well under the lock wait timeout (%ds)", took, lockWait)
			}
			status := func(request string) string {
				t.Helper()
				var s string
				if err := db.QueryRow("SELECT status FROM ai_budget_reservations WHERE request_id = ?", request).Scan(&s); err != nil {
					t.Fatal(err)
				}
				return s
			}
			wantOpen := map[string]bool{"held": true, "held-2": tc.table == "tenant_accounts"}
			for _, id := range []string{"held", "held-2", "other-1", "other-2"} {
				if got := status(id); (got == "reserved") != wantOpen[id] {
					t.Errorf("%s is %s after the run, want it open: %v", id, got, wantOpen[id])
				}
			}
			if a := account(t, db, other); a.Balance != amt("9.5") || a.Reserved != 0 {
				t.Errorf("the other tenant's account %+v, want 0.5 charged and nothing held", a)
			}
			want := budget.ReconcileReport{Settled: 1, Expired: 1, Locked: 1, Charged: total("0.5"),
				LockedRows: []budget.LockedRow{{RequestID: "held", TenantID: held, Table: tc.table}}}
			if tc.table == "tenant_accounts" {
				// The tenant's second reservation is left untried.
				want.Locked = 2
				want.LockedRows = append(want.LockedRows, budget.LockedRow{RequestID: "held-2", TenantID: held, Table: tc.table})
			} else {
				want.Expired++ // the held reservation's tenant's other one
			}
			if !reflect.DeepEqual(rep, want) {
				t.Errorf("reconcile with a row locked: %+v\nwant %+v", rep, want)
			}
			first := rep

			// Released, the held reservations are closed by the next run.
			release()
			rep, err = budget.Reconcile(ctx, impatient, expiry.Add(time.Hour))
			if err != nil {
				t.Fatalf("reconcile after the release: %v", err)
			}
			if got, want := first.Settled+first.Expired+rep.Settled+rep.Expired, 4; got != want || rep.Locked != 0 {
				t.Errorf("closed %d (%+v, then %+v), want %d and none locked", got, first, rep, want)
			}
			for _, id := range []string{"held", "held-2"} {
				if got := status(id); got == "reserved" {
					t.Errorf("%s still open after the lock was released", id)
				}
			}
			if a := account(t, db, held); a.Balance != amt("9.75") || a.Reserved != 0 {
				t.Errorf("the held tenant's account %+v, want 0.25 charged once and nothing held", a)
			}
			if again, err := budget.Reconcile(ctx, impatient, expiry.Add(time.Hour)); err != nil || !reflect.DeepEqual(again, budget.ReconcileReport{}) {
				t.Errorf("a third run: %+v, %v; want nothing left", again, err)
			}
		})
	}
}
