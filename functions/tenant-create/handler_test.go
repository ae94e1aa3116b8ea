package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rsa"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/unitenant/unitenant/shared/auth"
	"github.com/unitenant/unitenant/shared/idempotency"
	"github.com/unitenant/unitenant/shared/logging"
	"github.com/unitenant/unitenant/shared/provisioning"
	"github.com/unitenant/unitenant/shared/serverless"
	"github.com/unitenant/unitenant/shared/sms"
	"github.com/unitenant/unitenant/tests/testenv"
)

// fixture is tenant-create over httptest on a control plane of the test's
// own, with the real pipeline, SMS codes written to an outbox file, and real
// RS256 tokens.
type fixture struct {
	srv    *httptest.Server
	sys    testenv.System
	codes  *sms.Codes
	outbox string
	signer *auth.Signer
	userID int64
	pipe   *provisioning.Pipeline
}

const ownerPhone = "13811110000"

func newFixture(t *testing.T) *fixture {
	t.Helper()
	sys := testenv.NewSystem(t)
	tenants := testenv.NewTenants(t, sys.DB, sys.Box)
	outbox := filepath.Join(t.TempDir(), "sms.jsonl")
	codes := sms.NewCodes(sys.DB, sms.NewOutbox(outbox, nil), []byte(strings.Repeat("c", 32)), sms.Options{})
	signer := auth.NewSigner(sys.SigningKey, nil)
	h := &handler{db: sys.DB, pipeline: tenants.Pipeline, codes: codes, idem: &idempotency.Store{DB: sys.DB},
		verifier: auth.NewVerifier([]*rsa.PublicKey{signer.Public()}, nil), log: testLog,
		budget: 20 * time.Second, baseDomain: "localhost", bcryptCost: 4}
	srv := httptest.NewServer(serverless.Handler(newHandler(h), logging.Discard(), 0))
	t.Cleanup(srv.Close)
	res, err := sys.DB.Exec("INSERT INTO global_users (phone, password_hash, real_name) VALUES (?, 'x', 'Owner')", ownerPhone)
	if err != nil {
		t.Fatal(err)
	}
	id, _ := res.LastInsertId()
	// The admins whose tokens the tests use: create checks the account too.
	if _, err := sys.DB.Exec(`INSERT IGNORE INTO admin_users (id, username, password_hash, role)
		VALUES (1, 'root', 'x', 'super_admin'), (2, 'ops', 'x', 'operator'), (?, 'owner-admin', 'x', 'admin')`, id); err != nil {
		t.Fatal(err)
	}
	return &fixture{srv: srv, sys: sys, codes: codes, outbox: outbox, signer: signer, userID: id, pipe: tenants.Pipeline}
}

