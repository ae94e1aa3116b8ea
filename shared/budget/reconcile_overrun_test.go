package budget_test

import (
	"context"
	"testing"
	"time"

	"github.com/unitenant/unitenant/shared/budget"
)

// TestReconcileReportsOverruns: a reservation Reconcile settles at call
// logs that cost more than it held is charged what it held, and the excess
// is reported (counted and summed exactly, even past an Amount's range),
// not dropped; one settled at or under what it held is no overrun.
func TestReconcileReportsOverruns(t *testing.T) {
	t.Parallel()
	db := mustOpenSystem(t)
	ctx := context.Background()
	most := budget.MaxAmount.String()
	small, large := newTenant(t, db, "10", "0"), newTenant(t, db, most, "0")
	var expiry time.Time
	for _, r := range []struct {
		tenant  int64
		request string
		amount  budget.Amount
		costs   []string
	}{
		{small, "under", amt("1"), []string{"0.5"}},
		{small, "exact", amt("1"), []string{"0.4", "0.6"}},
		{small, "over", amt("1"), []string{"0.6", "0.7"}},
		// A cost past MaxAmount (and an Amount's range) overruns by all
		// of its excess, not by what is left once it is capped.
		{large, "huge", budget.MaxAmount, []string{"99999999999999.999999"}},
	} {
		res, err := budget.Reserve(ctx, db, r.tenant, r.request, r.amount, time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		expiry = res.ExpiresAt
		for i, c := range r.costs {
			insertCallLog(t, db, r.tenant, r.request, i+1, "success", c)
		}
	}

	rep, err := budget.Reconcile(ctx, db, expiry.Add(time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if rep.Settled != 4 {
		t.Fatalf("%d settled, want 4", rep.Settled)
	}
	if got, want := rep.Charged, total("10000000002.4999"); got != want {
		t.Errorf("charged %s, want %s", got, want)
	}
	// 0.3 over 1, and 99999999999999.999999 over 9999999999.9999.
	if rep.Overruns != 2 || rep.Overrun != total("99990000000000.300099") {
		t.Errorf("%d overruns of %s, want 2 of 99990000000000.300099", rep.Overruns, rep.Overrun)
	}
	if a := account(t, db, small); a.Balance != amt("7.5") || a.Reserved != 0 {
		t.Errorf("account %+v, want 2.5 charged", a)
	}

	again, err := budget.Reconcile(ctx, db, expiry.Add(time.Hour))
	if err != nil || again.Overruns != 0 || again.Overrun != (budget.Total{}) {
		t.Errorf("second run %+v (%v), want no overrun", again, err)
	}
}
