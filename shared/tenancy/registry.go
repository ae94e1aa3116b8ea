package tenancy

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"golang.org/x/sync/singleflight"

	"github.com/unitenant/unitenant/shared/serverless"
)

// Tenant statuses.
const (
	StatusProvisioning = "provisioning"
	StatusActive       = "active"
	StatusSuspended    = "suspended"
	StatusDeleted      = "deleted"
	StatusPurged       = "purged"
)

// Tiers of database placement.
const (
	TierPooled = "pooled" // a schema on a cluster, reached through the cluster's shared pool
	TierSiloed = "siloed" // own credentials and own small pool
)

// Tenant is what routing needs to know about a tenant.
type Tenant struct {
	ID        int64
	Code      string
	Name      string
	Subdomain string
	Status    string
	Placement Placement
}

// Placement is where a tenant's database lives.
type Placement struct {
	ClusterID int64
	Database  string
	Tier      string
	DBUser    string // siloed only
	// dbPassword is the sealed siloed password; it never leaves this package.
	dbPassword []byte
	MaxConns   int
}

// same reports whether p and q reach the same server as the same user
// with the same password and connection cap (the database is selected on
// each connection handed out).
func (p Placement) same(q Placement) bool {
	return p.ClusterID == q.ClusterID && p.DBUser == q.DBUser && bytes.Equal(p.dbPassword, q.dbPassword) && p.MaxConns == q.MaxConns
}

// Gate refuses a tenant that may not be served: suspended 403, deleted or
// purged 410, provisioning 503 with Retry-After.
func Gate(t *Tenant) error {
	switch t.Status {
	case StatusActive:
		if t.Placement.Database == "" {
			return fmt.Errorf("tenant %s is active but has no database placement", t.Code)
		}
		return nil
	case StatusSuspended:
		return ErrSuspended
	case StatusDeleted, StatusPurged:
		return ErrDeleted
	case StatusProvisioning:
		e := *errProvisioning
		e.RetryAfter = 5 * time.Second
		return &e
	}
	return fmt.Errorf("tenant %s has unknown status %q", t.Code, t.Status)
}

// Registry looks tenants up in the system database and caches the answers
// briefly, the misses too, so a flood of requests for unknown tenants costs
// the database one query per name per NegativeTTL.
type Registry struct {
	db          *sql.DB
	ttl, negTTL time.Duration
	maxEntries  int
	now         func() time.Time

	mu      sync.Mutex
	byCode  map[string]cached[*Tenant]
	byName  map[string]cached[string] // "h:"+custom domain or "s:"+subdomain -> code ("" = not a tenant's)
	gen     uint64                    // Invalidate calls: a tenant read before one is not cached, nor shared, after it
	flights singleflight.Group
}

type cached[T any] struct {
	v       T
	err     error
	expires time.Time
}

// RegistryOptions tune the cache.
type RegistryOptions struct {
	TTL         time.Duration // found tenants, at most 15 s so status changes apply quickly
	NegativeTTL time.Duration // unknown codes and domains
	MaxEntries  int           // the cache is dropped when it grows past this
	Now         func() time.Time
}

