package tenancy_test

import (
	"context"
	"database/sql"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/unitenant/unitenant/shared/httpapi"
	"github.com/unitenant/unitenant/shared/sqldb"
	"github.com/unitenant/unitenant/shared/sqldb/sqldbtest"
	"github.com/unitenant/unitenant/shared/tenancy"
)

// BenchmarkRoutingOverhead compares one primary-key SELECT served through the
// tenancy middleware and router (host identification, cached registry,
// pinned pooled connection already on the schema) with the same SELECT on a
// pool opened directly on the tenant's database. Both run as HTTP handlers
// so only the routing differs.
func BenchmarkRoutingOverhead(b *testing.B) {
	f := newFleet(b)
	f.add(b, "k001", tenancy.StatusActive)
	svc := f.service(tenancy.RouterOptions{ClusterMaxOpen: 4})
	defer svc.Router.Close()
	dsn, err := sqldb.WithDatabase(sqldbtest.ServerDSN(b), f.prefix+"k001")
	if err != nil {
		b.Fatal(err)
	}
	direct, err := sqldb.OpenDSN(dsn)
	if err != nil {
		b.Fatal(err)
	}
	defer direct.Close()
	direct.SetMaxOpenConns(4)

	selectVia := func(get func(*http.Request) (interface {
		QueryRowContext(context.Context, string, ...any) *sql.Row
	}, error)) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			q, err := get(r)
			if err != nil {
				httpapi.Fail(w, r, nil, err)
				return
			}
			var got string
			if err := q.QueryRowContext(r.Context(), "SELECT tenant FROM marker WHERE id = ?", 1).Scan(&got); err != nil || got != "k001" {
				httpapi.Fail(w, r, nil, fmt.Errorf("read %q: %v", got, err))
				return
			}
			w.WriteHeader(http.StatusNoContent)
		})
	}
	handlers := map[string]http.Handler{
		"direct": selectVia(func(*http.Request) (interface {
			QueryRowContext(context.Context, string, ...any) *sql.Row
		}, error) {
			return direct, nil
		}),
		"routed": svc.Middleware(selectVia(func(r *http.Request) (interface {
			QueryRowContext(context.Context, string, ...any) *sql.Row
		}, error) {
			return tenancy.Conn(r.Context())
		})),
	}
	// Rounds alternate the two, so drift in the machine hits both alike;
	// scripts/bench takes each one's median.
	for range 5 {
		for _, name := range []string{"direct", "routed"} {
			h := handlers[name]
			b.Run(name, func(b *testing.B) {
				b.ReportAllocs()
				for b.Loop() {
					r := httptest.NewRequest("GET", "/api/app/x", nil)
					r.Host = "k001.unitenant.test"
					w := httptest.NewRecorder()
					h.ServeHTTP(w, r)
					if w.Code != http.StatusNoContent {
						b.Fatalf("%s: %d %s", name, w.Code, w.Body)
					}
				}
			})
		}
	}
}

// BenchmarkConnections500Tenants is a load scenario: 500 tenants, 32
// concurrent workers picking tenants at random for a fixed time. It reports
// the most MySQL connections the process held through the router, and the
// same for the seed's design (a pool per tenant, as seed 001's
// DatabaseManager keeps). Run it with -benchtime 1x.
func BenchmarkConnections500Tenants(b *testing.B) {
	const tenants, workers = 500, 32
	dur := 10 * time.Second
	if d, err := time.ParseDuration(benchDuration); err == nil {
		dur = d
	}
	f := newFleet(b)
	codes := make([]string, tenants)
	for i := range codes {
		codes[i] = fmt.Sprintf("t%03d", i)
		f.add(b, codes[i], tenancy.StatusActive)
	}
	svc := f.service(tenancy.RouterOptions{ClusterMaxOpen: workers})
	defer svc.Router.Close()

	// Ours: every worker goes through the registry and router.
	ours := runLoad(b, workers, dur, codes, func(ctx context.Context, code string) error {
		tn, err := svc.Registry.ByCode(ctx, code)
		if err != nil {
			return err
		}
		conn, err := svc.Router.Conn(ctx, tn)
		if err != nil {
			return err
		}
		defer conn.Close()
		got, err := marker(ctx, conn)
		if err == nil && got != code {
			err = fmt.Errorf("%s read %s", code, got)
		}
		return err
	}, nil, func() int { open, _ := svc.Router.Stats(); return open })

	// The seed's way: one pool per tenant database, opened on first use.
	var mu sync.Mutex
	pools := map[string]*sql.DB{}
	defer func() {
		for _, p := range pools {
			p.Close()
		}
	}()
	seed := runLoad(b, workers, dur, codes, func(ctx context.Context, code string) error {
		mu.Lock()
		p, ok := pools[code]
		if !ok {
			dsn, _ := sqldb.WithDatabase(sqldbtest.ServerDSN(b), f.prefix+code)
			p, _ = sqldb.OpenDSN(dsn)
			p.SetMaxOpenConns(10) // the seed's connectionLimit
			pools[code] = p
		}
		mu.Unlock()
		var got string
		return p.QueryRowContext(ctx, "SELECT tenant FROM marker WHERE id = 1").Scan(&got)
	}, func(error) bool {
		// The seed's design runs the server out of connections ("Too many
		// connections", then dial timeouts): every failure is the result.
		return true
	}, func() int {
		mu.Lock()
		defer mu.Unlock()
		n := 0
		for _, p := range pools {
			n += p.Stats().OpenConnections
		}
		return n
	})
	b.ReportMetric(float64(ours.maxConns), "max-conns")
	b.ReportMetric(float64(seed.maxConns), "seed-max-conns")
	b.ReportMetric(ours.rate, "req/s")
	b.ReportMetric(seed.rate, "seed-req/s")
	b.ReportMetric(float64(ours.refused), "refused")
	b.ReportMetric(float64(seed.refused), "seed-refused")
}

// benchDuration overrides the scenario length (go test -args -scenario=2s is
// not available for benchmarks, so a variable set by ldflags-free env).
var benchDuration = envOr("UNITENANT_SCENARIO_DURATION", "10s")

type loadResult struct {
	maxConns int
	rate     float64
	refused  int64 // operations the server refused (tolerated errors)
}

// runLoad runs op from workers on random tenants for dur, sampling conns.
// Errors that tolerate accepts are counted, any other fails the benchmark.
func runLoad(b *testing.B, workers int, dur time.Duration, codes []string, op func(context.Context, string) error,
	tolerate func(error) bool, conns func() int) loadResult {
	b.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), dur)
	defer cancel()
	var done, refused atomic.Int64
	var maxConns atomic.Int64
	var wg sync.WaitGroup
	errc := make(chan error, workers)
	stopSampling := make(chan struct{})
	go func() {
		t := time.NewTicker(5 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-stopSampling:
				return
			case <-t.C:
				if n := int64(conns()); n > maxConns.Load() {
					maxConns.Store(n)
				}
			}
		}
	}()
	start := time.Now()
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(w), 11))
			for ctx.Err() == nil {
				err := op(ctx, codes[rng.IntN(len(codes))])
				switch {
				case err == nil:
					done.Add(1)
				case ctx.Err() != nil:
				case tolerate != nil && tolerate(err):
					refused.Add(1)
				default:
					errc <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(stopSampling)
	close(errc)
	for err := range errc {
		b.Fatal(err)
	}
	if n := int64(conns()); n > maxConns.Load() {
		maxConns.Store(n)
	}
	return loadResult{maxConns: int(maxConns.Load()), rate: float64(done.Load()) / time.Since(start).Seconds(), refused: refused.Load()}
}
