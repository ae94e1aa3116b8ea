package main

import (
	"database/sql"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/unitenant/unitenant/shared/aibridge"
	"github.com/unitenant/unitenant/shared/auth"
	"github.com/unitenant/unitenant/shared/fault"
	"github.com/unitenant/unitenant/shared/httpapi"
	"github.com/unitenant/unitenant/shared/identity"
	"github.com/unitenant/unitenant/shared/logging"
	"github.com/unitenant/unitenant/shared/secretbox"
	"github.com/unitenant/unitenant/shared/serverless"
	"github.com/unitenant/unitenant/shared/tenancy"
)

// Routes. The tenant's routes take a tenant-scoped token of a member, or a
// tenant API key (Authorization: Bearer uk-..., which names its tenant); the
// host and X-Tenant-Code, when given, must agree with either.
//
//	POST   /api/v1/ai/bridge/chat        chat in the seed's shape (stream: true streams OpenAI chunks)
//	POST   /api/v1/ai/bridge/completion  text completion, seed shape
//	POST   /api/v1/ai/bridge/embedding   embeddings, seed shape
//	GET    /api/v1/ai/bridge/models      the models the caller may use
//	POST   /api/v1/ai/keys               create an API key {name, models?, rpm?, tpm?, expiresAt?} (tenant admins, token only)
//	GET    /api/v1/ai/keys               list them (never the secret)
//	DELETE /api/v1/ai/keys/{id}          revoke one
//	POST   /v1/chat/completions          OpenAI-compatible, streaming included; errors in OpenAI's shape
//	POST   /v1/completions
//	POST   /v1/embeddings
//	GET    /v1/models
//	/api/admin/ai/*                      platform admins: models, tenants' model settings, accounts (admin.go)
func newHandler(h *handler) http.Handler {
	rt := httpapi.NewRouter()
	seed, openai := h.tenantRoute(httpapi.Fail), h.tenantRoute(openAIFail)
	rt.Handle("POST /api/v1/ai/bridge/chat", seed(h.bridgeChat))
	rt.Handle("POST /api/v1/ai/bridge/completion", seed(h.bridgeCompletion))
	rt.Handle("POST /api/v1/ai/bridge/embedding", seed(h.bridgeEmbedding))
	rt.Handle("GET /api/v1/ai/bridge/models", seed(h.bridgeModels))
	rt.Handle("POST /api/v1/ai/keys", seed(h.createKey))
	rt.Handle("GET /api/v1/ai/keys", seed(h.listKeys))
	rt.Handle("DELETE /api/v1/ai/keys/{id}", seed(h.revokeKey))
	v1 := map[string]string{} // path -> method
	for _, route := range []struct {
		method, path string
		fn           tenantEndpoint
	}{
		{"POST", "/v1/chat/completions", h.chatCompletions},
		{"POST", "/v1/completions", h.completions},
		{"POST", "/v1/embeddings", h.embeddings},
		{"GET", "/v1/models", h.models},
	} {
		rt.Handle(route.method+" "+route.path, openai(route.fn))
		v1[route.path] = route.method
	}
	rt.Handle("/v1/", h.openAINoRoute(v1))
	h.adminRoutes(rt)
	return shaped{forgetAfterChanges(h.bridge, rt)}
}

// openAIPath reports whether r is for an OpenAI-compatible route, where
// every error is in OpenAI's shape.
func openAIPath(r *http.Request) bool { return strings.HasPrefix(r.URL.Path, "/v1/") }

// shaped is the function's handler as the standard stack sees it
// (httpapi.Failer): what the stack refuses before a route runs (a body
// over MaxBody, a host it cannot route by, a panic) is answered in the
// shape of the route asked for, as the route's own errors are. An OpenAI
// SDK reads error.type, which the envelope lacks.
type shaped struct{ http.Handler }

// Fail answers err in OpenAI's shape under /v1/, else in the envelope.
func (shaped) Fail(w http.ResponseWriter, r *http.Request, log *slog.Logger, err error) {
	if openAIPath(r) {
		openAIFail(w, r, log, err)
		return
	}
	httpapi.Fail(w, r, log, err)
}

// openAINoRoute answers a /v1/ request that no route takes (405 or 404)
// in OpenAI's error shape, as every answer there is: an OpenAI SDK reads
// the error's type from it.
func (h *handler) openAINoRoute(routes map[string]string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if method, ok := routes[r.URL.Path]; ok {
			w.Header().Set("Allow", method)
			openAIFail(w, r, h.log, fault.New(fault.MethodNotAllowed, "method_not_allowed", "%s is not allowed on %s; use %s", r.Method, r.URL.Path, method))
			return
		}
		openAIFail(w, r, h.log, fault.New(fault.NotFound, "route_not_found", "no route for %s %s", r.Method, r.URL.Path))
	})
}

