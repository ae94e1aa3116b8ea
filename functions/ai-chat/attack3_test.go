package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"
)

// rawHTTP sends head (a request line and headers, nothing after the blank
// line) on a connection of its own and reads the answer: a request that
// declares a body it never sends, or a Host net/http's client would not
// write.
func (f *fixture) rawHTTP(t *testing.T, head string) reply {
	t.Helper()
	conn, err := net.Dial("tcp", f.srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := io.WriteString(conn, head); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	return reply{Status: resp.StatusCode, Header: resp.Header, Body: readAll(resp)}
}

// openAIShaped reports whether r's body is OpenAI's error answer and only
// that: an "error" object with its four members and no envelope beside it.
func openAIShaped(t *testing.T, r reply) bool {
	t.Helper()
	var body map[string]json.RawMessage
	if json.Unmarshal(r.Body, &body) != nil || len(body) != 1 || body["error"] == nil {
		return false
	}
	var e map[string]json.RawMessage
	if json.Unmarshal(body["error"], &e) != nil {
		return false
	}
	for _, m := range []string{"message", "type", "param", "code"} {
		if _, ok := e[m]; !ok {
			return false
		}
	}
	return true
}

// What the standard stack refuses before a route runs — a body declared
// over the function's limit, a host it cannot route by — was answered in
// the seed's envelope on /v1/ too, where an OpenAI SDK reads error.type
// and finds none. It is answered in OpenAI's shape there, as a body found
// too large while it is read and every other failure before the route's
// own work (JSON, Content-Type, authentication, method) already were; the
// seed's routes keep the envelope.
func TestAttack3V1RefusalsBeforeTheRouteAreOpenAIShaped(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	tok := f.token(t, adminUser, "k001")
	limit := strconv.Itoa(maxRequestBody)
	declared := func(path, host string) string {
		return "POST " + path + " HTTP/1.1\r\nHost: " + host + "\r\nAuthorization: Bearer " + tok +
			"\r\nContent-Type: application/json\r\nContent-Length: " + strconv.Itoa(maxRequestBody+1) + "\r\nConnection: close\r\n\r\n"
	}
	openAI := func(name string, r reply, status int, typ, code, says string) {
		t.Helper()
		e := r.openAIErr(t)
		if r.Status != status || !openAIShaped(t, r) || e.Type != typ || e.Code != code || !strings.Contains(e.Message, says) {
			t.Errorf("%s: %d %s, want %d in OpenAI's shape, %s %s saying %q", name, r.Status, r.Body, status, typ, code, says)
		}
	}

	for _, path := range []string{"/v1/chat/completions", "/v1/completions", "/v1/embeddings", "/v1/nothing"} {
		openAI("declared over the limit, "+path, f.rawHTTP(t, declared(path, "k001.localhost")),
			http.StatusRequestEntityTooLarge, "invalid_request_error", "body_too_large", limit)
	}
	// Sent without a length, the body is found too large as it is read:
	// the same answer.
	big := io.MultiReader(strings.NewReader(`{"model":"gpt-mini","messages":[{"role":"user","content":"`),
		strings.NewReader(strings.Repeat("x", maxRequestBody)), strings.NewReader(`"}]}`))
	req, _ := http.NewRequest("POST", f.srv.URL+"/v1/chat/completions", io.NopCloser(big)) // no length: chunked
	req.Header.Set("Authorization", "Bearer "+tok)
	req.Header.Set("Content-Type", "application/json")
	resp, err := f.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	openAI("streamed over the limit", reply{Status: resp.StatusCode, Header: resp.Header, Body: readAll(resp)},
		http.StatusRequestEntityTooLarge, "invalid_request_error", "body_too_large", limit)

	host := "GET /v1/models HTTP/1.1\r\nHost: k001.localhost:x\r\nAuthorization: Bearer " + tok + "\r\nConnection: close\r\n\r\n"
	openAI("host refused", f.rawHTTP(t, host), http.StatusBadRequest, "invalid_request_error", "invalid_host", "host")

	msg := `"messages":[{"role":"user","content":"hi"}]`
	openAI("malformed JSON", f.rawDo(t, tok, "POST", "/v1/chat/completions", `{"model":"gpt-mini",`+msg),
		http.StatusBadRequest, "invalid_request_error", "invalid_json", "JSON")
	openAI("wrong Content-Type", f.rawDo(t, tok, "POST", "/v1/chat/completions", `{"model":"gpt-mini",`+msg+`}`, "Content-Type", "text/plain"),
		http.StatusBadRequest, "invalid_request_error", "unsupported_media_type", "Content-Type")
	openAI("no credentials", f.rawDo(t, "", "POST", "/v1/chat/completions", `{"model":"gpt-mini",`+msg+`}`),
		http.StatusUnauthorized, "authentication_error", "missing_token", "Authorization")
	openAI("bad API key", f.rawDo(t, "uk-nothing", "GET", "/v1/models", ""),
		http.StatusUnauthorized, "authentication_error", "invalid_api_key", "")
	openAI("method not allowed", f.rawDo(t, tok, "PUT", "/v1/completions", ""),
		http.StatusMethodNotAllowed, "invalid_request_error", "method_not_allowed", "POST")

	// The seed's routes keep the envelope for the same refusals.
	for _, c := range []struct {
		name, head string
		status     int
		code       string
	}{
		{"seed declared over the limit", declared("/api/v1/ai/bridge/chat", "k001.localhost"), http.StatusRequestEntityTooLarge, "body_too_large"},
		{"seed host refused", strings.Replace(host, "/v1/models", "/api/v1/ai/bridge/models", 1), http.StatusBadRequest, "invalid_host"},
	} {
		r := f.rawHTTP(t, c.head)
		if _, code := r.envelope(t); r.Status != c.status || code != c.code || !bytes.Contains(r.Body, []byte(`"success":false`)) {
			t.Errorf("%s: %d %s, want %d %s in the envelope", c.name, r.Status, r.Body, c.status, c.code)
		}
	}
	if n := len(f.openai.Requests()); n != 0 {
		t.Fatalf("%d requests reached the provider", n)
	}
}

// Each prompt of a completion is a completion the provider writes, and
// each input of an embedding a vector: arrays of any length were taken,
// so one request could hold, count and send without bound. Over OpenAI's
// limit of 2048 items (its limit for embedding inputs, held to for
// prompts too) a request is refused as invalid, naming the member and the
// limit, in either shape, before anything is counted, held, logged or
// sent; at the limit it is made.
func TestAttack3PromptAndInputArraysAreCapped(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.h.bridge.TenantTPM = 100_000_000 // tokens are counted too
	tok := f.token(t, adminUser, "k001")
	items := func(n int) []string { return strings.Split(strings.Repeat("x,", n-1)+"x", ",") }
	counted := func() int64 {
		t.Helper()
		f.settled()
		var n int64
		if err := f.sys.QueryRow("SELECT COALESCE(SUM(`count`), 0) FROM rate_limit_counters WHERE bucket_key LIKE 'ai:%'").Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	over := items(maxInputs + 1)
	for _, c := range []struct {
		path, member string
		body         map[string]any
	}{
		{"/v1/completions", "prompt", map[string]any{"model": "gpt-mini", "prompt": over, "max_tokens": 1}},
		{"/v1/embeddings", "input", map[string]any{"model": "embed-small", "input": over}},
	} {
		r := f.do(t, tok, "POST", c.path, c.body)
		e := r.openAIErr(t)
		if r.Status != http.StatusBadRequest || !openAIShaped(t, r) || e.Type != "invalid_request_error" || e.Code != "invalid_"+c.member ||
			e.Param == nil || *e.Param != c.member || !strings.Contains(e.Message, "2048") {
			t.Errorf("%s with %d items: %d %s, want 400 invalid_request_error naming %s and 2048", c.path, len(over), r.Status, r.Body, c.member)
		}
	}
	for _, c := range []struct {
		path, member string
		body         map[string]any
	}{
		{"/api/v1/ai/bridge/completion", "prompt", map[string]any{"prompt": over, "max_tokens": 1}},
		{"/api/v1/ai/bridge/embedding", "input", map[string]any{"model": "embed-small", "input": over}},
	} {
		r := f.do(t, tok, "POST", c.path, c.body)
		var env struct {
			Success bool `json:"success"`
			Error   struct {
				Code   string            `json:"code"`
				Fields map[string]string `json:"fields"`
			} `json:"error"`
		}
		r.json(t, &env)
		if r.Status != http.StatusBadRequest || env.Success || env.Error.Code != "invalid_"+c.member || !strings.Contains(env.Error.Fields[c.member], "2048") {
			t.Errorf("%s with %d items: %d %s, want 400 invalid_%s naming 2048 in the envelope", c.path, len(over), r.Status, r.Body, c.member)
		}
	}
	if n := len(f.openai.Requests()); n != 0 {
		t.Fatalf("%d refused requests reached the provider", n)
	}
	if n := f.reservations(t, "k001"); n != 0 {
		t.Fatalf("%d holds for refused requests", n)
	}
	if n := counted(); n != 0 {
		t.Fatalf("refused requests counted %d against the rate limits", n)
	}
	if n := len(f.logs(t, "tenant_id = ?", f.tenant["k001"])); n != 0 {
		t.Fatalf("%d call logs for refused requests", n)
	}

	// At the limit a request is made, counted and held as ever.
	at := items(maxInputs)
	for _, c := range []struct {
		path string
		body map[string]any
	}{
		{"/v1/completions", map[string]any{"model": "gpt-mini", "prompt": at, "max_tokens": 1}},
		{"/v1/embeddings", map[string]any{"model": "embed-small", "input": at}},
	} {
		if r := f.do(t, tok, "POST", c.path, c.body); r.Status != http.StatusOK {
			t.Fatalf("%s with %d items: %d %s", c.path, len(at), r.Status, r.Body)
		}
	}
	if n, holds, c := len(f.openai.Requests()), f.reservations(t, "k001"), counted(); n != 2 || holds != 2 || c == 0 {
		t.Fatalf("two calls at the limit: %d provider requests, %d holds, %d counted; want 2, 2 and some", n, holds, c)
	}
}
