// Package samtemplate reads the functions, HTTP API routes and schedules out of the
// project's AWS SAM template (template.yaml), for the local gateway and the descriptor
// tests.
//
// It understands only what those tools need and never evaluates CloudFormation: intrinsic
// functions (!Ref, !Sub, !GetAtt...) are tolerated wherever they may appear, but a value
// the tools depend on (a function's UNITENANT_FUNCTION, a route's path and method, a
// schedule expression) must be a literal, and is an error otherwise.
package samtemplate

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"sort"
	"strings"

	"gopkg.in/yaml.v3"
)

// FunctionEnvVar is the environment variable that names a function (its kebab-case
// directory under functions/) in the template's Environment.Variables.
const FunctionEnvVar = "UNITENANT_FUNCTION"

// DefaultRoutePath is the Path of a Route for an HttpApi event without Path and Method,
// which SAM turns into the API's $default route (it receives every unmatched request).
const DefaultRoutePath = "$default"

// Template is the part of a SAM template that the local tools use. Its JSON form is what
// `go run ./scripts/gateway -list` prints, for tools that are not written in Go.
type Template struct {
	// Functions holds one entry per AWS::Serverless::Function, sorted by Name.
	Functions []Function `json:"functions"`
}

// Function is one AWS::Serverless::Function.
type Function struct {
	// LogicalID is the resource's logical ID, e.g. "HealthFunction".
	LogicalID string `json:"logicalId"`
	// Name is the function's kebab-case name, e.g. "health", read from
	// Environment.Variables.UNITENANT_FUNCTION.
	Name string `json:"name"`
	// CodeURI is Properties.CodeUri as written ("" when absent or not a literal).
	CodeURI string `json:"codeUri,omitempty"`
	// BuildMethod is Metadata.BuildMethod as written, e.g. "makefile".
	BuildMethod string `json:"buildMethod,omitempty"`
	// Routes holds the function's HttpApi event routes in the order they are written.
	Routes []Route `json:"routes,omitempty"`
	// Schedules holds the function's Schedule and ScheduleV2 expressions, e.g.
	// "rate(5 minutes)" or "cron(0 3 * * ? *)", in the order they are written.
	Schedules []string `json:"schedules,omitempty"`
}

// Route is one HttpApi event of a function.
type Route struct {
	// Method is upper case: GET, POST..., or ANY.
	Method string `json:"method"`
	// Path is the route's path, e.g. "/api/tenants/{code}/progress", or DefaultRoutePath.
	Path string `json:"path"`
}

// String returns the route as API Gateway writes a route key: "GET /api/health".
func (r Route) String() string {
	if r.Path == DefaultRoutePath {
		return DefaultRoutePath
	}
	return r.Method + " " + r.Path
}

// IsHTTP reports whether the function serves HTTP routes.
func (f Function) IsHTTP() bool { return len(f.Routes) > 0 }

// IsJob reports whether the function runs on a schedule.
func (f Function) IsJob() bool { return len(f.Schedules) > 0 }

// Function returns the function named name (kebab case) and whether it exists.
func (t *Template) Function(name string) (Function, bool) {
	for _, f := range t.Functions {
		if f.Name == name {
			return f, true
		}
	}
	return Function{}, false
}

// LogicalIDFor returns the logical ID the project gives the function named name:
// PascalCase of the kebab name plus "Function" ("ai-chat" -> "AiChatFunction").
func LogicalIDFor(name string) string {
	var b strings.Builder
	for _, part := range strings.Split(name, "-") {
		if part == "" {
			continue
		}
		b.WriteString(strings.ToUpper(part[:1]))
		b.WriteString(part[1:])
	}
	b.WriteString("Function")
	return b.String()
}

// Load reads and parses the SAM template at path.
func Load(path string) (*Template, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read sam template: %w", err)
	}
	t, err := Parse(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return t, nil
}

