package tenancy

import (
	"container/list"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/unitenant/unitenant/shared/secretbox"
	"github.com/unitenant/unitenant/shared/sqldb"
)

// Router hands out connections on a tenant's database.
//
// Pooled tenants share one bounded pool per cluster: connections grow with
// concurrency, never with the number of tenants. Siloed tenants get a small
// pool of their own under their own credentials; the number of those pools is
// capped and the least recently used is closed first.
type Router struct {
	sys  *sql.DB
	box  *secretbox.Box
	opts RouterOptions

	mu       sync.Mutex
	clusters map[int64]*cluster
	silos    map[int64]*list.Element // tenant id -> *silo in lru
	lru      *list.List              // front = most recently used
}

// RouterOptions bound the pools.
type RouterOptions struct {
	ClusterMaxOpen int           // connections per cluster pool (pooled tier)
	SiloMaxOpen    int           // connections per siloed tenant
	MaxSilos       int           // siloed pools kept open
	DialTimeout    time.Duration // per connection attempt
	IOTimeout      time.Duration
	MaxLifetime    time.Duration
}

type cluster struct {
	id   int64
	name string
	cfg  *mysql.Config // no database selected; admin credentials
	pool *sql.DB
}

type silo struct {
	tenantID int64
	// from is the placement the pool was opened with: a tenant whose
	// placement has changed since (its password re-keyed, its database
	// moved to another cluster) gets a new pool, never connections opened
	// with credentials the server no longer takes.
	from    Placement
	pool    *sql.DB
	users   int  // requests between getting the pool and getting a connection
	evicted bool // out of the LRU; closed once users reaches 0
}

// NewRouter returns a router that reads clusters from the system database
// and opens their secrets with box.
func NewRouter(sys *sql.DB, box *secretbox.Box, o RouterOptions) *Router {
	if o.ClusterMaxOpen <= 0 {
		o.ClusterMaxOpen = 16
	}
	if o.SiloMaxOpen <= 0 {
		o.SiloMaxOpen = 2
	}
	if o.MaxSilos <= 0 {
		o.MaxSilos = 64
	}
	if o.DialTimeout <= 0 {
		o.DialTimeout = 3 * time.Second
	}
	if o.IOTimeout <= 0 {
		o.IOTimeout = 30 * time.Second
	}
	if o.MaxLifetime <= 0 {
		o.MaxLifetime = 5 * time.Minute
	}
	return &Router{sys: sys, box: box, opts: o, clusters: map[int64]*cluster{}, silos: map[int64]*list.Element{}, lru: list.New()}
}

// Conn returns a connection on t's database; the caller must Close it. The
// connection is on t's schema and no other: if selecting it fails the
// connection is discarded, never handed out.
func (r *Router) Conn(ctx context.Context, t *Tenant) (*sql.Conn, error) {
	if err := sqldb.ValidateIdent(t.Placement.Database); err != nil {
		return nil, fmt.Errorf("tenant %s placement: %w", t.Code, err)
	}
	var (
		pool *sql.DB
		s    *silo
		err  error
	)
	switch t.Placement.Tier {
	case TierPooled, "":
		pool, err = r.clusterPool(ctx, t.Placement.ClusterID)
	case TierSiloed:
		s, err = r.siloPool(ctx, t)
		if s != nil {
			pool = s.pool
		}
	default:
		err = fmt.Errorf("tenant %s has unknown tier %q", t.Code, t.Placement.Tier)
	}
	if err != nil {
		return nil, err
	}
	conn, err := pool.Conn(ctx)
	if s != nil {
		r.release(s) // holding a connection keeps it usable even if the pool closes
	}
	if err != nil {
		return nil, fmt.Errorf("tenant %s: connect: %w", t.Code, err)
	}
	err = conn.Raw(func(dc any) error {
		tc, ok := dc.(*trackedConn)
		if !ok {
			return fmt.Errorf("untracked connection %T", dc)
		}
		return tc.use(ctx, t.Placement.Database)
	})
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("tenant %s: select database: %w", t.Code, err)
	}
	return conn, nil
}

