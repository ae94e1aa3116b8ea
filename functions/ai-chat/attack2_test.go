package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/unitenant/unitenant/shared/aiprovider/fakeprovider"
	"github.com/unitenant/unitenant/shared/auth"
	"github.com/unitenant/unitenant/shared/budget"
	"github.com/unitenant/unitenant/shared/httpapi/httpapitest"
)

// rawDo sends body as it is (duplicate members and bytes a map cannot
// hold), with the headers given in pairs.
func (f *fixture) rawDo(t *testing.T, bearer, method, path, body string, header ...string) reply {
	t.Helper()
	req, err := http.NewRequest(method, f.srv.URL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := f.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	return reply{Status: resp.StatusCode, Header: resp.Header, Body: readAll(resp)}
}

// reservations counts the budget holds ever made for tenant code.
func (f *fixture) reservations(t *testing.T, code string) int {
	t.Helper()
	f.settled()
	var n int
	if err := f.sys.QueryRow("SELECT COUNT(*) FROM ai_budget_reservations WHERE tenant_id = ?", f.tenant[code]).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// A cap times the completions asked for (n, best_of, prompts) past the int
// range wrapped to nothing or less: the call held only its prompt, counted
// no tokens (or a negative count, a 500 with a token limit set), and the
// provider was sent the cap and wrote what it liked, never charged. Such a
// call is refused, naming max_tokens, before anything is counted, held or
// sent, whether the cap is the request's or the model's default.
func TestAttack2CapTimesCompletionsNeverWraps(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.addModel(t, "pricey", "text", "openai", f.openai, "0", "10")
	f.enable(t, "k002", "pricey", 1, "")
	f.openai.SetModel("pricey", fakeprovider.Model{Reply: "ok", PromptTokens: 10, CompletionTokens: 1000}) // 10.00 a call
	tok := f.token(t, otherAdmin, "k002")
	msg := `"messages":[{"role":"user","content":"hi"}]`
	const huge = "4611686018427387904" // 2^62: × 2 is -2^63, × 4 is 0
	before := f.account(t, "k002")
	check := func(name, path, body string) {
		t.Helper()
		r := f.rawDo(t, tok, "POST", path, body)
		if e := r.openAIErr(t); r.Status != http.StatusBadRequest || e.Code != "invalid_max_tokens" || e.Param == nil || *e.Param != "max_tokens" {
			t.Errorf("%s: %d %s, want 400 invalid_max_tokens naming max_tokens", name, r.Status, r.Body)
		}
	}
	check("ChatN2", "/v1/chat/completions", `{"model":"pricey","max_tokens":`+huge+`,"n":2,`+msg+`}`)
	check("ChatN4", "/v1/chat/completions", `{"model":"pricey","max_completion_tokens":`+huge+`,"n":4,`+msg+`}`)
	check("ChatStream", "/v1/chat/completions", `{"model":"pricey","stream":true,"max_tokens":`+huge+`,"n":4,`+msg+`}`)
	check("CompletionBestOf", "/v1/completions", `{"model":"pricey","max_tokens":`+huge+`,"best_of":4,"prompt":"x"}`)
	check("CompletionPrompts", "/v1/completions", `{"model":"pricey","max_tokens":`+huge+`,"prompt":["a","b"]}`)
	// The model's own default cap, set by a platform admin, wraps the same way.
	f.exec(t, `UPDATE ai_model_config SET model_parameters = '{"max_tokens":`+huge+`}' WHERE model_name = 'pricey'`)
	check("ModelDefault", "/v1/chat/completions", `{"model":"pricey","n":2,`+msg+`}`)
	// With a token limit the wrapped count was negative: a 500, not a 400.
	f.h.bridge.TenantTPM = 1_000_000
	check("WithTokenLimit", "/v1/chat/completions", `{"model":"pricey","max_tokens":`+huge+`,"n":2,`+msg+`}`)

	if n := f.openai.Calls("pricey"); n != 0 {
		t.Fatalf("the provider was called %d times with a cap no hold covered", n)
	}
	if n := f.reservations(t, "k002"); n != 0 {
		t.Fatalf("%d holds for refused calls", n)
	}
	if a := f.account(t, "k002"); a != before {
		t.Fatalf("refused calls moved money: %+v -> %+v", before, a)
	}
	// A large cap that fits is still held in full: 402, not a free call.
	f.h.bridge.TenantTPM = 0
	f.exec(t, "UPDATE ai_model_config SET model_parameters = NULL WHERE model_name = 'pricey'")
	r := f.rawDo(t, tok, "POST", "/v1/chat/completions", `{"model":"pricey","max_tokens":1000000,"n":2,`+msg+`}`)
	if e := r.openAIErr(t); r.Status != http.StatusPaymentRequired || e.Code != "insufficient_balance" {
		t.Fatalf("2 × 1M tokens at 10 per 1k against 100: %d %s, want 402", r.Status, r.Body)
	}
}

// encoding/json matches member names under Unicode case folding, and "ſ"
// folds to "s": "beſt_of" sorts after "best_of", so an upstream decoding as
// Go does takes it, last, over the best_of the bridge read and held for.
// "N" beside "n" likewise. Such requests are refused, naming the member,
// and reach no provider.
func TestAttack2CaseFoldedCountsAreRefused(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	tok := f.token(t, adminUser, "k001")
	msg := `"messages":[{"role":"user","content":"hi"}]`
	for _, c := range []struct{ name, path, body, member string }{
		{"BestOfLongS", "/v1/completions", `{"model":"gpt-mini","prompt":"x","max_tokens":100,"best_of":1,"be\u017ft_of":20}`, "be\u017ft_of"},
		{"BestOfUpper", "/v1/completions", `{"model":"gpt-mini","prompt":"x","BEST_OF":20}`, "BEST_OF"},
		{"CompletionN", "/v1/completions", `{"model":"gpt-mini","prompt":"x","n":1,"N":128}`, "N"},
		{"ChatN", "/v1/chat/completions", `{"model":"gpt-mini","n":1,"N":128,` + msg + `}`, "N"},
		{"SeedChatN", "/api/v1/ai/bridge/chat", `{"N":128,` + msg + `}`, "N"},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := f.rawDo(t, tok, "POST", c.path, c.body)
			if r.Status != http.StatusBadRequest || !bytes.Contains(r.Body, []byte(`"ambiguous_field"`)) {
				t.Fatalf("%d %s, want 400 ambiguous_field", r.Status, r.Body)
			}
			if strings.HasPrefix(c.path, "/v1/") {
				if e := r.openAIErr(t); e.Param == nil || *e.Param != c.member {
					t.Fatalf("param %v, want %q", e.Param, c.member)
				}
			}
		})
	}
	if n := len(f.openai.Requests()); n != 0 {
		t.Fatalf("%d requests reached the provider", n)
	}
	if n := f.reservations(t, "k001"); n != 0 {
		t.Fatalf("%d holds for refused calls", n)
	}
}

