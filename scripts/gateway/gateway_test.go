package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// fakeBin is the directory holding testdata/fakefn built as "web" and "tick-cron", the
// two functions of testdata/template.yaml.
var fakeBin string

func TestMain(m *testing.M) {
	os.Exit(runTests(m))
}

func runTests(m *testing.M) int {
	dir, err := os.MkdirTemp("", "gateway-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	fakeBin = dir
	web := filepath.Join(dir, "web")
	out, err := exec.Command("go", "build", "-o", web, "./testdata/fakefn").CombinedOutput()
	if err != nil {
		fmt.Fprintf(os.Stderr, "build testdata/fakefn: %v\n%s", err, out)
		return 1
	}
	if err := copyFile(web, filepath.Join(dir, "tick-cron")); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return m.Run()
}

func copyFile(src, dst string) error {
	b, err := os.ReadFile(src)
	if err != nil {
		return fmt.Errorf("copy %s: %w", src, err)
	}
	return os.WriteFile(dst, b, 0o755)
}

// syncBuffer is a bytes.Buffer safe for the gateway's concurrent writers.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// testGateway is a gateway started by a test, with its output.
type testGateway struct {
	*gateway
	stdout, stderr *syncBuffer
	url            string
}

// startTestGateway starts the gateway on testdata/template.yaml and the fake binaries,
// on free ports, with args appended, and stops it when the test ends.
func startTestGateway(t *testing.T, env []string, args ...string) *testGateway {
	t.Helper()
	g, err := tryStartTestGateway(t, env, args...)
	if err != nil {
		t.Fatalf("start gateway: %v", err)
	}
	return g
}

func tryStartTestGateway(t *testing.T, env []string, args ...string) (*testGateway, error) {
	t.Helper()
	base := []string{"-template", "testdata/template.yaml", "-bin", fakeBin, "-addr", "127.0.0.1:0", "-base-port", "0"}
	cfg, err := parseConfig(append(base, args...), append(os.Environ(), env...), io.Discard)
	if err != nil {
		t.Fatalf("parseConfig: %v", err)
	}
	tg := &testGateway{stdout: &syncBuffer{}, stderr: &syncBuffer{}}
	g, err := startGateway(cfg, tg.stdout, tg.stderr)
	if err != nil {
		return nil, err
	}
	tg.gateway, tg.url = g, "http://"+g.addr()
	t.Cleanup(func() {
		if err := g.shutdown(); err != nil {
			t.Errorf("shutdown: %v", err)
		}
		if t.Failed() {
			t.Logf("gateway stdout:\n%s\ngateway stderr:\n%s", tg.stdout, tg.stderr)
		}
	})
	return tg, nil
}

// echo is fakefn's answer to an ordinary request.
type echo struct {
	Function        string `json:"function"`
	PID             int    `json:"pid"`
	Method          string `json:"method"`
	Path            string `json:"path"`
	Query           string `json:"query"`
	Host            string `json:"host"`
	Body            string `json:"body"`
	XForwardedFor   string `json:"xForwardedFor"`
	XForwardedHost  string `json:"xForwardedHost"`
	XForwardedProto string `json:"xForwardedProto"`
}

func do(t *testing.T, method, url, host, body string) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if host != "" {
		req.Host = host
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: read: %v", method, url, err)
	}
	return resp.StatusCode, b
}

func decodeEcho(t *testing.T, b []byte) echo {
	t.Helper()
	var e echo
	if err := json.Unmarshal(b, &e); err != nil {
		t.Fatalf("decode %q: %v", b, err)
	}
	return e
}

