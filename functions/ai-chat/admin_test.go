package main

import (
	"bytes"
	"crypto/rsa"
	"database/sql"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/unitenant/unitenant/shared/aibridge"
	"github.com/unitenant/unitenant/shared/auth"
	"github.com/unitenant/unitenant/shared/httpapi/httpapitest"
	"github.com/unitenant/unitenant/shared/logging"
	"github.com/unitenant/unitenant/shared/serverless"
	"github.com/unitenant/unitenant/shared/sqldb/sqldbtest"
	"github.com/unitenant/unitenant/shared/tenancy"
	"github.com/unitenant/unitenant/tests/testenv"
)

// adminFixture is the ai-chat function over a system database of its own
// with one tenant, k001, and a signer for admin and user tokens.
type adminFixture struct {
	srv      *httptest.Server
	db       *sql.DB
	sys      testenv.System
	signer   *auth.Signer
	tenantID int64
	bodies   []string // every answer, to look for leaked secrets
}

func newAdminFixture(t *testing.T) *adminFixture {
	t.Helper()
	sys := testenv.NewSystem(t)
	tenants := testenv.NewTenants(t, sys.DB, sys.Box)
	id, _, err := tenants.Create(t, "k001", 0)
	if err != nil {
		t.Fatal(err)
	}
	// The admin the tokens name: a super admin, so each token's role is
	// the one in force.
	if _, err := sys.DB.Exec("INSERT INTO admin_users (id, username, password_hash, role) VALUES (1, 'root', 'x', 'super_admin')"); err != nil {
		t.Fatal(err)
	}
	signer := auth.NewSigner(sys.SigningKey, nil)
	h := &handler{
		db: sys.DB, box: sys.Box, verifier: auth.NewVerifier([]*rsa.PublicKey{signer.Public()}, nil),
		tenants: &tenancy.Service{Registry: tenancy.NewRegistry(sys.DB, tenancy.RegistryOptions{}),
			Router: tenancy.NewRouter(sys.DB, sys.Box, tenancy.RouterOptions{}), Hosts: tenancy.ParseHosts("localhost", "", "")},
		bridge: &aibridge.Bridge{DB: sqldbtest.Batching(t, sys.DSN), Box: sys.Box, Log: logging.Discard()},
		log:    logging.Discard(), now: time.Now,
	}
	t.Cleanup(func() { h.tenants.Router.Close() })
	srv := httptest.NewServer(serverless.Handler(newHandler(h), logging.Discard(), 0))
	t.Cleanup(srv.Close)
	return &adminFixture{srv: srv, db: sys.DB, sys: sys, signer: signer, tenantID: id}
}