func (f *fixture) token(t *testing.T, kind string, id int64, aud, role string) string {
	t.Helper()
	tok, _, err := f.signer.Issue(kind, id, aud, "", role, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// smsCode sends a tenant_create code to phone and reads it from the outbox.
func (f *fixture) smsCode(t *testing.T, phone string) string {
	t.Helper()
	if _, err := f.codes.Issue(context.Background(), phone, sms.PurposeTenantCreate, "127.0.0.1"); err != nil {
		t.Fatal(err)
	}
	file, err := os.Open(f.outbox)
	if err != nil {
		t.Fatal(err)
	}
	defer file.Close()
	var code string
	sc := bufio.NewScanner(file)
	for sc.Scan() {
		var m struct{ Phone, Code string }
		if json.Unmarshal(sc.Bytes(), &m) == nil && m.Phone == phone {
			code = m.Code
		}
	}
	return code
}

type reply struct {
	status int
	header http.Header
	raw    []byte
	env    struct {
		Success bool            `json:"success"`
		Data    json.RawMessage `json:"data"`
		Error   struct {
			Code   string            `json:"code"`
			Fields map[string]string `json:"fields"`
		} `json:"error"`
	}
}

func (f *fixture) do(t *testing.T, method, path, token, key string, body any) reply {
	t.Helper()
	var b []byte
	if body != nil {
		b, _ = json.Marshal(body)
	}
	req, _ := http.NewRequest(method, f.srv.URL+path, bytes.NewReader(b))
	req.Header.Set("Authorization", "Bearer "+token)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if key != "" {
		req.Header.Set("Idempotency-Key", key)
	}
	resp, err := f.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var r reply
	r.status, r.header = resp.StatusCode, resp.Header
	buf := new(bytes.Buffer)
	_, _ = buf.ReadFrom(resp.Body)
	r.raw = buf.Bytes()
	if err := json.Unmarshal(r.raw, &r.env); err != nil {
		t.Fatalf("%s %s: %q: %v", method, path, r.raw, err)
	}
	return r
}

func body(code, phone, sms string) map[string]any {
	return map[string]any{"tenantCode": code, "name": "Sunshine " + code, "contactName": "Li Hua",
		"contactEmail": "li@example.com", "contactPhone": phone, "smsVerificationCode": sms}
}

func (f *fixture) count(t *testing.T, q string) int {
	t.Helper()
	var n int
	if err := f.sys.DB.QueryRow(q).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func TestUserCreatesTenantWithSMSCode(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	user := f.token(t, auth.KindUser, f.userID, auth.AudiencePlatform, "")

	// Bad input and a wrong code change nothing and keep the code usable.
	code := f.smsCode(t, ownerPhone)
	if r := f.do(t, "POST", "/api/tenants", user, "", map[string]any{"tenantCode": "x", "name": ""}); r.status != 400 || r.env.Error.Fields["tenantCode"] == "" || r.env.Error.Fields["contactEmail"] == "" {
		t.Fatalf("bad input: %d %s", r.status, r.raw)
	}
	wrong := "000000"
	if code == wrong {
		wrong = "111111"
	}
	if r := f.do(t, "POST", "/api/tenants", user, "", body("k001", ownerPhone, wrong)); r.status != 400 || r.env.Error.Code != "invalid_sms_code" {
		t.Fatalf("wrong code: %d %s", r.status, r.raw)
	}
	if n := f.count(t, "SELECT COUNT(*) FROM tenants"); n != 0 {
		t.Fatalf("refused requests created %d tenants", n)
	}

	r := f.do(t, "POST", "/api/tenants", user, "", body("k001", ownerPhone, code))
	if r.status != 201 {
		t.Fatalf("create: %d %s", r.status, r.raw)
	}
	var got created
	_ = json.Unmarshal(r.env.Data, &got)
	if got.TenantCode != "k001" || got.Status != "active" || got.Domain != "k001.localhost" || got.ProgressURL != "/api/tenants/k001/progress" {
		t.Fatalf("created %+v", got)
	}
	// The same code is spent.
	if r := f.do(t, "POST", "/api/tenants", user, "", body("k002", ownerPhone, code)); r.status != 400 || r.env.Error.Code != "invalid_sms_code" {
		t.Fatalf("reused code: %d %s", r.status, r.raw)
	}

	p := f.do(t, "GET", "/api/tenants/k001/progress", user, "", nil)
	var v provisioning.ProgressView
	_ = json.Unmarshal(p.env.Data, &v)
	if p.status != 200 || v.Status != "completed" || v.Percent != 100 || len(v.Steps) != len(provisioning.Steps) {
		t.Fatalf("progress: %d %s", p.status, p.raw)
	}
	for _, s := range v.Steps {
		if s.Status != "completed" || s.CompletedAt == nil {
			t.Errorf("step %+v", s)
		}
	}
	if n := f.count(t, fmt.Sprintf("SELECT COUNT(*) FROM global_user_tenant_relations WHERE global_user_id = %d AND role_in_tenant = 'admin' AND status = 'active'", f.userID)); n != 1 {
		t.Fatalf("the requester is admin of %d tenants, want 1", n)
	}
	// Someone else cannot see the tenant's progress, nor learn it exists.
	stranger := f.token(t, auth.KindUser, f.userID+1000, auth.AudiencePlatform, "")
	if r := f.do(t, "GET", "/api/tenants/k001/progress", stranger, "", nil); r.status != 404 || r.env.Error.Code != "tenant_not_found" {
		t.Fatalf("stranger: %d %s", r.status, r.raw)
	}
	if r := f.do(t, "GET", "/api/tenants/k001/progress", f.token(t, auth.KindAdmin, 1, auth.AudienceAdmin, "operator"), "", nil); r.status != 200 {
		t.Fatalf("admin: %d %s", r.status, r.raw)
	}
}

func TestIdempotencyKey(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	admin := f.token(t, auth.KindAdmin, 1, auth.AudienceAdmin, "admin")
	first := f.do(t, "POST", "/api/tenants", admin, "create-k010", body("k010", "13822223333", ""))
	if first.status != 201 {
		t.Fatalf("first: %d %s", first.status, first.raw)
	}
	again := f.do(t, "POST", "/api/tenants", admin, "create-k010", body("k010", "13822223333", ""))
	if again.status != first.status || !bytes.Equal(bytes.TrimSpace(again.raw), bytes.TrimSpace(first.raw)) || again.header.Get("Idempotent-Replayed") != "true" {
		t.Fatalf("replay: %d %s, want %d %s", again.status, again.raw, first.status, first.raw)
	}
	other := body("k011", "13822223333", "")
	if r := f.do(t, "POST", "/api/tenants", admin, "create-k010", other); r.status != 400 || r.env.Error.Code != "idempotency_key_reused" {
		t.Fatalf("same key, other body: %d %s", r.status, r.raw)
	}
	if n := f.count(t, "SELECT COUNT(*) FROM tenants"); n != 1 {
		t.Fatalf("%d tenants, want 1", n)
	}
	// The admin's request made the contact phone's user the tenant's admin.
	if n := f.count(t, "SELECT COUNT(*) FROM global_user_tenant_relations r JOIN global_users g ON g.id = r.global_user_id WHERE g.phone = '13822223333' AND r.role_in_tenant = 'admin'"); n != 1 {
		t.Fatalf("contact user admin relations = %d", n)
	}
	if r := f.do(t, "POST", "/api/tenants", f.token(t, auth.KindAdmin, 2, auth.AudienceAdmin, "operator"), "", body("k012", "13822223333", "")); r.status != 403 {
		t.Fatalf("operator: %d %s", r.status, r.raw)
	}
}

func TestConcurrentCreatesOverHTTP(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	admin := f.token(t, auth.KindAdmin, 1, auth.AudienceAdmin, "super_admin")
	const n = 20
	statuses := make(chan int, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			statuses <- f.do(t, "POST", "/api/tenants", admin, fmt.Sprint("key-", i), body("k020", "13833334444", "")).status
		}()
	}
	wg.Wait()
	close(statuses)
	count := map[int]int{}
	for s := range statuses {
		count[s]++
	}
	if count[201]+count[202] != 1 || count[409] != n-1 {
		t.Fatalf("statuses %v: want exactly one created and %d conflicts", count, n-1)
	}
	if n := f.count(t, "SELECT COUNT(*) FROM tenants WHERE tenant_code = 'k020'"); n != 1 {
		t.Fatalf("%d tenants k020", n)
	}
}

var testLog = logging.New(os.Stderr, "tenant-create", slog.LevelError)

// Admins and global users are numbered apart: a global user whose id happens
// to be that of the admin who created a tenant is no creator of it.
func TestProgressHiddenFromUserSharingTheCreatingAdminsID(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	admin := f.token(t, auth.KindAdmin, f.userID, auth.AudienceAdmin, "admin")
	if r := f.do(t, "POST", "/api/tenants", admin, "", body("k040", "13844445555", "")); r.status != 201 {
		t.Fatalf("create: %d %s", r.status, r.raw)
	}
	if r := f.do(t, "GET", "/api/tenants/k040/progress", admin, "", nil); r.status != 200 {
		t.Fatalf("the creating admin: %d %s", r.status, r.raw)
	}
	// The owner is neither its creator nor its member: only its id matches.
	user := f.token(t, auth.KindUser, f.userID, auth.AudiencePlatform, "")
	if r := f.do(t, "GET", "/api/tenants/k040/progress", user, "", nil); r.status != 404 || r.env.Error.Code != "tenant_not_found" {
		t.Fatalf("user with the admin's id: %d %s, want 404 tenant_not_found", r.status, r.raw)
	}
	// The contact, whom the admin's request made the tenant's admin, sees it.
	var contact int64
	if err := f.sys.DB.QueryRow("SELECT id FROM global_users WHERE phone = '13844445555'").Scan(&contact); err != nil {
		t.Fatal(err)
	}
	if r := f.do(t, "GET", "/api/tenants/k040/progress", f.token(t, auth.KindUser, contact, auth.AudiencePlatform, ""), "", nil); r.status != 200 {
		t.Fatalf("contact: %d %s", r.status, r.raw)
	}
}

// A function killed after it reserved the tenant (and spent the SMS code) but
// before it stored its answer leaves the key in progress. The client's retry
// with the same key, once the lock has lapsed, must get its tenant, not a
// refusal its own first attempt caused (the code spent, the code taken).
func TestRetryAfterCrashAfterReserveGetsTheTenant(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	user := f.token(t, auth.KindUser, f.userID, auth.AudiencePlatform, "")
	admin := f.token(t, auth.KindAdmin, 1, auth.AudienceAdmin, "admin")
	for _, c := range []struct {
		name, token, key string
		body             map[string]any
	}{
		{"user", user, "crash-k050", body("k050", ownerPhone, f.smsCode(t, ownerPhone))},
		{"admin", admin, "crash-k051", body("k051", "13855556666", "")},
	} {
		first := f.do(t, "POST", "/api/tenants", c.token, c.key, c.body)
		if first.status != 201 {
			t.Fatalf("%s: first: %d %s", c.name, first.status, first.raw)
		}
		// What the killed function leaves: the key held, no answer, the lock lapsed.
		if _, err := f.sys.DB.Exec(`UPDATE idempotency_keys SET status = 'in_progress', response_status = NULL, response_body = NULL,
			locked_until = CURRENT_TIMESTAMP(3) - INTERVAL 1 SECOND WHERE idempotency_key = ?`, c.key); err != nil {
			t.Fatal(err)
		}
		again := f.do(t, "POST", "/api/tenants", c.token, c.key, c.body)
		var got created
		_ = json.Unmarshal(again.env.Data, &got)
		if again.status != 201 || got.TenantCode != c.body["tenantCode"] || got.Status != "active" {
			t.Fatalf("%s: retry after the crash: %d %s, want 201 with the tenant", c.name, again.status, again.raw)
		}
		if replay := f.do(t, "POST", "/api/tenants", c.token, c.key, c.body); replay.status != 201 || replay.header.Get("Idempotent-Replayed") != "true" {
			t.Fatalf("%s: replay: %d %s", c.name, replay.status, replay.raw)
		}
	}
	if n := f.count(t, "SELECT COUNT(*) FROM tenants"); n != 2 {
		t.Fatalf("%d tenants, want 2", n)
	}
	// Each became active once, announced once, however often it was asked for.
	if n := f.count(t, `SELECT COUNT(*) FROM webhook_events e JOIN tenants t ON t.id = e.tenant_id
		WHERE e.event_type = 'tenant.created' AND t.status = 'active'`); n != 2 {
		t.Fatalf("%d tenant.created events, want one per tenant", n)
	}
}
