package main

import (
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/unitenant/unitenant/shared/auth"
	"github.com/unitenant/unitenant/shared/httpapi/httpapitest"
	"github.com/unitenant/unitenant/shared/identity"
)

const (
	phone    = "13800138000"
	password = "secret123"
)

func TestRegisterLoginMe(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	r := e.post("/api/auth/sms-code", map[string]string{"phone": phone, "purpose": "register"})
	want(t, r, 200, "")
	if got := httpapitest.Data[map[string]int](t, r)["expiresIn"]; got != 300 {
		t.Fatalf("expiresIn = %d, want 300", got)
	}
	r = e.post("/api/auth/register", map[string]string{"phone": phone, "password": password, "realName": "张三",
		"smsCode": e.lastCode(phone), "email": "zs@example.com"})
	want(t, r, 201, "")
	reg := httpapitest.Data[identity.User](t, r)
	if reg.GlobalUserID == 0 || reg.Phone != phone || reg.RealName != "张三" {
		t.Fatalf("register = %+v", reg)
	}

	l := e.login(phone, password)
	if l.GlobalUserID != reg.GlobalUserID || l.RealName != "张三" || l.Token == "" || l.RefreshToken == "" || l.ExpiresIn != 900 {
		t.Fatalf("login = %+v", l)
	}
	if l.Tenants == nil || len(l.Tenants) != 0 {
		t.Fatalf("tenants = %#v, want an empty list", l.Tenants)
	}
	c, err := e.verifier.Verify(l.Token, auth.AudiencePlatform)
	if err != nil || c.SubjectID() != reg.GlobalUserID || c.Kind != auth.KindUser || c.TenantID != "" {
		t.Fatalf("token claims %+v, %v", c, err)
	}
	var stored string
	if err := e.db.QueryRow(`SELECT password_hash FROM global_users WHERE id = ?`, reg.GlobalUserID).Scan(&stored); err != nil || !strings.HasPrefix(stored, "$2") {
		t.Fatalf("stored password %q (%v), want a bcrypt hash", stored, err)
	}

	r = e.call("GET", "/api/auth/me", nil, l.Token)
	want(t, r, 200, "")
	if me := httpapitest.Data[identity.Me](t, r); me.GlobalUserID != reg.GlobalUserID || me.Email != "zs@example.com" || me.TenantCode != "" {
		t.Fatalf("me = %+v", me)
	}
	r = e.call("GET", "/api/auth/tenants", nil, l.Token)
	want(t, r, 200, "")
}

func TestSMSCodeErrors(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	want(t, e.post("/api/auth/sms-code", map[string]string{"phone": "12345", "purpose": "login"}), 400, "invalid_phone")
	want(t, e.post("/api/auth/sms-code", map[string]string{"phone": phone, "purpose": "admin"}), 400, "invalid_purpose")
	want(t, e.post("/api/auth/sms-code", `{"phone":"13800138000","purpose":"login","x":1}`), 400, "unknown_field")
	if n := e.count(`SELECT COUNT(*) FROM sms_codes`); n != 0 {
		t.Fatalf("bad requests stored %d codes", n)
	}
	want(t, e.post("/api/auth/sms-code", map[string]string{"phone": phone, "purpose": "login"}), 200, "")
	r := e.post("/api/auth/sms-code", map[string]string{"phone": phone, "purpose": "register"})
	want(t, r, 429, "sms_rate_limited")
	if r.Header.Get("Retry-After") == "" {
		t.Error("no Retry-After on a rate-limited code")
	}
}

