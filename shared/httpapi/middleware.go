package httpapi

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net/http"
	"regexp"
	"runtime/debug"
	"time"

	"github.com/unitenant/unitenant/shared/fault"
	"github.com/unitenant/unitenant/shared/logging"
)

// Middleware wraps a handler.
type Middleware func(http.Handler) http.Handler

// Chain applies mw so that the first one is the outermost.
func Chain(h http.Handler, mw ...Middleware) http.Handler {
	for i := len(mw) - 1; i >= 0; i-- {
		h = mw[i](h)
	}
	return h
}

// Standard is the stack every function's handler runs in: request id, access
// log, panic recovery and the body limit, in that order.
func Standard(h http.Handler, log *slog.Logger) http.Handler {
	return StandardLimit(h, log, DefaultMaxBody)
}

// StandardLimit is Standard with another body limit, for a function that
// takes uploads; its JSON routes stay at DefaultMaxBody through Decode.
func StandardLimit(h http.Handler, log *slog.Logger, maxBody int64) http.Handler {
	return StandardFail(h, log, maxBody, FailOf(h))
}

// StandardFail is StandardLimit with the errors the stack answers itself
// (a body over the limit, a panic) answered by fail.
func StandardFail(h http.Handler, log *slog.Logger, maxBody int64, fail FailFunc) http.Handler {
	if maxBody <= 0 {
		maxBody = DefaultMaxBody
	}
	return Chain(h, RequestID, AccessLog(log), recoverWith(log, fail), limitBody(maxBody, log, fail))
}

// FailFunc answers an error; Fail answers it in the envelope.
type FailFunc func(w http.ResponseWriter, r *http.Request, log *slog.Logger, err error)

// Failer is a handler that answers some requests' errors in a shape of its
// own (an OpenAI-compatible API answers in OpenAI's). The standard stack
// answers the errors it finds before the handler runs through its Fail, so
// that a client gets one shape whatever refused its request.
type Failer interface {
	Fail(w http.ResponseWriter, r *http.Request, log *slog.Logger, err error)
}

// FailOf is how h answers errors: its Fail when it is a Failer, else Fail.
func FailOf(h http.Handler) FailFunc {
	if f, ok := h.(Failer); ok {
		return f.Fail
	}
	return Fail
}

// clientIDPattern is what a client-supplied X-Request-Id must look like to be
// kept; anything else could forge log lines.
var clientIDPattern = regexp.MustCompile(`^[A-Za-z0-9._:-]{8,64}$`)

// RequestID gives the request an id: the platform's (already in the
// context), else a well-formed X-Request-Id from the client or the gateway,
// else a new random one. It is echoed in the X-Request-Id response header.
func RequestID(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx := r.Context()
		id := logging.RequestID(ctx)
		if id == "" {
			if h := r.Header.Get("X-Request-Id"); clientIDPattern.MatchString(h) {
				id = h
			} else {
				id = NewRequestID()
			}
			ctx = logging.WithRequestID(ctx, id)
		}
		w.Header().Set("X-Request-Id", id)
		next.ServeHTTP(w, r.WithContext(ctx))
	})
}

// NewRequestID returns a random 128-bit id in hex.
func NewRequestID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// AccessLog logs one line per request: method, path, status, bytes, duration.
func AccessLog(log *slog.Logger) Middleware {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			start := time.Now()
			sw := &StatusWriter{ResponseWriter: w}
			next.ServeHTTP(sw, r)
			lvl := slog.LevelInfo
			if sw.Status() >= 500 {
				lvl = slog.LevelError
			}
			log.Log(r.Context(), lvl, "request",
				"method", r.Method, "path", r.URL.Path, "status", sw.Status(),
				"bytes", sw.Bytes(), "duration_ms", float64(time.Since(start).Microseconds())/1000)
		})
	}
}

// Recover turns a panic into a 500 with the request id, logs the stack, and
// keeps the process serving. http.ErrAbortHandler is re-raised, as net/http
// expects.
func Recover(log *slog.Logger) Middleware { return recoverWith(log, Fail) }

func recoverWith(log *slog.Logger, fail FailFunc) Middleware {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			sw, ok := w.(*StatusWriter)
			if !ok {
				sw = &StatusWriter{ResponseWriter: w}
			}
			defer func() {
				v := recover()
				if v == nil {
					return
				}
				if v == http.ErrAbortHandler {
					panic(v)
				}
				log.ErrorContext(r.Context(), "panic", "panic", fmt.Sprint(v), "stack", string(debug.Stack()))
				if !sw.Written() {
					fail(sw, r, log, fault.New(fault.Internal, "internal", "panic"))
				}
			}()
			next.ServeHTTP(sw, r)
		})
	}
}

// LimitBody caps every request body at n bytes; Decode reports the overrun.
func LimitBody(n int64) Middleware { return limitBody(n, nil, Fail) }

func limitBody(n int64, log *slog.Logger, fail FailFunc) Middleware {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.ContentLength > n {
				fail(w, r, log, fault.New(fault.TooLarge, "body_too_large", "body exceeds %d bytes", n))
				return
			}
			r.Body = http.MaxBytesReader(w, r.Body, n)
			next.ServeHTTP(w, r)
		})
	}
}

// StatusWriter records the status and size of a response. It unwraps for
// http.ResponseController, so flushing and deadlines still reach the
// underlying writer (server-sent events depend on it).
type StatusWriter struct {
	http.ResponseWriter
	status int
	bytes  int64
}

// WriteHeader records and forwards the status.
func (w *StatusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

// Write records an implicit 200 and the size.
func (w *StatusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	n, err := w.ResponseWriter.Write(b)
	w.bytes += int64(n)
	return n, err
}

// Flush forwards to the underlying writer when it can flush.
func (w *StatusWriter) Flush() {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	_ = http.NewResponseController(w.ResponseWriter).Flush()
}

// Unwrap returns the underlying writer.
func (w *StatusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// Written reports whether a status has been sent.
func (w *StatusWriter) Written() bool { return w.status != 0 }

// Status returns the status sent, 200 when the handler wrote nothing (what
// net/http sends then).
func (w *StatusWriter) Status() int {
	if w.status == 0 {
		return http.StatusOK
	}
	return w.status
}

// Bytes returns the body bytes written.
func (w *StatusWriter) Bytes() int64 { return w.bytes }
