package provisioning

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/unitenant/unitenant/infra/schema"
	"github.com/unitenant/unitenant/shared/migration"
	"github.com/unitenant/unitenant/shared/secretbox"
	"github.com/unitenant/unitenant/shared/sqldb"
)

// StaleCreating is how long a warm database may stay "creating" before a
// refill takes it for the leftover of a crash, drops it and discards it. A
// clone takes well under a second; the margin covers slow servers.
const StaleCreating = 5 * time.Minute

// PoolReport says what one refill of a cluster's warm pool did.
type PoolReport struct {
	Version   int           `json:"version"`        // template version the pool is kept at
	Ready     int           `json:"ready"`          // ready databases at Version afterwards
	Made      int           `json:"made"`           // cloned by this refill
	Upgraded  int           `json:"upgraded"`       // brought from an older version and verified
	Discarded int           `json:"discarded"`      // dropped: crash leftovers, failed upgrades, vanished
	Busy      bool          `json:"busy,omitempty"` // another refill of this cluster was running: nothing done
	Duration  time.Duration `json:"-"`
}

// MarshalJSON renders Duration in milliseconds.
func (r PoolReport) MarshalJSON() ([]byte, error) {
	type plain PoolReport
	return json.Marshal(struct {
		plain
		DurationMS int64 `json:"durationMs"`
	}{plain(r), r.Duration.Milliseconds()})
}

// RefillPool keeps size ready databases at the current version of template
// in cluster clusterID's warm pool (warm_pool_databases), named
// <prefix>w<12 hex digits>. In order it
//
//   - drops and discards what a crash left behind: rows "creating" for longer
//     than StaleCreating (the pool's own, and the clones of provisioning
//     runs that died: see reserveClone), and rows "failed";
//   - upgrades ready databases of an older version (pending tenant
//     migrations, then CheckDatabase against the template) or, when that
//     fails, drops and discards them: they are never handed out;
//   - discards ready rows whose database is gone;
//   - clones the databases missing, each recorded "creating" before it is
//     made and "ready" (with its version) once it is whole.
//
// Refills of one cluster are serialized by a named lock; a refill that finds
// another running returns at once with Busy set.
func RefillPool(ctx context.Context, sys *sql.DB, box *secretbox.Box, clusterID int64, template string, size int, prefix string, log *slog.Logger) (rep PoolReport, err error) {
	start := time.Now()
	defer func() { rep.Duration = time.Since(start) }()
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if err := sqldb.ValidateIdent(template); err != nil {
		return rep, fmt.Errorf("warm pool template: %w", err)
	}
	if err := sqldb.ValidateIdent(prefix + "w" + strings.Repeat("0", 12)); err != nil {
		return rep, fmt.Errorf("warm pool database prefix: %w", err)
	}
	release, ok, err := lockPool(ctx, sys, clusterID)
	if err != nil {
		return rep, err
	}
	if !ok {
		rep.Busy = true
		return rep, nil
	}
	defer release()

	server, dsn, err := OpenCluster(ctx, sys, box, clusterID, "")
	if err != nil {
		return rep, err
	}
	defer server.Close()
	p := &pool{sys: sys, server: server, dsn: dsn, cluster: clusterID, template: template, log: log.With("cluster_id", clusterID)}
	if p.version, err = DatabaseVersion(ctx, server, template); err != nil {
		return rep, err
	}
	if p.version == 0 {
		return rep, fmt.Errorf("warm pool of db cluster %d: template %s is not materialized there (EnsureClusterTemplate)", clusterID, template)
	}
	rep.Version = p.version
	if rep.Discarded, err = p.sweep(ctx); err != nil {
		return rep, err
	}
	upgraded, discarded, err := p.upgrade(ctx)
	rep.Upgraded, rep.Discarded = upgraded, rep.Discarded+discarded
	if err != nil {
		return rep, err
	}
	ready, vanished, err := p.ready(ctx)
	rep.Ready, rep.Discarded = ready, rep.Discarded+vanished
	if err != nil {
		return rep, err
	}
	for rep.Ready < size {
		if err := p.clone(ctx, prefix); err != nil {
			return rep, err
		}
		rep.Made++
		rep.Ready++
	}
	return rep, nil
}

// pool is one refill of one cluster's warm pool.
type pool struct {
	sys, server *sql.DB
	dsn         string // the cluster's admin DSN
	cluster     int64
	template    string
	version     int
	log         *slog.Logger
}

// poolRow is a warm_pool_databases row.
type poolRow struct {
	id      int64
	name    string
	version int
}

