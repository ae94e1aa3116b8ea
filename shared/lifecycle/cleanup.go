package lifecycle

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/unitenant/unitenant/shared/logging"
	"github.com/unitenant/unitenant/shared/notify"
	"github.com/unitenant/unitenant/shared/objectstore"
	"github.com/unitenant/unitenant/shared/provisioning"
	"github.com/unitenant/unitenant/shared/secretbox"
	"github.com/unitenant/unitenant/shared/sqldb"
)

// Resource types of tenant_resource_cleanup rows, and the order they are
// purged in: the database is archived (and dropped) before anything else
// goes, its siloed user next, the objects last.
const (
	ResourceDatabase = "database" // resource_name: the database; cluster_id set
	ResourceDBUser   = "db_user"  // resource_name: the MySQL user; cluster_id set (siloed tenants)
	ResourceObjects  = "objects"  // resource_name: the tenant's object prefix, e.g. tenants/k001/
)

var sortOrder = map[string]int{ResourceDatabase: 10, ResourceDBUser: 20, ResourceObjects: 30}

// Defaults of Purge and Sweep (seed 000 §5.4, seed 002).
const (
	DefaultLeaseTTL        = 30 * time.Minute
	DefaultBackoff         = time.Hour // after the n-th failure: DefaultBackoff·2^(n-1)
	DefaultParallel        = 4
	DefaultTempAge         = 7 * 24 * time.Hour
	DefaultPurgeBudget     = 4 * time.Minute
	defaultCandidatesBatch = 100
)

// Schedule inserts, in tx, the cleanup rows of deleted tenant tenantID, due
// at dueAt: its database (and its siloed MySQL user) and its object prefix,
// each once (an upsert: a tenant deleted again after a restore gets its
// cancelled rows back, reset). deletionRequestID is the confirmed request,
// 0 for none. The caller sets the tenant's status in the same transaction.
func Schedule(ctx context.Context, tx *sql.Tx, tenantID, deletionRequestID int64, dueAt time.Time) error {
	var code string
	var prefix, dbName, dbUser sql.NullString
	var clusterID sql.NullInt64
	err := tx.QueryRowContext(ctx, `SELECT t.tenant_code, t.storage_prefix, d.cluster_id, d.database_name, d.db_user
		FROM tenants t LEFT JOIN tenant_databases d ON d.tenant_id = t.id WHERE t.id = ?`, tenantID).
		Scan(&code, &prefix, &clusterID, &dbName, &dbUser)
	if err != nil {
		return fmt.Errorf("schedule cleanup of tenant %d: %w", tenantID, err)
	}
	type resource struct {
		kind, name string
		cluster    sql.NullInt64
	}
	var res []resource
	if dbName.Valid {
		res = append(res, resource{ResourceDatabase, dbName.String, clusterID})
	}
	if dbUser.Valid && dbUser.String != "" {
		res = append(res, resource{ResourceDBUser, dbUser.String, clusterID})
	}
	if prefix.Valid && prefix.String != "" {
		res = append(res, resource{ResourceObjects, prefix.String, sql.NullInt64{}})
	}
	var reqID any
	if deletionRequestID != 0 {
		reqID = deletionRequestID
	}
	for _, r := range res {
		// Rows a purge has begun or finished are left as they are; the
		// others start over. oss_path (the database row's archive) is
		// cleared: data restored since then needs a new archive.
		_, err := tx.ExecContext(ctx, `INSERT INTO tenant_resource_cleanup
			(tenant_id, tenant_code, deletion_request_id, resource_type, resource_name, cluster_id, sort_order, status, scheduled_deletion_at)
			VALUES (?, ?, ?, ?, ?, ?, ?, 'pending', ?)
			ON DUPLICATE KEY UPDATE
			  deletion_request_id = IF(status IN ('pending', 'cancelled', 'failed'), VALUES(deletion_request_id), deletion_request_id),
			  cluster_id = IF(status IN ('pending', 'cancelled', 'failed'), VALUES(cluster_id), cluster_id),
			  scheduled_deletion_at = IF(status IN ('pending', 'cancelled', 'failed'), VALUES(scheduled_deletion_at), scheduled_deletion_at),
			  next_attempt_at = IF(status IN ('pending', 'cancelled', 'failed'), NULL, next_attempt_at),
			  retry_count = IF(status IN ('pending', 'cancelled', 'failed'), 0, retry_count),
			  error_message = IF(status IN ('pending', 'cancelled', 'failed'), NULL, error_message),
			  alerted_at = IF(status IN ('pending', 'cancelled', 'failed'), NULL, alerted_at),
			  oss_path = IF(status IN ('pending', 'cancelled', 'failed'), NULL, oss_path),
			  status = IF(status IN ('pending', 'cancelled', 'failed'), 'pending', status)`,
			tenantID, code, reqID, r.kind, r.name, r.cluster, sortOrder[r.kind], dueAt.UTC())
		if err != nil {
			return fmt.Errorf("schedule cleanup of %s %s: %w", r.kind, r.name, err)
		}
	}
	return nil
}

// Options configure Purge and Sweep.
type Options struct {
	Sys   *sql.DB
	Box   *secretbox.Box       // opens cluster credentials
	Store *objectstore.Service // the tenants' objects and the archives
	Owner string               // lease owner (default host:pid)
	Now   func() time.Time     // the clock for due dates and leases (default time.Now)
	// Budget is how long a run may take (default DefaultPurgeBudget, wall
	// time): no tenant or resource is started after it; leased rows not
	// started are handed back, the rest waits for the next run.
	Budget   time.Duration
	LeaseTTL time.Duration // how long a lease lasts (default DefaultLeaseTTL)
	Backoff  time.Duration // first retry delay, doubled each time (default DefaultBackoff)
	Parallel int           // tenants purged at once (default DefaultParallel)
	PageSize int           // objects listed (and deleted) per page (default objectstore.MaxList)
	TempAge  time.Duration // temp objects older than this are swept (default DefaultTempAge)
	Log      *slog.Logger
	// Crash, when set, is called at named points of a purge
	// ("database:writing" (a new archive recorded, its object not yet
	// written), "database:written" (the archive's object there, not yet
	// recorded complete), "database:archived", "database:authorized" (the
	// drop authorized, not yet made), "database:dropped", "db_user:found"
	// (the user's hosts found, not yet dropped), "db_user:dropped",
	// "objects:listed" (a page listed, not yet deleted), "objects:page",
	// "objects:removed") and of a sweep ("archive:deleted"); an error stops
	// the run on the spot, leases held, as a crash would. Tests only.
	Crash func(step string) error
}

