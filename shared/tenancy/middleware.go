package tenancy

import (
	"context"
	"database/sql"
	"errors"
	"log/slog"
	"net/http"
	"strings"
	"sync"

	"github.com/unitenant/unitenant/shared/auth"
	"github.com/unitenant/unitenant/shared/httpapi"
	"github.com/unitenant/unitenant/shared/logging"
	"github.com/unitenant/unitenant/shared/serverless"
)

// Service is tenancy as a function uses it: the registry, the router, and the
// host rules.
type Service struct {
	Registry *Registry
	Router   *Router
	Hosts    Hosts
	Log      *slog.Logger
}

// Identify finds the tenant r is for, checks it against the verified token
// (if the request carries one; see auth.Require) and gates it on its status.
// It touches no tenant database.
func (s *Service) Identify(r *http.Request) (*Tenant, error) {
	if c, ok := auth.FromContext(r.Context()); ok {
		return s.IdentifyAs(r, c.TenantID)
	}
	return s.identify(r, Sources{})
}

// IdentifyAs is Identify for a request whose credential (a token's tid, or
// the tenant an API key belongs to) names credTenant ("" for a credential
// that names none, which no tenant accepts): the host and X-Tenant-Code must
// agree with it.
func (s *Service) IdentifyAs(r *http.Request, credTenant string) (*Tenant, error) {
	return s.identify(r, Sources{HasToken: true, TokenTenant: credTenant})
}

func (s *Service) identify(r *http.Request, src Sources) (*Tenant, error) {
	ctx := r.Context()
	// Everything the request says is read and checked before the first
	// lookup: a refused request touches no database and fills no cache.
	host, err := serverless.RequestHost(r)
	if err != nil {
		return nil, err
	}
	kind, v, err := s.Hosts.classify(host)
	if err != nil {
		return nil, err
	}
	// The Lambda adapter splits header values on commas and net/http does
	// not: split here too, so "k001,k002" is two values on every platform.
	for _, hv := range r.Header.Values("X-Tenant-Code") {
		for _, c := range strings.Split(hv, ",") {
			if _, err := headerCode(c); err != nil {
				return nil, err
			}
			src.Header = append(src.Header, c)
		}
	}
	switch kind {
	case hostTenant:
		// The label is a subdomain, which its tenant chose: it names the
		// tenant that owns it, not the tenant whose code it spells.
		code, err := s.Registry.CodeForSubdomain(ctx, v)
		if err != nil {
			return nil, err
		}
		if code == "" {
			return nil, ErrUnknownHost
		}
		src.HostCode = code
	case hostCustom:
		code, err := s.Registry.CodeForDomain(ctx, v)
		if err != nil {
			return nil, err
		}
		if code == "" {
			return nil, ErrUnknownHost
		}
		src.HostCode = code
	}
	code, err := Decide(src)
	if err != nil {
		return nil, err
	}
	t, err := s.Registry.ByCode(ctx, code)
	if err != nil {
		return nil, err
	}
	if err := Gate(t); err != nil {
		return nil, err
	}
	return t, nil
}

// Middleware identifies and gates the tenant of every request and puts it,
// and a lazily opened connection on its database, in the request context.
// The connection is released when the request ends.
func (s *Service) Middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		t, err := s.Identify(r)
		if err != nil {
			httpapi.Fail(w, r, s.Log, err)
			return
		}
		rc := &requestConn{router: s.Router, tenant: t}
		defer rc.release()
		ctx := logging.WithTenant(r.Context(), t.Code)
		ctx = context.WithValue(ctx, tenantKey{}, rc)
		next.ServeHTTP(w, r.WithContext(ctx))
	})
}

type tenantKey struct{}

// requestConn is one request's pinned connection, opened on first use.
type requestConn struct {
	router *Router
	tenant *Tenant
	once   sync.Once
	conn   *sql.Conn
	err    error
}

func (rc *requestConn) get(ctx context.Context) (*sql.Conn, error) {
	rc.once.Do(func() { rc.conn, rc.err = rc.router.Conn(ctx, rc.tenant) })
	return rc.conn, rc.err
}

func (rc *requestConn) release() {
	if rc.conn != nil {
		rc.conn.Close()
	}
}

// FromContext returns the tenant the request was identified for.
func FromContext(ctx context.Context) (*Tenant, bool) {
	rc, ok := ctx.Value(tenantKey{}).(*requestConn)
	if !ok {
		return nil, false
	}
	return rc.tenant, true
}

// ErrNoTenant is returned by Conn outside a tenant request.
var ErrNoTenant = errors.New("tenancy: no tenant in context (route not behind tenancy.Middleware)")

// Conn returns the request's connection on its tenant's database. It is the
// only way handlers reach tenant data; do not Close it, the middleware does.
func Conn(ctx context.Context) (*sql.Conn, error) {
	rc, ok := ctx.Value(tenantKey{}).(*requestConn)
	if !ok {
		return nil, ErrNoTenant
	}
	return rc.get(ctx)
}

// ParseHosts builds the host rules from configuration values: the base
// domain, extra reserved labels and platform hosts (comma-separated).
func ParseHosts(baseDomain, reserved, platform string) Hosts {
	h := Hosts{BaseDomain: strings.ToLower(strings.TrimSuffix(baseDomain, ".")), Reserved: map[string]bool{}}
	for _, l := range DefaultReserved {
		h.Reserved[l] = true
	}
	for _, l := range splitList(reserved) {
		h.Reserved[l] = true
	}
	h.Platform = append([]string{"localhost"}, splitList(platform)...)
	return h
}

// DefaultPlatformHosts are the gateways' own domains: requests there name
// their tenant by header or token.
const DefaultPlatformHosts = ".amazonaws.com,.on.aws,.fcapp.run,.aliyuncs.com"

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.ToLower(strings.TrimSpace(p)); p != "" {
			out = append(out, p)
		}
	}
	return out
}
