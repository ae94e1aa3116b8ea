package httpapi

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"reflect"
	"strings"

	"github.com/unitenant/unitenant/shared/fault"
)

// DefaultMaxBody is the largest JSON body Decode accepts unless the route
// says otherwise.
const DefaultMaxBody = 1 << 20

// Decode reads exactly one JSON object from the request body into dst,
// refusing unknown fields, wrong types, trailing data and bodies over
// DefaultMaxBody, each with a code that names the problem.
func Decode(r *http.Request, dst any) error { return DecodeLimit(r, dst, DefaultMaxBody) }

// DecodeLimit is Decode with a route-specific size limit.
func DecodeLimit(r *http.Request, dst any, limit int64) error {
	if ct := r.Header.Get("Content-Type"); ct != "" {
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil || (mt != "application/json" && !strings.HasSuffix(mt, "+json")) {
			return fault.New(fault.Invalid, "unsupported_media_type", "Content-Type must be application/json, got %q", ct)
		}
	}
	body := http.MaxBytesReader(nil, r.Body, limit)
	dec := json.NewDecoder(body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(dst); err != nil {
		return decodeError(err, limit)
	}
	if err := dec.Decode(&struct{}{}); !errors.Is(err, io.EOF) {
		if err != nil {
			if e := decodeError(err, limit); fault.CodeOf(e) == "body_too_large" {
				return e
			}
		}
		return fault.New(fault.Invalid, "invalid_json", "body must hold a single JSON object; found data after it")
	}
	return nil
}

func decodeError(err error, limit int64) error {
	var (
		syntax  *json.SyntaxError
		typeErr *json.UnmarshalTypeError
		tooBig  *http.MaxBytesError
	)
	switch {
	case errors.As(err, &tooBig):
		return fault.New(fault.TooLarge, "body_too_large", "body exceeds %d bytes", limit)
	case errors.Is(err, io.EOF):
		return fault.New(fault.Invalid, "empty_body", "body is empty; a JSON object is required")
	case errors.Is(err, io.ErrUnexpectedEOF):
		return fault.New(fault.Invalid, "invalid_json", "body is truncated JSON")
	case errors.As(err, &syntax):
		return fault.New(fault.Invalid, "invalid_json", "malformed JSON at byte %d: %v", syntax.Offset, syntax)
	case errors.As(err, &typeErr):
		field := typeErr.Field
		if field == "" {
			return fault.New(fault.Invalid, "invalid_json", "body must be a JSON object, not %s", typeErr.Value)
		}
		return fault.Field("invalid_field_type", field, fmt.Sprintf("must be %s, not %s", jsonType(typeErr.Type), typeErr.Value))
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		name := strings.Trim(strings.TrimPrefix(err.Error(), "json: unknown field "), `"`)
		return fault.Field("unknown_field", name, "is not a known field")
	}
	return fault.New(fault.Invalid, "invalid_json", "malformed JSON: %v", err)
}

// jsonType names a Go type the way a JSON client thinks of it, never by
// its Go name (a struct is "an object", whatever the package calls it).
func jsonType(t reflect.Type) string {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "a boolean"
	case reflect.Slice, reflect.Array:
		return "an array"
	case reflect.Map, reflect.Struct:
		return "an object"
	}
	return "another JSON type"
}