func TestRegisterErrors(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	want(t, e.post("/api/auth/sms-code", map[string]string{"phone": phone, "purpose": "register"}), 200, "")
	code := e.lastCode(phone)
	wrong := "000000"
	if code == wrong {
		wrong = "111111"
	}
	valid := func(mod func(map[string]string)) map[string]string {
		m := map[string]string{"phone": phone, "password": password, "realName": "Li", "smsCode": code}
		mod(m)
		return m
	}
	tests := []struct {
		name, code, field string
		body              map[string]string
	}{
		{"InvalidPhone", "invalid_phone", "phone", valid(func(m map[string]string) { m["phone"] = "23800138000" })},
		{"ShortPassword", "weak_password", "password", valid(func(m map[string]string) { m["password"] = "abc123" })},
		{"LettersOnly", "weak_password", "password", valid(func(m map[string]string) { m["password"] = "abcdefghij" })},
		{"DigitsOnly", "weak_password", "password", valid(func(m map[string]string) { m["password"] = "1234567890" })},
		{"TooLong", "weak_password", "password", valid(func(m map[string]string) { m["password"] = strings.Repeat("a1", 40) })},
		{"NoRealName", "missing_field", "realName", valid(func(m map[string]string) { m["realName"] = " " })},
		{"BadEmail", "invalid_email", "email", valid(func(m map[string]string) { m["email"] = "not-an-email" })},
		{"MalformedCode", "invalid_sms_code", "smsCode", valid(func(m map[string]string) { m["smsCode"] = "12345" })},
		{"WrongCode", "invalid_sms_code", "smsCode", valid(func(m map[string]string) { m["smsCode"] = wrong })},
		{"CodeOfOtherPhone", "invalid_sms_code", "smsCode", valid(func(m map[string]string) { m["phone"] = "13900139000" })},
	}
	for _, tc := range tests {
		r := e.post("/api/auth/register", tc.body)
		if r.Status != 400 || r.Code() != tc.code || r.Error.Fields[tc.field] == "" {
			t.Errorf("%s: got %d %+v, want 400 %s naming %s", tc.name, r.Status, r.Error, tc.code, tc.field)
		}
	}
	if n := e.count(`SELECT COUNT(*) FROM global_users`); n != 0 {
		t.Fatalf("bad registrations created %d users", n)
	}
	// Every field is named at once.
	r := e.post("/api/auth/register", map[string]string{"phone": "1", "password": "x", "realName": "", "smsCode": code})
	if r.Code() != "invalid_phone" || len(r.Error.Fields) != 3 {
		t.Errorf("several bad fields: %+v, want invalid_phone naming phone, password, realName", r.Error)
	}
	// The code survived the bad requests (one wrong guess counted) and works.
	want(t, e.post("/api/auth/register", valid(func(map[string]string) {})), 201, "")

	t.Run("PhoneTaken", func(t *testing.T) {
		e.clock.Add(2 * time.Minute)
		want(t, e.post("/api/auth/sms-code", map[string]string{"phone": phone, "purpose": "register"}), 200, "")
		code := e.lastCode(phone)
		want(t, e.post("/api/auth/register", valid(func(m map[string]string) { m["smsCode"] = code })), 409, "phone_taken")
		if n := e.count(`SELECT COUNT(*) FROM sms_codes WHERE consumed_at IS NULL`); n != 1 {
			t.Errorf("phone_taken consumed the code")
		}
	})
}

func TestLoginErrors(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.addUser(phone, password)
	want(t, e.post("/api/auth/login", map[string]string{"phone": phone, "password": "wrong1234"}), 401, "invalid_credentials")
	want(t, e.post("/api/auth/login", map[string]string{"phone": "13900139000", "password": password}), 401, "invalid_credentials")
	want(t, e.post("/api/auth/login", map[string]string{"phone": "139", "password": password}), 400, "invalid_phone")
	want(t, e.post("/api/auth/login", map[string]string{"phone": phone}), 400, "missing_field")
	want(t, e.post("/api/auth/login", `{"phone":"13800138000","password":1}`), 400, "invalid_field_type")
	e.exec(`UPDATE global_users SET status = 'suspended'`)
	want(t, e.post("/api/auth/login", map[string]string{"phone": phone, "password": password}), 403, "account_disabled")
	want(t, e.post("/api/auth/login", map[string]string{"phone": phone, "password": "wrong1234"}), 401, "invalid_credentials")
}