// A member of the wrong JSON type is named as the client wrote it: not
// with the Go name of the struct the bridge embeds ("Sampling.max_tokens"),
// and not as "the body must be an object" when the member is one of those
// that take a string or an array of strings (stop, prompt, input).
func TestAttack2TypeErrorsNameTheMember(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	tok := f.token(t, adminUser, "k001")
	msg := `"messages":[{"role":"user","content":"hi"}]`
	for _, c := range []struct{ name, path, body, param string }{
		{"MaxTokens", "/v1/chat/completions", `{"model":"gpt-mini","max_tokens":"10",` + msg + `}`, "max_tokens"},
		{"TopP", "/v1/chat/completions", `{"model":"gpt-mini","top_p":"x",` + msg + `}`, "top_p"},
		{"StreamOptions", "/v1/chat/completions", `{"model":"gpt-mini","stream":true,"stream_options":"yes",` + msg + `}`, "stream_options"},
		{"IncludeUsage", "/v1/chat/completions", `{"model":"gpt-mini","stream":true,"stream_options":{"include_usage":"yes"},` + msg + `}`, "stream_options.include_usage"},
		{"StopNumbers", "/v1/chat/completions", `{"model":"gpt-mini","stop":[1],` + msg + `}`, "stop"},
		{"StopNumber", "/v1/chat/completions", `{"model":"gpt-mini","stop":7,` + msg + `}`, "stop"},
		{"CompletionMaxTokens", "/v1/completions", `{"model":"gpt-mini","prompt":"x","max_tokens":true}`, "max_tokens"},
		{"TokenPrompt", "/v1/completions", `{"model":"gpt-mini","prompt":[[1,2]]}`, "prompt"},
		{"TokenInput", "/v1/embeddings", `{"model":"embed-small","input":[[1,2]]}`, "input"},
		{"NumberInput", "/v1/embeddings", `{"model":"embed-small","input":5}`, "input"},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := f.rawDo(t, tok, "POST", c.path, c.body)
			e := r.openAIErr(t)
			if r.Status != http.StatusBadRequest || e.Code != "invalid_field_type" || e.Param == nil || *e.Param != c.param ||
				!strings.HasPrefix(e.Message, c.param+":") || bytes.Contains(r.Body, []byte("Sampling")) {
				t.Fatalf("%d %s, want 400 invalid_field_type naming %s", r.Status, r.Body, c.param)
			}
		})
	}
	// The seed's shape names the field the same way.
	r := f.rawDo(t, tok, "POST", "/api/v1/ai/bridge/chat", `{"max_tokens":"x",`+msg+`}`)
	var env struct {
		Error struct {
			Code   string            `json:"code"`
			Fields map[string]string `json:"fields"`
		} `json:"error"`
	}
	r.json(t, &env)
	if r.Status != http.StatusBadRequest || env.Error.Code != "invalid_field_type" || env.Error.Fields["max_tokens"] == "" {
		t.Fatalf("seed chat: %d %s, want the field max_tokens named", r.Status, r.Body)
	}
	if n := len(f.openai.Requests()); n != 0 {
		t.Fatalf("%d requests reached the provider", n)
	}
}

