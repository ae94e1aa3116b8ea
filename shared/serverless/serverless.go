// Package serverless runs one http.Handler, or one job, the same way on every
// platform unitenant deploys to, chosen from the environment:
//
//   - AWS Lambda behind API Gateway HTTP API (payload 2.0), through
//     aws-lambda-go-api-proxy's httpadapter.NewV2;
//   - AWS Lambda Function URL with response streaming (lambdaurl), when
//     LAMBDA_HTTP_MODE=url-streaming (the AI bridge streams this way);
//   - Aliyun Function Compute custom runtime: a plain HTTP server on
//     0.0.0.0:$FC_SERVER_PORT (9000 by default); timer events arrive as
//     POST /invoke;
//   - locally: an HTTP server on 127.0.0.1:$PORT, jobs also on demand with
//     POST /invoke or once with -once.
//
// Whatever the platform, a handler sees the same request (r.Host and
// RequestHost are the host the platform served it for, never a header the
// client added) and the client gets the same response (a handler that writes
// nothing answers 200 everywhere, not 504 under the Lambda adapter).
package serverless

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"
	"unicode/utf8"

	"github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-lambda-go/lambdacontext"
	"github.com/aws/aws-lambda-go/lambdaurl"
	"github.com/awslabs/aws-lambda-go-api-proxy/core"
	"github.com/awslabs/aws-lambda-go-api-proxy/httpadapter"

	"github.com/unitenant/unitenant/shared/config"
	"github.com/unitenant/unitenant/shared/fault"
	"github.com/unitenant/unitenant/shared/httpapi"
	"github.com/unitenant/unitenant/shared/logging"
)

// Mode is how the process is being run.
type Mode string

// The modes, see the package comment.
const (
	ModeLambda    Mode = "lambda"
	ModeLambdaURL Mode = "lambda-url"
	ModeFC        Mode = "fc"
	ModeLocal     Mode = "local"
)

// DetectMode picks the mode from the environment the platform sets.
func DetectMode(getenv func(string) string) Mode {
	switch {
	case getenv("AWS_LAMBDA_RUNTIME_API") != "":
		if getenv("LAMBDA_HTTP_MODE") == "url-streaming" {
			return ModeLambdaURL
		}
		return ModeLambda
	case getenv("FC_SERVER_PORT") != "" || getenv("FC_FUNCTION_NAME") != "":
		return ModeFC
	}
	return ModeLocal
}

// Job is a scheduled unit of work. Its result is reported to the caller
// (the Lambda response, the body of POST /invoke) and logged.
type Job func(ctx context.Context) (any, error)

// Service is what a function's main builds: a handler or a job, and what to
// close on shutdown.
type Service struct {
	Handler http.Handler
	Job     Job
	Close   func() error
	// MaxBody is the largest request body (default httpapi.DefaultMaxBody);
	// JSON routes are held to the default by httpapi.Decode regardless.
	MaxBody int64
}

// Deps is what Main hands to a function's setup.
type Deps struct {
	Name   string
	Config config.Base
	Env    *config.Env // for the function's own variables; Main checks Env.Err after setup
	Log    *slog.Logger
}

// Setup builds a function's service from its dependencies.
type Setup func(ctx context.Context, d Deps) (Service, error)

// Main is a function's whole main: it reads the configuration, builds the
// service and serves it in the detected mode until SIGTERM. It exits non-zero
// when setup or serving fails.
func Main(name string, setup Setup) {
	once := flag.Bool("once", false, "run the job once and exit (local jobs)")
	flag.Parse()
	if err := run(name, setup, *once); err != nil {
		fmt.Fprintf(os.Stderr, "%s: %v\n", name, err)
		os.Exit(1)
	}
}

