package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/unitenant/unitenant/scripts/samtemplate"
)

// jobsPrefix is the path under which POST /_jobs/<name> runs a job at once.
const jobsPrefix = "/_jobs/"

// gateway is the running local API gateway: the children, the HTTP server and the
// schedules.
type gateway struct {
	cfg      config
	log      *logger
	router   *router
	children map[string]*child
	proxies  map[string]*httputil.ReverseProxy
	jobs     map[string]*job
	clock    clock
	client   *http.Client

	ln        net.Listener
	srv       *http.Server
	serveErr  chan error
	cancel    context.CancelFunc // stops the schedules and scheduled runs
	schedules sync.WaitGroup
}

// job is a function with schedules.
type job struct {
	name      string
	schedules []schedule
	// running holds a token while a run is in progress: never two runs of a job at once.
	running chan struct{}
}

// startGateway loads the template, starts the selected functions and serves. It returns
// once every function is ready and the server accepts requests; call shutdown to stop.
func startGateway(cfg config, stdout, stderr io.Writer) (*gateway, error) {
	log := &logger{stdout: stdout, stderr: stderr}
	tpl, err := samtemplate.Load(cfg.template)
	if err != nil {
		return nil, fmt.Errorf("load template: %w", err)
	}
	fns, err := selectFunctions(tpl, cfg.only)
	if err != nil {
		return nil, err
	}
	fns = reachable(fns, log)
	rt, err := newRouter(tpl.Functions)
	if err != nil {
		return nil, fmt.Errorf("routes: %w", err)
	}

	g := &gateway{
		cfg: cfg, log: log, router: rt,
		children: map[string]*child{},
		proxies:  map[string]*httputil.ReverseProxy{},
		jobs:     map[string]*job{},
		clock:    newScaledClock(time.Now(), cfg.timeScale),
		client:   &http.Client{},
		serveErr: make(chan error, 1),
	}

	anchor := g.clock.Now()
	var missing []string
	for _, f := range fns {
		bin := filepath.Join(cfg.bin, f.Name)
		if st, err := os.Stat(bin); err != nil || st.IsDir() {
			missing = append(missing, bin)
		}
		if !f.IsJob() {
			continue
		}
		j := &job{name: f.Name, running: make(chan struct{}, 1)}
		for _, expr := range f.Schedules {
			s, err := parseSchedule(expr, anchor)
			if err != nil {
				return nil, fmt.Errorf("function %s: %w", f.Name, err)
			}
			j.schedules = append(j.schedules, s)
		}
		g.jobs[f.Name] = j
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("function binaries not found: %s (build them first, or pick functions with -only)", strings.Join(missing, ", "))
	}

	g.ln, err = net.Listen("tcp", cfg.addr)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", cfg.addr, err)
	}
	if err := g.startChildren(fns); err != nil {
		_ = g.ln.Close()
		return nil, err
	}

	g.srv = &http.Server{Handler: g, ReadHeaderTimeout: 10 * time.Second}
	go func() { g.serveErr <- g.srv.Serve(g.ln) }()

	ctx, cancel := context.WithCancel(context.Background())
	g.cancel = cancel
	if cfg.schedules {
		for _, j := range g.jobs {
			for _, s := range j.schedules {
				g.schedules.Add(1)
				go g.runSchedule(ctx, j, s)
			}
		}
	}
	g.log.infof("listening on http://%s (%d functions)", g.ln.Addr(), len(fns))
	return g, nil
}

// selectFunctions returns the template's functions named in only, or all of them.
func selectFunctions(tpl *samtemplate.Template, only []string) ([]samtemplate.Function, error) {
	if len(only) == 0 {
		return tpl.Functions, nil
	}
	var fns []samtemplate.Function
	for _, name := range only {
		f, ok := tpl.Function(name)
		if !ok {
			var names []string
			for _, f := range tpl.Functions {
				names = append(names, f.Name)
			}
			return nil, fmt.Errorf("-only: no function %q in the template (have %s)", name, strings.Join(names, ", "))
		}
		fns = append(fns, f)
	}
	return fns, nil
}

// reachable drops the functions that nothing here would ever call: no HttpApi route and
// no schedule, such as a streaming twin that AWS reaches only through its Function URL
// (template.yaml's AiChatStreamFunction). Its code is another function's, which is served.
func reachable(fns []samtemplate.Function, log *logger) []samtemplate.Function {
	var out []samtemplate.Function
	for _, f := range fns {
		if !f.IsHTTP() && !f.IsJob() {
			log.infof("%s not started: it has no HttpApi route or schedule", f.Name)
			continue
		}
		out = append(out, f)
	}
	return out
}

