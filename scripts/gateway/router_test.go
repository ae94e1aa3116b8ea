package main

import (
	"testing"

	"github.com/unitenant/unitenant/scripts/samtemplate"
)

func TestRouterMatch(t *testing.T) {
	t.Parallel()
	fns := []samtemplate.Function{
		{Name: "health", Routes: []samtemplate.Route{{Method: "GET", Path: "/api/health"}}},
		{Name: "login", Routes: []samtemplate.Route{
			{Method: "ANY", Path: "/api/auth/{proxy+}"},
			{Method: "POST", Path: "/api/admin/auth/login"},
			{Method: "GET", Path: "/.well-known/jwks.json"},
		}},
		{Name: "tenant-create", Routes: []samtemplate.Route{
			{Method: "POST", Path: "/api/tenants"},
			{Method: "GET", Path: "/api/tenants/{code}/progress"},
		}},
		{Name: "tenant-admin", Routes: []samtemplate.Route{
			{Method: "ANY", Path: "/api/admin/{proxy+}"},
			{Method: "GET", Path: "/api/tenants/{code}/{section}"},
			{Method: "GET", Path: "/api/tenants/mine/progress"},
		}},
		{Name: "tenant-api", Routes: []samtemplate.Route{{Method: "ANY", Path: "/api/app/{proxy+}"}}},
		{Name: "ai-chat", Routes: []samtemplate.Route{
			{Method: "POST", Path: "/v1/{proxy+}"},
			{Method: "GET", Path: "/v1/models"},
			{Method: "ANY", Path: "/v1/models"},
		}},
		{Name: "fallback", Routes: []samtemplate.Route{{Method: "ANY", Path: samtemplate.DefaultRoutePath}}},
	}
	rt, err := newRouter(fns)
	if err != nil {
		t.Fatalf("newRouter: %v", err)
	}
	tests := []struct {
		method, path string
		wantFn       string // "" when no route matches
		wantRoute    string
	}{
		{"GET", "/api/health", "health", "GET /api/health"},
		{"POST", "/api/auth/login", "login", "ANY /api/auth/{proxy+}"},
		{"GET", "/api/auth/a/b/c", "login", "ANY /api/auth/{proxy+}"},
		{"POST", "/api/admin/auth/login", "login", "POST /api/admin/auth/login"},
		{"GET", "/api/admin/auth/login", "tenant-admin", "ANY /api/admin/{proxy+}"},
		{"DELETE", "/api/admin/tenants/t1", "tenant-admin", "ANY /api/admin/{proxy+}"},
		{"GET", "/api/tenants/acme/progress", "tenant-create", "GET /api/tenants/{code}/progress"},
		{"GET", "/api/tenants/mine/progress", "tenant-admin", "GET /api/tenants/mine/progress"},
		{"GET", "/api/tenants/acme/stats", "tenant-admin", "GET /api/tenants/{code}/{section}"},
		{"POST", "/api/tenants", "tenant-create", "POST /api/tenants"},
		{"GET", "/v1/models", "ai-chat", "GET /v1/models"},
		{"DELETE", "/v1/models", "ai-chat", "ANY /v1/models"},
		{"POST", "/v1/models", "ai-chat", "ANY /v1/models"},
		{"POST", "/v1/chat/completions", "ai-chat", "POST /v1/{proxy+}"},
		{"GET", "/.well-known/jwks.json", "login", "GET /.well-known/jwks.json"},
		// Greedy variables need at least one segment; everything else falls to $default.
		{"GET", "/api/auth", "fallback", "$default"},
		{"GET", "/api/auth/", "fallback", "$default"},
		{"GET", "/api/health/", "fallback", "$default"},
		{"GET", "/api/tenants//progress", "fallback", "$default"},
		{"GET", "/nope", "fallback", "$default"},
	}
	for _, tt := range tests {
		t.Run(tt.method+" "+tt.path, func(t *testing.T) {
			t.Parallel()
			r, ok := rt.match(tt.method, tt.path)
			if !ok {
				t.Fatalf("no match, want %s (%s)", tt.wantFn, tt.wantRoute)
			}
			if r.function != tt.wantFn || r.spec.String() != tt.wantRoute {
				t.Errorf("matched %s (%s), want %s (%s)", r.function, r.spec, tt.wantFn, tt.wantRoute)
			}
		})
	}
}

func TestRouterNoMatch(t *testing.T) {
	t.Parallel()
	rt, err := newRouter([]samtemplate.Function{
		{Name: "health", Routes: []samtemplate.Route{{Method: "GET", Path: "/api/health"}}},
		{Name: "files", Routes: []samtemplate.Route{{Method: "PUT", Path: "/files/{proxy+}"}}},
		{Name: "root", Routes: []samtemplate.Route{{Method: "GET", Path: "/"}}},
	})
	if err != nil {
		t.Fatalf("newRouter: %v", err)
	}
	tests := []struct{ method, path, want string }{
		{"POST", "/api/health", ""},
		{"GET", "/api/healthz", ""},
		{"GET", "/api/health/x", ""},
		{"GET", "/files/a", ""},
		{"PUT", "/files", ""},
		{"PUT", "/files/a/b", "files"},
		{"GET", "/", "root"},
		{"GET", "", ""},
	}
	for _, tt := range tests {
		r, ok := rt.match(tt.method, tt.path)
		got := ""
		if ok {
			got = r.function
		}
		if got != tt.want {
			t.Errorf("match(%s %q) = %q, want %q", tt.method, tt.path, got, tt.want)
		}
	}
}

func TestCompileRouteErrors(t *testing.T) {
	t.Parallel()
	for _, path := range []string{"api", "/a/{proxy+}/b", "/a/x{id}"} {
		if _, err := compileRoute("f", samtemplate.Route{Method: "GET", Path: path}); err == nil {
			t.Errorf("compileRoute(%q) succeeded, want an error", path)
		}
	}
}
