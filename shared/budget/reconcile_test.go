package budget_test

import (
	"context"
	"database/sql"
	"fmt"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/unitenant/unitenant/shared/budget"
)

// TestReconcileOrphaned: a reservation whose tenant's account was deleted
// (the provisioning abort path deletes the tenant and its account) can be
// neither charged nor released. Reconcile closes it as orphaned, moving no
// money, reports it with what its call logs recorded, and goes on with the
// reservations after it in the same run; a rerun, or a late Settle or
// Release, changes nothing.
func TestReconcileOrphaned(t *testing.T) {
	t.Parallel()
	db := mustOpenSystem(t)
	ctx := context.Background()
	abort := func(t *testing.T, tenant int64) {
		t.Helper()
		for _, q := range []string{"DELETE FROM tenant_accounts WHERE tenant_id = ?", "DELETE FROM tenants WHERE id = ?"} {
			if _, err := db.Exec(q, tenant); err != nil {
				t.Fatal(err)
			}
		}
	}
	reserve := func(t *testing.T, tenant int64, requestID string, amount budget.Amount) budget.Reservation {
		t.Helper()
		r, err := budget.Reserve(ctx, db, tenant, requestID, amount, time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	// These subtests share the database and Reconcile sweeps all of it, so
	// they run one after the other.

	t.Run("OK", func(t *testing.T) {
		gone, kept := newTenant(t, db, "5", "0"), newTenant(t, db, "5", "0")
		// The orphans come first in id order: the healthy one after them
		// must still be reconciled in the same run.
		reserve(t, gone, "orphan-logged", amt("1"))
		insertCallLog(t, db, gone, "orphan-logged", 1, "error", "0")
		insertCallLog(t, db, gone, "orphan-logged", 2, "success", "0.4")
		reserve(t, gone, "orphan-nolog", amt("0.5"))
		insertCallLog(t, db, gone, "orphan-nolog", 1, "pending", "0")
		r := reserve(t, kept, "kept", amt("1"))
		insertCallLog(t, db, kept, "kept", 1, "success", "0.25")
		abort(t, gone)

		rep, err := budget.Reconcile(ctx, db, r.ExpiresAt.Add(time.Second))
		if err != nil {
			t.Fatalf("reconcile: %v", err)
		}
		want := budget.ReconcileReport{Settled: 1, Orphaned: 2, Charged: total("0.25"), Uncharged: total("0.4"), Orphans: []budget.Orphan{
			{RequestID: "orphan-logged", TenantID: gone, Reserved: amt("1"), Uncharged: total("0.4")},
			{RequestID: "orphan-nolog", TenantID: gone, Reserved: amt("0.5")},
		}}
		if !reflect.DeepEqual(rep, want) {
			t.Fatalf("reconcile: %+v\nwant %+v", rep, want)
		}
		for _, id := range []string{"orphan-logged", "orphan-nolog"} {
			var (
				status            string
				settled, closedAt sql.NullString
			)
			if err := db.QueryRow("SELECT status, settled_amount, settled_at FROM ai_budget_reservations WHERE request_id = ?", id).Scan(&status, &settled, &closedAt); err != nil ||
				status != string(budget.StatusOrphaned) || settled.Valid || !closedAt.Valid {
				t.Errorf("%s: status %s, settled %v, closed at %v (%v); want orphaned, nothing charged, a close time", id, status, settled, closedAt, err)
			}
		}
		if a := account(t, db, kept); a.Balance != amt("4.75") || a.Reserved != 0 {
			t.Errorf("the other tenant's account %+v, want 0.25 charged, nothing held", a)
		}

		if again, err := budget.Reconcile(ctx, db, r.ExpiresAt.Add(time.Hour)); err != nil || !reflect.DeepEqual(again, budget.ReconcileReport{}) {
			t.Fatalf("second run: %+v, %v; want nothing (idempotent)", again, err)
		}
		if s, err := budget.Settle(ctx, db, "orphan-logged", amt("0.4")); err != nil || s.Applied || s.Status != budget.StatusOrphaned || s.Charged != 0 {
			t.Errorf("late settle: %+v, %v; want nothing moved", s, err)
		}
		if s, err := budget.Release(ctx, db, "orphan-nolog"); err != nil || s.Applied || s.Status != budget.StatusOrphaned {
			t.Errorf("late release: %+v, %v; want nothing moved", s, err)
		}
	})

	t.Run("TwoReconcilers", func(t *testing.T) {
		// Two reconcilers at once over orphans mixed with healthy
		// reservations: each is closed exactly once.
		const n = 40
		gone, kept := newTenant(t, db, "100", "0"), newTenant(t, db, "100", "0")
		var expiry time.Time
		for i := range n {
			tenant := kept
			if i%2 == 0 {
				tenant = gone
			}
			expiry = reserve(t, tenant, fmt.Sprintf("race-orphan-%d", i), amt("1")).ExpiresAt
		}
		abort(t, gone)
		reps := make([]budget.ReconcileReport, 2)
		errs := make([]error, 2)
		var wg sync.WaitGroup
		for i := range reps {
			wg.Go(func() { reps[i], errs[i] = budget.Reconcile(ctx, db, expiry.Add(time.Second)) })
		}
		wg.Wait()
		if errs[0] != nil || errs[1] != nil {
			t.Fatalf("reconcile: %v; %v", errs[0], errs[1])
		}
		// A reservation the other reconciler kept locked through every
		// try is left for the next run (rarely: it holds the rows for
		// milliseconds): here, one more.
		rest, err := budget.Reconcile(ctx, db, expiry.Add(time.Second))
		if err != nil || rest.Locked != 0 {
			t.Fatalf("the next run: %+v, %v", rest, err)
		}
		reps = append(reps, rest)
		var orphaned, expired, orphans int
		for _, r := range reps {
			orphaned, expired, orphans = orphaned+r.Orphaned, expired+r.Expired, orphans+len(r.Orphans)
		}
		if orphaned != n/2 || expired != n/2 || orphans != n/2 {
			t.Fatalf("%d orphaned, %d expired (%+v), want %d each", orphaned, expired, reps, n/2)
		}
		if a := account(t, db, kept); a.Balance != amt("100") || a.Reserved != 0 {
			t.Errorf("the other tenant's account %+v, want nothing held or charged", a)
		}
	})
}
