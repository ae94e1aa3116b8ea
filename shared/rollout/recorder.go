package rollout

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/unitenant/unitenant/shared/migration"
	"github.com/unitenant/unitenant/shared/sqldb"
)

// record is one entry for the tenant ledger: a tenant starting (begin) or
// what migrating it did.
type record struct {
	begin     bool
	rolloutID int64
	wave      int
	t         tenant
	pending   []migration.Migration // begin: the versions it is to get
	reached   int                   // end: the version its own ledger reached
	failed    *migration.Migration  // end: the migration that failed, nil if none
	cause     string                // end: why it failed
	at        time.Time
}

// recorder writes the tenant ledger (tenant_schema_migrations) and the
// mirror (tenant_databases.schema_version) behind the work, in batches, from
// one goroutine: workers never wait for the system database, and a hundred
// tenants finishing together cost one commit, not two hundred. A crash loses
// at most the batch not yet written; the next run finds those tenants behind
// in the mirror, connects, and their own ledgers say there is nothing to
// apply.
type recorder struct {
	sys *sql.DB
	ctx context.Context

	mu      sync.Mutex
	changed *sync.Cond // signalled when queue, busy or closed change
	queue   []record
	busy    bool
	closed  bool
	err     error // the first failed write
	exited  chan struct{}
}

// newRecorder starts a recorder; its writes outlive ctx's cancellation so
// what was done is recorded even on a shutdown.
func newRecorder(ctx context.Context, sys *sql.DB) *recorder {
	r := &recorder{sys: sys, ctx: context.WithoutCancel(ctx), exited: make(chan struct{})}
	r.changed = sync.NewCond(&r.mu)
	go r.loop()
	return r
}

// add queues rec.
func (r *recorder) add(rec record) {
	r.mu.Lock()
	r.queue = append(r.queue, rec)
	r.mu.Unlock()
	r.changed.Broadcast()
}

// flush waits until everything queued is written and returns the first
// write error so far.
func (r *recorder) flush() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	for len(r.queue) > 0 || r.busy {
		r.changed.Wait()
	}
	return r.err
}

// close flushes and stops the recorder.
func (r *recorder) close() error {
	err := r.flush()
	r.mu.Lock()
	r.closed = true
	r.mu.Unlock()
	r.changed.Broadcast()
	<-r.exited
	return err
}

func (r *recorder) loop() {
	defer close(r.exited)
	for {
		r.mu.Lock()
		for len(r.queue) == 0 && !r.closed {
			r.changed.Wait()
		}
		if len(r.queue) == 0 {
			r.mu.Unlock()
			return
		}
		batch := r.queue
		r.queue, r.busy = nil, true
		r.mu.Unlock()

		err := r.write(batch)

		r.mu.Lock()
		r.busy = false
		if err != nil && r.err == nil {
			r.err = err
		}
		r.mu.Unlock()
		r.changed.Broadcast()
	}
}

// write records batch in one transaction: the begins first (one statement),
// then each tenant's outcome. A tenant's begin is queued before its end, so
// it is in the same batch or an earlier one.
func (r *recorder) write(batch []record) error {
	err := sqldb.InTxRetry(r.ctx, r.sys, func(tx *sql.Tx) error {
		var values []string
		var args []any
		for _, rec := range batch {
			if !rec.begin {
				continue
			}
			for _, m := range rec.pending {
				values = append(values, "(?, ?, ?, 'running', 1, ?, ?, ?, ?)")
				args = append(args, rec.t.id, rec.t.database, m.Version, rec.rolloutID, rec.wave, m.Checksum, rec.at)
			}
		}
		if len(values) > 0 {
			if _, err := tx.ExecContext(r.ctx, `INSERT INTO tenant_schema_migrations
				(tenant_id, database_name, version, status, attempts, rollout_id, wave, checksum, started_at)
				VALUES `+strings.Join(values, ", ")+`
				ON DUPLICATE KEY UPDATE status = 'running', attempts = attempts + 1, database_name = VALUES(database_name),
				  rollout_id = VALUES(rollout_id), wave = VALUES(wave), checksum = VALUES(checksum),
				  started_at = VALUES(started_at), applied_at = NULL`, args...); err != nil {
				return err
			}
		}
		for _, rec := range batch {
			if !rec.begin {
				if err := end(r.ctx, tx, rec); err != nil {
					return fmt.Errorf("%s: %w", rec.t.code, err)
				}
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("rollout: record the tenant ledger: %w", err)
	}
	return nil
}

// end records what migrating rec.t did: the versions up to rec.reached
// applied and mirrored in tenant_databases, rec.failed failed with its
// cause, the versions after it pending again.
func end(ctx context.Context, tx *sql.Tx, rec record) error {
	t := rec.t
	if rec.reached > t.version {
		if _, err := tx.ExecContext(ctx, `UPDATE tenant_schema_migrations SET status = 'applied', applied_at = ?, last_error = NULL
			WHERE tenant_id = ? AND version > ? AND version <= ?`, rec.at, t.id, t.version, rec.reached); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, "UPDATE tenant_databases SET schema_version = ?, last_migrated_at = ? WHERE tenant_id = ?",
			rec.reached, rec.at, t.id); err != nil {
			return err
		}
	}
	if rec.failed == nil {
		return nil
	}
	msg := rec.cause
	if len(msg) > maxErrorLen {
		msg = msg[:maxErrorLen]
	}
	if _, err := tx.ExecContext(ctx, "UPDATE tenant_schema_migrations SET status = 'failed', last_error = ? WHERE tenant_id = ? AND version = ?",
		msg, t.id, rec.failed.Version); err != nil {
		return err
	}
	_, err := tx.ExecContext(ctx, "UPDATE tenant_schema_migrations SET status = 'pending' WHERE tenant_id = ? AND version > ? AND status = 'running'",
		t.id, rec.failed.Version)
	return err
}