// adminToken is a platform admin's token with role.
func (f *adminFixture) adminToken(t *testing.T, role string) string {
	t.Helper()
	tok, _, err := f.signer.Issue(auth.KindAdmin, 1, auth.AudienceAdmin, "", role, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// userToken is a global user's token for audience with role (in k001 when
// audience is tenant).
func (f *adminFixture) userToken(t *testing.T, audience, role string) string {
	t.Helper()
	tenant := ""
	if audience == auth.AudienceTenant {
		tenant = "k001"
	}
	tok, _, err := f.signer.Issue(auth.KindUser, 7, audience, tenant, role, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// as sends a request with token ("" for none) and body (nil for none, a
// string as is, anything else as JSON).
func (f *adminFixture) as(t *testing.T, token, method, path string, body any) httpapitest.Reply {
	t.Helper()
	req, err := http.NewRequest(method, f.srv.URL+path, httpapitest.Body(body))
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("User-Agent", "admin-test")
	resp, err := f.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	f.bodies = append(f.bodies, string(raw))
	return httpapitest.Parse(t, resp.StatusCode, resp.Header, raw)
}

// admin sends a request as an admin with role.
func (f *adminFixture) admin(t *testing.T, role, method, path string, body any) httpapitest.Reply {
	t.Helper()
	return f.as(t, f.adminToken(t, role), method, path, body)
}

// adminObj decodes the data of r keeping numbers exact.
func adminObj(t *testing.T, r httpapitest.Reply) map[string]any {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(r.Data))
	dec.UseNumber()
	var v map[string]any
	if err := dec.Decode(&v); err != nil {
		t.Fatalf("data %s: %v", r.Data, err)
	}
	return v
}

// adminItems returns the names (key) of the items of a list answer.
func adminItems(t *testing.T, r httpapitest.Reply, key string) []string {
	t.Helper()
	items, _ := adminObj(t, r)["items"].([]any)
	names := []string{}
	for _, it := range items {
		names = append(names, it.(map[string]any)[key].(string))
	}
	return names
}

// wantField fails unless r is a 400 naming field.
func wantField(t *testing.T, r httpapitest.Reply, field string) {
	t.Helper()
	if r.Status != http.StatusBadRequest || r.Error == nil || r.Error.Fields[field] == "" || !strings.Contains(r.Error.Message, field) {
		t.Fatalf("want 400 naming %q, got %d %s", field, r.Status, r.Raw)
	}
}

// wantData fails unless the data of r holds each key with the JSON value
// want (compared as raw JSON text, so 0.001500 is not 0.0015).
func wantData(t *testing.T, r httpapitest.Reply, want map[string]string) {
	t.Helper()
	var got map[string]json.RawMessage
	if err := json.Unmarshal(r.Data, &got); err != nil {
		t.Fatalf("data %s: %v", r.Data, err)
	}
	for k, v := range want {
		if string(got[k]) != v {
			t.Errorf("%s = %s, want %s (data %s)", k, got[k], v, r.Data)
		}
	}
}

func (f *adminFixture) count(t *testing.T, query string, args ...any) int {
	t.Helper()
	var n int
	if err := f.db.QueryRow(query, args...).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// auditRow is one audit_logs row.
type auditRow struct {
	ActorType, ActorName, TargetType, TargetID string
	ActorID, TenantID                          sql.NullInt64
	Before, After, RequestID, IP, UserAgent    sql.NullString
}

func (f *adminFixture) audits(t *testing.T, action string) []auditRow {
	t.Helper()
	rows, err := f.db.Query(`SELECT actor_type, COALESCE(actor_name, ''), target_type, COALESCE(target_id, ''), actor_id, tenant_id,
		before_state, after_state, request_id, ip_address, user_agent FROM audit_logs WHERE action = ? ORDER BY id`, action)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []auditRow
	for rows.Next() {
		var a auditRow
		if err := rows.Scan(&a.ActorType, &a.ActorName, &a.TargetType, &a.TargetID, &a.ActorID, &a.TenantID,
			&a.Before, &a.After, &a.RequestID, &a.IP, &a.UserAgent); err != nil {
			t.Fatal(err)
		}
		out = append(out, a)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

func (f *adminFixture) sealedKey(t *testing.T, name string) []byte {
	t.Helper()
	var key []byte
	if err := f.db.QueryRow("SELECT api_key_encrypted FROM ai_model_config WHERE model_name = ?", name).Scan(&key); err != nil {
		t.Fatal(err)
	}
	return key
}

func TestAdminModelLifecycle(t *testing.T) {
	t.Parallel()
	f := newAdminFixture(t)
	const secret, rotated = "sk-test-0123456789abcdef", "sk-rotated-fedcba9876543210"

	r := f.admin(t, "admin", "POST", "/api/admin/ai/models", map[string]any{
		"name": "GPT-Test", "displayName": "GPT Test", "provider": "openai", "apiKey": secret,
		"inputPricePer1k": "0.0015", "outputPricePer1k": json.Number("0.002"), "contextWindow": 128000,
		"modelParameters": map[string]any{"temperature": 0.7, "max_tokens": 1024}, "isDefault": true,
	})
	httpapitest.Want(t, r, http.StatusCreated, "")
	createID := r.Header.Get("X-Request-Id")
	wantData(t, r, map[string]string{
		"name": `"GPT-Test"`, "displayName": `"GPT Test"`, "modelType": `"text"`, "provider": `"openai"`, "hasApiKey": "true",
		"inputPricePer1k": "0.001500", "outputPricePer1k": "0.002000", "currency": `"CNY"`, "isDefault": "true",
		"status": `"active"`, "contextWindow": "128000", "upstreamModel": "null", "endpointUrl": "null",
		"modelParameters": `{"max_tokens":1024,"temperature":0.7}`, // as sent: encoding/json sorts map keys
	})
	if _, ok := adminObj(t, r)["apiKey"]; ok {
		t.Fatalf("the answer has an apiKey member: %s", r.Data)
	}

	// The key is sealed for this model: it opens with its AAD only.
	sealed := f.sealedKey(t, "GPT-Test")
	if bytes.Contains(sealed, []byte(secret)) {
		t.Fatal("api_key_encrypted holds the key in clear")
	}
	if got, err := f.sys.Box.Open(sealed, aibridge.ModelKeyAAD("GPT-Test")); err != nil || string(got) != secret {
		t.Fatalf("open the sealed key: %q %v", got, err)
	}
	if _, err := f.sys.Box.Open(sealed, aibridge.ModelKeyAAD("other-model")); err == nil {
		t.Fatal("the key opens for another model")
	}
	var price string
	if err := f.db.QueryRow("SELECT input_price_per_1k FROM ai_model_config WHERE model_name = 'gpt-test'").Scan(&price); err != nil || price != "0.001500" {
		t.Fatalf("input_price_per_1k = %q %v, want 0.001500", price, err)
	}

	// Names are unique, whatever their case.
	for _, name := range []string{"gpt-test", "GPT-TEST"} {
		httpapitest.Want(t, f.admin(t, "admin", "POST", "/api/admin/ai/models", map[string]any{"name": name, "provider": "openai"}),
			http.StatusConflict, "model_exists")
	}

	// A local model: its endpoint is required, its name may hold a slash.
	r = f.admin(t, "admin", "POST", "/api/admin/ai/models", map[string]any{
		"name": "org/local-llm", "provider": "local", "endpointUrl": "http://10.0.0.5:8000/v1", "status": "inactive",
		"modelType": "multimodal", "currency": "usd", "inputPricePer1k": 0,
	})
	httpapitest.Want(t, r, http.StatusCreated, "")
	wantData(t, r, map[string]string{"hasApiKey": "false", "displayName": `"org/local-llm"`, "currency": `"USD"`,
		"endpointUrl": `"http://10.0.0.5:8000/v1"`, "modelParameters": "null", "contextWindow": "null"})

	list := func(query string) []string {
		t.Helper()
		r := f.admin(t, "operator", "GET", "/api/admin/ai/models"+query, nil)
		httpapitest.Want(t, r, http.StatusOK, "")
		return adminItems(t, r, "name")
	}
	for query, want := range map[string]string{
		"": "GPT-Test,org/local-llm", "?provider=local": "org/local-llm", "?status=inactive": "org/local-llm",
		"?status=active": "GPT-Test", "?status=active&provider=local": "",
	} {
		if got := strings.Join(list(query), ","); got != want {
			t.Errorf("list%s = %q, want %q", query, got, want)
		}
	}
	wantField(t, f.admin(t, "operator", "GET", "/api/admin/ai/models?status=bogus", nil), "status")
	wantField(t, f.admin(t, "operator", "GET", "/api/admin/ai/models?provider=bogus", nil), "provider")

	r = f.admin(t, "operator", "GET", "/api/admin/ai/models/org/local-llm", nil)
	httpapitest.Want(t, r, http.StatusOK, "")
	wantData(t, r, map[string]string{"name": `"org/local-llm"`, "provider": `"local"`})
	httpapitest.Want(t, f.admin(t, "operator", "GET", "/api/admin/ai/models/nope", nil), http.StatusNotFound, "model_not_found")

	// An update changes what it names and nothing else; a new key is
	// sealed for the stored name, whatever the case of the path.
	r = f.admin(t, "admin", "PUT", "/api/admin/ai/models/gpt-test", map[string]any{
		"displayName": "GPT Test 2", "inputPricePer1k": 0.0025, "apiKey": rotated, "name": "GPT-Test",
	})
	httpapitest.Want(t, r, http.StatusOK, "")
	wantData(t, r, map[string]string{"displayName": `"GPT Test 2"`, "inputPricePer1k": "0.002500", "outputPricePer1k": "0.002000",
		"contextWindow": "128000", "hasApiKey": "true", "isDefault": "true"})
	if got, err := f.sys.Box.Open(f.sealedKey(t, "GPT-Test"), aibridge.ModelKeyAAD("GPT-Test")); err != nil || string(got) != rotated {
		t.Fatalf("the rotated key: %q %v", got, err)
	}
	r = f.admin(t, "admin", "PUT", "/api/admin/ai/models/gpt-test", map[string]any{"contextWindow": nil, "upstreamModel": "gpt-4o-2024-08-06"})
	httpapitest.Want(t, r, http.StatusOK, "")
	wantData(t, r, map[string]string{"contextWindow": "null", "upstreamModel": `"gpt-4o-2024-08-06"`, "hasApiKey": "true"})
	r = f.admin(t, "admin", "PUT", "/api/admin/ai/models/gpt-test", map[string]any{"apiKey": ""})
	httpapitest.Want(t, r, http.StatusOK, "")
	wantData(t, r, map[string]string{"hasApiKey": "false"})
	if key := f.sealedKey(t, "gpt-test"); key != nil {
		t.Fatalf(`apiKey "" left %d bytes in api_key_encrypted`, len(key))
	}
	wantField(t, f.admin(t, "admin", "PUT", "/api/admin/ai/models/gpt-test", map[string]any{"name": "gpt-renamed"}), "name")
	httpapitest.Want(t, f.admin(t, "admin", "PUT", "/api/admin/ai/models/gpt-test", map[string]any{}), http.StatusBadRequest, "empty_update")
	httpapitest.Want(t, f.admin(t, "admin", "PUT", "/api/admin/ai/models/nope", map[string]any{"status": "inactive"}),
		http.StatusNotFound, "model_not_found")

	// Deleting a model deletes the tenants' settings for it.
	httpapitest.Want(t, f.admin(t, "admin", "PUT", "/api/admin/ai/tenants/k001/models/GPT-Test", map[string]any{"priority": 1}), http.StatusOK, "")
	r = f.admin(t, "admin", "DELETE", "/api/admin/ai/models/gpt-test", nil)
	httpapitest.Want(t, r, http.StatusOK, "")
	wantData(t, r, map[string]string{"name": `"GPT-Test"`, "deleted": "true", "tenantSettingsRemoved": "1"})
	httpapitest.Want(t, f.admin(t, "operator", "GET", "/api/admin/ai/models/gpt-test", nil), http.StatusNotFound, "model_not_found")
	httpapitest.Want(t, f.admin(t, "admin", "DELETE", "/api/admin/ai/models/gpt-test", nil), http.StatusNotFound, "model_not_found")
	if n := f.count(t, "SELECT COUNT(*) FROM tenant_ai_model_configs WHERE tenant_id = ?", f.tenantID); n != 0 {
		t.Fatalf("%d tenant settings survived their model", n)
	}

	// Every change is audited, with who, from where, and no key.
	for action, want := range map[string]int{"ai.model.create": 2, "ai.model.update": 3, "ai.model.delete": 1} {
		rows := f.audits(t, action)
		if len(rows) != want {
			t.Fatalf("%d %s audit rows, want %d", len(rows), action, want)
		}
		for _, a := range rows {
			if a.ActorType != "admin" || a.ActorID.Int64 != 1 || a.ActorName != "admin" || a.TargetType != "ai_model" ||
				a.RequestID.String == "" || a.IP.String == "" || a.UserAgent.String != "admin-test" {
				t.Errorf("%s audit row: %+v", action, a)
			}
		}
	}
	create := f.audits(t, "ai.model.create")[0]
	if create.TargetID != "GPT-Test" || create.RequestID.String != createID || create.Before.Valid || !strings.Contains(create.After.String, `"hasApiKey":true`) {
		t.Errorf("create audit row: %+v (request id %s)", create, createID)
	}
	if del := f.audits(t, "ai.model.delete")[0]; !strings.Contains(del.Before.String, "GPT Test 2") {
		t.Errorf("delete audit row has no before state: %+v", del)
	}
	var states string
	if err := f.db.QueryRow("SELECT COALESCE(GROUP_CONCAT(CONCAT_WS(' ', before_state, after_state)), '') FROM audit_logs").Scan(&states); err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{secret, rotated} {
		if strings.Contains(states, s) {
			t.Fatal("an audit row holds the API key")
		}
		for _, b := range f.bodies {
			if strings.Contains(b, s) {
				t.Fatalf("an answer holds the API key: %s", b)
			}
		}
	}
}

func TestAdminModelValidation(t *testing.T) {
	t.Parallel()
	f := newAdminFixture(t)
	long := strings.Repeat("m", 101)
	tests := []struct {
		name  string
		body  map[string]any
		field string
	}{
		{"NameMissing", map[string]any{"provider": "openai"}, "name"},
		{"NameNull", map[string]any{"name": nil, "provider": "openai"}, "name"},
		{"NameAuto", map[string]any{"name": "auto", "provider": "openai"}, "name"},
		{"NameAutoCase", map[string]any{"name": "Auto", "provider": "openai"}, "name"},
		{"NameSpace", map[string]any{"name": "gpt 4", "provider": "openai"}, "name"},
		{"NameDotDot", map[string]any{"name": "a/../b", "provider": "openai"}, "name"},
		{"NameEmptySegment", map[string]any{"name": "a//b", "provider": "openai"}, "name"},
		{"NameLeadingDash", map[string]any{"name": "-gpt", "provider": "openai"}, "name"},
		{"NameTooLong", map[string]any{"name": long, "provider": "openai"}, "name"},
		{"NameNotString", map[string]any{"name": 5, "provider": "openai"}, "name"},
		{"ProviderMissing", map[string]any{"name": "m1"}, "provider"},
		{"ProviderUnknown", map[string]any{"name": "m1", "provider": "skynet"}, "provider"},
		{"ModelType", map[string]any{"name": "m1", "provider": "openai", "modelType": "video"}, "modelType"},
		{"ModelTypeNull", map[string]any{"name": "m1", "provider": "openai", "modelType": nil}, "modelType"},
		{"DisplayNameEmpty", map[string]any{"name": "m1", "provider": "openai", "displayName": "  "}, "displayName"},
		{"LocalWithoutEndpoint", map[string]any{"name": "m1", "provider": "local"}, "endpointUrl"},
		{"EndpointScheme", map[string]any{"name": "m1", "provider": "openai", "endpointUrl": "ftp://models.example.com"}, "endpointUrl"},
		{"EndpointNoHost", map[string]any{"name": "m1", "provider": "openai", "endpointUrl": "https://"}, "endpointUrl"},
		{"EndpointCredentials", map[string]any{"name": "m1", "provider": "openai", "endpointUrl": "https://u:p@api.example.com"}, "endpointUrl"},
		{"APIKeySpace", map[string]any{"name": "m1", "provider": "openai", "apiKey": "sk one"}, "apiKey"},
		{"PriceNegative", map[string]any{"name": "m1", "provider": "openai", "inputPricePer1k": -0.1}, "inputPricePer1k"},
		{"PriceSevenPlaces", map[string]any{"name": "m1", "provider": "openai", "inputPricePer1k": "0.0000001"}, "inputPricePer1k"},
		{"PriceText", map[string]any{"name": "m1", "provider": "openai", "inputPricePer1k": "cheap"}, "inputPricePer1k"},
		{"PriceExponent", map[string]any{"name": "m1", "provider": "openai", "outputPricePer1k": json.Number("1e-3")}, "outputPricePer1k"},
		{"PriceBool", map[string]any{"name": "m1", "provider": "openai", "outputPricePer1k": true}, "outputPricePer1k"},
		{"PriceNull", map[string]any{"name": "m1", "provider": "openai", "outputPricePer1k": nil}, "outputPricePer1k"},
		{"PriceTooHigh", map[string]any{"name": "m1", "provider": "openai", "outputPricePer1k": "1000000"}, "outputPricePer1k"},
		{"Currency", map[string]any{"name": "m1", "provider": "openai", "currency": "CN"}, "currency"},
		{"Status", map[string]any{"name": "m1", "provider": "openai", "status": "retired"}, "status"},
		{"ParametersArray", map[string]any{"name": "m1", "provider": "openai", "modelParameters": []int{1}}, "modelParameters"},
		{"ParametersString", map[string]any{"name": "m1", "provider": "openai", "modelParameters": "{}"}, "modelParameters"},
		{"ContextWindowNegative", map[string]any{"name": "m1", "provider": "openai", "contextWindow": -1}, "contextWindow"},
		{"ContextWindowText", map[string]any{"name": "m1", "provider": "openai", "contextWindow": "big"}, "contextWindow"},
		{"IsDefaultText", map[string]any{"name": "m1", "provider": "openai", "isDefault": "yes"}, "isDefault"},
		{"UnknownField", map[string]any{"name": "m1", "provider": "openai", "apiKeyEncrypted": "x"}, "apiKeyEncrypted"},
		{"ReadOnlyField", map[string]any{"name": "m1", "provider": "openai", "hasApiKey": true}, "hasApiKey"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			wantField(t, f.admin(t, "admin", "POST", "/api/admin/ai/models", tc.body), tc.field)
		})
	}
	// Every problem is reported at once.
	r := f.admin(t, "admin", "POST", "/api/admin/ai/models", map[string]any{"name": "auto", "provider": "skynet", "currency": "euro"})
	for _, field := range []string{"name", "provider", "currency"} {
		wantField(t, r, field)
	}
	if n := f.count(t, "SELECT COUNT(*) FROM ai_model_config"); n != 0 {
		t.Fatalf("%d models created by invalid requests", n)
	}

	// A rejected update changes nothing, not even its valid fields.
	httpapitest.Want(t, f.admin(t, "admin", "POST", "/api/admin/ai/models", map[string]any{
		"name": "m1", "provider": "openai", "apiKey": "sk-m1", "inputPricePer1k": "0.1"}), http.StatusCreated, "")
	before := f.admin(t, "operator", "GET", "/api/admin/ai/models/m1", nil)
	for field, body := range map[string]map[string]any{
		"inputPricePer1k": {"displayName": "Changed", "inputPricePer1k": "-1", "apiKey": "sk-changed"},
		"endpointUrl":     {"provider": "local", "displayName": "Changed"},
		"modelType":       {"modelType": nil, "status": "inactive"},
		"name":            {"name": "m2", "currency": "USD"},
		"status":          {"status": "", "isDefault": true},
	} {
		wantField(t, f.admin(t, "admin", "PUT", "/api/admin/ai/models/m1", body), field)
	}
	after := f.admin(t, "operator", "GET", "/api/admin/ai/models/m1", nil)
	if !bytes.Equal(before.Data, after.Data) {
		t.Fatalf("rejected updates changed the model:\nbefore %s\nafter  %s", before.Data, after.Data)
	}
	if got, err := f.sys.Box.Open(f.sealedKey(t, "m1"), aibridge.ModelKeyAAD("m1")); err != nil || string(got) != "sk-m1" {
		t.Fatalf("a rejected update changed the key: %q %v", got, err)
	}
	if n := f.count(t, "SELECT COUNT(*) FROM audit_logs WHERE action LIKE 'ai.%'"); n != 1 {
		t.Fatalf("%d audit rows, want 1 (the one create)", n)
	}
}

func TestAdminAccess(t *testing.T) {
	t.Parallel()
	f := newAdminFixture(t)
	model := map[string]any{"name": "m1", "provider": "openai"}
	writes := []struct {
		method, path string
		body         any
	}{
		{"POST", "/api/admin/ai/models", model},
		{"PUT", "/api/admin/ai/models/m0", map[string]any{"status": "inactive"}},
		{"DELETE", "/api/admin/ai/models/m0", nil},
		{"PUT", "/api/admin/ai/tenants/k001/models/m0", map[string]any{"priority": 1}},
		{"PUT", "/api/admin/ai/tenants/k001/account", map[string]any{"balance": 1000}},
	}
	reads := []string{"/api/admin/ai/models", "/api/admin/ai/models/m0", "/api/admin/ai/tenants/k001/models", "/api/admin/ai/tenants/k001/account"}
	httpapitest.Want(t, f.admin(t, "admin", "POST", "/api/admin/ai/models", map[string]any{"name": "m0", "provider": "openai"}), http.StatusCreated, "")

	for _, path := range reads {
		httpapitest.Want(t, f.admin(t, "operator", "GET", path, nil), http.StatusOK, "")
		httpapitest.Want(t, f.as(t, "", "GET", path, nil), http.StatusUnauthorized, "missing_token")
		httpapitest.Want(t, f.as(t, "not-a-token", "GET", path, nil), http.StatusUnauthorized, "invalid_token")
		// A tenant's member, even its owner, is not a platform admin.
		httpapitest.Want(t, f.as(t, f.userToken(t, auth.AudienceTenant, "owner"), "GET", path, nil), http.StatusUnauthorized, "wrong_audience")
		httpapitest.Want(t, f.as(t, f.userToken(t, auth.AudiencePlatform, ""), "GET", path, nil), http.StatusUnauthorized, "wrong_audience")
		// A user's token for the admin audience is not an admin's, whatever role it claims.
		httpapitest.Want(t, f.as(t, f.userToken(t, auth.AudienceAdmin, "super_admin"), "GET", path, nil), http.StatusForbidden, "permission_denied")
		httpapitest.Want(t, f.admin(t, "viewer", "GET", path, nil), http.StatusForbidden, "permission_denied")
	}
	for _, w := range writes {
		httpapitest.Want(t, f.admin(t, "operator", w.method, w.path, w.body), http.StatusForbidden, "permission_denied")
		httpapitest.Want(t, f.as(t, f.userToken(t, auth.AudienceTenant, "owner"), w.method, w.path, w.body), http.StatusUnauthorized, "wrong_audience")
		httpapitest.Want(t, f.as(t, "", w.method, w.path, w.body), http.StatusUnauthorized, "missing_token")
	}
	if n := f.count(t, "SELECT COUNT(*) FROM ai_model_config WHERE model_name = 'm1' OR status <> 'active'"); n != 0 {
		t.Fatal("a refused write changed the models")
	}
	if n := f.count(t, "SELECT COUNT(*) FROM tenant_ai_model_configs"); n != 0 {
		t.Fatal("a refused write changed the tenant's settings")
	}
	if n := f.count(t, "SELECT COUNT(*) FROM tenant_accounts WHERE balance <> 0"); n != 0 {
		t.Fatal("a refused write changed the account")
	}
	if n := f.count(t, "SELECT COUNT(*) FROM audit_logs WHERE action LIKE 'ai.%'"); n != 1 {
		t.Fatalf("%d audit rows, want 1", n)
	}
	// Admins and super admins manage.
	httpapitest.Want(t, f.admin(t, "super_admin", "POST", "/api/admin/ai/models", model), http.StatusCreated, "")
	httpapitest.Want(t, f.admin(t, "admin", "DELETE", "/api/admin/ai/models/m1", nil), http.StatusOK, "")
}

func TestAdminTenantModels(t *testing.T) {
	t.Parallel()
	f := newAdminFixture(t)
	for _, name := range []string{"chat-a", "chat-b", "chat-c"} {
		httpapitest.Want(t, f.admin(t, "admin", "POST", "/api/admin/ai/models", map[string]any{"name": name, "provider": "deepseek"}),
			http.StatusCreated, "")
	}
	const path = "/api/admin/ai/tenants/k001/models/"

	r := f.admin(t, "admin", "PUT", path+"chat-a", map[string]any{
		"enabled": true, "priority": 10, "rpm": 60, "tpm": nil, "dailyTokenLimit": 100000,
		"customParameters": map[string]any{"fallbacks": []string{"chat-c", "chat-b"}, "temperature": 0.2},
	})
	httpapitest.Want(t, r, http.StatusOK, "")
	wantData(t, r, map[string]string{"tenantCode": `"k001"`, "modelName": `"chat-a"`, "provider": `"deepseek"`, "enabled": "true",
		"priority": "10", "rpm": "60", "tpm": "null", "dailyTokenLimit": "100000",
		"customParameters": `{"fallbacks":["chat-c","chat-b"],"temperature":0.2}`})
	var stored string
	if err := f.db.QueryRow(`SELECT JSON_EXTRACT(c.custom_parameters, '$.fallbacks') FROM tenant_ai_model_configs c
		JOIN ai_model_config m ON m.id = c.model_id WHERE c.tenant_id = ? AND m.model_name = 'chat-a'`, f.tenantID).Scan(&stored); err != nil {
		t.Fatal(err)
	}
	if strings.ReplaceAll(stored, " ", "") != `["chat-c","chat-b"]` {
		t.Fatalf("stored fallbacks %s", stored)
	}

	// A new setting takes the defaults for what it does not give.
	r = f.admin(t, "admin", "PUT", path+"chat-b", map[string]any{"priority": 20, "enabled": false})
	httpapitest.Want(t, r, http.StatusOK, "")
	wantData(t, r, map[string]string{"enabled": "false", "priority": "20", "rpm": "null", "customParameters": "null"})
	r = f.admin(t, "admin", "PUT", path+"chat-c", map[string]any{})
	httpapitest.Want(t, r, http.StatusOK, "")
	wantData(t, r, map[string]string{"enabled": "true", "priority": "100"})

	// A change keeps what it does not name; null is the platform default.
	r = f.admin(t, "admin", "PUT", path+"chat-a", map[string]any{"priority": 30})
	httpapitest.Want(t, r, http.StatusOK, "")
	wantData(t, r, map[string]string{"priority": "30", "rpm": "60", "dailyTokenLimit": "100000",
		"customParameters": `{"fallbacks":["chat-c","chat-b"],"temperature":0.2}`})
	r = f.admin(t, "admin", "PUT", path+"chat-a", map[string]any{"rpm": nil, "tpm": 0})
	httpapitest.Want(t, r, http.StatusOK, "")
	wantData(t, r, map[string]string{"rpm": "null", "tpm": "0", "priority": "30"})

	r = f.admin(t, "operator", "GET", "/api/admin/ai/tenants/k001/models", nil)
	httpapitest.Want(t, r, http.StatusOK, "")
	if got := strings.Join(adminItems(t, r, "modelName"), ","); got != "chat-b,chat-a,chat-c" {
		t.Fatalf("tenant models in priority order = %s, want chat-b,chat-a,chat-c", got)
	}

	// Bad settings are refused whole, naming the field.
	row := func() string {
		t.Helper()
		var s string
		if err := f.db.QueryRow(`SELECT CONCAT_WS('|', is_enabled, priority, COALESCE(custom_parameters, '-'), COALESCE(rpm_limit, '-'),
			COALESCE(tpm_limit, '-'), COALESCE(daily_token_limit, '-')) FROM tenant_ai_model_configs c JOIN ai_model_config m ON m.id = c.model_id
			WHERE c.tenant_id = ? AND m.model_name = 'chat-a'`, f.tenantID).Scan(&s); err != nil {
			t.Fatal(err)
		}
		return s
	}
	was := row()
	params := func(v any) map[string]any { return map[string]any{"priority": 1, "customParameters": v} }
	for _, tc := range []struct {
		name  string
		body  map[string]any
		field string
	}{
		{"FallbackUnknown", params(map[string]any{"fallbacks": []string{"chat-b", "nope"}}), "customParameters"},
		{"FallbackSelf", params(map[string]any{"fallbacks": []string{"chat-a"}}), "customParameters"},
		{"FallbackCase", params(map[string]any{"fallbacks": []string{"CHAT-B"}}), "customParameters"},
		{"FallbackTwice", params(map[string]any{"fallbacks": []string{"chat-b", "chat-b"}}), "customParameters"},
		{"FallbacksNotArray", params(map[string]any{"fallbacks": "chat-b"}), "customParameters"},
		{"FallbacksNotNames", params(map[string]any{"fallbacks": []int{1}}), "customParameters"},
		{"FallbacksNull", params(map[string]any{"fallbacks": nil}), "customParameters"},
		{"ParametersArray", params([]string{"chat-b"}), "customParameters"},
		{"RPMNegative", map[string]any{"rpm": -1, "priority": 1}, "rpm"},
		{"TPMTooBig", map[string]any{"tpm": int64(1) << 32, "priority": 1}, "tpm"},
		{"DailyNegative", map[string]any{"dailyTokenLimit": -5, "priority": 1}, "dailyTokenLimit"},
		{"PriorityTooBig", map[string]any{"priority": int64(1) << 40}, "priority"},
		{"PriorityText", map[string]any{"priority": "first"}, "priority"},
		{"EnabledNull", map[string]any{"enabled": nil, "priority": 1}, "enabled"},
		{"UnknownField", map[string]any{"isEnabled": true}, "isEnabled"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			wantField(t, f.admin(t, "admin", "PUT", path+"chat-a", tc.body), tc.field)
		})
	}
	if now := row(); now != was {
		t.Fatalf("rejected settings changed the row: %s, was %s", now, was)
	}
	httpapitest.Want(t, f.admin(t, "admin", "PUT", "/api/admin/ai/tenants/k999/models/chat-a", map[string]any{}), http.StatusNotFound, "tenant_not_found")
	httpapitest.Want(t, f.admin(t, "admin", "PUT", path+"nope", map[string]any{}), http.StatusNotFound, "model_not_found")
	httpapitest.Want(t, f.admin(t, "operator", "GET", "/api/admin/ai/tenants/k999/models", nil), http.StatusNotFound, "tenant_not_found")

	// An explicit empty list and clearing the parameters are fine.
	httpapitest.Want(t, f.admin(t, "admin", "PUT", path+"chat-b", params(map[string]any{"fallbacks": []string{}})), http.StatusOK, "")
	r = f.admin(t, "admin", "PUT", path+"chat-b", map[string]any{"customParameters": nil})
	httpapitest.Want(t, r, http.StatusOK, "")
	wantData(t, r, map[string]string{"customParameters": "null"})

	rows := f.audits(t, "ai.tenant_model.update")
	if len(rows) != 7 {
		t.Fatalf("%d ai.tenant_model.update audit rows, want 7", len(rows))
	}
	first := rows[0]
	if first.TargetType != "tenant" || first.TargetID != "k001" || first.TenantID.Int64 != f.tenantID || first.Before.Valid ||
		!strings.Contains(first.After.String, "chat-a") || first.ActorName != "admin" {
		t.Fatalf("first audit row: %+v", first)
	}
	if !rows[3].Before.Valid || !strings.Contains(rows[3].Before.String, `"priority":10`) {
		t.Fatalf("an update's audit row has no before state: %+v", rows[3])
	}
}

func TestAdminAccount(t *testing.T) {
	t.Parallel()
	f := newAdminFixture(t)
	const path = "/api/admin/ai/tenants/k001/account"
	account := func() string {
		t.Helper()
		var s string
		if err := f.db.QueryRow(`SELECT CONCAT_WS('|', balance, credit_limit, reserved_amount, currency, payment_status, billing_cycle)
			FROM tenant_accounts WHERE tenant_id = ?`, f.tenantID).Scan(&s); err != nil {
			t.Fatal(err)
		}
		return s
	}

	r := f.admin(t, "operator", "GET", path, nil)
	httpapitest.Want(t, r, http.StatusOK, "")
	wantData(t, r, map[string]string{"tenantCode": `"k001"`, "balance": "0.000000", "creditLimit": "0.000000", "reserved": "0.000000",
		"available": "0.000000", "currency": `"CNY"`, "paymentStatus": `"normal"`, "billingCycle": `"monthly"`})

	// In-flight calls hold 2.5; the admin's change leaves that alone.
	if _, err := f.db.Exec("UPDATE tenant_accounts SET reserved_amount = 2.5 WHERE tenant_id = ?", f.tenantID); err != nil {
		t.Fatal(err)
	}
	r = f.admin(t, "admin", "PUT", path, map[string]any{"balance": "100.5", "creditLimit": 20, "paymentStatus": "overdue", "billingCycle": "prepaid"})
	httpapitest.Want(t, r, http.StatusOK, "")
	wantData(t, r, map[string]string{"balance": "100.500000", "creditLimit": "20.000000", "reserved": "2.500000", "available": "118.000000",
		"paymentStatus": `"overdue"`, "billingCycle": `"prepaid"`})
	if got := account(); got != "100.5000|20.0000|2.5000|CNY|overdue|prepaid" {
		t.Fatalf("account row %s", got)
	}
	r = f.admin(t, "admin", "PUT", path, map[string]any{"balance": json.Number("12345678.9999")})
	httpapitest.Want(t, r, http.StatusOK, "")
	wantData(t, r, map[string]string{"balance": "12345678.999900", "available": "12345696.499900", "paymentStatus": `"overdue"`})
	r = f.admin(t, "operator", "GET", path, nil)
	wantData(t, r, map[string]string{"balance": "12345678.999900", "reserved": "2.500000"})

	// Reserved and available are read-only; bad values change nothing.
	was := account()
	for _, tc := range []struct {
		name  string
		body  map[string]any
		code  string
		field string
	}{
		{"Reserved", map[string]any{"reserved": 0}, "read_only_field", "reserved"},
		{"ReservedNull", map[string]any{"reserved": nil, "balance": 1}, "read_only_field", "reserved"},
		{"Available", map[string]any{"available": 5, "balance": 1}, "read_only_field", "available"},
		{"BalanceNegative", map[string]any{"balance": -1}, "invalid_field", "balance"},
		{"BalanceFivePlaces", map[string]any{"balance": "1.00001", "creditLimit": 3}, "invalid_field", "balance"},
		{"BalanceText", map[string]any{"balance": "lots"}, "invalid_field", "balance"},
		{"BalanceTooBig", map[string]any{"balance": "100000000000"}, "invalid_field", "balance"},
		{"CreditNegative", map[string]any{"creditLimit": "-0.0001"}, "invalid_field", "creditLimit"},
		{"CreditNull", map[string]any{"creditLimit": nil}, "invalid_field", "creditLimit"},
		{"PaymentStatus", map[string]any{"paymentStatus": "late"}, "invalid_field", "paymentStatus"},
		{"BillingCycle", map[string]any{"billingCycle": "weekly", "balance": 2}, "invalid_field", "billingCycle"},
		{"Currency", map[string]any{"currency": "USD"}, "unknown_field", "currency"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := f.admin(t, "admin", "PUT", path, tc.body)
			wantField(t, r, tc.field)
			httpapitest.Want(t, r, http.StatusBadRequest, tc.code)
		})
	}
	httpapitest.Want(t, f.admin(t, "admin", "PUT", path, map[string]any{}), http.StatusBadRequest, "empty_update")
	if now := account(); now != was {
		t.Fatalf("rejected changes changed the account: %s, was %s", now, was)
	}
	httpapitest.Want(t, f.admin(t, "operator", "GET", "/api/admin/ai/tenants/k999/account", nil), http.StatusNotFound, "tenant_not_found")
	httpapitest.Want(t, f.admin(t, "admin", "PUT", "/api/admin/ai/tenants/k999/account", map[string]any{"balance": 1}), http.StatusNotFound, "tenant_not_found")

	// A tenant without an account gets one.
	if _, err := f.db.Exec("DELETE FROM tenant_accounts WHERE tenant_id = ?", f.tenantID); err != nil {
		t.Fatal(err)
	}
	httpapitest.Want(t, f.admin(t, "operator", "GET", path, nil), http.StatusNotFound, "account_not_found")
	r = f.admin(t, "admin", "PUT", path, map[string]any{"creditLimit": "50"})
	httpapitest.Want(t, r, http.StatusOK, "")
	wantData(t, r, map[string]string{"balance": "0.000000", "creditLimit": "50.000000", "reserved": "0.000000", "available": "50.000000",
		"currency": `"CNY"`, "paymentStatus": `"normal"`})
	if got := account(); got != "0.0000|50.0000|0.0000|CNY|normal|monthly" {
		t.Fatalf("created account row %s", got)
	}

	rows := f.audits(t, "ai.account.update")
	if len(rows) != 3 {
		t.Fatalf("%d ai.account.update audit rows, want 3", len(rows))
	}
	for _, a := range rows {
		if a.TargetType != "tenant" || a.TargetID != "k001" || a.TenantID.Int64 != f.tenantID || a.ActorID.Int64 != 1 || a.RequestID.String == "" {
			t.Errorf("audit row %+v", a)
		}
	}
	if !strings.Contains(rows[0].Before.String, "0.000000") || !strings.Contains(rows[0].After.String, "100.500000") {
		t.Errorf("first audit row: before %s after %s", rows[0].Before.String, rows[0].After.String)
	}
	if rows[2].Before.Valid || !strings.Contains(rows[2].After.String, "50.000000") {
		t.Errorf("creation audit row: before %s after %s", rows[2].Before.String, rows[2].After.String)
	}
}
