package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/unitenant/unitenant/shared/auth"
	"github.com/unitenant/unitenant/shared/notify"
)

// answer is a response as a client sees it: status, headers, the raw body and
// its envelope.
type answer struct {
	reply
	header http.Header
	raw    []byte
}

// call sends a request as admin adminID with role, with an Idempotency-Key
// when key is not empty.
func (f *fixture) call(t *testing.T, adminID int64, role, method, path, key string, body any) answer {
	t.Helper()
	tok, _, err := f.signer.Issue(auth.KindAdmin, adminID, auth.AudienceAdmin, "", role, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	var b []byte
	if body != nil {
		b, _ = json.Marshal(body)
	}
	req, _ := http.NewRequest(method, f.srv.URL+path, bytes.NewReader(b))
	req.Header.Set("Authorization", "Bearer "+tok)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if key != "" {
		req.Header.Set("Idempotency-Key", key)
	}
	resp, err := f.srv.Client().Do(req)
	if err != nil {
		t.Error(err) // Error, not Fatal: call runs in goroutines too
		return answer{}
	}
	defer resp.Body.Close()
	var a answer
	var buf bytes.Buffer
	if _, err := buf.ReadFrom(resp.Body); err != nil {
		t.Error(err)
	}
	a.raw, a.header = buf.Bytes(), resp.Header
	if err := json.Unmarshal(a.raw, &a.reply); err != nil {
		t.Errorf("%s %s: %v (%s)", method, path, err, a.raw)
	}
	a.Status = resp.StatusCode
	return a
}

func (f *fixture) count(t *testing.T, q string, args ...any) int {
	t.Helper()
	var n int
	if err := f.sys.DB.QueryRow(q, args...).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func (a answer) created(t *testing.T) webhookCreated {
	t.Helper()
	if a.Status != http.StatusCreated {
		t.Fatalf("got %d %q (%s), want 201", a.Status, a.Error.Code, a.raw)
	}
	var c webhookCreated
	if err := json.Unmarshal(a.Data, &c); err != nil {
		t.Fatal(err)
	}
	if c.Endpoint.ID == 0 || c.Secret == "" {
		t.Fatalf("created %s: want an endpoint and its secret", a.Data)
	}
	return c
}

// TestWebhookEndpointsCappedPerTenant: a tenant has at most
// notify.MaxEndpointsPerTenant endpoints (each one multiplies every event's
// deliveries). Concurrent requests at the limit cannot both get in; the
// refusal is 409 too_many_webhooks and changes nothing; other tenants and
// the platform-wide endpoints keep their own room; a deleted endpoint frees
// its place.
func TestWebhookEndpointsCappedPerTenant(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	var ids []int64
	for i := range notify.MaxEndpointsPerTenant - 1 {
		c := f.call(t, 1, "admin", "POST", "/api/admin/webhooks", "", map[string]any{"url": fmt.Sprintf("https://hooks.example.com/%d", i), "tenantCode": "k001"}).created(t)
		ids = append(ids, c.Endpoint.ID)
	}

	const racers = 8
	answers := make(chan answer, racers)
	var wg sync.WaitGroup
	for i := range racers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			answers <- f.call(t, 1, "admin", "POST", "/api/admin/webhooks", "", map[string]any{"url": fmt.Sprintf("https://race.example.com/%d", i), "tenantCode": "k001"})
		}()
	}
	wg.Wait()
	close(answers)
	statuses := map[string]int{}
	for a := range answers {
		statuses[fmt.Sprint(a.Status, " ", a.Error.Code)]++
	}
	if statuses["201 "] != 1 || statuses["409 too_many_webhooks"] != racers-1 {
		t.Fatalf("racing at the limit: %v, want one 201 and %d 409 too_many_webhooks", statuses, racers-1)
	}
	k001 := "(SELECT id FROM tenants WHERE tenant_code = 'k001')"
	if n := f.count(t, "SELECT COUNT(*) FROM webhook_endpoints WHERE tenant_id = "+k001); n != notify.MaxEndpointsPerTenant {
		t.Fatalf("k001 has %d endpoints, want %d", n, notify.MaxEndpointsPerTenant)
	}

	// A refusal changes nothing, not even the audit log.
	state := "SELECT (SELECT COUNT(*) FROM webhook_endpoints) * 1000 + (SELECT COUNT(*) FROM audit_logs)"
	before := f.count(t, state)
	r := f.call(t, 1, "admin", "POST", "/api/admin/webhooks", "", map[string]any{"url": "https://hooks.example.com/one-more", "tenantCode": "k001"})
	if r.Status != http.StatusConflict || r.Error.Code != "too_many_webhooks" {
		t.Fatalf("over the limit: %d %q, want 409 too_many_webhooks", r.Status, r.Error.Code)
	}
	if !strings.Contains(string(r.raw), fmt.Sprint(notify.MaxEndpointsPerTenant)) {
		t.Errorf("refusal %s: want the limit named", r.raw)
	}
	if after := f.count(t, state); after != before {
		t.Fatalf("refusal changed endpoints/audit rows: %d -> %d", before, after)
	}

	// Another tenant's room, and the platform-wide endpoints', are their own.
	f.call(t, 1, "admin", "POST", "/api/admin/webhooks", "", map[string]any{"url": "https://hooks.example.com/k002", "tenantCode": "k002"}).created(t)
	f.call(t, 1, "admin", "POST", "/api/admin/webhooks", "", map[string]any{"url": "https://hooks.example.com/platform"}).created(t)

	// Deleting one makes room for one.
	want(t, f.do(t, "admin", "DELETE", "/api/admin/webhooks/"+itoa(ids[0]), nil), 200, "")
	f.call(t, 1, "admin", "POST", "/api/admin/webhooks", "", map[string]any{"url": "https://hooks.example.com/again", "tenantCode": "k001"}).created(t)
}

