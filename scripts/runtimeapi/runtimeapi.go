// Package runtimeapi runs a function binary the way AWS Lambda does, without
// Docker: it serves the Lambda Runtime API on loopback, starts the binary with
// AWS_LAMBDA_RUNTIME_API pointing at it, hands it one event and returns what
// the function answered. The function runs its real lambda.Start path, so
// this is the contract `sam local invoke` checks: event in, response out.
package runtimeapi

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"
)

// FunctionError is the error a function reported (its handler returned an
// error or panicked, or it failed to initialise).
type FunctionError struct {
	ErrorMessage string `json:"errorMessage"`
	ErrorType    string `json:"errorType"`
}

func (e *FunctionError) Error() string { return e.ErrorType + ": " + e.ErrorMessage }

// Result is one invocation's outcome.
type Result struct {
	Payload  []byte         // the response body the function posted
	Streamed bool           // the function used response streaming (Function URL mode)
	Err      *FunctionError // set when the function reported an error
	Duration time.Duration
}

// Options tune an invocation.
type Options struct {
	Env     []string      // the function's environment (besides the Runtime API's own variables)
	Timeout time.Duration // the function's timeout; 30 s by default
	Stdout  io.Writer     // the function's logs; discarded when nil
}

// Invoke runs binary with event and returns its answer. The process is
// killed afterwards, as a Lambda sandbox is frozen.
func Invoke(ctx context.Context, binary string, event []byte, opt Options) (*Result, error) {
	if opt.Timeout <= 0 {
		opt.Timeout = 30 * time.Second
	}
	if !json.Valid(event) {
		return nil, errors.New("event is not valid JSON")
	}
	ctx, cancel := context.WithTimeout(ctx, opt.Timeout+5*time.Second)
	defer cancel()

	rt := &runtime{event: event, id: newID(), deadline: time.Now().Add(opt.Timeout), done: make(chan struct{})}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("runtime api listen: %w", err)
	}
	srv := &http.Server{Handler: rt.routes(ctx)}
	go func() { _ = srv.Serve(ln) }()
	defer srv.Close()

	name := filepath.Base(binary)
	cmd := exec.CommandContext(ctx, binary)
	cmd.Env = append(append([]string{}, opt.Env...),
		"AWS_LAMBDA_RUNTIME_API="+ln.Addr().String(),
		"AWS_LAMBDA_FUNCTION_NAME="+name,
		"AWS_LAMBDA_FUNCTION_VERSION=$LATEST",
		"AWS_LAMBDA_FUNCTION_MEMORY_SIZE=256",
		"AWS_LAMBDA_LOG_GROUP_NAME=/aws/lambda/"+name,
		"AWS_REGION=us-east-1",
		"AWS_DEFAULT_REGION=us-east-1",
		"_HANDLER=bootstrap",
		"LAMBDA_TASK_ROOT="+filepath.Dir(binary),
	)
	out := opt.Stdout
	if out == nil {
		out = io.Discard
	}
	cmd.Stdout, cmd.Stderr = out, out
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", binary, err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	defer func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
			<-exited
		}
	}()

	select {
	case <-rt.done:
	case err := <-exited:
		// A function may answer and exit at once; prefer the answer.
		select {
		case <-rt.done:
		default:
			return nil, fmt.Errorf("function exited before answering: %v", err)
		}
	case <-ctx.Done():
		return nil, fmt.Errorf("function did not answer within %s", opt.Timeout)
	}
	rt.mu.Lock()
	defer rt.mu.Unlock()
	rt.result.Duration = time.Since(start)
	return &rt.result, nil
}

type runtime struct {
	event    []byte
	id       string
	deadline time.Time

	mu     sync.Mutex
	served bool
	result Result
	once   sync.Once
	done   chan struct{}
}

func (rt *runtime) finish(f func(*Result)) {
	rt.mu.Lock()
	f(&rt.result)
	rt.mu.Unlock()
	rt.once.Do(func() { close(rt.done) })
}

