package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rsa"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/unitenant/unitenant/shared/aibridge"
	"github.com/unitenant/unitenant/shared/aiprovider/fakeprovider"
	"github.com/unitenant/unitenant/shared/auth"
	"github.com/unitenant/unitenant/shared/budget"
	"github.com/unitenant/unitenant/shared/config"
	"github.com/unitenant/unitenant/shared/logging"
	"github.com/unitenant/unitenant/shared/provisioning"
	"github.com/unitenant/unitenant/shared/secretbox"
	"github.com/unitenant/unitenant/shared/serverless"
	"github.com/unitenant/unitenant/shared/sqldb/sqldbtest"
	"github.com/unitenant/unitenant/shared/tenancy"
	"github.com/unitenant/unitenant/tests/testenv"
)

// fixture is ai-chat over HTTP in front of a real system database with two
// active tenants (k001, k002; the bridge needs their rows and placements,
// never their databases), members with real RS256 tokens, and fake
// providers speaking OpenAI's and Anthropic's wire formats.
type fixture struct {
	srv       *httptest.Server
	sys       *sql.DB
	box       *secretbox.Box
	h         *handler
	signer    *auth.Signer
	openai    *fakeprovider.Server
	anthropic *fakeprovider.Server
	tenant    map[string]int64 // code -> id
	models    map[string]int64 // name -> id
}

// Users: 1 is k001's admin, 2 a plain member of k001, 3 k002's admin.
const (
	adminUser  = 1
	memberUser = 2
	otherAdmin = 3
)

func newFixture(t testing.TB) *fixture {
	t.Helper()
	ctx := context.Background()
	sys := testenv.NewSystem(t)
	f := &fixture{sys: sys.DB, box: sys.Box, tenant: map[string]int64{}, models: map[string]int64{},
		openai:    fakeprovider.NewOpenAI(t, fakeprovider.Options{}),
		anthropic: fakeprovider.NewAnthropic(t, fakeprovider.Options{APIKey: "anthropic-key"}),
	}
	cluster, err := provisioning.EnsureCluster(ctx, sys.DB, sys.Box, "default", sqldbtest.ServerDSN(t), 0)
	if err != nil {
		t.Fatal(err)
	}
	for i, code := range []string{"k001", "k002"} {
		res, err := sys.DB.Exec("INSERT INTO tenants (tenant_code, tenant_name, subdomain, status) VALUES (?, ?, ?, 'active')", code, "Kindergarten "+code, code)
		if err != nil {
			t.Fatal(err)
		}
		id, _ := res.LastInsertId()
		f.tenant[code] = id
		f.exec(t, "INSERT INTO tenant_databases (tenant_id, cluster_id, database_name, status) VALUES (?, ?, ?, 'ready')", id, cluster, fmt.Sprintf("%s_%s", sqldbtest.Name(t), code))
		f.exec(t, "INSERT INTO tenant_accounts (tenant_id, balance) VALUES (?, 100)", id)
		f.exec(t, "INSERT INTO global_users (id, phone, password_hash, real_name) VALUES (?, ?, 'x', 'Admin')", 2*i+1, fmt.Sprintf("1380000000%d", 2*i+1))
		f.exec(t, "INSERT INTO global_user_tenant_relations (global_user_id, tenant_id, tenant_code, role_in_tenant) VALUES (?, ?, ?, 'admin')", 2*i+1, id, code)
	}
	f.exec(t, "INSERT INTO global_users (id, phone, password_hash, real_name) VALUES (2, '13800000002', 'x', 'Member')")
	f.exec(t, "INSERT INTO global_user_tenant_relations (global_user_id, tenant_id, tenant_code, role_in_tenant) VALUES (2, ?, 'k001', 'member')", f.tenant["k001"])

	// Prices per 1000 tokens: input 0.001, output 0.002.
	f.addModel(t, "gpt-mini", "text", "openai", f.openai, "0.001", "0.002")
	f.addModel(t, "claude-mini", "text", "anthropic", f.anthropic, "0.003", "0.015")
	f.addModel(t, "embed-small", "embedding", "openai", f.openai, "0.0001", "0")
	for _, code := range []string{"k001", "k002"} {
		f.enable(t, code, "gpt-mini", 10, "")
		f.enable(t, code, "embed-small", 50, "")
	}
	f.enable(t, "k001", "claude-mini", 20, "")

	env := map[string]string{"BASE_DOMAIN": "localhost"}
	for _, kv := range sys.Secrets {
		k, v, _ := strings.Cut(kv, "=")
		env[k] = v
	}
	ten, err := tenancy.Load(config.FromMap(env), false, sys.DB, logging.Discard())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ten.Router.Close() })
	f.signer = auth.NewSigner(sys.SigningKey, nil)
	f.h = &handler{db: sys.DB, box: sys.Box, verifier: auth.NewVerifier([]*rsa.PublicKey{f.signer.Public()}, nil), tenants: ten,
		bridge: &aibridge.Bridge{DB: sqldbtest.Batching(t, sys.DSN), Box: sys.Box, Log: testLog(t)}, log: testLog(t), now: time.Now}
	f.srv = httptest.NewServer(serverless.Handler(newHandler(f.h), logging.Discard(), maxRequestBody))
	t.Cleanup(f.srv.Close)
	return f
}

