package rollout

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"fmt"
	"sync"

	"github.com/unitenant/unitenant/shared/provisioning"
	"github.com/unitenant/unitenant/shared/secretbox"
	"github.com/unitenant/unitenant/shared/sqldb"
)

// pools holds one admin pool per cluster, shared by every database of the
// cluster the roll-out migrates: a connection selects its database with USE,
// so a thousand pooled tenants cost at most size connections, not a pool
// each.
type pools struct {
	sys  *sql.DB
	box  *secretbox.Box
	size int

	mu        sync.Mutex
	byCluster map[int64]*sql.DB
}

func newPools(sys *sql.DB, box *secretbox.Box, size int) *pools {
	return &pools{sys: sys, box: box, size: size, byCluster: map[int64]*sql.DB{}}
}

// get returns cluster id's pool, opened on first use.
func (p *pools) get(ctx context.Context, id int64) (*clusterPool, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if db, ok := p.byCluster[id]; ok {
		return &clusterPool{db}, nil
	}
	if p.box == nil {
		return nil, fmt.Errorf("db cluster %d: no secret box to open its credentials", id)
	}
	db, _, err := provisioning.OpenCluster(ctx, p.sys, p.box, id, "")
	if err != nil {
		return nil, err
	}
	db.SetMaxOpenConns(p.size)
	db.SetMaxIdleConns(p.size)
	p.byCluster[id] = db
	return &clusterPool{db}, nil
}

// close closes every pool.
func (p *pools) close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for id, db := range p.byCluster {
		db.Close()
		delete(p.byCluster, id)
	}
}

// clusterPool is the admin pool of one cluster.
type clusterPool struct{ db *sql.DB }

// on returns a connection of the pool with database selected (created
// first when create is set). Give it back with release.
func (c *clusterPool) on(ctx context.Context, database string, create bool) (*sql.Conn, error) {
	q, err := sqldb.QuoteIdent(database)
	if err != nil {
		return nil, err
	}
	if create {
		if err := sqldb.CreateDatabase(ctx, c.db, database); err != nil {
			return nil, err
		}
	}
	conn, err := c.db.Conn(ctx)
	if err != nil {
		return nil, fmt.Errorf("connect for %s: %w", database, err)
	}
	if _, err := conn.ExecContext(ctx, "USE "+q); err != nil {
		release(conn, err)
		return nil, fmt.Errorf("select database %s: %w", database, err)
	}
	return conn, nil
}

// release hands conn back to its pool, or closes it when the work on it
// failed: a migration that stopped half-way may have left session state
// (variables, an open transaction) the next database must not inherit.
func release(conn *sql.Conn, err error) {
	if err != nil {
		_ = conn.Raw(func(any) error { return driver.ErrBadConn })
	}
	_ = conn.Close()
}
