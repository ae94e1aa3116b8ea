package rollout

import (
	"context"
	"database/sql"
	"fmt"
	"slices"
	"time"
)

// fleetFrom selects the tenant databases a roll-out looks after: ready
// databases of tenants neither still provisioning (the pipeline records the
// version it made them at) nor purged, on clusters not disabled (their
// tenants wait until the cluster is back).
const fleetFrom = `FROM tenant_databases d
  JOIN tenants t ON t.id = d.tenant_id
  JOIN db_clusters c ON c.id = d.cluster_id
  WHERE d.status = 'ready' AND t.status NOT IN ('provisioning', 'purged') AND c.status <> 'disabled'`

// maxErrorLen bounds the error text kept per ledger row.
const maxErrorLen = 4000

// books is the roll-out's bookkeeping in the system database.
type books struct {
	sys *sql.DB
	now func() time.Time
}

// tenant is one tenant database behind the target, as the mirror says.
type tenant struct {
	id       int64
	code     string
	cluster  int64
	database string
	version  int // tenant_databases.schema_version
	attempts int // of its last failed migration, 0 when none failed
}

// fleetView is the fleet as the system database sees it.
type fleetView struct {
	total  int
	behind []tenant
	active []int64 // active clusters
}

// clusters returns the active clusters and those of tenants behind, in order.
func (f *fleetView) clusters() []int64 {
	ids := slices.Clone(f.active)
	for _, t := range f.behind {
		ids = append(ids, t.cluster)
	}
	slices.Sort(ids)
	return slices.Compact(ids)
}

// hold drops from behind the tenants of clusters.
func (f *fleetView) hold(clusters map[int64]bool) {
	f.behind = slices.DeleteFunc(f.behind, func(t tenant) bool { return clusters[t.cluster] })
}