func (o *Options) defaults() {
	if o.Owner == "" {
		host, _ := os.Hostname()
		o.Owner = fmt.Sprintf("cleanup:%s:%d", host, os.Getpid())
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Budget <= 0 {
		o.Budget = DefaultPurgeBudget
	}
	if o.LeaseTTL <= 0 {
		o.LeaseTTL = DefaultLeaseTTL
	}
	if o.Backoff <= 0 {
		o.Backoff = DefaultBackoff
	}
	if o.Parallel <= 0 {
		o.Parallel = DefaultParallel
	}
	if o.PageSize <= 0 || o.PageSize > objectstore.MaxList {
		o.PageSize = objectstore.MaxList
	}
	if o.TempAge <= 0 {
		o.TempAge = DefaultTempAge
	}
	if o.Log == nil {
		o.Log = logging.Discard()
	}
}

func (o *Options) now() time.Time { return o.Now().UTC().Truncate(time.Millisecond) }

// Report says what a Purge run did.
type Report struct {
	Purged    []string `json:"purged"`    // tenants whose every resource is gone
	Completed int      `json:"completed"` // resources purged
	Retrying  int      `json:"retrying"`  // resources that failed and will be retried
	Failed    int      `json:"failed"`    // resources that failed for the last time (alerted)
	Archives  []string `json:"archives"`  // archives written
	// LeasesLost counts the resources this run stopped at, doing nothing
	// more to them, because they were no longer its own: another run took
	// them over (this one stalled past its lease) or the purge was
	// cancelled. Each is logged as "cleanup lease lost".
	LeasesLost int `json:"leasesLost"`
	// Stopped is set when the budget ran out with work left for the next run.
	Stopped    bool  `json:"stopped"`
	DurationMS int64 `json:"durationMs"`
}

// cleanupRow is one leased tenant_resource_cleanup row.
type cleanupRow struct {
	ID         int64
	TenantID   int64
	TenantCode string
	Type, Name string
	ClusterID  sql.NullInt64
	ArchiveKey sql.NullString // oss_path: the database row's archive, once begun
	Retries    int
	MaxRetries int
	// Lease is lease_expires_at as this run set (or renewed) it. With the
	// owner it names this run's lease, as a generation would: a row is only
	// taken from a run once its lease has expired (or the purge was
	// cancelled and scheduled again), and the new lease ends later, so a
	// run that lost r, even to its own owner (the same host and process
	// leasing again), never finds its pair in the row again (see holds).
	Lease time.Time
}

// crashError is an injected crash: it stops the run as it is.
type crashError struct{ error }

// purger is one Purge run.
type purger struct {
	o        *Options
	deadline time.Time

	mu      sync.Mutex
	rep     Report
	servers map[int64]*sql.DB
}

// Purge purges the tenants whose cleanup rows are due: deleted tenants past
// their grace period (or made due by a purge). Rows are leased per tenant in
// a transaction that locks the tenant row and re-checks it is still deleted
// (so a restore wins over a purge that has not started, and two runs never
// take one row), then done in sort order: the database archived (see
// WriteArchive) and dropped, its siloed user dropped, the object prefix
// deleted page by page. A failed resource is retried on later runs with
// backoff; its last failure marks it failed and emits tenant.cleanup_failed.
// Once every row of a tenant is completed the tenant is purged, audited
// (tenant.purge, by the system) and tenant.purged emitted, in the
// transaction of its last row.
func Purge(ctx context.Context, o Options) (Report, error) {
	if o.Sys == nil || o.Box == nil || o.Store == nil {
		return Report{}, errors.New("purge: Sys, Box and Store are required")
	}
	o.defaults()
	start := time.Now()
	p := &purger{o: &o, deadline: start.Add(o.Budget), servers: map[int64]*sql.DB{}}
	defer p.closeServers()
	err := p.run(ctx)
	p.rep.DurationMS = time.Since(start).Milliseconds()
	if p.rep.Purged == nil {
		p.rep.Purged = []string{}
	}
	if p.rep.Archives == nil {
		p.rep.Archives = []string{}
	}
	return p.rep, err
}

func (p *purger) run(ctx context.Context) error {
	tried := map[int64]bool{}
	for {
		ids, err := p.candidates(ctx, tried)
		if err != nil || len(ids) == 0 {
			return err
		}
		// One tenant's error does not cut the others short mid-resource.
		var g errgroup.Group
		g.SetLimit(p.o.Parallel)
		for _, id := range ids {
			tried[id] = true
			if p.outOfTime() {
				break
			}
			g.Go(func() error { return p.tenant(ctx, id) })
		}
		if err := g.Wait(); err != nil {
			return err
		}
		if p.outOfTime() {
			return nil
		}
	}
}

// outOfTime reports (and records) that the budget has run out.
func (p *purger) outOfTime() bool {
	if time.Now().Before(p.deadline) {
		return false
	}
	p.mu.Lock()
	p.rep.Stopped = true
	p.mu.Unlock()
	return true
}

// dueRow is the condition of a row that may be leased now (args: now, now,
// now): pending and due, or leased by a run whose lease expired (it died).
const dueRow = `((c.status = 'pending' AND c.scheduled_deletion_at <= ? AND (c.next_attempt_at IS NULL OR c.next_attempt_at <= ?))
	OR (c.status = 'in_progress' AND c.lease_expires_at < ?))`

// candidates lists deleted tenants with a due row that nothing earlier in
// their order holds back, not yet tried in this run.
func (p *purger) candidates(ctx context.Context, tried map[int64]bool) ([]int64, error) {
	now := p.o.now()
	rows, err := p.o.Sys.QueryContext(ctx, `SELECT c.tenant_id FROM tenant_resource_cleanup c JOIN tenants t ON t.id = c.tenant_id
		WHERE t.status = 'deleted' AND `+dueRow+` AND NOT EXISTS (SELECT 1 FROM tenant_resource_cleanup e
		  WHERE e.tenant_id = c.tenant_id AND e.sort_order < c.sort_order AND e.status NOT IN ('completed', 'cancelled'))
		GROUP BY c.tenant_id ORDER BY MIN(c.scheduled_deletion_at), c.tenant_id LIMIT ?`,
		now, now, now, defaultCandidatesBatch+len(tried))
	if err != nil {
		return nil, fmt.Errorf("due cleanup: %w", err)
	}
	defer rows.Close()
	var ids []int64
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			return nil, err
		}
		if !tried[id] {
			ids = append(ids, id)
		}
	}
	return ids, rows.Err()
}

