// Package platform_test runs the real function binaries the ways they are
// deployed: under a Lambda Runtime API with the sample events (what
// `sam local invoke` and `make invoke` do), and as Aliyun FC custom runtimes
// over HTTP.
package platform_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"github.com/unitenant/unitenant/infra/schema"
	"github.com/unitenant/unitenant/scripts/runtimeapi"
	"github.com/unitenant/unitenant/shared/migration"
	"github.com/unitenant/unitenant/tests/testenv"
)

var binDir string // the function binaries built for this run

func TestMain(m *testing.M) { os.Exit(testenv.Main(m, &binDir)) }

// eventStatus is what each HTTP sample event must answer when nothing is
// seeded: these events carry no token, and are refused before any
// database (the contract sam local invoke shows a new user).
var eventStatus = map[string]int{"tenant-admin": 401, "tenant-api": 401, "tenant-create": 401, "storage": 401, "ai-chat": 401}

// openAIShaped are the functions whose sample event calls an OpenAI-compatible
// route: its error must be OpenAI's {"error":{"message",...}}, which OpenAI
// SDKs read, not the platform's envelope.
var openAIShaped = map[string]bool{"ai-chat": true}

// TestSampleEventsThroughLambda replays events/<function>.json through each
// function's lambda.Start path and checks the Lambda response.
func TestSampleEventsThroughLambda(t *testing.T) {
	t.Parallel()
	sysVersion := latest(t, schema.System)
	for _, fn := range testenv.Functions(t) {
		t.Run(fn, func(t *testing.T) {
			t.Parallel()
			env := testenv.NewSystem(t).Env()
			event, err := os.ReadFile(filepath.Join(testenv.Root(), "events", fn+".json"))
			if err != nil {
				t.Fatalf("every function needs a sample event: %v", err)
			}
			res, err := runtimeapi.Invoke(context.Background(), filepath.Join(binDir, fn), event, runtimeapi.Options{Env: env})
			if err != nil {
				t.Fatal(err)
			}
			if res.Err != nil {
				t.Fatalf("function error: %v", res.Err)
			}
			var probe struct {
				Version string `json:"version"`
			}
			_ = json.Unmarshal(event, &probe)
			if probe.Version == "2.0" { // an HTTP API request
				var resp events.APIGatewayV2HTTPResponse
				if err := json.Unmarshal(res.Payload, &resp); err != nil {
					t.Fatalf("response %s: %v", res.Payload, err)
				}
				want := 200
				if s, ok := eventStatus[fn]; ok {
					want = s
				}
				if resp.StatusCode != want || !strings.HasPrefix(resp.Headers["Content-Type"], "application/json") {
					t.Fatalf("status %d headers %v body %s", resp.StatusCode, resp.Headers, resp.Body)
				}
				if openAIShaped[fn] {
					checkOpenAIError(t, resp.Body)
				}
				if fn == "health" && !strings.Contains(resp.Body, fmt.Sprintf(`"schemaVersion":%d`, sysVersion)) {
					t.Errorf("health body %s lacks schemaVersion %d", resp.Body, sysVersion)
				}
				return
			}
			var job struct {
				Success bool            `json:"success"`
				Data    json.RawMessage `json:"data"`
			}
			if err := json.Unmarshal(res.Payload, &job); err != nil || !job.Success {
				t.Fatalf("job response %s (%v)", res.Payload, err)
			}
		})
	}
}

// checkOpenAIError checks that body is OpenAI's error shape, which OpenAI SDKs
// read: {"error":{"message","type",...}}, not the platform's envelope.
func checkOpenAIError(t *testing.T, body string) {
	t.Helper()
	var e struct {
		Error *struct {
			Message string `json:"message"`
			Type    string `json:"type"`
		} `json:"error"`
		Success *bool `json:"success"`
	}
	if err := json.Unmarshal([]byte(body), &e); err != nil || e.Error == nil || e.Error.Message == "" || e.Error.Type == "" || e.Success != nil {
		t.Errorf("body %s is not an OpenAI error {\"error\":{\"message\",\"type\",...}} (%v)", body, err)
	}
}

// TestAIChatThroughStreamingFunctionURL runs ai-chat as template.yaml's
// AiChatStreamFunction does: LAMBDA_HTTP_MODE=url-streaming behind a Function
// URL with InvokeMode RESPONSE_STREAM. The Function URL event is the sample
// event as a Function URL delivers it (the same payload 2.0, on the URL's
// host, route $default); the answer must be in lambdaurl's streamed form,
// with the same status and body as behind HTTP API.
func TestAIChatThroughStreamingFunctionURL(t *testing.T) {
	t.Parallel()
	raw, err := os.ReadFile(filepath.Join(testenv.Root(), "events", "ai-chat.json"))
	if err != nil {
		t.Fatal(err)
	}
	var event events.LambdaFunctionURLRequest
	if err := json.Unmarshal(raw, &event); err != nil {
		t.Fatal(err)
	}
	const urlHost = "abcdefghijklmnopqrstuvwxyz012345.lambda-url.us-east-1.on.aws"
	event.Headers["host"] = urlHost
	event.RequestContext.DomainName = urlHost
	event.RequestContext.DomainPrefix = "abcdefghijklmnopqrstuvwxyz012345"
	event.RequestContext.APIID = "abcdefghijklmnopqrstuvwxyz012345"
	urlEvent, err := json.Marshal(struct {
		events.LambdaFunctionURLRequest
		RouteKey string `json:"routeKey"`
	}{event, "$default"})
	if err != nil {
		t.Fatal(err)
	}
	env := append(testenv.NewSystem(t).Env(), "LAMBDA_HTTP_MODE=url-streaming")
	res, err := runtimeapi.Invoke(context.Background(), filepath.Join(binDir, "ai-chat"), urlEvent, runtimeapi.Options{Env: env})
	if err != nil {
		t.Fatal(err)
	}
	if res.Err != nil {
		t.Fatalf("function error: %v", res.Err)
	}
	// lambdaurl's streamed form: a JSON prelude, eight NUL bytes, the body.
	resp, err := runtimeapi.DecodeStreaming(res.Payload)
	if err != nil {
		t.Fatalf("not a Function URL streaming response: %v: %q", err, res.Payload)
	}
	if resp.StatusCode != eventStatus["ai-chat"] || !strings.HasPrefix(resp.Headers["Content-Type"], "application/json") {
		t.Fatalf("status %d headers %v body %s", resp.StatusCode, resp.Headers, resp.Body)
	}
	checkOpenAIError(t, resp.Body)
}

