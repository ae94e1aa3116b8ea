// Package deploy_test keeps the deployment descriptors in step with functions/: every
// function has its AWS SAM resource (template.yaml), its Serverless Devs resource (s.yaml)
// and its sample event (events/<name>.json), and nothing in them names a function that
// does not exist.
//
// template.yaml is read with scripts/samtemplate, the parser the local gateway uses, so
// both agree on what a function, a route and a schedule are; the gateway's own tests check
// that it can serve the template's routes and run its schedules.
package deploy_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/unitenant/unitenant/scripts/samtemplate"
	"gopkg.in/yaml.v3"
)

// Conventions the Function Compute descriptors (s.yaml) follow.
const (
	fcRuntime = "custom.debian12"
	fcPort    = 9000
)

// sFile is the part of s.yaml the checks read.
type sFile struct {
	Vars      map[string]any       `yaml:"vars"`
	Resources map[string]sResource `yaml:"resources"`
}

type sResource struct {
	Component string `yaml:"component"`
	Props     sProps `yaml:"props"`
}

type sProps struct {
	FunctionName         string            `yaml:"functionName"`
	Runtime              string            `yaml:"runtime"`
	Code                 string            `yaml:"code"`
	Handler              string            `yaml:"handler"`
	EnvironmentVariables map[string]string `yaml:"environmentVariables"`
	CustomRuntimeConfig  struct {
		Command []string `yaml:"command"`
		Port    int      `yaml:"port"`
	} `yaml:"customRuntimeConfig"`
	Triggers []struct {
		TriggerName   string `yaml:"triggerName"`
		TriggerType   string `yaml:"triggerType"`
		TriggerConfig struct {
			AuthType       string   `yaml:"authType"`
			Methods        []string `yaml:"methods"`
			CronExpression string   `yaml:"cronExpression"`
			Enable         *bool    `yaml:"enable"`
		} `yaml:"triggerConfig"`
	} `yaml:"triggers"`
	RouteConfig struct {
		Routes []struct {
			Path         string   `yaml:"path"`
			FunctionName string   `yaml:"functionName"`
			Methods      []string `yaml:"methods"`
		} `yaml:"routes"`
	} `yaml:"routeConfig"`
}

// descriptors is everything the checks compare, loaded once.
type descriptors struct {
	root      string
	functions []string // directories under functions/
	sam       *samtemplate.Template
	raw       *yaml.Node // template.yaml as a YAML document, for what samtemplate does not read
	s         sFile
	events    []string // names of events/*.json without the extension
}

var loadOnce = sync.OnceValues(load)

func mustLoad(t *testing.T) *descriptors {
	t.Helper()
	d, err := loadOnce()
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// repoRoot is the module root: two levels above this file.
func repoRoot() (string, error) {
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		return "", errors.New("cannot locate the test file")
	}
	root := filepath.Clean(filepath.Join(filepath.Dir(file), "..", ".."))
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		return "", fmt.Errorf("repo root %s: %w", root, err)
	}
	return root, nil
}

func load() (*descriptors, error) {
	root, err := repoRoot()
	if err != nil {
		return nil, err
	}
	d := &descriptors{root: root}

	entries, err := os.ReadDir(filepath.Join(root, "functions"))
	if err != nil {
		return nil, fmt.Errorf("list functions/: %w", err)
	}
	for _, e := range entries {
		if e.IsDir() {
			d.functions = append(d.functions, e.Name())
		}
	}

	// Load names the file in its errors.
	if d.sam, err = samtemplate.Load(filepath.Join(root, "template.yaml")); err != nil {
		return nil, err
	}
	if d.raw, err = loadYAML(filepath.Join(root, "template.yaml")); err != nil {
		return nil, err
	}

	raw, err := os.ReadFile(filepath.Join(root, "s.yaml"))
	if err != nil {
		return nil, fmt.Errorf("read s.yaml: %w", err)
	}
	if err := yaml.Unmarshal(raw, &d.s); err != nil {
		return nil, fmt.Errorf("parse s.yaml: %w", err)
	}

	paths, err := filepath.Glob(filepath.Join(root, "events", "*.json"))
	if err != nil {
		return nil, fmt.Errorf("list events/: %w", err)
	}
	for _, p := range paths {
		d.events = append(d.events, strings.TrimSuffix(filepath.Base(p), ".json"))
	}
	return d, nil
}

