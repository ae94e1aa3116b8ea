package main

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/unitenant/unitenant/shared/aibridge"
	"github.com/unitenant/unitenant/shared/fault"
)

// TestCaseVariantMembersAreNotSmuggledUpstream: Go's encoding/json matches
// member names case-insensitively (the last one wins), the bridge checks the
// one it decoded, and members it does not name exactly travel on to the
// provider after the ones it sets. An attacker holding a key limited to
// gpt-mini sends "model":"gpt-mini" and "MODEL":"gpt-big": the bridge checks
// and bills gpt-mini, an upstream that decodes as Go does (Ollama, LocalAI,
// the fake provider) answers with gpt-big, a model the tenant never
// enabled; "MAX_TOKENS" likewise lifts the cap the reservation was made for.
// Every such request is refused before anything is counted or sent.
func TestCaseVariantMembersAreNotSmuggledUpstream(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	// gpt-big is served by the same upstream and enabled for k002 only.
	f.addModel(t, "gpt-big", "text", "openai", f.openai, "1", "1")
	f.enable(t, "k002", "gpt-big", 30, "")
	_, key := f.newKey(t, map[string]any{"name": "mini-only", "models": []string{"gpt-mini"}})
	tok := f.token(t, adminUser, "k001")
	msg := `"messages":[{"role":"user","content":"hi"}]`
	for _, c := range []struct {
		name, bearer, path, body, field string
	}{
		{"ChatModel", key, "/v1/chat/completions", `{"MODEL":"gpt-big","model":"gpt-mini",` + msg + `}`, "MODEL"},
		{"ChatModelAfter", key, "/v1/chat/completions", `{"model":"gpt-mini","Model":"gpt-big",` + msg + `}`, "Model"},
		{"ChatStream", key, "/v1/chat/completions", `{"mOdel":"gpt-big","model":"gpt-mini","stream":true,` + msg + `}`, "mOdel"},
		{"SeedChatAuto", tok, "/api/v1/ai/bridge/chat", `{"MODEL":"gpt-big",` + msg + `}`, "MODEL"},
		{"UnicodeFold", key, "/v1/chat/completions", `{"model":"gpt-mini","max_to\u212ae\u006e\u017f":1000000,` + msg + `}`, "max_to\u212aen\u017f"},
		{"MaxTokens", tok, "/v1/chat/completions", `{"model":"gpt-mini","max_tokens":5,"MAX_TOKENS":1000000,` + msg + `}`, "MAX_TOKENS"},
		{"MessageContent", tok, "/v1/chat/completions", `{"model":"gpt-mini","messages":[{"role":"user","content":"hi","Content":"` +
			strings.Repeat("long ", 50) + `"}]}`, "messages[0].Content"},
		{"Completion", key, "/v1/completions", `{"prompt":"hi","Model":"gpt-big","model":"gpt-mini"}`, "Model"},
		{"Embedding", tok, "/v1/embeddings", `{"input":"hi","MODEL":"gpt-big","model":"embed-small"}`, "MODEL"},
	} {
		t.Run(c.name, func(t *testing.T) {
			req, _ := http.NewRequest("POST", f.srv.URL+c.path, strings.NewReader(c.body))
			req.Header.Set("Authorization", "Bearer "+c.bearer)
			req.Header.Set("Content-Type", "application/json")
			resp, err := f.srv.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body := readAll(resp)
			if resp.StatusCode != http.StatusBadRequest || !bytes.Contains(body, []byte(`"ambiguous_field"`)) ||
				!bytes.Contains(body, []byte(c.field)) {
				t.Fatalf("%d %s, want 400 ambiguous_field naming %s", resp.StatusCode, body, c.field)
			}
		})
	}
	if n := f.openai.Calls("gpt-big"); n != 0 {
		t.Fatalf("the upstream answered %d calls with gpt-big, which k001 never enabled", n)
	}
	for _, r := range f.openai.Requests() {
		if bytes.Contains(bytes.ToLower(r.Body), []byte(`"model":"gpt-big"`)) || bytes.Contains(r.Body, []byte("1000000")) {
			t.Fatalf("smuggled upstream: %s", r.Body)
		}
	}
	if rows := f.logs(t, "tenant_id = ?", f.tenant["k001"]); len(rows) != 0 {
		t.Fatalf("%d call rows for refused requests", len(rows))
	}
}

