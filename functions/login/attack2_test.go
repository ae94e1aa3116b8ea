package main

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/unitenant/unitenant/shared/auth"
	"github.com/unitenant/unitenant/shared/httpapi/httpapitest"
)

// forged signs claims with the real key and kid, so only the claims (or the
// algorithm) can make Verify refuse them.
func (e *env) forged(m jwt.SigningMethod, claims jwt.Claims) string {
	e.t.Helper()
	tok := jwt.NewWithClaims(m, claims)
	tok.Header["kid"] = e.signer.KeyID()
	s, err := tok.SignedString(signingKey(e.t))
	if err != nil {
		e.t.Fatal(err)
	}
	return s
}

// TestTokensWithForeignClaimsAreRefused: tokens signed with the real key
// but claiming what the login function never issues (another environment's
// issuer, two audiences, an unknown kind, a subject that is no id, no
// expiry, a future nbf or iat, another RSA algorithm) are all refused, as
// is an admin-kind token carrying the user audience.
func TestTokensWithForeignClaimsAreRefused(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.addUser(phone, password)
	now := time.Now()
	base := func(mod func(c *auth.Claims)) *auth.Claims {
		c := &auth.Claims{RegisteredClaims: jwt.RegisteredClaims{
			Issuer: auth.Issuer, Subject: "1", Audience: jwt.ClaimStrings{auth.AudiencePlatform},
			IssuedAt: jwt.NewNumericDate(now), ExpiresAt: jwt.NewNumericDate(now.Add(time.Hour)),
		}, Kind: auth.KindUser}
		mod(c)
		return c
	}
	tests := []struct {
		name  string
		token string
	}{
		{"OtherEnvironmentIssuer", e.forged(jwt.SigningMethodRS256, base(func(c *auth.Claims) { c.Issuer = "unitenant-staging" }))},
		{"NoIssuer", e.forged(jwt.SigningMethodRS256, base(func(c *auth.Claims) { c.Issuer = "" }))},
		{"TwoAudiences", e.forged(jwt.SigningMethodRS256, base(func(c *auth.Claims) {
			c.RegisteredClaims.Audience = jwt.ClaimStrings{auth.AudiencePlatform, auth.AudienceAdmin}
		}))},
		{"UnknownKind", e.forged(jwt.SigningMethodRS256, base(func(c *auth.Claims) { c.Kind = "service" }))},
		{"NoKind", e.forged(jwt.SigningMethodRS256, base(func(c *auth.Claims) { c.Kind = "" }))},
		{"AdminKindUserAudience", e.forged(jwt.SigningMethodRS256, base(func(c *auth.Claims) { c.Kind = auth.KindAdmin; c.Role = "super_admin" }))},
		{"SubjectZero", e.forged(jwt.SigningMethodRS256, base(func(c *auth.Claims) { c.Subject = "0" }))},
		{"SubjectNegative", e.forged(jwt.SigningMethodRS256, base(func(c *auth.Claims) { c.Subject = "-1" }))},
		{"SubjectNotANumber", e.forged(jwt.SigningMethodRS256, base(func(c *auth.Claims) { c.Subject = "1 OR 1=1" }))},
		{"NoExpiry", e.forged(jwt.SigningMethodRS256, base(func(c *auth.Claims) { c.ExpiresAt = nil }))},
		{"NotYetValid", e.forged(jwt.SigningMethodRS256, base(func(c *auth.Claims) { c.NotBefore = jwt.NewNumericDate(now.Add(10 * time.Minute)) }))},
		{"IssuedInTheFuture", e.forged(jwt.SigningMethodRS256, base(func(c *auth.Claims) { c.IssuedAt = jwt.NewNumericDate(now.Add(10 * time.Minute)) }))},
		{"RS512", e.forged(jwt.SigningMethodRS512, base(func(*auth.Claims) {}))},
		{"PS256", e.forged(jwt.SigningMethodPS256, base(func(*auth.Claims) {}))},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			for _, r := range []struct{ method, path string }{{"GET", "/api/auth/me"}, {"GET", "/api/auth/tenants"}, {"POST", "/api/auth/switch-tenant"}} {
				var body any
				if r.method == "POST" {
					body = map[string]string{"tenantCode": "k001"}
				}
				want(t, e.call(r.method, r.path, body, tc.token), http.StatusUnauthorized, "invalid_token")
			}
		})
	}
	// The same claims, well-formed, are accepted: the refusals above are the claims'.
	want(t, e.call("GET", "/api/auth/me", nil, e.forged(jwt.SigningMethodRS256, base(func(*auth.Claims) {}))), 200, "")
}

