package tenancy_test

import (
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/unitenant/unitenant/shared/auth"
	"github.com/unitenant/unitenant/shared/httpapi"
	"github.com/unitenant/unitenant/shared/logging"
	"github.com/unitenant/unitenant/shared/tenancy"
)

var (
	signingKey, _ = rsa.GenerateKey(rand.Reader, 2048)
	otherKey, _   = rsa.GenerateKey(rand.Reader, 2048)
	signer        = auth.NewSigner(signingKey, nil)
	verifier      = auth.NewVerifier([]*rsa.PublicKey{&signingKey.PublicKey}, nil)
)

func tenantToken(t *testing.T, tid string) string {
	t.Helper()
	tok, _, err := signer.Issue(auth.KindUser, 7, auth.AudienceTenant, tid, "admin", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// app is a tenant API behind the real auth and tenancy middleware: it answers
// with the marker row of the database it was routed to.
func app(svc *tenancy.Service) http.Handler {
	read := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		conn, err := tenancy.Conn(r.Context())
		if err != nil {
			httpapi.Fail(w, r, nil, err)
			return
		}
		got, err := marker(r.Context(), conn)
		if err != nil {
			httpapi.Fail(w, r, nil, err)
			return
		}
		httpapi.OK(w, r, map[string]string{"marker": got})
	})
	return httpapi.Chain(read, auth.Require(verifier, logging.Discard(), auth.AudienceTenant, auth.AudiencePlatform), svc.Middleware)
}

type result struct {
	status int
	code   string
	marker string
	header http.Header
}

