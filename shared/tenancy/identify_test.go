package tenancy

import (
	"strings"
	"testing"

	"github.com/unitenant/unitenant/shared/fault"
	"github.com/unitenant/unitenant/shared/serverless"
)

var testHosts = ParseHosts("unitenant.test", "", DefaultPlatformHosts)

func TestClassifyHosts(t *testing.T) {
	t.Parallel()
	tests := []classifyCase{
		{"k001.unitenant.test", hostTenant, "k001", ""},
		{"unitenant.test", hostPlatform, "", ""},
		{"www.unitenant.test", hostPlatform, "", ""},
		{"api.unitenant.test", hostPlatform, "", ""},
		{"admin.unitenant.test", hostPlatform, "", ""},
		{"localhost", hostPlatform, "", ""},
		{"127.0.0.1", hostPlatform, "", ""},
		{"::1", hostPlatform, "", ""},
		{"abc123.execute-api.us-east-1.amazonaws.com", hostPlatform, "", ""},
		{"school.example.com", hostCustom, "school.example.com", ""},
		// Attacks: none of these may name k001.
		{"k001.evil.com", hostCustom, "k001.evil.com", ""}, // only a registered custom domain could make it a tenant
		{"k001.unitenant.test.evil.com", hostCustom, "k001.unitenant.test.evil.com", ""},
		{"a.k001.unitenant.test", 0, "", "tenant_not_found"},
		{"k0`1.unitenant.test", 0, "", "tenant_not_found"},
		{"..%2fk001.unitenant.test", 0, "", "tenant_not_found"},
		{"../k001", 0, "", "tenant_not_found"},
		{strings.Repeat("k", 300) + ".unitenant.test", 0, "", "tenant_not_found"},
		{strings.Repeat("k", 300), 0, "", "tenant_not_found"},
		{"k\u00f61.unitenant.test", 0, "", "invalid_host"},
		{"\u043a001.unitenant.test", 0, "", "invalid_host"}, // Cyrillic k
		{"\u212a001.unitenant.test", 0, "", "invalid_host"}, // Kelvin sign, were it not refused before
		{"-k001.unitenant.test", 0, "", "tenant_not_found"},
	}
	checkClassify(t, testHosts, tests)
}

func TestDecide(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		src      Sources
		wantCode string
		wantErr  string
	}{
		{"HostOnly", Sources{HostCode: "k001"}, "k001", ""},
		{"HeaderOnly", Sources{Header: []string{"k001"}}, "k001", ""},
		{"HeaderCaseFolded", Sources{Header: []string{" K001 "}}, "k001", ""},
		{"TokenOnly", Sources{HasToken: true, TokenTenant: "k001"}, "k001", ""},
		{"AllAgree", Sources{HostCode: "k001", Header: []string{"k001"}, HasToken: true, TokenTenant: "k001"}, "k001", ""},
		{"HostVsHeader", Sources{HostCode: "k001", Header: []string{"k002"}}, "", "tenant_mismatch"},
		{"SplitHeaderValues", Sources{Header: []string{"k001", "k002"}}, "", "tenant_mismatch"},
		{"TokenForAnotherHost", Sources{HostCode: "k002", HasToken: true, TokenTenant: "k001"}, "", "tenant_forbidden"},
		{"TokenForAnotherHeader", Sources{Header: []string{"k002"}, HasToken: true, TokenTenant: "k001"}, "", "tenant_forbidden"},
		{"PlatformToken", Sources{HostCode: "k001", HasToken: true}, "", "tenant_forbidden"},
		{"PlatformTokenNoTenant", Sources{HasToken: true}, "", "tenant_forbidden"},
		{"Nothing", Sources{}, "", "tenant_required"},
		{"BadHeader", Sources{Header: []string{"k0`1"}}, "", "tenant_not_found"},
		{"DotDotHeader", Sources{Header: []string{"../k001"}}, "", "tenant_not_found"},
		{"BadTokenTenant", Sources{HasToken: true, TokenTenant: "K0 1"}, "", "tenant_not_found"},
		// Unicode case mapping must never make a code: refused before it.
		{"HeaderKelvinSign", Sources{Header: []string{"\u212a001"}}, "", "invalid_tenant_code"},
		{"HeaderKelvinSignAgreeing", Sources{HostCode: "k001", Header: []string{"\u212a001"}, HasToken: true, TokenTenant: "k001"}, "", "invalid_tenant_code"},
		{"HeaderDottedCapitalI", Sources{Header: []string{"\u0130k01"}}, "", "invalid_tenant_code"},
		{"HeaderFullwidth", Sources{Header: []string{"\uff4b001"}}, "", "invalid_tenant_code"},
		{"HeaderSharpS", Sources{Header: []string{"stra\u00dfe"}}, "", "invalid_tenant_code"},
		{"HeaderNoBreakSpace", Sources{Header: []string{"k001\u00a0"}}, "", "invalid_tenant_code"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, err := Decide(tc.src)
			if fault.CodeOf(err) != tc.wantErr || code != tc.wantCode {
				t.Fatalf("Decide = %q, %v; want %q, %s", code, err, tc.wantCode, tc.wantErr)
			}
		})
	}
}