// lease takes tenantID's due rows in sort order, up to the first row that
// is neither completed nor due (a later row never goes before it), in one
// transaction holding the tenant row, which must still be deleted. Nothing
// is returned when another run holds the tenant or its rows.
//
// A row taken over from a run whose lease expired is an attempt that died
// with its run (killed at the function timeout, out of memory): it counts
// as a failed attempt, and the last one marks the row failed and alerts,
// so a resource that kills every run does not go round unnoticed.
func (p *purger) lease(ctx context.Context, tenantID int64) ([]cleanupRow, error) {
	var leased []cleanupRow
	var gaveUp int
	err := sqldb.InTxRetry(ctx, p.o.Sys, func(tx *sql.Tx) error {
		leased, gaveUp = nil, 0
		var status string
		err := tx.QueryRowContext(ctx, "SELECT status FROM tenants WHERE id = ? FOR UPDATE SKIP LOCKED", tenantID).Scan(&status)
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			return err
		}
		if status != "deleted" {
			return nil // locked by another run or a transition (no row), or restored
		}
		now := p.o.now()
		rows, err := tx.QueryContext(ctx, `SELECT c.id, c.tenant_id, c.tenant_code, c.resource_type, c.resource_name, c.cluster_id, c.oss_path,
			c.retry_count, c.max_retries, c.status = 'completed', `+dueRow+`, c.status = 'in_progress', c.lease_owner
			FROM tenant_resource_cleanup c WHERE c.tenant_id = ? AND c.status <> 'cancelled' ORDER BY c.sort_order, c.id FOR UPDATE`,
			now, now, now, tenantID)
		if err != nil {
			return err
		}
		defer rows.Close()
		type candidate struct {
			cleanupRow
			crashed bool
			owner   sql.NullString
		}
		var due []candidate
		for rows.Next() {
			var c candidate
			var completed, isDue bool
			if err := rows.Scan(&c.ID, &c.TenantID, &c.TenantCode, &c.Type, &c.Name, &c.ClusterID, &c.ArchiveKey,
				&c.Retries, &c.MaxRetries, &completed, &isDue, &c.crashed, &c.owner); err != nil {
				return err
			}
			if completed {
				continue
			}
			if !isDue {
				break
			}
			due = append(due, c)
		}
		if err := rows.Err(); err != nil {
			return err
		}
		rows.Close()
		for _, c := range due {
			r := c.cleanupRow
			if c.crashed {
				r.Retries++
				if r.Retries >= r.MaxRetries {
					if err := p.giveUp(ctx, tx, r, now, fmt.Sprintf("the run %s stopped while purging it (its lease expired)", c.owner.String)); err != nil {
						return err
					}
					gaveUp++
					break // what follows waits, as after any failure
				}
			}
			r.Lease = now.Add(p.o.LeaseTTL)
			if _, err := tx.ExecContext(ctx, `UPDATE tenant_resource_cleanup SET status = 'in_progress', lease_owner = ?, lease_expires_at = ?,
				retry_count = ?, deletion_started_at = COALESCE(deletion_started_at, ?) WHERE id = ?`,
				p.o.Owner, r.Lease, r.Retries, now, r.ID); err != nil {
				return err
			}
			leased = append(leased, r)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("lease cleanup of tenant %d: %w", tenantID, err)
	}
	if gaveUp > 0 {
		p.mu.Lock()
		p.rep.Failed += gaveUp
		p.mu.Unlock()
	}
	return leased, nil
}

// giveUp marks r failed for good in tx, after r.Retries attempts, and emits
// tenant.cleanup_failed (the alert) in the same transaction.
func (p *purger) giveUp(ctx context.Context, tx *sql.Tx, r cleanupRow, now time.Time, msg string) error {
	if _, err := tx.ExecContext(ctx, `UPDATE tenant_resource_cleanup SET status = 'failed', retry_count = ?, error_message = ?, alerted_at = ?,
		lease_owner = NULL, lease_expires_at = NULL WHERE id = ?`, r.Retries, msg, now, r.ID); err != nil {
		return err
	}
	_, err := notify.Emit(ctx, tx, notify.Event{Type: notify.TenantCleanupFailed, TenantID: r.TenantID, TenantCode: r.TenantCode,
		Data: map[string]any{"resourceType": r.Type, "resourceName": r.Name, "attempts": r.Retries, "error": msg}})
	return err
}

// tenant purges what is due of one tenant.
func (p *purger) tenant(ctx context.Context, tenantID int64) error {
	rows, err := p.lease(ctx, tenantID)
	if err != nil || len(rows) == 0 {
		return err
	}
	for i := range rows {
		r := &rows[i]
		if i > 0 && p.outOfTime() {
			return p.release(ctx, rows[i:])
		}
		err := p.resource(ctx, r)
		var crash crashError
		if errors.As(err, &crash) {
			return crash.error
		}
		if errors.Is(err, errLeaseLost) {
			// Taken over (its lease expired) or cancelled (the tenant was
			// restored): the row is no longer this run's, nor are the rows
			// after it.
			p.leaseLost(ctx, *r, err)
			return p.release(ctx, rows[i+1:])
		}
		if err != nil {
			p.o.Log.WarnContext(ctx, "cleanup failed", "tenant", r.TenantCode, "resource", r.Type, "name", r.Name, "err", err)
			if ferr := p.fail(ctx, *r, err); ferr != nil {
				return ferr
			}
			return p.release(ctx, rows[i+1:])
		}
		purged, ok, err := p.complete(ctx, *r)
		if err != nil {
			return err
		}
		if !ok { // the lease was lost (expired and taken): leave the rest to its holder
			p.leaseLost(ctx, *r, fmt.Errorf("complete %s %s: %w", r.Type, r.Name, errLeaseLost))
			return nil
		}
		p.mu.Lock()
		p.rep.Completed++
		if purged {
			p.rep.Purged = append(p.rep.Purged, r.TenantCode)
		}
		p.mu.Unlock()
	}
	return nil
}

// leaseLost reports that this run stopped at r, which is no longer its own
// (cause says where): nothing more is done to r by this run.
func (p *purger) leaseLost(ctx context.Context, r cleanupRow, cause error) {
	p.o.Log.WarnContext(ctx, "cleanup lease lost", "tenant", r.TenantCode, "resource", r.Type, "name", r.Name, "err", cause)
	p.mu.Lock()
	p.rep.LeasesLost++
	p.mu.Unlock()
}

// crash calls the crash hook of step.
func (p *purger) crash(step string) error {
	if p.o.Crash == nil {
		return nil
	}
	if err := p.o.Crash(step); err != nil {
		return crashError{err}
	}
	return nil
}

// resource purges one resource.
func (p *purger) resource(ctx context.Context, r *cleanupRow) error {
	switch r.Type {
	case ResourceDatabase:
		return p.database(ctx, r)
	case ResourceDBUser:
		return p.dbUser(ctx, r)
	case ResourceObjects:
		return p.objects(ctx, r)
	}
	return fmt.Errorf("unknown resource type %q", r.Type)
}

// server returns a pool on cluster id, opened once per run.
func (p *purger) server(ctx context.Context, r cleanupRow) (*sql.DB, error) {
	if !r.ClusterID.Valid {
		return nil, fmt.Errorf("%s %s: no cluster recorded", r.Type, r.Name)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if db := p.servers[r.ClusterID.Int64]; db != nil {
		return db, nil
	}
	db, err := OpenServer(ctx, p.o.Sys, p.o.Box, r.ClusterID.Int64)
	if err != nil {
		return nil, err
	}
	p.servers[r.ClusterID.Int64] = db
	return db, nil
}

func (p *purger) closeServers() {
	for _, db := range p.servers {
		db.Close()
	}
}

// database archives the tenant database (unless this row's archive is
// already complete: a rerun after a crash) and drops it, once authorize
// has said, just before, that this run still may.
//
// The archive can take long, and the run's lease may end meanwhile: taken
// over by a run now dumping the same database, or cancelled by a restore
// that made the tenant live again. Neither run nor tenant may lose the
// database to this one, so nothing it decided before counts at the drop.
func (p *purger) database(ctx context.Context, r *cleanupRow) error {
	server, err := p.server(ctx, *r)
	if err != nil {
		return err
	}
	if err := p.archive(ctx, server, r); err != nil {
		return err
	}
	if err := p.crash("database:archived"); err != nil {
		return err
	}
	if err := p.authorize(ctx, r, "drop database "+r.Name); err != nil {
		return err
	}
	if err := p.crash("database:authorized"); err != nil {
		return err
	}
	if err := sqldb.DropDatabase(ctx, server, r.Name); err != nil {
		return err
	}
	return p.crash("database:dropped")
}

// authorize is the last word before every destructive step of a purge (act
// names it: "drop database x", "drop user y", "delete a page under z"): in
// one transaction holding the tenant, r's row and its archive, it checks
// that the tenant is still deleted, that r is still this run's lease and,
// before a database is dropped, that r's archive is complete, and renews
// the lease, so that no other run takes r over while the step is on its
// way. Else it is errLeaseLost (the lease is gone: taken over, or the purge
// cancelled) or an error (the tenant is no longer deleted), and nothing is
// done.
//
// A restore (Restore: tenant row locked, refused while a row is in_progress)
// and a takeover (lease: tenant row locked, SKIP LOCKED) are therefore
// either before it, and refuse the step, or after it and see a purge begun
// that they leave alone. A crash between it and the step leaves just that:
// a row in_progress (for a database, one whose archive is complete). The
// run that takes it over once the lease has expired skips what is done,
// authorizes again and does the step again (DROP ... IF EXISTS, deleting
// objects: idempotent), and completes the row.
func (p *purger) authorize(ctx context.Context, r *cleanupRow, act string) error {
	var renewed time.Time
	err := sqldb.InTxRetry(ctx, p.o.Sys, func(tx *sql.Tx) error {
		var tenant string
		err := tx.QueryRowContext(ctx, "SELECT status FROM tenants WHERE id = ? FOR UPDATE", r.TenantID).Scan(&tenant)
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			return err
		}
		var mine bool
		var archive sql.NullString
		err = tx.QueryRowContext(ctx, `SELECT c.status = 'in_progress' AND c.lease_owner <=> ? AND c.lease_expires_at <=> ?, a.status
			FROM tenant_resource_cleanup c LEFT JOIN tenant_archives a ON a.object_key = c.oss_path WHERE c.id = ? FOR UPDATE`,
			p.o.Owner, r.Lease, r.ID).Scan(&mine, &archive)
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			return err
		}
		if !mine {
			return errLeaseLost
		}
		if tenant != "deleted" {
			return fmt.Errorf("tenant %s is %s, not deleted: refused", r.TenantCode, tenant)
		}
		if r.Type == ResourceDatabase && archive.String != "completed" {
			return fmt.Errorf("its archive is %q, not completed: refused", archive.String)
		}
		if renewed = p.o.now().Add(p.o.LeaseTTL); renewed.Before(r.Lease) {
			renewed = r.Lease // a lease never ends earlier than it did
		}
		// The row is locked and this run's: no need to count the rows
		// changed (none, when the lease already ended as late).
		_, err = tx.ExecContext(ctx, "UPDATE tenant_resource_cleanup SET lease_expires_at = ? WHERE id = ?", renewed, r.ID)
		return err
	})
	if err != nil {
		if errors.Is(err, errLeaseLost) {
			return fmt.Errorf("%s: not done: %w", act, err)
		}
		return fmt.Errorf("authorize %s: %w", act, err)
	}
	r.Lease = renewed
	return nil
}