// Every answer under /v1/ is in OpenAI's error shape, the router's 404 and
// 405 included: an OpenAI SDK reads error.type, which the envelope lacks.
func TestAttack2V1NoRouteAnswersInOpenAIShape(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	tok := f.token(t, adminUser, "k001")
	for _, c := range []struct {
		method, path     string
		status           int
		typ, code, allow string
	}{
		{"GET", "/v1/chat/completions", 405, "invalid_request_error", "method_not_allowed", "POST"},
		{"DELETE", "/v1/embeddings", 405, "invalid_request_error", "method_not_allowed", "POST"},
		{"POST", "/v1/models", 405, "invalid_request_error", "method_not_allowed", "GET"},
		{"POST", "/v1/responses", 404, "not_found_error", "route_not_found", ""},
		{"GET", "/v1/models/gpt-mini/x", 404, "not_found_error", "route_not_found", ""},
	} {
		r := f.rawDo(t, tok, c.method, c.path, "")
		var body map[string]json.RawMessage
		r.json(t, &body)
		e := r.openAIErr(t)
		if r.Status != c.status || e.Type != c.typ || e.Code != c.code || body["success"] != nil || r.Header.Get("Allow") != c.allow {
			t.Errorf("%s %s: %d %s (Allow %q), want %d %s %s", c.method, c.path, r.Status, r.Body, r.Header.Get("Allow"), c.status, c.typ, c.code)
		}
	}
	// The routes themselves still answer, and the seed's routes keep the envelope.
	if r := f.rawDo(t, tok, "GET", "/v1/models", ""); r.Status != 200 {
		t.Fatalf("GET /v1/models: %d %s", r.Status, r.Body)
	}
	if r := f.rawDo(t, tok, "GET", "/api/v1/ai/bridge/nothing", ""); r.Status != 404 || !bytes.Contains(r.Body, []byte(`"success":false`)) {
		t.Fatalf("seed 404: %d %s", r.Status, r.Body)
	}
}

