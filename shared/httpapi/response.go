// Package httpapi holds the HTTP conventions every function follows: the
// response envelope, the one table from error kinds to statuses, strict JSON
// decoding, the request-id, logging, recovery and body-limit middleware, and a
// router whose 404 and 405 answers use the envelope too.
//
// It never shows a client the text of an internal error: those are logged
// with the request id, and the client gets "internal" and that id.
package httpapi

import (
	"encoding/json"
	"log/slog"
	"net/http"
	"strconv"

	"github.com/unitenant/unitenant/shared/fault"
	"github.com/unitenant/unitenant/shared/logging"
)

// statusOf is the one place error kinds become HTTP statuses.
var statusOf = map[fault.Kind]int{
	fault.Internal:         http.StatusInternalServerError,
	fault.Invalid:          http.StatusBadRequest,
	fault.Unauthorized:     http.StatusUnauthorized,
	fault.PaymentRequired:  http.StatusPaymentRequired,
	fault.Forbidden:        http.StatusForbidden,
	fault.NotFound:         http.StatusNotFound,
	fault.MethodNotAllowed: http.StatusMethodNotAllowed,
	fault.Conflict:         http.StatusConflict,
	fault.Gone:             http.StatusGone,
	fault.TooLarge:         http.StatusRequestEntityTooLarge,
	fault.Locked:           http.StatusLocked,
	fault.TooManyRequests:  http.StatusTooManyRequests,
	fault.NotImplemented:   http.StatusNotImplemented,
	fault.Unavailable:      http.StatusServiceUnavailable,
	fault.BadGateway:       http.StatusBadGateway,
	fault.GatewayTimeout:   http.StatusGatewayTimeout,
}

// StatusOf returns the HTTP status for an error kind.
func StatusOf(k fault.Kind) int {
	if s, ok := statusOf[k]; ok {
		return s
	}
	return http.StatusInternalServerError
}

// Envelope is the shape of every JSON response.
type Envelope struct {
	Success   bool       `json:"success"`
	Data      any        `json:"data,omitempty"`
	Error     *ErrorBody `json:"error,omitempty"`
	RequestID string     `json:"requestId,omitempty"`
}

// ErrorBody is the error part of the envelope.
type ErrorBody struct {
	Code    string            `json:"code"`
	Message string            `json:"message"`
	Fields  map[string]string `json:"fields,omitempty"`
}

// OK writes 200 with data in the envelope.
func OK(w http.ResponseWriter, r *http.Request, data any) { JSON(w, r, http.StatusOK, data) }

// JSON writes status with data in a success envelope.
func JSON(w http.ResponseWriter, r *http.Request, status int, data any) {
	write(w, status, Envelope{Success: true, Data: data})
}

// Fail writes err as an error envelope with the status of its kind. Errors
// that are not *fault.Error are logged and shown as "internal".
func Fail(w http.ResponseWriter, r *http.Request, log *slog.Logger, err error) {
	FailWith(w, r, log, err, nil)
}

// FailWith is Fail with data alongside the error (a health report, say).
func FailWith(w http.ResponseWriter, r *http.Request, log *slog.Logger, err error, data any) {
	ctx := r.Context()
	if log == nil {
		log = slog.Default()
	}
	fe, ok := fault.As(err)
	if !ok || fe.Kind == fault.Internal {
		log.ErrorContext(ctx, "request failed", "method", r.Method, "path", r.URL.Path, "err", err)
		fe = &fault.Error{Kind: fault.Internal, Code: "internal", Message: "internal error; quote the request id when reporting it"}
	}
	if fe.RetryAfter > 0 {
		secs := int(fe.RetryAfter.Seconds())
		if secs < 1 {
			secs = 1
		}
		w.Header().Set("Retry-After", strconv.Itoa(secs))
	}
	write(w, StatusOf(fe.Kind), Envelope{
		Success:   false,
		Data:      data,
		Error:     &ErrorBody{Code: fe.Code, Message: fe.Message, Fields: fe.Fields},
		RequestID: logging.RequestID(ctx),
	})
}

func write(w http.ResponseWriter, status int, body Envelope) {
	b, err := json.Marshal(body)
	if err != nil {
		// Only a handler bug (an unmarshalable value) gets here.
		status = http.StatusInternalServerError
		b = []byte(`{"success":false,"error":{"code":"internal","message":"response encoding failed"}}`)
	}
	h := w.Header()
	h.Set("Content-Type", "application/json; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n'))
}