// resolve expands a value that is exactly "${vars.a.b}" from s.yaml's vars; other values
// are returned as they are.
func (d *descriptors) resolve(v string) string {
	m := regexp.MustCompile(`^\$\{vars\.([A-Za-z0-9_.]+)\}$`).FindStringSubmatch(v)
	if m == nil {
		return v
	}
	var cur any = d.s.Vars
	for _, k := range strings.Split(m[1], ".") {
		mm, ok := cur.(map[string]any)
		if !ok {
			return v
		}
		cur = mm[k]
	}
	if cur == nil {
		return v
	}
	return fmt.Sprint(cur)
}

func TestFunctionsHaveDescriptors(t *testing.T) {
	t.Parallel()
	d := mustLoad(t)
	if len(d.functions) == 0 {
		t.Fatal("functions/ has no function directories")
	}
	for _, name := range d.functions {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			f, ok := d.sam.Function(name)
			if !ok {
				t.Fatalf("functions/%s: template.yaml has no AWS::Serverless::Function %s with Environment.Variables.%s: %s",
					name, samtemplate.LogicalIDFor(name), samtemplate.FunctionEnvVar, name)
			}
			checkSAM(t, f)
			checkServerlessDevs(t, d, f)
			checkEvent(t, d, f)
		})
	}
}

func checkSAM(t *testing.T, f samtemplate.Function) {
	if f.CodeURI != "." || f.BuildMethod != "makefile" {
		t.Errorf("template.yaml %s: CodeUri %q and Metadata.BuildMethod %q, want \".\" and makefile (sam build runs make build-%s)",
			f.LogicalID, f.CodeURI, f.BuildMethod, f.LogicalID)
	}
	if len(f.Routes) == 0 && len(f.Schedules) == 0 {
		t.Errorf("template.yaml %s: no HttpApi or Schedule event: nothing would ever call it", f.LogicalID)
	}
}

