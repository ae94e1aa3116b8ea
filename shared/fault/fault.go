// Package fault defines the one error type every unitenant package returns for
// failures a client can act on: a kind (which decides the HTTP status, in one
// table in httpapi), a stable snake_case code clients branch on, and a message.
//
// Domain packages return *fault.Error and never import net/http; anything that
// is not a *fault.Error is an internal error and is never shown to a client.
package fault

import (
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"
)

// Kind classifies an error; httpapi maps each kind to one HTTP status.
type Kind int

// The kinds of error. Keep httpapi's status table in step.
const (
	Internal         Kind = iota // a bug or an unavailable dependency; details are logged, not shown
	Invalid                      // the request is malformed or fails validation
	Unauthorized                 // no or bad credentials
	PaymentRequired              // the tenant's balance does not cover the request
	Forbidden                    // authenticated but not allowed
	NotFound                     // no such thing (or not visible to the caller)
	MethodNotAllowed             // the route exists with another method
	Conflict                     // the state forbids it (taken, invalid transition)
	Gone                         // it existed and was deleted
	TooLarge                     // the request body is over the limit
	Locked                       // temporarily locked (too many failed logins)
	TooManyRequests              // rate limited
	NotImplemented               // the feature is not configured here
	Unavailable                  // try again later (provisioning, dependency down)
	BadGateway                   // an upstream service (an AI provider) failed
	GatewayTimeout               // an upstream service did not answer in time
)

// Error is a failure a client can act on.
type Error struct {
	Kind    Kind
	Code    string // stable snake_case identifier, e.g. "tenant_suspended"
	Message string // human readable, safe to show
	// Fields names each invalid input field and what is wrong with it.
	Fields map[string]string
	// RetryAfter, when set, is sent as the Retry-After header.
	RetryAfter time.Duration
	// Err is the underlying cause, logged but never shown to clients.
	Err error
}

func (e *Error) Error() string {
	if e.Err != nil {
		return fmt.Sprintf("%s: %s: %v", e.Code, e.Message, e.Err)
	}
	return e.Code + ": " + e.Message
}

// Unwrap returns the cause.
func (e *Error) Unwrap() error { return e.Err }

// New returns an error of the given kind and code with a formatted message.
func New(kind Kind, code, format string, args ...any) *Error {
	return &Error{Kind: kind, Code: code, Message: fmt.Sprintf(format, args...)}
}

// Fields returns an Invalid error naming every bad field of one input (field
// -> problem), so a client learns all its mistakes at once; nil when there
// are none. The message lists them in field order.
func Fields(code string, problems map[string]string) error {
	if len(problems) == 0 {
		return nil
	}
	names := make([]string, 0, len(problems))
	for f := range problems {
		names = append(names, f)
	}
	sort.Strings(names)
	parts := make([]string, len(names))
	for i, f := range names {
		parts[i] = f + ": " + problems[f]
	}
	return &Error{Kind: Invalid, Code: code, Message: strings.Join(parts, "; "), Fields: problems}
}

// Field returns an Invalid error naming one bad field.
func Field(code, field, problem string) *Error {
	return &Error{Kind: Invalid, Code: code, Message: field + ": " + problem, Fields: map[string]string{field: problem}}
}

// As returns the *Error in err's chain, if any.
func As(err error) (*Error, bool) {
	var fe *Error
	if errors.As(err, &fe) {
		return fe, true
	}
	return nil, false
}

// CodeOf returns the code of err, "internal" when it is not a *Error, and ""
// for nil.
func CodeOf(err error) string {
	if err == nil {
		return ""
	}
	if fe, ok := As(err); ok {
		return fe.Code
	}
	return "internal"
}
