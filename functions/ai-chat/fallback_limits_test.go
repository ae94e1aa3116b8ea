package main

import (
	"fmt"
	"testing"
	"time"

	"github.com/unitenant/unitenant/shared/aiprovider/fakeprovider"
)

// A fallback is counted against its own model's limits, as a first choice
// is: a model over its requests a minute, or whose tokens a day cannot hold
// the call, is not tried, and the call fails with the first model's error.
// Each model's token window is corrected by its own attempt's tokens; the
// tenant's by the call's.
func TestFallbackCountsAgainstItsOwnModelsLimits(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	now := time.Date(2026, 5, 1, 10, 0, 30, 0, time.UTC)
	f.h.bridge.Now = func() time.Time { return now }
	f.h.bridge.TenantTPM = 1000
	tok := f.token(t, adminUser, "k001")
	k001, gpt, claude := f.tenant["k001"], f.models["gpt-mini"], f.models["claude-mini"]
	f.exec(t, "UPDATE tenant_ai_model_configs SET tpm_limit = 500 WHERE tenant_id = ? AND model_id = ?", k001, gpt)
	f.exec(t, "UPDATE tenant_ai_model_configs SET rpm_limit = 1, tpm_limit = 500 WHERE tenant_id = ? AND model_id = ?", k001, claude)
	f.openai.SetModel("gpt-mini", fakeprovider.Model{Fail: fakeprovider.Failure{Status: 503}})
	f.anthropic.SetModel("claude-mini", fakeprovider.Model{Reply: "ok", PromptTokens: 10, CompletionTokens: 20})
	model := func(id int64) string { return fmt.Sprintf("ai:t:%d:m:%d", k001, id) }
	tenantTok := fmt.Sprintf("ai:t:%d:tok", k001)
	body := chatBody("gpt-mini", "max_tokens", 20)

	// gpt-mini fails, claude-mini answers: each model's windows count its attempt.
	r := f.do(t, tok, "POST", "/v1/chat/completions", body)
	if r.Status != 200 || r.Header.Get(headerModel) != "claude-mini" {
		t.Fatalf("first call: %d %s", r.Status, r.Body)
	}
	if n := f.window(t, model(claude)); n != 1 {
		t.Fatalf("claude-mini's requests this minute %d, want 1", n)
	}
	if g, c, tn := f.window(t, model(gpt)+":tok"), f.window(t, model(claude)+":tok"), f.window(t, tenantTok); g != 0 || c != 30 || tn != 30 {
		t.Fatalf("token windows gpt-mini %d, claude-mini %d, tenant %d; want 0 (it failed), 30, 30", g, c, tn)
	}

	// claude-mini has had its one request this minute: it is not tried, and
	// the call fails as gpt-mini did. One row, nothing held or charged.
	calls, before := f.anthropic.Calls("claude-mini"), f.account(t, "k001")
	r = f.do(t, tok, "POST", "/v1/chat/completions", body)
	if e := r.openAIErr(t); r.Status != 502 || e.Code != "upstream_error" {
		t.Fatalf("fallback over its limit: %d %s", r.Status, r.Body)
	}
	if n := f.anthropic.Calls("claude-mini") - calls; n != 0 {
		t.Fatalf("claude-mini, over its 1 request a minute, was called %d times", n)
	}
	if n := f.window(t, model(claude)); n != 1 {
		t.Fatalf("claude-mini's requests this minute %d after it was skipped, want 1", n)
	}
	rows := f.logs(t, "tenant_id = ? AND request_id = (SELECT request_id FROM ai_service_call_logs WHERE tenant_id = ? ORDER BY id DESC LIMIT 1)", k001, k001)
	if len(rows) != 1 || rows[0].Model != "gpt-mini" || rows[0].Status != "error" || rows[0].Attempt != 1 {
		t.Fatalf("rows of the call %+v, want gpt-mini's failed attempt alone", rows)
	}
	if after := f.account(t, "k001"); after.Balance != before.Balance || after.Reserved != 0 {
		t.Fatalf("a failed call moved money: %+v -> %+v", before, after)
	}

	// A day limit that cannot hold the call (its prompt and 20 tokens) skips
	// the model as well, without counting anything in it.
	f.exec(t, "UPDATE tenant_ai_model_configs SET rpm_limit = NULL, tpm_limit = NULL, daily_token_limit = 20 WHERE tenant_id = ? AND model_id = ?", k001, claude)
	r = f.do(t, tok, "POST", "/v1/chat/completions", body)
	if r.Status != 502 || f.anthropic.Calls("claude-mini") != calls {
		t.Fatalf("fallback whose day cannot hold the call: %d %s, claude-mini called %d times", r.Status, r.Body, f.anthropic.Calls("claude-mini")-calls)
	}
	if n := f.window(t, model(claude)+":tok:day"); n != 0 {
		t.Fatalf("claude-mini's day window %d, want 0", n)
	}

	// With room again it answers, as attempt 2.
	f.exec(t, "UPDATE tenant_ai_model_configs SET daily_token_limit = 1000 WHERE tenant_id = ? AND model_id = ?", k001, claude)
	r = f.do(t, tok, "POST", "/v1/chat/completions", body)
	if r.Status != 200 || r.Header.Get(headerModel) != "claude-mini" {
		t.Fatalf("fallback with room: %d %s", r.Status, r.Body)
	}
	if n := f.window(t, model(claude)+":tok:day"); n != 30 {
		t.Fatalf("claude-mini's day window %d, want 30", n)
	}
	if tn := f.window(t, tenantTok); tn != 60 {
		t.Fatalf("tenant token window %d, want 60 (two answered calls of 30)", tn)
	}
}
