package notify

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// The headers of every webhook delivery.
const (
	HeaderEvent     = "Unitenant-Event"     // the event type, e.g. tenant.suspended
	HeaderEventID   = "Unitenant-Event-Id"  // the event id: the same on every retry; unsigned, the body's "id" is what receivers dedupe by
	HeaderTimestamp = "Unitenant-Timestamp" // unix seconds at which this attempt was signed
	HeaderSignature = "Unitenant-Signature" // "v1=" + hex HMAC-SHA256(secret, timestamp + "." + body)
)

// DefaultTolerance is how far from the receiver's clock a signed timestamp may
// be: old deliveries cannot be replayed later than this.
const DefaultTolerance = 5 * time.Minute

// Errors returned by VerifySignature.
var (
	ErrBadSignature = errors.New("webhook signature does not match")
	ErrBadTimestamp = errors.New("webhook timestamp missing, malformed or outside the tolerance")
)

// errNoSecret is a receiver that lost its secret (an unset variable): what
// anyone signs with an empty key must not pass.
var errNoSecret = fmt.Errorf("%w: the receiver's secret is empty", ErrBadSignature)

// Sign returns the Unitenant-Signature header value for body signed at
// timestamp (unix seconds, as sent in Unitenant-Timestamp).
func Sign(secret []byte, timestamp string, body []byte) string {
	return "v1=" + hex.EncodeToString(mac(secret, timestamp, body))
}

func mac(secret []byte, timestamp string, body []byte) []byte {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(timestamp))
	m.Write([]byte{'.'})
	m.Write(body)
	return m.Sum(nil)
}

// VerifySignature checks a delivery as a receiver should: timestamp and
// signature are the Unitenant-Timestamp and Unitenant-Signature headers, body
// the raw request body (before any JSON decoding). It refuses a timestamp
// further than tolerance from now (a replay), then compares the HMAC in
// constant time. The signature header may carry several comma-separated
// values (say while a secret is rotated); one match is enough. An empty
// secret verifies nothing (ErrBadSignature).
//
// A receiver in Go:
//
//	body, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
//	err := notify.VerifySignature(secret, r.Header.Get(notify.HeaderTimestamp),
//		r.Header.Get(notify.HeaderSignature), body, time.Now(), notify.DefaultTolerance)
//
// In any other language: compute HMAC-SHA256 keyed with the endpoint's secret
// (the whole string shown at creation, "whsec_" included, as its UTF-8
// bytes: it is not base64-decoded, unlike the Standard Webhooks scheme) over
// the timestamp header, a ".", and the raw body; hex-encode it; compare it with
// the value after "v1=" in constant time; reject old timestamps and an empty
// secret. Answer 2xx quickly once the event is stored; anything else is
// retried, so dedupe on the "id" of the verified body. Only the timestamp and the body are signed: trust
// no other header (Unitenant-Event, Unitenant-Event-Id) over the body.
func VerifySignature(secret []byte, timestamp, signature string, body []byte, now time.Time, tolerance time.Duration) error {
	if len(secret) == 0 {
		return errNoSecret
	}
	ts, err := strconv.ParseInt(strings.TrimSpace(timestamp), 10, 64)
	if err != nil {
		return ErrBadTimestamp
	}
	if d := now.Sub(time.Unix(ts, 0)); d > tolerance || d < -tolerance {
		return fmt.Errorf("%w: signed %s from now", ErrBadTimestamp, d.Truncate(time.Second))
	}
	want := mac(secret, strings.TrimSpace(timestamp), body)
	for _, v := range strings.Split(signature, ",") {
		h, ok := strings.CutPrefix(strings.TrimSpace(v), "v1=")
		if !ok {
			continue
		}
		got, err := hex.DecodeString(h)
		if err == nil && hmac.Equal(got, want) {
			return nil
		}
	}
	return ErrBadSignature
}
