// Package rollout brings the tenant schema of the whole fleet to the latest
// tenant migration: the template on every cluster first, then every tenant
// database, in waves (one tenant, then 10 %, then the rest) with bounded
// concurrency and a failure budget that stops the roll-out.
//
// The system database keeps the books: a schema_rollouts row per roll-out
// and, per tenant and version, a tenant_schema_migrations row (status,
// attempts, last error), while tenant_databases.schema_version mirrors each
// tenant's own ledger. Tenants already at the target are skipped from that
// mirror without a connection to their database. A roll-out killed half-way
// is resumed by the next run: each tenant database's own ledger and
// statement-level progress (shared/migration) make sure nothing already
// applied runs again.
//
// The warm pool is not its concern: provision-cron's refill upgrades ready
// warm databases to the template's version, and a claim only takes one at
// that version.
//
// It never migrates a tenant ahead of its cluster's template, never opens a
// pool per tenant (one per cluster, shared), and never lets one tenant's
// failure stop the others while the budget holds.
package rollout

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/unitenant/unitenant/infra/schema"
	"github.com/unitenant/unitenant/shared/migration"
	"github.com/unitenant/unitenant/shared/secretbox"
)

// DefaultConcurrency is how many tenant databases are migrated at once when
// Options.Concurrency is 0.
const DefaultConcurrency = 4

// Roll-out statuses, as schema_rollouts.status and Report.Status hold them.
const (
	StatusCompleted = "completed" // every tenant behind reached the target
	StatusFailed    = "failed"    // some tenants failed (the rest went on), or the roll-out stopped
	StatusPaused    = "paused"    // cancelled or out of time: the next run resumes it
	StatusBusy      = "busy"      // another roll-out is running: nothing done (report only)
	StatusUpToDate  = "up_to_date"
)

// Wave sizes one wave: Tenants tenants, or Percent per cent of the
// roll-out's tenants (at least one) when Tenants is 0.
type Wave struct {
	Tenants int
	Percent float64
}

// DefaultWaves are the waves before the last one, which takes the rest: one
// tenant (the canary), then 10 %.
var DefaultWaves = []Wave{{Tenants: 1}, {Percent: 10}}

// Options say what to roll out and how.
type Options struct {
	Sys *sql.DB        // the system database
	Box *secretbox.Box // opens cluster credentials
	// Migrations are the tenant migrations (default schema.Tenant()); the
	// target is the latest of them.
	Migrations []migration.Migration
	// Template is the materialized template's name on every cluster,
	// migrated before any tenant; "" leaves templates alone.
	Template string
	// Concurrency bounds the tenant databases migrated at once (default
	// DefaultConcurrency). Tenants of one cluster share one pool of that size.
	Concurrency int
	// FailureBudget is how many tenants may fail before the roll-out stops
	// (default 5 % of the tenants behind, at least 1). The first wave has no
	// budget: its failure stops the roll-out.
	FailureBudget int
	// Waves come before a last wave that takes the rest (default DefaultWaves).
	Waves []Wave
	// Owner names who runs the roll-out (schema_rollouts.created_by,
	// lease_owner); default host:pid.
	Owner string
	// Deadline, when set, is when no further tenant is started: the roll-out
	// pauses and the next run resumes it.
	Deadline time.Time
	Now      func() time.Time
	Log      *slog.Logger
	// beforeTenant, for tests, runs before each tenant is migrated;
	// crashAfterMigrate, when it says so, makes the run forget a tenant it
	// just migrated, as a crash before the bookkeeping would.
	beforeTenant      func(tenantID int64)
	crashAfterMigrate func(tenantID int64) bool
}

