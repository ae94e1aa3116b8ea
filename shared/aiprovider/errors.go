package aiprovider

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// Types of a *ProviderError that did not come from a provider's error body.
const (
	// ErrTypeTimeout: Target.Timeout or Target.IdleTimeout ran out.
	ErrTypeTimeout = "timeout"
	// ErrTypeConnection: the provider could not be reached or reset the
	// connection before answering.
	ErrTypeConnection = "connection_error"
	// ErrTypeStreamInterrupted: a stream ended before its last event.
	ErrTypeStreamInterrupted = "stream_interrupted"
	// ErrTypeInvalidResponse: a 2xx answer this package cannot read.
	ErrTypeInvalidResponse = "invalid_response"
)

// ProviderError is a failure the provider caused: an error status with its
// parsed body, a timeout, a broken connection or an unreadable answer.
// Retryable says another model may be tried (429, 408, 5xx, timeouts,
// connection errors); other 4xx mean the request itself is wrong.
type ProviderError struct {
	Provider   string        // the kind, e.g. "openai", "anthropic"
	Status     int           // the HTTP status; 0 when none was received
	Type       string        // the provider's error type, or an ErrType* constant
	Code       string        // the provider's error code, when it gives one
	Param      string        // the request member at fault, when given
	Message    string        // the provider's message
	Retryable  bool          // another attempt (another model) may succeed
	RetryAfter time.Duration // the provider's Retry-After, 0 when not given
	Err        error         // the underlying error of a timeout or connection failure
}

// Error describes the failure without any request content or key.
func (e *ProviderError) Error() string {
	var b strings.Builder
	b.WriteString(e.Provider)
	if e.Status != 0 {
		fmt.Fprintf(&b, ": status %d", e.Status)
	}
	if e.Type != "" {
		b.WriteString(": " + e.Type)
	}
	if e.Code != "" && e.Code != e.Type {
		b.WriteString(" (" + e.Code + ")")
	}
	if e.Message != "" {
		b.WriteString(": " + e.Message)
	}
	return b.String()
}

// Unwrap returns the underlying error, if any.
func (e *ProviderError) Unwrap() error { return e.Err }

// IsRetryable reports whether err is a *ProviderError another model may
// not have: a client's own cancellation or a bad request is not.
func IsRetryable(err error) bool {
	var pe *ProviderError
	return errors.As(err, &pe) && pe.Retryable
}

// retryableStatus is the statuses worth trying elsewhere.
func retryableStatus(status int) bool {
	return status == http.StatusTooManyRequests || status == http.StatusRequestTimeout || status >= 500
}

// maxErrorBody bounds how much of an error body is read.
const maxErrorBody = 64 << 10

// errorFromResponse reads a non-2xx response into a *ProviderError. It
// understands OpenAI's {"error":{message,type,param,code}}, Anthropic's
// {"type":"error","error":{type,message}}, a bare {message,code} and plain
// text.
func errorFromResponse(provider string, resp *http.Response) *ProviderError {
	body, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
	pe := &ProviderError{
		Provider:   provider,
		Status:     resp.StatusCode,
		Retryable:  retryableStatus(resp.StatusCode),
		RetryAfter: retryAfter(resp.Header, time.Now()),
	}
	fillFromBody(pe, body)
	if pe.Message == "" {
		pe.Message = http.StatusText(resp.StatusCode)
	}
	return pe
}

// fillFromBody sets pe's type, code, param and message from an error body.
func fillFromBody(pe *ProviderError, body []byte) {
	var wire struct {
		Error   json.RawMessage `json:"error"`
		Message string          `json:"message"`
		Code    json.RawMessage `json:"code"`
		Type    string          `json:"type"`
	}
	if json.Unmarshal(body, &wire) != nil {
		pe.Message = strings.TrimSpace(truncate(string(body), 500))
		return
	}
	var inner struct {
		Message string          `json:"message"`
		Type    string          `json:"type"`
		Param   json.RawMessage `json:"param"`
		Code    json.RawMessage `json:"code"`
	}
	if len(wire.Error) > 0 && wire.Error[0] == '{' && json.Unmarshal(wire.Error, &inner) == nil {
		pe.Message, pe.Type = inner.Message, inner.Type
		pe.Code, pe.Param = scalar(inner.Code), scalar(inner.Param)
		return
	}
	// {"error":"text"} or a bare {"message":...,"code":...}.
	pe.Message, pe.Type, pe.Code = wire.Message, wire.Type, scalar(wire.Code)
	if s := scalar(wire.Error); s != "" {
		pe.Message = s
	}
	if pe.Type == "error" { // Anthropic's envelope type, not the error's
		pe.Type = ""
	}
}

// scalar renders a JSON string or number as text; null and anything else
// are "".
func scalar(raw json.RawMessage) string {
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s
	}
	var n json.Number
	if json.Unmarshal(raw, &n) == nil {
		return n.String()
	}
	return ""
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n-- // never cut a character in two: a Chinese error page stays UTF-8
	}
	return s[:n] + "..."
}

// retryAfter reads retry-after-ms (OpenAI) or Retry-After (seconds or an
// HTTP date); 0 when neither is usable.
func retryAfter(h http.Header, now time.Time) time.Duration {
	if ms, err := strconv.ParseFloat(h.Get("Retry-After-Ms"), 64); err == nil && ms > 0 {
		return time.Duration(ms * float64(time.Millisecond))
	}
	v := strings.TrimSpace(h.Get("Retry-After"))
	if v == "" {
		return 0
	}
	if secs, err := strconv.ParseFloat(v, 64); err == nil && secs > 0 {
		return time.Duration(secs * float64(time.Second))
	}
	if at, err := http.ParseTime(v); err == nil && at.After(now) {
		return at.Sub(now)
	}
	return 0
}

// Causes this package gives the contexts it cancels, to tell its own
// timeouts from the caller's cancellation.
var (
	errCallTimeout = errors.New("call timed out")
	errIdleTimeout = errors.New("stream idle")
)

// classify turns the error of an exchange on ctx into what the caller
// gets: a *ProviderError for timeouts and connection failures, the
// caller's own context error (wrapped) when the caller gave up.
func classify(ctx context.Context, provider string, err error) error {
	var pe *ProviderError
	if errors.As(err, &pe) {
		return err
	}
	switch cause := context.Cause(ctx); {
	case errors.Is(cause, errCallTimeout) || errors.Is(cause, errIdleTimeout):
		return &ProviderError{Provider: provider, Type: ErrTypeTimeout, Message: cause.Error(), Retryable: true, Err: err}
	case ctx.Err() != nil:
		return fmt.Errorf("%s: %w", provider, cause)
	}
	return &ProviderError{Provider: provider, Type: ErrTypeConnection, Message: err.Error(), Retryable: true, Err: err}
}