func checkServerlessDevs(t *testing.T, d *descriptors, f samtemplate.Function) {
	res, ok := d.s.Resources[f.Name]
	if !ok {
		t.Errorf("s.yaml: no resource %q (component fc3) for functions/%s", f.Name, f.Name)
		return
	}
	where := "s.yaml resources." + f.Name
	p := res.Props
	if res.Component != "fc3" {
		t.Errorf("%s: component %q, want fc3", where, res.Component)
	}
	if p.Runtime != fcRuntime {
		t.Errorf("%s: runtime %q, want %s", where, p.Runtime, fcRuntime)
	}
	if want := "./dist/" + f.Name; p.Code != want {
		t.Errorf("%s: code %q, want %s (the directory holding bootstrap)", where, p.Code, want)
	}
	if p.Handler != "bootstrap" {
		t.Errorf("%s: handler %q, want bootstrap", where, p.Handler)
	}
	if !slices.Equal(p.CustomRuntimeConfig.Command, []string{"./bootstrap"}) || p.CustomRuntimeConfig.Port != fcPort {
		t.Errorf("%s: customRuntimeConfig command %v port %d, want [./bootstrap] and %d",
			where, p.CustomRuntimeConfig.Command, p.CustomRuntimeConfig.Port, fcPort)
	}
	if got := d.resolve(p.EnvironmentVariables[samtemplate.FunctionEnvVar]); got != f.Name {
		t.Errorf("%s: environmentVariables.%s = %q, want %s", where, samtemplate.FunctionEnvVar, got, f.Name)
	}
	if got := d.resolve(p.EnvironmentVariables["FC_SERVER_PORT"]); got != fmt.Sprint(fcPort) {
		t.Errorf("%s: environmentVariables.FC_SERVER_PORT = %q, want %d", where, got, fcPort)
	}
	if p.FunctionName == "" {
		t.Errorf("%s: no functionName", where)
	}

	var httpTriggers, timerTriggers int
	for _, tr := range p.Triggers {
		switch tr.TriggerType {
		case "http":
			httpTriggers++
			if tr.TriggerConfig.AuthType != "anonymous" {
				t.Errorf("%s: http trigger %s: authType %q, want anonymous (the functions check tokens themselves)",
					where, tr.TriggerName, tr.TriggerConfig.AuthType)
			}
			for _, r := range f.Routes {
				for _, m := range methodsOf(r) {
					if !slices.Contains(tr.TriggerConfig.Methods, m) {
						t.Errorf("%s: http trigger %s does not allow %s, which route %s needs",
							where, tr.TriggerName, m, r.String())
					}
				}
			}
		case "timer":
			timerTriggers++
			checkFCCron(t, where+" timer trigger "+tr.TriggerName, tr.TriggerConfig.CronExpression)
			if tr.TriggerConfig.Enable == nil || !*tr.TriggerConfig.Enable {
				t.Errorf("%s: timer trigger %s is not enabled", where, tr.TriggerName)
			}
		default:
			t.Errorf("%s: trigger %s has type %q, want http or timer", where, tr.TriggerName, tr.TriggerType)
		}
	}
	if len(f.Routes) > 0 && httpTriggers != 1 {
		t.Errorf("%s: %d http triggers, want 1 (template.yaml gives it routes %v)", where, httpTriggers, routeKeys(f))
	}
	if len(f.Routes) == 0 && httpTriggers > 0 {
		t.Errorf("%s: has an http trigger but template.yaml gives it no route", where)
	}
	if want := min(len(f.Schedules), 1); (timerTriggers > 0) != (want > 0) {
		t.Errorf("%s: %d timer triggers, but template.yaml gives it schedules %v", where, timerTriggers, f.Schedules)
	}

	// The custom domain must send each route of an HTTP function to it, and nothing to a job.
	fcName := d.resolve(p.FunctionName)
	type domainRoute struct{ path, methods string }
	var mine []domainRoute
	for dname, dres := range d.s.Resources {
		if dres.Component != "fc3-domain" {
			continue
		}
		for _, r := range dres.Props.RouteConfig.Routes {
			if d.resolve(r.FunctionName) != fcName {
				continue
			}
			if len(f.Routes) == 0 {
				t.Errorf("s.yaml resources.%s: routes %s to %s, which serves no HTTP route", dname, r.Path, fcName)
			}
			mine = append(mine, domainRoute{r.Path, strings.Join(r.Methods, ",")})
		}
	}
	for _, r := range f.Routes {
		if r.Path == samtemplate.DefaultRoutePath {
			continue
		}
		sample := samplePath(r.Path)
		covered := false
		for _, dr := range mine {
			prefix, wild := strings.CutSuffix(dr.path, "*")
			pathOK := dr.path == sample || (wild && strings.HasPrefix(sample, prefix))
			methodsOK := dr.methods == ""
			for _, m := range methodsOf(r) {
				methodsOK = methodsOK || slices.Contains(strings.Split(dr.methods, ","), m)
			}
			covered = covered || (pathOK && methodsOK)
		}
		if !covered {
			t.Errorf("s.yaml: no fc3-domain route sends %s (e.g. %s) to %s", r.String(), sample, fcName)
		}
	}
}

// samplePath turns a route path into a request path it matches: {x} becomes one segment,
// {x+} two.
func samplePath(route string) string {
	segs := strings.Split(route, "/")
	for i, s := range segs {
		switch {
		case strings.HasPrefix(s, "{") && strings.HasSuffix(s, "+}"):
			segs[i] = "x/y"
		case strings.HasPrefix(s, "{"):
			segs[i] = "x"
		}
	}
	return strings.Join(segs, "/")
}

// checkFCCron checks a Function Compute timer expression: an optional CRON_TZ=<zone>, then
// six fields (seconds first), or @every <duration>.
func checkFCCron(t *testing.T, where, expr string) {
	t.Helper()
	e := expr
	if rest, ok := strings.CutPrefix(e, "CRON_TZ="); ok {
		_, e, _ = strings.Cut(rest, " ")
	}
	if strings.HasPrefix(e, "@every ") {
		return
	}
	if n := len(strings.Fields(e)); n != 6 {
		t.Errorf("%s: cronExpression %q has %d fields, want 6 (seconds minutes hours day-of-month month day-of-week)", where, expr, n)
	}
}