func run(name string, setup Setup, once bool) error {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	env := config.FromOS()
	base := config.LoadBase(env)
	log := logging.New(os.Stdout, name, base.LogLevel)
	svc, err := setup(ctx, Deps{Name: name, Config: base, Env: env, Log: log})
	if err == nil {
		err = env.Err()
	}
	if err != nil {
		return fmt.Errorf("setup: %w", err)
	}
	mode := DetectMode(os.Getenv)
	log.Info("starting", "mode", mode, "version", config.Version, "db", base.DB)
	defer func() {
		if svc.Close != nil {
			if err := svc.Close(); err != nil {
				log.Warn("close", "err", err)
			}
		}
	}()
	if svc.Job != nil && once {
		res, err := svc.Job(logging.WithRequestID(ctx, httpapi.NewRequestID()))
		if err != nil {
			return err
		}
		return json.NewEncoder(os.Stdout).Encode(res)
	}
	return Run(ctx, mode, svc, log, os.Getenv)
}

// Run serves svc in mode until ctx ends.
func Run(ctx context.Context, mode Mode, svc Service, log *slog.Logger, getenv func(string) string) error {
	switch mode {
	case ModeLambda, ModeLambdaURL:
		opts := []lambda.Option{lambda.WithContext(ctx), lambda.WithEnableSIGTERM(func() { log.Info("SIGTERM") })}
		switch {
		case svc.Job != nil:
			lambda.StartWithOptions(JobLambdaHandler(svc.Job, log), opts...)
		case mode == ModeLambdaURL:
			lambdaurl.Start(Handler(svc.Handler, log, svc.MaxBody), opts...)
		default:
			lambda.StartWithOptions(HTTPLambdaHandler(svc.Handler, log, svc.MaxBody), opts...)
		}
		return nil // lambda.Start only returns by exiting the process
	case ModeFC:
		port := getenv("FC_SERVER_PORT")
		if port == "" {
			port = "9000"
		}
		return ListenAndServe(ctx, "0.0.0.0:"+port, serverHandler(svc, log, "x-fc-request-id"), log)
	default:
		port := getenv("PORT")
		if port == "" {
			port = "8080"
		}
		return ListenAndServe(ctx, "127.0.0.1:"+port, serverHandler(svc, log, ""), log)
	}
}

// Handler wraps h in the standard middleware (maxBody 0: the default limit)
// and guarantees a status is written, so every platform answers the same.
// It also makes every platform's request look like net/http's: r.Host is
// the host the request was served for (see RequestHost) and r.Header holds
// no "Host"; a request whose host RequestHost refuses is answered 400.
// The errors answered before h runs take h's shape (httpapi.Failer).
func Handler(h http.Handler, log *slog.Logger, maxBody int64) http.Handler {
	fail := httpapi.FailOf(h)
	return ensureStatus(httpapi.StandardFail(servedHost(h, log, fail), log, maxBody, fail))
}

// servedHost sets r.Host to the authority the platform served r for and
// drops any literal Host header, so that nothing downstream can read the
// client's claim instead.
func servedHost(next http.Handler, log *slog.Logger, fail httpapi.FailFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, err := RequestHost(r); err != nil {
			fail(w, r, log, err)
			return
		}
		if served := servedAuthority(r); served != r.Host || r.Header["Host"] != nil {
			r = r.Clone(r.Context())
			r.Host = served
			delete(r.Header, "Host")
		}
		next.ServeHTTP(w, r)
	})
}

// HTTPLambdaHandler returns the function lambda.Start runs for an HTTP
// function behind API Gateway HTTP API (payload 2.0).
func HTTPLambdaHandler(h http.Handler, log *slog.Logger, maxBody int64) any {
	adapter := httpadapter.NewV2(withLambdaRequestID(Handler(h, log, maxBody)))
	return adapter.ProxyWithContext
}

// withLambdaRequestID uses the Lambda invocation's id as the request id.
func withLambdaRequestID(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if lc, ok := lambdacontext.FromContext(r.Context()); ok && lc.AwsRequestID != "" {
			r = r.WithContext(logging.WithRequestID(r.Context(), lc.AwsRequestID))
		}
		next.ServeHTTP(w, r)
	})
}

// ensureStatus writes 200 when a handler returned without writing anything:
// net/http does that implicitly, the Lambda adapter answers 504 instead.
func ensureStatus(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sw := &httpapi.StatusWriter{ResponseWriter: w}
		next.ServeHTTP(sw, r)
		if !sw.Written() {
			sw.WriteHeader(http.StatusOK)
		}
	})
}