// A User-Agent that is not UTF-8 (net/http passes such bytes on) went to
// utf8mb4 columns as it was: every AI call, key creation and admin change
// made with it failed with a 500. It is stored with the bad bytes replaced.
func TestAttack2UserAgentNotUTF8IsNoServerError(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	const ua = "curl/8\xff\xfe"
	tok := f.token(t, adminUser, "k001")
	_, key := f.newKey(t, map[string]any{"name": "agent"})
	msg := `"messages":[{"role":"user","content":"hi"}]`
	for _, c := range []struct{ name, bearer, method, path, body string }{
		{"TokenChat", tok, "POST", "/v1/chat/completions", `{"model":"gpt-mini",` + msg + `}`},
		{"KeyChat", key, "POST", "/v1/chat/completions", `{"model":"gpt-mini",` + msg + `}`},
		{"Stream", key, "POST", "/v1/chat/completions", `{"model":"gpt-mini","stream":true,` + msg + `}`},
		{"SeedEmbedding", tok, "POST", "/api/v1/ai/bridge/embedding", `{"input":"x"}`},
		{"CreateKey", tok, "POST", "/api/v1/ai/keys", `{"name":"made by a bad agent"}`},
	} {
		if r := f.rawDo(t, c.bearer, c.method, c.path, c.body, "User-Agent", ua); r.Status/100 != 2 {
			t.Errorf("%s: %d %s", c.name, r.Status, r.Body)
		}
	}
	f.exec(t, "INSERT INTO admin_users (id, username, password_hash, role) VALUES (1, 'root', 'x', 'admin')")
	admin, _, err := f.signer.Issue(auth.KindAdmin, 1, auth.AudienceAdmin, "", "admin", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if r := f.rawDo(t, admin, "PUT", "/api/admin/ai/tenants/k001/account", `{"creditLimit":5}`, "User-Agent", ua); r.Status != 200 {
		t.Errorf("admin account change: %d %s", r.Status, r.Body)
	}
	f.settled()
	var n int
	if err := f.sys.QueryRow("SELECT COUNT(*) FROM ai_service_call_logs WHERE tenant_id = ? AND status = 'success' AND user_agent = ?",
		f.tenant["k001"], strings.ToValidUTF8(ua, "\uFFFD")).Scan(&n); err != nil || n != 4 {
		t.Fatalf("%d successful rows with the agent stored (%v), want 4", n, err)
	}
	if err := f.sys.QueryRow("SELECT COUNT(*) FROM audit_logs WHERE user_agent = ?", strings.ToValidUTF8(ua, "\uFFFD")).Scan(&n); err != nil || n != 2 {
		t.Fatalf("%d audit rows with the agent stored (%v), want 2 (the key, the account)", n, err)
	}
}

// upstream is a provider endpoint answering every request with status and
// body as they are (bytes that are not UTF-8, plain text).
func upstream(t *testing.T, status int, body []byte) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		w.WriteHeader(status)
		_, _ = w.Write(body)
	}))
	t.Cleanup(srv.Close)
	return srv
}