func (p *pool) rows(ctx context.Context, where string, args ...any) ([]poolRow, error) {
	var out []poolRow
	var r poolRow
	err := scanRows(ctx, p.sys, "SELECT id, database_name, schema_version FROM warm_pool_databases WHERE cluster_id = ? AND "+where+" ORDER BY id",
		append([]any{p.cluster}, args...), []any{&r.id, &r.name, &r.version}, func() { out = append(out, r) })
	if err != nil {
		return nil, fmt.Errorf("read warm pool of db cluster %d: %w", p.cluster, err)
	}
	return out, nil
}

// sweep drops and discards crash leftovers: rows creating for too long,
// rows whose clone failed and whose database could not be dropped then.
func (p *pool) sweep(ctx context.Context) (int, error) {
	rows, err := p.rows(ctx, "(status = 'failed' OR (status = 'creating' AND updated_at < CURRENT_TIMESTAMP(3) - INTERVAL ? SECOND))",
		int(StaleCreating.Seconds()))
	if err != nil {
		return 0, err
	}
	n := 0
	for _, r := range rows {
		p.log.WarnContext(ctx, "discarding abandoned warm database", "database", r.name)
		dropped, err := p.discard(ctx, r, "abandoned before it was ready")
		if err != nil {
			return n, err
		}
		if dropped {
			n++
		}
	}
	return n, nil
}

// upgrade brings ready databases of another version to the template's, or
// discards them.
func (p *pool) upgrade(ctx context.Context) (upgraded, discarded int, err error) {
	rows, err := p.rows(ctx, "status = 'ready' AND schema_version <> ?", p.version)
	if err != nil {
		return 0, 0, err
	}
	for _, r := range rows {
		// Take it out of the claimable set first; a claim may have won it.
		res, err := p.sys.ExecContext(ctx, "UPDATE warm_pool_databases SET status = 'creating' WHERE id = ? AND status = 'ready'", r.id)
		if err != nil {
			return upgraded, discarded, fmt.Errorf("hold warm database %s: %w", r.name, err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			continue
		}
		if why := p.upgradeOne(ctx, r); why != nil {
			p.log.WarnContext(ctx, "discarding warm database that could not be upgraded", "database", r.name, "from", r.version, "to", p.version, "error", why)
			dropped, err := p.discard(ctx, r, why.Error())
			if err != nil {
				return upgraded, discarded, err
			}
			if dropped {
				discarded++
			}
			continue
		}
		if err := p.markReady(ctx, r.id); err != nil {
			return upgraded, discarded, err
		}
		upgraded++
	}
	return upgraded, discarded, nil
}

// upgradeOne migrates r to the template's version and verifies it against
// the template; any error means r must not be handed out.
func (p *pool) upgradeOne(ctx context.Context, r poolRow) error {
	if r.version > p.version {
		return fmt.Errorf("version %d is newer than the template's %d", r.version, p.version)
	}
	if err := migrateTo(ctx, p.dsn, r.name, p.version, p.log); err != nil {
		return err
	}
	diffs, err := CheckDatabase(ctx, p.server, p.template, r.name)
	if err != nil {
		return err
	}
	if len(diffs) > 0 {
		return fmt.Errorf("differs from the template after the upgrade: %s", summarize(diffs, 3))
	}
	return nil
}

// ready discards ready rows whose database is gone and counts the others.
func (p *pool) ready(ctx context.Context) (ready, vanished int, err error) {
	rows, err := p.rows(ctx, "status = 'ready' AND schema_version = ?", p.version)
	if err != nil || len(rows) == 0 {
		return 0, 0, err
	}
	args := make([]any, len(rows))
	for i, r := range rows {
		args[i] = r.name
	}
	names, err := queryStrings(ctx, p.server, "SELECT SCHEMA_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME IN (?"+
		strings.Repeat(", ?", len(rows)-1)+")", args...)
	if err != nil {
		return 0, 0, fmt.Errorf("list warm databases of db cluster %d: %w", p.cluster, err)
	}
	exists := map[string]bool{}
	for _, n := range names {
		exists[n] = true
	}
	for _, r := range rows {
		if exists[r.name] {
			ready++
			continue
		}
		res, err := p.sys.ExecContext(ctx, "UPDATE warm_pool_databases SET status = 'discarded', last_error = 'database vanished' WHERE id = ? AND status = 'ready'", r.id)
		if err != nil {
			return ready, vanished, fmt.Errorf("discard warm database %s: %w", r.name, err)
		}
		if n, _ := res.RowsAffected(); n > 0 {
			p.log.WarnContext(ctx, "warm database vanished", "database", r.name)
			vanished++
		}
	}
	return ready, vanished, nil
}

// clone makes one new warm database. Its row is written "creating" first,
// so a crash at any point leaves a row the next refill sweeps.
func (p *pool) clone(ctx context.Context, prefix string) error {
	r := poolRow{name: warmDatabaseName(prefix), version: p.version}
	res, err := p.sys.ExecContext(ctx, "INSERT INTO warm_pool_databases (cluster_id, database_name, schema_version, status) VALUES (?, ?, ?, 'creating')",
		p.cluster, r.name, r.version)
	if err != nil {
		return fmt.Errorf("record warm database %s: %w", r.name, err)
	}
	if r.id, err = res.LastInsertId(); err != nil {
		return fmt.Errorf("record warm database %s: %w", r.name, err)
	}
	if err := CloneDatabase(ctx, p.server, p.template, r.name, DefaultCloneParallel); err != nil {
		_, derr := p.discard(context.WithoutCancel(ctx), r, err.Error())
		return errors.Join(fmt.Errorf("warm database: %w", err), derr)
	}
	return p.markReady(ctx, r.id)
}

// warmDatabaseName is a new name for a warm database (or a provisioning
// run's clone): prefix, "w" and 12 random hex digits (warmName).
func warmDatabaseName(prefix string) string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return prefix + "w" + hex.EncodeToString(b[:])
}