// JobResponse is what a job answers: the Lambda response, the body of
// POST /invoke.
type JobResponse struct {
	Success   bool   `json:"success"`
	Data      any    `json:"data,omitempty"`
	RequestID string `json:"requestId,omitempty"`
}

// JobLambdaHandler returns the function lambda.Start runs for a job: it takes
// any event (EventBridge, Scheduler, a manual invoke) and fails the
// invocation when the job fails, so the platform's retries and alarms see it.
func JobLambdaHandler(job Job, log *slog.Logger) func(context.Context, json.RawMessage) (JobResponse, error) {
	return func(ctx context.Context, _ json.RawMessage) (JobResponse, error) {
		id := httpapi.NewRequestID()
		if lc, ok := lambdacontext.FromContext(ctx); ok && lc.AwsRequestID != "" {
			id = lc.AwsRequestID
		}
		ctx = logging.WithRequestID(ctx, id)
		data, err := runJob(ctx, job, log)
		if err != nil {
			return JobResponse{}, err
		}
		return JobResponse{Success: true, Data: data, RequestID: id}, nil
	}
}

func runJob(ctx context.Context, job Job, log *slog.Logger) (any, error) {
	start := time.Now()
	data, err := job(ctx)
	if err != nil {
		log.ErrorContext(ctx, "job failed", "err", err, "duration_ms", time.Since(start).Milliseconds())
		return nil, err
	}
	log.InfoContext(ctx, "job done", "result", data, "duration_ms", time.Since(start).Milliseconds())
	return data, nil
}

// serverHandler is what the FC and local servers run: the HTTP handler, or
// for a job, POST /invoke (FC timer triggers and the local gateway call it).
func serverHandler(svc Service, log *slog.Logger, platformIDHeader string) http.Handler {
	h := svc.Handler
	if svc.Job != nil {
		h = jobHTTPHandler(svc.Job, log)
	}
	h = Handler(h, log, svc.MaxBody)
	if platformIDHeader == "" {
		return h
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if id := r.Header.Get(platformIDHeader); id != "" {
			r = r.WithContext(logging.WithRequestID(r.Context(), id))
		}
		h.ServeHTTP(w, r)
	})
}

func jobHTTPHandler(job Job, log *slog.Logger) http.Handler {
	rt := httpapi.NewRouter()
	rt.HandleFunc("POST /invoke", func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body) // the event carries nothing a job needs
		data, err := runJob(r.Context(), job, log)
		if err != nil {
			httpapi.Fail(w, r, log, err)
			return
		}
		httpapi.OK(w, r, data)
	})
	return rt
}

// ListenAndServe serves h on addr until ctx ends, then shuts down gracefully,
// letting in-flight requests finish for up to 10 seconds.
func ListenAndServe(ctx context.Context, addr string, h http.Handler, log *slog.Logger) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("listen %s: %w", addr, err)
	}
	return Serve(ctx, ln, h, log)
}