// A provider's error body that is not UTF-8 (a gateway's error page) went
// into the attempt's error_message as it was, which MySQL refused: the
// failed attempt's row stayed pending and the call never fell back. And a
// long plain-text error was cut at a byte count, splitting a character:
// the client read a U+FFFD. Both are stored and passed on as valid text.
func TestAttack2ProviderErrorBodiesThatAreNotUTF8(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	broken := upstream(t, http.StatusServiceUnavailable, []byte("upstream \xff\xfe down"))
	f.exec(t, `INSERT INTO ai_model_config (model_name, display_name, model_type, provider, endpoint_url, input_price_per_1k, output_price_per_1k, status)
		VALUES ('gateway-model', 'gateway', 'text', 'openai', ?, 0.001, 0.002, 'active')`, broken.URL)
	var id int64
	if err := f.sys.QueryRow("SELECT id FROM ai_model_config WHERE model_name = 'gateway-model'").Scan(&id); err != nil {
		t.Fatal(err)
	}
	f.models["gateway-model"] = id
	f.enable(t, "k002", "gateway-model", 1, `{"fallbacks":["gpt-mini"]}`)
	tok := f.token(t, otherAdmin, "k002")
	r := f.do(t, tok, "POST", "/v1/chat/completions", chatBody("gateway-model"))
	if r.Status != 200 || r.Header.Get(headerModel) != "gpt-mini" {
		t.Fatalf("fallback after a non-UTF-8 error page: %d %s %s", r.Status, r.Header.Get(headerModel), r.Body)
	}
	rows := f.logs(t, "request_id = ?", r.Header.Get(headerCallID))
	if len(rows) != 2 || rows[0].Status != "error" || rows[0].HTTPStatus.Int64 != 503 || rows[1].Status != "success" {
		t.Fatalf("rows %+v", rows)
	}

	// 400 with a long Chinese page: no fallback, the message passed on whole characters only.
	page := strings.Repeat("服务暂时不可用", 40) // 840 bytes, cut near 500
	chinese := upstream(t, http.StatusBadRequest, []byte(page))
	f.exec(t, "UPDATE ai_model_config SET endpoint_url = ? WHERE model_name = 'gateway-model'", chinese.URL)
	r = f.do(t, tok, "POST", "/v1/chat/completions", chatBody("gateway-model"))
	e := r.openAIErr(t)
	if r.Status != 400 || e.Code != "upstream_rejected" || strings.ContainsRune(e.Message, utf8.RuneError) || !strings.HasPrefix(e.Message, "服务暂时不可用") {
		t.Fatalf("long Chinese refusal: %d %s", r.Status, r.Body)
	}
	var stored string
	if err := f.sys.QueryRow("SELECT error_message FROM ai_service_call_logs WHERE tenant_id = ? AND status = 'error' ORDER BY id DESC LIMIT 1", f.tenant["k002"]).Scan(&stored); err != nil ||
		strings.ContainsRune(stored, utf8.RuneError) || !strings.Contains(stored, "服务暂时不可用") {
		t.Fatalf("stored error %q (%v)", stored, err)
	}
	if n := len(f.logs(t, "tenant_id = ? AND status = 'pending'", f.tenant["k002"])); n != 0 {
		t.Fatalf("%d rows left pending", n)
	}
}

// Content parts the bridge cannot read text from (audio, files, types
// newer than it) were estimated at no tokens: the hold covered none of
// them, and the provider's count for them, past the hold, was never
// charged. They are held for by their size, as unreadable content is.
func TestAttack2UnreadablePartsAreHeldFor(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.addModel(t, "listener", "multimodal", "openai", f.openai, "0.01", "0") // input only: 0.01 per 1k
	f.enable(t, "k002", "listener", 1, "")
	f.openai.SetModel("listener", fakeprovider.Model{Reply: "heard", PromptTokens: 9000, CompletionTokens: 1}) // 0.09
	tok := f.token(t, otherAdmin, "k002")
	before := f.account(t, "k002")
	for _, part := range []map[string]any{
		{"type": "input_audio", "input_audio": map[string]any{"data": strings.Repeat("UklGRiQ", 4300), "format": "wav"}},
		{"type": "file", "file": map[string]any{"filename": "a.pdf", "file_data": "data:application/pdf;base64," + strings.Repeat("JVBERi0", 4300)}},
	} {
		body := map[string]any{"model": "listener", "max_tokens": 10, "messages": []map[string]any{{"role": "user", "content": []any{part}}}}
		if r := f.do(t, tok, "POST", "/v1/chat/completions", body); r.Status != 200 {
			t.Fatalf("%s: %d %s", part["type"], r.Status, r.Body)
		}
	}
	after := f.account(t, "k002")
	if charged := before.Balance - after.Balance; charged != budget.MustParseAmount("0.18") || after.Reserved != 0 {
		t.Fatalf("charged %s for two calls of 9000 input tokens at 0.01 per 1k, want 0.18 (%+v)", charged, after)
	}
	var uncharged int
	if err := f.sys.QueryRow("SELECT COUNT(*) FROM ai_service_call_logs WHERE tenant_id = ? AND JSON_EXTRACT(metadata, '$.uncharged') IS NOT NULL", f.tenant["k002"]).Scan(&uncharged); err != nil || uncharged != 0 {
		t.Fatalf("%d calls with uncharged cost (%v)", uncharged, err)
	}
}