// FuzzIdentify checks the promise on any host, header and token claim: when a
// tenant is identified, every source that named one named that one, and a
// token always names it. `make test` runs the seed corpus; `go test -fuzz
// FuzzIdentify ./shared/tenancy` explores further.
func FuzzIdentify(f *testing.F) {
	for _, s := range [][4]string{
		{"k001.unitenant.test", "", "k001", "1"},
		{"k001.unitenant.test", "k002", "", "0"},
		{"k002.unitenant.test", "", "k001", "1"},
		{"k001.evil.com", "", "k002", "1"},
		{"k001.unitenant.test.evil.com", "k001", "k001", "1"},
		{"localhost", "k001,k002", "", "0"},
		{"a.k001.unitenant.test", "", "k001", "1"},
		{"", "K001", "k001", "1"},
		{"api.unitenant.test", "", "", "1"},
		{"k0`1.unitenant.test", "k0`1", "k0`1", "1"},
		{"../k001", "../k001", "", "0"},
		{strings.Repeat("x", 300), "", "", "0"},
		{"\u212a001.unitenant.test", "", "k001", "1"},
		{"api.unitenant.test", "\u212a001", "k001", "1"},
		{"\u0130k01.unitenant.test", "\uff4b001", "", "0"},
	} {
		f.Add(s[0], s[1], s[2], s[3] == "1")
	}
	f.Fuzz(func(t *testing.T, host, header, tid string, hasToken bool) {
		src := Sources{HasToken: hasToken, TokenTenant: tid}
		if header != "" {
			src.Header = strings.Split(header, ",") // as the Lambda adapter splits it
		}
		normal, err := serverless.NormalizeHost(host) // as identify reads it
		if err != nil {
			return // refused before any lookup
		}
		kind, v, err := testHosts.classify(normal)
		if err != nil {
			return // refused before any lookup
		}
		if kind == hostTenant {
			src.HostCode = v
		}
		if kind == hostCustom {
			// A custom domain resolves to whatever tenant registered it: model
			// it as resolving to the first label, the worst case for us.
			src.HostCode, _, _ = strings.Cut(v, ".")
			if !ValidCode(src.HostCode) {
				return
			}
		}
		code, err := Decide(src)
		if err != nil {
			if fault.CodeOf(err) == "internal" {
				t.Fatalf("Decide returned a non-fault error: %v", err)
			}
			return
		}
		if !ValidCode(code) {
			t.Fatalf("identified invalid code %q", code)
		}
		if src.HostCode != "" && code != src.HostCode {
			t.Fatalf("host named %q but %q was identified", src.HostCode, code)
		}
		for _, h := range src.Header {
			if !isASCII(h) {
				t.Fatalf("identified %q from a header that is not ASCII: %q", code, h)
			}
			if strings.ToLower(strings.TrimSpace(h)) != code {
				t.Fatalf("header named %q but %q was identified", h, code)
			}
		}
		if hasToken && tid != code {
			t.Fatalf("token for %q reached %q", tid, code)
		}
	})
}

// TestPlatformSuffixNeverSwallowsTenantHosts: an operator lists its own
// parent domain as platform (".example.com": api, console...) while tenants
// live under schools.example.com. A tenant's host must still name its
// tenant, or a token of k002 would be served on k001's host, the host
// silently ignored instead of refused.
func TestPlatformSuffixNeverSwallowsTenantHosts(t *testing.T) {
	t.Parallel()
	h := ParseHosts("schools.example.com", "", ".example.com,console.schools.example.com,.ops.schools.example.com")
	tests := []classifyCase{
		{"k001.schools.example.com", hostTenant, "k001", ""},
		{"a.k001.schools.example.com", 0, "", "tenant_not_found"},
		{"schools.example.com", hostPlatform, "", ""},
		{"api.example.com", hostPlatform, "", ""},
		{"www.schools.example.com", hostPlatform, "", ""},     // reserved
		{"console.schools.example.com", hostPlatform, "", ""}, // listed exactly
		{"x.ops.schools.example.com", hostPlatform, "", ""},   // a suffix inside the base domain
		{"k001.schools.example.com.evil.com", hostCustom, "k001.schools.example.com.evil.com", ""},
	}
	checkClassify(t, h, tests)
	// Through Decide: k002's token on k001's host is refused.
	_, code, _ := h.classify("k001.schools.example.com")
	if _, err := Decide(Sources{HostCode: code, HasToken: true, TokenTenant: "k002"}); fault.CodeOf(err) != "tenant_forbidden" {
		t.Errorf("k002 token on k001's host: %v, want tenant_forbidden", err)
	}
}

// classifyCase is a host and how Hosts.classify must read it: a kind and
// code, or the error code it is refused with.
type classifyCase struct {
	host     string
	wantKind hostKind
	wantCode string
	wantErr  string
}

func checkClassify(t *testing.T, h Hosts, tests []classifyCase) {
	t.Helper()
	for _, tc := range tests {
		kind, code, err := h.classify(tc.host)
		if tc.wantErr != "" {
			if fault.CodeOf(err) != tc.wantErr {
				t.Errorf("classify(%q): err %v, want %s", tc.host, err, tc.wantErr)
			}
			continue
		}
		if err != nil || kind != tc.wantKind || code != tc.wantCode {
			t.Errorf("classify(%q) = %v %q %v, want %v %q", tc.host, kind, code, err, tc.wantKind, tc.wantCode)
		}
	}
}