func latest(t *testing.T, load func() ([]migration.Migration, error)) int {
	t.Helper()
	ms, err := load()
	if err != nil {
		t.Fatal(err)
	}
	return migration.Latest(ms)
}

func TestLambdaFunctionErrorIsReported(t *testing.T) {
	t.Parallel()
	// provision-cron against a server where nothing listens: the invocation
	// must fail (so Lambda retries and alarms see it), not answer success.
	env := append(os.Environ(), "MYSQL_DSN=root@tcp(127.0.0.1:1)/unitenant?timeout=1s", "LOG_LEVEL=error")
	res, err := runtimeapi.Invoke(context.Background(), filepath.Join(binDir, "provision-cron"),
		[]byte(`{"detail-type":"Scheduled Event","source":"aws.events"}`), runtimeapi.Options{Env: env})
	if err != nil {
		t.Fatal(err)
	}
	if res.Err == nil {
		t.Fatalf("want a function error, got response %s", res.Payload)
	}
}

// startFC starts a function binary as an FC custom runtime on a free port.
func startFC(t *testing.T, fn string, env []string) string {
	t.Helper()
	port := testenv.FreePort(t)
	cmd := exec.Command(filepath.Join(binDir, fn))
	cmd.Env = append(env, "FC_SERVER_PORT="+port, "FC_FUNCTION_NAME="+fn)
	if testing.Verbose() {
		cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	}
	// FC stops an instance with SIGTERM: it must exit cleanly and soon.
	testenv.Start(t, cmd, syscall.SIGTERM, 12*time.Second, true, nil)
	testenv.WaitListening(t, "127.0.0.1:"+port, 3*time.Second)
	return "http://127.0.0.1:" + port
}

func TestHealthAsFCCustomRuntime(t *testing.T) {
	t.Parallel()
	base := startFC(t, "health", testenv.NewSystem(t).Env())
	req, _ := http.NewRequest("GET", base+"/api/health", nil)
	req.Header.Set("x-fc-request-id", "fc-0001-abcdef")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(b), `"database":"ok"`) {
		t.Fatalf("%d %s", resp.StatusCode, b)
	}
	if got := resp.Header.Get("X-Request-Id"); got != "fc-0001-abcdef" {
		t.Errorf("X-Request-Id = %q, want FC's request id", got)
	}
}

func TestJobThroughFCInvoke(t *testing.T) {
	t.Parallel()
	env := testenv.NewSystem(t).Env()
	base := startFC(t, "provision-cron", env)
	timer := `{"triggerTime":"2026-11-22T03:00:00Z","triggerName":"every-5-minutes","payload":""}`
	resp, err := http.Post(base+"/invoke", "application/json", strings.NewReader(timer))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	want := fmt.Sprintf(`"template":{"from":0,"to":%d`, latest(t, schema.Tenant))
	if resp.StatusCode != 200 || !strings.Contains(string(b), want) {
		t.Fatalf("POST /invoke: %d %s; want it to contain %s", resp.StatusCode, b, want)
	}
}

func TestLocalJobOnce(t *testing.T) {
	t.Parallel()
	sys := testenv.NewSystem(t)
	cmd := exec.Command(filepath.Join(binDir, "provision-cron"), "-once")
	cmd.Env = sys.Env()
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("provision-cron -once: %v", err)
	}
	var res struct {
		Template struct{ To int } `json:"template"`
	}
	if err := json.Unmarshal(out[strings.LastIndexByte(strings.TrimSpace(string(out)), '\n')+1:], &res); err != nil {
		t.Fatalf("-once output %q: %v", out, err)
	}
	if want := latest(t, schema.Tenant); res.Template.To != want {
		t.Fatalf("template at %d after -once, want %d", res.Template.To, want)
	}
	// A failing job exits non-zero.
	cmd = exec.Command(filepath.Join(binDir, "provision-cron"), "-once")
	cmd.Env = append(os.Environ(), "MYSQL_DSN=root@tcp(127.0.0.1:1)/unitenant?timeout=1s", "LOG_LEVEL=error")
	if err := cmd.Run(); err == nil {
		t.Fatal("provision-cron -once against a dead database exited 0")
	}
}