// fleet reads which tenants are behind target from the mirror alone: an
// up-to-date tenant costs a row read, never a connection. Tenants whose last
// attempt failed go last, so a broken tenant is never the canary.
func (b *books) fleet(ctx context.Context, target int) (*fleetView, error) {
	f := &fleetView{}
	if err := b.sys.QueryRowContext(ctx, "SELECT COUNT(*) "+fleetFrom).Scan(&f.total); err != nil {
		return nil, fmt.Errorf("rollout: count tenant databases: %w", err)
	}
	rows, err := b.sys.QueryContext(ctx, `
		SELECT d.tenant_id, t.tenant_code, d.cluster_id, d.database_name, d.schema_version,
		       COALESCE((SELECT MAX(m.attempts) FROM tenant_schema_migrations m
		                 WHERE m.tenant_id = d.tenant_id AND m.status = 'failed'), 0) AS failed_attempts
		`+fleetFrom+` AND d.schema_version < ?
		ORDER BY failed_attempts > 0, d.tenant_id`, target)
	if err != nil {
		return nil, fmt.Errorf("rollout: list tenants behind: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var t tenant
		if err := rows.Scan(&t.id, &t.code, &t.cluster, &t.database, &t.version, &t.attempts); err != nil {
			return nil, fmt.Errorf("rollout: list tenants behind: %w", err)
		}
		f.behind = append(f.behind, t)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("rollout: list tenants behind: %w", err)
	}
	crows, err := b.sys.QueryContext(ctx, "SELECT id FROM db_clusters WHERE status = 'active' ORDER BY id")
	if err != nil {
		return nil, fmt.Errorf("rollout: list db clusters: %w", err)
	}
	defer crows.Close()
	for crows.Next() {
		var id int64
		if err := crows.Scan(&id); err != nil {
			return nil, fmt.Errorf("rollout: list db clusters: %w", err)
		}
		f.active = append(f.active, id)
	}
	return f, crows.Err()
}

// lockRollouts takes the system database's roll-out lock on a connection of
// its own, held until release: one roll-out at a time. A killed holder's
// lock goes with its connection. ok is false when another run holds it.
func lockRollouts(ctx context.Context, sys *sql.DB) (release func(), ok bool, err error) {
	conn, err := sys.Conn(ctx)
	if err != nil {
		return nil, false, fmt.Errorf("rollout lock: %w", err)
	}
	// Lock names are server-wide and at most 64 characters: name it after a
	// hash of the system database, so two control planes on one server (or
	// parallel tests) do not exclude each other.
	const name = "CONCAT('unitenant.rollout.', LEFT(SHA2(DATABASE(), 256), 40))"
	var got sql.NullInt64
	if err := conn.QueryRowContext(ctx, "SELECT GET_LOCK("+name+", 0)").Scan(&got); err != nil {
		conn.Close()
		return nil, false, fmt.Errorf("rollout lock: %w", err)
	}
	if got.Int64 != 1 {
		conn.Close()
		return nil, false, nil
	}
	return func() {
		_, _ = conn.ExecContext(context.WithoutCancel(ctx), "SELECT RELEASE_LOCK("+name+")")
		conn.Close()
	}, true, nil
}

// rolloutRow is the schema_rollouts row a run works for.
type rolloutRow struct {
	id      int64
	resumed bool
	wave    int // the wave it was in, 0 before the first
	total   int // tenants behind when it began
	budget  int
	// failed are the tenants that failed in this roll-out so far.
	failed map[int64]bool
}

// open resumes the unfinished roll-out to target or begins one when tenants
// are behind; nil when there is nothing to do. An unfinished roll-out to
// another version is superseded (cancelled): its tenants are behind the new
// target all the same.
func (b *books) open(ctx context.Context, target, behind, budget int, owner string, deadline time.Time) (*rolloutRow, error) {
	now := b.now().UTC()
	var lease any
	if !deadline.IsZero() {
		lease = deadline.UTC()
	}
	rows, err := b.sys.QueryContext(ctx, `SELECT id, target_version, current_wave, total_count, failure_budget
		FROM schema_rollouts WHERE status IN ('pending', 'running', 'paused') ORDER BY id DESC`)
	if err != nil {
		return nil, fmt.Errorf("rollout: read unfinished roll-outs: %w", err)
	}
	var ro *rolloutRow
	var superseded []int64
	for rows.Next() {
		var r rolloutRow
		var v int
		if err := rows.Scan(&r.id, &v, &r.wave, &r.total, &r.budget); err != nil {
			rows.Close()
			return nil, fmt.Errorf("rollout: read unfinished roll-outs: %w", err)
		}
		if v == target && ro == nil {
			r.resumed = true
			ro = &r
		} else {
			superseded = append(superseded, r.id)
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("rollout: read unfinished roll-outs: %w", err)
	}
	for _, id := range superseded {
		if _, err := b.sys.ExecContext(ctx, `UPDATE schema_rollouts SET status = 'cancelled', finished_at = ?,
			last_error = ?, lease_owner = NULL, lease_expires_at = NULL WHERE id = ?`,
			now, fmt.Sprintf("superseded by a roll-out to version %d", target), id); err != nil {
			return nil, fmt.Errorf("rollout: cancel roll-out %d: %w", id, err)
		}
	}
	if ro != nil {
		if _, err := b.sys.ExecContext(ctx, `UPDATE schema_rollouts SET status = 'running', lease_owner = ?,
			lease_expires_at = ?, finished_at = NULL WHERE id = ?`, owner, lease, ro.id); err != nil {
			return nil, fmt.Errorf("rollout: resume roll-out %d: %w", ro.id, err)
		}
		if ro.failed, err = b.failedTenants(ctx, ro.id); err != nil {
			return nil, err
		}
		return ro, nil
	}
	if behind == 0 {
		return nil, nil
	}
	res, err := b.sys.ExecContext(ctx, `INSERT INTO schema_rollouts
		(target_version, status, current_wave, wave_size, failure_budget, total_count, lease_owner, lease_expires_at, created_by, started_at)
		VALUES (?, 'running', 0, 0, ?, ?, ?, ?, ?, ?)`, target, budget, behind, owner, lease, owner, now)
	if err != nil {
		return nil, fmt.Errorf("rollout: begin roll-out: %w", err)
	}
	id, err := res.LastInsertId()
	if err != nil {
		return nil, fmt.Errorf("rollout: begin roll-out: %w", err)
	}
	return &rolloutRow{id: id, total: behind, budget: budget, failed: map[int64]bool{}}, nil
}

// failedTenants returns the tenants of roll-out id whose last attempt failed.
func (b *books) failedTenants(ctx context.Context, id int64) (map[int64]bool, error) {
	rows, err := b.sys.QueryContext(ctx,
		"SELECT DISTINCT tenant_id FROM tenant_schema_migrations WHERE rollout_id = ? AND status = 'failed'", id)
	if err != nil {
		return nil, fmt.Errorf("rollout: read failures of roll-out %d: %w", id, err)
	}
	defer rows.Close()
	out := map[int64]bool{}
	for rows.Next() {
		var t int64
		if err := rows.Scan(&t); err != nil {
			return nil, fmt.Errorf("rollout: read failures of roll-out %d: %w", id, err)
		}
		out[t] = true
	}
	return out, rows.Err()
}

// wave records that roll-out id entered wave w of size tenants.
func (b *books) wave(ctx context.Context, id int64, w, size int) error {
	if _, err := b.sys.ExecContext(ctx, "UPDATE schema_rollouts SET current_wave = ?, wave_size = ? WHERE id = ?", w, size, id); err != nil {
		return fmt.Errorf("rollout: record wave %d: %w", w, err)
	}
	return nil
}

// count refreshes roll-out id's counters from the tenant ledger, so they
// stay right across kills and resumes.
func (b *books) count(ctx context.Context, id int64) error {
	_, err := b.sys.ExecContext(ctx, `UPDATE schema_rollouts r SET
		succeeded_count = (SELECT COUNT(*) FROM tenant_schema_migrations m
		                   WHERE m.rollout_id = r.id AND m.version = r.target_version AND m.status = 'applied'),
		failed_count = (SELECT COUNT(DISTINCT m.tenant_id) FROM tenant_schema_migrations m
		                WHERE m.rollout_id = r.id AND m.status = 'failed')
		WHERE r.id = ?`, id)
	if err != nil {
		return fmt.Errorf("rollout: count roll-out %d: %w", id, err)
	}
	return nil
}

// finish records roll-out id's outcome.
func (b *books) finish(ctx context.Context, id int64, status, stopped string, upToDate int) error {
	if err := b.count(ctx, id); err != nil {
		return err
	}
	var finished any
	if status != StatusPaused {
		finished = b.now().UTC()
	}
	if _, err := b.sys.ExecContext(ctx, `UPDATE schema_rollouts SET status = ?, last_error = ?, skipped_count = ?,
		finished_at = ?, lease_owner = NULL, lease_expires_at = NULL WHERE id = ?`,
		status, nullIfEmpty(stopped), upToDate, finished, id); err != nil {
		return fmt.Errorf("rollout: finish roll-out %d: %w", id, err)
	}
	return nil
}

func nullIfEmpty(s string) any {
	if s == "" {
		return nil
	}
	return s
}