// Parse parses a SAM template. It fails on a function without a literal
// UNITENANT_FUNCTION, a logical ID that does not follow LogicalIDFor, two functions with
// one name, a route without a literal path or method, and one route served twice.
func Parse(data []byte) (*Template, error) {
	var doc yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&doc); err != nil {
		return nil, fmt.Errorf("parse sam template: %w", err)
	}
	if doc.Kind != yaml.DocumentNode || len(doc.Content) != 1 || doc.Content[0].Kind != yaml.MappingNode {
		return nil, errors.New("parse sam template: top level is not a mapping")
	}
	resources := lookup(doc.Content[0], "Resources")
	if resources == nil {
		return nil, errors.New("parse sam template: no Resources")
	}
	if resources.Kind != yaml.MappingNode {
		return nil, errors.New("parse sam template: Resources is not a mapping")
	}

	t := &Template{}
	byName := map[string]string{}
	routeOwner := map[string]string{}
	for i := 0; i+1 < len(resources.Content); i += 2 {
		id, res := resources.Content[i].Value, resources.Content[i+1]
		if typ, _ := literal(lookup(res, "Type")); typ != "AWS::Serverless::Function" {
			continue
		}
		f, err := parseFunction(id, res)
		if err != nil {
			return nil, fmt.Errorf("resource %s: %w", id, err)
		}
		if other, dup := byName[f.Name]; dup {
			return nil, fmt.Errorf("resources %s and %s: both name function %q", other, id, f.Name)
		}
		byName[f.Name] = id
		for _, r := range f.Routes {
			key := r.String()
			if other, dup := routeOwner[key]; dup {
				return nil, fmt.Errorf("route %q: served by both %s and %s", key, other, id)
			}
			routeOwner[key] = id
		}
		t.Functions = append(t.Functions, f)
	}
	sort.Slice(t.Functions, func(i, j int) bool { return t.Functions[i].Name < t.Functions[j].Name })
	return t, nil
}

func parseFunction(id string, res *yaml.Node) (Function, error) {
	f := Function{LogicalID: id}
	props := lookup(res, "Properties")
	name, ok := literal(lookup(props, "Environment", "Variables", FunctionEnvVar))
	if !ok || name == "" {
		return f, fmt.Errorf("no literal Properties.Environment.Variables.%s (the function's kebab-case name)", FunctionEnvVar)
	}
	f.Name = name
	if want := LogicalIDFor(name); want != id {
		return f, fmt.Errorf("function %q must have logical ID %s", name, want)
	}
	f.CodeURI, _ = literal(lookup(props, "CodeUri"))
	f.BuildMethod, _ = literal(lookup(res, "Metadata", "BuildMethod"))

	events := lookup(props, "Events")
	if events == nil {
		return f, nil
	}
	if events.Kind != yaml.MappingNode {
		return f, errors.New("Properties.Events is not a mapping")
	}
	for i := 0; i+1 < len(events.Content); i += 2 {
		ename, ev := events.Content[i].Value, events.Content[i+1]
		typ, _ := literal(lookup(ev, "Type"))
		eprops := lookup(ev, "Properties")
		switch typ {
		case "HttpApi":
			r, err := parseRoute(eprops)
			if err != nil {
				return f, fmt.Errorf("event %s: %w", ename, err)
			}
			f.Routes = append(f.Routes, r)
		case "Schedule", "ScheduleV2":
			key := "Schedule"
			if typ == "ScheduleV2" {
				key = "ScheduleExpression"
			}
			expr, ok := literal(lookup(eprops, key))
			if !ok || expr == "" {
				return f, fmt.Errorf("event %s: no literal Properties.%s", ename, key)
			}
			f.Schedules = append(f.Schedules, expr)
		}
	}
	return f, nil
}

func parseRoute(props *yaml.Node) (Route, error) {
	pathNode, methodNode := lookup(props, "Path"), lookup(props, "Method")
	if pathNode == nil && methodNode == nil {
		return Route{Method: "ANY", Path: DefaultRoutePath}, nil
	}
	path, ok := literal(pathNode)
	if !ok || !strings.HasPrefix(path, "/") {
		return Route{}, errors.New("Properties.Path must be a literal starting with /")
	}
	method, ok := literal(methodNode)
	if !ok || method == "" {
		return Route{}, errors.New("Properties.Method must be a literal")
	}
	method = strings.ToUpper(method)
	if method == "X-AMAZON-APIGATEWAY-ANY-METHOD" || method == "*" {
		method = "ANY"
	}
	return Route{Method: method, Path: path}, nil
}

// lookup follows keys through nested mappings and returns the node found, or nil.
func lookup(n *yaml.Node, keys ...string) *yaml.Node {
	for _, k := range keys {
		n = deref(n)
		if n == nil || n.Kind != yaml.MappingNode {
			return nil
		}
		var next *yaml.Node
		for i := 0; i+1 < len(n.Content); i += 2 {
			if n.Content[i].Value == k {
				next = n.Content[i+1]
				break
			}
		}
		n = next
	}
	return deref(n)
}

// deref resolves a YAML alias (*name) to the node it names.
func deref(n *yaml.Node) *yaml.Node {
	for n != nil && n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	return n
}

// literal returns a scalar's value if it is a plain (untagged or standard-tagged) scalar,
// and false for anything else: absent, a mapping, or an intrinsic function such as !Ref.
func literal(n *yaml.Node) (string, bool) {
	if n == nil || n.Kind != yaml.ScalarNode {
		return "", false
	}
	if strings.HasPrefix(n.Tag, "!") && !strings.HasPrefix(n.Tag, "!!") {
		return "", false
	}
	return n.Value, true
}