func (p *pool) markReady(ctx context.Context, id int64) error {
	if _, err := p.sys.ExecContext(ctx, `UPDATE warm_pool_databases SET status = 'ready', schema_version = ?, ready_at = CURRENT_TIMESTAMP(3), last_error = NULL
		WHERE id = ? AND status = 'creating'`, p.version, id); err != nil {
		return fmt.Errorf("mark warm database %d ready: %w", id, err)
	}
	return nil
}

// discard drops r's database and marks its row discarded with why, and
// says whether it did. When the drop fails the row is marked failed, and the
// next refill retries.
func (p *pool) discard(ctx context.Context, r poolRow, why string) (bool, error) {
	status := "discarded"
	if err := sqldb.DropDatabase(ctx, p.server, r.name); err != nil && !errors.Is(err, sqldb.ErrBadIdent) {
		status, why = "failed", why+"; drop: "+err.Error()
	}
	if _, err := p.sys.ExecContext(ctx, "UPDATE warm_pool_databases SET status = ?, last_error = ? WHERE id = ?", status, why, r.id); err != nil {
		return false, fmt.Errorf("discard warm database %s: %w", r.name, err)
	}
	return status == "discarded", nil
}

// ClaimWarm hands a ready warm database of cluster clusterID at schema
// version to tenant tenantID, and returns its name; ok is false when the
// pool has none (the caller clones one). Claiming again for the same tenant
// returns the database it already holds. The provisioning pipeline claims
// through its lease instead (Pipeline.database), so that a run that lost
// its lease takes nothing.
func ClaimWarm(ctx context.Context, sys *sql.DB, clusterID int64, version int, tenantID int64) (database string, ok bool, err error) {
	err = sqldb.InTxRetry(ctx, sys, func(tx *sql.Tx) error {
		database, ok, err = claimWarm(ctx, tx, clusterID, version, tenantID)
		return err
	})
	return database, ok, err
}

