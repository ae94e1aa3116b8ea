// Package logging builds the JSON slog loggers every function uses and carries
// the request id and tenant through the context, so every line a request
// causes can be found again. It never logs secrets: callers pass masked values.
package logging

import (
	"context"
	"io"
	"log/slog"
)

type ctxKey int

const (
	requestIDKey ctxKey = iota
	tenantKey
)

// WithRequestID returns ctx carrying the request id.
func WithRequestID(ctx context.Context, id string) context.Context {
	return context.WithValue(ctx, requestIDKey, id)
}

// RequestID returns the request id carried by ctx, or "".
func RequestID(ctx context.Context) string {
	id, _ := ctx.Value(requestIDKey).(string)
	return id
}

// WithTenant returns ctx carrying the tenant code for log lines.
func WithTenant(ctx context.Context, code string) context.Context {
	return context.WithValue(ctx, tenantKey, code)
}

// Tenant returns the tenant code carried by ctx, or "".
func Tenant(ctx context.Context) string {
	code, _ := ctx.Value(tenantKey).(string)
	return code
}

// New returns a JSON logger writing to w that stamps every line with the
// function name and, from the context, the request id and tenant.
func New(w io.Writer, function string, level slog.Leveler) *slog.Logger {
	h := slog.NewJSONHandler(w, &slog.HandlerOptions{Level: level})
	return slog.New(contextHandler{h}).With("function", function)
}

// Discard returns a logger that writes nothing, for tests.
func Discard() *slog.Logger { return slog.New(slog.DiscardHandler) }

type contextHandler struct{ slog.Handler }

func (h contextHandler) Handle(ctx context.Context, r slog.Record) error {
	if id := RequestID(ctx); id != "" {
		r.AddAttrs(slog.String("request_id", id))
	}
	if t := Tenant(ctx); t != "" {
		r.AddAttrs(slog.String("tenant", t))
	}
	return h.Handler.Handle(ctx, r)
}

func (h contextHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return contextHandler{h.Handler.WithAttrs(as)}
}

func (h contextHandler) WithGroup(name string) slog.Handler {
	return contextHandler{h.Handler.WithGroup(name)}
}
