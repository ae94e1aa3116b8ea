package httpapi

import (
	"net/http"
	"strings"

	"github.com/unitenant/unitenant/shared/fault"
)

// Router is net/http's ServeMux with envelope 404 and 405 answers (ServeMux
// answers those in plain text, which clients cannot branch on).
type Router struct {
	mux   *http.ServeMux // the routes as registered, "METHOD /path"
	paths *http.ServeMux // the same paths without methods, to tell 405 from 404
	seen  map[string]bool
}

// NewRouter returns an empty router.
func NewRouter() *Router {
	return &Router{mux: http.NewServeMux(), paths: http.NewServeMux(), seen: map[string]bool{}}
}

// Handle registers h for a pattern like "GET /api/health".
func (rt *Router) Handle(pattern string, h http.Handler) {
	rt.mux.Handle(pattern, h)
	path := pattern
	if i := strings.IndexByte(pattern, ' '); i >= 0 {
		path = strings.TrimSpace(pattern[i+1:])
	}
	if !rt.seen[path] {
		rt.seen[path] = true
		rt.paths.Handle(path, http.NotFoundHandler())
	}
}

// HandleFunc registers f for pattern.
func (rt *Router) HandleFunc(pattern string, f http.HandlerFunc) { rt.Handle(pattern, f) }

// ServeHTTP dispatches to the route, or answers 404 or 405 in the envelope.
func (rt *Router) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if _, pattern := rt.mux.Handler(r); pattern != "" {
		rt.mux.ServeHTTP(w, r)
		return
	}
	if _, pattern := rt.paths.Handler(r); pattern != "" {
		Fail(w, r, nil, fault.New(fault.MethodNotAllowed, "method_not_allowed", "%s is not allowed on %s", r.Method, r.URL.Path))
		return
	}
	Fail(w, r, nil, fault.New(fault.NotFound, "route_not_found", "no route for %s %s", r.Method, r.URL.Path))
}
