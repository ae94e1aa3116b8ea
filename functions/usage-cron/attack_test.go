package main

import (
	"context"
	"database/sql"
	"fmt"
	"testing"
	"time"

	"github.com/unitenant/unitenant/shared/budget"
	"github.com/unitenant/unitenant/shared/logging"
)

// A run killed (or timed out) part of the way through catching up keeps the
// days it made final: the next run goes on from where it stopped, so a
// catch-up longer than one run can last still ends. Before, the days were
// recorded only once the whole run's roll-ups had finished, so every run
// cut short began again at the same day, and never got further.
func TestAttackKilledCatchUpKeepsItsProgress(t *testing.T) {
	t.Parallel()
	db := newSystem(t,
		"INSERT INTO tenants (id, tenant_code, tenant_name, subdomain) VALUES (1, 'u001', 'u001', 'u001')")
	now := time.Date(2026, 6, 20, 10, 0, 0, 0, time.UTC)
	day := func(n int) string { return now.AddDate(0, 0, n).Format(time.DateOnly) }
	for d := -10; d <= 0; d++ {
		if _, err := db.Exec(`INSERT INTO ai_service_call_logs (request_id, tenant_id, model_id, model_name, provider, total_tokens, cost, status, created_at)
			VALUES (?, 1, 1, 'm', 'openai', 30, 0.5, 'success', ?)`, fmt.Sprintf("call%d", d), day(d)+" 12:00:00"); err != nil {
			t.Fatal(err)
		}
	}
	// The job was down: the last final day is eleven days ago.
	if _, err := db.Exec("INSERT INTO system_config (config_key, config_value) VALUES (?, ?)", rolledThroughKey, day(-11)); err != nil {
		t.Fatal(err)
	}
	// The run is killed while it rolls up the sixth day back: it waits on a
	// row another transaction holds, and its time runs out there.
	if _, err := db.Exec("INSERT INTO tenant_statistics (tenant_id, stat_date) VALUES (1, ?)", day(-6)); err != nil {
		t.Fatal(err)
	}
	// At READ COMMITTED it holds that row alone, not the gaps beside it.
	holder, err := db.BeginTx(context.Background(), &sql.TxOptions{Isolation: sql.LevelReadCommitted})
	if err != nil {
		t.Fatal(err)
	}
	defer holder.Rollback()
	if _, err := holder.Exec("SELECT * FROM tenant_statistics WHERE tenant_id = 1 AND stat_date = ? FOR UPDATE", day(-6)); err != nil {
		t.Fatal(err)
	}
	ctx, kill := context.WithCancel(context.Background())
	j := &job{db: db, log: logging.Discard(), now: func() time.Time { return now }}
	done := make(chan error, 1)
	go func() { _, err := j.run(ctx); done <- err }()
	// Wait until the day before is recorded, then a moment more: the run
	// is now waiting for the held row (for up to a lock wait timeout).
	for n := 0; n == 0; {
		select {
		case err := <-done:
			t.Fatalf("the run ended (%v) before it reached the held row", err)
		case <-time.After(20 * time.Millisecond):
		}
		if err := db.QueryRow("SELECT COUNT(*) FROM billing_records WHERE billing_date = ?", day(-7)).Scan(&n); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(300 * time.Millisecond)
	kill()
	if err := <-done; err == nil {
		t.Fatal("the killed run succeeded")
	}
	// The server ends the dead function's session, and its transaction
	// with it, as it does once it notices the connection gone.
	rows, err := db.Query("SELECT id FROM information_schema.processlist WHERE db = DATABASE() AND command = 'Query' AND id <> CONNECTION_ID()")
	if err != nil {
		t.Fatal(err)
	}
	var sessions []int64
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			t.Fatal(err)
		}
		sessions = append(sessions, id)
	}
	rows.Close()
	for _, id := range sessions {
		_, _ = db.Exec(fmt.Sprintf("KILL %d", id))
	}
	holder.Rollback()

	var through string
	if err := db.QueryRow("SELECT config_value FROM system_config WHERE config_key = ?", rolledThroughKey).Scan(&through); err != nil {
		t.Fatal(err)
	}
	if through != day(-7) {
		t.Errorf("after a run killed on %s, %s = %s; want %s (the days before it are final)", day(-6), rolledThroughKey, through, day(-7))
	}
	out, err := j.run(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if got := out.(result).Days; len(got) == 0 || got[0].Date != day(-6) {
		t.Errorf("the next run rolled up %+v first, want %s", got, day(-6))
	}
	var n int
	if err := db.QueryRow("SELECT COUNT(*) FROM billing_records WHERE amount = 0.5").Scan(&n); err != nil || n != 11 {
		t.Errorf("%d days billed (%v), want 11", n, err)
	}
}

// Expired reservations are closed before the roll-ups, which a long
// catch-up may spend the rest of the run on: a run killed while rolling up
// has already given the held money back. Before, reconciliation came after
// the roll-ups, and an expired hold went on refusing its tenant's calls
// (402) for as long as runs were cut short.
func TestAttackKilledRollupLeavesNoExpiredHold(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := newSystem(t,
		"INSERT INTO tenants (id, tenant_code, tenant_name, subdomain) VALUES (1, 'u001', 'u001', 'u001')",
		"INSERT INTO tenant_accounts (tenant_id, balance, credit_limit) VALUES (1, 10, 0)")
	if _, err := budget.Reserve(ctx, db, 1, "req-held", budget.MustParseAmount("9"), time.Minute); err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC().Add(2 * time.Hour) // the hold has expired
	today := now.Format(time.DateOnly)
	// The run is killed while it rolls up today: another transaction holds
	// the row it must write.
	if _, err := db.Exec("INSERT INTO tenant_statistics (tenant_id, stat_date) VALUES (1, ?)", today); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`INSERT INTO ai_service_call_logs (request_id, tenant_id, model_id, model_name, provider, total_tokens, cost, status, created_at)
		VALUES ('other', 1, 1, 'm', 'openai', 30, 0.5, 'success', ?)`, today+" 00:00:01"); err != nil {
		t.Fatal(err)
	}
	holder, err := db.BeginTx(ctx, &sql.TxOptions{Isolation: sql.LevelReadCommitted})
	if err != nil {
		t.Fatal(err)
	}
	defer holder.Rollback()
	if _, err := holder.Exec("SELECT * FROM tenant_statistics WHERE tenant_id = 1 AND stat_date = ? FOR UPDATE", today); err != nil {
		t.Fatal(err)
	}
	runCtx, kill := context.WithTimeout(ctx, 1500*time.Millisecond)
	defer kill()
	j := &job{db: db, log: logging.Discard(), now: func() time.Time { return now }}
	if _, err := j.run(runCtx); err == nil {
		t.Fatal("the run cut short succeeded")
	}
	holder.Rollback()
	a, err := budget.GetAccount(ctx, db, 1)
	if err != nil {
		t.Fatal(err)
	}
	if a.Reserved != 0 {
		t.Fatalf("after a run cut short in its roll-ups, %s is still held by an expired reservation", a.Reserved)
	}
}
