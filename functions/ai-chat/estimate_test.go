package main

import (
	"strings"
	"testing"
)

// Members the bridge does not know travel upstream as they came, and a
// provider may read them as prompt (legacy functions, a response format's
// schema, a predicted output, a suffix): each is held for and counted by
// its size, so no request carries prompt the budget and the token limits
// never saw.
func TestUnknownMembersAreHeldForAsPrompt(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.h.bridge.TenantTPM = 2000
	tok := f.token(t, adminUser, "k001")
	big := strings.Repeat("describe the weather in detail ", 300) // ~9000 bytes, ~3000 tokens
	for _, tc := range []struct {
		name, path string
		body       map[string]any
	}{
		{"ChatFunctions", "/v1/chat/completions", chatBody("gpt-mini", "max_tokens", 10, "functions", []map[string]any{{"name": "f", "description": big}})},
		{"ChatResponseFormat", "/v1/chat/completions", chatBody("gpt-mini", "max_tokens", 10, "response_format", map[string]any{"type": "json_schema", "json_schema": map[string]any{"name": "s", "description": big}})},
		{"MessageMember", "/v1/chat/completions", chatBody("gpt-mini", "max_tokens", 10, "messages", []map[string]any{{"role": "user", "content": "hi", "context": big}})},
		{"CompletionSuffix", "/v1/completions", map[string]any{"model": "gpt-mini", "prompt": "hi", "max_tokens": 10, "suffix": big}},
		{"EmbeddingExtra", "/v1/embeddings", map[string]any{"model": "embed-small", "input": "hi", "instructions": big}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			calls := f.openai.Calls("gpt-mini") + f.openai.Calls("embed-small")
			r := f.do(t, tok, "POST", tc.path, tc.body)
			e := r.openAIErr(t)
			if r.Status != 400 || e.Code != "too_many_tokens" || !strings.Contains(e.Message, "limit of 2000 tokens") {
				t.Fatalf("%d %s: a request carrying ~3000 tokens in a member the bridge does not know was not counted as such", r.Status, r.Body)
			}
			if n := f.openai.Calls("gpt-mini") + f.openai.Calls("embed-small") - calls; n != 0 {
				t.Fatalf("the provider was called %d times", n)
			}
		})
	}
	// The same requests without the ballast pass.
	if r := f.do(t, tok, "POST", "/v1/chat/completions", chatBody("gpt-mini", "max_tokens", 10, "response_format", map[string]any{"type": "json_object"})); r.Status != 200 {
		t.Fatalf("a small request: %d %s", r.Status, r.Body)
	}
	var n int
	f.settled()
	if err := f.sys.QueryRow("SELECT COUNT(*) FROM ai_budget_reservations WHERE tenant_id = ?", f.tenant["k001"]).Scan(&n); err != nil || n != 1 {
		t.Fatalf("reservations %d (%v), want 1: the refused requests held nothing", n, err)
	}
}
