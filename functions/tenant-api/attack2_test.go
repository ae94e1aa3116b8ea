package main

import (
	"math"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/unitenant/unitenant/shared/auth"
	"github.com/unitenant/unitenant/shared/httpapi/httpapitest"
	"github.com/unitenant/unitenant/shared/tenantapp"
)

// send is one GET /api/app/me with host, token and X-Tenant-Code /
// X-Forwarded-Host headers (each "" = absent).
func (f *fixture) send(t *testing.T, method, path, host, token string, headers map[string]string, body any) response {
	t.Helper()
	req := httptest.NewRequest(method, path, httpapitest.Body(body))
	req.Host = host
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	w := httptest.NewRecorder()
	f.handler.ServeHTTP(w, req)
	return httpapitest.Parse(t, w.Code, w.Header(), w.Body.Bytes())
}

// TestRequestsReachOnlyTheTokensTenant: whatever a request says about its
// host (case, trailing dot, port, X-Forwarded-Host, a deeper name, non-ASCII
// look-alikes) or names in X-Tenant-Code (case, look-alikes, a list), a k001
// token is served k001's data or refused, never k002's.
func TestRequestsReachOnlyTheTokensTenant(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	tok := f.token(t, "admin1", "k001")
	for _, c := range []struct {
		name, host string
		headers    map[string]string
		status     int
		code       string
	}{
		{"UpperHost", "K001.LOCALHOST", nil, 200, ""},
		{"TrailingDot", "k001.localhost.", nil, 200, ""},
		{"Port", "k001.localhost:8443", nil, 200, ""},
		{"PlatformHostTokenDecides", "localhost", nil, 200, ""},
		{"HeaderUpper", "localhost", map[string]string{"X-Tenant-Code": " K001 "}, 200, ""},
		{"ForwardedHostIgnored", "k001.localhost", map[string]string{"X-Forwarded-Host": "k002.localhost"}, 200, ""},
		{"ForwardedHostOnPlatform", "localhost", map[string]string{"X-Forwarded-Host": "k002.localhost"}, 200, ""},
		{"OtherTenantsHost", "k002.localhost", nil, 403, "tenant_forbidden"},
		{"OtherTenantsHeader", "localhost", map[string]string{"X-Tenant-Code": "k002"}, 403, "tenant_forbidden"},
		{"HostAndHeaderDisagree", "k001.localhost", map[string]string{"X-Tenant-Code": "k002"}, 400, "tenant_mismatch"},
		{"HeaderList", "localhost", map[string]string{"X-Tenant-Code": "k001,k002"}, 400, "tenant_mismatch"},
		{"HeaderKelvin", "localhost", map[string]string{"X-Tenant-Code": "\u212a001"}, 400, "invalid_tenant_code"},
		{"HeaderFullWidth", "localhost", map[string]string{"X-Tenant-Code": "ｋ００１"}, 400, "invalid_tenant_code"},
		{"HostFullWidth", "ｋ001.localhost", nil, 400, ""},
		{"DeeperHost", "k002.k001.localhost", nil, 404, "tenant_not_found"},
		{"UnknownSubdomain", "k003.localhost", nil, 404, "tenant_not_found"},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := f.send(t, "GET", "/api/app/me", c.host, tok, c.headers, nil)
			if r.Status != c.status || c.code != "" && r.Code() != c.code {
				t.Fatalf("%d %q, want %d %q", r.Status, r.Code(), c.status, c.code)
			}
			if r.Status == 200 {
				if m := httpapitest.Data[me](t, r); m.Tenant.Code != "k001" {
					t.Fatalf("served tenant %s", m.Tenant.Code)
				}
			}
		})
	}
}

// TestSubdomainNamesItsOwnerNotACode: a host's label is the subdomain a
// tenant chose, not a tenant code: once k002 serves at "school", its own
// token is served there and at no host spelling its code, and k001's token
// is refused at k002's subdomain.
func TestSubdomainNamesItsOwnerNotACode(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	if _, err := f.sys.Exec("UPDATE tenants SET subdomain = 'school' WHERE tenant_code = 'k002'"); err != nil {
		t.Fatal(err)
	}
	k1, k2 := f.token(t, "admin1", "k001"), f.token(t, "admin2", "k002")
	r := f.send(t, "GET", "/api/app/me", "school.localhost", k2, nil, nil)
	want(t, r, 200, "")
	if m := httpapitest.Data[me](t, r); m.Tenant.Code != "k002" {
		t.Fatalf("school.localhost served %s", m.Tenant.Code)
	}
	want(t, f.send(t, "GET", "/api/app/me", "school.localhost", k1, nil, nil), 403, "tenant_forbidden")
	want(t, f.send(t, "GET", "/api/app/me", "k002.localhost", k2, nil, nil), 404, "tenant_not_found")
}

