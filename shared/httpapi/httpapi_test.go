package httpapi_test

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/unitenant/unitenant/shared/fault"
	"github.com/unitenant/unitenant/shared/httpapi"
	"github.com/unitenant/unitenant/shared/logging"
)

type input struct {
	Name  string   `json:"name"`
	Count int      `json:"count"`
	Tags  []string `json:"tags"`
	Where *place   `json:"where"`
}

type place struct {
	City string `json:"city"`
}

// echo decodes an input and answers it back: the route every decode case uses.
func echo(w http.ResponseWriter, r *http.Request) {
	var in input
	if err := httpapi.Decode(r, &in); err != nil {
		httpapi.Fail(w, r, logging.Discard(), err)
		return
	}
	httpapi.OK(w, r, in)
}

func newServer(t *testing.T) *httptest.Server {
	t.Helper()
	rt := httpapi.NewRouter()
	rt.HandleFunc("POST /echo", echo)
	rt.HandleFunc("GET /panic", func(http.ResponseWriter, *http.Request) { panic("boom") })
	rt.HandleFunc("GET /internal", func(w http.ResponseWriter, r *http.Request) {
		httpapi.Fail(w, r, logging.Discard(), errors.New("dial tcp 10.0.0.7:3306: secret detail"))
	})
	rt.HandleFunc("GET /retry", func(w http.ResponseWriter, r *http.Request) {
		e := fault.New(fault.Unavailable, "tenant_provisioning", "not ready")
		e.RetryAfter = 1500e6
		httpapi.Fail(w, r, nil, e)
	})
	srv := httptest.NewServer(httpapi.Standard(rt, logging.Discard()))
	t.Cleanup(srv.Close)
	return srv
}

type envelope struct {
	Success bool            `json:"success"`
	Data    json.RawMessage `json:"data"`
	Error   *struct {
		Code    string            `json:"code"`
		Message string            `json:"message"`
		Fields  map[string]string `json:"fields"`
	} `json:"error"`
	RequestID string `json:"requestId"`
}

func do(t *testing.T, srv *httptest.Server, method, path, body string) (*http.Response, envelope) {
	t.Helper()
	req, err := http.NewRequest(method, srv.URL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var env envelope
	if err := json.NewDecoder(resp.Body).Decode(&env); err != nil {
		t.Fatalf("%s %s: body is not the JSON envelope: %v", method, path, err)
	}
	return resp, env
}

func TestDecode(t *testing.T) {
	t.Parallel()
	srv := newServer(t)
	tests := []struct {
		name       string
		body       string
		wantStatus int
		wantCode   string
		wantField  string
	}{
		{"OK", `{"name":"a","count":2,"tags":["x"]}`, 200, "", ""},
		{"Malformed", `{"name":"a",}`, 400, "invalid_json", ""},
		{"Truncated", `{"name":"a"`, 400, "invalid_json", ""},
		{"Empty", ``, 400, "empty_body", ""},
		{"UnknownField", `{"name":"a","admin":true}`, 400, "unknown_field", "admin"},
		{"WrongType", `{"name":"a","count":"two"}`, 400, "invalid_field_type", "count"},
		{"WrongTypeInArray", `{"tags":[1]}`, 400, "invalid_field_type", "tags"},
		{"WrongTypeForObject", `{"where":"x"}`, 400, "invalid_field_type", "where"},
		{"NotAnObject", `[1,2]`, 400, "invalid_json", ""},
		{"TrailingData", `{"name":"a"} {"name":"b"}`, 400, "invalid_json", ""},
		{"Oversize", `{"name":"` + strings.Repeat("x", httpapi.DefaultMaxBody) + `"}`, 413, "body_too_large", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			resp, env := do(t, srv, "POST", "/echo", tc.body)
			if resp.StatusCode != tc.wantStatus {
				t.Fatalf("status = %d, want %d (error %+v)", resp.StatusCode, tc.wantStatus, env.Error)
			}
			if tc.wantCode == "" {
				if !env.Success || env.Error != nil {
					t.Fatalf("want success, got %+v", env)
				}
				return
			}
			if env.Success || env.Error == nil || env.Error.Code != tc.wantCode {
				t.Fatalf("error = %+v, want code %q", env.Error, tc.wantCode)
			}
			if env.RequestID == "" || resp.Header.Get("X-Request-Id") != env.RequestID {
				t.Errorf("requestId %q does not match header %q", env.RequestID, resp.Header.Get("X-Request-Id"))
			}
			if tc.wantField != "" {
				if _, ok := env.Error.Fields[tc.wantField]; !ok || !strings.Contains(env.Error.Message, tc.wantField) {
					t.Errorf("error does not name field %q: %+v", tc.wantField, env.Error)
				}
			}
		})
	}
}

