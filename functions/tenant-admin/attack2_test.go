package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/unitenant/unitenant/shared/auth"
)

// status returns tenant code's status.
func (f *fixture) status(t *testing.T, code string) string {
	t.Helper()
	var s string
	if err := f.sys.DB.QueryRow("SELECT status FROM tenants WHERE tenant_code = ?", code).Scan(&s); err != nil {
		t.Fatal(err)
	}
	return s
}

// globalUser is the id of the fixture's global user (13722223333).
func (f *fixture) globalUser(t *testing.T) int64 {
	t.Helper()
	var id int64
	if err := f.sys.DB.QueryRow("SELECT id FROM global_users WHERE phone = '13722223333'").Scan(&id); err != nil {
		t.Fatal(err)
	}
	return id
}

// TestAdminTokenOutlivesNoAccountChange: an admin's access token says who
// they were when it was issued. An admin deleted or disabled since is
// refused at once (not for the rest of the token's life), and one demoted
// acts with the lesser role; the tenant is not touched.
func TestAdminTokenOutlivesNoAccountChange(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	for _, a := range []struct {
		id         int64
		name, role string
	}{{3, "gone", "super_admin"}, {4, "off", "super_admin"}, {5, "demoted", "operator"}} {
		if _, err := f.sys.DB.Exec("INSERT INTO admin_users (id, username, password_hash, role) VALUES (?, ?, 'x', ?)", a.id, a.name, a.role); err != nil {
			t.Fatal(err)
		}
	}
	audits := f.count(t, "SELECT COUNT(*) FROM audit_logs")
	// Each signed in as super_admin; then the account changed.
	f.sys.DB.Exec("DELETE FROM admin_users WHERE id = 3")
	f.sys.DB.Exec("UPDATE admin_users SET status = 'inactive' WHERE id = 4")
	for _, id := range []int64{3, 4} {
		for _, r := range []struct{ method, path string }{
			{"GET", "/api/admin/tenants"},
			{"POST", "/api/admin/tenants/k001/suspend"},
			{"POST", "/api/admin/tenants/k001/purge"},
		} {
			a := f.call(t, id, "super_admin", r.method, r.path, "", map[string]string{"reason": "x"})
			if a.Status != 403 || a.Error.Code != "account_disabled" {
				t.Errorf("admin %d (deleted or disabled) %s %s: %d %q, want 403 account_disabled", id, r.method, r.path, a.Status, a.Error.Code)
			}
		}
	}
	// The demoted admin still reads, but no longer manages.
	if a := f.call(t, 5, "super_admin", "GET", "/api/admin/tenants/k001", "", nil); a.Status != 200 {
		t.Errorf("demoted admin reading: %d %q", a.Status, a.Error.Code)
	}
	if a := f.call(t, 5, "super_admin", "POST", "/api/admin/tenants/k001/suspend", "", map[string]string{"reason": "x"}); a.Status != 403 || a.Error.Code != "permission_denied" {
		t.Errorf("demoted admin suspending: %d %q, want 403 permission_denied", a.Status, a.Error.Code)
	}
	if s := f.status(t, "k001"); s != "active" {
		t.Fatalf("k001 is %s after refused admins acted on it", s)
	}
	if n := f.count(t, "SELECT COUNT(*) FROM audit_logs"); n != audits {
		t.Errorf("%d audit rows after refused requests, want %d", n, audits)
	}
	// The fixture's live super admin (id 1) still works.
	want(t, f.do(t, "admin", "POST", "/api/admin/tenants/k001/suspend", map[string]string{"reason": "x"}), 200, "")
}

