package auth

import (
	"context"
	"log/slog"
	"net/http"
	"strings"

	"github.com/unitenant/unitenant/shared/httpapi"
)

type ctxKey struct{}

// WithClaims returns ctx carrying verified claims.
func WithClaims(ctx context.Context, c *Claims) context.Context {
	return context.WithValue(ctx, ctxKey{}, c)
}

// FromContext returns the verified claims of the request, if any.
func FromContext(ctx context.Context) (*Claims, bool) {
	c, ok := ctx.Value(ctxKey{}).(*Claims)
	return c, ok
}

// BearerToken returns the token of an "Authorization: Bearer" header.
func BearerToken(r *http.Request) string {
	h := r.Header.Get("Authorization")
	if len(h) > 7 && strings.EqualFold(h[:7], "bearer ") {
		return strings.TrimSpace(h[7:])
	}
	return ""
}

// Require verifies the bearer token for one of audiences and puts its claims
// in the request context; anything else is answered 401.
func Require(v *Verifier, log *slog.Logger, audiences ...string) httpapi.Middleware {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			c, err := v.Verify(BearerToken(r), audiences...)
			if err != nil {
				w.Header().Set("WWW-Authenticate", `Bearer realm="unitenant"`)
				httpapi.Fail(w, r, log, err)
				return
			}
			next.ServeHTTP(w, r.WithContext(WithClaims(r.Context(), c)))
		})
	}
}
