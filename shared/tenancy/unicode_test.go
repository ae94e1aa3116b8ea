package tenancy_test

import (
	"errors"
	"testing"

	"github.com/unitenant/unitenant/shared/fault"
	"github.com/unitenant/unitenant/shared/serverless"
	"github.com/unitenant/unitenant/shared/tenancy"
)

// TestUnicodeFoldsNeverNameATenant: a host or X-Tenant-Code that Unicode
// lower-casing would turn into a tenant's name (the Kelvin sign becomes
// "k", U+0130 "i") is refused with a clear error, even when every source
// would then agree; it reaches no tenant and opens no tenant connection.
func TestUnicodeFoldsNeverNameATenant(t *testing.T) {
	t.Parallel()
	f := newFleet(t)
	f.add(t, "k001", tenancy.StatusActive)
	f.add(t, "ik01", tenancy.StatusActive)
	svc := f.service(tenancy.RouterOptions{})
	defer svc.Router.Close()
	h := app(svc)
	k001, ik01 := tenantToken(t, "k001"), tenantToken(t, "ik01")
	for _, c := range []struct {
		name, host, token, header string
		status                    int
		code                      string
	}{
		{"KelvinHost", "\u212a001.unitenant.test", k001, "", 400, "invalid_host"},
		{"KelvinHostWithPort", "\u212a001.unitenant.test:443", k001, "", 400, "invalid_host"},
		{"KelvinHostTrailingDot", "\u212a001.unitenant.test.", k001, "", 400, "invalid_host"},
		{"DottedCapitalIHost", "\u0130K01.unitenant.test", ik01, "", 400, "invalid_host"},
		{"FullwidthHost", "\uff4b001.unitenant.test", k001, "", 400, "invalid_host"},
		{"FullwidthBaseDomain", "k001.\uff55nitenant.test", k001, "", 400, "invalid_host"},
		{"SharpSHost", "k001.unitenant.te\u00dft", k001, "", 400, "invalid_host"},
		{"KelvinHeader", "api.unitenant.test", k001, "\u212a001", 400, "invalid_tenant_code"},
		{"KelvinHeaderOnItsHost", "k001.unitenant.test", k001, "\u212a001", 400, "invalid_tenant_code"},
		{"KelvinInSplitHeader", "api.unitenant.test", k001, "k001,\u212a001", 400, "invalid_tenant_code"},
		{"DottedCapitalIHeader", "api.unitenant.test", ik01, "\u0130k01", 400, "invalid_tenant_code"},
		{"FullwidthHeader", "api.unitenant.test", k001, "\uff4b001", 400, "invalid_tenant_code"},
		{"NoBreakSpaceHeader", "api.unitenant.test", k001, "k001\u00a0", 400, "invalid_tenant_code"},
	} {
		hdr := map[string]string{}
		if c.header != "" {
			hdr["X-Tenant-Code"] = c.header
		}
		got := call(h, c.host, c.token, hdr)
		if got.status != c.status || got.code != c.code || got.marker != "" {
			t.Errorf("%s: got %d %q marker %q, want %d %q and no tenant", c.name, got.status, got.code, got.marker, c.status, c.code)
		}
	}
	if open, _ := svc.Router.Stats(); open != 0 {
		t.Fatalf("refused requests opened %d tenant database connections", open)
	}
	// ASCII case folding is still fine.
	if got := call(h, "K001.UNITENANT.TEST", k001, map[string]string{"X-Tenant-Code": " K001 "}); got.status != 200 || got.marker != "k001" {
		t.Fatalf("ASCII upper case: %+v", got)
	}
}

// TestRefusedRequestsFillNoCache: a request refused for its host or header
// leaves nothing in the registry's cache. Were its host looked up (as the
// fold of a name, or before the header was checked), the miss would be
// cached and the tenant created just after would be refused as unknown.
func TestRefusedRequestsFillNoCache(t *testing.T) {
	t.Parallel()
	f := newFleet(t)
	svc := f.service(tenancy.RouterOptions{})
	defer svc.Router.Close()
	h := app(svc)
	k777, k888 := tenantToken(t, "k777"), tenantToken(t, "k888")
	if got := call(h, "\u212a777.unitenant.test", k777, nil); got.status != 400 {
		t.Errorf("Kelvin host: %+v", got)
	}
	if got := call(h, "k888.unitenant.test", k888, map[string]string{"X-Tenant-Code": "\u212a888"}); got.status != 400 {
		t.Errorf("Kelvin header: %+v", got)
	}
	if got := call(h, "k888.unitenant.test", k888, map[string]string{"X-Tenant-Code": "k8`8"}); got.status != 404 || got.code != "tenant_not_found" {
		t.Errorf("malformed header: %+v", got)
	}
	f.add(t, "k777", tenancy.StatusActive)
	f.add(t, "k888", tenancy.StatusActive)
	for _, c := range []struct{ host, token, want string }{
		{"k777.unitenant.test", k777, "k777"},
		{"k888.unitenant.test", k888, "k888"},
	} {
		if got := call(h, c.host, c.token, nil); got.status != 200 || got.marker != c.want {
			t.Errorf("%s after the refused requests: %+v (a refused request cached a miss)", c.host, got)
		}
	}
}

// TestCustomDomainLookupRefusesWhatTheCollationFolds: tenant_domains.domain
// is utf8mb4_unicode_ci, which finds "school.example.com" for "ſchool",
// fullwidth letters, "ß" for "ss", upper case and trailing spaces. The
// registry must only ever look a valid ASCII host name up.
func TestCustomDomainLookupRefusesWhatTheCollationFolds(t *testing.T) {
	t.Parallel()
	f := newFleet(t)
	id := f.add(t, "k001", tenancy.StatusActive)
	for _, d := range []string{"school.example.com", "strasse.example.com"} {
		if _, err := f.sys.Exec("INSERT INTO tenant_domains (tenant_id, domain) VALUES (?, ?)", id, d); err != nil {
			t.Fatal(err)
		}
	}
	svc := f.service(tenancy.RouterOptions{})
	defer svc.Router.Close()
	ctx := t.Context()
	for _, host := range []string{
		"\u017fchool.example.com", // long s
		"\uff53chool.example.com", // fullwidth s
		"stra\u00dfe.example.com", // ß = ss
		"SCHOOL.example.com",
		"school.example.com ",
		"school.example.com\u00a0",
	} {
		code, err := svc.Registry.CodeForDomain(ctx, host)
		if code != "" || err == nil {
			t.Errorf("CodeForDomain(%q) = %q, %v; want it refused", host, code, err)
		}
		if fault.CodeOf(err) == "internal" {
			t.Errorf("CodeForDomain(%q): %v, want a client error", host, err)
		}
	}
	if _, err := svc.Registry.CodeForDomain(ctx, "\u017fchool.example.com"); !errors.Is(err, serverless.ErrHostNotASCII) {
		t.Errorf("long s: %v, want ErrHostNotASCII", err)
	}
	if code, err := svc.Registry.CodeForDomain(ctx, "school.example.com"); code != "k001" || err != nil {
		t.Fatalf("school.example.com: %q, %v", code, err)
	}
	// Through the middleware too.
	h := app(svc)
	if got := call(h, "\u017fchool.example.com", tenantToken(t, "k001"), nil); got.status != 400 || got.code != "invalid_host" {
		t.Errorf("long-s host: %+v", got)
	}
}