// TestSwitchTenantCodeVariantsRefused: the tenants table's collation folds
// case, full-width letters and trailing spaces, so a variant of a code
// reaching the query would name the tenant. Every variant is refused as a
// malformed code (400), before any lookup: no login is counted, no
// session opened.
func TestSwitchTenantCodeVariantsRefused(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	u := e.addUser(phone, password)
	e.addMember(u, e.addTenant("k001", "active"), "k001", "admin")
	l := e.login(phone, password)
	for _, v := range []string{"K001", "k001 ", " k001", "ｋ００１", "k001\u200b", "k001\n", "k\u0130001", "\u212a001", "k001%", "k_01", "k001,k002"} {
		want(t, e.call("POST", "/api/auth/switch-tenant", map[string]string{"tenantCode": v}, l.Token), 400, "invalid_tenant_code")
	}
	if n := e.count(`SELECT login_count FROM global_user_tenant_relations`); n != 0 {
		t.Errorf("variants counted %d tenant logins", n)
	}
	if n := e.count(`SELECT COUNT(*) FROM refresh_tokens WHERE tenant_id IS NOT NULL`); n != 0 {
		t.Errorf("variants opened %d tenant sessions", n)
	}
	want(t, e.call("POST", "/api/auth/switch-tenant", map[string]string{"tenantCode": "k001"}, l.Token), 200, "")
}

