package serverless_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-lambda-go/lambdaurl"

	"github.com/unitenant/unitenant/shared/httpapi"
	"github.com/unitenant/unitenant/shared/logging"
	"github.com/unitenant/unitenant/shared/serverless"
)

// app is the handler every platform serves in these tests.
func app() http.Handler {
	rt := httpapi.NewRouter()
	rt.HandleFunc("GET /host", func(w http.ResponseWriter, r *http.Request) {
		httpapi.OK(w, r, map[string]any{"host": serverless.Host(r), "requestId": logging.RequestID(r.Context()),
			"rHost": r.Host, "hostHeader": r.Header.Get("Host")})
	})
	rt.HandleFunc("GET /silent", func(http.ResponseWriter, *http.Request) {}) // writes nothing
	rt.HandleFunc("GET /panic", func(http.ResponseWriter, *http.Request) { panic("boom") })
	rt.HandleFunc("GET /slow", func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(300 * time.Millisecond)
		httpapi.OK(w, r, "done")
	})
	return rt
}

// gatewayDomain is the HTTP API's own domain name.
const gatewayDomain = "abc123.execute-api.us-east-1.amazonaws.com"

// apiEvent is an HTTP API event for path, served on domain (the custom
// domain the gateway matched, or its own), whose client sent a Host header
// host.
func apiEvent(path, domain, host string) []byte {
	ev := events.APIGatewayV2HTTPRequest{
		Version: "2.0", RouteKey: "GET " + path, RawPath: path,
		Headers: map[string]string{"host": host, "accept": "application/json", "x-forwarded-for": "203.0.113.1, 10.0.0.1"},
		RequestContext: events.APIGatewayV2HTTPRequestContext{
			DomainName: domain, RequestID: "gw-req-1",
			HTTP: events.APIGatewayV2HTTPRequestContextHTTPDescription{Method: "GET", Path: path, SourceIP: "203.0.113.1"},
		},
	}
	b, _ := json.Marshal(ev)
	return b
}

func invokeLambda(t *testing.T, path, host string) events.APIGatewayV2HTTPResponse {
	t.Helper()
	return invokeLambdaOn(t, path, gatewayDomain, host)
}

func invokeLambdaOn(t *testing.T, path, domain, host string) events.APIGatewayV2HTTPResponse {
	t.Helper()
	h := lambda.NewHandler(serverless.HTTPLambdaHandler(app(), logging.Discard(), 0))
	out, err := h.Invoke(context.Background(), apiEvent(path, domain, host))
	if err != nil {
		t.Fatalf("invoke %s: %v", path, err)
	}
	var resp events.APIGatewayV2HTTPResponse
	if err := json.Unmarshal(out, &resp); err != nil {
		t.Fatal(err)
	}
	return resp
}

func TestLambdaHTTPAPI(t *testing.T) {
	t.Parallel()
	t.Run("HostIsTheCustomDomainServed", func(t *testing.T) {
		// A wildcard custom domain: domainName is the name the client used.
		resp := invokeLambdaOn(t, "/host", "K001.Example.com", "K001.Example.com:443")
		if resp.StatusCode != 200 || !strings.Contains(resp.Body, `"host":"k001.example.com"`) {
			t.Fatalf("got %d %s", resp.StatusCode, resp.Body)
		}
	})
	t.Run("SilentHandlerIs200NotA504", func(t *testing.T) {
		if resp := invokeLambda(t, "/silent", "x.example.com"); resp.StatusCode != 200 {
			t.Fatalf("status %d, want 200 as net/http gives", resp.StatusCode)
		}
	})
	t.Run("PanicIs500WithRequestID", func(t *testing.T) {
		resp := invokeLambda(t, "/panic", "x.example.com")
		if resp.StatusCode != 500 || !strings.Contains(resp.Body, `"requestId"`) {
			t.Fatalf("got %d %s", resp.StatusCode, resp.Body)
		}
	})
	t.Run("UnknownRouteIs404Envelope", func(t *testing.T) {
		resp := invokeLambda(t, "/nope", "x.example.com")
		if resp.StatusCode != 404 || !strings.Contains(resp.Body, `"route_not_found"`) {
			t.Fatalf("got %d %s", resp.StatusCode, resp.Body)
		}
	})
}