// listed is one page of GET /api/admin/webhooks.
type listed struct {
	Items    []notify.Endpoint `json:"items"`
	Page     int               `json:"page"`
	PageSize int               `json:"pageSize"`
	Total    int64             `json:"total"`
}

func (a answer) page(t *testing.T) listed {
	t.Helper()
	if a.Status != http.StatusOK {
		t.Fatalf("list: %d %q (%s)", a.Status, a.Error.Code, a.raw)
	}
	var l listed
	if err := json.Unmarshal(a.Data, &l); err != nil {
		t.Fatal(err)
	}
	return l
}

// TestWebhookListPaged: GET /api/admin/webhooks pages as the tenant list
// does (page, pageSize up to 100, default 20, total); a tenant's pages hold
// that tenant's endpoints only, however far one pages; a bad parameter is
// 400 naming it.
func TestWebhookListPaged(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	var k001 []int64
	for i := range 5 {
		c := f.call(t, 1, "admin", "POST", "/api/admin/webhooks", "", map[string]any{"url": fmt.Sprintf("https://a.example.com/%d", i), "tenantCode": "k001"}).created(t)
		k001 = append(k001, c.Endpoint.ID)
		if i < 3 {
			f.call(t, 1, "admin", "POST", "/api/admin/webhooks", "", map[string]any{"url": fmt.Sprintf("https://b.example.com/%d", i), "tenantCode": "k002"}).created(t)
		}
		if i < 2 {
			f.call(t, 1, "admin", "POST", "/api/admin/webhooks", "", map[string]any{"url": fmt.Sprintf("https://p.example.com/%d", i)}).created(t)
		}
	}

	t.Run("OneTenantsPages", func(t *testing.T) {
		var got []int64
		for p := 1; p <= 4; p++ {
			l := f.call(t, 1, "operator", "GET", fmt.Sprintf("/api/admin/webhooks?tenantCode=k001&pageSize=2&page=%d", p), "", nil).page(t)
			if l.Page != p || l.PageSize != 2 || l.Total != 5 {
				t.Errorf("page %d: page %d, pageSize %d, total %d; want %d, 2, 5", p, l.Page, l.PageSize, l.Total, p)
			}
			if wantLen := min(2, max(0, 5-(p-1)*2)); len(l.Items) != wantLen {
				t.Errorf("page %d has %d items, want %d", p, len(l.Items), wantLen)
			}
			for _, ep := range l.Items {
				if ep.TenantCode != "k001" {
					t.Errorf("k001's page %d shows endpoint %d of %q", p, ep.ID, ep.TenantCode)
				}
				got = append(got, ep.ID)
			}
		}
		if fmt.Sprint(got) != fmt.Sprint(k001) {
			t.Errorf("k001's pages hold %v, want %v, oldest first", got, k001)
		}
	})

	t.Run("Default", func(t *testing.T) {
		l := f.call(t, 1, "operator", "GET", "/api/admin/webhooks", "", nil).page(t)
		if l.Page != 1 || l.PageSize != 20 || l.Total != 10 || len(l.Items) != 10 {
			t.Errorf("default: page %d, pageSize %d, total %d, %d items; want 1, 20, 10, 10", l.Page, l.PageSize, l.Total, len(l.Items))
		}
		l = f.call(t, 1, "operator", "GET", "/api/admin/webhooks?pageSize=100", "", nil).page(t)
		if l.PageSize != 100 || len(l.Items) != 10 {
			t.Errorf("pageSize=100: %d, %d items", l.PageSize, len(l.Items))
		}
	})

	t.Run("BadParameters", func(t *testing.T) {
		for q, param := range map[string]string{
			"page=0":                          "page",
			"page=-1":                         "page",
			"page=x":                          "page",
			"page=1&page=2":                   "page",
			"pageSize=0":                      "pageSize",
			"pageSize=101":                    "pageSize",
			"pageSize=1.5":                    "pageSize",
			"pageSize=":                       "pageSize",
			"tenantCode=k001&tenantCode=k002": "tenantCode",
		} {
			r := f.call(t, 1, "operator", "GET", "/api/admin/webhooks?"+q, "", nil)
			if r.Status != http.StatusBadRequest || r.Error.Fields[param] == "" {
				t.Errorf("?%s: %d %q %v, want 400 naming %s", q, r.Status, r.Error.Code, r.Error.Fields, param)
			}
		}
	})
}