// TestSwitchTenantOnlyIntoARunningMembership: a relation that is not
// active (invited, removed, anything else) is no membership; a tenant
// soft-deleted while its status still says active, or purged, is gone. An
// admin token cannot switch at all. None of them opens a session.
func TestSwitchTenantOnlyIntoARunningMembership(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	u := e.addUser(phone, password)
	for _, c := range []struct{ code, tenantStatus, relStatus string }{
		{"kinv", "active", "invited"}, {"krem", "active", "removed"},
		{"ksoft", "active", "active"}, {"kpur", "purged", "active"},
	} {
		e.addMember(u, e.addTenant(c.code, c.tenantStatus), c.code, "admin")
		e.exec(`UPDATE global_user_tenant_relations SET status = ? WHERE tenant_code = ?`, c.relStatus, c.code)
	}
	e.exec(`UPDATE tenants SET deleted_at = NOW(3) WHERE tenant_code = 'ksoft'`)
	l := e.login(phone, password)
	if len(l.Tenants) != 0 {
		t.Errorf("login lists %+v, want none", l.Tenants)
	}
	for _, c := range []struct {
		code   string
		status int
		err    string
	}{
		{"kinv", 403, "not_a_member"}, {"krem", 403, "not_a_member"},
		{"ksoft", 410, "tenant_deleted"}, {"kpur", 410, "tenant_deleted"},
	} {
		want(t, e.call("POST", "/api/auth/switch-tenant", map[string]string{"tenantCode": c.code}, l.Token), c.status, c.err)
	}
	admin := e.addAdmin("ops", "adminpass1", "super_admin")
	tok, _, err := e.signer.Issue(auth.KindAdmin, admin, auth.AudienceAdmin, "", "super_admin", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	want(t, e.call("POST", "/api/auth/switch-tenant", map[string]string{"tenantCode": "kinv"}, tok), 401, "wrong_audience")
	if n := e.count(`SELECT COUNT(*) FROM refresh_tokens WHERE tenant_id IS NOT NULL`) + e.count(`SELECT SUM(login_count) FROM global_user_tenant_relations`); n != 0 {
		t.Errorf("refused switches wrote %d sessions or logins", n)
	}
}

// TestSwitchTenantBadBodies: a body of the wrong shape is a 400 naming the
// problem, never a 500 or a switch.
func TestSwitchTenantBadBodies(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	u := e.addUser(phone, password)
	e.addMember(u, e.addTenant("k001", "active"), "k001", "admin")
	l := e.login(phone, password)
	for _, c := range []struct {
		body any
		code string
	}{
		{`{"tenantCode":1}`, "invalid_field_type"},
		{`{"tenantCode":["k001"]}`, "invalid_field_type"},
		{`{"tenantCode":"k001","tid":"k002"}`, "unknown_field"},
		{`{"tenantCode":"k001"}{"tenantCode":"k002"}`, "invalid_json"},
		{`{}`, "missing_field"},
		{`null`, "missing_field"},
		{`"k001"`, "invalid_json"},
	} {
		r := e.call("POST", "/api/auth/switch-tenant", c.body, l.Token)
		if r.Status != 400 || r.Code() != c.code {
			t.Errorf("body %s: %d %q, want 400 %q", c.body, r.Status, r.Code(), c.code)
		}
	}
	if n := e.count(`SELECT COUNT(*) FROM refresh_tokens WHERE tenant_id IS NOT NULL`); n != 0 {
		t.Errorf("bad bodies opened %d tenant sessions", n)
	}
}

// TestAdminUsernameVariantsShareOneLockout: usernames compare by the
// column's collation ("OPS", "ops " and "ｏｐｓ" are ops), so a variant
// must not be a fresh set of guesses: once ops is locked every variant is
// locked, the right password's too; and a name no admin has locks its
// variants alike, so the lockout tells nothing about which names exist.
func TestAdminUsernameVariantsShareOneLockout(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.addAdmin("ops", "adminpass1", "admin")
	for _, name := range []string{"ops", "nobody"} {
		for range 5 {
			want(t, e.post("/api/admin/auth/login", map[string]string{"username": name, "password": "wrong1234"}), 401, "invalid_credentials")
		}
	}
	for _, v := range []string{"OPS", "ops ", "Ops", "ｏｐｓ", "NOBODY", "nobody ", "ｎｏｂｏｄｙ"} {
		pw := "wrong1234"
		if v != "NOBODY" && v != "nobody " && v != "ｎｏｂｏｄｙ" {
			pw = "adminpass1"
		}
		want(t, e.post("/api/admin/auth/login", map[string]string{"username": v, "password": pw}), 423, "account_locked")
	}
	e.clock.Add(15*time.Minute + time.Second)
	want(t, e.post("/api/admin/auth/login", map[string]string{"username": "ops", "password": "adminpass1"}), 200, "")
}

// TestAdminSessionEndsWithTheAccount: an admin deleted or disabled after
// logging in cannot refresh (the refresh re-reads the account), and a
// disabled admin's right password opens nothing.
func TestAdminSessionEndsWithTheAccount(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	for _, c := range []struct{ name, change string }{
		{"gone", `DELETE FROM admin_users WHERE username = 'gone'`},
		{"off", `UPDATE admin_users SET status = 'suspended' WHERE username = 'off'`},
	} {
		e.addAdmin(c.name, "adminpass1", "super_admin")
		r := e.post("/api/admin/auth/login", map[string]string{"username": c.name, "password": "adminpass1"})
		want(t, r, 200, "")
		s := httpapitest.Data[session](t, r)
		e.exec(c.change)
		want(t, e.post("/api/auth/refresh", map[string]string{"refreshToken": s.RefreshToken}), 403, "account_disabled")
	}
	want(t, e.post("/api/admin/auth/login", map[string]string{"username": "off", "password": "adminpass1"}), 403, "account_disabled")
	want(t, e.post("/api/admin/auth/login", map[string]string{"username": "gone", "password": "adminpass1"}), 401, "invalid_credentials")
}

// TestUserAgentNotUTF8StillLogsIn: net/http passes a User-Agent's bytes
// on as they came; the login history, the session and the audit rows keep
// it in utf8mb4 columns, which refuse bytes that are not UTF-8. A login
// from such a client succeeds, with the bad bytes stored replaced.
func TestUserAgentNotUTF8StillLogsIn(t *testing.T) {
	e := newEnv(t)
	e.addUser("13900000077", "correct horse")
	const ua = "agent/1.0 \xff\xfe"
	for _, c := range []struct {
		password string
		status   int
	}{{"wrong", http.StatusUnauthorized}, {"correct horse", http.StatusOK}} {
		req, err := http.NewRequest("POST", e.srv.URL+"/api/auth/login", httpapitest.Body(map[string]string{"phone": "13900000077", "password": c.password}))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("User-Agent", ua)
		resp, err := e.srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != c.status {
			t.Fatalf("login with password %q from a non-UTF-8 agent: %d, want %d", c.password, resp.StatusCode, c.status)
		}
	}
	stored := strings.ToValidUTF8(ua, "\uFFFD")
	if n := e.count("SELECT COUNT(*) FROM login_history WHERE user_agent = ?", stored); n != 2 {
		t.Errorf("%d login history rows with the agent stored, want 2 (the failure, the success)", n)
	}
	if n := e.count("SELECT COUNT(*) FROM refresh_tokens WHERE user_agent = ?", stored); n != 1 {
		t.Errorf("%d sessions with the agent stored, want 1", n)
	}
}