// claimWarm is ClaimWarm in tx. The tenant's row is locked first, so the
// claims of one tenant go one at a time: the second finds the first's
// database. A tenant therefore never holds two, and no claim ever hands a
// database back to the pool: the one it would hand back could be in use
// (seeded, recorded) by another run of the tenant's provisioning. Concurrent
// claims of different tenants never share a database: each takes its row
// with one UPDATE.
func claimWarm(ctx context.Context, tx *sql.Tx, clusterID int64, version int, tenantID int64) (string, bool, error) {
	var id int64
	err := tx.QueryRowContext(ctx, "SELECT id FROM tenants WHERE id = ? FOR UPDATE", tenantID).Scan(&id)
	if err != nil && !errors.Is(err, sql.ErrNoRows) { // no tenant: nothing to lock, and no claim can reference it
		return "", false, fmt.Errorf("claim warm database: lock tenant %d: %w", tenantID, err)
	}
	if _, name, ok, err := claimedBy(ctx, tx, clusterID, tenantID); err != nil || ok {
		return name, ok, err
	}
	res, err := tx.ExecContext(ctx, `UPDATE warm_pool_databases
		SET status = 'claimed', claimed_by_tenant_id = ?, claimed_at = CURRENT_TIMESTAMP(3)
		WHERE status = 'ready' AND cluster_id = ? AND schema_version = ? ORDER BY id LIMIT 1`, tenantID, clusterID, version)
	if err != nil {
		return "", false, fmt.Errorf("claim warm database: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return "", false, nil // the pool is empty
	}
	_, name, ok, err := claimedBy(ctx, tx, clusterID, tenantID)
	if err == nil && !ok {
		err = fmt.Errorf("claim warm database of tenant %d: the claimed row is gone", tenantID)
	}
	return name, ok, err
}

// claimedBy returns the warm database tenantID holds on the cluster.
func claimedBy(ctx context.Context, tx *sql.Tx, clusterID, tenantID int64) (int64, string, bool, error) {
	var id int64
	var name string
	err := tx.QueryRowContext(ctx, `SELECT id, database_name FROM warm_pool_databases
		WHERE claimed_by_tenant_id = ? AND cluster_id = ? AND status = 'claimed' ORDER BY id LIMIT 1`, tenantID, clusterID).Scan(&id, &name)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, "", false, nil
	}
	if err != nil {
		return 0, "", false, fmt.Errorf("read claimed warm database: %w", err)
	}
	return id, name, true, nil
}

// lockPool takes the named lock serializing refills of one cluster of this
// system database; ok is false when another session holds it.
func lockPool(ctx context.Context, sys *sql.DB, clusterID int64) (release func(), ok bool, err error) {
	conn, err := sys.Conn(ctx)
	if err != nil {
		return nil, false, fmt.Errorf("warm pool lock: %w", err)
	}
	// Lock names are server-wide and at most 64 characters: hash the system
	// database's name with the cluster's id.
	const name = "CONCAT('unitenant.pool.', SHA1(CONCAT(DATABASE(), '/', ?)))"
	var got sql.NullInt64
	if err := conn.QueryRowContext(ctx, "SELECT GET_LOCK("+name+", 0)", clusterID).Scan(&got); err != nil {
		conn.Close()
		return nil, false, fmt.Errorf("warm pool lock: %w", err)
	}
	if got.Int64 != 1 {
		conn.Close()
		return nil, false, nil
	}
	return func() {
		_, _ = conn.ExecContext(context.WithoutCancel(ctx), "SELECT RELEASE_LOCK("+name+")", clusterID)
		conn.Close()
	}, true, nil
}

// DatabaseVersion returns the highest version in database name's ledger, 0
// when it has none or does not exist.
func DatabaseVersion(ctx context.Context, server *sql.DB, name string) (int, error) {
	q, err := sqldb.QuoteIdent(name)
	if err != nil {
		return 0, err
	}
	var v int
	err = server.QueryRowContext(ctx, "SELECT COALESCE(MAX(version), 0) FROM "+q+".schema_migrations").Scan(&v)
	if sqldb.IsNoSuchTable(err) || sqldb.IsUnknownDatabase(err) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("version of %s: %w", name, err)
	}
	return v, nil
}

// migrateTo applies the tenant migrations up to version to the existing
// database name on the server of dsn.
func migrateTo(ctx context.Context, dsn, name string, version int, log *slog.Logger) error {
	all, err := schema.Tenant()
	if err != nil {
		return fmt.Errorf("load tenant migrations: %w", err)
	}
	var ms []migration.Migration
	for _, m := range all {
		if m.Version <= version {
			ms = append(ms, m)
		}
	}
	tdsn, err := sqldb.WithDatabase(dsn, name)
	if err != nil {
		return err
	}
	db, err := sqldb.OpenDSN(tdsn)
	if err != nil {
		return err
	}
	defer db.Close()
	r := migration.Runner{DB: db, Migrations: ms, Log: log}
	res, err := r.Up(ctx)
	if err != nil {
		return err
	}
	if res.To != version {
		return fmt.Errorf("migrate %s: at version %d, want %d", name, res.To, version)
	}
	return nil
}

// summarize renders the first n differences in a line.
func summarize(diffs []Difference, n int) string {
	parts := make([]string, 0, n+1)
	for i, d := range diffs {
		if i == n {
			parts = append(parts, fmt.Sprintf("and %d more", len(diffs)-n))
			break
		}
		parts = append(parts, d.String())
	}
	return strings.Join(parts, "; ")
}