// Duplicate members: the last one counts, as encoding/json reads it, and
// what the provider is sent is what was checked and held for, once.
func TestAttack2DuplicateMembersAreHeldAsSent(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.addModel(t, "pricey", "text", "openai", f.openai, "0", "10")
	f.enable(t, "k002", "pricey", 1, "")
	tok := f.token(t, otherAdmin, "k002")
	r := f.rawDo(t, tok, "POST", "/v1/chat/completions",
		`{"model":"gpt-mini","model":"pricey","n":1,"n":3,"max_tokens":10,"max_tokens":100,"messages":[{"role":"user","content":"hi"}]}`)
	if r.Status != 200 || r.Header.Get(headerModel) != "pricey" {
		t.Fatalf("%d %s", r.Status, r.Body)
	}
	f.settled()
	var amount string
	if err := f.sys.QueryRow("SELECT amount FROM ai_budget_reservations WHERE request_id = ?", r.Header.Get(headerCallID)).Scan(&amount); err != nil ||
		budget.MustParseAmount(amount) != budget.MustParseAmount("3") {
		t.Fatalf("held %s (%v), want 3 (3 completions of 100 tokens at 10 per 1k)", amount, err)
	}
	reqs := f.openai.Requests()
	sent := reqs[len(reqs)-1].Body
	if bytes.Count(sent, []byte(`"n":`)) != 1 || !bytes.Contains(sent, []byte(`"n":3`)) || bytes.Count(sent, []byte(`max_tokens":`)) != 0 ||
		!bytes.Contains(sent, []byte(`"max_completion_tokens":100`)) || bytes.Count(sent, []byte(`"model":`)) != 1 {
		t.Fatalf("sent upstream %s", sent)
	}
}

// A key limited to some models never reaches another, however the model
// is chosen: "auto" picks the highest-priority model the key allows, and a
// fallback never leaves the key's list (here the only other model, of a
// higher priority, is claude-mini, which the key does not allow).
func TestAttack2KeyModelsBindAutoAndFallback(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.enable(t, "k001", "claude-mini", 1, "") // claude-mini before gpt-mini
	_, key := f.newKey(t, map[string]any{"name": "mini", "models": []string{"gpt-mini"}})
	r := f.do(t, key, "POST", "/api/v1/ai/bridge/chat", map[string]any{"messages": []map[string]any{{"role": "user", "content": "hi"}}})
	data, _ := r.envelope(t)
	if r.Status != 200 || !bytes.Contains(data, []byte(`"model":"gpt-mini"`)) {
		t.Fatalf("auto with a gpt-mini key: %d %s", r.Status, r.Body)
	}
	if r = f.do(t, key, "POST", "/v1/chat/completions", chatBody("auto")); r.Status != 200 || r.Header.Get(headerModel) != "gpt-mini" {
		t.Fatalf("/v1 auto with a gpt-mini key: %d %s", r.Status, r.Body)
	}
	f.openai.SetModel("gpt-mini", fakeprovider.Model{Fail: fakeprovider.Failure{Status: 503}})
	f.enable(t, "k001", "gpt-mini", 10, `{"fallbacks":["claude-mini"]}`)
	if r = f.do(t, key, "POST", "/v1/chat/completions", chatBody("gpt-mini")); r.Status != http.StatusBadGateway {
		t.Fatalf("gpt-mini down, key without claude-mini: %d %s, want 502", r.Status, r.Body)
	}
	if n := f.anthropic.Calls("claude-mini"); n != 0 {
		t.Fatalf("a gpt-mini key's call fell back to claude-mini %d times", n)
	}
	// The key's models: gpt-mini only, whatever the tenant enabled.
	r = f.do(t, key, "GET", "/api/v1/ai/bridge/models", nil)
	if data, _ := r.envelope(t); r.Status != 200 || bytes.Contains(data, []byte("claude-mini")) || bytes.Contains(data, []byte("embed-small")) {
		t.Fatalf("key's models: %d %s", r.Status, r.Body)
	}
	if n := len(f.logs(t, fmt.Sprintf("model_name = 'claude-mini' AND tenant_id = %d", f.tenant["k001"]))); n != 0 {
		t.Fatalf("%d claude-mini rows for a gpt-mini key", n)
	}
}