// archive makes sure this row's archive exists.
//
// An archive's object is only ever written by the attempt that recorded it
// (tenant_archives, in_progress) and linked it to the row (oss_path), in
// one transaction under the lease, just before: every attempt that writes
// one does so under a key of its own (the key is unique in
// tenant_archives). So an attempt that stalled past its lease, however late
// its upload lands, can only write its own object, never the one the run
// holding the lease made and recorded (nor may it record its own: see
// below).
//
// An attempt taking a row over finds the key the attempt before it linked:
// complete, it is kept; else, when its object is there (that attempt died,
// or stalled, once it had written it: a store writes whole objects or none)
// and is a whole archive holding what the database holds, it is adopted as
// it is, never written again; else a new archive is recorded, under a new
// key, and linked in its place. The one it replaces is then no purge's,
// and the sweep deletes it (see abandonedArchive). A crash at any point
// thus leads the rerun to one archive, the one recorded.
func (p *purger) archive(ctx context.Context, server *sql.DB, r *cleanupRow) error {
	key := r.ArchiveKey.String
	var status string
	if key != "" {
		err := p.o.Sys.QueryRowContext(ctx, "SELECT status FROM tenant_archives WHERE object_key = ?", key).Scan(&status)
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("archive of %s: %w", r.Name, err)
		}
		if status == "completed" {
			return nil
		}
	}
	var exists int
	if err := server.QueryRowContext(ctx, "SELECT COUNT(*) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = ?", r.Name).Scan(&exists); err != nil {
		return fmt.Errorf("database %s: %w", r.Name, err)
	}
	if exists == 0 {
		// Never drop what was not archived, nor pretend it was: an operator
		// must look at a database that vanished on its own.
		return fmt.Errorf("database %s does not exist and no archive of it was made", r.Name)
	}
	version, err := provisioning.DatabaseVersion(ctx, server, r.Name)
	if err != nil {
		return err
	}
	var a *Archived
	if status == "in_progress" {
		if a, err = p.adopt(ctx, server, r, key); err != nil {
			return err
		}
	}
	if a == nil {
		if key, err = p.beginArchive(ctx, r, version); err != nil {
			return err
		}
		if err := p.crash("database:writing"); err != nil {
			return err
		}
		if a, err = WriteArchive(ctx, server, p.o.Store.Store, key, r.Name); err != nil {
			return err
		}
	}
	if err := p.crash("database:written"); err != nil {
		return err
	}
	counts, _ := json.Marshal(a.RowCounts)
	abandoned := false
	err = sqldb.InTxRetry(ctx, p.o.Sys, func(tx *sql.Tx) error {
		// Locked against the sweep (abandonArchives), which may have taken
		// the archive for no purge's while this run went on, and against
		// the run that took the row over: only the lease's holder records
		// it (and then drops what it holds).
		mine, err := p.holds(ctx, tx, *r)
		if err != nil {
			return err
		}
		var status string
		err = tx.QueryRowContext(ctx, "SELECT status FROM tenant_archives WHERE object_key = ? FOR UPDATE", key).Scan(&status)
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			return err
		}
		if abandoned = status != "in_progress" && status != "completed"; abandoned {
			return nil
		}
		if !mine {
			// Its new holder adopts it, or links an archive of its own in
			// its place; or the purge was cancelled. Either way the sweep
			// deletes it once no purge needs it.
			return errLeaseLost
		}
		_, err = tx.ExecContext(ctx, `UPDATE tenant_archives SET status = 'completed', size_bytes = ?, checksum = ?, row_counts = ?,
			schema_version = ? WHERE object_key = ?`, a.Size, a.Checksum, string(counts), version, key)
		return err
	})
	if err != nil {
		return fmt.Errorf("record archive %s: %w", key, err)
	}
	if abandoned {
		// The object may have landed after the sweep deleted it: it is no
		// one's, and nothing is dropped on the strength of it.
		if err := p.o.Store.Store.Delete(ctx, key); err != nil {
			return fmt.Errorf("archive %s was abandoned while it was written; delete it: %w", key, err)
		}
		return fmt.Errorf("archive %s was abandoned while it was written (its purge was cancelled)", key)
	}
	p.mu.Lock()
	p.rep.Archives = append(p.rep.Archives, key)
	p.mu.Unlock()
	return nil
}