// Stats reports the connections the router holds, for tests and benchmarks.
func (r *Router) Stats() (open, inUse int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, c := range r.clusters {
		s := c.pool.Stats()
		open, inUse = open+s.OpenConnections, inUse+s.InUse
	}
	for e := r.lru.Front(); e != nil; e = e.Next() {
		s := e.Value.(*silo).pool.Stats()
		open, inUse = open+s.OpenConnections, inUse+s.InUse
	}
	return open, inUse
}

// Close closes every pool.
func (r *Router) Close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	var errs []error
	for id, c := range r.clusters {
		errs = append(errs, c.pool.Close())
		delete(r.clusters, id)
	}
	for e := r.lru.Front(); e != nil; e = e.Next() {
		errs = append(errs, e.Value.(*silo).pool.Close())
	}
	r.lru.Init()
	r.silos = map[int64]*list.Element{}
	return errors.Join(errs...)
}

func (r *Router) clusterPool(ctx context.Context, id int64) (*sql.DB, error) {
	c, err := r.cluster(ctx, id)
	if err != nil {
		return nil, err
	}
	return c.pool, nil
}

// cluster returns the cluster's pool, opening it on first use.
func (r *Router) cluster(ctx context.Context, id int64) (*cluster, error) {
	r.mu.Lock()
	c, ok := r.clusters[id]
	r.mu.Unlock()
	if ok {
		return c, nil
	}
	cfg, name, err := r.loadCluster(ctx, id)
	if err != nil {
		return nil, err
	}
	pool, err := r.open(cfg, r.opts.ClusterMaxOpen)
	if err != nil {
		return nil, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if c, ok := r.clusters[id]; ok { // another request opened it meanwhile
		pool.Close()
		return c, nil
	}
	c = &cluster{id: id, name: name, cfg: cfg, pool: pool}
	r.clusters[id] = c
	return c, nil
}

// ClusterSecretAAD binds a cluster's sealed admin password to the cluster.
func ClusterSecretAAD(name string) string { return "db_clusters:" + name + ":admin_password" }

// SiloSecretAAD binds a siloed tenant's sealed password to the tenant.
func SiloSecretAAD(tenantID int64) string {
	return "tenant_databases:" + strconv.FormatInt(tenantID, 10) + ":db_password"
}

func (r *Router) loadCluster(ctx context.Context, id int64) (*mysql.Config, string, error) {
	return LoadCluster(ctx, r.sys, r.box, id)
}

// LoadCluster reads cluster id from the system database and returns its
// connection settings (admin credentials, no database selected) and name.
func LoadCluster(ctx context.Context, sys *sql.DB, box *secretbox.Box, id int64) (*mysql.Config, string, error) {
	var (
		name, host, user, status string
		port                     int
		sealed                   []byte
		params                   sql.NullString
	)
	err := sys.QueryRowContext(ctx,
		`SELECT name, host, port, admin_user, admin_password_encrypted, params, status FROM db_clusters WHERE id = ?`, id).
		Scan(&name, &host, &port, &user, &sealed, &params, &status)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, "", fmt.Errorf("db cluster %d does not exist", id)
	}
	if err != nil {
		return nil, "", fmt.Errorf("load db cluster %d: %w", id, err)
	}
	if status == "disabled" {
		return nil, "", fmt.Errorf("db cluster %s is disabled", name)
	}
	cfg := mysql.NewConfig()
	cfg.User, cfg.Net, cfg.Addr = user, "tcp", fmt.Sprintf("%s:%d", host, port)
	if len(sealed) > 0 {
		pw, err := box.Open(sealed, ClusterSecretAAD(name))
		if err != nil {
			return nil, "", fmt.Errorf("db cluster %s password: %w", name, err)
		}
		cfg.Passwd = string(pw)
	}
	if params.Valid && params.String != "" {
		if err := json.Unmarshal([]byte(params.String), &cfg.Params); err != nil {
			return nil, "", fmt.Errorf("db cluster %s params: %w", name, err)
		}
	}
	return cfg, name, nil
}