// eventually retries cond every 50ms until it holds or d passes.
func eventually(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", d, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func TestGatewayProxy(t *testing.T) {
	t.Parallel()
	g := startTestGateway(t, nil, "-schedules=false")

	tests := []struct {
		name, method, path, host, body string
		wantPath                       string
	}{
		{"Exact", "GET", "/api/health", "acme.unitenant.test", "", "/api/health"},
		{"Param", "DELETE", "/api/items/42?force=1", "127.0.0.1", "", "/api/items/42"},
		{"Greedy", "PUT", "/api/files/a/b/c.txt", "shop.example.com:8443", "payload", "/api/files/a/b/c.txt"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			status, b := do(t, tt.method, g.url+tt.path, tt.host, tt.body)
			if status != http.StatusOK {
				t.Fatalf("status = %d, body %s", status, b)
			}
			e := decodeEcho(t, b)
			if e.Function != "web" || e.Method != tt.method || e.Path != tt.wantPath || e.Body != tt.body {
				t.Errorf("got %+v, want function web, %s %s, body %q", e, tt.method, tt.wantPath, tt.body)
			}
			if e.Host != tt.host {
				t.Errorf("function saw Host %q, want %q", e.Host, tt.host)
			}
			if e.XForwardedHost != tt.host || e.XForwardedProto != "http" || e.XForwardedFor != "127.0.0.1" {
				t.Errorf("X-Forwarded-Host/-Proto/-For = %q, %q, %q; want %q, http, 127.0.0.1",
					e.XForwardedHost, e.XForwardedProto, e.XForwardedFor, tt.host)
			}
			want := tt.method + " " + tt.wantPath + " -> web 200 "
			eventually(t, 2*time.Second, "request line "+want, func() bool { return strings.Contains(g.stdout.String(), want) })
		})
	}

	notFound := []struct{ name, method, path string }{
		{"UnknownPath", "GET", "/api/nope"},
		{"WrongMethod", "POST", "/api/health"},
		{"GreedyNeedsASegment", "GET", "/api/files/"},
	}
	for _, tt := range notFound {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			status, b := do(t, tt.method, g.url+tt.path, "", "")
			if status != http.StatusNotFound || strings.TrimSpace(string(b)) != `{"message":"Not Found"}` {
				t.Errorf("got %d %s, want 404 {\"message\":\"Not Found\"}", status, b)
			}
			want := tt.method + " " + tt.path + " -> - 404 "
			eventually(t, 2*time.Second, "request line "+want, func() bool { return strings.Contains(g.stdout.String(), want) })
		})
	}

	t.Run("StreamsWithoutBuffering", func(t *testing.T) {
		t.Parallel()
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		req, _ := http.NewRequestWithContext(ctx, "GET", g.url+"/api/stream", nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("GET /api/stream: %v", err)
		}
		defer resp.Body.Close()
		// fakefn sends "data: two" only after 3s: the first event must arrive well before.
		line, err := bufio.NewReader(resp.Body).ReadString('\n')
		if err != nil || line != "data: one\n" {
			t.Fatalf("first line = %q, %v; want the first event before the stream ends", line, err)
		}
	})
}

func TestGatewayJobs(t *testing.T) {
	t.Parallel()
	g := startTestGateway(t, nil, "-schedules=false")

	t.Run("RunNow", func(t *testing.T) {
		t.Parallel()
		status, b := do(t, "POST", g.url+"/_jobs/tick-cron", "", "")
		if status != http.StatusOK {
			t.Fatalf("status = %d, body %s", status, b)
		}
		var resp struct {
			Success bool `json:"success"`
			Data    struct {
				Function string         `json:"function"`
				Event    map[string]any `json:"event"`
			} `json:"data"`
		}
		if err := json.Unmarshal(b, &resp); err != nil {
			t.Fatalf("decode %s: %v", b, err)
		}
		if !resp.Success || resp.Data.Function != "tick-cron" {
			t.Errorf("response %s: want success from tick-cron", b)
		}
		if _, err := time.Parse(time.RFC3339, fmt.Sprint(resp.Data.Event["triggerTime"])); err != nil {
			t.Errorf("event %v: triggerTime not RFC 3339: %v", resp.Data.Event, err)
		}
		if !strings.Contains(g.stdout.String(), "JOB tick-cron 200 ") {
			t.Errorf("stdout lacks the JOB line")
		}
	})
	t.Run("PassesFailureThrough", func(t *testing.T) {
		t.Parallel()
		status, b := do(t, "POST", g.url+"/_jobs/tick-cron", "", `{"fail":true}`)
		if status != http.StatusInternalServerError || !strings.Contains(string(b), `"code":"internal"`) {
			t.Errorf("got %d %s, want the function's 500 envelope", status, b)
		}
	})
	t.Run("UnknownJob", func(t *testing.T) {
		t.Parallel()
		for _, name := range []string{"nope", "web"} {
			status, b := do(t, "POST", g.url+"/_jobs/"+name, "", "")
			if status != http.StatusNotFound || !strings.Contains(string(b), `"success":false`) || !strings.Contains(string(b), name) {
				t.Errorf("POST /_jobs/%s: got %d %s, want a 404 error envelope naming it", name, status, b)
			}
		}
	})
	t.Run("GetRefused", func(t *testing.T) {
		t.Parallel()
		if status, b := do(t, "GET", g.url+"/_jobs/tick-cron", "", ""); status != http.StatusMethodNotAllowed {
			t.Errorf("got %d %s, want 405", status, b)
		}
	})
}