// beginArchive records a new archive of r's database, in_progress under a
// new key, and links it to r in its place (oss_path), if r is still this
// run's lease; it returns the key.
func (p *purger) beginArchive(ctx context.Context, r *cleanupRow, version int) (string, error) {
	now := p.o.now()
	key := ArchiveKey(r.TenantCode, now)
	err := sqldb.InTx(ctx, p.o.Sys, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `INSERT INTO tenant_archives (tenant_id, tenant_code, database_name, schema_version, object_key, format,
			status, created_at, expires_at) VALUES (?, ?, ?, ?, ?, ?, 'in_progress', ?, ?)`,
			r.TenantID, r.TenantCode, r.Name, version, key, ArchiveFormat, now, now.Add(ArchiveRetention)); err != nil {
			return err
		}
		return p.leased(ctx, tx, *r, "oss_path = ?", key)
	})
	if err != nil {
		return "", fmt.Errorf("record archive %s: %w", key, err)
	}
	r.ArchiveKey = sql.NullString{String: key, Valid: true}
	return key, nil
}

// adopt returns the archive an earlier attempt at r began under key, when
// its object is there, whole, and holds the rows the database holds now:
// it becomes this attempt's archive as it is. nil when there is nothing to
// adopt (no object: that attempt died, or is still writing, before it
// landed), or nothing that should be (not a whole archive, or one of other
// rows); the caller then writes a new one. An error is the store failing.
func (p *purger) adopt(ctx context.Context, server *sql.DB, r *cleanupRow, key string) (*Archived, error) {
	a, err := readArchive(ctx, p.o.Store.Store, key)
	if errors.Is(err, objectstore.ErrNotFound) {
		return nil, nil
	}
	var bad *badArchiveError
	if errors.As(err, &bad) {
		p.o.Log.WarnContext(ctx, "unrecorded archive not adopted: a new one is written", "tenant", r.TenantCode, "archive", key, "err", err)
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	live, err := tableCounts(ctx, server, r.Name)
	if err != nil {
		return nil, err
	}
	if !maps.Equal(live, a.RowCounts) {
		p.o.Log.WarnContext(ctx, "unrecorded archive not adopted: its rows are not the database's; a new one is written",
			"tenant", r.TenantCode, "archive", key)
		return nil, nil
	}
	return a, nil
}

// tableCounts returns the row count of every base table of database.
func tableCounts(ctx context.Context, server *sql.DB, database string) (map[string]int64, error) {
	q, err := sqldb.QuoteIdent(database)
	if err != nil {
		return nil, err
	}
	tables, err := queryStrings(ctx, server, `SELECT TABLE_NAME FROM information_schema.TABLES
		WHERE TABLE_SCHEMA = ? AND TABLE_TYPE = 'BASE TABLE'`, database)
	if err != nil {
		return nil, fmt.Errorf("list tables of %s: %w", database, err)
	}
	counts := make(map[string]int64, len(tables))
	for _, t := range tables {
		if err := sqldb.ValidateIdent(t); err != nil {
			return nil, fmt.Errorf("table of %s: %w", database, err)
		}
		var n int64
		if err := server.QueryRowContext(ctx, "SELECT COUNT(*) FROM "+q+".`"+t+"`").Scan(&n); err != nil {
			return nil, fmt.Errorf("count %s.%s: %w", database, t, err)
		}
		counts[t] = n
	}
	return counts, nil
}

// errLeaseLost is returned when a row is no longer leased by this run.
var errLeaseLost = errors.New("cleanup lease lost")

// leased updates row r with set (args are set's), if the row is still this
// run's lease (see cleanupRow.Lease); else it is errLeaseLost.
func (p *purger) leased(ctx context.Context, tx *sql.Tx, r cleanupRow, set string, args ...any) error {
	res, err := tx.ExecContext(ctx, "UPDATE tenant_resource_cleanup SET "+set+
		" WHERE id = ? AND lease_owner = ? AND lease_expires_at = ? AND status = 'in_progress'", append(args, r.ID, p.o.Owner, r.Lease)...)
	if err != nil {
		return err
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return errLeaseLost
	}
	return nil
}

// holds locks row r in tx and reports whether it is still this run's lease.
func (p *purger) holds(ctx context.Context, tx *sql.Tx, r cleanupRow) (bool, error) {
	var mine bool
	err := tx.QueryRowContext(ctx, `SELECT status = 'in_progress' AND lease_owner <=> ? AND lease_expires_at <=> ?
		FROM tenant_resource_cleanup WHERE id = ? FOR UPDATE`, p.o.Owner, r.Lease, r.ID).Scan(&mine)
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil
	}
	return mine, err
}

