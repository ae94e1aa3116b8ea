// Package httpapitest reads unitenant's response envelope in tests: the
// status, the data left raw for the test to decode, and the error code,
// message and fields, with helpers that fail the test with the whole answer.
package httpapitest

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"testing"
)

// Reply is one answer in the envelope of DESIGN.md.
type Reply struct {
	Status  int             `json:"-"`
	Header  http.Header     `json:"-"`
	Raw     []byte          `json:"-"`
	Success bool            `json:"success"`
	Data    json.RawMessage `json:"data"`
	Error   *struct {
		Code    string            `json:"code"`
		Message string            `json:"message"`
		Fields  map[string]string `json:"fields"`
	} `json:"error"`
	RequestID string `json:"requestId"`
}

// Code is the error code, "" for a success.
func (r Reply) Code() string {
	if r.Error == nil {
		return ""
	}
	return r.Error.Code
}

// Parse reads an answer; a body that is not the envelope fails the test.
func Parse(tb testing.TB, status int, header http.Header, body []byte) Reply {
	tb.Helper()
	var r Reply
	if err := json.Unmarshal(body, &r); err != nil {
		tb.Fatalf("status %d: body %q is not the envelope: %v", status, body, err)
	}
	r.Status, r.Header, r.Raw = status, header, body
	return r
}

// Body encodes a request body: nil for none, a string as is (to send
// malformed JSON), anything else as JSON.
func Body(v any) io.Reader {
	switch b := v.(type) {
	case nil:
		return bytes.NewReader(nil)
	case string:
		return bytes.NewReader([]byte(b))
	default:
		raw, _ := json.Marshal(b)
		return bytes.NewReader(raw)
	}
}

// Want fails the test unless r has status and error code ("" = success).
func Want(tb testing.TB, r Reply, status int, code string) {
	tb.Helper()
	if r.Status != status || r.Code() != code {
		tb.Fatalf("got %d %q, want %d %q: %s", r.Status, r.Code(), status, code, r.Raw)
	}
}

// Data decodes the data of r into a T.
func Data[T any](tb testing.TB, r Reply) T {
	tb.Helper()
	var v T
	if err := json.Unmarshal(r.Data, &v); err != nil {
		tb.Fatalf("data %s: %v", r.Data, err)
	}
	return v
}