// TestAdminAccountChangesTakeEffectAtOnce: an admin's token outlives no
// change to the account — deleted or disabled it is refused (403
// account_disabled), demoted it acts with the lesser role — and nothing
// changes for a refused request.
func TestAdminAccountChangesTakeEffectAtOnce(t *testing.T) {
	t.Parallel()
	f := newAdminFixture(t)
	for _, a := range []struct {
		id   int64
		name string
	}{{3, "gone"}, {4, "off"}, {5, "demoted"}} {
		if _, err := f.db.Exec("INSERT INTO admin_users (id, username, password_hash, role) VALUES (?, ?, 'x', 'super_admin')", a.id, a.name); err != nil {
			t.Fatal(err)
		}
	}
	token := func(id int64) string {
		tok, _, err := f.signer.Issue(auth.KindAdmin, id, auth.AudienceAdmin, "", "super_admin", time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	tokens := map[int64]string{3: token(3), 4: token(4), 5: token(5)}
	code := func(r httpapitest.Reply) string {
		if r.Error == nil {
			return ""
		}
		return r.Error.Code
	}
	// Signed in as super admins; then the accounts changed.
	f.db.Exec("DELETE FROM admin_users WHERE id = 3")
	f.db.Exec("UPDATE admin_users SET status = 'inactive' WHERE id = 4")
	f.db.Exec("UPDATE admin_users SET role = 'operator' WHERE id = 5")
	create := map[string]any{"name": "sneaky", "provider": "openai"}
	for _, id := range []int64{3, 4} {
		for _, r := range []struct {
			method, path string
			body         any
		}{{"GET", "/api/admin/ai/models", nil}, {"POST", "/api/admin/ai/models", create}} {
			got := f.as(t, tokens[id], r.method, r.path, r.body)
			if got.Status != http.StatusForbidden || code(got) != "account_disabled" {
				t.Errorf("admin %d (deleted or disabled) %s %s: %d %s, want 403 account_disabled", id, r.method, r.path, got.Status, got.Raw)
			}
		}
	}
	if got := f.as(t, tokens[5], "GET", "/api/admin/ai/models", nil); got.Status != http.StatusOK {
		t.Errorf("demoted admin reading: %d %s", got.Status, got.Raw)
	}
	if got := f.as(t, tokens[5], "POST", "/api/admin/ai/models", create); got.Status != http.StatusForbidden || code(got) != "permission_denied" {
		t.Errorf("demoted admin creating a model: %d %s, want 403 permission_denied", got.Status, got.Raw)
	}
	if n := f.count(t, "SELECT COUNT(*) FROM ai_model_config WHERE model_name = 'sneaky'"); n != 0 {
		t.Errorf("a refused admin created a model")
	}
}