// startChildren starts every function at once and waits for all of them.
func (g *gateway) startChildren(fns []samtemplate.Function) error {
	for i, f := range fns {
		port := g.cfg.basePort + i
		if g.cfg.basePort == 0 {
			var err error
			if port, err = freePort(); err != nil {
				return err
			}
		}
		env := childEnv(g.cfg.environ, map[string]string{"PORT": strconv.Itoa(port), samtemplate.FunctionEnvVar: f.Name})
		c := newChild(f.Name, filepath.Join(g.cfg.bin, f.Name), port, env, g.log, g.cfg.readyTimeout)
		g.children[f.Name] = c
		g.proxies[f.Name] = g.newProxy(c)
	}
	errs := make(chan error, len(fns))
	for _, c := range g.children {
		go func() { errs <- c.start() }()
	}
	var failed []error
	for range g.children {
		if err := <-errs; err != nil {
			failed = append(failed, err)
		}
	}
	if len(failed) > 0 {
		g.stopChildren()
		return errors.Join(failed...)
	}
	for _, f := range fns {
		g.log.infof("%s ready on port %d", f.Name, g.children[f.Name].port)
	}
	return nil
}

// cloudEnv names the variables by which a function binary would believe it runs in a
// cloud (shared/serverless picks its mode from them); the gateway's children run locally.
var cloudEnv = map[string]bool{"AWS_LAMBDA_RUNTIME_API": true, "FC_SERVER_PORT": true, "FC_FUNCTION_NAME": true}

// childEnv is environ without cloudEnv, with set applied (replacing any earlier value of
// those keys).
func childEnv(environ []string, set map[string]string) []string {
	env := make([]string, 0, len(environ)+len(set))
	for _, kv := range environ {
		k, _, _ := strings.Cut(kv, "=")
		if _, replaced := set[k]; !replaced && !cloudEnv[k] {
			env = append(env, kv)
		}
	}
	keys := make([]string, 0, len(set))
	for k := range set {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		env = append(env, k+"="+set[k])
	}
	return env
}

func (g *gateway) newProxy(c *child) *httputil.ReverseProxy {
	target := &url.URL{Scheme: "http", Host: c.addr()}
	return &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(target)
			// Tenant routing reads the Host: pass the client's, as API Gateway does.
			pr.Out.Host = pr.In.Host
			pr.SetXForwarded()
		},
		// Flush every write at once: server-sent events must flow as they are produced.
		FlushInterval: -1,
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			if r.Context().Err() == nil {
				g.log.infof("%s: %s %s: %v", c.name, r.Method, r.URL.Path, err)
			}
			writeJSON(w, http.StatusBadGateway, map[string]string{"message": "Bad Gateway"})
		},
	}
}

// ServeHTTP routes a request to its function, or runs a job for POST /_jobs/<name>.
func (g *gateway) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if name, ok := strings.CutPrefix(r.URL.Path, jobsPrefix); ok {
		g.serveJob(w, r, name)
		return
	}
	start := time.Now()
	sw := &statusWriter{ResponseWriter: w}
	fn := "-"
	defer func() {
		g.log.line("%s %s -> %s %d %s", r.Method, r.URL.Path, fn, sw.code(), formatDuration(time.Since(start)))
	}()

	rt, ok := g.router.match(r.Method, r.URL.Path)
	if !ok {
		writeJSON(sw, http.StatusNotFound, map[string]string{"message": "Not Found"})
		return
	}
	fn = rt.function
	c := g.children[fn]
	if c == nil {
		g.log.infof("%s %s: function %s is not running (see -only)", r.Method, r.URL.Path, fn)
		writeJSON(sw, http.StatusServiceUnavailable, map[string]string{"message": "Service Unavailable"})
		return
	}
	if err := c.awaitReady(r.Context(), g.cfg.readyTimeout); err != nil {
		g.log.infof("%s %s: %v", r.Method, r.URL.Path, err)
		writeJSON(sw, http.StatusServiceUnavailable, map[string]string{"message": "Service Unavailable"})
		return
	}
	g.proxies[fn].ServeHTTP(sw, r)
}

// serveJob runs the job name now (after a run in progress, if any) and answers with the
// function's own response.
func (g *gateway) serveJob(rw http.ResponseWriter, r *http.Request, name string) {
	// A run logs its own JOB line; a refused request gets a request line.
	start, invoked := time.Now(), false
	w := &statusWriter{ResponseWriter: rw}
	defer func() {
		if !invoked {
			g.log.line("%s %s -> - %d %s", r.Method, r.URL.Path, w.code(), formatDuration(time.Since(start)))
		}
	}()
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		writeError(w, http.StatusMethodNotAllowed, "method_not_allowed", "use POST "+jobsPrefix+"<name>")
		return
	}
	j, ok := g.jobs[name]
	if !ok || g.children[name] == nil {
		var names []string
		for n := range g.jobs {
			if g.children[n] != nil {
				names = append(names, n)
			}
		}
		sort.Strings(names)
		writeError(w, http.StatusNotFound, "job_not_found",
			fmt.Sprintf("no running job %q (jobs: %s)", name, strings.Join(names, ", ")))
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	if err != nil {
		writeError(w, http.StatusBadRequest, "bad_request", "read body: "+err.Error())
		return
	}
	if len(bytes.TrimSpace(body)) == 0 {
		body = timerEvent(g.clock.Now(), "local-manual")
	}
	select {
	case j.running <- struct{}{}:
	case <-r.Context().Done():
		return
	}
	defer func() { <-j.running }()

	invoked = true
	resp, err := g.invoke(r.Context(), name, body)
	if err != nil {
		writeError(w, http.StatusBadGateway, "job_failed", err.Error())
		return
	}
	for _, k := range []string{"Content-Type", "X-Request-Id"} {
		if v := resp.header.Get(k); v != "" {
			w.Header().Set(k, v)
		}
	}
	w.WriteHeader(resp.status)
	_, _ = w.Write(resp.body)
}