// TestWebhookCreateIdempotencyKey: a create retried with its Idempotency-Key
// gets the first answer again (the same endpoint, the same secret) and
// creates nothing; the key with another body is refused. Keys belong to the
// admin who used them: another admin's key is not theirs to replay, and no
// key carries an answer over to another tenant. The answer is kept for
// replay without the secret in clear. A retry after the first request died
// gets the endpoint it made; racers with one key make one endpoint.
func TestWebhookCreateIdempotencyKey(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	if _, err := f.sys.DB.Exec("INSERT INTO admin_users (id, username, password_hash, role) VALUES (2, 'other', 'x', 'admin')"); err != nil {
		t.Fatal(err)
	}
	body := map[string]any{"url": "https://hooks.example.com/in", "tenantCode": "k001", "name": "billing"}
	endpoints := "SELECT COUNT(*) FROM webhook_endpoints"
	first := f.call(t, 1, "admin", "POST", "/api/admin/webhooks", "create-1", body)
	c := first.created(t)

	t.Run("Replay", func(t *testing.T) {
		again := f.call(t, 1, "admin", "POST", "/api/admin/webhooks", "create-1", body)
		if again.Status != first.Status || !bytes.Equal(again.raw, first.raw) || again.header.Get("Idempotent-Replayed") != "true" {
			t.Fatalf("retry: %d %s (replayed %q), want %d %s", again.Status, again.raw, again.header.Get("Idempotent-Replayed"), first.Status, first.raw)
		}
		if again.header.Get("Cache-Control") != "no-store" {
			t.Errorf("replayed secret with Cache-Control %q, want no-store", again.header.Get("Cache-Control"))
		}
		if n := f.count(t, endpoints); n != 1 {
			t.Fatalf("%d endpoints after a retry, want 1", n)
		}
		if n := f.count(t, "SELECT COUNT(*) FROM audit_logs WHERE action = 'tenant.webhook.add'"); n != 1 {
			t.Fatalf("%d webhook.add audit rows after a retry, want 1", n)
		}
	})

	t.Run("SecretNotKeptInClear", func(t *testing.T) {
		if n := f.count(t, "SELECT COUNT(*) FROM idempotency_keys WHERE INSTR(CONCAT(COALESCE(response_body, ''), COALESCE(resource_id, '')), ?) > 0", c.Secret); n != 0 {
			t.Fatalf("the idempotency store keeps the endpoint's secret in clear")
		}
	})

	t.Run("OtherBody", func(t *testing.T) {
		r := f.call(t, 1, "admin", "POST", "/api/admin/webhooks", "create-1", map[string]any{"url": "https://hooks.example.com/other", "tenantCode": "k001"})
		if r.Status != http.StatusBadRequest || r.Error.Code != "idempotency_key_reused" {
			t.Fatalf("same key, other URL: %d %q, want 400 idempotency_key_reused", r.Status, r.Error.Code)
		}
	})

	t.Run("OtherTenant", func(t *testing.T) {
		// The same admin replaying the key at another tenant gets neither
		// k001's endpoint (and secret) nor an endpoint of k002.
		r := f.call(t, 1, "admin", "POST", "/api/admin/webhooks", "create-1", map[string]any{"url": "https://hooks.example.com/in", "tenantCode": "k002", "name": "billing"})
		if r.Status != http.StatusBadRequest || r.Error.Code != "idempotency_key_reused" || bytes.Contains(r.raw, []byte(c.Secret)) {
			t.Fatalf("same key, other tenant: %d %s, want 400 idempotency_key_reused", r.Status, r.raw)
		}
		if n := f.count(t, "SELECT COUNT(*) FROM webhook_endpoints WHERE tenant_id = (SELECT id FROM tenants WHERE tenant_code = 'k002')"); n != 0 {
			t.Fatalf("k002 has %d endpoints", n)
		}
	})

	t.Run("OtherAdmin", func(t *testing.T) {
		// Another admin guessing the key and the body gets an endpoint of
		// their own, never the first admin's answer and secret.
		r := f.call(t, 2, "admin", "POST", "/api/admin/webhooks", "create-1", body)
		if r.header.Get("Idempotent-Replayed") != "" || bytes.Contains(r.raw, []byte(c.Secret)) {
			t.Fatalf("another admin's request with the key was answered with the first admin's: %s", r.raw)
		}
		if o := r.created(t); o.Endpoint.ID == c.Endpoint.ID {
			t.Fatalf("another admin got endpoint %d", o.Endpoint.ID)
		}
		if n := f.count(t, endpoints); n != 2 {
			t.Fatalf("%d endpoints, want 2", n)
		}
	})

	t.Run("RefusalReplayed", func(t *testing.T) {
		bad := map[string]any{"url": "ftp://hooks.example.com/in", "tenantCode": "k001"}
		r := f.call(t, 1, "admin", "POST", "/api/admin/webhooks", "create-bad", bad)
		if r.Status != http.StatusBadRequest || r.Error.Fields["url"] == "" {
			t.Fatalf("bad url: %d %q %v", r.Status, r.Error.Code, r.Error.Fields)
		}
		again := f.call(t, 1, "admin", "POST", "/api/admin/webhooks", "create-bad", bad)
		if again.Status != r.Status || again.Error.Code != r.Error.Code || again.header.Get("Idempotent-Replayed") != "true" {
			t.Fatalf("retried refusal: %d %q replayed %q", again.Status, again.Error.Code, again.header.Get("Idempotent-Replayed"))
		}
	})

	t.Run("BadKey", func(t *testing.T) {
		r := f.call(t, 1, "admin", "POST", "/api/admin/webhooks", "with space", map[string]any{"url": "https://hooks.example.com/k"})
		if r.Status != http.StatusBadRequest || r.Error.Code != "invalid_idempotency_key" {
			t.Fatalf("bad key: %d %q, want 400 invalid_idempotency_key", r.Status, r.Error.Code)
		}
	})

	t.Run("OperatorClaimsNoKey", func(t *testing.T) {
		r := f.call(t, 1, "operator", "POST", "/api/admin/webhooks", "operator-key", body)
		if r.Status != http.StatusForbidden {
			t.Fatalf("operator: %d", r.Status)
		}
		if n := f.count(t, "SELECT COUNT(*) FROM idempotency_keys WHERE idempotency_key = 'operator-key'"); n != 0 {
			t.Fatalf("a refused caller claimed the key")
		}
	})

	t.Run("NothingElseMade", func(t *testing.T) {
		if n := f.count(t, endpoints); n != 2 {
			t.Fatalf("%d endpoints in all, want 2 (one for each admin)", n)
		}
	})

	// A function killed after it made the endpoint but before it kept its
	// answer leaves the key in progress. A retry is told to wait while the
	// first may still run, and once the lock has lapsed gets that endpoint
	// and its secret, not a second endpoint.
	t.Run("LostAnswer", func(t *testing.T) {
		body := map[string]any{"url": "https://hooks.example.com/lost", "tenantCode": "k001"}
		lost := "SELECT COUNT(*) FROM webhook_endpoints WHERE url = 'https://hooks.example.com/lost'"
		c := f.call(t, 1, "admin", "POST", "/api/admin/webhooks", "lost-1", body).created(t)
		lose := func(lockedUntil time.Time) {
			t.Helper()
			if _, err := f.sys.DB.Exec(`UPDATE idempotency_keys SET status = 'in_progress', response_status = NULL, response_body = NULL,
				locked_until = ? WHERE idempotency_key = 'lost-1'`, lockedUntil.UTC()); err != nil {
				t.Fatal(err)
			}
		}
		lose(time.Now().Add(time.Minute))
		if r := f.call(t, 1, "admin", "POST", "/api/admin/webhooks", "lost-1", body); r.Status != http.StatusConflict || r.Error.Code != "request_in_progress" {
			t.Fatalf("retry while the first may run: %d %q, want 409 request_in_progress", r.Status, r.Error.Code)
		}
		lose(time.Now().Add(-time.Minute))
		got := f.call(t, 1, "admin", "POST", "/api/admin/webhooks", "lost-1", body).created(t)
		if got.Endpoint.ID != c.Endpoint.ID || got.Secret != c.Secret {
			t.Fatalf("retry after a lost answer got endpoint %d, want %d with its secret", got.Endpoint.ID, c.Endpoint.ID)
		}
		if n := f.count(t, lost); n != 1 {
			t.Fatalf("%d endpoints, want 1", n)
		}
		// And its answer is kept from now on.
		again := f.call(t, 1, "admin", "POST", "/api/admin/webhooks", "lost-1", body)
		if again.header.Get("Idempotent-Replayed") != "true" || again.created(t).Secret != c.Secret {
			t.Fatalf("second retry: %s", again.raw)
		}
	})

	// Requests racing with one key make one endpoint; each gets it or is
	// told to retry.
	t.Run("ConcurrentSameKey", func(t *testing.T) {
		const racers = 8
		answers := make(chan answer, racers)
		var wg sync.WaitGroup
		for range racers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				answers <- f.call(t, 1, "admin", "POST", "/api/admin/webhooks", "race-1", map[string]any{"url": "https://hooks.example.com/race", "tenantCode": "k001"})
			}()
		}
		wg.Wait()
		close(answers)
		var ids []int64
		for a := range answers {
			switch {
			case a.Status == http.StatusCreated:
				ids = append(ids, a.created(t).Endpoint.ID)
			case a.Status == http.StatusConflict && a.Error.Code == "request_in_progress":
			default:
				t.Errorf("racer: %d %q", a.Status, a.Error.Code)
			}
		}
		if len(ids) == 0 {
			t.Fatal("no racer got the endpoint")
		}
		for _, id := range ids {
			if id != ids[0] {
				t.Fatalf("racers got endpoints %v", ids)
			}
		}
		if n := f.count(t, "SELECT COUNT(*) FROM webhook_endpoints WHERE url = 'https://hooks.example.com/race'"); n != 1 {
			t.Fatalf("%d endpoints, want 1", n)
		}
	})
}
