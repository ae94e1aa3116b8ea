package main

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/unitenant/unitenant/shared/logging"
	"github.com/unitenant/unitenant/shared/notify"
	"github.com/unitenant/unitenant/shared/serverless"
)

// createdWebhook is the answer to POST /api/admin/webhooks.
type createdWebhook struct {
	Endpoint notify.Endpoint `json:"endpoint"`
	Secret   string          `json:"secret"`
}

func (f *fixture) addWebhook(t *testing.T, body map[string]any) createdWebhook {
	t.Helper()
	r := f.do(t, "admin", "POST", "/api/admin/webhooks", body)
	want(t, r, 201, "")
	var c createdWebhook
	if err := json.Unmarshal(r.Data, &c); err != nil {
		t.Fatal(err)
	}
	return c
}

// syncBuffer is a log sink the handler's goroutines write to.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// logTo serves the fixture's handler again, logging everything to a buffer.
func (f *fixture) logTo(t *testing.T) *syncBuffer {
	t.Helper()
	buf := &syncBuffer{}
	f.h.log = logging.New(buf, "tenant-admin", slog.LevelDebug)
	srv := httptest.NewServer(serverless.Handler(newHandler(f.h), f.h.log, 0))
	t.Cleanup(srv.Close)
	f.srv = srv
	return buf
}

// TestWebhookDisabledEventSubscribableAlone: the admin API takes
// webhook.endpoint_disabled as the only event of an endpoint.
func TestWebhookDisabledEventSubscribableAlone(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	c := f.addWebhook(t, map[string]any{"url": "https://pager.example.com/hooks", "tenantCode": "k001", "events": []string{notify.WebhookDisabled}})
	if len(c.Endpoint.Events) != 1 || c.Endpoint.Events[0] != notify.WebhookDisabled {
		t.Fatalf("endpoint events %q", c.Endpoint.Events)
	}
}

// TestWebhookURLQueryNeverAudited: a query string often carries the
// receiver's token. The admin API shows the URL as entered to the admins
// who manage it (as GitHub and Stripe do), but audit rows and logs keep only
// scheme, host and path, and say that a query was there.
func TestWebhookURLQueryNeverAudited(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	logs := f.logTo(t)
	const token = "tok_9f8e7d6c5b4a"
	url := "https://hooks.example.com/unitenant/in?token=" + token + "&v=2"
	c := f.addWebhook(t, map[string]any{"url": url, "tenantCode": "k001", "name": "billing"})
	if c.Endpoint.URL != url {
		t.Errorf("created endpoint shows %q, want the URL as entered", c.Endpoint.URL)
	}
	r := f.do(t, "operator", "GET", "/api/admin/webhooks?tenantCode=k001", nil)
	want(t, r, 200, "")
	if !bytes.Contains(r.Data, []byte(token)) {
		t.Errorf("list %s: want the URL as entered", r.Data)
	}
	id := itoa(c.Endpoint.ID)
	want(t, f.do(t, "admin", "PATCH", "/api/admin/webhooks/"+id, map[string]string{"status": "disabled"}), 200, "")
	want(t, f.do(t, "admin", "DELETE", "/api/admin/webhooks/"+id, nil), 200, "")

	rows, err := f.sys.DB.Query(`SELECT action, COALESCE(target_id, ''), COALESCE(tenant_id, 0), CONCAT(COALESCE(before_state, ''), ' ', COALESCE(after_state, ''))
		FROM audit_logs WHERE action LIKE '%webhook%' ORDER BY id`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var actions []string
	var k001 int64
	if err := f.sys.DB.QueryRow("SELECT id FROM tenants WHERE tenant_code = 'k001'").Scan(&k001); err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var action, target, state string
		var tenant int64
		if err := rows.Scan(&action, &target, &tenant, &state); err != nil {
			t.Fatal(err)
		}
		actions = append(actions, action)
		if strings.Contains(state, token) {
			t.Errorf("%s audit row keeps the query: %s", action, state)
		}
		if !strings.Contains(state, "https://hooks.example.com/unitenant/in?…") {
			t.Errorf("%s audit row %s: want the redacted URL (scheme, host, path, ?…)", action, state)
		}
		if target != "k001" || tenant != k001 {
			t.Errorf("%s audit row is for tenant %q (%d), want k001 (%d)", action, target, tenant, k001)
		}
	}
	if len(actions) != 3 {
		t.Errorf("webhook audit rows %q, want add, status, delete", actions)
	}
	if strings.Contains(logs.String(), token) {
		t.Errorf("logs keep the query: %s", logs.String())
	}
}

// TestRefusedWebhookChangeChangesNothing: when a webhook change cannot be
// audited the request fails and nothing changed — no endpoint whose secret
// nobody was shown, no status flipped, no endpoint gone unaudited.
func TestRefusedWebhookChangeChangesNothing(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	c := f.addWebhook(t, map[string]any{"url": "https://hooks.example.com/a", "tenantCode": "k001"})
	if _, err := f.sys.DB.Exec(`CREATE TRIGGER audit_down BEFORE INSERT ON audit_logs FOR EACH ROW
		SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'audit store unavailable'`); err != nil {
		t.Fatal(err)
	}
	id := itoa(c.Endpoint.ID)
	want(t, f.do(t, "admin", "POST", "/api/admin/webhooks", map[string]any{"url": "https://hooks.example.com/b"}), 500, "internal")
	want(t, f.do(t, "admin", "PATCH", "/api/admin/webhooks/"+id, map[string]string{"status": "disabled"}), 500, "internal")
	want(t, f.do(t, "admin", "DELETE", "/api/admin/webhooks/"+id, nil), 500, "internal")
	eps, err := notify.ListEndpoints(context.Background(), f.sys.DB, notify.AllTenants)
	if err != nil {
		t.Fatal(err)
	}
	if len(eps) != 1 || eps[0].ID != c.Endpoint.ID || eps[0].Status != notify.EndpointActive {
		t.Fatalf("endpoints after refused changes %+v; want only endpoint %d, active", eps, c.Endpoint.ID)
	}
}