// jobResponse is a job function's answer to POST /invoke.
type jobResponse struct {
	status int
	header http.Header
	body   []byte
}

// invoke posts event to the job's /invoke and logs the run.
func (g *gateway) invoke(ctx context.Context, name string, event []byte) (*jobResponse, error) {
	start := time.Now()
	resp, err := g.post(ctx, name, event)
	if err != nil {
		g.log.line("JOB %s error %s: %v", name, formatDuration(time.Since(start)), err)
		return nil, err
	}
	g.log.line("JOB %s %d %s", name, resp.status, formatDuration(time.Since(start)))
	return resp, nil
}

func (g *gateway) post(ctx context.Context, name string, event []byte) (*jobResponse, error) {
	c := g.children[name]
	if err := c.awaitReady(ctx, g.cfg.readyTimeout); err != nil {
		return nil, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+c.addr()+"/invoke", bytes.NewReader(event))
	if err != nil {
		return nil, fmt.Errorf("job %s: %w", name, err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := g.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("job %s: %w", name, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("job %s: read response: %w", name, err)
	}
	return &jobResponse{status: resp.StatusCode, header: resp.Header, body: body}, nil
}

// timerEvent is the body of a local timer invocation, shaped like an Aliyun FC timer
// trigger's event.
func timerEvent(at time.Time, trigger string) []byte {
	b, _ := json.Marshal(struct {
		TriggerTime string `json:"triggerTime"`
		TriggerName string `json:"triggerName"`
		Payload     string `json:"payload"`
	}{at.UTC().Format(time.RFC3339), trigger, ""})
	return b
}

// runSchedule fires j at each time s names until ctx ends.
func (g *gateway) runSchedule(ctx context.Context, j *job, s schedule) {
	defer g.schedules.Done()
	for {
		now := g.clock.Now()
		at, ok := s.next(now)
		if !ok {
			g.log.infof("%s: schedule %s has no more runs", j.name, s)
			return
		}
		if !g.clock.sleep(ctx, at.Sub(now)) {
			return
		}
		select {
		case j.running <- struct{}{}:
		default:
			g.log.line("JOB %s skipped (%s): the previous run is still going", j.name, s)
			continue
		}
		g.schedules.Add(1)
		go func() {
			defer g.schedules.Done()
			defer func() { <-j.running }()
			_, _ = g.invoke(ctx, j.name, timerEvent(at, "local-schedule"))
		}()
	}
}

// addr is the address the gateway serves on.
func (g *gateway) addr() string { return g.ln.Addr().String() }

// shutdown stops the schedules, the server (letting requests finish for up to the stop
// timeout) and the children (SIGTERM, then SIGKILL after the stop timeout).
func (g *gateway) shutdown() error {
	g.cancel()
	var wg sync.WaitGroup
	var srvErr error
	wg.Add(2)
	go func() {
		defer wg.Done()
		ctx, cancel := context.WithTimeout(context.Background(), g.cfg.stopTimeout)
		defer cancel()
		if err := g.srv.Shutdown(ctx); err != nil {
			_ = g.srv.Close()
			if !errors.Is(err, context.DeadlineExceeded) {
				srvErr = fmt.Errorf("shut the server down: %w", err)
			}
		}
	}()
	go func() {
		defer wg.Done()
		g.stopChildren()
	}()
	wg.Wait()
	g.schedules.Wait()
	return srvErr
}

func (g *gateway) stopChildren() {
	var wg sync.WaitGroup
	for _, c := range g.children {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c.stop(g.cfg.stopTimeout)
		}()
	}
	wg.Wait()
}

// statusWriter records the status a handler sends, and passes flushes through.
type statusWriter struct {
	http.ResponseWriter
	status int
}

// WriteHeader implements http.ResponseWriter.
func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 && code >= 200 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

// Write implements http.ResponseWriter.
func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

// Flush implements http.Flusher, which streaming responses need.
func (w *statusWriter) Flush() {
	_ = http.NewResponseController(w.ResponseWriter).Flush()
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func (w *statusWriter) code() int {
	if w.status == 0 {
		return http.StatusOK
	}
	return w.status
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// writeError writes the project's error envelope.
func writeError(w http.ResponseWriter, status int, code, message string) {
	type apiError struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	}
	writeJSON(w, status, struct {
		Success bool     `json:"success"`
		Error   apiError `json:"error"`
	}{false, apiError{code, message}})
}