func TestLambdaFunctionURLStreaming(t *testing.T) {
	t.Parallel()
	h := lambdaurl.Wrap(serverless.Handler(app(), logging.Discard(), 0))
	for _, tc := range []struct {
		path   string
		status int
	}{{"/silent", 200}, {"/host", 200}, {"/panic", 500}} {
		req := &events.LambdaFunctionURLRequest{
			RawPath: tc.path, Headers: map[string]string{"host": "fn.lambda-url.us-east-1.on.aws"},
			RequestContext: events.LambdaFunctionURLRequestContext{
				DomainName: "fn.lambda-url.us-east-1.on.aws",
				HTTP:       events.LambdaFunctionURLRequestContextHTTPDescription{Method: "GET", Path: tc.path},
			},
		}
		resp, err := h(context.Background(), req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != tc.status {
			t.Errorf("%s: status %d, want %d (%s)", tc.path, resp.StatusCode, tc.status, body)
		}
		if tc.path == "/host" && !strings.Contains(string(body), `"host":"fn.lambda-url.us-east-1.on.aws"`) {
			t.Errorf("host under lambdaurl: %s", body)
		}
	}
}

// startServer runs svc in mode on a free port and returns its base URL and a
// stop function that waits for Run to return.
func startServer(t *testing.T, mode serverless.Mode, svc serverless.Service) (string, func() error) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)
	ln.Close()
	env := map[string]string{"PORT": port, "FC_SERVER_PORT": port}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- serverless.Run(ctx, mode, svc, logging.Discard(), func(k string) string { return env[k] })
	}()
	base := "http://127.0.0.1:" + port
	for i := 0; ; i++ {
		c, err := net.Dial("tcp", "127.0.0.1:"+port)
		if err == nil {
			c.Close()
			break
		}
		if i > 200 {
			t.Fatalf("%s server did not start: %v", mode, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	stop := sync.OnceValue(func() error {
		cancel()
		select {
		case err := <-done:
			return err
		case <-time.After(15 * time.Second):
			return errors.New("Run did not return after cancel")
		}
	})
	t.Cleanup(func() { _ = stop() })
	return base, stop
}

func get(t *testing.T, url string, header map[string]string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest("GET", url, nil)
	for k, v := range header {
		if k == "Host" {
			req.Host = v
		} else {
			req.Header.Set(k, v)
		}
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestServerModes(t *testing.T) {
	t.Parallel()
	for _, mode := range []serverless.Mode{serverless.ModeFC, serverless.ModeLocal} {
		t.Run(string(mode), func(t *testing.T) {
			t.Parallel()
			base, _ := startServer(t, mode, serverless.Service{Handler: app()})
			if code, body := get(t, base+"/host", map[string]string{"Host": "K001.example.com:8080", "x-fc-request-id": "fc-req-42"}); code != 200 || !strings.Contains(body, `"host":"k001.example.com"`) {
				t.Fatalf("host: %d %s", code, body)
			} else if mode == serverless.ModeFC && !strings.Contains(body, `"requestId":"fc-req-42"`) {
				t.Errorf("FC request id not used: %s", body)
			}
			if code, _ := get(t, base+"/silent", nil); code != 200 {
				t.Errorf("silent handler: %d", code)
			}
			if code, body := get(t, base+"/panic", nil); code != 500 || !strings.Contains(body, "requestId") {
				t.Errorf("panic: %d %s", code, body)
			}
			if code, _ := get(t, base+"/host", nil); code != 200 {
				t.Errorf("after panic: %d", code)
			}
		})
	}
}

func TestGracefulShutdownFinishesInFlightRequests(t *testing.T) {
	t.Parallel()
	base, stop := startServer(t, serverless.ModeLocal, serverless.Service{Handler: app()})
	result := make(chan string, 1)
	go func() {
		code, body := get(t, base+"/slow", nil)
		result <- fmt.Sprint(code, " ", body)
	}()
	time.Sleep(100 * time.Millisecond) // the request is in flight
	if err := stop(); err != nil {
		t.Fatalf("Run after shutdown: %v", err)
	}
	if got := <-result; !strings.HasPrefix(got, "200 ") {
		t.Fatalf("in-flight request got %q", got)
	}
}

func TestJobs(t *testing.T) {
	t.Parallel()
	ok := func(ctx context.Context) (any, error) {
		return map[string]any{"swept": 3, "requestId": logging.RequestID(ctx)}, nil
	}
	failing := func(context.Context) (any, error) { return nil, errors.New("cluster unreachable") }

	t.Run("FCInvoke", func(t *testing.T) {
		t.Parallel()
		base, _ := startServer(t, serverless.ModeFC, serverless.Service{Job: ok})
		timer := `{"triggerTime":"2026-11-22T03:00:00Z","triggerName":"daily","payload":""}`
		resp, err := http.Post(base+"/invoke", "application/json", strings.NewReader(timer))
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || !strings.Contains(string(b), `"swept":3`) {
			t.Fatalf("POST /invoke: %d %s", resp.StatusCode, b)
		}
		if code, _ := get(t, base+"/invoke", nil); code != 405 {
			t.Errorf("GET /invoke: %d, want 405", code)
		}
	})
	t.Run("FCInvokeFailure", func(t *testing.T) {
		t.Parallel()
		base, _ := startServer(t, serverless.ModeFC, serverless.Service{Job: failing})
		resp, err := http.Post(base+"/invoke", "application/json", strings.NewReader(`{}`))
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 500 || strings.Contains(string(b), "cluster unreachable") {
			t.Fatalf("failing job: %d %s (want 500 without internal detail)", resp.StatusCode, b)
		}
	})
	t.Run("LambdaScheduledEvent", func(t *testing.T) {
		t.Parallel()
		ev := `{"version":"0","id":"1","detail-type":"Scheduled Event","source":"aws.events","time":"2026-11-22T03:00:00Z","detail":{}}`
		out, err := lambda.NewHandler(serverless.JobLambdaHandler(ok, logging.Discard())).Invoke(context.Background(), []byte(ev))
		if err != nil || !strings.Contains(string(out), `"success":true`) || !strings.Contains(string(out), `"swept":3`) {
			t.Fatalf("invoke: %s, %v", out, err)
		}
		if _, err := lambda.NewHandler(serverless.JobLambdaHandler(failing, logging.Discard())).Invoke(context.Background(), []byte(ev)); err == nil {
			t.Fatal("a failing job must fail the invocation so retries and alarms see it")
		}
	})
}

func TestDetectMode(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		env  map[string]string
		want serverless.Mode
	}{
		{map[string]string{}, serverless.ModeLocal},
		{map[string]string{"PORT": "8080"}, serverless.ModeLocal},
		{map[string]string{"FC_SERVER_PORT": "9000"}, serverless.ModeFC},
		{map[string]string{"FC_FUNCTION_NAME": "health"}, serverless.ModeFC},
		{map[string]string{"AWS_LAMBDA_RUNTIME_API": "127.0.0.1:9001"}, serverless.ModeLambda},
		{map[string]string{"AWS_LAMBDA_RUNTIME_API": "127.0.0.1:9001", "LAMBDA_HTTP_MODE": "url-streaming"}, serverless.ModeLambdaURL},
	} {
		if got := serverless.DetectMode(func(k string) string { return tc.env[k] }); got != tc.want {
			t.Errorf("DetectMode(%v) = %s, want %s", tc.env, got, tc.want)
		}
	}
}

func TestHost(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ hostField, header, want string }{
		{"k001.example.com", "", "k001.example.com"},
		{"K001.Example.COM:8080", "", "k001.example.com"},
		{"tenant.example.com.", "", "tenant.example.com"},
		// A literal Host header (Go's HTTP/2 server keeps one beside
		// :authority) is the client's claim, not what was served.
		{"k001.example.com", "k002.example.com", "k001.example.com"},
		{"[::1]:8080", "", "::1"},
	} {
		r, _ := http.NewRequest("GET", "http://placeholder/", nil)
		r.Host = tc.hostField
		if tc.header != "" {
			r.Header.Set("Host", tc.header)
		}
		if got := serverless.Host(r); got != tc.want {
			t.Errorf("Host(%q, header %q) = %q, want %q", tc.hostField, tc.header, got, tc.want)
		}
	}
}

func TestClientIP(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ remote, xff, want string }{
		{"203.0.113.7", "", "203.0.113.7"},                           // Lambda adapter: sourceIp, no port
		{"203.0.113.7:5555", "198.51.100.1", "203.0.113.7"},          // a public peer cannot claim another address
		{"127.0.0.1:5555", "198.51.100.1, 10.0.0.1", "198.51.100.1"}, // through a second private proxy
		{"10.1.2.3:80", "198.51.100.2", "198.51.100.2"},
		{"127.0.0.1:5555", "not-an-ip", "127.0.0.1"},
		// A client writing its own header: the proxy appends what it saw,
		// and that is the address, whatever the client claimed before it.
		{"10.1.2.3:80", "1.2.3.4, 198.51.100.3", "198.51.100.3"},
		{"10.1.2.3:80", "10.9.9.9, 198.51.100.3", "198.51.100.3"},
		{"10.1.2.3:80", "1.2.3.4, not-an-ip, 198.51.100.3", "198.51.100.3"},
		{"10.1.2.3:80", "1.2.3.4, not-an-ip", "10.1.2.3"},
		// Only private addresses (a client on the local network): the farthest.
		{"127.0.0.1:5555", "192.168.1.5, 10.0.0.1", "192.168.1.5"},
	} {
		r, _ := http.NewRequest("GET", "http://x/", nil)
		r.RemoteAddr = tc.remote
		if tc.xff != "" {
			r.Header.Set("X-Forwarded-For", tc.xff)
		}
		if got := serverless.ClientIP(r); got != tc.want {
			t.Errorf("ClientIP(%s, %q) = %s, want %s", tc.remote, tc.xff, got, tc.want)
		}
	}
}