func methodsOf(r samtemplate.Route) []string {
	if r.Method == "ANY" {
		return []string{"GET", "POST", "PUT", "PATCH", "DELETE"}
	}
	return []string{r.Method}
}

func routeKeys(f samtemplate.Function) []string {
	var keys []string
	for _, r := range f.Routes {
		keys = append(keys, r.String())
	}
	return keys
}

// httpEvent is the part of an API Gateway HTTP API payload 2.0 request event checked here.
type httpEvent struct {
	Version        string            `json:"version"`
	RouteKey       string            `json:"routeKey"`
	RawPath        string            `json:"rawPath"`
	RawQueryString *string           `json:"rawQueryString"`
	Headers        map[string]string `json:"headers"`
	RequestContext struct {
		DomainName string `json:"domainName"`
		RequestID  string `json:"requestId"`
		RouteKey   string `json:"routeKey"`
		TimeEpoch  int64  `json:"timeEpoch"`
		HTTP       struct {
			Method   string `json:"method"`
			Path     string `json:"path"`
			SourceIP string `json:"sourceIp"`
		} `json:"http"`
	} `json:"requestContext"`
}

// scheduledEvent is an EventBridge scheduled event.
type scheduledEvent struct {
	DetailType string   `json:"detail-type"`
	Source     string   `json:"source"`
	Time       string   `json:"time"`
	Resources  []string `json:"resources"`
}

func checkEvent(t *testing.T, d *descriptors, f samtemplate.Function) {
	where := "events/" + f.Name + ".json"
	raw, err := os.ReadFile(filepath.Join(d.root, "events", f.Name+".json"))
	if err != nil {
		t.Errorf("%s: %v (sam local invoke and make invoke need a sample event)", where, err)
		return
	}
	if len(f.Routes) > 0 {
		var e httpEvent
		if err := json.Unmarshal(raw, &e); err != nil {
			t.Errorf("%s: %v", where, err)
			return
		}
		if e.Version != "2.0" {
			t.Errorf("%s: version %q, want 2.0 (HTTP API payload format 2.0)", where, e.Version)
		}
		var route *samtemplate.Route
		for _, r := range f.Routes {
			if r.String() == e.RouteKey {
				route = &r
			}
		}
		if route == nil {
			t.Errorf("%s: routeKey %q is none of the function's routes %v", where, e.RouteKey, routeKeys(f))
			return
		}
		if e.RequestContext.RouteKey != e.RouteKey {
			t.Errorf("%s: requestContext.routeKey %q differs from routeKey %q", where, e.RequestContext.RouteKey, e.RouteKey)
		}
		if route.Method != "ANY" && e.RequestContext.HTTP.Method != route.Method {
			t.Errorf("%s: requestContext.http.method %q, want %s", where, e.RequestContext.HTTP.Method, route.Method)
		}
		if e.RawPath != e.RequestContext.HTTP.Path || !pathMatches(route.Path, e.RawPath) {
			t.Errorf("%s: rawPath %q and requestContext.http.path %q must be equal and match %s",
				where, e.RawPath, e.RequestContext.HTTP.Path, route.Path)
		}
		if e.RawQueryString == nil || e.Headers["host"] == "" || e.RequestContext.DomainName == "" ||
			e.RequestContext.RequestID == "" || e.RequestContext.TimeEpoch == 0 || e.RequestContext.HTTP.SourceIP == "" {
			t.Errorf("%s: needs rawQueryString, headers.host, requestContext.domainName, requestId, timeEpoch and http.sourceIp", where)
		}
	}
	if len(f.Routes) == 0 && len(f.Schedules) > 0 {
		var e scheduledEvent
		if err := json.Unmarshal(raw, &e); err != nil {
			t.Errorf("%s: %v", where, err)
			return
		}
		if e.DetailType != "Scheduled Event" || e.Source != "aws.events" || e.Time == "" {
			t.Errorf("%s: detail-type %q source %q time %q, want an EventBridge scheduled event (Scheduled Event, aws.events)",
				where, e.DetailType, e.Source, e.Time)
		}
		if len(e.Resources) == 0 || !strings.HasPrefix(e.Resources[0], "arn:aws:events:") || !strings.Contains(e.Resources[0], ":rule/") {
			t.Errorf("%s: resources %v, want the rule's ARN (arn:aws:events:<region>:<account>:rule/<name>)", where, e.Resources)
		}
	}
}