// NewRegistry returns a registry over the system database.
func NewRegistry(db *sql.DB, o RegistryOptions) *Registry {
	if o.TTL <= 0 || o.TTL > 15*time.Second {
		o.TTL = 10 * time.Second
	}
	if o.NegativeTTL <= 0 {
		o.NegativeTTL = 5 * time.Second
	}
	if o.MaxEntries <= 0 {
		o.MaxEntries = 10000
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return &Registry{db: db, ttl: o.TTL, negTTL: o.NegativeTTL, maxEntries: o.MaxEntries, now: o.Now,
		byCode: map[string]cached[*Tenant]{}, byName: map[string]cached[string]{}}
}

// Invalidate drops what the cache knows about code, for the instance that
// changed it (other instances see the change within the TTL).
func (r *Registry) Invalidate(code string) {
	r.mu.Lock()
	delete(r.byCode, code)
	r.gen++
	r.mu.Unlock()
}

// ByCode returns the tenant with code, or ErrNotFound. The returned tenant is
// shared: callers must not modify it.
func (r *Registry) ByCode(ctx context.Context, code string) (*Tenant, error) {
	if !ValidCode(code) {
		return nil, ErrInvalidCode
	}
	now := r.now()
	r.mu.Lock()
	c, ok := r.byCode[code]
	gen := r.gen
	r.mu.Unlock()
	if ok && now.Before(c.expires) {
		return c.v, c.err
	}
	// The flight is of this generation: a caller after an Invalidate never
	// joins a read made before it, which would answer the old record.
	v, err, _ := r.flights.Do("c:"+code+":"+strconv.FormatUint(gen, 10), func() (any, error) {
		t, err := r.loadByCode(context.WithoutCancel(ctx), code)
		ttl := r.ttl
		switch {
		case errors.Is(err, ErrNotFound):
			ttl = r.negTTL
		case err != nil:
			return nil, err // a database error is not cached
		}
		r.store(func() {
			if r.gen == gen { // else invalidated meanwhile: t may be what changed
				r.byCode[code] = cached[*Tenant]{v: t, err: err, expires: r.now().Add(ttl)}
			}
		})
		return t, err
	})
	if err != nil {
		return nil, err
	}
	return v.(*Tenant), nil
}

// CodeForDomain returns the code of the tenant that registered host as its
// custom domain, or "" when none did.
func (r *Registry) CodeForDomain(ctx context.Context, host string) (string, error) {
	// The column's collation folds case, width and more (ſ, ß, fullwidth
	// letters, trailing spaces all equal an ASCII domain): only a valid
	// ASCII host name may reach the query, or the cache.
	if !isASCII(host) {
		return "", serverless.ErrHostNotASCII
	}
	if !ValidHostname(host) {
		return "", ErrUnknownHost
	}
	return r.codeFor(ctx, "h:"+host, "look up domain",
		`SELECT t.tenant_code FROM tenant_domains d JOIN tenants t ON t.id = d.tenant_id WHERE d.domain = ?`, host)
}

// CodeForSubdomain returns the code of the tenant that owns label under the
// base domain, or "" when none does. A tenant chooses its subdomain and it
// need not be its code: only tenants.subdomain says whose a label is.
func (r *Registry) CodeForSubdomain(ctx context.Context, label string) (string, error) {
	if !ValidCode(label) {
		return "", ErrInvalidCode
	}
	return r.codeFor(ctx, "s:"+label, "look up subdomain",
		`SELECT tenant_code FROM tenants WHERE subdomain = ?`, label)
}

// codeFor answers a cached name -> tenant code lookup: query with arg
// returns the code, no row means "" (cached for NegativeTTL).
func (r *Registry) codeFor(ctx context.Context, key, what, query, arg string) (string, error) {
	now := r.now()
	r.mu.Lock()
	c, ok := r.byName[key]
	r.mu.Unlock()
	if ok && now.Before(c.expires) {
		return c.v, nil
	}
	v, err, _ := r.flights.Do(key, func() (any, error) {
		var code string
		err := r.db.QueryRowContext(context.WithoutCancel(ctx), query, arg).Scan(&code)
		ttl := r.ttl
		switch {
		case errors.Is(err, sql.ErrNoRows):
			code, ttl = "", r.negTTL
		case err != nil:
			return "", fmt.Errorf("%s %s: %w", what, arg, err)
		}
		r.store(func() { r.byName[key] = cached[string]{v: code, expires: r.now().Add(ttl)} })
		return code, nil
	})
	if err != nil {
		return "", err
	}
	return v.(string), nil
}

func (r *Registry) store(put func()) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.byCode)+len(r.byName) >= r.maxEntries {
		// Bounded memory under a flood of distinct names: start over.
		r.byCode = map[string]cached[*Tenant]{}
		r.byName = map[string]cached[string]{}
	}
	put()
}

func (r *Registry) loadByCode(ctx context.Context, code string) (*Tenant, error) {
	t := &Tenant{}
	var (
		cluster          sql.NullInt64
		dbName, tier     sql.NullString
		dbUser           sql.NullString
		maxConns         sql.NullInt64
		dbPasswordSealed []byte
	)
	err := r.db.QueryRowContext(ctx, `
		SELECT t.id, t.tenant_code, t.tenant_name, t.subdomain, t.status,
		       d.cluster_id, d.database_name, d.tier, d.db_user, d.db_password_encrypted, d.max_connections
		FROM tenants t LEFT JOIN tenant_databases d ON d.tenant_id = t.id
		WHERE t.tenant_code = ?`, code).Scan(
		&t.ID, &t.Code, &t.Name, &t.Subdomain, &t.Status,
		&cluster, &dbName, &tier, &dbUser, &dbPasswordSealed, &maxConns)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("look up tenant %s: %w", code, err)
	}
	t.Placement = Placement{ClusterID: cluster.Int64, Database: dbName.String, Tier: tier.String,
		DBUser: dbUser.String, dbPassword: dbPasswordSealed, MaxConns: int(maxConns.Int64)}
	return t, nil
}
