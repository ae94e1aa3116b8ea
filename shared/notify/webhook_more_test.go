package notify_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/unitenant/unitenant/shared/fault"
	"github.com/unitenant/unitenant/shared/notify"
)

// TestEndpointDisabledSubscribableAlone: an endpoint may subscribe to
// webhook.endpoint_disabled and nothing else (an on-call pager, say); it gets
// each disabling of an endpoint of its tenant (or of any, platform-wide) and
// none of the lifecycle events.
func TestEndpointDisabledSubscribableAlone(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db, box := newSystem(t)
	clk := newClock()
	res, err := db.Exec("INSERT INTO tenants (tenant_code, tenant_name, subdomain, status) VALUES ('k001', 'k001', 'k001', 'active')")
	if err != nil {
		t.Fatal(err)
	}
	k1, _ := res.LastInsertId()
	flaky := newReceiver(t, "flaky-secret-0123456789", clk.Now)
	pager := newReceiver(t, "pager-secret-0123456789", clk.Now)
	platformPager := newReceiver(t, "platform-pager-secret-01", clk.Now)
	flakyID := addEndpoint(t, db, box, flaky.URL, flaky.secret, k1)
	for _, r := range []struct {
		recv   *receiver
		tenant int64
	}{{pager, k1}, {platformPager, 0}} {
		if _, err := notify.AddEndpoint(ctx, db, box, notify.Endpoint{TenantID: r.tenant, URL: r.recv.URL,
			Events: []string{notify.WebhookDisabled}, Secret: r.recv.secret}); err != nil {
			t.Fatalf("subscribe to %s alone: %v", notify.WebhookDisabled, err)
		}
	}
	d := newDispatcher(db, box, clk, "cron")
	d.DisableAfter = 2
	flaky.down.Store(true)
	for range 2 {
		if _, err := notify.Emit(ctx, db, notify.Event{Type: notify.TenantSuspended, TenantID: k1, TenantCode: "k001"}); err != nil {
			t.Fatal(err)
		}
	}
	deliver(t, d)
	var status string
	if err := db.QueryRow("SELECT status FROM webhook_endpoints WHERE id = ?", flakyID).Scan(&status); err != nil || status != notify.EndpointDisabled {
		t.Fatalf("flaky endpoint %q (%v), want disabled", status, err)
	}
	clk.Advance(time.Hour)
	deliver(t, d)
	for name, r := range map[string]*receiver{"tenant pager": pager, "platform pager": platformPager} {
		ps := r.payloads()
		if len(ps) != 1 || ps[0].Type != notify.WebhookDisabled || ps[0].TenantCode != "k001" {
			t.Errorf("%s got %+v, want exactly the %s event of k001", name, ps, notify.WebhookDisabled)
		}
	}
}

// TestVerifySignatureRefusesEmptySecret: a receiver whose secret did not load
// (an unset variable) must not accept what anyone can sign with an empty key.
func TestVerifySignatureRefusesEmptySecret(t *testing.T) {
	t.Parallel()
	now := time.Now()
	ts := strconv.FormatInt(now.Unix(), 10)
	body := []byte(`{"id":"forged","type":"tenant.deleted","tenantCode":"k001"}`)
	forged := notify.Sign(nil, ts, body)
	for _, secret := range [][]byte{nil, {}} {
		if err := notify.VerifySignature(secret, ts, forged, body, now, notify.DefaultTolerance); !errors.Is(err, notify.ErrBadSignature) {
			t.Fatalf("empty secret: %v, want %v", err, notify.ErrBadSignature)
		}
	}
}

// TestIPv4TranslatedAddressRefused: ::ffff:0:a.b.c.d (RFC 2765 SIIT) is what
// a stateless translator turns into a.b.c.d: refused like the metadata
// service itself, before anything is dialled.
func TestIPv4TranslatedAddressRefused(t *testing.T) {
	t.Parallel()
	client := notify.NewHTTPClient(false)
	for _, u := range []string{"http://[::ffff:0:a9fe:a9fe]/latest/meta-data/", "http://[::ffff:0:7f00:1]:9000/"} {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, u, nil)
		resp, err := client.Do(req)
		cancel()
		if err == nil {
			resp.Body.Close()
		}
		if !errors.Is(err, notify.ErrPrivateAddress) {
			t.Errorf("%s: %v, want %v", u, err, notify.ErrPrivateAddress)
		}
	}
}

