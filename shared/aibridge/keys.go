package aibridge

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"database/sql"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/unitenant/unitenant/shared/fault"
	"github.com/unitenant/unitenant/shared/sqldb"
)

// KeyPrefix starts every tenant API key; a bearer credential without it is
// a JWT.
const KeyPrefix = "uk-"

// keyRandomBytes is the secret's entropy (256 bits).
const keyRandomBytes = 32

// shownPrefix is how many leading characters of a key are kept in clear to
// tell keys apart in listings ("uk-" and 9 more).
const shownPrefix = 12

// MaxKeysPerTenant bounds the live (unrevoked) keys of one tenant.
const MaxKeysPerTenant = 100

// APIKey is a tenant API key as stored: never the secret, only its hash.
type APIKey struct {
	ID         int64      `json:"id"`
	TenantID   int64      `json:"-"`
	Name       string     `json:"name"`
	Prefix     string     `json:"prefix"`
	Models     []string   `json:"models"` // nil: every model the tenant has enabled
	RPMLimit   int        `json:"rpm,omitempty"`
	TPMLimit   int        `json:"tpm,omitempty"`
	CreatedBy  int64      `json:"createdBy,omitempty"`
	LastUsedAt *time.Time `json:"lastUsedAt"`
	ExpiresAt  *time.Time `json:"expiresAt"`
	RevokedAt  *time.Time `json:"revokedAt"`
	CreatedAt  time.Time  `json:"createdAt"`
}

// Allows reports whether the key may call model.
func (k *APIKey) Allows(model string) bool {
	if k == nil || k.Models == nil {
		return true
	}
	for _, m := range k.Models {
		if m == model {
			return true
		}
	}
	return false
}

// NewKey is what creating a key takes.
type NewKey struct {
	Name      string
	Models    []string // nil or empty: every enabled model
	RPMLimit  int      // 0: the platform's default per key
	TPMLimit  int      // tokens per minute; 0: the platform's default per key
	ExpiresAt *time.Time
	CreatedBy int64
}

// ErrInvalidKey is the one answer to every unusable key (unknown, revoked,
// expired, malformed): which it was is not told.
var ErrInvalidKey = fault.New(fault.Unauthorized, "invalid_api_key", "the API key is not valid")

// hashKey is the stored form of a key.
func hashKey(secret string) string {
	sum := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(sum[:])
}

