package main

import (
	"bytes"
	"context"
	"crypto/rsa"
	"encoding/json"
	"io"
	"log/slog"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"testing"
	"time"

	"github.com/unitenant/unitenant/shared/auth"
	"github.com/unitenant/unitenant/shared/idempotency"
	"github.com/unitenant/unitenant/shared/lifecycle"
	"github.com/unitenant/unitenant/shared/logging"
	"github.com/unitenant/unitenant/shared/notify"
	"github.com/unitenant/unitenant/shared/serverless"
	"github.com/unitenant/unitenant/shared/tenancy"
	"github.com/unitenant/unitenant/tests/testenv"
)

type fixture struct {
	srv    *httptest.Server
	sys    testenv.System
	signer *auth.Signer
	outbox string
	h      *handler
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	sys := testenv.NewSystem(t)
	tenants := testenv.NewTenants(t, sys.DB, sys.Box)
	if _, err := sys.DB.Exec("INSERT INTO global_users (phone, password_hash, real_name) VALUES ('13722223333', 'x', 'Teacher Wu')"); err != nil {
		t.Fatal(err)
	}
	for _, c := range []string{"k001", "k002"} {
		if _, _, err := tenants.Create(t, c, 0); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := sys.DB.Exec("INSERT INTO admin_users (id, username, password_hash, role) VALUES (1, 'root', 'x', 'super_admin')"); err != nil {
		t.Fatal(err)
	}
	outbox := filepath.Join(t.TempDir(), "notifications.jsonl")
	signer := auth.NewSigner(sys.SigningKey, nil)
	h := &handler{
		db: sys.DB, verifier: auth.NewVerifier([]*rsa.PublicKey{signer.Public()}, nil), log: logging.New(os.Stderr, "tenant-admin", slog.LevelError), now: time.Now,
		life: &lifecycle.Service{DB: sys.DB}, box: sys.Box, idem: &idempotency.Store{DB: sys.DB},
		tenants:  &tenancy.Service{Registry: tenancy.NewRegistry(sys.DB, tenancy.RegistryOptions{}), Router: tenancy.NewRouter(sys.DB, sys.Box, tenancy.RouterOptions{}), Hosts: tenancy.ParseHosts("localhost", "", "")},
		notifier: &notify.Notifier{DB: sys.DB, Outbox: &notify.Outbox{Path: outbox}, Log: logging.Discard()},
	}
	t.Cleanup(func() { h.tenants.Router.Close() })
	srv := httptest.NewServer(serverless.Handler(newHandler(h), logging.Discard(), 0))
	t.Cleanup(srv.Close)
	return &fixture{srv: srv, sys: sys, signer: signer, outbox: outbox, h: h}
}

func (f *fixture) token(t *testing.T, role string) string {
	t.Helper()
	tok, _, err := f.signer.Issue(auth.KindAdmin, 1, auth.AudienceAdmin, "", role, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

type reply struct {
	Status int
	Data   json.RawMessage `json:"data"`
	Error  struct {
		Code   string            `json:"code"`
		Fields map[string]string `json:"fields"`
	} `json:"error"`
}

func (f *fixture) do(t *testing.T, role, method, path string, body any) reply {
	t.Helper()
	var b io.Reader
	if body != nil {
		raw, _ := json.Marshal(body)
		b = bytes.NewReader(raw)
	}
	return f.raw(t, method, path, f.token(t, role), b)
}

func want(t *testing.T, r reply, status int, code string) {
	t.Helper()
	if r.Status != status || r.Error.Code != code {
		t.Fatalf("got %d %q, want %d %q (%s)", r.Status, r.Error.Code, status, code, r.Data)
	}
}

var tokenRE = regexp.MustCompile(`Confirmation token: (\S+)`)

func (f *fixture) confirmationToken(t *testing.T) string {
	t.Helper()
	msgs, err := notify.ReadOutbox(f.outbox)
	if err != nil || len(msgs) == 0 {
		t.Fatalf("outbox: %v %v", msgs, err)
	}
	m := tokenRE.FindStringSubmatch(msgs[len(msgs)-1].Body)
	if m == nil {
		t.Fatalf("no token in %q", msgs[len(msgs)-1].Body)
	}
	return m[1]
}

func TestRolesAndTransitions(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	// Operators read; they cannot change, delete or purge.
	want(t, f.do(t, "operator", "GET", "/api/admin/tenants?status=active", nil), 200, "")
	want(t, f.do(t, "operator", "POST", "/api/admin/tenants/k001/suspend", map[string]string{"reason": "x"}), 403, "permission_denied")
	want(t, f.do(t, "operator", "POST", "/api/admin/tenants/k001/delete", map[string]string{"reason": "x"}), 403, "permission_denied")
	// Admins manage; they cannot delete or purge.
	want(t, f.do(t, "admin", "POST", "/api/admin/tenants/k001/delete", map[string]string{"reason": "x"}), 403, "permission_denied")
	want(t, f.do(t, "admin", "POST", "/api/admin/tenants/k001/purge", nil), 403, "permission_denied")
	want(t, f.do(t, "admin", "POST", "/api/admin/tenants/k001/suspend", map[string]string{"reason": "late payment"}), 200, "")
	r := f.do(t, "admin", "POST", "/api/admin/tenants/k001/suspend", map[string]string{"reason": "again"})
	want(t, r, 409, "invalid_transition")
	if r.Error.Fields["status"] != "suspended" {
		t.Fatalf("409 does not name the status: %+v", r.Error)
	}
	want(t, f.do(t, "admin", "POST", "/api/admin/tenants/k001/restore", nil), 409, "invalid_transition")
	want(t, f.do(t, "admin", "POST", "/api/admin/tenants/k001/resume", nil), 200, "")

	// A super admin deletes with the token delivered by notification (never in the response).
	r = f.do(t, "super_admin", "POST", "/api/admin/tenants/k002/delete", map[string]string{"reason": "closed"})
	want(t, r, 202, "")
	if bytes.Contains(r.Data, []byte(f.confirmationToken(t))) {
		t.Fatal("the confirmation token is in the response")
	}
	want(t, f.do(t, "super_admin", "POST", "/api/admin/tenants/k002/delete/confirm", map[string]string{"token": "wrong"}), 400, "invalid_confirmation_token")
	// k002's token confirms nothing but k002's deletion.
	want(t, f.do(t, "super_admin", "POST", "/api/admin/tenants/k001/delete/confirm", map[string]string{"token": f.confirmationToken(t)}), 400, "invalid_confirmation_token")
	want(t, f.do(t, "super_admin", "POST", "/api/admin/tenants/k002/delete/confirm", map[string]string{"token": f.confirmationToken(t)}), 200, "")
	want(t, f.do(t, "super_admin", "POST", "/api/admin/tenants/k002/suspend", map[string]string{"reason": "x"}), 409, "invalid_transition")
	want(t, f.do(t, "admin", "POST", "/api/admin/tenants/k002/purge", nil), 403, "permission_denied")
	want(t, f.do(t, "super_admin", "POST", "/api/admin/tenants/k002/purge", nil), 200, "")
	want(t, f.do(t, "admin", "POST", "/api/admin/tenants/k002/restore", nil), 200, "")
	want(t, f.do(t, "operator", "GET", "/api/admin/tenants/k404", nil), 404, "tenant_not_found")
}

// TestDeletionRefusedWhenTheTokenCannotBeDelivered: when no channel can carry
// the confirmation token to the super admin (no SMTP relay, no development
// outbox), the deletion request is refused before anything happens: no
// pending request whose token nobody holds, no audit row, and no
// tenant.deletion_requested event announcing it to every webhook receiver.
func TestDeletionRefusedWhenTheTokenCannotBeDelivered(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.h.notifier = &notify.Notifier{DB: f.sys.DB, Log: logging.Discard()}
	for range 2 {
		want(t, f.do(t, "super_admin", "POST", "/api/admin/tenants/k001/delete", map[string]string{"reason": "closed"}), 501, "notification_unavailable")
	}
	for q, what := range map[string]string{
		"SELECT COUNT(*) FROM tenant_deletion_requests":                                      "deletion requests",
		"SELECT COUNT(*) FROM webhook_events WHERE event_type = 'tenant.deletion_requested'": "tenant.deletion_requested events",
		"SELECT COUNT(*) FROM audit_logs WHERE action = 'tenant.delete'":                     "audit rows",
	} {
		var n int
		if err := f.sys.DB.QueryRow(q).Scan(&n); err != nil || n != 0 {
			t.Errorf("%d %s (%v) after a refused deletion request, want 0", n, what, err)
		}
	}
}

func TestManageTenant(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	var list struct {
		Items []TenantView `json:"items"`
		Total int          `json:"total"`
	}
	r := f.do(t, "operator", "GET", "/api/admin/tenants?q=k00&pageSize=1", nil)
	want(t, r, 200, "")
	_ = json.Unmarshal(r.Data, &list)
	if list.Total != 2 || len(list.Items) != 1 {
		t.Fatalf("list %+v", list)
	}
	want(t, f.do(t, "admin", "PATCH", "/api/admin/tenants/k001", map[string]any{"planType": "gold", "maxUsers": -1}), 400, "invalid_input")
	r = f.do(t, "admin", "PATCH", "/api/admin/tenants/k001", map[string]any{"name": "Renamed", "planType": "premium", "maxUsers": 200})
	want(t, r, 200, "")
	var v TenantView
	_ = json.Unmarshal(r.Data, &v)
	if v.Name != "Renamed" || v.PlanType != "premium" || v.MaxUsers == nil || *v.MaxUsers != 200 {
		t.Fatalf("updated %+v", v)
	}
	// A limit set can be lifted again (null: unlimited); one not named is
	// left as it is.
	r = f.do(t, "admin", "PATCH", "/api/admin/tenants/k001", map[string]any{"maxStorage": 1 << 30})
	want(t, r, 200, "")
	v = TenantView{}
	_ = json.Unmarshal(r.Data, &v)
	if v.MaxStorage == nil || *v.MaxStorage != 1<<30 || v.MaxUsers == nil || *v.MaxUsers != 200 {
		t.Fatalf("after setting maxStorage: %+v", v)
	}
	r = f.do(t, "admin", "PATCH", "/api/admin/tenants/k001", map[string]any{"maxStorage": nil})
	want(t, r, 200, "")
	v = TenantView{}
	_ = json.Unmarshal(r.Data, &v)
	if v.MaxStorage != nil || v.MaxUsers == nil || *v.MaxUsers != 200 {
		t.Fatalf("after lifting maxStorage: %+v", v)
	}
	want(t, f.do(t, "admin", "PATCH", "/api/admin/tenants/k001", map[string]any{"maxUsers": "many"}), 400, "invalid_field_type")
	want(t, f.do(t, "admin", "POST", "/api/admin/tenants/k001/domains", map[string]string{"domain": "School.Example.com"}), 201, "")
	want(t, f.do(t, "admin", "POST", "/api/admin/tenants/k002/domains", map[string]string{"domain": "school.example.com"}), 409, "domain_taken")
	want(t, f.do(t, "admin", "POST", "/api/admin/tenants/k002/domains", map[string]string{"domain": "k009.localhost"}), 400, "invalid_input")

	// Members: bind, change role, unbind.
	want(t, f.do(t, "admin", "POST", "/api/admin/tenants/k001/members", map[string]string{"phone": "13722223333", "role": "teacher"}), 200, "")
	want(t, f.do(t, "admin", "POST", "/api/admin/tenants/k001/members", map[string]string{"phone": "13722223333", "role": "wizard"}), 400, "unknown_role")
	var gid int64
	if err := f.sys.DB.QueryRow("SELECT id FROM global_users WHERE phone = '13722223333'").Scan(&gid); err != nil {
		t.Fatal(err)
	}
	want(t, f.do(t, "admin", "PATCH", "/api/admin/tenants/k001/members/"+itoa(gid), map[string]string{"role": "principal"}), 200, "")
	r = f.do(t, "operator", "GET", "/api/admin/tenants/k001/members", nil)
	var members struct{ Items []Member }
	_ = json.Unmarshal(r.Data, &members)
	if len(members.Items) != 1 || members.Items[0].Role != "principal" || members.Items[0].Status != "active" {
		t.Fatalf("members %+v", members)
	}
	r = f.do(t, "operator", "GET", "/api/admin/tenants/k001", nil)
	want(t, r, 200, "")
	var d TenantDetail
	_ = json.Unmarshal(r.Data, &d)
	if d.Placement == nil || d.Placement.Tier != "pooled" || d.MembersCount != 1 || len(d.Domains) != 1 {
		t.Fatalf("detail %+v", d)
	}
	want(t, f.do(t, "admin", "DELETE", "/api/admin/tenants/k001/members/"+itoa(gid), nil), 200, "")
	var status string
	_ = f.sys.DB.QueryRow("SELECT status FROM global_user_tenant_relations WHERE global_user_id = ?", gid).Scan(&status)
	if status != "removed" {
		t.Fatalf("relation status %q after unbind", status)
	}
	want(t, f.do(t, "admin", "DELETE", "/api/admin/tenants/k001/domains/school.example.com", nil), 200, "")
	var audits int
	_ = f.sys.DB.QueryRowContext(context.Background(), "SELECT COUNT(*) FROM audit_logs WHERE target_id = 'k001'").Scan(&audits)
	if audits < 6 {
		t.Fatalf("%d audit rows for k001's changes", audits)
	}
}

func itoa(n int64) string { b, _ := json.Marshal(n); return string(b) }

func TestWebhookEndpoints(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	want(t, f.do(t, "operator", "POST", "/api/admin/webhooks", map[string]any{"url": "https://hooks.example.com/unitenant"}), 403, "permission_denied")
	want(t, f.do(t, "admin", "POST", "/api/admin/webhooks", map[string]any{"url": "ftp://nope"}), 400, "invalid_field")
	want(t, f.do(t, "admin", "POST", "/api/admin/webhooks", map[string]any{"url": "https://x.example.com", "events": []string{"tenant.exploded"}}), 400, "invalid_field")
	r := f.do(t, "admin", "POST", "/api/admin/webhooks", map[string]any{"url": "https://hooks.example.com/unitenant", "tenantCode": "k001", "events": []string{"tenant.suspended"}})
	want(t, r, 201, "")
	var created struct {
		Endpoint struct {
			ID     int64  `json:"id"`
			Secret string `json:"secret"`
		} `json:"endpoint"`
		Secret string `json:"secret"`
	}
	_ = json.Unmarshal(r.Data, &created)
	if created.Secret == "" || created.Endpoint.ID == 0 || created.Endpoint.Secret != "" {
		t.Fatalf("created %+v: want the secret once, outside the endpoint", created)
	}
	r = f.do(t, "operator", "GET", "/api/admin/webhooks?tenantCode=k001", nil)
	want(t, r, 200, "")
	if bytes.Contains(r.Data, []byte(created.Secret)) {
		t.Fatal("the secret is listed")
	}
	id := itoa(created.Endpoint.ID)
	want(t, f.do(t, "admin", "PATCH", "/api/admin/webhooks/"+id, map[string]string{"status": "disabled"}), 200, "")
	want(t, f.do(t, "admin", "DELETE", "/api/admin/webhooks/"+id, nil), 200, "")
	want(t, f.do(t, "admin", "DELETE", "/api/admin/webhooks/"+id, nil), 404, "webhook_endpoint_not_found")
}

// TestTenantStatistics: a tenant's daily statistics over a range (the
// last 30 days by default), never another tenant's; bad ranges are refused
// by name.
func TestTenantStatistics(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	today := time.Now().UTC().Truncate(24 * time.Hour)
	day := func(n int) string { return today.AddDate(0, 0, n).Format(time.DateOnly) }
	for _, s := range []struct {
		code      string
		day       int
		users, ai int
		cost      string
	}{{"k001", 0, 5, 7, "0.125000"}, {"k001", -1, 4, 3, "0.000100"}, {"k001", -40, 2, 1, "1.000000"}, {"k002", 0, 9, 99, "9.000000"}} {
		if _, err := f.sys.DB.Exec(`INSERT INTO tenant_statistics (tenant_id, stat_date, user_count, active_users, login_count, ai_calls, ai_tokens, ai_cost)
			SELECT id, ?, ?, 1, 2, ?, 1000, ? FROM tenants WHERE tenant_code = ?`, day(s.day), s.users, s.ai, s.cost, s.code); err != nil {
			t.Fatal(err)
		}
	}
	type page struct {
		From, To string
		Days     []DayStatistics
	}
	get := func(query string) page {
		t.Helper()
		r := f.do(t, "operator", "GET", "/api/admin/tenants/k001/statistics"+query, nil)
		want(t, r, 200, "")
		var p page
		if err := json.Unmarshal(r.Data, &p); err != nil {
			t.Fatal(err)
		}
		return p
	}
	p := get("")
	if p.From != day(-29) || p.To != day(0) || len(p.Days) != 2 ||
		p.Days[0] != (DayStatistics{Date: day(-1), UserCount: 4, ActiveUsers: 1, LoginCount: 2, AICalls: 3, AITokens: 1000, AICost: "0.000100"}) ||
		p.Days[1].Date != day(0) || p.Days[1].UserCount != 5 || p.Days[1].AICost != "0.125000" {
		t.Fatalf("the last 30 days: %+v", p)
	}
	if p = get("?from=" + day(-40) + "&to=" + day(-1)); len(p.Days) != 2 || p.Days[0].Date != day(-40) || p.Days[1].Date != day(-1) {
		t.Fatalf("from %s to %s: %+v", day(-40), day(-1), p)
	}
	for _, tc := range []struct{ query, field string }{
		{"?from=2024-13-01", "from"},
		{"?to=yesterday", "to"},
		{"?from=" + day(0) + "&to=" + day(-1), "from"},
		{"?from=" + day(-400) + "&to=" + day(0), "from"},
	} {
		r := f.do(t, "operator", "GET", "/api/admin/tenants/k001/statistics"+tc.query, nil)
		if r.Status != 400 || r.Error.Fields[tc.field] == "" {
			t.Errorf("%s: %d %q %v, want 400 naming %s", tc.query, r.Status, r.Error.Code, r.Error.Fields, tc.field)
		}
	}
	want(t, f.do(t, "operator", "GET", "/api/admin/tenants/k404/statistics", nil), 404, "tenant_not_found")
}