func TestLoginHistory(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	id := e.addUser(phone, password)
	want(t, e.post("/api/auth/login", map[string]string{"phone": phone, "password": "wrong1234"}), 401, "invalid_credentials")
	want(t, e.post("/api/auth/login", map[string]string{"phone": "13900139000", "password": password}), 401, "invalid_credentials")
	e.login(phone, password)
	e.addAdmin("root", "adminpass1", "super_admin")
	want(t, e.post("/api/admin/auth/login", map[string]string{"username": "root", "password": "nope12345"}), 401, "invalid_credentials")

	rows, err := e.db.Query(`SELECT subject_type, COALESCE(subject_id, 0), identifier, success, COALESCE(failure_reason, ''),
		ip_address, user_agent, request_id FROM login_history ORDER BY id`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	type row struct {
		subject    string
		id         int64
		identifier string
		success    bool
		reason     string
	}
	var got []row
	for rows.Next() {
		var r row
		var ip, ua, rid string
		if err := rows.Scan(&r.subject, &r.id, &r.identifier, &r.success, &r.reason, &ip, &ua, &rid); err != nil {
			t.Fatal(err)
		}
		if ip != "203.0.113.7" || ua != "login-test/1.0" || len(rid) < 8 {
			t.Errorf("row %+v: ip %q ua %q request id %q", r, ip, ua, rid)
		}
		got = append(got, r)
	}
	wantRows := []row{
		{"user", id, phone, false, "bad_credentials"},
		{"user", 0, "13900139000", false, "unknown_identifier"},
		{"user", id, phone, true, ""},
		{"admin", 1, "root", false, "bad_credentials"},
	}
	if len(got) != len(wantRows) {
		t.Fatalf("login_history = %+v, want %+v", got, wantRows)
	}
	for i := range got {
		if got[i] != wantRows[i] {
			t.Errorf("row %d = %+v, want %+v", i, got[i], wantRows[i])
		}
	}
	if n := e.count(`SELECT COUNT(*) FROM unified_auth_logs WHERE event_type IN ('login', 'admin_login') AND ip_address = '203.0.113.7' AND user_agent = 'login-test/1.0'`); n != 4 {
		t.Errorf("unified_auth_logs has %d login rows, want 4", n)
	}
	if n := e.count(`SELECT COUNT(*) FROM unified_auth_logs WHERE details LIKE '%wrong1234%' OR details LIKE '%secret123%'`); n != 0 {
		t.Errorf("a password reached the auth log")
	}
}

func TestAdminLogin(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	id := e.addAdmin("ops", "adminpass1", "operator")
	r := e.post("/api/admin/auth/login", map[string]string{"username": "ops", "password": "adminpass1"})
	want(t, r, 200, "")
	s := httpapitest.Data[struct {
		Token, RefreshToken, Role string
		ExpiresIn                 int
	}](t, r)
	c, err := e.verifier.Verify(s.Token, auth.AudienceAdmin)
	if err != nil || c.Kind != auth.KindAdmin || c.SubjectID() != id || c.Role != "operator" || s.Role != "operator" || s.RefreshToken == "" {
		t.Fatalf("admin session %+v claims %+v %v", s, c, err)
	}
	// An admin token is not a user token.
	want(t, e.call("GET", "/api/auth/me", nil, s.Token), 401, "wrong_audience")
	// Its refresh token rotates into another admin token with the current role.
	e.exec(`UPDATE admin_users SET role = 'admin' WHERE id = ?`, id)
	r = e.post("/api/auth/refresh", map[string]string{"refreshToken": s.RefreshToken})
	want(t, r, 200, "")
	rs := httpapitest.Data[struct{ Token string }](t, r)
	if c, err := e.verifier.Verify(rs.Token, auth.AudienceAdmin); err != nil || c.Role != "admin" {
		t.Fatalf("refreshed admin token %+v %v", c, err)
	}

	want(t, e.post("/api/admin/auth/login", map[string]string{"username": "ops", "password": "wrong1234"}), 401, "invalid_credentials")
	want(t, e.post("/api/admin/auth/login", map[string]string{"username": "nobody", "password": "adminpass1"}), 401, "invalid_credentials")
	want(t, e.post("/api/admin/auth/login", map[string]string{"username": "", "password": "adminpass1"}), 400, "missing_field")
	for range 4 {
		want(t, e.post("/api/admin/auth/login", map[string]string{"username": "ops", "password": "wrong1234"}), 401, "invalid_credentials")
	}
	want(t, e.post("/api/admin/auth/login", map[string]string{"username": "ops", "password": "adminpass1"}), 423, "account_locked")
}

func TestJWKS(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	resp, err := e.srv.Client().Get(e.srv.URL + "/.well-known/jwks.json")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") ||
		!strings.Contains(resp.Header.Get("Cache-Control"), "max-age=") {
		t.Fatalf("status %d, headers %v", resp.StatusCode, resp.Header)
	}
	var set struct {
		Keys []struct{ Kty, Alg, Kid, Use, N, E string }
	}
	if err := json.Unmarshal(body, &set); err != nil {
		t.Fatalf("%s: %v", body, err)
	}
	if len(set.Keys) != 1 || set.Keys[0].Kid != e.signer.KeyID() || set.Keys[0].Alg != "RS256" || set.Keys[0].N == "" {
		t.Fatalf("jwks = %s", body)
	}
	if strings.Contains(string(body), `"d"`) {
		t.Fatal("the JWKS holds a private exponent")
	}
}

// TestTokenAttacks sends forged and misused tokens to /api/auth/me.
func TestTokenAttacks(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	id := e.addUser(phone, password)
	key := signingKey(t)
	claims := func() *auth.Claims {
		now := time.Now()
		return &auth.Claims{RegisteredClaims: jwt.RegisteredClaims{
			Issuer: auth.Issuer, Subject: "1", Audience: jwt.ClaimStrings{auth.AudiencePlatform},
			IssuedAt: jwt.NewNumericDate(now), ExpiresAt: jwt.NewNumericDate(now.Add(time.Hour)),
		}, Kind: auth.KindUser}
	}
	sign := func(m jwt.SigningMethod, key any) string {
		tok := jwt.NewWithClaims(m, claims())
		tok.Header["kid"] = e.signer.KeyID()
		s, err := tok.SignedString(key)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	other, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	unknownKid, _, _ := auth.NewSigner(other, nil).Issue(auth.KindUser, id, auth.AudiencePlatform, "", "", time.Hour)
	expired, _, _ := auth.NewSigner(key, func() time.Time { return time.Now().Add(-2 * time.Hour) }).
		Issue(auth.KindUser, id, auth.AudiencePlatform, "", "", 15*time.Minute)
	admin, _, _ := e.signer.Issue(auth.KindAdmin, id, auth.AudienceAdmin, "", "super_admin", time.Hour)
	good, _, _ := e.signer.Issue(auth.KindUser, id, auth.AudiencePlatform, "", "", time.Hour)
	// The key id of the real key on a token another key signed.
	stolenKid := func() string {
		tok := jwt.NewWithClaims(jwt.SigningMethodRS256, claims())
		tok.Header["kid"] = e.signer.KeyID()
		s, _ := tok.SignedString(other)
		return s
	}()

	tests := []struct {
		name, token, code string
	}{
		{"Missing", "", "missing_token"},
		{"Garbage", "not.a.jwt", "invalid_token"},
		{"AlgNone", sign(jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType), "invalid_token"},
		{"HS256WithPublicKey", sign(jwt.SigningMethodHS256, auth.EncodePublicKey(&key.PublicKey)), "invalid_token"},
		{"UnknownKid", unknownKid, "invalid_token"},
		{"KnownKidOtherKey", stolenKid, "invalid_token"},
		{"Expired", expired, "token_expired"},
		{"WrongAudience", admin, "wrong_audience"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := e.call("GET", "/api/auth/me", nil, tc.token)
			want(t, r, http.StatusUnauthorized, tc.code)
			if r.Header.Get("WWW-Authenticate") == "" {
				t.Error("no WWW-Authenticate header")
			}
		})
	}
	want(t, e.call("GET", "/api/auth/me", nil, good), 200, "")
}