// TestUserTokensNeverReachAdminRoutes: platform and tenant-scoped user
// tokens are for another audience (401); a user token that somehow carried
// the admin audience is still not an admin's (403). Nothing changes.
func TestUserTokensNeverReachAdminRoutes(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	issue := func(kind, aud, tid, role string) string {
		tok, _, err := f.signer.Issue(kind, 1, aud, tid, role, time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	for _, c := range []struct {
		name, token string
		status      int
		code        string
	}{
		{"Platform", issue(auth.KindUser, auth.AudiencePlatform, "", ""), 401, "wrong_audience"},
		{"TenantOwner", issue(auth.KindUser, auth.AudienceTenant, "k001", "super_admin"), 401, "wrong_audience"},
		{"UserKindAdminAudience", issue(auth.KindUser, auth.AudienceAdmin, "", "super_admin"), 403, "permission_denied"},
		{"AdminWithTenantAudience", issue(auth.KindAdmin, auth.AudienceTenant, "k001", "super_admin"), 401, "wrong_audience"},
	} {
		t.Run(c.name, func(t *testing.T) {
			for _, path := range []string{"/api/admin/tenants/k001/suspend", "/api/admin/tenants/k001/purge"} {
				req := strings.NewReader(`{"reason":"x"}`)
				r := f.raw(t, "POST", path, c.token, req)
				if r.Status != c.status || r.Error.Code != c.code {
					t.Errorf("%s: %d %q, want %d %q", path, r.Status, r.Error.Code, c.status, c.code)
				}
			}
		})
	}
	if s := f.status(t, "k001"); s != "active" {
		t.Fatalf("k001 is %s", s)
	}
}

// TestTenantCodeVariantsNameNoTenant: the tenants table's collation folds
// case, full-width letters and trailing spaces, so "K001", "k001 " and
// "ｋ001" all matched k001 and every route acted on it. A code in a path or
// body must be a tenant code as written: anything else is no tenant (404),
// and changes nothing.
func TestTenantCodeVariantsNameNoTenant(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	audits := f.count(t, "SELECT COUNT(*) FROM audit_logs")
	for _, v := range []string{"K001", "k001%20", "%EF%BD%8B001", "k001%09", "K001%E2%80%8B"} {
		for _, r := range []struct {
			role, method, path string
			body               any
		}{
			{"operator", "GET", "/api/admin/tenants/" + v, nil},
			{"admin", "PATCH", "/api/admin/tenants/" + v, map[string]any{"name": "Hijacked"}},
			{"admin", "POST", "/api/admin/tenants/" + v + "/suspend", map[string]string{"reason": "x"}},
			{"super_admin", "POST", "/api/admin/tenants/" + v + "/delete", map[string]string{"reason": "x"}},
			{"admin", "POST", "/api/admin/tenants/" + v + "/domains", map[string]string{"domain": "evil.example.com"}},
			{"admin", "POST", "/api/admin/tenants/" + v + "/members", map[string]string{"phone": "13722223333", "role": "teacher"}},
			{"operator", "GET", "/api/admin/tenants/" + v + "/members", nil},
			{"operator", "GET", "/api/admin/webhooks?tenantCode=" + v, nil},
		} {
			a := f.do(t, r.role, r.method, r.path, r.body)
			if a.Status != 404 || a.Error.Code != "tenant_not_found" {
				t.Errorf("%s %s: %d %q, want 404 tenant_not_found", r.method, r.path, a.Status, a.Error.Code)
			}
		}
	}
	r := f.do(t, "admin", "POST", "/api/admin/webhooks", map[string]any{"url": "https://hooks.example.com/x", "tenantCode": "K001"})
	if r.Status != 404 || r.Error.Fields["tenantCode"] == "" {
		t.Errorf("webhook for tenantCode K001: %d %q %v, want 404 naming tenantCode", r.Status, r.Error.Code, r.Error.Fields)
	}
	if s := f.status(t, "k001"); s != "active" {
		t.Fatalf("k001 is %s", s)
	}
	for q, what := range map[string]string{
		"SELECT COUNT(*) FROM tenants WHERE tenant_name = 'Hijacked'":      "renamed tenants",
		"SELECT COUNT(*) FROM tenant_domains WHERE domain_type = 'custom'": "custom domains",
		"SELECT COUNT(*) FROM global_user_tenant_relations":                "memberships",
		"SELECT COUNT(*) FROM tenant_deletion_requests":                    "deletion requests",
		"SELECT COUNT(*) FROM webhook_endpoints":                           "webhooks",
	} {
		if n := f.count(t, q); n != 0 {
			t.Errorf("%d %s after requests naming no tenant", n, what)
		}
	}
	if n := f.count(t, "SELECT COUNT(*) FROM audit_logs"); n != audits {
		t.Errorf("%d audit rows after requests naming no tenant, want %d", n, audits)
	}
}

// TestLimitBeyondItsColumnIsNamed: max_users is INT UNSIGNED; a larger
// maxUsers was a 500 (out of range). It is a 400 naming the field, and
// nothing changes.
func TestLimitBeyondItsColumnIsNamed(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	r := f.do(t, "admin", "PATCH", "/api/admin/tenants/k001", map[string]any{"maxUsers": int64(1) << 32, "name": "Renamed"})
	want(t, r, 400, "invalid_input")
	if r.Error.Fields["maxUsers"] == "" {
		t.Errorf("fields %v do not name maxUsers", r.Error.Fields)
	}
	if n := f.count(t, "SELECT COUNT(*) FROM tenants WHERE tenant_name = 'Renamed'"); n != 0 {
		t.Error("a refused update renamed the tenant")
	}
	want(t, f.do(t, "admin", "PATCH", "/api/admin/tenants/k001", map[string]any{"maxUsers": int64(1)<<32 - 1, "maxStorage": int64(1) << 62}), 200, "")
}

// TestOverlongReasonIsNamed: the reason columns hold 500 characters; a
// longer reason was a 500 (data too long) for suspend and delete. It is a
// 400 naming reason, and nothing happens.
func TestOverlongReasonIsNamed(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	audits := f.count(t, "SELECT COUNT(*) FROM audit_logs")
	long := strings.Repeat("原", 501)
	for _, r := range []struct{ role, path string }{
		{"admin", "/api/admin/tenants/k001/suspend"},
		{"super_admin", "/api/admin/tenants/k001/delete"},
	} {
		a := f.do(t, r.role, "POST", r.path, map[string]string{"reason": long})
		if a.Status != 400 || a.Error.Fields["reason"] == "" {
			t.Errorf("%s with a 501-character reason: %d %q %v, want 400 naming reason", r.path, a.Status, a.Error.Code, a.Error.Fields)
		}
	}
	if s := f.status(t, "k001"); s != "active" {
		t.Fatalf("k001 is %s", s)
	}
	if n := f.count(t, "SELECT COUNT(*) FROM tenant_deletion_requests") + f.count(t, "SELECT COUNT(*) FROM audit_logs") - audits; n != 0 {
		t.Errorf("%d rows written for refused requests", n)
	}
	want(t, f.do(t, "admin", "POST", "/api/admin/tenants/k001/suspend", map[string]string{"reason": long[:len(long)-len("原")]}), 200, "")
}

// TestSetRoleNeverMakesAMember: PATCH .../members/{userId} changes a
// member's role. It made anyone a member (and brought a removed member
// back); it must answer 404 not_a_member and change nothing.
func TestSetRoleNeverMakesAMember(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	gid := f.globalUser(t)
	path := fmt.Sprintf("/api/admin/tenants/k001/members/%d", gid)
	want(t, f.do(t, "admin", "PATCH", path, map[string]string{"role": "principal"}), 404, "not_a_member")
	if n := f.count(t, "SELECT COUNT(*) FROM global_user_tenant_relations"); n != 0 {
		t.Fatalf("PATCH of a non-member made %d memberships", n)
	}
	want(t, f.do(t, "admin", "POST", "/api/admin/tenants/k001/members", map[string]string{"phone": "13722223333", "role": "teacher"}), 200, "")
	want(t, f.do(t, "admin", "DELETE", path, nil), 200, "")
	want(t, f.do(t, "admin", "PATCH", path, map[string]string{"role": "principal"}), 404, "not_a_member")
	if n := f.count(t, "SELECT COUNT(*) FROM global_user_tenant_relations WHERE status = 'removed' AND role_in_tenant = 'teacher'"); n != 1 {
		t.Fatal("PATCH of a removed member changed the membership")
	}
	// A member's role does change.
	want(t, f.do(t, "admin", "POST", "/api/admin/tenants/k001/members", map[string]string{"phone": "13722223333", "role": "teacher"}), 200, "")
	want(t, f.do(t, "admin", "PATCH", path, map[string]string{"role": "principal"}), 200, "")
	if n := f.count(t, "SELECT COUNT(*) FROM global_user_tenant_relations WHERE status = 'active' AND role_in_tenant = 'principal'"); n != 1 {
		t.Fatal("the member's role did not change")
	}
}

// TestMembersOnlyChangeInARunningTenant: a tenant still provisioning has
// no database (this was a 500); a deleted or purged one must not gain
// members (this succeeded, writing to a database awaiting its purge). A
// suspended tenant's members may still be managed.
func TestMembersOnlyChangeInARunningTenant(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	gid := f.globalUser(t)
	if _, err := f.sys.DB.Exec("INSERT INTO tenants (tenant_code, tenant_name, subdomain, status) VALUES ('kpro', 'P', 'kpro', 'provisioning')"); err != nil {
		t.Fatal(err)
	}
	bind := map[string]string{"phone": "13722223333", "role": "teacher"}
	want(t, f.do(t, "admin", "POST", "/api/admin/tenants/kpro/members", bind), 503, "tenant_provisioning")
	want(t, f.do(t, "admin", "DELETE", fmt.Sprintf("/api/admin/tenants/kpro/members/%d", gid), nil), 503, "tenant_provisioning")
	for _, st := range []string{"deleted", "purged"} {
		f.sys.DB.Exec("UPDATE tenants SET status = ? WHERE tenant_code = 'k002'", st)
		want(t, f.do(t, "admin", "POST", "/api/admin/tenants/k002/members", bind), 410, "tenant_deleted")
		want(t, f.do(t, "admin", "PATCH", fmt.Sprintf("/api/admin/tenants/k002/members/%d", gid), map[string]string{"role": "principal"}), 410, "tenant_deleted")
	}
	if n := f.count(t, "SELECT COUNT(*) FROM global_user_tenant_relations"); n != 0 {
		t.Fatalf("%d memberships made in tenants not running", n)
	}
	want(t, f.do(t, "admin", "POST", "/api/admin/tenants/k001/suspend", map[string]string{"reason": "x"}), 200, "")
	want(t, f.do(t, "admin", "POST", "/api/admin/tenants/k001/members", bind), 200, "")
}

// TestMemberPhoneMustBeExact: the phone column's collation ignores trailing
// spaces; "13722223333 " bound the user with 13722223333. A phone that is
// no user's as written is user_not_found.
func TestMemberPhoneMustBeExact(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	want(t, f.do(t, "admin", "POST", "/api/admin/tenants/k001/members", map[string]string{"phone": "13722223333 ", "role": "teacher"}), 404, "user_not_found")
	if n := f.count(t, "SELECT COUNT(*) FROM global_user_tenant_relations"); n != 0 {
		t.Fatalf("a phone variant made %d memberships", n)
	}
}

// TestDomainsThatRouteNowhere: an IP address is never looked up as a
// custom domain (tenancy treats it as a platform host), so registering one
// is refused; a domain to remove is matched as written, not by the
// collation ("school.example.com " is no domain).
func TestDomainsThatRouteNowhere(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	for _, d := range []string{"127.0.0.1", "10.0.0.8", "localhost"} {
		r := f.do(t, "admin", "POST", "/api/admin/tenants/k001/domains", map[string]string{"domain": d})
		if r.Status != 400 || r.Error.Fields["domain"] == "" {
			t.Errorf("domain %s: %d %q %v, want 400 naming domain", d, r.Status, r.Error.Code, r.Error.Fields)
		}
	}
	want(t, f.do(t, "admin", "POST", "/api/admin/tenants/k001/domains", map[string]string{"domain": "school.example.com"}), 201, "")
	want(t, f.do(t, "admin", "DELETE", "/api/admin/tenants/k001/domains/school.example.com%20", nil), 404, "domain_not_found")
	if n := f.count(t, "SELECT COUNT(*) FROM tenant_domains WHERE domain_type = 'custom'"); n != 1 {
		t.Fatalf("%d custom domains, want school.example.com alone", n)
	}
	want(t, f.do(t, "admin", "DELETE", "/api/admin/tenants/k001/domains/school.example.com", nil), 200, "")
}

// TestSuspendedTenantDeletedComesBackSuspended: a tenant suspended, then
// deleted, then restored is suspended again (never reopened by a restore);
// the deletion cannot be confirmed twice, and a restored tenant cannot be
// purged.
func TestSuspendedTenantDeletedComesBackSuspended(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	want(t, f.do(t, "admin", "POST", "/api/admin/tenants/k001/suspend", map[string]string{"reason": "unpaid"}), 200, "")
	want(t, f.do(t, "super_admin", "POST", "/api/admin/tenants/k001/delete", map[string]string{"reason": "closed"}), 202, "")
	tok := f.confirmationToken(t)
	want(t, f.do(t, "super_admin", "POST", "/api/admin/tenants/k001/delete/confirm", map[string]string{"token": tok}), 200, "")
	want(t, f.do(t, "super_admin", "POST", "/api/admin/tenants/k001/delete/confirm", map[string]string{"token": tok}), 409, "invalid_transition")
	want(t, f.do(t, "super_admin", "POST", "/api/admin/tenants/k001/delete", map[string]string{"reason": "again"}), 409, "invalid_transition")
	want(t, f.do(t, "admin", "POST", "/api/admin/tenants/k001/restore", nil), 200, "")
	if s := f.status(t, "k001"); s != "suspended" {
		t.Fatalf("restored tenant is %s, want suspended as before its deletion", s)
	}
	want(t, f.do(t, "admin", "POST", "/api/admin/tenants/k001/restore", nil), 409, "invalid_transition")
	want(t, f.do(t, "super_admin", "POST", "/api/admin/tenants/k001/purge", nil), 409, "invalid_transition")
	// The spent token does not delete it again either.
	want(t, f.do(t, "super_admin", "POST", "/api/admin/tenants/k001/delete/confirm", map[string]string{"token": tok}), 400, "invalid_confirmation_token")
}

// raw sends body (nil: none) to path with token as the bearer.
func (f *fixture) raw(t *testing.T, method, path, token string, body io.Reader) reply {
	t.Helper()
	req, _ := http.NewRequest(method, f.srv.URL+path, body)
	req.Header.Set("Authorization", "Bearer "+token)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := f.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var r reply
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
		t.Fatal(err)
	}
	r.Status = resp.StatusCode
	return r
}

// TestUserAgentNotUTF8IsAudited: the audit row of a transition keeps the
// client's User-Agent in a utf8mb4 column, which refuses bytes that are
// not UTF-8; a suspension from such a client is made and audited, with
// the bad bytes stored replaced, not refused with a 500.
func TestUserAgentNotUTF8IsAudited(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	const ua = "ops-console \xff\xfe"
	req, _ := http.NewRequest("POST", f.srv.URL+"/api/admin/tenants/k001/suspend", strings.NewReader(`{"reason":"unpaid"}`))
	req.Header.Set("Authorization", "Bearer "+f.token(t, "admin"))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", ua)
	resp, err := f.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("suspend from a non-UTF-8 agent: %d", resp.StatusCode)
	}
	if s := f.status(t, "k001"); s != "suspended" {
		t.Fatalf("k001 is %s", s)
	}
	if n := f.count(t, "SELECT COUNT(*) FROM audit_logs WHERE action = 'tenant.suspend' AND user_agent = ?", strings.ToValidUTF8(ua, "\uFFFD")); n != 1 {
		t.Errorf("%d audit rows of the suspension with the agent stored, want 1", n)
	}
}
