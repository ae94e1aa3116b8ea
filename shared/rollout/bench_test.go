package rollout_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/unitenant/unitenant/shared/migration"
	"github.com/unitenant/unitenant/shared/rollout"
	"github.com/unitenant/unitenant/shared/sqldb"
)

// BenchmarkRolloutAlter200 rolls one ALTER TABLE out to 200 tenant
// databases and compares the wall time with a sequential loop doing the same
// job the plain way: per tenant, a pool on its database, Runner.Up, the
// mirror updated. Each round alters twice (loop, then roll-out), a new
// column each, so both do the same work on the same tables; the rounds
// alternate and the medians are reported, so a burst of load on a shared
// server does not decide the ratio. Each round also times the bare ALTER
// TABLEs, one at a time and as many at once as the roll-out runs: the
// server's own ceiling for parallel DDL, which bounds any roll-out's
// speedup (MariaDB syncs each ALTER's .frm and DDL log).
func BenchmarkRolloutAlter200(b *testing.B) {
	const n, rounds = 200, 3
	ctx := context.Background()
	f := newFixture(b)
	files := with(v1, nil)
	tenants := f.tenants(b, n, load(b, files), false)
	var loop, roll, bareSeq, barePar []time.Duration
	version := 1
	next := func() []migration.Migration {
		version++
		files[fmt.Sprintf("%04d_alter_%d.sql", version, version)] = fmt.Sprintf("ALTER TABLE notes ADD COLUMN c%d INT NULL;\n", version)
		return load(b, files)
	}
	o := f.options(nil)
	b.ResetTimer()
	for range b.N {
		for range rounds {
			ms := next()
			start := time.Now()
			sequential(b, f, tenants, ms)
			loop = append(loop, time.Since(start))

			o.Migrations = next()
			start = time.Now()
			rep, err := rollout.Run(ctx, o)
			if err != nil || rep.Status != rollout.StatusCompleted || rep.Succeeded != n {
				b.Fatalf("roll-out: %+v (%v)", rep, err)
			}
			roll = append(roll, time.Since(start))

			bareSeq = append(bareSeq, bareAlters(b, f, tenants, fmt.Sprintf("s%d", len(bareSeq)), 1))
			barePar = append(barePar, bareAlters(b, f, tenants, fmt.Sprintf("p%d", len(barePar)), o.Concurrency))
		}
	}
	b.StopTimer()
	if f.mirrored(b, version) != n {
		b.Fatalf("%d tenants at %d, want %d", f.mirrored(b, version), version, n)
	}
	l, r := median(loop), median(roll)
	b.ReportMetric(float64(l.Microseconds())/1000, "loop-ms")
	b.ReportMetric(float64(r.Microseconds())/1000, "rollout-ms")
	b.ReportMetric(l.Seconds()/r.Seconds(), "speedup")
	b.ReportMetric(float64(o.Concurrency), "concurrency")
	b.ReportMetric(median(bareSeq).Seconds()/median(barePar).Seconds(), "ddl-ceiling")
}

// bareAlters adds column col to every tenant's notes table, workers at a
// time, with nothing else around it, and returns the wall time.
func bareAlters(tb testing.TB, f *fixture, tenants []tenant, col string, workers int) time.Duration {
	ctx := context.Background()
	work := make(chan string)
	errs := make(chan error, len(tenants))
	var wg sync.WaitGroup
	start := time.Now()
	for range workers {
		wg.Go(func() {
			for db := range work {
				_, err := f.server.ExecContext(ctx, "ALTER TABLE `"+db+"`.notes ADD COLUMN "+col+" INT NULL")
				errs <- err
			}
		})
	}
	for _, t := range tenants {
		work <- t.database
	}
	close(work)
	wg.Wait()
	took := time.Since(start)
	close(errs)
	for err := range errs {
		if err != nil {
			tb.Fatal(err)
		}
	}
	return took
}

func median(ds []time.Duration) time.Duration {
	ds = slices.Clone(ds)
	slices.Sort(ds)
	return ds[len(ds)/2]
}

// sequential is the baseline: one tenant after another, a pool each.
func sequential(tb testing.TB, f *fixture, tenants []tenant, ms []migration.Migration) {
	ctx := context.Background()
	for _, t := range tenants {
		dsn, err := sqldb.WithDatabase(f.serverDSN, t.database)
		if err != nil {
			tb.Fatal(err)
		}
		db, err := sqldb.OpenDSN(dsn)
		if err != nil {
			tb.Fatal(err)
		}
		r := migration.Runner{DB: db, Migrations: ms}
		res, err := r.Up(ctx)
		db.Close()
		if err != nil {
			tb.Fatal(err)
		}
		if _, err := f.sys.ExecContext(ctx, "UPDATE tenant_databases SET schema_version = ?, last_migrated_at = CURRENT_TIMESTAMP(3) WHERE tenant_id = ?", res.To, t.id); err != nil {
			tb.Fatal(err)
		}
	}
}

// BenchmarkRolloutNothingPending runs a roll-out over 1,000 tenants that are
// all at the latest version (1,000 applied ledger entries). Their databases
// do not even exist: a single tenant connection would fail the run, and the
// report counts them too. The template check (one connection to the
// cluster) is included.
func BenchmarkRolloutNothingPending(b *testing.B) {
	const n = 1000
	ctx := context.Background()
	f := newFixture(b)
	_, ms := upTo2(b, "tags", tagsSQL)
	tenants := f.tenants(b, n, ms, true)
	for lo := 0; lo < n; lo += 500 {
		var values []string
		var args []any
		for _, t := range tenants[lo:min(n, lo+500)] {
			values = append(values, "(?, ?, 2, 'applied', 1, ?, CURRENT_TIMESTAMP(3))")
			args = append(args, t.id, t.database, ms[1].Checksum)
		}
		if _, err := f.sys.ExecContext(ctx, "INSERT INTO tenant_schema_migrations (tenant_id, database_name, version, status, attempts, checksum, applied_at) VALUES "+
			strings.Join(values, ", "), args...); err != nil {
			b.Fatal(err)
		}
	}
	if err := f.migrate(ctx, f.template, ms); err != nil {
		b.Fatal(err)
	}
	var worst time.Duration
	conns := 0
	b.ResetTimer()
	for range b.N {
		start := time.Now()
		rep, err := rollout.Run(ctx, f.options(ms))
		took := time.Since(start)
		if err != nil || rep.Status != rollout.StatusUpToDate || rep.UpToDate != n {
			b.Fatalf("roll-out: %+v (%v)", rep, err)
		}
		worst = max(worst, took)
		conns += rep.TenantConnections
	}
	b.StopTimer()
	if conns != 0 {
		b.Fatalf("%d tenant connections, want 0", conns)
	}
	b.ReportMetric(float64(worst.Microseconds())/1000, "max-ms")
	b.ReportMetric(float64(conns), "tenant-conns")
	b.ReportMetric(n, "tenants")
}