// pathMatches reports whether path fits route, where {x} takes one segment and a final
// {x+} one or more.
func pathMatches(route, path string) bool {
	if route == samtemplate.DefaultRoutePath {
		return true
	}
	rs := strings.Split(strings.TrimPrefix(route, "/"), "/")
	ps := strings.Split(strings.TrimPrefix(path, "/"), "/")
	for i, r := range rs {
		if strings.HasPrefix(r, "{") && strings.HasSuffix(r, "+}") {
			return len(ps) > i && ps[i] != ""
		}
		if i >= len(ps) || ps[i] == "" {
			return false
		}
		if !strings.HasPrefix(r, "{") && r != ps[i] {
			return false
		}
	}
	return len(rs) == len(ps)
}

func TestDescriptorsNameOnlyExistingFunctions(t *testing.T) {
	t.Parallel()
	d := mustLoad(t)
	exists := map[string]bool{}
	for _, name := range d.functions {
		exists[name] = true
	}
	var stray []string
	for _, f := range d.sam.Functions {
		if origin, twin := streamingTwins[f.Name]; twin && exists[origin] {
			continue // a second deployment of functions/<origin>: TestStreamingTwins checks it
		}
		if !exists[f.Name] {
			stray = append(stray, fmt.Sprintf("template.yaml: %s (%s %s) has no functions/%s",
				f.LogicalID, samtemplate.FunctionEnvVar, f.Name, f.Name))
		}
	}
	fcNames := map[string]bool{}
	for name, res := range d.s.Resources {
		if res.Component != "fc3" {
			continue
		}
		fcNames[d.resolve(res.Props.FunctionName)] = true
		if !exists[name] {
			stray = append(stray, fmt.Sprintf("s.yaml: resource %s has no functions/%s", name, name))
		}
	}
	for name, res := range d.s.Resources {
		if res.Component != "fc3-domain" {
			continue
		}
		for _, r := range res.Props.RouteConfig.Routes {
			if fn := d.resolve(r.FunctionName); !fcNames[fn] {
				stray = append(stray, fmt.Sprintf("s.yaml: resources.%s routes %s to %s, which no fc3 resource deploys", name, r.Path, fn))
			}
		}
	}
	for _, name := range d.events {
		if !exists[name] {
			stray = append(stray, fmt.Sprintf("events/%s.json has no functions/%s", name, name))
		}
	}
	sort.Strings(stray)
	for _, s := range stray {
		t.Error(s)
	}
}

func TestSamplePath(t *testing.T) {
	t.Parallel()
	for route, want := range map[string]string{
		"/api/health":                  "/api/health",
		"/api/tenants/{code}/progress": "/api/tenants/x/progress",
		"/api/auth/{proxy+}":           "/api/auth/x/y",
	} {
		if got := samplePath(route); got != want || !pathMatches(route, got) {
			t.Errorf("samplePath(%q) = %q, want %q", route, got, want)
		}
	}
}

func TestPathMatches(t *testing.T) {
	t.Parallel()
	tests := []struct {
		route, path string
		want        bool
	}{
		{"/api/health", "/api/health", true},
		{"/api/health", "/api/health/x", false},
		{"/api/tenants/{code}/progress", "/api/tenants/acme/progress", true},
		{"/api/tenants/{code}/progress", "/api/tenants//progress", false},
		{"/api/auth/{proxy+}", "/api/auth/login", true},
		{"/api/auth/{proxy+}", "/api/auth/a/b", true},
		{"/api/auth/{proxy+}", "/api/auth", false},
		{"$default", "/anything", true},
	}
	for _, tt := range tests {
		if got := pathMatches(tt.route, tt.path); got != tt.want {
			t.Errorf("pathMatches(%q, %q) = %v, want %v", tt.route, tt.path, got, tt.want)
		}
	}
}