func TestGatewaySchedules(t *testing.T) {
	t.Parallel()
	// At 600x, rate(1 minute) fires every 100ms.
	g := startTestGateway(t, nil, "-time-scale", "600")
	eventually(t, 5*time.Second, "two scheduled runs", func() bool {
		return strings.Count(g.stdout.String(), "JOB tick-cron 200 ") >= 2
	})
	if !strings.Contains(g.stdout.String(), "[tick-cron] fakefn invoke local-schedule") {
		t.Errorf("stdout lacks the function's own prefixed line about the scheduled event")
	}
}

func TestGatewayScheduleSkipsWhileRunning(t *testing.T) {
	t.Parallel()
	// Each run takes 350ms, ticks come every 100ms: some ticks must be skipped.
	g := startTestGateway(t, []string{"FAKEFN_INVOKE_DELAY=350ms"}, "-time-scale", "600", "-only", "tick-cron")
	eventually(t, 5*time.Second, "a skipped tick and a completed run", func() bool {
		out := g.stdout.String()
		return strings.Contains(out, "JOB tick-cron skipped") && strings.Contains(out, "JOB tick-cron 200 ")
	})
}

func TestGatewayRestartsChild(t *testing.T) {
	t.Parallel()
	g := startTestGateway(t, nil, "-schedules=false")
	_, b := do(t, "GET", g.url+"/api/health", "", "")
	first := decodeEcho(t, b).PID
	if err := syscall.Kill(first, syscall.SIGKILL); err != nil {
		t.Fatalf("kill %d: %v", first, err)
	}
	// The gateway holds requests while the function restarts.
	eventually(t, 10*time.Second, "a new web process", func() bool {
		status, b := do(t, "GET", g.url+"/api/health", "", "")
		return status == http.StatusOK && decodeEcho(t, b).PID != first
	})
	if !strings.Contains(g.stderr.String(), "web exited") {
		t.Errorf("stderr does not report the exit")
	}
}

func TestRunShutsDown(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	stdout, stderr := &syncBuffer{}, &syncBuffer{}
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"-template", "testdata/template.yaml", "-bin", fakeBin, "-addr", "127.0.0.1:0", "-base-port", "0"},
			os.Environ(), stdout, stderr)
	}()
	var addr string
	eventually(t, 10*time.Second, "the gateway to listen", func() bool {
		select {
		case err := <-done:
			t.Fatalf("run returned early: %v\n%s", err, stderr)
		default:
		}
		_, rest, ok := strings.Cut(stderr.String(), "listening on http://")
		addr, _, _ = strings.Cut(rest, " ")
		return ok
	})
	var pids []int
	eventually(t, 10*time.Second, "the gateway to serve", func() bool {
		resp, err := http.Get("http://" + addr + "/api/health")
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		var e echo
		if json.NewDecoder(resp.Body).Decode(&e) == nil {
			pids = append(pids, e.PID)
		}
		return resp.StatusCode == http.StatusOK
	})

	start := time.Now()
	cancel() // what SIGINT or SIGTERM does in main
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("run: %v", err)
		}
	case <-time.After(8 * time.Second):
		t.Fatal("run did not return within 8s of the signal")
	}
	if d := time.Since(start); d > 6*time.Second {
		t.Errorf("shutdown took %s", d)
	}
	for _, pid := range pids {
		if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
			t.Errorf("function process %d still exists after shutdown (kill 0: %v)", pid, err)
		}
	}
	if _, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
		t.Errorf("gateway still accepts connections on %s", addr)
	}
	out := stdout.String()
	for _, want := range []string{"[web] fakefn stopping", "[tick-cron] fakefn stopping"} {
		if !strings.Contains(out, want) {
			t.Errorf("stdout lacks %q (SIGTERM not forwarded?)\n%s", want, out)
		}
	}
}

