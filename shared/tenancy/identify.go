// Package tenancy is the tenant-routing package every tenant-facing function
// uses: it identifies the tenant of a request (host, header, token), gates it
// on its status, and routes it to the tenant's database.
//
// Its one promise: a request is never routed to a tenant it was not
// identified for. Sources that disagree are refused, never guessed between; a
// token scoped to tenant A never reaches tenant B; malformed input is refused
// before any database is touched.
package tenancy

import (
	"net"
	"regexp"
	"strings"
	"unicode/utf8"

	"github.com/unitenant/unitenant/shared/fault"
	"github.com/unitenant/unitenant/shared/serverless"
)

// codePattern is what a tenant code may look like anywhere it is read from a
// request: a lower-case DNS label of at most 50 characters.
var codePattern = regexp.MustCompile(`^[a-z0-9](?:[a-z0-9-]{0,48}[a-z0-9])?$`)

// ValidCode reports whether s can be a tenant code.
func ValidCode(s string) bool { return codePattern.MatchString(s) }

// Errors of identification and gating.
var (
	ErrMismatch = fault.New(fault.Invalid, "tenant_mismatch",
		"the request names two different tenants (host, X-Tenant-Code or token); send one")
	ErrForbidden = fault.New(fault.Forbidden, "tenant_forbidden",
		"the token is not scoped to this tenant; switch tenant first")
	ErrRequired = fault.New(fault.Invalid, "tenant_required",
		"no tenant in the request: use the tenant's domain, X-Tenant-Code, or a tenant-scoped token")
	ErrNotFound     = fault.New(fault.NotFound, "tenant_not_found", "no such tenant")
	ErrUnknownHost  = fault.New(fault.NotFound, "tenant_not_found", "this host serves no tenant")
	ErrInvalidCode  = fault.New(fault.NotFound, "tenant_not_found", "no such tenant (malformed tenant code)")
	ErrSuspended    = fault.New(fault.Forbidden, "tenant_suspended", "the tenant is suspended")
	ErrDeleted      = fault.New(fault.Gone, "tenant_deleted", "the tenant has been deleted")
	errProvisioning = fault.New(fault.Unavailable, "tenant_provisioning", "the tenant is being set up; retry shortly")
)

// ErrHeaderNotASCII refuses an X-Tenant-Code that is not ASCII before it
// is lower-cased: Unicode case mapping would turn the Kelvin sign into "k"
// (and U+0130 into "i"), naming a tenant the client never spelled.
var ErrHeaderNotASCII = fault.New(fault.Invalid, "invalid_tenant_code",
	"X-Tenant-Code must be ASCII: a tenant code is lower-case letters, digits and hyphens")

// Hosts says which host names are the platform's own and where tenants live.
type Hosts struct {
	// BaseDomain: tenant k001 is served at k001.<BaseDomain>.
	BaseDomain string
	// Reserved labels under BaseDomain that are never tenants (www, api...).
	Reserved map[string]bool
	// Platform hosts serve no tenant (the control plane, the gateways' own
	// domains); an entry starting with "." matches any host ending with it.
	Platform []string
}

// DefaultReserved are the labels under the base domain that are never tenants.
var DefaultReserved = []string{"www", "api", "admin", "static", "cdn", "app", "console", "auth", "mail"}

// hostKind is what a host says about the tenant.
type hostKind int

const (
	hostPlatform hostKind = iota // serves no tenant: identification falls to header and token
	hostTenant                   // a label under the base domain: the tenant owning that subdomain
	hostCustom                   // might be a tenant's registered custom domain
)

// classify reads a host (already lower-cased, port stripped by
// serverless.RequestHost). Hosts under the base domain must be exactly one
// valid, non-reserved label deep; any other host may be a custom domain. A
// host that is not ASCII is refused, whoever forgot to.
//
// A platform suffix that covers the whole base domain (".example.com" for
// tenants under schools.example.com) does not make tenants' hosts platform
// ones: that would drop the tenant the host names instead of checking the
// other sources against it.
func (h Hosts) classify(host string) (hostKind, string, error) {
	if !isASCII(host) {
		return 0, "", serverless.ErrHostNotASCII
	}
	if host == "" || net.ParseIP(strings.Trim(host, "[]")) != nil {
		return hostPlatform, "", nil
	}
	base := h.BaseDomain
	label, underBase := strings.CutSuffix(host, "."+base)
	for _, p := range h.Platform {
		if host == p || strings.HasPrefix(p, ".") && strings.HasSuffix(host, p) &&
			!(underBase && strings.HasSuffix("."+base, p)) {
			return hostPlatform, "", nil
		}
	}
	if host == base {
		return hostPlatform, "", nil
	}
	if underBase {
		if h.Reserved[label] {
			return hostPlatform, "", nil
		}
		if !ValidCode(label) { // deeper names (a.k001.base), odd characters, too long
			return 0, "", ErrInvalidCode
		}
		return hostTenant, label, nil
	}
	if len(host) > 253 || !hostnamePattern.MatchString(host) {
		return 0, "", ErrUnknownHost
	}
	return hostCustom, host, nil
}

// ValidHostname reports whether s is a lower-case host name of two or more
// labels (what a custom domain may be).
func ValidHostname(s string) bool { return len(s) <= 253 && hostnamePattern.MatchString(s) }

var hostnamePattern = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)+$`)

// Sources are the places a request can name its tenant.
type Sources struct {
	HostCode    string   // the tenant owning the host (its subdomain or custom domain)
	Header      []string // X-Tenant-Code values (the Lambda adapter splits on commas)
	HasToken    bool     // a verified token came with the request
	TokenTenant string   // its tid, "" for a platform token
}

// Decide returns the one tenant code the sources agree on. It is pure, so it
// can be fuzzed: no source can pull the result away from another.
func Decide(s Sources) (string, error) {
	code := s.HostCode
	for _, h := range s.Header {
		h, err := headerCode(h)
		if err != nil {
			return "", err
		}
		if code != "" && h != code {
			return "", ErrMismatch
		}
		code = h
	}
	if s.HasToken {
		if s.TokenTenant == "" {
			return "", ErrForbidden // a platform token never reaches a tenant's data
		}
		if code != "" && s.TokenTenant != code {
			return "", ErrForbidden
		}
		code = s.TokenTenant
	}
	if code == "" {
		return "", ErrRequired
	}
	if !ValidCode(code) {
		return "", ErrInvalidCode
	}
	return code, nil
}

// headerCode reads one X-Tenant-Code value: ASCII (checked before any case
// mapping), trimmed, lower-cased, a valid code.
func headerCode(v string) (string, error) {
	if !isASCII(v) {
		return "", ErrHeaderNotASCII
	}
	v = strings.ToLower(strings.TrimSpace(v)) // ASCII in, ASCII mappings only
	if !ValidCode(v) {
		return "", ErrInvalidCode
	}
	return v, nil
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return false
		}
	}
	return true
}