// TestDecodeNamesJSONTypes: a type error says what JSON the member takes,
// never the Go type behind it.
func TestDecodeNamesJSONTypes(t *testing.T) {
	t.Parallel()
	srv := newServer(t)
	for body, want := range map[string]string{
		`{"where":"x"}`:        "must be an object, not string",
		`{"where":{"city":1}}`: "must be a string, not number",
		`{"count":[1]}`:        "must be a number, not array",
		`{"tags":{}}`:          "must be an array, not object",
	} {
		_, env := do(t, srv, "POST", "/echo", body)
		if env.Error == nil || !strings.Contains(env.Error.Message, want) || strings.Contains(env.Error.Message, "httpapi") {
			t.Errorf("%s: %+v, want a message saying %q", body, env.Error, want)
		}
	}
}

func TestDecodeRejectsOtherMediaTypes(t *testing.T) {
	t.Parallel()
	srv := newServer(t)
	req, _ := http.NewRequest("POST", srv.URL+"/echo", strings.NewReader(`name=a`))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 400 {
		t.Fatalf("status = %d, want 400", resp.StatusCode)
	}
}

func TestPanicIsRecovered(t *testing.T) {
	t.Parallel()
	srv := newServer(t)
	resp, env := do(t, srv, "GET", "/panic", "")
	if resp.StatusCode != 500 || env.Error == nil || env.Error.Code != "internal" {
		t.Fatalf("panic: status %d, error %+v; want 500 internal", resp.StatusCode, env.Error)
	}
	if env.RequestID == "" {
		t.Error("panic response has no requestId")
	}
	// The process keeps serving.
	if resp, _ := do(t, srv, "POST", "/echo", `{"name":"after"}`); resp.StatusCode != 200 {
		t.Fatalf("after a panic: status %d, want 200", resp.StatusCode)
	}
}

func TestInternalErrorsAreNotShown(t *testing.T) {
	t.Parallel()
	srv := newServer(t)
	resp, env := do(t, srv, "GET", "/internal", "")
	if resp.StatusCode != 500 || env.Error.Code != "internal" {
		t.Fatalf("status %d code %q, want 500 internal", resp.StatusCode, env.Error.Code)
	}
	if strings.Contains(env.Error.Message, "secret") || strings.Contains(env.Error.Message, "10.0.0.7") {
		t.Fatalf("internal detail leaked to the client: %q", env.Error.Message)
	}
}

func TestRetryAfter(t *testing.T) {
	t.Parallel()
	srv := newServer(t)
	resp, env := do(t, srv, "GET", "/retry", "")
	if resp.StatusCode != 503 || env.Error.Code != "tenant_provisioning" {
		t.Fatalf("status %d code %q", resp.StatusCode, env.Error.Code)
	}
	if got := resp.Header.Get("Retry-After"); got != "1" {
		t.Fatalf("Retry-After = %q, want 1", got)
	}
}

func TestRouterNotFoundAndMethodNotAllowed(t *testing.T) {
	t.Parallel()
	srv := newServer(t)
	if resp, env := do(t, srv, "GET", "/nope", ""); resp.StatusCode != 404 || env.Error.Code != "route_not_found" {
		t.Errorf("unknown path: %d %+v", resp.StatusCode, env.Error)
	}
	if resp, env := do(t, srv, "DELETE", "/echo", ""); resp.StatusCode != 405 || env.Error.Code != "method_not_allowed" {
		t.Errorf("wrong method: %d %+v", resp.StatusCode, env.Error)
	}
}

func TestRequestID(t *testing.T) {
	t.Parallel()
	srv := newServer(t)
	for _, tc := range []struct {
		name, sent string
		kept       bool
	}{
		{"WellFormedKept", "abc-123-def-456", true},
		{"LogInjectionReplaced", "x\" level=error", false},
		{"TooShortReplaced", "a", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest("GET", srv.URL+"/nope", nil)
			req.Header.Set("X-Request-Id", tc.sent)
			resp, err := srv.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			got := resp.Header.Get("X-Request-Id")
			if (got == tc.sent) != tc.kept || got == "" {
				t.Fatalf("X-Request-Id %q -> %q, kept want %v", tc.sent, got, tc.kept)
			}
		})
	}
}

func TestStatusOfEveryKind(t *testing.T) {
	t.Parallel()
	for k := fault.Internal; k <= fault.GatewayTimeout; k++ {
		if s := httpapi.StatusOf(k); s < 400 || s > 599 {
			t.Errorf("kind %d maps to %d", k, s)
		}
	}
	w := httptest.NewRecorder()
	httpapi.Fail(w, httptest.NewRequest("GET", "/", nil), nil, fault.New(fault.Gone, "tenant_deleted", "gone"))
	if w.Code != http.StatusGone {
		t.Fatalf("Gone -> %d", w.Code)
	}
}