func TestGatewayKillsStubbornChild(t *testing.T) {
	t.Parallel()
	cfg, err := parseConfig([]string{"-template", "testdata/template.yaml", "-bin", fakeBin, "-addr", "127.0.0.1:0",
		"-base-port", "0", "-only", "web"}, append(os.Environ(), "FAKEFN_IGNORE_TERM=1"), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	cfg.stopTimeout = 300 * time.Millisecond
	stdout, stderr := &syncBuffer{}, &syncBuffer{}
	g, err := startGateway(cfg, stdout, stderr)
	if err != nil {
		t.Fatalf("start gateway: %v", err)
	}
	_, b := do(t, "GET", "http://"+g.addr()+"/api/health", "", "")
	pid := decodeEcho(t, b).PID
	start := time.Now()
	if err := g.shutdown(); err != nil {
		t.Errorf("shutdown: %v", err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("shutdown took %s, want about the stop timeout", d)
	}
	if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
		t.Errorf("process %d survived shutdown (kill 0: %v)", pid, err)
	}
	if !strings.Contains(stderr.String(), "web did not stop within 300ms; killing it") {
		t.Errorf("stderr lacks the kill notice:\n%s", stderr)
	}
}

func TestGatewayStartErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		env  []string
		args []string
		want string
	}{
		{"UnknownOnly", nil, []string{"-only", "web,nope"}, `no function "nope"`},
		{"MissingBinary", nil, []string{"-bin", t.TempDir()}, "function binaries not found"},
		{"ExitsAtOnce", []string{"FAKEFN_EXIT=3"}, []string{"-only", "web"}, "function web: exited before listening"},
		{"NeverListens", []string{"FAKEFN_NO_LISTEN=1"}, []string{"-only", "tick-cron", "-ready-timeout", "300ms"}, "function tick-cron: not listening"},
		{"BadTemplate", nil, []string{"-template", "testdata/missing.yaml"}, "load template"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := tryStartTestGateway(t, tt.env, tt.args...)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error = %v, want one containing %q", err, tt.want)
			}
		})
	}
}

// TestGatewaySkipsUnreachable: a function with no route and no schedule (a streaming twin
// behind a Lambda Function URL) has nothing the gateway could deliver, and needs no binary.
func TestGatewaySkipsUnreachable(t *testing.T) {
	t.Parallel()
	tpl, err := os.ReadFile("testdata/template.yaml")
	if err != nil {
		t.Fatal(err)
	}
	twin := `
  WebStreamFunction:
    Type: AWS::Serverless::Function
    Metadata:
      BuildMethod: makefile
    Properties:
      CodeUri: .
      FunctionUrlConfig:
        AuthType: NONE
        InvokeMode: RESPONSE_STREAM
      Environment:
        Variables:
          UNITENANT_FUNCTION: web-stream
          LAMBDA_HTTP_MODE: url-streaming
`
	withTwin := bytes.Replace(tpl, []byte("\nOutputs:"), []byte(twin+"\nOutputs:"), 1)
	path := filepath.Join(t.TempDir(), "template.yaml")
	if err := os.WriteFile(path, withTwin, 0o600); err != nil {
		t.Fatal(err)
	}
	g := startTestGateway(t, nil, "-template", path, "-schedules=false")
	if _, ok := g.children["web-stream"]; ok || len(g.children) != 2 {
		t.Errorf("children %v, want web and tick-cron only", g.children)
	}
	if !strings.Contains(g.stderr.String(), "web-stream not started") {
		t.Errorf("stderr lacks the skip notice:\n%s", g.stderr)
	}
	if code, body := do(t, "GET", g.url+"/api/health", "", ""); code != 200 || decodeEcho(t, body).Function != "web" {
		t.Errorf("GET /api/health: %d %s", code, body)
	}
}