// Report says what a run did.
type Report struct {
	RolloutID int64  `json:"rolloutId,omitempty"`
	Target    int    `json:"target"`
	Status    string `json:"status"`
	Resumed   bool   `json:"resumed,omitempty"` // continued a roll-out a kill or a deadline left unfinished
	// Stopped says why the roll-out stopped before every tenant was tried.
	Stopped  string `json:"stopped,omitempty"`
	Tenants  int    `json:"tenants"` // tenant databases in the fleet
	UpToDate int    `json:"upToDate"`
	Behind   int    `json:"behind"` // tenants behind this run works on
	// Held are tenants behind on a cluster whose template failed: they wait
	// for a run that brings the template first.
	Held      int              `json:"held,omitempty"`
	Succeeded int              `json:"succeeded"`
	Failures  []Failure        `json:"failures"`
	Waves     []WaveReport     `json:"waves"`
	Templates []TemplateReport `json:"templates"`
	// TenantConnections counts the tenant database sessions used: one per
	// tenant migrated, none for a tenant skipped.
	TenantConnections int           `json:"tenantConnections"`
	Duration          time.Duration `json:"-"`
	DurationMS        int64         `json:"durationMs"`
}

// Err is an error naming the failures (templates, tenants, a stop), nil
// when everything tried made it.
func (r *Report) Err() error {
	var errs []error
	for _, t := range r.Templates {
		if t.Error != "" {
			errs = append(errs, fmt.Errorf("template %s on db cluster %d: %s", t.Database, t.ClusterID, t.Error))
		}
	}
	if len(r.Failures) > 0 {
		f := r.Failures[0]
		errs = append(errs, fmt.Errorf("roll-out %d to version %d: %d tenants failed (first: %s: %s)", r.RolloutID, r.Target, len(r.Failures), f.Code, f.Error))
	}
	if r.Stopped != "" {
		errs = append(errs, fmt.Errorf("roll-out %d to version %d stopped: %s", r.RolloutID, r.Target, r.Stopped))
	}
	return errors.Join(errs...)
}

// Failure is one tenant that did not reach the target.
type Failure struct {
	TenantID int64  `json:"tenantId"`
	Code     string `json:"code"`
	Database string `json:"database"`
	Version  int    `json:"version"` // the migration that failed
	Attempts int    `json:"attempts,omitempty"`
	Error    string `json:"error"`
}

// WaveReport is one wave's outcome.
type WaveReport struct {
	Wave      int `json:"wave"`
	Tenants   int `json:"tenants"` // tenants tried
	Succeeded int `json:"succeeded"`
	Failed    int `json:"failed"`
}

// TemplateReport is one cluster's template migration.
type TemplateReport struct {
	ClusterID int64  `json:"clusterId"`
	Database  string `json:"database"`
	From      int    `json:"from"`
	To        int    `json:"to"`
	Applied   []int  `json:"applied"`
	Error     string `json:"error,omitempty"`
}

// ErrNoMigrations is returned when there is nothing to roll out to.
var ErrNoMigrations = errors.New("rollout: no tenant migrations")