func (rt *runtime) routes(ctx context.Context) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /2018-06-01/runtime/invocation/next", func(w http.ResponseWriter, r *http.Request) {
		rt.mu.Lock()
		first := !rt.served
		rt.served = true
		rt.mu.Unlock()
		if !first {
			// One event per invocation: the next poll waits until we freeze
			// (kill) the sandbox, as Lambda does.
			select {
			case <-ctx.Done():
			case <-r.Context().Done():
			}
			return
		}
		h := w.Header()
		h.Set("Lambda-Runtime-Aws-Request-Id", rt.id)
		h.Set("Lambda-Runtime-Deadline-Ms", strconv.FormatInt(rt.deadline.UnixMilli(), 10))
		h.Set("Lambda-Runtime-Invoked-Function-Arn", "arn:aws:lambda:us-east-1:000000000000:function:local")
		h.Set("Lambda-Runtime-Trace-Id", "Root=1-00000000-000000000000000000000000;Sampled=0")
		h.Set("Content-Type", "application/json")
		_, _ = w.Write(rt.event)
	})
	mux.HandleFunc("POST /2018-06-01/runtime/invocation/{id}/response", func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		streamed := strings.EqualFold(r.Header.Get("Lambda-Runtime-Function-Response-Mode"), "streaming")
		var ferr *FunctionError
		if t := r.Trailer.Get("Lambda-Runtime-Function-Error-Type"); t != "" {
			ferr = &FunctionError{ErrorType: t, ErrorMessage: r.Trailer.Get("Lambda-Runtime-Function-Error-Body")}
		} else if err != nil {
			ferr = &FunctionError{ErrorType: "Runtime.StreamError", ErrorMessage: err.Error()}
		}
		w.WriteHeader(http.StatusAccepted)
		rt.finish(func(res *Result) { res.Payload, res.Streamed, res.Err = body, streamed, ferr })
	})
	failure := func(w http.ResponseWriter, r *http.Request) {
		var fe FunctionError
		body, _ := io.ReadAll(r.Body)
		if err := json.Unmarshal(body, &fe); err != nil || fe.ErrorType == "" && fe.ErrorMessage == "" {
			fe = FunctionError{ErrorType: r.Header.Get("Lambda-Runtime-Function-Error-Type"), ErrorMessage: string(body)}
		}
		w.WriteHeader(http.StatusAccepted)
		rt.finish(func(res *Result) { res.Err = &fe })
	}
	// The Extensions API, as far as lambda.WithEnableSIGTERM uses it: an
	// internal extension registers and then waits for events that, in one
	// invocation, never come.
	mux.HandleFunc("POST /2020-01-01/extension/register", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Lambda-Extension-Identifier", newID())
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"functionName":"local","functionVersion":"$LATEST","handler":"bootstrap"}`))
	})
	mux.HandleFunc("GET /2020-01-01/extension/event/next", func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-ctx.Done():
		case <-r.Context().Done():
		}
	})
	mux.HandleFunc("POST /2018-06-01/runtime/invocation/{id}/error", failure)
	mux.HandleFunc("POST /2018-06-01/runtime/init/error", failure)
	return mux
}

func newID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	h := hex.EncodeToString(b[:])
	return h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

// StreamingResponse is a Function URL streaming response decoded: the JSON
// prelude lambdaurl writes, then the body after eight NUL bytes.
type StreamingResponse struct {
	StatusCode int               `json:"statusCode"`
	Headers    map[string]string `json:"headers,omitempty"`
	Cookies    []string          `json:"cookies,omitempty"`
	Body       string            `json:"body"`
}

// DecodeStreaming splits a streamed payload into its prelude and body.
func DecodeStreaming(payload []byte) (*StreamingResponse, error) {
	sep := bytes.Index(payload, make([]byte, 8))
	if sep < 0 {
		return nil, errors.New("streamed payload has no prelude separator")
	}
	var resp StreamingResponse
	if err := json.Unmarshal(payload[:sep], &resp); err != nil {
		return nil, fmt.Errorf("streamed prelude: %w", err)
	}
	resp.Body = string(payload[sep+8:])
	return &resp, nil
}