// dbUser drops the siloed user of the tenant database, on every host it
// was created for, once authorize has said, just before, that this run
// still may.
func (p *purger) dbUser(ctx context.Context, r *cleanupRow) error {
	if err := sqldb.ValidateIdent(r.Name); err != nil {
		return err
	}
	server, err := p.server(ctx, *r)
	if err != nil {
		return err
	}
	hosts, err := queryStrings(ctx, server, "SELECT Host FROM mysql.user WHERE User = ?", r.Name)
	if err != nil {
		return fmt.Errorf("find user %s: %w", r.Name, err)
	}
	if err := p.crash("db_user:found"); err != nil {
		return err
	}
	if len(hosts) > 0 {
		if err := p.authorize(ctx, r, "drop user "+r.Name); err != nil {
			return err
		}
	}
	for _, h := range hosts {
		if _, err := server.ExecContext(ctx, "DROP USER IF EXISTS ?@?", r.Name, h); err != nil {
			return fmt.Errorf("drop user %s@%s: %w", r.Name, h, err)
		}
	}
	return p.crash("db_user:dropped")
}

// objects deletes everything under the tenant's prefix, a page at a time,
// so a run cut short has made progress the next one continues from. Each
// page is deleted once authorize has said, just before, that this run still
// may (which renews its lease page by page).
func (p *purger) objects(ctx context.Context, r *cleanupRow) error {
	code, ok := p.o.Store.Layout.Code(r.Name)
	if !ok || code != r.TenantCode {
		return fmt.Errorf("objects %q: not the prefix of tenant %s in %s", r.Name, r.TenantCode, p.o.Store.Layout)
	}
	t, err := p.o.Store.Tenant(code)
	if err != nil {
		return err
	}
	for {
		page, err := t.List(ctx, "", "", p.o.PageSize)
		if err != nil {
			return fmt.Errorf("list %s: %w", r.Name, err)
		}
		if err := p.crash("objects:listed"); err != nil {
			return err
		}
		if len(page.Objects) > 0 {
			if err := p.authorize(ctx, r, "delete objects under "+r.Name); err != nil {
				return err
			}
		}
		named, unnamed := byName(page.Objects)
		if err := deleteAll(ctx, t, named); err != nil {
			return fmt.Errorf("delete under %s: %w", r.Name, err)
		}
		if unnamed > 0 {
			// Keys OSS holds that no caller may name (a console's folder
			// "photos/", an STS upload "a//b.jpg"): Tenant.Delete refuses
			// them, so the prefix is emptied as the store lists it, in one
			// go (authorized just above, like a page).
			if err := p.o.Store.Remove(ctx, r.Name); err != nil {
				return fmt.Errorf("delete under %s: %w", r.Name, err)
			}
		}
		if !page.Truncated {
			return p.crash("objects:removed")
		}
		if err := p.crash("objects:page"); err != nil {
			return err
		}
	}
}

// byName splits a listing into the objects a caller can name
// (objectstore.CheckKey takes their keys, so Tenant.Delete does) and counts
// the others, which OSS holds all the same.
func byName(objs []objectstore.Info) (named []objectstore.Info, unnamed int) {
	for _, o := range objs {
		if objectstore.CheckKey(o.Key) != nil {
			unnamed++
			continue
		}
		named = append(named, o)
	}
	return named, unnamed
}

// deleteAll deletes objs from t, a few at a time.
func deleteAll(ctx context.Context, t *objectstore.Tenant, objs []objectstore.Info) error {
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(16)
	for _, o := range objs {
		g.Go(func() error { return t.Delete(gctx, o.Key) })
	}
	return g.Wait()
}