// CreateKey makes a key for tenantID and returns it with its secret, which
// is shown this once and stored only as a hash.
func CreateKey(ctx context.Context, db *sql.DB, tenantID int64, in NewKey, now time.Time) (APIKey, string, error) {
	name := strings.TrimSpace(in.Name)
	switch {
	case name == "" || utf8.RuneCountInString(name) > 100:
		return APIKey{}, "", fault.Field("invalid_name", "name", "must be 1 to 100 characters")
	case in.RPMLimit < 0 || in.RPMLimit > 1_000_000:
		return APIKey{}, "", fault.Field("invalid_rpm", "rpm", "must be between 0 and 1000000")
	case in.TPMLimit < 0 || in.TPMLimit > 100_000_000:
		return APIKey{}, "", fault.Field("invalid_tpm", "tpm", "must be between 0 and 100000000")
	case in.ExpiresAt != nil && !in.ExpiresAt.After(now):
		return APIKey{}, "", fault.Field("invalid_expiry", "expiresAt", "must be in the future")
	}
	models, err := cleanModels(in.Models)
	if err != nil {
		return APIKey{}, "", err
	}
	var raw [keyRandomBytes]byte
	if _, err := rand.Read(raw[:]); err != nil {
		return APIKey{}, "", fmt.Errorf("api key entropy: %w", err)
	}
	secret := KeyPrefix + base64.RawURLEncoding.EncodeToString(raw[:])
	k := APIKey{TenantID: tenantID, Name: name, Prefix: secret[:shownPrefix], Models: models, RPMLimit: in.RPMLimit, TPMLimit: in.TPMLimit,
		CreatedBy: in.CreatedBy, ExpiresAt: in.ExpiresAt, CreatedAt: now.UTC().Truncate(time.Millisecond)}
	var modelsJSON any
	if models != nil {
		b, _ := json.Marshal(models)
		modelsJSON = string(b)
	}
	// Counted and inserted with the tenant's row locked: concurrent
	// creations are counted one after another, never past the limit.
	err = sqldb.InTxRetry(ctx, db, func(tx *sql.Tx) error {
		var live int
		if err := tx.QueryRowContext(ctx, "SELECT id FROM tenants WHERE id = ? FOR UPDATE", tenantID).Scan(new(int64)); err != nil {
			return fmt.Errorf("lock tenant %d: %w", tenantID, err)
		}
		if err := tx.QueryRowContext(ctx, "SELECT COUNT(*) FROM tenant_api_keys WHERE tenant_id = ? AND revoked_at IS NULL", tenantID).Scan(&live); err != nil {
			return fmt.Errorf("count api keys: %w", err)
		}
		if live >= MaxKeysPerTenant {
			return fault.New(fault.Conflict, "too_many_keys", "a tenant may have at most %d live API keys; revoke one first", MaxKeysPerTenant)
		}
		res, err := tx.ExecContext(ctx, `INSERT INTO tenant_api_keys (tenant_id, name, key_prefix, key_hash, models, rpm_limit, tpm_limit, created_by, expires_at, created_at)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			tenantID, name, k.Prefix, hashKey(secret), modelsJSON, nullInt(in.RPMLimit), nullInt(in.TPMLimit), nullInt64(in.CreatedBy), in.ExpiresAt, k.CreatedAt)
		if err != nil {
			return fmt.Errorf("store api key: %w", err)
		}
		if k.ID, err = res.LastInsertId(); err != nil {
			return fmt.Errorf("api key id: %w", err)
		}
		return nil
	})
	if err != nil {
		return APIKey{}, "", err
	}
	return k, secret, nil
}

// cleanModels validates a key's model list; empty means every model.
func cleanModels(in []string) ([]string, error) {
	if len(in) == 0 {
		return nil, nil
	}
	if len(in) > 100 {
		return nil, fault.Field("invalid_models", "models", "at most 100 model names")
	}
	out := make([]string, 0, len(in))
	seen := map[string]bool{}
	for _, m := range in {
		if !ValidModelName(m) {
			return nil, fault.Field("invalid_models", "models", fmt.Sprintf("%q is not a model name", m))
		}
		if !seen[m] {
			seen[m] = true
			out = append(out, m)
		}
	}
	return out, nil
}

const keyColumns = "k.id, k.tenant_id, k.name, k.key_prefix, k.models, COALESCE(k.rpm_limit, 0), COALESCE(k.tpm_limit, 0), COALESCE(k.created_by, 0), k.last_used_at, k.expires_at, k.revoked_at, k.created_at"

type scanner interface{ Scan(dest ...any) error }

func scanKey(s scanner) (APIKey, error) {
	var (
		k                      APIKey
		models                 sql.NullString
		used, expires, revoked sql.NullTime
	)
	if err := s.Scan(&k.ID, &k.TenantID, &k.Name, &k.Prefix, &models, &k.RPMLimit, &k.TPMLimit, &k.CreatedBy, &used, &expires, &revoked, &k.CreatedAt); err != nil {
		return APIKey{}, err
	}
	if models.Valid && models.String != "null" {
		if err := json.Unmarshal([]byte(models.String), &k.Models); err != nil {
			return APIKey{}, fmt.Errorf("api key %d models: %w", k.ID, err)
		}
	}
	k.LastUsedAt, k.ExpiresAt, k.RevokedAt = timePtr(used), timePtr(expires), timePtr(revoked)
	return k, nil
}

// ListKeys returns tenantID's keys, newest first, revoked ones included.
func ListKeys(ctx context.Context, db *sql.DB, tenantID int64) ([]APIKey, error) {
	rows, err := db.QueryContext(ctx, "SELECT "+keyColumns+" FROM tenant_api_keys k WHERE k.tenant_id = ? ORDER BY k.id DESC", tenantID)
	if err != nil {
		return nil, fmt.Errorf("list api keys: %w", err)
	}
	defer rows.Close()
	keys := []APIKey{}
	for rows.Next() {
		k, err := scanKey(rows)
		if err != nil {
			return nil, fmt.Errorf("list api keys: %w", err)
		}
		keys = append(keys, k)
	}
	return keys, rows.Err()
}

// RevokeKey revokes tenantID's key id at once; another tenant's key is not
// found. Revoking twice is harmless.
func RevokeKey(ctx context.Context, db *sql.DB, tenantID, id int64, now time.Time) (APIKey, error) {
	if _, err := db.ExecContext(ctx, "UPDATE tenant_api_keys SET revoked_at = ? WHERE id = ? AND tenant_id = ? AND revoked_at IS NULL",
		now.UTC(), id, tenantID); err != nil {
		return APIKey{}, fmt.Errorf("revoke api key: %w", err)
	}
	k, err := scanKey(db.QueryRowContext(ctx, "SELECT "+keyColumns+" FROM tenant_api_keys k WHERE k.id = ? AND k.tenant_id = ?", id, tenantID))
	if errors.Is(err, sql.ErrNoRows) {
		return APIKey{}, fault.New(fault.NotFound, "key_not_found", "no API key %d", id)
	}
	return k, err
}

// LookupKey finds the live key whose secret is secret, with its tenant's
// code. Anything else is ErrInvalidKey.
func LookupKey(ctx context.Context, db *sql.DB, secret string, now time.Time) (APIKey, string, error) {
	if !strings.HasPrefix(secret, KeyPrefix) || len(secret) > 200 {
		return APIKey{}, "", ErrInvalidKey
	}
	var code string
	row := db.QueryRowContext(ctx, "SELECT "+keyColumns+", t.tenant_code FROM tenant_api_keys k JOIN tenants t ON t.id = k.tenant_id WHERE k.key_hash = ?", hashKey(secret))
	k, err := scanKey(scanWith(row, &code))
	if errors.Is(err, sql.ErrNoRows) {
		return APIKey{}, "", ErrInvalidKey
	}
	if err != nil {
		return APIKey{}, "", fmt.Errorf("look up api key: %w", err)
	}
	if k.RevokedAt != nil || (k.ExpiresAt != nil && !k.ExpiresAt.After(now)) {
		return APIKey{}, "", ErrInvalidKey
	}
	return k, code, nil
}

// TouchKey records that the key was used, at most once a minute per key so
// a busy key does not write on every call.
func TouchKey(ctx context.Context, db *sql.DB, k APIKey, now time.Time) error {
	if k.LastUsedAt != nil && now.Sub(*k.LastUsedAt) < time.Minute {
		return nil
	}
	_, err := db.ExecContext(ctx, "UPDATE tenant_api_keys SET last_used_at = ? WHERE id = ? AND (last_used_at IS NULL OR last_used_at < ?)",
		now.UTC(), k.ID, now.UTC().Add(-time.Minute))
	if err != nil {
		return fmt.Errorf("touch api key: %w", err)
	}
	return nil
}

// scanWith appends extra destinations after a scanner's own.
type extraScanner struct {
	s     scanner
	extra []any
}

func (e extraScanner) Scan(dest ...any) error { return e.s.Scan(append(dest, e.extra...)...) }

func scanWith(s scanner, extra ...any) scanner { return extraScanner{s, extra} }

func timePtr(t sql.NullTime) *time.Time {
	if !t.Valid {
		return nil
	}
	v := t.Time
	return &v
}

func nullInt(n int) any {
	if n == 0 {
		return nil
	}
	return n
}

func nullInt64(n int64) any {
	if n == 0 {
		return nil
	}
	return n
}