// forgetAfterChanges drops the bridge's cache after any request that may
// change API keys or models, so that this instance's next call sees the
// change at once (other instances within aibridge.DefaultCacheTTL).
func forgetAfterChanges(b *aibridge.Bridge, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		next.ServeHTTP(w, r)
		if r.Method != http.MethodGet && (strings.HasPrefix(r.URL.Path, "/api/v1/ai/keys") || strings.HasPrefix(r.URL.Path, "/api/admin/ai/")) {
			b.Forget()
		}
	})
}

type handler struct {
	db       *sql.DB
	box      *secretbox.Box // seals providers' API keys
	verifier *auth.Verifier
	tenants  *tenancy.Service
	bridge   *aibridge.Bridge
	log      *slog.Logger
	now      func() time.Time
}

// failFunc answers an error in a route group's shape.
type failFunc func(w http.ResponseWriter, r *http.Request, log *slog.Logger, err error)

// principal is who calls a tenant route, and for which tenant.
type principal struct {
	tenant *tenancy.Tenant
	caller aibridge.Caller
	claims *auth.Claims     // a token's; nil for an API key
	key    *aibridge.APIKey // nil for a token
	role   string           // the member's role in the tenant; "" for a key
	start  time.Time        // when the route began
	authed time.Time        // when the caller was authenticated
}

// tenantEndpoint is a tenant route's work. It writes its own answer: a
// stream is no JSON value.
type tenantEndpoint func(w http.ResponseWriter, r *http.Request, p *principal, fail failFunc)

// tenantRoute authenticates the caller (token or API key), identifies and
// gates the tenant, and runs fn; failures are answered by fail.
func (h *handler) tenantRoute(fail failFunc) func(tenantEndpoint) http.Handler {
	return func(fn tenantEndpoint) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			start := time.Now()
			p, err := h.authenticate(r)
			if err != nil {
				if fe, ok := fault.As(err); ok && fe.Kind == fault.Unauthorized {
					w.Header().Set("WWW-Authenticate", `Bearer realm="unitenant"`)
				}
				fail(w, r, h.log, err)
				return
			}
			p.start, p.authed = start, time.Now()
			ctx := logging.WithTenant(r.Context(), p.tenant.Code)
			fn(w, r.WithContext(ctx), p, fail)
		})
	}
}

// authenticate finds the principal of r. An API key names its tenant; a
// token must be tenant-scoped, and its user still an active member there.
func (h *handler) authenticate(r *http.Request) (*principal, error) {
	ctx := r.Context()
	bearer := auth.BearerToken(r)
	p := &principal{}
	if strings.HasPrefix(bearer, aibridge.KeyPrefix) {
		k, code, err := h.bridge.Authenticate(ctx, bearer)
		if err != nil {
			return nil, err
		}
		if p.tenant, err = h.tenants.IdentifyAs(r, code); err != nil {
			return nil, err
		}
		p.key = &k
	} else {
		c, err := h.verifier.Verify(bearer, auth.AudienceTenant)
		if err != nil {
			return nil, err
		}
		if c.Kind != auth.KindUser {
			return nil, tenancy.ErrForbidden
		}
		if p.tenant, err = h.tenants.IdentifyAs(r, c.TenantID); err != nil {
			return nil, err
		}
		if p.role, err = identity.MemberRole(ctx, h.db, c.SubjectID(), p.tenant.ID); err != nil {
			return nil, err
		}
		p.claims = c
	}
	// The User-Agent goes to utf8mb4 columns (call logs, audit rows),
	// which refuse bytes that are not UTF-8.
	p.caller = aibridge.Caller{TenantID: p.tenant.ID, TenantCode: p.tenant.Code, Key: p.key,
		RequestID: logging.RequestID(ctx), IP: serverless.ClientIP(r), UserAgent: strings.ToValidUTF8(r.UserAgent(), "\uFFFD")}
	if p.claims != nil {
		p.caller.UserID = p.claims.SubjectID()
	}
	return p, nil
}

// tenantAdmin refuses a principal that may not manage the tenant's keys:
// an API key never may, a token's user must be the tenant's owner or admin.
func tenantAdmin(p *principal) error {
	if p.key != nil {
		return fault.New(fault.Forbidden, "key_not_allowed", "API keys cannot manage API keys; use a member's token")
	}
	if !identity.ManagesTenant(p.role) {
		return fault.New(fault.Forbidden, "permission_denied", "managing API keys needs the tenant's owner or admin role")
	}
	return nil
}
