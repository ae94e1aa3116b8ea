package aibridge

import (
	"context"
	"crypto/sha256"
	"slices"
	"sync"
	"time"
)

// DefaultCacheTTL is how long an instance reuses what it read of an API key
// or of a tenant's models before reading it again: a revocation or a model
// change made through another instance takes effect within it (through
// this one, at once), as a tenant's suspension does within the routing
// registry's TTL. Every call still counts, holds and logs in MySQL.
const DefaultCacheTTL = time.Second

// cache keeps keys by their secret's hash and model lists by tenant id, so
// an entry can only ever answer for the key or the tenant it was read for.
// gen counts Forget calls: what was read before one is never stored after
// it, or a lookup in flight during a revocation would put the revoked key
// back for a whole TTL.
type cache struct {
	mu     sync.Mutex
	gen    uint64
	keys   map[[sha256.Size]byte]cachedKey
	models map[int64]cachedModels
}

type cachedKey struct {
	key   APIKey
	code  string
	until time.Time
}

type cachedModels struct {
	models []Model
	until  time.Time
}

// cacheTTL is the TTL in force; 0 when caching is off (CacheTTL < 0).
func (b *Bridge) cacheTTL() time.Duration {
	if b.CacheTTL < 0 {
		return 0
	}
	return orDefault(b.CacheTTL, DefaultCacheTTL)
}

// Forget drops everything cached, for a change made through this instance
// to be seen by its next call.
func (b *Bridge) Forget() {
	b.cache.mu.Lock()
	defer b.cache.mu.Unlock()
	b.cache.keys, b.cache.models = nil, nil
	b.cache.gen++
}

// Authenticate finds the live API key whose secret is secret and its
// tenant's code (ErrInvalidKey when there is none), and records its use at
// most once a minute.
func (b *Bridge) Authenticate(ctx context.Context, secret string) (APIKey, string, error) {
	now := b.now()
	ttl := b.cacheTTL()
	h := sha256.Sum256([]byte(secret))
	b.cache.mu.Lock()
	e, ok := b.cache.keys[h]
	gen := b.cache.gen
	b.cache.mu.Unlock()
	if !ok || !now.Before(e.until) {
		k, code, err := LookupKey(ctx, b.DB, secret, now)
		if err != nil {
			return k, code, err
		}
		e = cachedKey{key: k, code: code, until: now.Add(ttl)}
	} else if e.key.ExpiresAt != nil && !e.key.ExpiresAt.After(now) {
		return APIKey{}, "", ErrInvalidKey
	}
	if e.key.LastUsedAt == nil || now.Sub(*e.key.LastUsedAt) >= time.Minute {
		if err := TouchKey(ctx, b.DB, e.key, now); err != nil {
			b.log().WarnContext(ctx, "api key use not recorded", "err", err)
		} else {
			used := now
			e.key.LastUsedAt = &used
		}
	}
	if ttl > 0 {
		b.cache.mu.Lock()
		if b.cache.gen == gen { // else forgotten meanwhile: e may be what was revoked
			if b.cache.keys == nil {
				b.cache.keys = map[[sha256.Size]byte]cachedKey{}
			}
			b.cache.keys[h] = e
		}
		b.cache.mu.Unlock()
	}
	return e.key, e.code, nil
}

// tenantModels is the models tenantID has enabled (tenantModels), read at
// most once per TTL; the caller gets a copy of its own.
func (b *Bridge) tenantModels(ctx context.Context, tenantID int64) ([]Model, error) {
	now := b.now()
	b.cache.mu.Lock()
	e, ok := b.cache.models[tenantID]
	gen := b.cache.gen
	b.cache.mu.Unlock()
	if ok && now.Before(e.until) {
		return slices.Clone(e.models), nil
	}
	ms, err := tenantModels(ctx, b.DB, tenantID)
	if err != nil {
		return nil, err
	}
	if ttl := b.cacheTTL(); ttl > 0 {
		b.cache.mu.Lock()
		if b.cache.gen == gen {
			if b.cache.models == nil {
				b.cache.models = map[int64]cachedModels{}
			}
			b.cache.models[tenantID] = cachedModels{models: slices.Clone(ms), until: now.Add(ttl)}
		}
		b.cache.mu.Unlock()
	}
	return ms, nil
}