func call(h http.Handler, host, token string, header map[string]string) result {
	r := httptest.NewRequest("GET", "/api/app/marker", nil)
	r.Host = host
	if token != "" {
		r.Header.Set("Authorization", "Bearer "+token)
	}
	for k, v := range header {
		r.Header.Set(k, v)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	var env struct {
		Data  struct{ Marker string }
		Error struct{ Code string }
	}
	_ = json.Unmarshal(w.Body.Bytes(), &env)
	return result{w.Code, env.Error.Code, env.Data.Marker, w.Header()}
}

func TestAttacksAreRefusedBeforeAnyTenantDatabase(t *testing.T) {
	t.Parallel()
	f := newFleet(t)
	for code, status := range map[string]string{
		"k001": tenancy.StatusActive, "k002": tenancy.StatusActive, "k003": tenancy.StatusSuspended,
		"k004": tenancy.StatusDeleted, "k005": tenancy.StatusProvisioning,
	} {
		f.add(t, code, status)
	}
	svc := f.service(tenancy.RouterOptions{})
	defer svc.Router.Close()
	h := app(svc)
	k001 := tenantToken(t, "k001")
	platform, _, _ := signer.Issue(auth.KindUser, 7, auth.AudiencePlatform, "", "", time.Minute)
	admin, _, _ := signer.Issue(auth.KindAdmin, 1, auth.AudienceAdmin, "", "super_admin", time.Minute)
	expired, _, _ := auth.NewSigner(signingKey, func() time.Time { return time.Now().Add(-time.Hour) }).
		Issue(auth.KindUser, 7, auth.AudienceTenant, "k001", "admin", time.Minute)
	unknownKid, _, _ := auth.NewSigner(otherKey, nil).Issue(auth.KindUser, 7, auth.AudienceTenant, "k001", "admin", time.Minute)
	claims := jwt.MapClaims{"iss": auth.Issuer, "sub": "7", "aud": []string{"tenant"}, "typ": "user", "tid": "k001",
		"iat": time.Now().Unix(), "exp": time.Now().Add(time.Hour).Unix()}
	none, _ := jwt.NewWithClaims(jwt.SigningMethodNone, claims).SignedString(jwt.UnsafeAllowNoneSignatureType)
	hs := jwt.NewWithClaims(jwt.SigningMethodHS256, claims)
	hs.Header["kid"] = signer.KeyID()
	hsWithPublicKey, _ := hs.SignedString(auth.EncodePublicKey(&signingKey.PublicKey))
	tampered := k001[:strings.LastIndexByte(k001, '.')] + ".AAAA"

	attacks := []struct {
		name, host, token string
		header            map[string]string
		status            int
		code              string
	}{
		{"TokenOfK001OnHostK002", "k002.unitenant.test", k001, nil, 403, "tenant_forbidden"},
		{"TokenOfK001WithHeaderK002", "api.unitenant.test", k001, map[string]string{"X-Tenant-Code": "k002"}, 403, "tenant_forbidden"},
		{"HostK001HeaderK002", "k001.unitenant.test", k001, map[string]string{"X-Tenant-Code": "k002"}, 400, "tenant_mismatch"},
		{"SplitHeader", "api.unitenant.test", k001, map[string]string{"X-Tenant-Code": "k001,k002"}, 400, "tenant_mismatch"},
		{"PlatformToken", "k001.unitenant.test", platform, nil, 403, "tenant_forbidden"},
		{"NoToken", "k001.unitenant.test", "", nil, 401, "missing_token"},
		{"AlgNone", "k001.unitenant.test", none, nil, 401, "invalid_token"},
		{"HS256WithPublicKey", "k001.unitenant.test", hsWithPublicKey, nil, 401, "invalid_token"},
		{"UnknownKid", "k001.unitenant.test", unknownKid, nil, 401, "invalid_token"},
		{"Tampered", "k001.unitenant.test", tampered, nil, 401, "invalid_token"},
		{"Expired", "k001.unitenant.test", expired, nil, 401, "token_expired"},
		{"AdminAudience", "k001.unitenant.test", admin, nil, 401, "wrong_audience"},
		{"ForeignHost", "k001.evil.com", k001, nil, 404, "tenant_not_found"},
		{"BaseAsInfix", "k001.unitenant.test.evil.com", k001, nil, 404, "tenant_not_found"},
		{"DeeperSubdomain", "x.k001.unitenant.test", k001, nil, 404, "tenant_not_found"},
		{"Backtick", "k0`1.unitenant.test", k001, nil, 404, "tenant_not_found"},
		{"DotDot", "../k001", k001, nil, 404, "tenant_not_found"},
		{"DotDotHeader", "api.unitenant.test", k001, map[string]string{"X-Tenant-Code": "../k001"}, 404, "tenant_not_found"},
		{"LongHost", strings.Repeat("k", 300) + ".unitenant.test", k001, nil, 404, "tenant_not_found"},
		{"NonASCII", "k\u00f601.unitenant.test", k001, nil, 400, "invalid_host"},
		{"Suspended", "k003.unitenant.test", tenantToken(t, "k003"), nil, 403, "tenant_suspended"},
		{"Deleted", "k004.unitenant.test", tenantToken(t, "k004"), nil, 410, "tenant_deleted"},
		{"Provisioning", "k005.unitenant.test", tenantToken(t, "k005"), nil, 503, "tenant_provisioning"},
		{"Unknown", "k999.unitenant.test", tenantToken(t, "k999"), nil, 404, "tenant_not_found"},
	}
	for _, a := range attacks {
		got := call(h, a.host, a.token, a.header)
		if got.status != a.status || got.code != a.code {
			t.Errorf("%s: got %d %q, want %d %q", a.name, got.status, got.code, a.status, a.code)
		}
		if got.marker != "" {
			t.Errorf("%s: read tenant data %q", a.name, got.marker)
		}
		if a.code == "tenant_provisioning" && got.header.Get("Retry-After") == "" {
			t.Errorf("%s: no Retry-After", a.name)
		}
	}
	if open, _ := svc.Router.Stats(); open != 0 {
		t.Fatalf("the attacks opened %d tenant database connections; want none", open)
	}
	// The legitimate requests still work, by host, by header and by token alone.
	for _, ok := range []struct{ host, header string }{
		{"k001.unitenant.test", ""}, {"K001.UNITENANT.TEST", ""}, {"api.unitenant.test", "k001"}, {"localhost", ""},
	} {
		hdr := map[string]string{}
		if ok.header != "" {
			hdr["X-Tenant-Code"] = ok.header
		}
		if got := call(h, ok.host, k001, hdr); got.status != 200 || got.marker != "k001" {
			t.Errorf("legitimate %+v: %+v", ok, got)
		}
	}
}

func TestCustomDomains(t *testing.T) {
	t.Parallel()
	f := newFleet(t)
	id := f.add(t, "k001", tenancy.StatusActive)
	f.add(t, "k002", tenancy.StatusActive)
	if _, err := f.sys.Exec("INSERT INTO tenant_domains (tenant_id, domain) VALUES (?, 'school.example.com')", id); err != nil {
		t.Fatal(err)
	}
	svc := f.service(tenancy.RouterOptions{})
	defer svc.Router.Close()
	h := app(svc)
	if got := call(h, "School.Example.com:443", tenantToken(t, "k001"), nil); got.status != 200 || got.marker != "k001" {
		t.Fatalf("custom domain: %+v", got)
	}
	if got := call(h, "school.example.com", tenantToken(t, "k002"), nil); got.status != 403 || got.code != "tenant_forbidden" {
		t.Fatalf("k002 token on k001's domain: %+v", got)
	}
}

func TestRegistryCachesBrieflyIncludingMisses(t *testing.T) {
	t.Parallel()
	f := newFleet(t)
	f.add(t, "k001", tenancy.StatusActive)
	now := time.Now()
	clock := func() time.Time { return now }
	reg := tenancy.NewRegistry(f.sys, tenancy.RegistryOptions{TTL: 10 * time.Second, NegativeTTL: 5 * time.Second, Now: clock})
	ctx := t.Context()
	if tn, err := reg.ByCode(ctx, "k001"); err != nil || tenancy.Gate(tn) != nil {
		t.Fatalf("k001: %v", err)
	}
	if _, err := reg.ByCode(ctx, "k777"); err != tenancy.ErrNotFound {
		t.Fatalf("k777: %v", err)
	}
	// Suspend k001 and create k777 behind the cache's back.
	if _, err := f.sys.Exec("UPDATE tenants SET status = 'suspended' WHERE tenant_code = 'k001'"); err != nil {
		t.Fatal(err)
	}
	f.add(t, "k777", tenancy.StatusActive)
	if tn, _ := reg.ByCode(ctx, "k001"); tn.Status != tenancy.StatusActive {
		t.Fatal("the cache did not serve k001 within its TTL")
	}
	now = now.Add(6 * time.Second) // past the negative TTL only
	if _, err := reg.ByCode(ctx, "k777"); err != nil {
		t.Fatalf("k777 after the negative TTL: %v", err)
	}
	if tn, _ := reg.ByCode(ctx, "k001"); tn.Status != tenancy.StatusActive {
		t.Fatal("k001 refreshed before its TTL")
	}
	now = now.Add(5 * time.Second) // past the TTL: the suspension applies
	if tn, _ := reg.ByCode(ctx, "k001"); tenancy.Gate(tn) != tenancy.ErrSuspended {
		t.Fatalf("k001 after the TTL: status %s", tn.Status)
	}
}

// TestInvalidateIsNotUndoneByAReadInFlight: the instance that changes a
// tenant invalidates it and must then read the change, even while other
// requests keep reading the tenant (their entries expiring at once, so one
// read or another is always in flight): a read begun before the change must
// not answer a lookup made after Invalidate, as it would by sharing its
// flight.
func TestInvalidateIsNotUndoneByAReadInFlight(t *testing.T) {
	t.Parallel()
	f := newFleet(t)
	f.add(t, "k001", tenancy.StatusActive)
	reg := tenancy.NewRegistry(f.sys, tenancy.RegistryOptions{TTL: time.Nanosecond, NegativeTTL: time.Nanosecond})
	ctx := t.Context()
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range 4 { // other requests of the instance, reading all along
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
					_, _ = reg.ByCode(ctx, "k001")
				}
			}
		}()
	}
	defer func() { close(stop); wg.Wait() }()
	statuses := []string{tenancy.StatusSuspended, tenancy.StatusActive}
	for i := range 1000 {
		want := statuses[i%2]
		if _, err := f.sys.Exec("UPDATE tenants SET status = ? WHERE tenant_code = 'k001'", want); err != nil {
			t.Fatal(err)
		}
		reg.Invalidate("k001")
		tn, err := reg.ByCode(ctx, "k001")
		if err != nil || tn.Status != want {
			t.Fatalf("change %d: read %+v (%v) after Invalidate, want status %s", i, tn, err, want)
		}
	}
}

