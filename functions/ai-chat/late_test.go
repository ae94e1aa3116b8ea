package main

import (
	"context"
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/unitenant/unitenant/shared/aiprovider/fakeprovider"
	"github.com/unitenant/unitenant/shared/budget"
)

// A function frozen in the middle of a call for longer than its
// reservation lives (an idle Lambda instance is frozen between
// invocations, and thawed whenever) finds, when it wakes with the
// provider's answer, its reservation closed by usage-cron: expired at no
// charge, since no attempt had finished. Before, the row was then
// completed at the call's cost, which no settlement would ever charge: the
// call logs (and the billing records and summaries rolled up from them)
// said the tenant spent what its account was never charged. Now the row
// records the call as it happened, at a cost of nothing charged, the cost
// kept as uncharged in its metadata, so the account still balances to the
// cent with the call logs; and nothing moves twice.
func TestCallAnsweredAfterItsReservationWasReconciledChargesWhatItLogs(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.openai.SetModel("gpt-mini", fakeprovider.Model{Reply: "late", PromptTokens: 15, CompletionTokens: 120, Delay: 1500 * time.Millisecond})
	tenant := f.tenant["k001"]
	before := f.account(t, "k001")

	answered := make(chan reply, 1)
	tok := f.token(t, adminUser, "k001")
	go func() {
		answered <- f.do(t, tok, "POST", "/api/v1/ai/bridge/chat", chatBody("gpt-mini", "max_tokens", 2000))
	}()

	// The provider is answering; the function "freezes" past the
	// reservation's expiry and usage-cron reconciles it.
	var id string
	for deadline := time.Now().Add(5 * time.Second); id == "" && time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		_ = f.sys.QueryRow("SELECT request_id FROM ai_budget_reservations WHERE tenant_id = ? AND status = 'reserved'", tenant).Scan(&id)
	}
	if id == "" {
		t.Fatal("no reservation held for the call")
	}
	f.exec(t, "UPDATE ai_budget_reservations SET expires_at = NOW(3) - INTERVAL 1 MINUTE WHERE request_id = ?", id)
	rep, err := budget.Reconcile(context.Background(), f.sys, time.Now())
	if err != nil || rep.Expired != 1 {
		t.Fatalf("reconcile %+v %v", rep, err)
	}

	var r reply
	select {
	case r = <-answered:
	case <-time.After(30 * time.Second):
		t.Fatal("no answer")
	}
	data, code := r.envelope(t)
	var out struct {
		Message string `json:"message"`
		CallID  string `json:"callId"`
		Usage   struct {
			InputTokens, OutputTokens int
			Cost                      json.Number
		} `json:"usage"`
	}
	if r.Status != http.StatusOK || json.Unmarshal(data, &out) != nil {
		t.Fatalf("%d %s %s", r.Status, code, r.Body)
	}
	// The client is told what it was charged: nothing.
	if out.CallID != id || out.Message != "late" || out.Usage.InputTokens != 15 || out.Usage.OutputTokens != 120 {
		t.Fatalf("answer %s", data)
	}
	if c, err := budget.ParseAmount(out.Usage.Cost.String()); err != nil || c != 0 {
		t.Fatalf("answer's cost %s (%v), want what was charged: 0", out.Usage.Cost, err)
	}

	rows := f.logs(t, "request_id = ?", id)
	if len(rows) != 1 || rows[0].Status != "success" || rows[0].In != 15 || rows[0].Out != 120 || rows[0].Source != "provider" || !rows[0].CompletedAt.Valid {
		t.Fatalf("rows %+v", rows)
	}
	if rows[0].Cost != "0.000000" {
		t.Fatalf("row cost %s; the reservation was expired at no charge", rows[0].Cost)
	}
	// 15 × 0.001/1000 + 120 × 0.002/1000: kept, for whoever reads why.
	var uncharged string
	if err := f.sys.QueryRow("SELECT COALESCE(JSON_UNQUOTE(JSON_EXTRACT(metadata, '$.uncharged')), '') FROM ai_service_call_logs WHERE request_id = ?", id).Scan(&uncharged); err != nil || uncharged != "0.000255" {
		t.Fatalf("uncharged %q %v", uncharged, err)
	}

	checkBalances := func() {
		t.Helper()
		after := f.account(t, "k001")
		var logged string
		if err := f.sys.QueryRow("SELECT COALESCE(SUM(cost), 0) FROM ai_service_call_logs WHERE tenant_id = ?", tenant).Scan(&logged); err != nil {
			t.Fatal(err)
		}
		spent := before.Balance - after.Balance
		if l, err := budget.ParseAmount(logged); err != nil || l != spent || after.Reserved != 0 {
			t.Fatalf("account %+v -> %+v: spent %s, call logs %s (%v)", before, after, spent, logged, err)
		}
		var status string
		if err := f.sys.QueryRow("SELECT status FROM ai_budget_reservations WHERE request_id = ?", id).Scan(&status); err != nil || status != "expired" {
			t.Fatalf("reservation %q %v", status, err)
		}
	}
	checkBalances()
	// Reconciling again moves nothing.
	if rep, err := budget.Reconcile(context.Background(), f.sys, time.Now()); err != nil || rep.Expired+rep.Settled+rep.Skipped != 0 {
		t.Fatalf("second reconcile %+v %v", rep, err)
	}
	checkBalances()
}