// Serve is ListenAndServe on an existing listener.
func Serve(ctx context.Context, ln net.Listener, h http.Handler, log *slog.Logger) error {
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	log.Info("listening", "addr", ln.Addr().String())
	select {
	case err := <-errc:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	log.Info("stopped")
	return nil
}

// Errors of RequestHost, answered by Handler with 400 before any handler
// runs.
var (
	ErrHostNotASCII = fault.New(fault.Invalid, "invalid_host",
		"the host name must be ASCII: send an internationalized domain name in its punycode form (xn--...)")
	ErrHostInvalid = fault.New(fault.Invalid, "invalid_host", "the host is not a valid host name")
)

// RequestHost returns the host the request was served for, lower-cased,
// without port or trailing dot, on every platform. It is the authority the
// platform itself routed the request by, never a header a client can add
// beside it:
//
//   - under API Gateway (httpadapter) and a Function URL (lambdaurl), the
//     event's requestContext.domainName: the custom domain (a wildcard
//     one's actual name) or the gateway's own, on which the gateway
//     accepted the request. The event's "host" header is the client's
//     word, and the adapter's r.Host may be overridden (GO_API_HOST);
//   - under FC, the local gateway and any net/http server, r.Host: the
//     authority the server saw (the Host line in HTTP/1, its absolute-form
//     request target if it sent one, :authority in HTTP/2). Go's HTTP/2
//     server keeps a literal "host" header in r.Header next to
//     :authority; it is never read.
//
// A host that is not ASCII is refused (ErrHostNotASCII) before anything is
// lower-cased: Unicode case mapping would turn the Kelvin sign into "k",
// U+0130 into "i", and so make a name no DNS or certificate served look
// like a tenant's. So are control characters, a port that is not a number
// and a bracketed name that is no IP address (ErrHostInvalid).
func RequestHost(r *http.Request) (string, error) {
	return NormalizeHost(servedAuthority(r))
}

// Host is RequestHost without the error: "" for a host RequestHost refuses
// (Handler has already answered such a request 400).
func Host(r *http.Request) string {
	h, err := RequestHost(r)
	if err != nil {
		return ""
	}
	return h
}

// servedAuthority is the raw authority the platform served r for.
func servedAuthority(r *http.Request) string {
	if gw, ok := core.GetAPIGatewayV2ContextFromContext(r.Context()); ok && gw.DomainName != "" {
		return gw.DomainName
	}
	if ev, ok := lambdaurl.RequestFromContext(r.Context()); ok && ev.RequestContext.DomainName != "" {
		return ev.RequestContext.DomainName
	}
	return r.Host
}

// NormalizeHost turns an authority (host[:port]) into the host name routing
// compares: ASCII only, lower-cased, without port or one trailing dot.
func NormalizeHost(authority string) (string, error) {
	for i := 0; i < len(authority); i++ {
		switch c := authority[i]; {
		case c >= utf8.RuneSelf:
			return "", ErrHostNotASCII
		case c <= ' ' || c == 0x7f:
			return "", ErrHostInvalid
		}
	}
	h := authority
	if host, port, err := net.SplitHostPort(authority); err == nil {
		if strings.Trim(port, "0123456789") != "" ||
			strings.HasPrefix(authority, "[") && net.ParseIP(host) == nil {
			return "", ErrHostInvalid
		}
		h = host
	}
	return strings.TrimSuffix(asciiLower(h), "."), nil
}

// asciiLower lower-cases A-Z only: s is ASCII, and no other mapping may
// apply.
func asciiLower(s string) string {
	if !strings.ContainsFunc(s, func(r rune) bool { return 'A' <= r && r <= 'Z' }) {
		return s // the usual case: no copy
	}
	b := []byte(s)
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	return string(b)
}

// ClientIP returns the caller's address on every platform. Under the Lambda
// adapter RemoteAddr is API Gateway's sourceIp; behind a proxy on this
// machine or a private network (the local gateway, FC's front end) it is
// read from X-Forwarded-For, right to left: the nearest address that is not
// itself a private proxy's is the one our proxy saw. The entries left of it
// are whatever the client wrote (a proxy appends to the header it was
// sent), so a client cannot claim another address, only its own. A public
// peer's X-Forwarded-For is ignored: anyone can write that header.
func ClientIP(r *http.Request) string {
	peer := r.RemoteAddr
	if h, _, err := net.SplitHostPort(peer); err == nil {
		peer = h
	}
	if !internal(net.ParseIP(peer)) {
		return peer
	}
	hops := strings.Split(strings.Join(r.Header.Values("X-Forwarded-For"), ","), ",")
	for i := len(hops) - 1; i >= 0; i-- {
		hop := strings.TrimSpace(hops[i])
		ip := net.ParseIP(hop)
		switch {
		case ip == nil:
			return peer // a malformed hop: nothing left of it can be trusted
		case !internal(ip) || i == 0:
			return hop
		}
	}
	return peer
}

// internal reports whether ip is a proxy of ours: loopback or private.
func internal(ip net.IP) bool { return ip != nil && (ip.IsLoopback() || ip.IsPrivate()) }

// Dev reports whether the function runs in development (APP_ENV), where
// secrets may be generated under .dev/keys and local backends are allowed.
func (d Deps) Dev() bool { return d.Config.Env == "development" }
