package main

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"log/slog"
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
	db := newSystem(t,
		"INSERT INTO tenants (id, tenant_code, tenant_name, subdomain) VALUES (1, 'u001', 'u001', 'u001')",
		"INSERT INTO tenant_accounts (tenant_id, balance, credit_limit) VALUES (1, 10, 0)",
	)
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
	calls := res.Days[0].Calls + res.Days[1].Calls
	if cost, err := res.Days[0].Cost.Add(res.Days[1].Cost); calls != 1 || err != nil || cost != budget.MustParseTotal("0.012345") {
		t.Errorf("rolled up %d calls costing %s (%v), want 1 costing 0.012345", calls, cost, err)
	}
	// Settle charges the cost rounded to the account's four places.
	if want := (reconcileReport{Settled: 1, Charged: "0.012300", Uncharged: "0.000000", Overrun: "0.000000"}); res.Reconcile != want {
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
	if !slices.Equal(res.Days, res2.Days) || res2.Reconcile != (reconcileReport{Charged: "0.000000", Uncharged: "0.000000", Overrun: "0.000000"}) {
		t.Errorf("second run %+v, want the same days and nothing reconciled", res2)
	}
}

// Days the job missed (it was down, or failing) are rolled up by the next
// run that works, oldest first and MaxCatchUpDays a run, with yesterday and
// today as always; once caught up, a run rolls up only those two.
func TestJobCatchesUpMissedDays(t *testing.T) {
	t.Parallel()
	db := newSystem(t, "INSERT INTO tenants (id, tenant_code, tenant_name, subdomain) VALUES (1, 'u001', 'u001', 'u001')")
	now := time.Date(2026, 6, 20, 10, 0, 0, 0, time.UTC)
	day := func(n int) string { return now.AddDate(0, 0, n).Format(time.DateOnly) }
	// The last run was six days ago: it had made the day before its
	// yesterday final. Calls were made while the job was down.
	for i, d := range []int{-5, -3} {
		if _, err := db.Exec(`INSERT INTO ai_service_call_logs (request_id, tenant_id, model_id, model_name, provider, input_tokens, output_tokens, total_tokens, cost, status, created_at, completed_at)
			VALUES (?, 1, 1, 'm', 'openai', 10, 20, 30, 0.5, 'success', ?, ?)`, fmt.Sprintf("missed-%d", i), day(d)+" 18:00:00", day(d)+" 18:00:01"); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := db.Exec("INSERT INTO system_config (config_key, config_value) VALUES (?, ?)", rolledThroughKey, day(-8)); err != nil {
		t.Fatal(err)
	}
	j := &job{db: db, log: logging.Discard(), now: func() time.Time { return now }}
	dates := func() []string { return runDays(t, j) }
	if got, want := dates(), []string{day(-7), day(-6), day(-5), day(-4), day(-3), day(-2), day(-1), day(0)}; !slices.Equal(got, want) {
		t.Fatalf("rolled up %v, want %v", got, want)
	}
	var n int
	if err := db.QueryRow("SELECT COUNT(*) FROM tenant_ai_usage_summary WHERE `date` IN (?, ?) AND total_calls = 1", day(-5), day(-3)).Scan(&n); err != nil || n != 2 {
		t.Fatalf("%d summaries of the missed days (%v), want 2", n, err)
	}
	if got, want := dates(), []string{day(-1), day(0)}; !slices.Equal(got, want) {
		t.Fatalf("caught up, a run rolled up %v, want %v", got, want)
	}
	// Set back a hundred days: MaxCatchUpDays a run, oldest first.
	if _, err := db.Exec("UPDATE system_config SET config_value = ? WHERE config_key = ?", day(-101), rolledThroughKey); err != nil {
		t.Fatal(err)
	}
	got := dates()
	if len(got) != MaxCatchUpDays+2 || got[0] != day(-100) || got[MaxCatchUpDays-1] != day(-100+MaxCatchUpDays-1) || got[len(got)-1] != day(0) {
		t.Fatalf("from a hundred days back, rolled up %v", got)
	}
	if got := dates(); got[0] != day(-100+MaxCatchUpDays) {
		t.Fatalf("the next run started at %s, want %s", got[0], day(-100+MaxCatchUpDays))
	}
}

// A reservation whose tenant's account is gone (the provisioning abort path
// deletes the tenant and its account) is closed as orphaned, with what its
// call was metered at reported and logged as uncharged, in the same run as
// the reservations around it; the run succeeds, and the next finds nothing
// left to do.
func TestJobClosesOrphanedReservations(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := newSystem(t,
		"INSERT INTO tenants (id, tenant_code, tenant_name, subdomain) VALUES (1, 'u001', 'u001', 'u001'), (2, 'u002', 'u002', 'u002')",
		"INSERT INTO tenant_accounts (tenant_id, balance, credit_limit) VALUES (1, 10, 0), (2, 10, 0)",
	)
	// Reserved in this order, so the orphan is met first.
	for _, r := range []struct {
		tenant  int64
		request string
		cost    string
	}{{2, "req-orphan", "0.5"}, {1, "req-ok", "0.25"}} {
		if _, err := budget.Reserve(ctx, db, r.tenant, r.request, budget.MustParseAmount("1"), time.Minute); err != nil {
			t.Fatal(err)
		}
		if _, err := db.Exec(`INSERT INTO ai_service_call_logs (request_id, tenant_id, model_id, model_name, provider, cost, status)
			VALUES (?, ?, 1, 'm', 'openai', ?, 'success')`, r.request, r.tenant, r.cost); err != nil {
			t.Fatal(err)
		}
	}
	for _, q := range []string{"DELETE FROM tenant_accounts WHERE tenant_id = 2", "DELETE FROM tenants WHERE id = 2"} {
		if _, err := db.Exec(q); err != nil {
			t.Fatal(err)
		}
	}
	var logs bytes.Buffer
	later := time.Now().Add(2 * time.Hour)
	j := &job{db: db, log: slog.New(slog.NewJSONHandler(&logs, nil)), now: func() time.Time { return later }}

	out, err := j.run(ctx)
	if err != nil {
		t.Fatalf("run: %v", err)
	}
	b, _ := json.Marshal(out.(result).Reconcile)
	if want := `{"settled":1,"expired":0,"orphaned":1,"skipped":0,"locked":0,"charged":"0.250000","uncharged":"0.500000","overruns":0,"overrun":"0.000000"}`; string(b) != want {
		t.Errorf("reconcile %s, want %s", b, want)
	}
	var warned bool
	for line := range strings.Lines(logs.String()) {
		var l map[string]any
		if err := json.Unmarshal([]byte(line), &l); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		if l["level"] == "WARN" && l["call_id"] == "req-orphan" && l["tenant_id"] == float64(2) && l["reserved"] == "1.000000" && l["uncharged"] == "0.500000" {
			warned = true
		}
	}
	if !warned {
		t.Errorf("no warning names the orphaned reservation; logs:\n%s", logs.String())
	}
	var status string
	var settled sql.NullString
	if err := db.QueryRow("SELECT status, settled_amount FROM ai_budget_reservations WHERE request_id = 'req-orphan'").Scan(&status, &settled); err != nil ||
		status != "orphaned" || settled.Valid {
		t.Errorf("orphan row: %s, %v (%v); want orphaned, nothing charged", status, settled, err)
	}
	a, err := budget.GetAccount(ctx, db, 1)
	if err != nil || a.Balance != budget.MustParseAmount("9.75") || a.Reserved != 0 {
		t.Errorf("the other tenant's account %+v (%v), want 0.25 charged", a, err)
	}

	again, err := j.run(ctx)
	if err != nil {
		t.Fatalf("second run: %v", err)
	}
	if b, _ := json.Marshal(again.(result).Reconcile); string(b) != `{"settled":0,"expired":0,"orphaned":0,"skipped":0,"locked":0,"charged":"0.000000","uncharged":"0.000000","overruns":0,"overrun":"0.000000"}` {
		t.Errorf("second run reconciled %s, want nothing", b)
	}
}

// A call that costs the largest amount there is (budget.MaxAmount) is
// logged, rolled up, billed and, its function killed before Settle,
// settled by the run at that amount.
func TestJobMaxAmount(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	most := budget.MaxAmount.String()
	db := newSystem(t,
		"INSERT INTO tenants (id, tenant_code, tenant_name, subdomain) VALUES (1, 'u001', 'u001', 'u001')",
		"INSERT INTO tenant_accounts (tenant_id, balance, credit_limit) VALUES (1, "+most+", 0)",
	)
	if _, err := budget.Reserve(ctx, db, 1, "req-max", budget.MaxAmount, time.Minute); err != nil {
		t.Fatal(err)
	}
	// As the bridge logs a call: the cost bound as CAST(? AS DECIMAL(20,6)).
	if _, err := db.Exec(`INSERT INTO ai_service_call_logs (request_id, tenant_id, model_id, model_name, provider, input_tokens, output_tokens, total_tokens, cost, status)
		VALUES ('req-max', 1, 1, 'm', 'openai', 10000000, 10000000, 20000000, CAST(? AS DECIMAL(20,6)), 'success')`, most); err != nil {
		t.Fatalf("log the call: %v", err)
	}
	later := time.Now().Add(2 * time.Hour)
	j := &job{db: db, log: logging.Discard(), now: func() time.Time { return later }}
	out, err := j.run(ctx)
	if err != nil {
		t.Fatal(err)
	}
	res := out.(result)
	if cost, err := res.Days[0].Cost.Add(res.Days[1].Cost); err != nil || cost != budget.TotalOf(budget.MaxAmount) {
		t.Errorf("rolled up %s (%v), want %s", cost, err, most)
	}
	if res.Reconcile.Settled != 1 || res.Reconcile.Charged != most {
		t.Errorf("reconcile %+v, want 1 settled at %s", res.Reconcile, most)
	}
	var billed string
	if err := db.QueryRow("SELECT amount FROM billing_records WHERE tenant_id = 1").Scan(&billed); err != nil || billed != "9999999999.9999" {
		t.Errorf("billed %s (%v), want 9999999999.9999", billed, err)
	}
	if a, err := budget.GetAccount(ctx, db, 1); err != nil || a.Balance != 0 || a.Reserved != 0 {
		t.Errorf("account %+v (%v), want all of it charged", a, err)
	}
}

// newSystem is a migrated system database of the test's own, holding what
// the statements insert.
func newSystem(t *testing.T, inserts ...string) *sql.DB {
	t.Helper()
	db, _ := sqldbtest.NewDatabase(t)
	if _, err := provisioning.MigrateSystem(context.Background(), db, logging.Discard()); err != nil {
		t.Fatal(err)
	}
	for _, q := range inserts {
		if _, err := db.Exec(q); err != nil {
			t.Fatal(err)
		}
	}
	return db
}

// An operator sets the record of the days rolled up back, to have them
// rolled up again (say after correcting prices), while a run is under way:
// the run does not write its own progress over the set-back, and the next
// run starts from it.
func TestJobKeepsASetBackMadeDuringTheRun(t *testing.T) {
	t.Parallel()
	db := newSystem(t, "INSERT INTO tenants (id, tenant_code, tenant_name, subdomain) VALUES (1, 'u001', 'u001', 'u001')")
	now := time.Date(2026, 6, 20, 10, 0, 0, 0, time.UTC)
	day := func(n int) string { return now.AddDate(0, 0, n).Format(time.DateOnly) }
	if _, err := db.Exec(`INSERT INTO ai_service_call_logs (request_id, tenant_id, model_id, model_name, provider, input_tokens, output_tokens, total_tokens, cost, status, created_at, completed_at)
		VALUES ('missed', 1, 1, 'm', 'openai', 10, 20, 30, 0.5, 'success', ?, ?)`, day(-3)+" 18:00:00", day(-3)+" 18:00:01"); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec("INSERT INTO system_config (config_key, config_value) VALUES (?, ?)", rolledThroughKey, day(-5)); err != nil {
		t.Fatal(err)
	}
	// The operator's set-back lands as the run rolls the missed day up
	// (once).
	for _, q := range []string{
		"CREATE TABLE operator_done (done INT PRIMARY KEY)",
		fmt.Sprintf(`CREATE TRIGGER operator_sets_back AFTER INSERT ON tenant_ai_usage_summary FOR EACH ROW
			IF NOT EXISTS (SELECT 1 FROM operator_done) THEN
				INSERT INTO operator_done VALUES (1);
				UPDATE system_config SET config_value = '%s' WHERE config_key = '%s';
			END IF`, day(-40), rolledThroughKey),
	} {
		if _, err := db.Exec(q); err != nil {
			t.Fatal(err)
		}
	}
	j := &job{db: db, log: logging.Discard(), now: func() time.Time { return now }}
	run := func() []string { return runDays(t, j) }
	record := func() (v string) {
		t.Helper()
		if err := db.QueryRow("SELECT config_value FROM system_config WHERE config_key = ?", rolledThroughKey).Scan(&v); err != nil {
			t.Fatal(err)
		}
		return v
	}
	if got := run(); len(got) == 0 || got[0] != day(-4) {
		t.Fatalf("rolled up %v, want from %s", got, day(-4))
	}
	if got := record(); got != day(-40) {
		t.Fatalf("after the run the record says %s, want the operator's %s", got, day(-40))
	}
	if got := run(); len(got) == 0 || got[0] != day(-39) {
		t.Fatalf("the next run rolled up %v, want from %s", got, day(-39))
	}
	if got := record(); got != day(-39+MaxCatchUpDays-1) {
		t.Fatalf("then the record says %s, want %s", got, day(-39+MaxCatchUpDays-1))
	}
}

// runDays runs j and returns the days it rolled up.
func runDays(t *testing.T, j *job) []string {
	t.Helper()
	out, err := j.run(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var ds []string
	for _, r := range out.(result).Days {
		ds = append(ds, r.Date)
	}
	return ds
}