// stored counts webhook endpoints and audit rows: a refused request changes
// neither. (The fixture's tenants come with audit rows of their own.)
func (f *fixture) stored(t *testing.T) int {
	t.Helper()
	return f.count(t, "SELECT (SELECT COUNT(*) FROM webhook_endpoints) + (SELECT COUNT(*) FROM audit_logs)")
}

// TestWebhookInputNamesEveryBadField: the admin learns every mistake of a
// request at once, a tenant that does not exist is named as the field it
// came in, and nothing is stored.
func TestWebhookInputNamesEveryBadField(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	before := f.stored(t)
	r := f.do(t, "admin", "POST", "/api/admin/webhooks", map[string]any{"url": "ftp://x", "events": []string{"tenant.exploded"}, "tenantCode": "k001"})
	if r.Status != 400 || r.Error.Fields["url"] == "" || r.Error.Fields["events"] == "" {
		t.Errorf("bad url and events: %d %q %v, want 400 naming both", r.Status, r.Error.Code, r.Error.Fields)
	}
	r = f.do(t, "admin", "POST", "/api/admin/webhooks", map[string]any{"url": "https://hooks.example.com/x", "tenantCode": "k404"})
	if r.Status != 404 || r.Error.Code != "tenant_not_found" || r.Error.Fields["tenantCode"] == "" {
		t.Errorf("unknown tenant: %d %q %v, want 404 tenant_not_found naming tenantCode", r.Status, r.Error.Code, r.Error.Fields)
	}
	if n := f.stored(t) - before; n != 0 {
		t.Fatalf("%d endpoints and audit rows after refused requests", n)
	}
}

// TestWebhookPrivateURLRefused: an endpoint whose host is a loopback,
// private, link-local or metadata address — in whatever form a URL parser or
// a resolver reads as one — or localhost is refused when added, naming the
// url field, with nothing stored or audited: the dispatcher would refuse
// every delivery to it. Names are not resolved here (they are checked on the
// address each delivery dials). With NOTIFY_ALLOW_PRIVATE_URLS on, as in
// development, such URLs are taken.
func TestWebhookPrivateURLRefused(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	before := f.stored(t)
	for _, u := range []string{
		"http://169.254.169.254/latest/meta-data/",
		"http://100.100.100.200/latest/meta-data/", // Aliyun's metadata service
		"http://127.0.0.1:8080/",
		"http://[::1]/",
		"http://[::ffff:127.0.0.1]/",
		"http://[64:ff9b::a9fe:a9fe]/", // NAT64 of 169.254.169.254
		"http://[fe80::1%25eth0]/",
		"http://[64:ff9b::7f00:1%25lo]/", // a zone does not make it another host
		"http://10.0.0.5/",
		"https://192.168.1.1:8443/hook",
		"http://172.16.0.1/",
		"http://0.0.0.0/",
		"http://0/",
		"http://2130706433/", // 127.0.0.1 as one number
		"http://0x7f.1/",     // hex and a short form
		"http://0177.0.0.1/", // octal
		"http://127.1/",
		"http://0xa9fea9fe/", // 169.254.169.254
		"http://127.0.0.1./", // trailing dot
		"http://１２７.０.０.１/",  // full-width digits: IDNA maps them to ASCII before dialling
		"http://localhost/",
		"http://LocalHost.:9000/",
		"http://api.localhost/",
		"http://ｌｏｃａｌｈｏｓｔ/",
		"http://1.2.3.4.5/", // ends in a number, no address
		"http://999.1.1.1/",
	} {
		r := f.do(t, "admin", "POST", "/api/admin/webhooks", map[string]any{"url": u, "tenantCode": "k001"})
		if r.Status != 400 || r.Error.Fields["url"] == "" {
			t.Errorf("%s: %d %q %v, want 400 naming url", u, r.Status, r.Error.Code, r.Error.Fields)
		}
	}
	// Every bad field at once still.
	r := f.do(t, "admin", "POST", "/api/admin/webhooks", map[string]any{"url": "http://10.0.0.5/", "events": []string{"tenant.exploded"}})
	if r.Status != 400 || r.Error.Fields["url"] == "" || r.Error.Fields["events"] == "" {
		t.Errorf("private url and bad events: %d %q %v, want 400 naming both", r.Status, r.Error.Code, r.Error.Fields)
	}
	if n := f.stored(t) - before; n != 0 {
		t.Fatalf("%d endpoints and audit rows after refused requests", n)
	}

	// Public addresses and names (unresolved, whatever they resolve to) are
	// taken.
	for _, u := range []string{"https://8.8.8.8/hook", "http://[2606:4700::1111]/", "https://hooks.example.com/x",
		"https://localhost.example.com/x", "https://10.0.0.5.nip.io/x", "https://v1.example/x"} {
		f.addWebhook(t, map[string]any{"url": u})
	}

	// Development: the dispatcher may reach private addresses, so may the
	// admin API.
	f.h.allowPrivateURLs = true
	f.srv = httptest.NewServer(serverless.Handler(newHandler(f.h), logging.Discard(), 0))
	t.Cleanup(f.srv.Close)
	for _, u := range []string{"http://127.0.0.1:8080/", "http://localhost:9000/hook", "http://[::1]/"} {
		f.addWebhook(t, map[string]any{"url": u, "tenantCode": "k001"})
	}
}