// complete marks r completed and, when it was the tenant's last row, purges
// the tenant in the same transaction. ok is false when r was no longer
// leased by this run.
func (p *purger) complete(ctx context.Context, r cleanupRow) (purged, ok bool, err error) {
	err = sqldb.InTxRetry(ctx, p.o.Sys, func(tx *sql.Tx) error {
		purged = false
		now := p.o.now()
		err := p.leased(ctx, tx, r, `status = 'completed', deletion_completed_at = ?,
			lease_owner = NULL, lease_expires_at = NULL, error_message = NULL`, now)
		if err != nil {
			return err
		}
		var left int
		if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM tenant_resource_cleanup
			WHERE tenant_id = ? AND status NOT IN ('completed', 'cancelled')`, r.TenantID).Scan(&left); err != nil {
			return err
		}
		if left > 0 {
			return nil
		}
		purged = true
		return p.purgeTenant(ctx, tx, r, now)
	})
	if errors.Is(err, errLeaseLost) {
		return false, false, nil
	}
	if err != nil {
		return false, false, fmt.Errorf("complete cleanup of %s %s: %w", r.Type, r.Name, err)
	}
	return purged, true, nil
}

// purgeTenant records, in tx, that every resource of r's tenant is gone:
// deleted → purged, with its audit row (tenant.purge) and tenant.purged,
// the tenant row locked. Only a transaction that finds the tenant still
// deleted makes the change, so a final step retried (the transaction again)
// or resumed (the row taken over by a later run) audits it once, and one
// whose audit row cannot be written does not purge.
func (p *purger) purgeTenant(ctx context.Context, tx *sql.Tx, r cleanupRow, now time.Time) error {
	t, err := lock(ctx, tx, r.TenantCode, ActionPurge)
	if err != nil {
		return fmt.Errorf("tenant %s not purged: %w", r.TenantCode, err)
	}
	if t.ID != r.TenantID {
		return fmt.Errorf("tenant %s is %d, not %d: not purged", r.TenantCode, t.ID, r.TenantID)
	}
	before := *t
	if _, err := tx.ExecContext(ctx, "UPDATE tenants SET status = 'purged', purged_at = ? WHERE id = ?", now, r.TenantID); err != nil {
		return err
	}
	t.Status = "purged"
	if err := Audit(ctx, tx, p.actor(ctx), ActionPurge, t.ID, t.Code, before, t, ""); err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, "UPDATE tenant_databases SET status = 'dropped', dropped_at = ? WHERE tenant_id = ?", now, r.TenantID); err != nil {
		return err
	}
	// Its objects are gone: what usage-cron last measured of them no
	// longer holds (nor does a scan in progress, which finds no row to
	// go on with).
	if _, err := tx.ExecContext(ctx, "DELETE FROM tenant_storage_usage WHERE tenant_id = ?", r.TenantID); err != nil {
		return err
	}
	archives, err := queryStrings(ctx, tx, `SELECT a.object_key FROM tenant_resource_cleanup c
		JOIN tenant_archives a ON a.object_key = c.oss_path WHERE c.tenant_id = ? AND c.resource_type = ? AND c.status = 'completed'`,
		r.TenantID, ResourceDatabase)
	if err != nil {
		return err
	}
	_, err = notify.Emit(ctx, tx, notify.Event{Type: notify.TenantPurged, TenantID: r.TenantID, TenantCode: r.TenantCode,
		Data: map[string]any{"purgedAt": now, "archives": archives}})
	return err
}

// actor is the system, named by this run's owner, as the audit trail has
// it: no person purges a tenant, the grace period (or an operator's purge,
// audited on its own as tenant.purge_requested) makes it due.
func (p *purger) actor(ctx context.Context) Actor {
	name := p.o.Owner
	if r := []rune(name); len(r) > 100 { // actor_name's width
		name = string(r[:100])
	}
	return Actor{Type: "system", Name: name, RequestID: logging.RequestID(ctx)}
}

// fail records a failed attempt at r: retried after a backoff, or, at its
// last retry, failed for good with tenant.cleanup_failed emitted in the same
// transaction.
func (p *purger) fail(ctx context.Context, r cleanupRow, cause error) error {
	attempts := r.Retries + 1
	final := attempts >= r.MaxRetries
	msg := sqldb.Text(cause.Error(), 2000) // a cut mid-character would fail the row's update
	err := sqldb.InTxRetry(ctx, p.o.Sys, func(tx *sql.Tx) error {
		now := p.o.now()
		if !final {
			return p.leased(ctx, tx, r, `status = 'pending', retry_count = ?, next_attempt_at = ?,
				error_message = ?, lease_owner = NULL, lease_expires_at = NULL`,
				attempts, now.Add(p.o.Backoff<<(attempts-1)), msg)
		}
		if err := p.leased(ctx, tx, r, `status = 'failed', retry_count = ?, error_message = ?, alerted_at = ?,
			lease_owner = NULL, lease_expires_at = NULL`, attempts, msg, now); err != nil {
			return err
		}
		_, err := notify.Emit(ctx, tx, notify.Event{Type: notify.TenantCleanupFailed, TenantID: r.TenantID, TenantCode: r.TenantCode,
			Data: map[string]any{"resourceType": r.Type, "resourceName": r.Name, "attempts": attempts, "error": msg}})
		return err
	})
	if errors.Is(err, errLeaseLost) {
		p.leaseLost(ctx, r, fmt.Errorf("record the failure %q: %w", msg, err))
		return nil
	}
	if err != nil {
		return fmt.Errorf("record cleanup failure of %s %s: %w", r.Type, r.Name, err)
	}
	p.mu.Lock()
	if final {
		p.rep.Failed++
	} else {
		p.rep.Retrying++
	}
	p.mu.Unlock()
	return nil
}

// release hands leased rows that were not started back, as they were.
func (p *purger) release(ctx context.Context, rows []cleanupRow) error {
	for _, r := range rows {
		if _, err := p.o.Sys.ExecContext(ctx, `UPDATE tenant_resource_cleanup SET status = 'pending', lease_owner = NULL, lease_expires_at = NULL
			WHERE id = ? AND lease_owner = ? AND lease_expires_at = ? AND status = 'in_progress'`, r.ID, p.o.Owner, r.Lease); err != nil {
			return fmt.Errorf("release cleanup of %s %s: %w", r.Type, r.Name, err)
		}
	}
	return nil
}

// SweepReport says what a Sweep run did.
type SweepReport struct {
	TempObjects       int  `json:"tempObjectsDeleted"`
	ArchivesExpired   int  `json:"archivesExpired"`
	ArchivesAbandoned int  `json:"archivesAbandoned"` // in_progress archives no purge needs any more, deleted
	RequestsCancelled int  `json:"deletionRequestsCancelled"`
	Stopped           bool `json:"stopped"` // the budget ran out before every tenant's temp/ was swept
}

// Sweep does the daily housekeeping besides purges: deletion requests not
// confirmed in time are cancelled, archives past their retention are
// deleted (their rows kept, marked expired), so are archives a purge left
// unfinished that no purge needs any more (see abandonedArchive), and
// objects under each tenant's temp/ older than TempAge are deleted (folder
// markers kept).
func Sweep(ctx context.Context, o Options) (SweepReport, error) {
	if o.Sys == nil || o.Store == nil {
		return SweepReport{}, errors.New("sweep: Sys and Store are required")
	}
	o.defaults()
	deadline := time.Now().Add(o.Budget)
	var rep SweepReport
	now := o.now()
	res, err := o.Sys.ExecContext(ctx, `UPDATE tenant_deletion_requests SET status = 'cancelled', cancelled_at = ?
		WHERE status = 'pending' AND expires_at < ?`, now, now)
	if err != nil {
		return rep, fmt.Errorf("cancel stale deletion requests: %w", err)
	}
	n, _ := res.RowsAffected()
	rep.RequestsCancelled = int(n)
	if rep.ArchivesExpired, err = expireArchives(ctx, &o, now, deadline); err != nil {
		return rep, err
	}
	if rep.ArchivesAbandoned, err = abandonArchives(ctx, &o, now, deadline); err != nil {
		return rep, err
	}
	rep.TempObjects, rep.Stopped, err = sweepTemp(ctx, &o, now, deadline)
	return rep, err
}

// expireArchives deletes the archives whose retention has ended.
func expireArchives(ctx context.Context, o *Options, now, deadline time.Time) (int, error) {
	rows, err := o.Sys.QueryContext(ctx, `SELECT id, object_key FROM tenant_archives
		WHERE status = 'completed' AND expires_at < ? ORDER BY expires_at`, now)
	if err != nil {
		return 0, fmt.Errorf("expired archives: %w", err)
	}
	type archive struct {
		id  int64
		key string
	}
	var due []archive
	for rows.Next() {
		var a archive
		if err := rows.Scan(&a.id, &a.key); err != nil {
			rows.Close()
			return 0, err
		}
		due = append(due, a)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return 0, err
	}
	done := 0
	for _, a := range due {
		if time.Now().After(deadline) {
			break
		}
		if err := o.Store.Store.Delete(ctx, a.key); err != nil {
			return done, fmt.Errorf("delete archive %s: %w", a.key, err)
		}
		if _, err := o.Sys.ExecContext(ctx, "UPDATE tenant_archives SET status = 'expired', deleted_at = ? WHERE id = ?", now, a.id); err != nil {
			return done, fmt.Errorf("expire archive %s: %w", a.key, err)
		}
		done++
	}
	return done, nil
}

// abandonedArchive holds for an archive (a) a purge began and never
// completed that no purge needs any more: every cleanup row linked to it
// (oss_path) is cancelled, or none is. Its tenant was restored (the purge
// cancelled; deleted again later, its rows start over without the link and
// make a new archive), or a later attempt found no whole archive under it
// and linked one of its own in its place (see archive), so it is never
// completed, never restored from (restores take completed archives only)
// and would never expire. An archive is recorded and linked to its row in
// one transaction and the link is only ever cleared, cancelled or moved to
// a newer archive, never made again: once abandoned, an archive stays so.
// A purge running, to be retried, or failed for good (an operator may send
// it round again) keeps its archive.
const abandonedArchive = `a.status = 'in_progress' AND NOT EXISTS (SELECT 1 FROM tenant_resource_cleanup c
	WHERE c.tenant_id = a.tenant_id AND c.oss_path = a.object_key AND c.status <> 'cancelled')`

// abandonArchives deletes the abandoned archives' objects and marks them
// expired. Each is deleted and marked holding its row, checked again, in one
// transaction: a sweep that dies in between leaves it in_progress, and the
// next one deletes it again (deleting is idempotent) and marks it.
func abandonArchives(ctx context.Context, o *Options, now, deadline time.Time) (int, error) {
	rows, err := o.Sys.QueryContext(ctx, "SELECT a.id FROM tenant_archives a WHERE "+abandonedArchive+" ORDER BY a.id")
	if err != nil {
		return 0, fmt.Errorf("abandoned archives: %w", err)
	}
	var ids []int64
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			rows.Close()
			return 0, err
		}
		ids = append(ids, id)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return 0, err
	}
	done := 0
	for _, id := range ids {
		if time.Now().After(deadline) {
			break
		}
		deleted := false
		err := sqldb.InTxRetry(ctx, o.Sys, func(tx *sql.Tx) error {
			deleted = false
			var key string
			err := tx.QueryRowContext(ctx, "SELECT a.object_key FROM tenant_archives a WHERE a.id = ? AND "+abandonedArchive+" FOR UPDATE", id).Scan(&key)
			if errors.Is(err, sql.ErrNoRows) {
				return nil // completed by a run that was still writing it
			}
			if err != nil {
				return err
			}
			if err := o.Store.Store.Delete(ctx, key); err != nil {
				return fmt.Errorf("delete archive %s: %w", key, err)
			}
			if o.Crash != nil {
				if err := o.Crash("archive:deleted"); err != nil {
					return err
				}
			}
			if _, err := tx.ExecContext(ctx, "UPDATE tenant_archives SET status = 'expired', deleted_at = ? WHERE id = ?", now, id); err != nil {
				return fmt.Errorf("expire archive %s: %w", key, err)
			}
			deleted = true
			return nil
		})
		if err != nil {
			return done, fmt.Errorf("abandoned archive %d: %w", id, err)
		}
		if deleted {
			done++
			o.Log.InfoContext(ctx, "abandoned archive deleted", "archive_id", id)
		}
	}
	return done, nil
}

// tempFolder is the folder of every tenant whose objects are temporary.
const tempFolder = "temp/"

// sweepTemp deletes the old objects under every live tenant's temp/.
func sweepTemp(ctx context.Context, o *Options, now, deadline time.Time) (deleted int, stopped bool, err error) {
	codes, err := queryStrings(ctx, o.Sys, `SELECT tenant_code FROM tenants
		WHERE status IN ('active', 'suspended', 'deleted') AND storage_prefix IS NOT NULL ORDER BY id`)
	if err != nil {
		return 0, false, fmt.Errorf("tenants for the temp sweep: %w", err)
	}
	cutoff := now.Add(-o.TempAge)
	for _, code := range codes {
		if time.Now().After(deadline) {
			return deleted, true, nil
		}
		t, err := o.Store.Tenant(code)
		if err != nil {
			continue // a code the layout cannot hold has no objects
		}
		n, err := sweepTenantTemp(ctx, t, cutoff, o.PageSize)
		deleted += n
		if err != nil {
			return deleted, false, fmt.Errorf("temp objects of %s: %w", code, err)
		}
	}
	return deleted, false, nil
}

// sweepTenantTemp deletes t's temp objects last modified before cutoff.
func sweepTenantTemp(ctx context.Context, t *objectstore.Tenant, cutoff time.Time, pageSize int) (int, error) {
	deleted, marker := 0, ""
	for {
		page, err := t.List(ctx, tempFolder, marker, pageSize)
		if err != nil {
			return deleted, err
		}
		// A key no caller can name (see byName) cannot be deleted on its
		// own: it is left for the tenant's purge, and the sweep goes on.
		named, _ := byName(page.Objects)
		var old []objectstore.Info
		for _, obj := range named {
			if obj.LastModified.Before(cutoff) && !strings.HasSuffix(obj.Key, "/"+objectstore.KeepObject) {
				old = append(old, obj)
			}
		}
		if err := deleteAll(ctx, t, old); err != nil {
			return deleted, err
		}
		deleted += len(old)
		if !page.Truncated {
			return deleted, nil
		}
		marker = page.NextMarker
	}
}

// querier is a *sql.DB, *sql.Tx or *sql.Conn.
type querier interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

// queryStrings runs a query of one string column and returns its values.
func queryStrings(ctx context.Context, q querier, query string, args ...any) ([]string, error) {
	rows, err := q.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var v string
		if err := rows.Scan(&v); err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, rows.Err()
}
