package main

import (
	"fmt"
	"strings"

	"github.com/unitenant/unitenant/scripts/samtemplate"
)

// segKind is the kind of one route path segment, in API Gateway's order of precedence:
// a literal beats a {param}, which beats a greedy {proxy+}.
type segKind int

const (
	segLiteral segKind = iota
	segParam
	segGreedy
)

type segment struct {
	kind    segKind
	literal string
}

// route is one HttpApi route of the template, compiled for matching.
type route struct {
	function  string
	spec      samtemplate.Route
	method    string // upper case, or ANY
	isDefault bool   // the $default route: matches anything, loses to everything
	segs      []segment
}

// router matches requests to the template's routes the way API Gateway HTTP APIs do:
// the most specific path wins (literal segments over {param} over a greedy {proxy+}),
// then a named method over ANY; $default takes what nothing else matched.
type router struct {
	routes []route
}

// newRouter compiles the routes of fns.
func newRouter(fns []samtemplate.Function) (*router, error) {
	rt := &router{}
	for _, f := range fns {
		for _, r := range f.Routes {
			c, err := compileRoute(f.Name, r)
			if err != nil {
				return nil, fmt.Errorf("function %s: route %q: %w", f.Name, r.String(), err)
			}
			rt.routes = append(rt.routes, c)
		}
	}
	return rt, nil
}

func compileRoute(fn string, r samtemplate.Route) (route, error) {
	c := route{function: fn, spec: r, method: strings.ToUpper(r.Method)}
	if r.Path == samtemplate.DefaultRoutePath {
		c.isDefault = true
		return c, nil
	}
	if !strings.HasPrefix(r.Path, "/") {
		return c, fmt.Errorf("path must start with /")
	}
	if r.Path == "/" {
		return c, nil
	}
	parts := strings.Split(strings.TrimPrefix(r.Path, "/"), "/")
	for i, p := range parts {
		switch {
		case strings.HasPrefix(p, "{") && strings.HasSuffix(p, "+}"):
			if i != len(parts)-1 {
				return c, fmt.Errorf("greedy segment %s must be last", p)
			}
			c.segs = append(c.segs, segment{kind: segGreedy})
		case strings.HasPrefix(p, "{") && strings.HasSuffix(p, "}"):
			c.segs = append(c.segs, segment{kind: segParam})
		case strings.ContainsAny(p, "{}"):
			return c, fmt.Errorf("segment %q mixes a variable with text", p)
		default:
			c.segs = append(c.segs, segment{kind: segLiteral, literal: p})
		}
	}
	return c, nil
}

// match returns the route that serves method and path, and whether there is one.
func (rt *router) match(method, path string) (route, bool) {
	var best route
	found := false
	for _, r := range rt.routes {
		if !r.matches(method, path) {
			continue
		}
		if !found || r.beats(best) {
			best, found = r, true
		}
	}
	return best, found
}

func (r route) matches(method, path string) bool {
	if r.method != "ANY" && r.method != method {
		return false
	}
	if r.isDefault {
		return true
	}
	if !strings.HasPrefix(path, "/") {
		return false
	}
	rest := strings.TrimPrefix(path, "/")
	if len(r.segs) == 0 {
		return rest == ""
	}
	for i, s := range r.segs {
		if s.kind == segGreedy {
			return rest != ""
		}
		seg, tail, more := strings.Cut(rest, "/")
		if seg == "" {
			return false
		}
		if s.kind == segLiteral && seg != s.literal {
			return false
		}
		last := i == len(r.segs)-1
		if last {
			return !more
		}
		if !more {
			return false
		}
		rest = tail
	}
	return false
}

// beats reports whether r is more specific than o; both match the same request.
func (r route) beats(o route) bool {
	if r.isDefault != o.isDefault {
		return o.isDefault
	}
	for i := 0; i < len(r.segs) && i < len(o.segs); i++ {
		if r.segs[i].kind != o.segs[i].kind {
			return r.segs[i].kind < o.segs[i].kind
		}
	}
	// Same shape up to the shorter one: only greedy routes can differ in length here, and
	// the longer prefix is the more specific.
	if len(r.segs) != len(o.segs) {
		return len(r.segs) > len(o.segs)
	}
	return r.method != "ANY" && o.method == "ANY"
}