// TestSubdomainBelongsToItsOwner: a tenant's subdomain is its own choice, not
// necessarily its code (tenants.subdomain; login and tenant-create advertise
// <subdomain>.<base>). A host must reach the tenant that owns its label,
// never the tenant whose code happens to spell it.
func TestSubdomainBelongsToItsOwner(t *testing.T) {
	t.Parallel()
	f := newFleet(t)
	f.add(t, "k001", tenancy.StatusActive)
	f.add(t, "k002", tenancy.StatusActive)
	// k001 chose "sunshine"; then k002 registered the free label "k001".
	for _, q := range []string{
		"UPDATE tenants SET subdomain = 'sunshine' WHERE tenant_code = 'k001'",
		"UPDATE tenants SET subdomain = 'k001' WHERE tenant_code = 'k002'",
	} {
		if _, err := f.sys.Exec(q); err != nil {
			t.Fatal(err)
		}
	}
	svc := f.service(tenancy.RouterOptions{})
	defer svc.Router.Close()
	h := app(svc)
	k001, k002 := tenantToken(t, "k001"), tenantToken(t, "k002")
	for _, c := range []struct {
		name, host, token, header string
		status                    int
		code, marker              string
	}{
		{"OwnSubdomain", "sunshine.unitenant.test", k001, "", 200, "", "k001"},
		{"LabelOwnedByK002", "k001.unitenant.test", k002, "", 200, "", "k002"},
		{"K001TokenOnK002sHost", "k001.unitenant.test", k001, "", 403, "tenant_forbidden", ""},
		{"K001HeaderOnK002sHost", "k001.unitenant.test", k001, "k001", 400, "tenant_mismatch", ""},
		{"K002TokenOnK001sHost", "sunshine.unitenant.test", k002, "", 403, "tenant_forbidden", ""},
		{"LabelNobodyOwns", "k002.unitenant.test", k002, "", 404, "tenant_not_found", ""},
	} {
		hdr := map[string]string{}
		if c.header != "" {
			hdr["X-Tenant-Code"] = c.header
		}
		got := call(h, c.host, c.token, hdr)
		if got.status != c.status || got.code != c.code || got.marker != c.marker {
			t.Errorf("%s: got %d %q marker %q, want %d %q marker %q", c.name, got.status, got.code, got.marker, c.status, c.code, c.marker)
		}
	}
}