// testLog shows the function's errors in the test's output.
func testLog(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

type tWriter struct{ t testing.TB }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

func (f *fixture) exec(t testing.TB, q string, args ...any) {
	t.Helper()
	if _, err := f.sys.Exec(q, args...); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	f.forget()
}

// forget drops the bridge's cache after the fixture changed the system
// database behind the function's back, as another instance would: the
// function would see it within aibridge.DefaultCacheTTL
// (TestCachedKeysAndModels); the tests need it at once.
func (f *fixture) forget() {
	if f.h != nil {
		f.h.bridge.Forget()
	}
}

// addModel registers a model served by fake with its API key sealed.
func (f *fixture) addModel(t testing.TB, name, typ, provider string, fake *fakeprovider.Server, in, out string) {
	t.Helper()
	res, err := f.sys.Exec(`INSERT INTO ai_model_config (model_name, display_name, model_type, provider, endpoint_url, api_key_encrypted, input_price_per_1k, output_price_per_1k, status)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'active')`, name, "Model "+name, typ, provider, fake.BaseURL(), f.box.Seal([]byte(fake.APIKey), aibridge.ModelKeyAAD(name)), in, out)
	if err != nil {
		t.Fatal(err)
	}
	f.models[name], _ = res.LastInsertId()
	f.forget()
}

// enable enables model for tenant code at priority, with custom parameters.
func (f *fixture) enable(t testing.TB, code, model string, priority int, custom string) {
	t.Helper()
	var c any
	if custom != "" {
		c = custom
	}
	f.exec(t, `INSERT INTO tenant_ai_model_configs (tenant_id, model_id, is_enabled, priority, custom_parameters) VALUES (?, ?, 1, ?, ?)
		ON DUPLICATE KEY UPDATE is_enabled = 1, priority = VALUES(priority), custom_parameters = VALUES(custom_parameters)`, f.tenant[code], f.models[model], priority, c)
}

// token is a tenant-scoped token of user in tenant code.
func (f *fixture) token(t testing.TB, user int64, code string) string {
	t.Helper()
	tok, _, err := f.signer.Issue(auth.KindUser, user, auth.AudienceTenant, code, "", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// reply is a raw answer.
type reply struct {
	Status  int
	Header  http.Header
	Trailer http.Header // what came after the body (a stream's Server-Timing)
	Body    []byte
}

func (r reply) json(t testing.TB, v any) {
	t.Helper()
	if err := json.Unmarshal(r.Body, v); err != nil {
		t.Fatalf("%d %s: %v", r.Status, r.Body, err)
	}
}

// envelope reads a seed-shaped answer.
func (r reply) envelope(t testing.TB) (data json.RawMessage, code string) {
	t.Helper()
	var e struct {
		Success bool            `json:"success"`
		Data    json.RawMessage `json:"data"`
		Error   *struct {
			Code string `json:"code"`
		} `json:"error"`
	}
	r.json(t, &e)
	if e.Error != nil {
		code = e.Error.Code
	}
	return e.Data, code
}

// openAIErr reads an OpenAI-shaped error answer.
func (r reply) openAIErr(t *testing.T) openAIErrorDetail {
	t.Helper()
	var e openAIErrorBody
	r.json(t, &e)
	return e.Error
}

func (f *fixture) do(t testing.TB, bearer, method, path string, body any, header ...string) reply {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, f.srv.URL+path, rd)
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := f.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return reply{Status: resp.StatusCode, Header: resp.Header, Trailer: resp.Trailer, Body: b}
}

// newKey creates an API key for k001 through the API.
func (f *fixture) newKey(t testing.TB, body map[string]any) (id int64, secret string) {
	t.Helper()
	r := f.do(t, f.token(t, adminUser, "k001"), "POST", "/api/v1/ai/keys", body)
	data, code := r.envelope(t)
	if r.Status != http.StatusCreated {
		t.Fatalf("create key: %d %s %s", r.Status, code, r.Body)
	}
	var k struct {
		ID  int64  `json:"id"`
		Key string `json:"key"`
	}
	if err := json.Unmarshal(data, &k); err != nil {
		t.Fatal(err)
	}
	return k.ID, k.Key
}

// logRow is an ai_service_call_logs row.
type logRow struct {
	Attempt                   int
	Model, Status, Source     string
	In, Out, Total            int
	Cost                      string
	HTTPStatus                sql.NullInt64
	Streamed, ClientGone      bool
	UserID                    sql.NullString
	KeyID                     sql.NullInt64
	InPrice, OutPrice         string
	ResponseMS, FirstByteMS   sql.NullInt64
	ErrorCode                 sql.NullString
	TenantID                  int64
	CompletedAt               sql.NullTime
	RequestID, Endpoint, Prov string
}

// settled waits for the settlements of the calls answered so far: a call
// answers once its row is durable, a moment before the settlement lands.
func (f *fixture) settled() { f.h.bridge.Wait() }

func (f *fixture) logs(t *testing.T, where string, args ...any) []logRow {
	t.Helper()
	f.settled()
	rows, err := f.sys.Query(`SELECT attempt, model_name, status, usage_source, input_tokens, output_tokens, total_tokens, cost, http_status,
		streamed, client_disconnected, user_id, api_key_id, input_price_per_1k, output_price_per_1k, response_time_ms, first_byte_ms, error_code,
		tenant_id, completed_at, request_id, endpoint, provider
		FROM ai_service_call_logs WHERE `+where+` ORDER BY id`, args...)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []logRow
	for rows.Next() {
		var l logRow
		if err := rows.Scan(&l.Attempt, &l.Model, &l.Status, &l.Source, &l.In, &l.Out, &l.Total, &l.Cost, &l.HTTPStatus,
			&l.Streamed, &l.ClientGone, &l.UserID, &l.KeyID, &l.InPrice, &l.OutPrice, &l.ResponseMS, &l.FirstByteMS, &l.ErrorCode,
			&l.TenantID, &l.CompletedAt, &l.RequestID, &l.Endpoint, &l.Prov); err != nil {
			t.Fatal(err)
		}
		out = append(out, l)
	}
	return out
}

// window is the count of the rate-limit windows of key, once the calls
// answered so far have settled.
func (f *fixture) window(t *testing.T, key string) int64 {
	t.Helper()
	f.settled()
	var n int64
	if err := f.sys.QueryRow("SELECT COALESCE(SUM(`count`), 0) FROM rate_limit_counters WHERE bucket_key = ?", key).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// account reads a tenant's account.
func (f *fixture) account(t *testing.T, code string) budget.Account {
	t.Helper()
	f.settled()
	a, err := budget.GetAccount(context.Background(), f.sys, f.tenant[code])
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func chatBody(model string, extra ...any) map[string]any {
	b := map[string]any{"model": model, "messages": []map[string]any{{"role": "user", "content": "Hello there, bridge"}}}
	for i := 0; i+1 < len(extra); i += 2 {
		b[extra[i].(string)] = extra[i+1]
	}
	return b
}

// sse reads a server-sent event stream's data lines.
func sse(t *testing.T, body io.Reader) []string {
	t.Helper()
	var out []string
	sc := bufio.NewScanner(body)
	for sc.Scan() {
		if d, ok := strings.CutPrefix(sc.Text(), "data: "); ok {
			out = append(out, d)
		}
	}
	return out
}

func TestSeedBridgeChatIsMeteredAndSettledBeforeTheAnswer(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.openai.SetModel("gpt-mini", fakeprovider.Model{Reply: "您好！我是幼儿园管理系统AI助手", PromptTokens: 15, CompletionTokens: 120})
	before := f.account(t, "k001")
	r := f.do(t, f.token(t, adminUser, "k001"), "POST", "/api/v1/ai/bridge/chat",
		chatBody("gpt-mini", "temperature", 0.7, "max_tokens", 2000), "X-Tenant-Code", "k001")
	data, code := r.envelope(t)
	if r.Status != http.StatusOK {
		t.Fatalf("%d %s %s", r.Status, code, r.Body)
	}
	var out struct {
		Message string `json:"message"`
		Model   string `json:"model"`
		CallID  string `json:"callId"`
		Usage   struct {
			InputTokens, OutputTokens, TotalTokens int
			Cost                                   json.Number
			ResponseTime                           *int64
			Source                                 string
		} `json:"usage"`
	}
	if err := json.Unmarshal(data, &out); err != nil {
		t.Fatal(err)
	}
	// 15 × 0.001/1000 + 120 × 0.002/1000 = 0.000255, charged as 0.0003 (the account's step).
	if out.Message != "您好！我是幼儿园管理系统AI助手" || out.Model != "gpt-mini" || out.Usage.InputTokens != 15 || out.Usage.OutputTokens != 120 ||
		out.Usage.TotalTokens != 135 || out.Usage.Cost.String() != "0.0003" || out.Usage.ResponseTime == nil || out.Usage.Source != "provider" {
		t.Fatalf("answer %s", data)
	}
	// The row is complete the moment the answer arrives, and the account settled.
	rows := f.logs(t, "request_id = ?", out.CallID)
	if len(rows) != 1 {
		t.Fatalf("rows %+v", rows)
	}
	l := rows[0]
	if l.Status != "success" || l.In != 15 || l.Out != 120 || l.Total != 135 || l.Cost != "0.000300" || l.Source != "provider" ||
		l.UserID.String != "1" || l.KeyID.Valid || l.InPrice != "0.001000" || l.OutPrice != "0.002000" || !l.ResponseMS.Valid ||
		!l.CompletedAt.Valid || l.TenantID != f.tenant["k001"] || l.Endpoint != "chat" || l.Prov != "openai" {
		t.Fatalf("row %+v", l)
	}
	after := f.account(t, "k001")
	if after.Balance != before.Balance-budget.MustParseAmount("0.0003") || after.Reserved != 0 {
		t.Fatalf("account %+v -> %+v", before, after)
	}
	var status string
	if err := f.sys.QueryRow("SELECT status FROM ai_budget_reservations WHERE request_id = ?", out.CallID).Scan(&status); err != nil || status != "settled" {
		t.Fatalf("reservation %q %v", status, err)
	}
	// The request the provider got carried the bridge's own key, never the caller's token.
	reqs := f.openai.Requests()
	if got := reqs[len(reqs)-1].Header.Get("Authorization"); got != "Bearer "+f.openai.APIKey {
		t.Fatalf("provider auth %q", got)
	}
}

func TestSeedBridgeCompletionEmbeddingAndModels(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	tok := f.token(t, memberUser, "k001")
	r := f.do(t, tok, "POST", "/api/v1/ai/bridge/embedding", map[string]any{"input": "招生简章"})
	data, code := r.envelope(t)
	var emb struct {
		Embedding  []float64   `json:"embedding"`
		Embeddings [][]float64 `json:"embeddings"`
		Model      string      `json:"model"`
	}
	if r.Status != 200 || json.Unmarshal(data, &emb) != nil || len(emb.Embedding) != 8 || len(emb.Embeddings) != 1 || emb.Model != "embed-small" {
		t.Fatalf("embedding %d %s %s", r.Status, code, r.Body)
	}
	r = f.do(t, tok, "POST", "/api/v1/ai/bridge/completion", map[string]any{"prompt": "Once upon a time", "max_tokens": 20})
	data, code = r.envelope(t)
	var comp struct {
		Text  string `json:"text"`
		Model string `json:"model"`
	}
	if r.Status != 200 || json.Unmarshal(data, &comp) != nil || comp.Text == "" || comp.Model != "gpt-mini" {
		t.Fatalf("completion %d %s %s", r.Status, code, r.Body)
	}
	r = f.do(t, tok, "GET", "/api/v1/ai/bridge/models", nil)
	data, _ = r.envelope(t)
	var list struct {
		Models []struct {
			Name            string      `json:"name"`
			Priority        int         `json:"priority"`
			InputPricePer1k json.Number `json:"inputPricePer1k"`
		} `json:"models"`
	}
	if err := json.Unmarshal(data, &list); err != nil || len(list.Models) != 3 || list.Models[0].Name != "gpt-mini" ||
		list.Models[1].Name != "claude-mini" || list.Models[2].Name != "embed-small" || list.Models[0].InputPricePer1k.String() != "0.001" {
		t.Fatalf("models %s", r.Body)
	}
	// k002 never sees k001's Anthropic model.
	r = f.do(t, f.token(t, otherAdmin, "k002"), "GET", "/api/v1/ai/bridge/models", nil)
	if bytes.Contains(r.Body, []byte("claude-mini")) {
		t.Fatalf("k002 models %s", r.Body)
	}
}

func TestSelectionAutoAndModelNotEnabled(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	tok := f.token(t, adminUser, "k001")
	// auto is the highest-priority chat model; moving claude first moves auto.
	r := f.do(t, tok, "POST", "/v1/chat/completions", chatBody("auto"))
	if r.Status != 200 || r.Header.Get(headerModel) != "gpt-mini" {
		t.Fatalf("auto: %d %s %s", r.Status, r.Header.Get(headerModel), r.Body)
	}
	f.enable(t, "k001", "claude-mini", 1, "")
	r = f.do(t, tok, "POST", "/v1/chat/completions", chatBody("auto"))
	if r.Status != 200 || r.Header.Get(headerModel) != "claude-mini" {
		t.Fatalf("auto after reprioritising: %d %s %s", r.Status, r.Header.Get(headerModel), r.Body)
	}
	// k002 has not enabled claude-mini: 403, nothing reserved, nothing logged, no provider call.
	calls := f.anthropic.Calls("claude-mini")
	r = f.do(t, f.token(t, otherAdmin, "k002"), "POST", "/v1/chat/completions", chatBody("claude-mini"))
	if e := r.openAIErr(t); r.Status != 403 || e.Code != "model_not_enabled" || e.Type != "permission_error" {
		t.Fatalf("not enabled: %d %s", r.Status, r.Body)
	}
	if f.anthropic.Calls("claude-mini") != calls || len(f.logs(t, "tenant_id = ?", f.tenant["k002"])) != 0 {
		t.Fatal("a refused model reached the provider or the log")
	}
	// A disabled model, an unknown one, an embedding model for chat.
	f.exec(t, "UPDATE tenant_ai_model_configs SET is_enabled = 0 WHERE tenant_id = ? AND model_id = ?", f.tenant["k001"], f.models["claude-mini"])
	for model, want := range map[string]string{"claude-mini": "model_not_enabled", "gpt-9": "model_not_enabled", "embed-small": "model_type_mismatch"} {
		r = f.do(t, tok, "POST", "/v1/chat/completions", chatBody(model))
		if e := r.openAIErr(t); e.Code != want {
			t.Errorf("%s: %d %s", model, r.Status, r.Body)
		}
	}
	// Bad input names the problem.
	for name, body := range map[string]map[string]any{
		"no model":    {"messages": []map[string]any{{"role": "user", "content": "x"}}},
		"no messages": {"model": "gpt-mini", "messages": []any{}},
		"bad role":    {"model": "gpt-mini", "messages": []map[string]any{{"role": "wizard", "content": "x"}}},
		"max_tokens":  chatBody("gpt-mini", "max_tokens", 0),
		"temperature": chatBody("gpt-mini", "temperature", 7),
	} {
		r = f.do(t, tok, "POST", "/v1/chat/completions", body)
		if e := r.openAIErr(t); r.Status != 400 || e.Param == nil || e.Type != "invalid_request_error" {
			t.Errorf("%s: %d %s", name, r.Status, r.Body)
		}
	}
}

func TestStreamingRelaysChunksAndMetersProviderUsage(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	// The provider knows the model by a dated id of its own.
	f.exec(t, "UPDATE ai_model_config SET upstream_model = 'gpt-mini-2026-05-01' WHERE model_name = 'gpt-mini'")
	f.forget()
	f.openai.SetModel("gpt-mini-2026-05-01", fakeprovider.Model{Reply: "one two three four", PromptTokens: 9, CompletionTokens: 4})
	req, _ := http.NewRequest("POST", f.srv.URL+"/v1/chat/completions", strings.NewReader(`{"model":"gpt-mini","stream":true,"messages":[{"role":"user","content":"count"}]}`))
	req.Header.Set("Authorization", "Bearer "+f.token(t, adminUser, "k001"))
	resp, err := f.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	events := sse(t, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/event-stream" || len(events) < 2 || events[len(events)-1] != "[DONE]" {
		t.Fatalf("%d %v", resp.StatusCode, events)
	}
	var text strings.Builder
	for _, e := range events[:len(events)-1] {
		var c struct {
			Choices []struct {
				Delta struct{ Content string } `json:"delta"`
			} `json:"choices"`
			Usage any    `json:"usage"`
			Model string `json:"model"`
		}
		if err := json.Unmarshal([]byte(e), &c); err != nil {
			t.Fatal(err)
		}
		if c.Model != "gpt-mini" {
			t.Fatalf("chunk names model %q, want the bridge's gpt-mini: %s", c.Model, e)
		}
		if c.Usage != nil {
			t.Fatalf("usage chunk relayed to a client that did not ask for it: %s", e)
		}
		for _, ch := range c.Choices {
			text.WriteString(ch.Delta.Content)
		}
	}
	if strings.TrimSpace(text.String()) != "one two three four" {
		t.Fatalf("text %q", text.String())
	}
	rows := f.logs(t, "tenant_id = ?", f.tenant["k001"])
	if len(rows) != 1 || rows[0].Status != "success" || rows[0].Source != "provider" || rows[0].In != 9 || rows[0].Out != 4 || !rows[0].Streamed || !rows[0].FirstByteMS.Valid {
		t.Fatalf("rows %+v", rows)
	}
	// Upstream the bridge asked for usage although the client did not.
	reqs := f.openai.Requests()
	if !bytes.Contains(reqs[len(reqs)-1].Body, []byte(`"include_usage":true`)) || !bytes.Contains(reqs[len(reqs)-1].Body, []byte(`"model":"gpt-mini-2026-05-01"`)) {
		t.Fatalf("upstream body %s", reqs[len(reqs)-1].Body)
	}
}

func TestStreamingClientDisconnectStillMetersProviderUsage(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.openai.SetModel("gpt-mini", fakeprovider.Model{Reply: "a b c d e f g h i j", PromptTokens: 7, CompletionTokens: 10, ChunkDelay: 40 * time.Millisecond})
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, "POST", f.srv.URL+"/v1/chat/completions", strings.NewReader(`{"model":"gpt-mini","stream":true,"messages":[{"role":"user","content":"letters"}]}`))
	req.Header.Set("Authorization", "Bearer "+f.token(t, adminUser, "k001"))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	rd := bufio.NewReader(resp.Body)
	if line, err := rd.ReadString('\n'); err != nil || !strings.HasPrefix(line, "data: ") {
		t.Fatalf("first event %q %v", line, err)
	}
	cancel() // half-way: the client leaves
	resp.Body.Close()

	var rows []logRow
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if rows = f.logs(t, "tenant_id = ? AND status <> 'pending'", f.tenant["k001"]); len(rows) > 0 {
			break
		}
	}
	if len(rows) != 1 {
		t.Fatalf("rows %+v", rows)
	}
	l := rows[0]
	// 7 × 0.001/1000 + 10 × 0.002/1000 = 0.000027 -> 0.0000 at the account's step.
	if l.Status != "success" || !l.ClientGone || l.Source != "provider" || l.In != 7 || l.Out != 10 {
		t.Fatalf("row %+v", l)
	}
	// The provider was read to its end, not cut off when the client left.
	done := f.openai.WaitDone(t, "gpt-mini")
	if done[len(done)-1].ClientGone {
		t.Fatal("the bridge abandoned the provider's stream")
	}
	var status string
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if err := f.sys.QueryRow("SELECT status FROM ai_budget_reservations WHERE request_id = ?", l.RequestID).Scan(&status); err == nil && status != "reserved" {
			break
		}
	}
	if status != "released" && status != "settled" {
		t.Fatalf("reservation %s", status)
	}
	if a := f.account(t, "k001"); a.Reserved != 0 {
		t.Fatalf("account %+v", a)
	}
}

func TestFallbackLogsEveryAttemptAndNeverLoops(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	tok := f.token(t, adminUser, "k001")
	// A (gpt-mini) answers 503, B (claude-mini) answers: two rows, B's answer.
	f.openai.SetModel("gpt-mini", fakeprovider.Model{Fail: fakeprovider.Failure{Status: 503}})
	r := f.do(t, tok, "POST", "/api/v1/ai/bridge/chat", chatBody("gpt-mini"))
	data, code := r.envelope(t)
	var out struct {
		Model    string `json:"model"`
		CallID   string `json:"callId"`
		Attempts int    `json:"attempts"`
	}
	if r.Status != 200 || json.Unmarshal(data, &out) != nil || out.Model != "claude-mini" || out.Attempts != 2 {
		t.Fatalf("%d %s %s", r.Status, code, r.Body)
	}
	rows := f.logs(t, "request_id = ?", out.CallID)
	if len(rows) != 2 || rows[0].Model != "gpt-mini" || rows[0].Status != "error" || rows[0].HTTPStatus.Int64 != 503 || rows[0].Cost != "0.000000" ||
		rows[1].Model != "claude-mini" || rows[1].Status != "success" || rows[1].Attempt != 2 {
		t.Fatalf("rows %+v", rows)
	}

	// A cycle: A falls back to B, B to A, both down. Each is tried once.
	f.enable(t, "k001", "gpt-mini", 10, `{"fallbacks":["claude-mini"]}`)
	f.enable(t, "k001", "claude-mini", 20, `{"fallbacks":["gpt-mini"]}`)
	f.anthropic.SetModel("claude-mini", fakeprovider.Model{Fail: fakeprovider.Failure{Status: 529}})
	a, b := f.openai.Calls("gpt-mini"), f.anthropic.Calls("claude-mini")
	before := f.account(t, "k001")
	r = f.do(t, tok, "POST", "/v1/chat/completions", chatBody("gpt-mini"))
	if e := r.openAIErr(t); r.Status != 502 || e.Code != "upstream_error" || e.Type != "api_error" {
		t.Fatalf("both down: %d %s", r.Status, r.Body)
	}
	if f.openai.Calls("gpt-mini") != a+1 || f.anthropic.Calls("claude-mini") != b+1 {
		t.Fatalf("calls: A %d B %d", f.openai.Calls("gpt-mini")-a, f.anthropic.Calls("claude-mini")-b)
	}
	var n int
	f.sys.QueryRow("SELECT COUNT(*) FROM ai_service_call_logs WHERE tenant_id = ? AND status = 'error'", f.tenant["k001"]).Scan(&n)
	if n != 3 {
		t.Fatalf("error rows %d, want 3 (one from the first call, two from this one)", n)
	}
	if after := f.account(t, "k001"); after.Balance != before.Balance || after.Reserved != 0 {
		t.Fatalf("a failed call moved money: %+v -> %+v", before, after)
	}

	// A 400 from the provider is the request's fault: no fallback.
	f.openai.SetModel("gpt-mini", fakeprovider.Model{Fail: fakeprovider.Failure{Status: 400}})
	a, b = f.openai.Calls("gpt-mini"), f.anthropic.Calls("claude-mini")
	r = f.do(t, tok, "POST", "/v1/chat/completions", chatBody("gpt-mini"))
	if r.Status != 400 || f.openai.Calls("gpt-mini") != a+1 || f.anthropic.Calls("claude-mini") != b {
		t.Fatalf("400: %d %s", r.Status, r.Body)
	}
}

func TestStreamNeverFallsBackAfterTheFirstByte(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	tok := f.token(t, adminUser, "k001")
	// Before the first byte a stream falls back like any call.
	f.openai.SetModel("gpt-mini", fakeprovider.Model{Fail: fakeprovider.Failure{Status: 502, Times: 1}})
	req, _ := http.NewRequest("POST", f.srv.URL+"/v1/chat/completions", strings.NewReader(`{"model":"gpt-mini","stream":true,"messages":[{"role":"user","content":"hi"}]}`))
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := f.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	events := sse(t, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get(headerModel) != "claude-mini" || events[len(events)-1] != "[DONE]" {
		t.Fatalf("%d %s %v", resp.StatusCode, resp.Header.Get(headerModel), events)
	}
	// Cut after two chunks: the client has bytes, so no second model; an error event ends it.
	f.openai.SetModel("gpt-mini", fakeprovider.Model{Reply: "a b c d e f", CloseAfter: 2})
	b := f.anthropic.Calls("claude-mini")
	req, _ = http.NewRequest("POST", f.srv.URL+"/v1/chat/completions", strings.NewReader(`{"model":"gpt-mini","stream":true,"messages":[{"role":"user","content":"hi"}]}`))
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err = f.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	events = sse(t, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || len(events) == 0 || !strings.Contains(events[len(events)-1], `"error"`) || f.anthropic.Calls("claude-mini") != b {
		t.Fatalf("cut stream: %d %v (fallback calls %d)", resp.StatusCode, events, f.anthropic.Calls("claude-mini")-b)
	}
	rows := f.logs(t, "tenant_id = ? AND model_name = 'gpt-mini' AND streamed = 1", f.tenant["k001"])
	if len(rows) != 1 || rows[0].Status != "error" || rows[0].Source != "estimated" || rows[0].Out == 0 {
		t.Fatalf("cut stream row %+v", rows)
	}
}

func TestAPIKeysScopeAndIsolation(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	// Only the tenant's admins make keys; a member cannot, a key cannot.
	r := f.do(t, f.token(t, memberUser, "k001"), "POST", "/api/v1/ai/keys", map[string]any{"name": "ci"})
	if _, code := r.envelope(t); r.Status != 403 || code != "permission_denied" {
		t.Fatalf("member: %d %s", r.Status, r.Body)
	}
	id, secret := f.newKey(t, map[string]any{"name": "backend", "models": []string{"gpt-mini"}})
	if !strings.HasPrefix(secret, "uk-") || len(secret) < 40 {
		t.Fatalf("secret %q", secret)
	}
	r = f.do(t, secret, "POST", "/api/v1/ai/keys", map[string]any{"name": "escalate"})
	if _, code := r.envelope(t); r.Status != 403 || code != "key_not_allowed" {
		t.Fatalf("key making keys: %d %s", r.Status, r.Body)
	}
	// Stored hashed; listed without the secret.
	var stored string
	f.sys.QueryRow("SELECT key_hash FROM tenant_api_keys WHERE id = ?", id).Scan(&stored)
	if strings.Contains(stored, secret) || len(stored) != 64 {
		t.Fatalf("stored %q", stored)
	}
	r = f.do(t, f.token(t, adminUser, "k001"), "GET", "/api/v1/ai/keys", nil)
	if r.Status != 200 || bytes.Contains(r.Body, []byte(secret)) || !bytes.Contains(r.Body, []byte(secret[:12])) {
		t.Fatalf("list: %s", r.Body)
	}
	// The key alone names its tenant and its models.
	r = f.do(t, secret, "POST", "/v1/chat/completions", chatBody("gpt-mini"))
	if r.Status != 200 {
		t.Fatalf("key call: %d %s", r.Status, r.Body)
	}
	rows := f.logs(t, "api_key_id = ?", id)
	if len(rows) != 1 || rows[0].TenantID != f.tenant["k001"] || rows[0].UserID.Valid {
		t.Fatalf("key rows %+v", rows)
	}
	if r = f.do(t, secret, "POST", "/v1/chat/completions", chatBody("claude-mini")); r.openAIErr(t).Code != "model_not_enabled" {
		t.Fatalf("model outside the key: %d %s", r.Status, r.Body)
	}
	r = f.do(t, secret, "GET", "/v1/models", nil)
	var models struct {
		Data []struct{ ID string } `json:"data"`
	}
	r.json(t, &models)
	if len(models.Data) != 1 || models.Data[0].ID != "gpt-mini" {
		t.Fatalf("key's models %s", r.Body)
	}
	// A k001 key aimed at k002 — by header or by host — is refused before anything is counted.
	for _, hdr := range [][]string{{"X-Tenant-Code", "k002"}, {"Host", "k002.localhost"}} {
		req, _ := http.NewRequest("POST", f.srv.URL+"/v1/chat/completions", strings.NewReader(`{"model":"gpt-mini","messages":[{"role":"user","content":"x"}]}`))
		req.Header.Set("Authorization", "Bearer "+secret)
		if hdr[0] == "Host" {
			req.Host = hdr[1]
		} else {
			req.Header.Set(hdr[0], hdr[1])
		}
		resp, err := f.srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 403 && resp.StatusCode != 400 {
			t.Fatalf("%v: %d", hdr, resp.StatusCode)
		}
	}
	if n := len(f.logs(t, "tenant_id = ?", f.tenant["k002"])); n != 0 {
		t.Fatalf("k002 has %d rows from a k001 key", n)
	}
	// k002's admin cannot revoke k001's key (not found), k001's admin can; then it is dead.
	if r = f.do(t, f.token(t, otherAdmin, "k002"), "DELETE", fmt.Sprintf("/api/v1/ai/keys/%d", id), nil); r.Status != 404 {
		t.Fatalf("cross-tenant revoke: %d %s", r.Status, r.Body)
	}
	if r = f.do(t, f.token(t, adminUser, "k001"), "DELETE", fmt.Sprintf("/api/v1/ai/keys/%d", id), nil); r.Status != 200 {
		t.Fatalf("revoke: %d %s", r.Status, r.Body)
	}
	if r = f.do(t, secret, "GET", "/v1/models", nil); r.Status != 401 || r.openAIErr(t).Code != "invalid_api_key" {
		t.Fatalf("revoked key: %d %s", r.Status, r.Body)
	}
	// Forged and malformed keys.
	for _, k := range []string{"uk-", "uk-" + strings.Repeat("A", 43), secret + "x", strings.ToUpper(secret)} {
		if r = f.do(t, k, "GET", "/v1/models", nil); r.Status != 401 {
			t.Fatalf("key %q: %d", k, r.Status)
		}
	}
}

func TestTokensAreCheckedAgainstTenantAndMembership(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	// A k001 token with X-Tenant-Code k002: refused. A platform token: refused.
	if r := f.do(t, f.token(t, adminUser, "k001"), "GET", "/v1/models", nil, "X-Tenant-Code", "k002"); r.Status != 403 {
		t.Fatalf("k001 token for k002: %d %s", r.Status, r.Body)
	}
	plat, _, _ := f.signer.Issue(auth.KindUser, adminUser, auth.AudiencePlatform, "", "", time.Hour)
	if r := f.do(t, plat, "GET", "/v1/models", nil); r.Status != 401 {
		t.Fatalf("platform token: %d %s", r.Status, r.Body)
	}
	// A token whose membership was removed after it was issued.
	tok := f.token(t, memberUser, "k001")
	f.exec(t, "UPDATE global_user_tenant_relations SET status = 'removed' WHERE global_user_id = ?", memberUser)
	if r := f.do(t, tok, "GET", "/v1/models", nil); r.Status != 403 || r.openAIErr(t).Code != "not_a_member" {
		t.Fatalf("removed member: %d %s", r.Status, r.Body)
	}
	// A suspended tenant: its tokens and keys stop at once (registry TTL aside: fresh registry here).
	_, secret := f.newKey(t, map[string]any{"name": "k"})
	f.exec(t, "UPDATE tenants SET status = 'suspended' WHERE tenant_code = 'k001'")
	f.h.tenants.Registry.Invalidate("k001")
	if r := f.do(t, secret, "GET", "/v1/models", nil); r.Status != 403 || r.openAIErr(t).Code != "tenant_suspended" {
		t.Fatalf("suspended: %d %s", r.Status, r.Body)
	}
	if r := f.do(t, "", "GET", "/v1/models", nil); r.Status != 401 || r.Header.Get("WWW-Authenticate") == "" {
		t.Fatalf("no credentials: %d %s", r.Status, r.Body)
	}
}

func readAll(resp *http.Response) []byte {
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return b
}

// TestCachedKeysAndModels: an instance reuses what it read of a key and of
// a tenant's models for the cache TTL. A revocation made elsewhere takes
// effect within the TTL, one made through this instance at once; an
// expired key is refused even while cached; and the cache never answers
// one tenant with another's key or models.
func TestCachedKeysAndModels(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	const ttl = 300 * time.Millisecond
	f.h.bridge.CacheTTL = ttl
	id, secret := f.newKey(t, map[string]any{"name": "cached"})
	call := func(key string) int {
		t.Helper()
		return f.do(t, key, "POST", "/v1/chat/completions", chatBody("gpt-mini")).Status
	}
	if s := call(secret); s != 200 {
		t.Fatalf("first call: %d", s)
	}
	// Revoked by another instance (behind this one's back): refused within the TTL.
	if _, err := f.sys.Exec("UPDATE tenant_api_keys SET revoked_at = NOW(3) WHERE id = ?", id); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	for call(secret) == 200 {
		if time.Since(start) > 3*ttl {
			t.Fatalf("a key revoked elsewhere still works after %s (TTL %s)", time.Since(start), ttl)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if s := call(secret); s != 401 {
		t.Fatalf("revoked key: %d, want 401", s)
	}

	// Revoked through this instance: refused at once, though cached.
	id2, secret2 := f.newKey(t, map[string]any{"name": "cached-2"})
	if s := call(secret2); s != 200 {
		t.Fatalf("second key: %d", s)
	}
	if r := f.do(t, f.token(t, adminUser, "k001"), "DELETE", fmt.Sprintf("/api/v1/ai/keys/%d", id2), nil); r.Status != 200 {
		t.Fatalf("revoke: %d %s", r.Status, r.Body)
	}
	if s := call(secret2); s != 401 {
		t.Fatalf("key revoked through this instance: %d, want 401 at once", s)
	}

	// An expired key is refused while its entry is still cached.
	f.h.bridge.CacheTTL = time.Hour
	_, secret3 := f.newKey(t, map[string]any{"name": "expiring", "expiresAt": time.Now().Add(time.Minute).UTC().Format(time.RFC3339)})
	if s := call(secret3); s != 200 {
		t.Fatalf("expiring key: %d", s)
	}
	f.h.bridge.Now = func() time.Time { return time.Now().Add(2 * time.Minute) }
	if s := call(secret3); s != 401 {
		t.Fatalf("expired key served from the cache: %d, want 401", s)
	}
	f.h.bridge.Now = nil

	// Two tenants' keys alternately, both cached: each sees its own models only.
	_, k1 := f.newKey(t, map[string]any{"name": "k001-models"})
	r := f.do(t, f.token(t, otherAdmin, "k002"), "POST", "/api/v1/ai/keys", map[string]any{"name": "k002-models"})
	var k2 struct{ Key string }
	data, _ := r.envelope(t)
	if err := json.Unmarshal(data, &k2); err != nil || k2.Key == "" {
		t.Fatalf("k002 key: %d %s", r.Status, r.Body)
	}
	for i := range 6 {
		key, code, wantClaude := k1, "k001", true
		if i%2 == 1 {
			key, code, wantClaude = k2.Key, "k002", false
		}
		m := f.do(t, key, "GET", "/v1/models", nil)
		if m.Status != 200 || bytes.Contains(m.Body, []byte("claude-mini")) != wantClaude {
			t.Fatalf("round %d, %s's models: %d %s", i, code, m.Status, m.Body)
		}
		c := f.do(t, key, "POST", "/v1/chat/completions", chatBody("claude-mini"))
		if (c.Status == 200) != wantClaude {
			t.Fatalf("round %d, %s calling claude-mini: %d %s", i, code, c.Status, c.Body)
		}
	}
	if n := len(f.logs(t, "tenant_id = ? AND model_name = 'claude-mini'", f.tenant["k002"])); n != 0 {
		t.Fatalf("k002 has %d claude-mini rows", n)
	}
}

// TestFreeModelNeedsAUsableAccount: a model without prices holds nothing,
// but its calls still need an account that is not frozen and not overdrawn.
func TestFreeModelNeedsAUsableAccount(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.addModel(t, "local-free", "text", "openai", f.openai, "0", "0")
	// k002's only model: no fallback to a priced one raises the hold.
	f.exec(t, "UPDATE tenant_ai_model_configs SET is_enabled = 0 WHERE tenant_id = ?", f.tenant["k002"])
	f.enable(t, "k002", "local-free", 1, "")
	tok := f.token(t, otherAdmin, "k002")
	before := f.account(t, "k002")
	r := f.do(t, tok, "POST", "/v1/chat/completions", chatBody("local-free"))
	if r.Status != 200 {
		t.Fatalf("free call: %d %s", r.Status, r.Body)
	}
	var status, amount string
	f.settled()
	if err := f.sys.QueryRow("SELECT status, amount FROM ai_budget_reservations WHERE tenant_id = ? ORDER BY id DESC LIMIT 1", f.tenant["k002"]).Scan(&status, &amount); err != nil ||
		status != "released" || budget.MustParseAmount(amount) != 0 {
		t.Fatalf("free call's reservation %s %s (%v), want released at 0", status, amount, err)
	}
	if a := f.account(t, "k002"); a != before {
		t.Fatalf("a free call moved money: %+v, was %+v", a, before)
	}
	f.exec(t, "UPDATE tenant_accounts SET payment_status = 'frozen' WHERE tenant_id = ?", f.tenant["k002"])
	r = f.do(t, tok, "POST", "/v1/chat/completions", chatBody("local-free"))
	if e := r.openAIErr(t); r.Status != 402 || e.Code != "account_frozen" {
		t.Fatalf("free call on a frozen account: %d %s", r.Status, r.Body)
	}
	f.exec(t, "UPDATE tenant_accounts SET payment_status = 'normal', balance = -1 WHERE tenant_id = ?", f.tenant["k002"])
	r = f.do(t, tok, "POST", "/v1/chat/completions", chatBody("local-free"))
	if e := r.openAIErr(t); r.Status != 402 || e.Code != "insufficient_balance" {
		t.Fatalf("free call on an overdrawn account: %d %s", r.Status, r.Body)
	}
	if rows := f.logs(t, "tenant_id = ? AND model_name = 'local-free'", f.tenant["k002"]); len(rows) != 1 {
		t.Fatalf("%d call log rows, want the one answered call's", len(rows))
	}
}

// Token limits per tenant, per API key and per model a day: a call counts
// its prompt's estimate plus its cap, corrected to the tokens used once
// done; over a window it gets 429 with the time to the window's end, alone
// over a limit 400; one tenant's windows are never another's.
func TestTokenLimitsPerTenantKeyAndModelDay(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	now := time.Date(2026, 5, 1, 10, 0, 30, 0, time.UTC)
	f.h.bridge.Now = func() time.Time { return now }
	f.h.bridge.TenantTPM = 60
	f.openai.SetModel("gpt-mini", fakeprovider.Model{Reply: "ok", PromptTokens: 10, CompletionTokens: 20}) // 30 used a call
	f.exec(t, "UPDATE tenant_ai_model_configs SET daily_token_limit = 50 WHERE tenant_id = ? AND model_id = ?", f.tenant["k002"], f.models["gpt-mini"])
	f.forget()
	keyID, key := f.newKey(t, map[string]any{"name": "metered", "tpm": 45})
	k001, k002 := f.token(t, adminUser, "k001"), f.token(t, otherAdmin, "k002")
	// "hi" is estimated at 8 prompt tokens: a call with max_tokens 20 counts 28.
	body := func(maxTokens int) map[string]any {
		return chatBody("gpt-mini", "max_tokens", maxTokens, "messages", []map[string]any{{"role": "user", "content": "hi"}})
	}
	tenantTok := fmt.Sprintf("ai:t:%d:tok", f.tenant["k001"])
	keyTok := fmt.Sprintf("ai:k:%d:tok", keyID)
	refused := func(r reply, status int, code, retryAfter, says string) {
		t.Helper()
		e := r.openAIErr(t)
		if r.Status != status || e.Code != code || r.Header.Get("Retry-After") != retryAfter || !strings.Contains(e.Message, says) {
			t.Fatalf("%d %s %q Retry-After %q, want %d %s saying %q, Retry-After %q", r.Status, e.Code, e.Message, r.Header.Get("Retry-After"), status, code, says, retryAfter)
		}
	}

	// 8 + 40 tokens could never fit the key's 45: invalid, and nothing counted.
	refused(f.do(t, key, "POST", "/v1/chat/completions", body(40)), 400, "too_many_tokens", "", "API key's limit of 45 tokens a minute")
	if n := f.window(t, keyTok) + f.window(t, tenantTok); n != 0 {
		t.Fatalf("a call refused as invalid counted %d tokens", n)
	}
	if r := f.do(t, key, "POST", "/v1/chat/completions", body(20)); r.Status != 200 {
		t.Fatalf("first call: %d %s", r.Status, r.Body)
	}
	if k, tn := f.window(t, keyTok), f.window(t, tenantTok); k != 30 || tn != 30 {
		t.Fatalf("after a call that used 30 tokens the windows hold key %d, tenant %d; want 30 each", k, tn)
	}
	// The key's window: 30 + 28 > 45. The refusal counts nowhere.
	refused(f.do(t, key, "POST", "/v1/chat/completions", body(20)), 429, "rate_limited", "30", "rate limit")
	if k, tn := f.window(t, keyTok), f.window(t, tenantTok); k != 30 || tn != 30 {
		t.Fatalf("after a refusal the windows hold key %d, tenant %d; want 30 each", k, tn)
	}
	// Without the key only the tenant's 60 applies: 30 + 28 fits, then 60 + 28 does not.
	if r := f.do(t, k001, "POST", "/v1/chat/completions", body(20)); r.Status != 200 {
		t.Fatalf("tenant call: %d %s", r.Status, r.Body)
	}
	refused(f.do(t, k001, "POST", "/v1/chat/completions", body(20)), 429, "rate_limited", "30", "rate limit")
	if tn := f.window(t, tenantTok); tn != 60 {
		t.Fatalf("tenant window %d, want 60", tn)
	}

	// k002's windows are its own: its first call fits though k001's are full;
	// its model's 50 tokens a day stop its second (30 + 28 > 50) until midnight UTC.
	if r := f.do(t, k002, "POST", "/v1/chat/completions", body(20)); r.Status != 200 {
		t.Fatalf("k002's first call: %d %s", r.Status, r.Body)
	}
	refused(f.do(t, k002, "POST", "/v1/chat/completions", body(20)), 429, "rate_limited", strconv.Itoa(int(14*time.Hour/time.Second)-30), "rate limit")
	refused(f.do(t, k002, "POST", "/v1/chat/completions", body(45)), 400, "too_many_tokens", "", "the model's limit of 50 tokens a day")
	day := fmt.Sprintf("ai:t:%d:m:%d:tok:day", f.tenant["k002"], f.models["gpt-mini"])
	if d := f.window(t, day); d != 30 {
		t.Fatalf("k002's day window %d, want 30", d)
	}
	if d := f.window(t, fmt.Sprintf("ai:t:%d:m:%d:tok:day", f.tenant["k001"], f.models["gpt-mini"])); d != 0 {
		t.Fatalf("k001, without a daily limit, has a day window of %d", d)
	}
}

// A key asked for with bad terms is refused with the field named, and no
// key is made; a good one shows its limits when listed.
func TestKeyCreationRefusesBadTerms(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	tok := f.token(t, adminUser, "k001")
	for _, c := range []struct {
		name string
		body map[string]any
		code string
	}{
		{"NoName", map[string]any{"name": "  "}, "invalid_name"},
		{"NegativeRPM", map[string]any{"name": "k", "rpm": -1}, "invalid_rpm"},
		{"NegativeTPM", map[string]any{"name": "k", "tpm": -1}, "invalid_tpm"},
		{"HugeTPM", map[string]any{"name": "k", "tpm": 100_000_001}, "invalid_tpm"},
		{"Expired", map[string]any{"name": "k", "expiresAt": time.Now().Add(-time.Hour).Format(time.RFC3339)}, "invalid_expiry"},
		{"ModelNotEnabled", map[string]any{"name": "k", "models": []string{"gpt-huge"}}, "model_not_enabled"},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := f.do(t, tok, "POST", "/api/v1/ai/keys", c.body)
			if _, code := r.envelope(t); r.Status != http.StatusBadRequest || code != c.code {
				t.Fatalf("%d %s %s, want 400 %s", r.Status, code, r.Body, c.code)
			}
		})
	}
	var n int
	if err := f.sys.QueryRow("SELECT COUNT(*) FROM tenant_api_keys").Scan(&n); err != nil || n != 0 {
		t.Fatalf("%d keys after refusals (%v), want 0", n, err)
	}
	f.newKey(t, map[string]any{"name": "limited", "rpm": 30, "tpm": 5000})
	r := f.do(t, tok, "GET", "/api/v1/ai/keys", nil)
	if !strings.Contains(string(r.Body), `"rpm":30`) || !strings.Contains(string(r.Body), `"tpm":5000`) {
		t.Fatalf("listed keys %s, want rpm 30 and tpm 5000", r.Body)
	}
}

// A request may ask for several completions — n, and best_of on the legacy
// endpoint, for each of its prompts — each up to the cap: the hold is for
// all of them, or a tenant could have the provider write n times what its
// budget held. A count out of range is refused, naming the member, and
// holds nothing.
func TestEveryRequestedCompletionIsHeld(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.addModel(t, "pricey", "text", "openai", f.openai, "0", "10") // 100 completion tokens: 1.00
	f.enable(t, "k002", "pricey", 1, "")
	tok := f.token(t, otherAdmin, "k002")
	held := func() []budget.Amount {
		t.Helper()
		f.settled()
		rows, err := f.sys.Query("SELECT amount FROM ai_budget_reservations WHERE tenant_id = ? ORDER BY id", f.tenant["k002"])
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		var out []budget.Amount
		for rows.Next() {
			var a string
			if err := rows.Scan(&a); err != nil {
				t.Fatal(err)
			}
			out = append(out, budget.MustParseAmount(a))
		}
		if err := rows.Err(); err != nil {
			t.Fatal(err)
		}
		return out
	}
	for _, c := range []struct {
		path string
		body map[string]any
	}{
		{"/v1/chat/completions", chatBody("pricey", "max_tokens", 100)},
		{"/v1/chat/completions", chatBody("pricey", "max_tokens", 100, "n", 4)},
		{"/v1/completions", map[string]any{"model": "pricey", "prompt": []string{"a", "b"}, "max_tokens": 100, "n": 2, "best_of": 3}},
		// Both caps: a provider may honour either, so the larger is held.
		{"/v1/chat/completions", chatBody("pricey", "max_completion_tokens", 50, "max_tokens", 200)},
	} {
		if r := f.do(t, tok, "POST", c.path, c.body); r.Status != 200 {
			t.Fatalf("%s %v: %d %s", c.path, c.body, r.Status, r.Body)
		}
	}
	want := []budget.Amount{budget.MustParseAmount("1"), budget.MustParseAmount("4"), budget.MustParseAmount("6"), budget.MustParseAmount("2")}
	if got := held(); !slices.Equal(got, want) {
		t.Fatalf("held %v for 1, 4 and 2x3 completions of 100 tokens and one of 200 at 10 per 1k, want %v", got, want)
	}
	for _, c := range []struct {
		path, member string
		body         map[string]any
	}{
		{"/v1/chat/completions", "n", chatBody("pricey", "n", 0)},
		{"/v1/chat/completions", "n", chatBody("pricey", "n", 129)},
		{"/v1/chat/completions", "n", chatBody("pricey", "n", "2")},
		{"/v1/chat/completions", "n", chatBody("pricey", "n", 1.5, "stream", true)},
		{"/v1/completions", "best_of", map[string]any{"model": "pricey", "prompt": "a", "best_of": 21}},
		{"/v1/completions", "best_of", map[string]any{"model": "pricey", "prompt": "a", "n": 3, "best_of": 2}},
	} {
		r := f.do(t, tok, "POST", c.path, c.body)
		if e := r.openAIErr(t); r.Status != 400 || e.Code != "invalid_"+c.member || e.Param == nil || *e.Param != c.member {
			t.Errorf("%s %v: %d %s, want 400 invalid_%s naming %s", c.path, c.body, r.Status, r.Body, c.member, c.member)
		}
	}
	if got := held(); len(got) != len(want) {
		t.Fatalf("refused requests held money: %v", got)
	}
}

// A provider's refusal is passed on (it says what to fix), but in the
// bridge's words for the model: the provider's own id for it (a Doubao
// endpoint id, say) stays with the bridge, streaming or not.
func TestProviderRefusalNamesTheModelAsTheBridgeDoes(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.exec(t, "UPDATE ai_model_config SET upstream_model = 'ep-20260501-secret' WHERE model_name = 'gpt-mini'")
	f.forget()
	f.openai.SetModel("ep-20260501-secret", fakeprovider.Model{Fail: fakeprovider.Failure{Status: 400,
		Message: "The model ep-20260501-secret does not support tools"}})
	tok := f.token(t, adminUser, "k001")
	for _, stream := range []bool{false, true} {
		r := f.do(t, tok, "POST", "/v1/chat/completions", chatBody("gpt-mini", "stream", stream))
		e := r.openAIErr(t)
		if r.Status != 400 || e.Code != "upstream_rejected" || e.Message != "The model gpt-mini does not support tools" || strings.Contains(string(r.Body), "ep-2026") {
			t.Fatalf("stream %v: %d %s", stream, r.Status, r.Body)
		}
	}
}

// A stream that starts late, as a fallback, still ends before its call's
// reservation could expire: past it, usage-cron would close the
// reservation at the cost on record while the stream runs, and the
// stream's own cost would never be charged.
func TestLateFallbackStreamEndsWithinItsReservation(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	const ttl = 5 * time.Second
	f.h.bridge.ReservationTTL, f.h.bridge.StreamIdle = ttl, 1500*time.Millisecond
	// gpt-mini keeps the stream waiting past the idle limit (a fallback
	// after 1.5 s); claude-mini then streams for 6 s.
	f.openai.SetModel("gpt-mini", fakeprovider.Model{Delay: 3 * time.Second})
	f.anthropic.SetModel("claude-mini", fakeprovider.Model{Reply: strings.Repeat("word ", 60), ChunkDelay: 100 * time.Millisecond})
	req, _ := http.NewRequest("POST", f.srv.URL+"/v1/chat/completions", strings.NewReader(`{"model":"gpt-mini","stream":true,"messages":[{"role":"user","content":"hi"}]}`))
	req.Header.Set("Authorization", "Bearer "+f.token(t, adminUser, "k001"))
	start := time.Now()
	resp, err := f.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	events := sse(t, resp.Body)
	resp.Body.Close()
	took := time.Since(start)
	if resp.Header.Get(headerModel) != "claude-mini" || len(events) < 2 {
		t.Fatalf("%d %s %d events", resp.StatusCode, resp.Header.Get(headerModel), len(events))
	}
	if took >= ttl {
		t.Fatalf("the fallback stream ran %s, past its reservation's %s", took.Round(time.Millisecond), ttl)
	}
	// Cut before Anthropic's final count (message_delta): what streamed is
	// estimated, not the 1 output token message_start announced, and
	// settled by the call itself.
	rows := f.logs(t, "tenant_id = ? AND model_name = 'claude-mini'", f.tenant["k001"])
	if len(rows) != 1 || rows[0].Source != aibridge.UsageEstimated || rows[0].Out < 20 || budget.MustParseAmount(rows[0].Cost) == 0 {
		t.Fatalf("the cut stream's row %+v, want estimated usage of what streamed, charged", rows)
	}
	var status string
	if err := f.sys.QueryRow("SELECT status FROM ai_budget_reservations WHERE tenant_id = ? ORDER BY id DESC LIMIT 1", f.tenant["k001"]).Scan(&status); err != nil || status != "settled" {
		t.Fatalf("reservation %q (%v), want settled by the call itself", status, err)
	}
}