// TestOnlyTenantUserTokensAreServed: an admin's token (admin audience) is
// for another API; an admin-kind token with the tenant audience and a tid
// (which login never issues) is no member; a token whose tid names a
// tenant it is no member of is refused, as is an expired one.
func TestOnlyTenantUserTokensAreServed(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	issue := func(kind string, id int64, aud, tid string, ttl time.Duration) string {
		tok, _, err := f.signer.Issue(kind, id, aud, tid, "super_admin", ttl)
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	admin1 := f.users["admin1"]
	for _, c := range []struct {
		name, token string
		status      int
		code        string
	}{
		{"AdminToken", issue(auth.KindAdmin, admin1, auth.AudienceAdmin, "", time.Hour), 401, "wrong_audience"},
		{"AdminKindTenantAudience", issue(auth.KindAdmin, admin1, auth.AudienceTenant, "k001", time.Hour), 403, "not_a_member"},
		{"OtherTenantsMember", issue(auth.KindUser, f.users["admin2"], auth.AudienceTenant, "k001", time.Hour), 403, "not_a_member"},
		{"Expired", issue(auth.KindUser, admin1, auth.AudienceTenant, "k001", -time.Hour), 401, "token_expired"},
	} {
		t.Run(c.name, func(t *testing.T) {
			for _, r := range []struct{ method, path string }{{"GET", "/api/app/me"}, {"POST", "/api/app/classes"}} {
				var body any
				if r.method == "POST" {
					body = map[string]any{"name": "Intruder", "grade": "small"}
				}
				got := f.send(t, r.method, r.path, "k001.localhost", c.token, nil, body)
				if got.Status != c.status || got.Code() != c.code {
					t.Errorf("%s %s: %d %q, want %d %q", r.method, r.path, got.Status, got.Code(), c.status, c.code)
				}
			}
		})
	}
	if n := count(t, f.tenants["k001"], "classes"); n != 0 {
		t.Errorf("refused tokens made %d classes", n)
	}
}

// TestTenantNotRunningIsRefused: a suspended (403), deleted or purged
// (410) or provisioning (503) tenant serves no request, not even to its
// members with tokens issued while it ran, and nothing is written.
func TestTenantNotRunningIsRefused(t *testing.T) {
	t.Parallel()
	for _, states := range [][2]string{{"suspended", "deleted"}, {"provisioning", "purged"}} {
		// A fresh fixture for each pair, the statuses set before the first
		// request: the routing cache keeps a status for its TTL.
		f := newFixture(t)
		for i, code := range []string{"k001", "k002"} {
			if _, err := f.sys.Exec("UPDATE tenants SET status = ? WHERE tenant_code = ?", states[i], code); err != nil {
				t.Fatal(err)
			}
		}
		for i, c := range []struct{ user, code string }{{"admin1", "k001"}, {"admin2", "k002"}} {
			wantStatus, wantCode := map[string]int{"suspended": 403, "deleted": 410, "purged": 410, "provisioning": 503}[states[i]],
				map[string]string{"suspended": "tenant_suspended", "deleted": "tenant_deleted", "purged": "tenant_deleted", "provisioning": "tenant_provisioning"}[states[i]]
			r := f.call(t, c.user, c.code, "POST", "/api/app/classes", map[string]any{"name": "While " + states[i], "grade": "small"})
			if r.Status != wantStatus || r.Code() != wantCode {
				t.Errorf("%s: %d %q, want %d %q", states[i], r.Status, r.Code(), wantStatus, wantCode)
			}
			if n := count(t, f.tenants[c.code], "classes"); n != 0 {
				t.Errorf("%s tenant got %d classes", states[i], n)
			}
		}
	}
}

// TestUnboundMemberLosesAccessAtOnce: a member unbound (relation removed,
// tenant user inactive) is refused with the token it still holds.
func TestUnboundMemberLosesAccessAtOnce(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	want(t, f.call(t, "teacher1", "k001", "GET", "/api/app/classes", nil), 200, "")
	var tid int64
	if err := f.sys.QueryRow("SELECT id FROM tenants WHERE tenant_code = 'k001'").Scan(&tid); err != nil {
		t.Fatal(err)
	}
	if err := tenantapp.Unbind(t.Context(), f.sys, f.tenants["k001"], tid, f.users["teacher1"]); err != nil {
		t.Fatal(err)
	}
	want(t, f.call(t, "teacher1", "k001", "GET", "/api/app/classes", nil), 403, "not_a_member")
	want(t, f.call(t, "teacher1", "k001", "POST", "/api/app/students", map[string]any{"name": "After removal"}), 403, "not_a_member")
}

// TestMembershipEndedInTheSystemAloneStillEndsAccess: an unbinding cut
// off after the relation was marked removed, before the tenant's user was
// made inactive, still refuses the token; and so does a disabled
// membership. The tenant's user row alone is never enough.
func TestMembershipEndedInTheSystemAloneStillEndsAccess(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	want(t, f.call(t, "teacher1", "k001", "GET", "/api/app/classes", nil), 200, "")
	want(t, f.call(t, "admin1", "k001", "GET", "/api/app/me", nil), 200, "")
	for user, status := range map[string]string{"teacher1": "removed", "admin1": "disabled"} {
		if _, err := f.sys.Exec("UPDATE global_user_tenant_relations SET status = ? WHERE global_user_id = ?", status, f.users[user]); err != nil {
			t.Fatal(err)
		}
	}
	want(t, f.call(t, "teacher1", "k001", "GET", "/api/app/classes", nil), 403, "not_a_member")
	want(t, f.call(t, "teacher1", "k001", "POST", "/api/app/classes", map[string]any{"name": "After removal"}), 403, "not_a_member")
	want(t, f.call(t, "admin1", "k001", "GET", "/api/app/me", nil), 403, "not_a_member")
	if n := count(t, f.tenants["k001"], "classes WHERE name = 'After removal'"); n != 0 {
		t.Fatalf("a refused caller made %d classes", n)
	}
	// k002's admin, untouched, is served.
	want(t, f.call(t, "admin2", "k002", "GET", "/api/app/me", nil), 200, "")
}

// TestOddInputIsA400: values at the edges of their types are refused by
// name, never a 500, and change nothing.
func TestOddInputIsA400(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	classes, students := count(t, f.tenants["k001"], "classes"), count(t, f.tenants["k001"], "students")
	for _, c := range []struct {
		name, method, path string
		body               any
		field              string
	}{
		{"HugeKindergarten", "POST", "/api/app/classes", map[string]any{"name": "A", "grade": "small", "kindergartenId": int64(math.MaxInt64)}, "kindergartenId"},
		{"HugeCapacity", "POST", "/api/app/classes", `{"name":"A","grade":"small","capacity":99999999999999999999}`, "capacity"},
		{"HugeClassId", "POST", "/api/app/students", map[string]any{"name": "Kid", "classId": int64(math.MaxInt64)}, "classId"},
		{"YearZero", "POST", "/api/app/students", map[string]any{"name": "Kid", "birthDate": "0000-01-01"}, "birthDate"},
		{"LongStudentNo", "POST", "/api/app/students", map[string]any{"name": "Kid", "studentNo": "S" + string(make([]byte, 40))}, "studentNo"},
		{"NameIsNull", "POST", "/api/app/classes", `{"name":null,"grade":"small"}`, "name"},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := f.call(t, "admin1", "k001", c.method, c.path, c.body)
			if r.Status != 400 {
				t.Fatalf("%d %q %v, want 400", r.Status, r.Code(), r.Error)
			}
			if _, ok := r.Error.Fields[c.field]; !ok {
				t.Errorf("fields %v do not name %s", r.Error.Fields, c.field)
			}
		})
	}
	if c, s := count(t, f.tenants["k001"], "classes"), count(t, f.tenants["k001"], "students"); c != classes || s != students {
		t.Errorf("odd input changed the database: classes %d -> %d, students %d -> %d", classes, c, students, s)
	}
}
