// Package objectstore is unitenant's one object-store interface, with two
// implementations: Aliyun OSS in production (OSS) and the local filesystem in
// development (Local). Tenant scopes a store to one tenant's prefix
// (tenants/<code>/ by default), and AllocatePrefix lays out a new tenant's
// folders; STS hands out temporary OSS credentials limited to a prefix.
//
// It never lets a tenant's key leave its prefix: every key a tenant names is
// checked (UTF-8, length, no leading "/", no "." or ".." segment, no
// backslash or control character) before it is joined under the prefix, and
// anything outside is refused with 403 key_forbidden. Local never maps a key
// to a path outside its root. Neither logs nor returns a secret.
package objectstore

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/unitenant/unitenant/shared/fault"
)

// Store holds objects by key. Keys are full keys ("tenants/k001/a.png");
// use Tenant to work inside one tenant's prefix.
type Store interface {
	// Put stores size bytes of r under key (size < 0: until EOF), replacing
	// any object there. An empty contentType lets the store choose one.
	Put(ctx context.Context, key string, r io.Reader, size int64, contentType string) error
	// Get opens the object; the caller closes it. A missing key is
	// ErrNotFound.
	Get(ctx context.Context, key string) (io.ReadCloser, Info, error)
	// Delete removes the object; a missing key is not an error.
	Delete(ctx context.Context, key string) error
	// List returns up to max objects whose keys start with prefix and sort
	// after marker, in key order.
	List(ctx context.Context, prefix, marker string, max int) (Page, error)
	// PresignPut returns a URL that lets its holder PUT the object, sending
	// contentType as Content-Type, until ttl has passed.
	PresignPut(ctx context.Context, key, contentType string, ttl time.Duration) (string, error)
	// PresignGet returns a URL that lets its holder GET the object until ttl
	// has passed.
	PresignGet(ctx context.Context, key string, ttl time.Duration) (string, error)
	// PresignPost returns a form upload (OSS's PostObject) that lets its
	// holder store key, with contentType as its Content-Type (required),
	// and at most maxSize bytes, until ttl has passed: see PostForm. Unlike
	// a presigned PUT, the store itself refuses a bigger file.
	PresignPost(ctx context.Context, key, contentType string, maxSize int64, ttl time.Duration) (PostForm, error)
}

// PostForm is a form upload: POST a multipart/form-data body to URL
// holding each of Fields, then the file as the last field, named "file".
// The store keeps the object only when the form's key and Content-Type are
// the ones granted, the file has at most the granted size, and the grant
// has not expired; a refused upload stores nothing.
type PostForm struct {
	URL    string            `json:"url"`
	Fields map[string]string `json:"fields"`
}

// checkPost checks PresignPost's arguments, common to every store.
func checkPost(key, contentType string, maxSize int64, ttl time.Duration) error {
	if err := CheckKey(key); err != nil {
		return err
	}
	if contentType == "" || len(contentType) > 255 || strings.ContainsFunc(contentType, func(c rune) bool { return c < 0x20 || c == 0x7f }) {
		return fault.Field("invalid_content_type", "contentType", "a form upload needs a media type such as image/png")
	}
	if maxSize < 1 || maxSize > MaxPostSize {
		return fault.Field("invalid_max_size", "maxSize", fmt.Sprintf("must be between 1 and %d bytes", int64(MaxPostSize)))
	}
	return checkTTL(ttl)
}

// MaxPostSize is the biggest file a form upload takes: OSS's limit for
// PostObject (5 GB).
const MaxPostSize = 5 << 30

// Info describes a stored object.
type Info struct {
	Key          string    `json:"key"`
	Size         int64     `json:"size"`
	ContentType  string    `json:"contentType,omitempty"`
	ETag         string    `json:"etag,omitempty"`
	LastModified time.Time `json:"lastModified"`
}

// Page is one page of a listing. NextMarker, when the listing is truncated,
// is the marker of the next page.
type Page struct {
	Objects    []Info `json:"objects"`
	Truncated  bool   `json:"truncated"`
	NextMarker string `json:"nextMarker,omitempty"`
}

// MaxKeyLen is the longest key OSS accepts, in bytes; the local store keeps
// the same limit so development finds what production would refuse.
const MaxKeyLen = 1023

// MaxList is the most objects one List call returns (OSS's own limit).
const MaxList = 1000

// ErrNotFound is returned for a key that holds no object.
var ErrNotFound = fault.New(fault.NotFound, "object_not_found", "no object with this key")

// CheckKey reports whether key may name an object: see checkKey.
func CheckKey(key string) error { return checkKey("key", key, false) }

// checkKey checks a key (or, with prefix, a listing prefix: it may be empty
// or end in "/") and names field in its error. Attempts to climb out of a
// place — a leading "/", a "." or ".." segment — are 403 key_forbidden;
// malformed keys are 400 invalid_key.
func checkKey(field, key string, prefix bool) error {
	if key == "" {
		if prefix {
			return nil
		}
		return fault.Field("invalid_key", field, "is required")
	}
	if len(key) > MaxKeyLen {
		return fault.Field("invalid_key", field, "is longer than 1023 bytes")
	}
	if !utf8.ValidString(key) {
		return fault.Field("invalid_key", field, "is not valid UTF-8")
	}
	for _, c := range key {
		if c < 0x20 || c == 0x7f || c == '\\' || (c >= 0x80 && c < 0xa0) {
			return fault.Field("invalid_key", field, "holds a control character or a backslash")
		}
	}
	if key[0] == '/' {
		return forbidden(field, "must not start with /")
	}
	segs := strings.Split(key, "/")
	for i, s := range segs {
		switch {
		case s == "." || s == "..":
			return forbidden(field, `must not hold a "." or ".." segment`)
		case s == "" && i == len(segs)-1:
			if !prefix {
				return fault.Field("invalid_key", field, "must name an object, not end with /")
			}
		case s == "":
			return fault.Field("invalid_key", field, "must not hold an empty segment (//)")
		}
	}
	return nil
}

// forbidden is the error for a key outside where the caller may go.
func forbidden(field, problem string) *fault.Error {
	return &fault.Error{Kind: fault.Forbidden, Code: "key_forbidden", Message: field + ": " + problem,
		Fields: map[string]string{field: problem}}
}

// checkList checks List's arguments, common to every store.
func checkList(prefix, marker string, max int) error {
	if err := checkKey("prefix", prefix, true); err != nil {
		return err
	}
	if err := checkMarker(marker); err != nil {
		return err
	}
	if max < 1 || max > MaxList {
		return fault.Field("invalid_max", "max", "must be between 1 and 1000")
	}
	return nil
}

// checkMarker checks a listing marker, which only says where a listing
// resumes: any key a store holds, and OSS holds keys CheckKey refuses (a
// client with STS credentials uploads "a//b.jpg" or "../b.jpg" under its
// prefix), so that a page ending on one is not the last page reachable.
func checkMarker(marker string) error {
	if len(marker) > MaxKeyLen {
		return fault.Field("invalid_key", "marker", "is longer than 1023 bytes")
	}
	if !utf8.ValidString(marker) {
		return fault.Field("invalid_key", "marker", "is not valid UTF-8")
	}
	return nil
}

// checkTTL checks a presigned URL's lifetime: whole seconds, at least one.
func checkTTL(ttl time.Duration) error {
	if ttl < time.Second {
		return fault.Field("invalid_expires_in", "expiresIn", "must be at least 1 second")
	}
	return nil
}
