package main

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/unitenant/unitenant/shared/budget"
	"github.com/unitenant/unitenant/shared/logging"
	"github.com/unitenant/unitenant/shared/provisioning"
	"github.com/unitenant/unitenant/shared/sqldb"
	"github.com/unitenant/unitenant/shared/sqldb/sqldbtest"
)

// A reservation whose row a stuck transaction holds neither stalls nor
// fails the run: the run closes the others at once, reports the held one as
// locked and logs it; the first run after the lock is released settles it.
func TestJobLeavesLockedReservations(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db, dsn := sqldbtest.NewDatabase(t)
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
	// The job's pool waits at most 5s for a lock (the server's default
	// is 50s): a run that waits fails the test in seconds.
	mc, err := mysql.ParseDSN(dsn)
	if err != nil {
		t.Fatal(err)
	}
	if mc.Params == nil {
		mc.Params = map[string]string{}
	}
	mc.Params["innodb_lock_wait_timeout"] = "5"
	impatient, err := sqldb.OpenDSN(mc.FormatDSN())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { impatient.Close() })
	for _, id := range []string{"req-held", "req-free"} {
		if _, err := budget.Reserve(ctx, db, 1, id, budget.MustParseAmount("1"), time.Minute); err != nil {
			t.Fatal(err)
		}
		if _, err := db.Exec(`INSERT INTO ai_service_call_logs (request_id, tenant_id, model_id, model_name, provider, cost, status)
			VALUES (?, 1, 1, 'm', 'openai', 0.25, 'success')`, id); err != nil {
			t.Fatal(err)
		}
	}
	stuck, err := db.Begin()
	if err != nil {
		t.Fatal(err)
	}
	defer stuck.Rollback()
	var id int64
	if err := stuck.QueryRow("SELECT id FROM ai_budget_reservations WHERE request_id = 'req-held' FOR UPDATE").Scan(&id); err != nil {
		t.Fatal(err)
	}

	var logs bytes.Buffer
	later := time.Now().Add(2 * time.Hour)
	j := &job{db: impatient, log: slog.New(slog.NewJSONHandler(&logs, nil)), now: func() time.Time { return later }}
	runCtx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	start := time.Now()
	out, err := j.run(runCtx)
	took := time.Since(start)
	if err != nil {
		t.Fatalf("run with a reservation locked: %v (after %s)", err, took)
	}
	if took > 2500*time.Millisecond {
		t.Errorf("run took %s with a reservation locked, want well under the lock wait timeout (5s)", took)
	}
	b, _ := json.Marshal(out.(result).Reconcile)
	if want := `{"settled":1,"expired":0,"orphaned":0,"skipped":0,"locked":1,"charged":"0.250000","uncharged":"0.000000","overruns":0,"overrun":"0.000000"}`; string(b) != want {
		t.Errorf("reconcile %s, want %s", b, want)
	}
	var warned bool
	for line := range strings.Lines(logs.String()) {
		var l map[string]any
		if err := json.Unmarshal([]byte(line), &l); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		if l["level"] == "WARN" && l["call_id"] == "req-held" && l["tenant_id"] == float64(1) && l["table"] == "ai_budget_reservations" {
			warned = true
		}
	}
	if !warned {
		t.Errorf("no warning names the locked reservation; logs:\n%s", logs.String())
	}

	if err := stuck.Rollback(); err != nil {
		t.Fatal(err)
	}
	again, err := j.run(ctx)
	if err != nil {
		t.Fatalf("run after the release: %v", err)
	}
	if b, _ := json.Marshal(again.(result).Reconcile); string(b) != `{"settled":1,"expired":0,"orphaned":0,"skipped":0,"locked":0,"charged":"0.250000","uncharged":"0.000000","overruns":0,"overrun":"0.000000"}` {
		t.Errorf("run after the release reconciled %s, want the held one settled", b)
	}
	if a, err := budget.GetAccount(ctx, db, 1); err != nil || a.Balance != budget.MustParseAmount("9.5") || a.Reserved != 0 {
		t.Errorf("account %+v (%v), want 0.25 charged for each call, once", a, err)
	}
}

// A tenant whose day is past what the daily totals can record fails the
// run, naming the tenant and the day, and does not keep the other tenants'
// days from being recorded and billed.
func TestJobRecordsOtherTenantsPastATooLargeDay(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := newSystem(t, "INSERT INTO tenants (id, tenant_code, tenant_name, subdomain) VALUES (1, 'u001', 'u001', 'u001'), (2, 'u002', 'u002', 'u002')")
	now := time.Date(2026, 6, 20, 10, 0, 0, 0, time.UTC)
	for _, c := range []struct {
		id     string
		tenant int64
		cost   string
	}{{"big-1", 1, "99999999999999.999999"}, {"big-2", 1, "0.000001"}, {"small", 2, "0.5"}} {
		if _, err := db.Exec(`INSERT INTO ai_service_call_logs (request_id, tenant_id, model_id, model_name, provider, cost, status, created_at)
			VALUES (?, ?, 1, 'm', 'openai', ?, 'success', '2026-06-20 09:00:00')`, c.id, c.tenant, c.cost); err != nil {
			t.Fatal(err)
		}
	}
	j := &job{db: db, log: logging.Discard(), now: func() time.Time { return now }}
	_, err := j.run(ctx)
	if err == nil || !strings.Contains(err.Error(), "tenant 1") || !strings.Contains(err.Error(), "2026-06-20") {
		t.Fatalf("run: %v; want an error naming tenant 1 and 2026-06-20", err)
	}
	var amount string
	var n int
	if err := db.QueryRow("SELECT amount FROM billing_records WHERE tenant_id = 2 AND billing_date = '2026-06-20'").Scan(&amount); err != nil || amount != "0.5000" {
		t.Errorf("tenant 2 billed %q (%v), want 0.5000", amount, err)
	}
	if err := db.QueryRow("SELECT COUNT(*) FROM tenant_ai_usage_summary WHERE tenant_id = 1").Scan(&n); err != nil || n != 0 {
		t.Errorf("%d summary rows of tenant 1 (%v), want none", n, err)
	}
	// Nothing is final while a day fails: the next run rolls it up again.
	if err := db.QueryRow("SELECT COUNT(*) FROM system_config WHERE config_key = ?", rolledThroughKey).Scan(&n); err != nil || n != 0 {
		t.Errorf("%d %s rows (%v), want none", n, rolledThroughKey, err)
	}
}