func TestParseConfig(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		args     []string
		environ  []string
		wantAddr string
		wantOnly []string
		wantErr  bool
	}{
		{"Defaults", nil, nil, ":8080", nil, false},
		{"PortEnv", nil, []string{"PORT=3000"}, ":3000", nil, false},
		{"AddrFlagWins", []string{"-addr", "127.0.0.1:9"}, []string{"PORT=3000"}, "127.0.0.1:9", nil, false},
		{"Only", []string{"-only", "health, login,"}, nil, ":8080", []string{"health", "login"}, false},
		{"BadPort", []string{"-base-port", "-1"}, nil, "", nil, true},
		{"Stray", []string{"extra"}, nil, "", nil, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cfg, err := parseConfig(tt.args, tt.environ, io.Discard)
			if tt.wantErr {
				if err == nil {
					t.Error("no error")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if cfg.addr != tt.wantAddr || fmt.Sprint(cfg.only) != fmt.Sprint(tt.wantOnly) {
				t.Errorf("addr %q only %v; want %q %v", cfg.addr, cfg.only, tt.wantAddr, tt.wantOnly)
			}
			if cfg.template != "template.yaml" && tt.args == nil {
				t.Errorf("template = %q", cfg.template)
			}
		})
	}
}

func TestList(t *testing.T) {
	t.Parallel()
	var out bytes.Buffer
	if err := run(context.Background(), []string{"-list", "-template", "testdata/template.yaml"}, nil, &out, io.Discard); err != nil {
		t.Fatalf("run -list: %v", err)
	}
	var got struct {
		Functions []struct {
			Name      string   `json:"name"`
			Schedules []string `json:"schedules"`
			Routes    []struct {
				Method, Path string
			} `json:"routes"`
		} `json:"functions"`
	}
	if err := json.Unmarshal(out.Bytes(), &got); err != nil {
		t.Fatalf("decode %s: %v", out.String(), err)
	}
	if len(got.Functions) != 2 || got.Functions[0].Name != "tick-cron" || got.Functions[1].Name != "web" ||
		len(got.Functions[1].Routes) != 4 || fmt.Sprint(got.Functions[0].Schedules) != "[rate(1 minute)]" {
		t.Errorf("got %s", out.String())
	}

	bad := filepath.Join(t.TempDir(), "template.yaml")
	tpl, err := os.ReadFile("testdata/template.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bad, bytes.Replace(tpl, []byte("rate(1 minute)"), []byte("rate(1 minutes)"), 1), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := run(context.Background(), []string{"-list", "-template", bad}, nil, io.Discard, io.Discard); err == nil || !strings.Contains(err.Error(), "tick-cron") {
		t.Errorf("run -list on a bad schedule: %v, want an error naming tick-cron", err)
	}
}

// TestListRepoTemplate checks that the gateway can serve the routes and run the schedules
// of the project's own template.yaml; tests/deploy checks the rest of it.
func TestListRepoTemplate(t *testing.T) {
	t.Parallel()
	tpl := filepath.Join("..", "..", "template.yaml")
	if err := run(context.Background(), []string{"-list", "-template", tpl}, nil, io.Discard, io.Discard); err != nil {
		t.Errorf("run -list -template %s: %v", tpl, err)
	}
}

func TestChildEnv(t *testing.T) {
	t.Parallel()
	got := childEnv([]string{"A=1", "PORT=1", "FC_SERVER_PORT=9000", "B=2"}, map[string]string{"PORT": "9", "UNITENANT_FUNCTION": "web"})
	want := []string{"A=1", "B=2", "PORT=9", "UNITENANT_FUNCTION=web"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("childEnv = %v, want %v", got, want)
	}
}

func TestLineWriter(t *testing.T) {
	t.Parallel()
	var out bytes.Buffer
	l := &logger{stdout: &out, stderr: io.Discard}
	w := l.prefixed("fn", &out)
	for _, s := range []string{"one\ntw", "o\n", "three"} {
		if _, err := w.Write([]byte(s)); err != nil {
			t.Fatal(err)
		}
	}
	w.flush()
	if want := "[fn] one\n[fn] two\n[fn] three\n"; out.String() != want {
		t.Errorf("got %q, want %q", out.String(), want)
	}
}