func (r *Router) open(cfg *mysql.Config, maxOpen int) (*sql.DB, error) {
	cfg = cfg.Clone()
	cfg.InterpolateParams = true
	sqldb.Session(cfg) // strict and in UTC, in a tenant's database as in the system's
	cfg.Timeout, cfg.ReadTimeout, cfg.WriteTimeout = r.opts.DialTimeout, r.opts.IOTimeout, r.opts.IOTimeout
	connector, err := mysql.NewConnector(cfg)
	if err != nil {
		return nil, fmt.Errorf("mysql connector: %w", err)
	}
	pool := sql.OpenDB(trackingConnector{connector})
	pool.SetMaxOpenConns(maxOpen)
	pool.SetMaxIdleConns(maxOpen)
	pool.SetConnMaxLifetime(r.opts.MaxLifetime)
	pool.SetConnMaxIdleTime(time.Minute)
	return pool, nil
}

// siloPool returns the siloed tenant's own pool, evicting the least recently
// used one past MaxSilos. Closing an evicted pool lets in-flight requests
// finish on their connections.
func (r *Router) siloPool(ctx context.Context, t *Tenant) (*silo, error) {
	r.mu.Lock()
	if s := r.openSilo(t); s != nil {
		r.mu.Unlock()
		return s, nil
	}
	r.mu.Unlock()

	c, err := r.cluster(ctx, t.Placement.ClusterID)
	if err != nil {
		return nil, err
	}
	if t.Placement.DBUser == "" || len(t.Placement.dbPassword) == 0 {
		return nil, fmt.Errorf("siloed tenant %s has no credentials", t.Code)
	}
	pw, err := r.box.Open(t.Placement.dbPassword, SiloSecretAAD(t.ID))
	if err != nil {
		return nil, fmt.Errorf("siloed tenant %s password: %w", t.Code, err)
	}
	cfg := c.cfg.Clone()
	cfg.User, cfg.Passwd, cfg.DBName = t.Placement.DBUser, string(pw), t.Placement.Database
	maxOpen := r.opts.SiloMaxOpen
	if t.Placement.MaxConns > 0 {
		maxOpen = t.Placement.MaxConns
	}
	pool, err := r.open(cfg, maxOpen)
	if err != nil {
		return nil, err
	}

	r.mu.Lock()
	defer r.mu.Unlock()
	if s := r.openSilo(t); s != nil {
		pool.Close()
		return s, nil
	}
	s := &silo{tenantID: t.ID, from: t.Placement, pool: pool, users: 1}
	r.silos[t.ID] = r.lru.PushFront(s)
	for r.lru.Len() > r.opts.MaxSilos {
		r.evict(r.lru.Back())
	}
	return s, nil
}

// openSilo claims t's pool if one is open for its placement as it is now,
// evicting one opened for another. r.mu is held.
func (r *Router) openSilo(t *Tenant) *silo {
	e, ok := r.silos[t.ID]
	if !ok {
		return nil
	}
	s := e.Value.(*silo)
	if !s.from.same(t.Placement) {
		r.evict(e)
		return nil
	}
	r.lru.MoveToFront(e)
	s.users++
	return s
}

// evict takes a silo out of the LRU, closing its pool once no request is
// about to use it. r.mu is held.
func (r *Router) evict(e *list.Element) {
	o := e.Value.(*silo)
	r.lru.Remove(e)
	delete(r.silos, o.tenantID)
	o.evicted = true
	if o.users == 0 {
		go o.pool.Close() // waits for in-use connections to come back
	}
}

// release ends a request's claim on a silo pool, closing it if it was
// evicted meanwhile and nobody else is about to use it.
func (r *Router) release(s *silo) {
	r.mu.Lock()
	defer r.mu.Unlock()
	s.users--
	if s.evicted && s.users == 0 {
		go s.pool.Close()
	}
}