func (o *Options) defaults() error {
	if o.Migrations == nil {
		ms, err := schema.Tenant()
		if err != nil {
			return fmt.Errorf("load tenant migrations: %w", err)
		}
		o.Migrations = ms
	}
	if len(o.Migrations) == 0 {
		return ErrNoMigrations
	}
	if o.Concurrency <= 0 {
		o.Concurrency = DefaultConcurrency
	}
	if o.Waves == nil {
		o.Waves = DefaultWaves
	}
	if o.Owner == "" {
		host, _ := os.Hostname()
		o.Owner = host + ":" + strconv.Itoa(os.Getpid())
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	return nil
}

// budget is FailureBudget or its default for behind tenants.
func (o *Options) budget(behind int) int {
	if o.FailureBudget > 0 {
		return o.FailureBudget
	}
	return max(1, behind*5/100)
}

// plan cuts total tenants into wave sizes: o.Waves, then the rest.
func (o *Options) plan(total int) []int {
	var sizes []int
	left := total
	for _, w := range o.Waves {
		if left == 0 {
			break
		}
		n := w.Tenants
		if n <= 0 {
			n = max(1, int(math.Ceil(float64(total)*w.Percent/100)))
		}
		n = min(n, left)
		sizes = append(sizes, n)
		left -= n
	}
	if left > 0 {
		sizes = append(sizes, left)
	}
	return sizes
}

// Run rolls the latest tenant migration out to the fleet: the template on
// every cluster first (a cluster whose template fails holds its tenants
// back), then the tenants behind, wave by wave. Only one roll-out runs at a
// time: another finds Status busy. Cancelling ctx (or reaching Deadline)
// starts no further tenant, lets those in flight finish, and pauses the
// roll-out for the next run. It returns an error when the roll-out could not
// be run at all (the system database); template and tenant failures are in
// the report (Report.Err).
func Run(ctx context.Context, o Options) (rep Report, err error) {
	start := time.Now()
	defer func() { rep.Duration = time.Since(start); rep.DurationMS = rep.Duration.Milliseconds() }()
	rep.Failures, rep.Waves, rep.Templates = []Failure{}, []WaveReport{}, []TemplateReport{}
	if o.Sys == nil {
		return rep, errors.New("rollout: no system database")
	}
	if err := o.defaults(); err != nil {
		return rep, err
	}
	rep.Target = migration.Latest(o.Migrations)

	release, ok, err := lockRollouts(ctx, o.Sys)
	if err != nil {
		return rep, err
	}
	if !ok {
		rep.Status = StatusBusy
		return rep, nil
	}
	defer release()

	b := &books{sys: o.Sys, now: o.Now}
	fleet, err := b.fleet(ctx, rep.Target)
	if err != nil {
		return rep, err
	}
	rep.Tenants, rep.Behind = fleet.total, len(fleet.behind)
	rep.UpToDate = rep.Tenants - rep.Behind

	e := &engine{o: &o, books: b, pools: newPools(o.Sys, o.Box, o.Concurrency)}
	defer e.pools.close()
	if failed := e.templates(ctx, fleet.clusters(), &rep); len(failed) > 0 {
		fleet.hold(failed)
		rep.Behind, rep.Held = len(fleet.behind), rep.Behind-len(fleet.behind)
	}
	ro, err := b.open(ctx, rep.Target, rep.Behind, o.budget(rep.Behind), o.Owner, o.Deadline)
	if err != nil {
		return rep, err
	}
	if ro == nil {
		rep.Status = StatusUpToDate
		if rep.Err() != nil {
			rep.Status = StatusFailed
		}
		return rep, nil
	}
	rep.RolloutID, rep.Resumed = ro.id, ro.resumed
	o.Log.InfoContext(ctx, "schema roll-out", "rollout_id", ro.id, "target", rep.Target, "behind", rep.Behind,
		"up_to_date", rep.UpToDate, "resumed", ro.resumed, "failure_budget", ro.budget)

	e.rec = newRecorder(ctx, o.Sys)
	e.waves(ctx, ro, fleet.behind, &rep)
	if err := e.rec.close(); err != nil && rep.Stopped == "" {
		rep.Stopped = err.Error()
	}

	status := StatusCompleted
	switch {
	case rep.Stopped != "":
		status = StatusFailed
	case rep.Succeeded+len(rep.Failures) < rep.Behind: // cancelled or out of time
		status = StatusPaused
	case len(rep.Failures) > 0:
		status = StatusFailed
	}
	rep.Status = status
	// Record the outcome even when ctx was cancelled: a pause must be seen
	// as one. A kill records nothing, and the next run resumes all the same.
	fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if err := b.finish(fctx, ro.id, status, rep.Stopped, rep.UpToDate); err != nil {
		return rep, err
	}
	o.Log.InfoContext(ctx, "schema roll-out done", "rollout_id", ro.id, "status", status, "succeeded", rep.Succeeded,
		"failed", len(rep.Failures), "stopped", rep.Stopped)
	return rep, nil
}

// engine is one run of a roll-out.
type engine struct {
	o     *Options
	books *books
	pools *pools
	rec   *recorder
	conns atomic.Int64 // tenant sessions used
}

// templates migrates the template on every cluster given, before any of
// its tenants, and returns the clusters where that failed (reported).
func (e *engine) templates(ctx context.Context, clusters []int64, rep *Report) (failed map[int64]bool) {
	if e.o.Template == "" {
		return nil
	}
	for _, id := range clusters {
		res, err := e.migrate(ctx, id, e.o.Template, true)
		tr := TemplateReport{ClusterID: id, Database: e.o.Template, From: res.From, To: res.To, Applied: res.Applied}
		if err != nil {
			tr.Error = err.Error()
			if failed == nil {
				failed = map[int64]bool{}
			}
			failed[id] = true
			e.o.Log.ErrorContext(ctx, "template migration failed: its tenants wait", "cluster_id", id, "err", err)
		}
		rep.Templates = append(rep.Templates, tr)
	}
	return failed
}

// migrate applies the migrations to database on cluster clusterID through
// the cluster's shared pool, creating the database first when create is set.
func (e *engine) migrate(ctx context.Context, clusterID int64, database string, create bool) (migration.Result, error) {
	pool, err := e.pools.get(ctx, clusterID)
	if err != nil {
		return migration.Result{}, err
	}
	conn, err := pool.on(ctx, database, create)
	if err != nil {
		return migration.Result{}, err
	}
	r := migration.Runner{Migrations: e.o.Migrations, Log: e.o.Log}
	res, err := r.UpConn(ctx, conn)
	release(conn, err)
	return res, err
}

// waves runs the tenants behind wave by wave until they are all tried, the
// budget is spent, or time is up.
func (e *engine) waves(ctx context.Context, ro *rolloutRow, behind []tenant, rep *Report) {
	sizes := e.o.plan(ro.total)
	first := max(ro.wave, 1) // a resumed roll-out starts again at the wave it was in
	next := 0
	for w := first; next < len(behind) && !e.outOfTime(ctx); w++ {
		n := len(behind) - next // the last wave takes the rest
		if w < len(sizes) {
			n = min(n, sizes[w-1])
		}
		batch := behind[next : next+n]
		next += n
		if err := e.books.wave(ctx, ro.id, w, n); err != nil {
			rep.Stopped = err.Error()
			return
		}
		wr := WaveReport{Wave: w}
		stop := e.wave(ctx, ro, w, batch, func(id int64, f *Failure) bool {
			if f == nil {
				wr.Succeeded++
				rep.Succeeded++
				delete(ro.failed, id)
				return false
			}
			wr.Failed++
			rep.Failures = append(rep.Failures, *f)
			ro.failed[id] = true // the budget counts tenants failing in this roll-out, across resumes
			switch {
			case w == 1:
				rep.Stopped = fmt.Sprintf("the first wave failed (%s): the roll-out stops", f.Code)
			case len(ro.failed) > ro.budget:
				rep.Stopped = fmt.Sprintf("%d tenants failed, over the failure budget of %d", len(ro.failed), ro.budget)
			default:
				return false
			}
			return true
		})
		wr.Tenants = wr.Succeeded + wr.Failed
		rep.Waves = append(rep.Waves, wr)
		rep.TenantConnections = int(e.conns.Load())
		if err := e.rec.flush(); err != nil {
			rep.Stopped = err.Error() // the books must be right before the next wave
			return
		}
		if err := e.books.count(context.WithoutCancel(ctx), ro.id); err != nil {
			e.o.Log.WarnContext(ctx, "schema roll-out counters", "rollout_id", ro.id, "err", err)
		}
		e.o.Log.InfoContext(ctx, "schema roll-out wave", "rollout_id", ro.id, "wave", w, "tenants", wr.Tenants,
			"succeeded", wr.Succeeded, "failed", wr.Failed)
		if stop {
			return
		}
	}
}

// outOfTime reports whether no further tenant may start.
func (e *engine) outOfTime(ctx context.Context) bool {
	return ctx.Err() != nil || (!e.o.Deadline.IsZero() && !e.o.Now().Before(e.o.Deadline))
}

// wave migrates batch with bounded concurrency, handing each tenant's
// outcome (f nil on success) to done, which says whether to stop. A worker
// takes its next tenant only after done has seen its last one, so nothing
// starts once the roll-out must stop; tenants not started then, or when time
// is up, are left untouched.
func (e *engine) wave(ctx context.Context, ro *rolloutRow, w int, batch []tenant, done func(id int64, f *Failure) bool) (stopped bool) {
	var mu sync.Mutex // guards next, stopped and the calls to done
	next := 0
	take := func() (tenant, bool) {
		if stopped || next >= len(batch) || e.outOfTime(ctx) {
			return tenant{}, false
		}
		next++
		return batch[next-1], true
	}
	var wg sync.WaitGroup
	for range min(e.o.Concurrency, len(batch)) {
		wg.Go(func() {
			mu.Lock()
			t, ok := take()
			mu.Unlock()
			for ok {
				f, died := e.tenant(ctx, ro.id, w, t)
				mu.Lock()
				if !died && done(t.id, f) {
					stopped = true
				}
				t, ok = take()
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	return stopped
}

// tenant migrates one tenant database and records the outcome. A tenant once
// started is finished even when ctx ends (a shutdown or the deadline only
// stops new tenants): cutting a migration between a statement and the record
// of its progress would run that statement again on resume. died is the
// tests' simulated crash after the migration, before its bookkeeping.
func (e *engine) tenant(ctx context.Context, rolloutID int64, w int, t tenant) (f *Failure, died bool) {
	if e.o.beforeTenant != nil {
		e.o.beforeTenant(t.id)
	}
	ctx = context.WithoutCancel(ctx)
	pending := pendingAfter(e.o.Migrations, t.version)
	e.rec.add(record{begin: true, rolloutID: rolloutID, wave: w, t: t, pending: pending, at: e.o.Now().UTC()})
	e.conns.Add(1)
	res, err := e.migrate(ctx, t.cluster, t.database, false)
	if e.o.crashAfterMigrate != nil && e.o.crashAfterMigrate(t.id) {
		return nil, true
	}
	end := record{t: t, reached: res.To, at: e.o.Now().UTC()}
	if err != nil {
		// The first migration above what the tenant's ledger reached failed.
		end.failed, end.cause = firstAfter(pending, max(res.To, t.version)), err.Error()
		if end.failed == nil {
			end.failed = &pending[0]
		}
	}
	e.rec.add(end)
	if err == nil {
		return nil, false
	}
	return e.fail(ctx, t, end.failed.Version, err), false
}

// fail logs and describes a tenant's failure.
func (e *engine) fail(ctx context.Context, t tenant, version int, err error) *Failure {
	e.o.Log.WarnContext(ctx, "tenant migration failed", "tenant", t.code, "database", t.database, "version", version, "err", err)
	return &Failure{TenantID: t.id, Code: t.code, Database: t.database, Version: version, Attempts: t.attempts + 1, Error: err.Error()}
}

// pendingAfter returns the migrations above version.
func pendingAfter(ms []migration.Migration, version int) []migration.Migration {
	for i, m := range ms {
		if m.Version > version {
			return ms[i:]
		}
	}
	return nil
}

// firstAfter returns the first migration of ms above version (the one that
// failed), nil when there is none.
func firstAfter(ms []migration.Migration, version int) *migration.Migration {
	for i := range ms {
		if ms[i].Version > version {
			return &ms[i]
		}
	}
	return nil
}
