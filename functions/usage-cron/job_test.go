package main

import (
	"context"
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/unitenant/unitenant/shared/budget"
	"github.com/unitenant/unitenant/shared/logging"
	"github.com/unitenant/unitenant/shared/provisioning"
	"github.com/unitenant/unitenant/shared/sqldb/sqldbtest"
)

// A run rolls up today's and yesterday's call logs and settles the expired
// reservation of a call that was metered but never settled; a second run
// reports the same totals and closes nothing more.
func TestJobRollsUpAndReconciles(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db, _ := sqldbtest.NewDatabase(t)
	if _, err := provisioning.MigrateSystem(ctx, db, logging.Discard()); err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{
		"INSERT INTO tenants (id, tenant_code, tenant_name, subdomain) VALUES (1, 'u001', 'u001', 'u001')",
		"INSERT INTO tenant_accounts (tenant_id, balance, credit_limit) VALUES (1, 10, 0)",
	} {
		if _, err := db.Exec(q); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := budget.Reserve(ctx, db, 1, "req-killed", budget.MustParseAmount("1"), time.Minute); err != nil {
		t.Fatal(err)
	}
	// The call was metered, then its function was killed before Settle.
	logged := time.Now().UTC().Format("2006-01-02 15:04:05.000")
	if _, err := db.Exec(`INSERT INTO ai_service_call_logs (request_id, tenant_id, model_id, model_name, provider, input_tokens, output_tokens, total_tokens, cost, status, created_at)
		VALUES ('req-killed', 1, 1, 'm', 'openai', 10, 20, 30, 0.012345, 'success', ?)`, logged); err != nil {
		t.Fatal(err)
	}
	later := time.Now().Add(2 * time.Hour) // the reservation has expired; today and yesterday cover the log
	j := &job{db: db, log: logging.Discard(), now: func() time.Time { return later }}

	out, err := j.run(ctx)
	if err != nil {
		t.Fatal(err)
	}
	res := out.(result)
	if len(res.Days) != 2 || res.Days[0].Date != later.UTC().AddDate(0, 0, -1).Format(time.DateOnly) || res.Days[1].Date != later.UTC().Format(time.DateOnly) {
		t.Fatalf("days %+v", res.Days)
	}
	if calls, cost := res.Days[0].Calls+res.Days[1].Calls, res.Days[0].Cost+res.Days[1].Cost; calls != 1 || cost != budget.MustParseAmount("0.012345") {
		t.Errorf("rolled up %d calls costing %s, want 1 costing 0.012345", calls, cost)
	}
	// Settle charges the cost rounded to the account's four places.
	if want := (reconcileReport{Settled: 1, Charged: "0.012300"}); res.Reconcile != want {
		t.Errorf("reconcile %+v, want %+v", res.Reconcile, want)
	}
	b, err := json.Marshal(res)
	if err != nil || !strings.Contains(string(b), `"cost":"0.012345"`) || !strings.Contains(string(b), `"settled":1`) {
		t.Errorf("report JSON %s (%v)", b, err)
	}

	again, err := j.run(ctx)
	if err != nil {
		t.Fatal(err)
	}
	res2 := again.(result)
	if !slices.Equal(res.Days, res2.Days) || res2.Reconcile != (reconcileReport{Charged: "0.000000"}) {
		t.Errorf("second run %+v, want the same days and nothing reconciled", res2)
	}
}
