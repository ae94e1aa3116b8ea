package budget_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/unitenant/unitenant/shared/budget"
)

// TestAttackSettleRacesReconcile: calls whose reservations expire at once,
// settled late by the bridge while several Reconcile runs close them, each
// at its logged cost: every reservation ends closed exactly once, and the
// account, the reservation rows and the call logs agree to the micro-unit.
func TestAttackSettleRacesReconcile(t *testing.T) {
	t.Parallel()
	db := mustOpenSystem(t)
	db.SetMaxOpenConns(40)
	ctx := context.Background()
	initial := amt("1000")
	tenant := newTenant(t, db, initial.String(), "0")
	const calls = 300
	costs := map[string]budget.Amount{}
	for i := range calls {
		id := fmt.Sprintf("race-%d", i)
		cost := budget.Amount(1+rand.IntN(10000)) * budget.AccountStep
		costs[id] = cost
		if i%5 != 0 { // a fifth of them never reached a provider
			if _, err := db.Exec(`INSERT INTO ai_service_call_logs (request_id, tenant_id, model_id, model_name, provider, cost, status) VALUES (?, ?, 1, 'm', 'p', ?, 'success')`,
				id, tenant, cost.String()); err != nil {
				t.Fatal(err)
			}
		} else {
			costs[id] = 0
		}
		if _, err := budget.Reserve(ctx, db, tenant, id, amt("1"), time.Millisecond); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(5 * time.Millisecond)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range calls {
		wg.Go(func() {
			<-start
			id := fmt.Sprintf("race-%d", i)
			var err error
			if costs[id] == 0 {
				_, err = budget.Release(ctx, db, id)
			} else {
				_, err = budget.Settle(ctx, db, id, costs[id])
			}
			if err != nil {
				t.Errorf("close %s: %v", id, err)
			}
		})
	}
	for range 4 {
		wg.Go(func() {
			<-start
			for range 3 {
				if _, err := budget.Reconcile(ctx, db, time.Now().Add(time.Hour)); err != nil {
					t.Errorf("reconcile: %v", err)
				}
			}
		})
	}
	close(start)
	wg.Wait()
	var want budget.Amount
	for _, c := range costs {
		want += c
	}
	a := account(t, db, tenant)
	spent, _ := settledSum(t, db, tenant)
	var open int
	if err := db.QueryRow("SELECT COUNT(*) FROM ai_budget_reservations WHERE status = 'reserved'").Scan(&open); err != nil {
		t.Fatal(err)
	}
	if open != 0 || a.Reserved != 0 || spent != want || a.Balance != initial-want {
		t.Errorf("open %d, reserved %s, settled rows %s, balance %s; want 0, 0, %s, %s", open, a.Reserved, spent, a.Balance, want, initial-want)
	}
}
