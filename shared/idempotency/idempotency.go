// Package idempotency makes retried POSTs safe: the first request with an
// Idempotency-Key does the work and its response is stored; a retry with the
// same key and body gets that same response, a retry with another body is
// refused, and a retry while the first is still running is told to wait. It
// never replays a response to another caller: keys are scoped to the caller.
package idempotency

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/unitenant/unitenant/shared/fault"
	"github.com/unitenant/unitenant/shared/httpapi"
	"github.com/unitenant/unitenant/shared/sqldb"
)

// Store keeps keys in the idempotency_keys table.
type Store struct {
	DB  *sql.DB
	TTL time.Duration // how long a response is kept (default 24h)
	// Lock is how long a request may hold a key before a retry may take it
	// over (a function killed mid-request leaves it in progress).
	Lock time.Duration
	Now  func() time.Time
}

// Stored is a response kept for replay.
type Stored struct {
	Status int
	Body   []byte
}

// Errors of Begin.
var (
	ErrInProgress = fault.New(fault.Conflict, "request_in_progress", "a request with this Idempotency-Key is still running; retry shortly")
	ErrMismatch   = fault.New(fault.Invalid, "idempotency_key_reused", "this Idempotency-Key was used with a different request")
	ErrBadKey     = fault.New(fault.Invalid, "invalid_idempotency_key", "Idempotency-Key must be 1 to 255 printable ASCII characters")
)

func (s *Store) now() time.Time {
	if s.Now != nil {
		return s.Now().UTC()
	}
	return time.Now().UTC()
}

// Hash returns the fingerprint of a request body.
func Hash(body []byte) string {
	sum := sha256.Sum256(body)
	return hex.EncodeToString(sum[:])
}

// Begin claims key for scope. It returns a stored response to replay, or nil
// when the caller should do the work and then call Finish.
func (s *Store) Begin(ctx context.Context, scope, key, requestHash string) (*Stored, error) {
	if len(key) == 0 || len(key) > 255 {
		return nil, ErrBadKey
	}
	for _, c := range key {
		if c < 0x21 || c > 0x7e {
			return nil, ErrBadKey
		}
	}
	ttl, lock := s.TTL, s.Lock
	if ttl <= 0 {
		ttl = 24 * time.Hour
	}
	if lock <= 0 {
		lock = 2 * time.Minute
	}
	now := s.now()
	// Insert first: the common case (a new key) takes no gap lock, which a
	// SELECT ... FOR UPDATE on a missing row would, deadlocking concurrent
	// first requests.
	_, err := s.DB.ExecContext(ctx, `
		INSERT INTO idempotency_keys (scope, idempotency_key, request_hash, status, locked_until, expires_at)
		VALUES (?, ?, ?, 'in_progress', ?, ?)`, scope, key, requestHash, now.Add(lock), now.Add(ttl))
	if err == nil {
		return nil, nil
	}
	if !sqldb.IsDuplicate(err) {
		return nil, fmt.Errorf("idempotency key: %w", err)
	}
	var out *Stored
	err = sqldb.InTxRetry(ctx, s.DB, func(tx *sql.Tx) error {
		var (
			hash, status string
			respStatus   sql.NullInt64
			body         sql.NullString
			lockedUntil  sql.NullTime
			expires      time.Time
		)
		err := tx.QueryRowContext(ctx, `
			SELECT request_hash, status, response_status, response_body, locked_until, expires_at
			FROM idempotency_keys WHERE scope = ? AND idempotency_key = ? FOR UPDATE`, scope, key).
			Scan(&hash, &status, &respStatus, &body, &lockedUntil, &expires)
		switch {
		case errors.Is(err, sql.ErrNoRows):
			return ErrInProgress // released a moment ago: the client retries
		case err != nil:
			return fmt.Errorf("idempotency key: %w", err)
		case now.After(expires):
			_, err := tx.ExecContext(ctx, `
				UPDATE idempotency_keys SET request_hash = ?, status = 'in_progress', response_status = NULL, response_body = NULL,
				  resource_type = NULL, resource_id = NULL, locked_until = ?, expires_at = ? WHERE scope = ? AND idempotency_key = ?`,
				requestHash, now.Add(lock), now.Add(ttl), scope, key)
			return err
		case hash != requestHash:
			return ErrMismatch
		case status == "completed":
			out = &Stored{Status: int(respStatus.Int64), Body: []byte(body.String)}
			return nil
		case lockedUntil.Valid && now.Before(lockedUntil.Time):
			return ErrInProgress
		default: // the first request died holding it: take it over
			_, err := tx.ExecContext(ctx, "UPDATE idempotency_keys SET locked_until = ? WHERE scope = ? AND idempotency_key = ?",
				now.Add(lock), scope, key)
			return err
		}
	})
	return out, err
}

// Bind records, in tx (the transaction that makes it), the resource the
// request holding key creates. A request that takes key over from one that
// died finds it with Resource and finishes that resource instead of making
// another, or being refused because the first made it.
func (s *Store) Bind(ctx context.Context, tx *sql.Tx, scope, key, resourceType, resourceID string) error {
	if _, err := tx.ExecContext(ctx, `
		UPDATE idempotency_keys SET resource_type = ?, resource_id = ? WHERE scope = ? AND idempotency_key = ?`,
		resourceType, resourceID, scope, key); err != nil {
		return fmt.Errorf("bind idempotency key: %w", err)
	}
	return nil
}

// Resource returns the id of the resource of resourceType an earlier holder
// of key recorded with Bind, "" when none did.
func (s *Store) Resource(ctx context.Context, scope, key, resourceType string) (string, error) {
	var id sql.NullString
	err := s.DB.QueryRowContext(ctx, `
		SELECT resource_id FROM idempotency_keys WHERE scope = ? AND idempotency_key = ? AND resource_type = ?`,
		scope, key, resourceType).Scan(&id)
	if errors.Is(err, sql.ErrNoRows) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("idempotency key resource: %w", err)
	}
	return id.String, nil
}

// Finish stores the response of the request that holds key.
func (s *Store) Finish(ctx context.Context, scope, key string, status int, body []byte) error {
	_, err := s.DB.ExecContext(ctx, `
		UPDATE idempotency_keys SET status = 'completed', response_status = ?, response_body = ?, locked_until = NULL
		WHERE scope = ? AND idempotency_key = ?`, status, string(body), scope, key)
	if err != nil {
		return fmt.Errorf("store idempotent response: %w", err)
	}
	return nil
}

// Fail ends the request holding key, which failed with err: a refusal (a
// fault that is not Internal) is its answer, kept in the API's error
// envelope so that a retry gets the same one; any other failure releases
// the key, for a retry to do the work again.
func (s *Store) Fail(ctx context.Context, scope, key string, err error) error {
	fe, ok := fault.As(err)
	if !ok || fe.Kind == fault.Internal {
		return s.Release(ctx, scope, key)
	}
	b, merr := json.Marshal(httpapi.Envelope{Error: &httpapi.ErrorBody{Code: fe.Code, Message: fe.Message, Fields: fe.Fields}})
	if merr != nil {
		return fmt.Errorf("store idempotent refusal: %w", merr)
	}
	return s.Finish(ctx, scope, key, httpapi.StatusOf(fe.Kind), b)
}

// Release forgets key after a request that failed without a response worth
// replaying (an internal error), so a retry does the work again.
func (s *Store) Release(ctx context.Context, scope, key string) error {
	_, err := s.DB.ExecContext(ctx, "DELETE FROM idempotency_keys WHERE scope = ? AND idempotency_key = ? AND status = 'in_progress'", scope, key)
	return err
}
