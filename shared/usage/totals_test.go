package usage_test

import (
	"context"
	"database/sql"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/unitenant/unitenant/shared/budget"
	"github.com/unitenant/unitenant/shared/usage"
)

// insertCalls logs n finished calls of tenant on model 1 at 01:00 on day1,
// each costing cost and counting tokens tokens, as the bridge binds costs;
// n is at most 10000.
func insertCalls(t *testing.T, db *sql.DB, tenant int64, n int, cost string, tokens int64) {
	t.Helper()
	_, err := db.Exec(`INSERT INTO ai_service_call_logs (request_id, tenant_id, model_id, model_name, provider,
			input_tokens, output_tokens, total_tokens, cost, response_time_ms, status, created_at)
		WITH RECURSIVE s(n) AS (SELECT 0 UNION ALL SELECT n + 1 FROM s WHERE n < 99)
		SELECT CONCAT('big-', ?, '-', a.n * 100 + b.n), ?, 1, 'model-1', 'openai', ?, 0, ?, CAST(? AS DECIMAL(20,6)), 10, 'success', '2024-03-10 01:00:00'
		FROM s a JOIN s b WHERE a.n * 100 + b.n < ?`, tenant, tenant, tokens, tokens, cost, n)
	if err != nil {
		t.Fatal(err)
	}
}

// TestRollupBeyondAmount: a day's totals are summed and recorded exactly up
// to what their columns hold (DECIMAL(20,6): 99999999999999.999999), far
// past the range of budget.Amount (9223372036854.775807): ten thousand calls
// at the largest amount a call can cost (the columns' stated capacity),
// 923 of them (just past Amount's range), and a total of exactly Amount's
// largest value all roll up, are billed and reported to the micro-unit.
// A tenant whose day exceeds the columns cannot be recorded: the roll-up
// names it and its day in an error, records every other tenant's day, and
// leaves the summary of that tenant's day as it was rather than a wrong
// one.
func TestRollupBeyondAmount(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := newDB(t)
	for _, id := range []int64{3, 4} {
		code := "u00" + string(rune('0'+id))
		if _, err := db.Exec("INSERT INTO tenants (id, tenant_code, tenant_name, subdomain) VALUES (?, ?, ?, ?)", id, code, code, code); err != nil {
			t.Fatal(err)
		}
	}
	most := budget.MaxAmount.String() // 9999999999.999900
	insertCalls(t, db, 1, 10000, most, 4_000_000_000)
	insertCalls(t, db, 2, 923, most, 1)
	insertCalls(t, db, 3, 1, "9223372036854.775807", 1)

	rep, err := usage.Rollup(ctx, db, day1, rollupNow)
	if err != nil {
		t.Fatalf("roll up: %v", err)
	}
	// 99999999999999.000000 + 9229999999999.907700 + 9223372036854.775807
	if rep.CostDec != "118453372036853.683507" || rep.Calls != 10924 || rep.Tokens != 40_000_000_000_924 || rep.Tenants != 3 {
		t.Errorf("report %+v, want cost 118453372036853.683507, 10924 calls, 40000000000924 tokens, 3 tenants", rep)
	}
	costs := func() []string {
		t.Helper()
		var out []string
		for _, s := range readSummaries(t, db) {
			out = append(out, s.Cost)
		}
		return out
	}
	wantCosts := []string{"99999999999999.000000", "9229999999999.907700", "9223372036854.775807"}
	if got := costs(); !reflect.DeepEqual(got, wantCosts) {
		t.Errorf("summary costs %q, want %q", got, wantCosts)
	}
	wantBilling := []string{
		"1 2024-03-10 ai_usage 40000000000000.0000 99999999999999.0000 pending 99999999999999.000000",
		"2 2024-03-10 ai_usage 923.0000 9229999999999.9077 pending 9229999999999.907700",
		"3 2024-03-10 ai_usage 1.0000 9223372036854.7758 pending 9223372036854.775807",
	}
	if got := billing(t, db); !reflect.DeepEqual(got, wantBilling) {
		t.Errorf("billing\n got %q\nwant %q", got, wantBilling)
	}
	var stat string
	if err := db.QueryRow("SELECT ai_cost FROM tenant_statistics WHERE tenant_id = 1 AND stat_date = '2024-03-10'").Scan(&stat); err != nil || stat != "99999999999999.000000" {
		t.Errorf("tenant statistics cost %s (%v), want 99999999999999.000000", stat, err)
	}

	// One more call at the largest amount for tenant 1 (10001 of them:
	// past its summary row), a day that fits each of its summary rows but
	// not its statistics and billing record for tenant 4, and a late call
	// for tenant 2.
	for model := 1; model <= 2; model++ { // each within its summary row, not together
		if _, err := db.Exec("INSERT INTO ai_service_call_logs (request_id, tenant_id, model_id, model_name, provider, total_tokens, cost, status, created_at) VALUES (?, 4, ?, 'm', 'openai', 1, 60000000000000, 'success', '2024-03-10 03:00:00')",
			fmt.Sprintf("t4-%d", model), model); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range []struct {
		id     string
		tenant int64
		cost   string
	}{{"one-more", 1, most}, {"late", 2, "0.000001"}} {
		if _, err := db.Exec("INSERT INTO ai_service_call_logs (request_id, tenant_id, model_id, model_name, provider, cost, status, created_at) VALUES (?, ?, 1, 'model-1', 'openai', CAST(? AS DECIMAL(20,6)), 'success', '2024-03-10 02:00:00')",
			c.id, c.tenant, c.cost); err != nil {
			t.Fatal(err)
		}
	}
	rep, err = usage.Rollup(ctx, db, day1, rollupNow)
	if err == nil {
		t.Fatal("roll up of days too large to record: no error")
	}
	if rep.Date != "2024-03-10" || rep.CostDec != "118453372036853.683508" {
		t.Errorf("report %+v, want the day's, with tenant 2's late call", rep)
	}
	for _, want := range []string{"2024-03-10", "tenant 1", "100009999999998.999900", "tenant 4", "120000000000000.000000"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
	// The others' days are recorded; the two that cannot be are left as
	// they were.
	wantCosts[1] = "9229999999999.907701"
	if got := costs(); !reflect.DeepEqual(got, wantCosts) {
		t.Errorf("summary costs %q after the roll-up, want %q", got, wantCosts)
	}
	wantBilling[1] = "2 2024-03-10 ai_usage 923.0000 9229999999999.9077 pending 9229999999999.907701"
	if got := billing(t, db); !reflect.DeepEqual(got, wantBilling) {
		t.Errorf("billing\n got %q\nwant %q", got, wantBilling)
	}
}