// TestEndpointInputRefusedByField: every bad field of an endpoint is named at
// once, nothing is stored, and a name is measured in characters (the column
// holds 100 of them, Chinese or not).
func TestEndpointInputRefusedByField(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db, box := newSystem(t)
	const secret = "a-long-enough-secret"
	count := func() int {
		var n int
		if err := db.QueryRow("SELECT COUNT(*) FROM webhook_endpoints").Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}

	for name, c := range map[string]struct {
		ep     notify.Endpoint
		fields []string
	}{
		"PortZero":      {notify.Endpoint{URL: "https://hooks.example.com:0/x", Secret: secret}, []string{"url"}},
		"PortTooBig":    {notify.Endpoint{URL: "https://hooks.example.com:99999/x", Secret: secret}, []string{"url"}},
		"EmptyFragment": {notify.Endpoint{URL: "https://hooks.example.com/x#", Secret: secret}, []string{"url"}},
		"NameTooLong":   {notify.Endpoint{URL: "https://hooks.example.com/x", Name: strings.Repeat("园", 101), Secret: secret}, []string{"name"}},
		"SeveralFields": {notify.Endpoint{URL: "ftp://x", Events: []string{"tenant.exploded"}, Secret: "short"}, []string{"url", "events", "secret"}},
	} {
		_, err := notify.AddEndpoint(ctx, db, box, c.ep)
		fe, ok := fault.As(err)
		if !ok || fe.Kind != fault.Invalid {
			t.Errorf("%s: %v, want an invalid-input error", name, err)
			continue
		}
		for _, f := range c.fields {
			if fe.Fields[f] == "" {
				t.Errorf("%s: %v does not name %s", name, fe.Fields, f)
			}
		}
	}
	if n := count(); n != 0 {
		t.Fatalf("%d endpoints stored from refused input", n)
	}

	// 100 characters of a kindergarten's name in Chinese: 300 bytes, fits.
	id, err := notify.AddEndpoint(ctx, db, box, notify.Endpoint{URL: "https://hooks.example.com/x", Name: strings.Repeat("园", 100),
		Events: []string{notify.TenantSuspended, notify.TenantSuspended, notify.TenantResumed}, Secret: secret})
	if err != nil {
		t.Fatalf("a 100-character name: %v", err)
	}
	ep, err := notify.GetEndpoint(ctx, db, id)
	if err != nil {
		t.Fatal(err)
	}
	if len(ep.Events) != 2 {
		t.Errorf("events %q, want each type once", ep.Events)
	}
}

// TestListEndpointsOnlyAllTenantsListsAll: a negative tenant id other than
// AllTenants (a bad conversion upstream) is refused, not read as "every
// tenant's endpoints".
func TestListEndpointsOnlyAllTenantsListsAll(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db, box := newSystem(t)
	if _, err := db.Exec("INSERT INTO tenants (id, tenant_code, tenant_name, subdomain) VALUES (1, 'k001', 'k001', 'k001')"); err != nil {
		t.Fatal(err)
	}
	addEndpoint(t, db, box, "https://hooks.example.com/k001", "k001-secret-0123456789", 1)
	if eps, err := notify.ListEndpoints(ctx, db, -2); err == nil {
		t.Fatalf("tenant -2: %d endpoints listed, want an error", len(eps))
	}
	eps, err := notify.ListEndpoints(ctx, db, notify.AllTenants)
	if err != nil || len(eps) != 1 || eps[0].TenantID != 1 {
		t.Fatalf("all tenants: %+v (%v)", eps, err)
	}
}

// TestRedirectNeverFollowed: a receiver answering 307 to another host (an
// internal one, say) is a failed delivery; the other host gets nothing and
// the event is retried. (A regression guard: this held before.)
func TestRedirectNeverFollowed(t *testing.T) {
	t.Parallel()
	db, box := newSystem(t)
	clk := newClock()
	var reached atomic.Int32
	inside := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { reached.Add(1) }))
	t.Cleanup(inside.Close)
	redirector := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, inside.URL+"/admin", http.StatusTemporaryRedirect)
	}))
	t.Cleanup(redirector.Close)
	addEndpoint(t, db, box, redirector.URL, "redirect-secret-0123456789", 0)
	emit(t, db, threeEvents()[0])
	rep := deliver(t, newDispatcher(db, box, clk, "cron"))
	if rep.Errors != 1 || rep.Retrying != 1 || reached.Load() != 0 {
		t.Fatalf("report %+v, the redirect's target reached %d times; want a failed attempt and no request to it", rep, reached.Load())
	}
	var code int
	if err := db.QueryRow("SELECT http_status FROM notification_logs").Scan(&code); err != nil || code != http.StatusTemporaryRedirect {
		t.Fatalf("logged status %d (%v), want 307", code, err)
	}
}

// TestHugeResponseHeadersRefused: a receiver (the tenant's integrator's
// server, not ours) answering with megabytes of headers must not make the
// dispatcher, a small function that also provisions tenants, hold them in
// memory eight deliveries at a time: such a response is a failed delivery.
func TestHugeResponseHeadersRefused(t *testing.T) {
	t.Parallel()
	db, box := newSystem(t)
	clk := newClock()
	bloated := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		for i := range 64 {
			w.Header().Set("X-Pad-"+strconv.Itoa(i), strings.Repeat("x", 8<<10))
		}
		w.WriteHeader(http.StatusOK)
	}))
	t.Cleanup(bloated.Close)
	addEndpoint(t, db, box, bloated.URL, "bloated-secret-0123456789", 0)
	emit(t, db, threeEvents()[0])
	if rep := deliver(t, newDispatcher(db, box, clk, "cron")); rep.Sent != 0 || rep.Errors != 1 {
		t.Fatalf("report %+v: 512 KiB of response headers accepted, want a failed delivery", rep)
	}
}