// TestRevocationIsNotUndoneByALookupInFlight: a revocation made through
// this instance drops the instance's cache at once. A lookup of the same
// key that read it before the revocation and stores it after must not put
// it back: the revoked key would then be served from the cache for a whole
// TTL. Here the lookup is held between its read and its store by the row
// lock the revocation takes (the lookup records the key's first use).
func TestRevocationIsNotUndoneByALookupInFlight(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.h.bridge.CacheTTL = time.Hour
	id, key := f.newKey(t, map[string]any{"name": "racing"})
	ctx := context.Background()
	tx, err := f.sys.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	if _, err := tx.Exec("UPDATE tenant_api_keys SET revoked_at = NOW(3) WHERE id = ?", id); err != nil {
		t.Fatal(err)
	}
	inFlight := make(chan int)
	go func() {
		req, _ := http.NewRequest("GET", f.srv.URL+"/v1/models", nil)
		req.Header.Set("Authorization", "Bearer "+key)
		resp, err := f.srv.Client().Do(req)
		if err != nil {
			inFlight <- 0
			return
		}
		resp.Body.Close()
		inFlight <- resp.StatusCode
	}()
	// The lookup read the key as live (the revocation is not committed) and
	// now waits to record its use.
	deadline := time.Now().Add(5 * time.Second)
	for {
		var n int
		if err := f.sys.QueryRow("SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE DB = DATABASE() AND INFO LIKE 'UPDATE tenant_api_keys SET last_used_at%'").Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the lookup never reached its use record")
		}
		time.Sleep(5 * time.Millisecond)
	}
	f.h.bridge.Forget() // what the revoking request does on this instance
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	<-inFlight // begun before the revocation: whatever it got is its own
	if r := f.do(t, key, "GET", "/v1/models", nil); r.Status != http.StatusUnauthorized {
		t.Fatalf("a key revoked through this instance is served from its cache: %d %s", r.Status, r.Body)
	}
}

// TestKeyLimitHoldsUnderConcurrentCreation: a tenant near its limit of live
// API keys, creating keys ten at a time, ends at the limit, not past it:
// the count and the insert of each creation are one step.
func TestKeyLimitHoldsUnderConcurrentCreation(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	id := f.tenant["k002"]
	for i := range aibridge.MaxKeysPerTenant - 5 {
		f.exec(t, "INSERT INTO tenant_api_keys (tenant_id, name, key_prefix, key_hash, created_at) VALUES (?, 'old', 'uk-old', ?, NOW(3))", id, fmt.Sprintf("%064d", i))
	}
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		codes = map[string]int{}
	)
	for range 10 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, _, err := aibridge.CreateKey(context.Background(), f.sys, id, aibridge.NewKey{Name: "burst"}, time.Now())
			mu.Lock()
			defer mu.Unlock()
			if err != nil && fault.CodeOf(err) != "too_many_keys" {
				t.Errorf("create: %v", err)
			}
			codes[fault.CodeOf(err)]++
		}()
	}
	wg.Wait()
	var live int
	if err := f.sys.QueryRow("SELECT COUNT(*) FROM tenant_api_keys WHERE tenant_id = ? AND revoked_at IS NULL", id).Scan(&live); err != nil {
		t.Fatal(err)
	}
	if live != aibridge.MaxKeysPerTenant || codes[""] != 5 || codes["too_many_keys"] != 5 {
		t.Fatalf("%d live keys, outcomes %v; want %d, 5 created and 5 too_many_keys", live, codes, aibridge.MaxKeysPerTenant)
	}
}
