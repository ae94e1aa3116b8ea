package ratelimit_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/unitenant/unitenant/shared/fault"
	"github.com/unitenant/unitenant/shared/logging"
	"github.com/unitenant/unitenant/shared/provisioning"
	"github.com/unitenant/unitenant/shared/ratelimit"
	"github.com/unitenant/unitenant/shared/sqldb"
	"github.com/unitenant/unitenant/shared/sqldb/sqldbtest"
)

// The environment of a child process started by TestAllowAcrossProcesses.
const (
	envChildDSN   = "RATELIMIT_CHILD_DSN"
	envChildKey   = "RATELIMIT_CHILD_KEY"
	envChildNow   = "RATELIMIT_CHILD_NOW"   // the instant every check is made at, Unix ms
	envChildStart = "RATELIMIT_CHILD_START" // when to start hammering, Unix ns
)

const childHits, childWorkers, crossLimit = 200, 16, 100

// TestMain turns the test binary into a hammering child process when
// TestAllowAcrossProcesses runs it with envChildDSN set.
func TestMain(m *testing.M) {
	if dsn := os.Getenv(envChildDSN); dsn != "" {
		if err := hammer(dsn); err != nil {
			fmt.Fprintln(os.Stderr, "child:", err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// hammer makes childHits checks of one key from childWorkers goroutines on
// a pool of its own and prints how many were allowed and when it ran.
func hammer(dsn string) error {
	db, err := sqldb.OpenDSN(dsn)
	if err != nil {
		return err
	}
	defer db.Close()
	db.SetMaxOpenConns(childWorkers)
	nowMS, err := strconv.ParseInt(os.Getenv(envChildNow), 10, 64)
	if err != nil {
		return err
	}
	startNS, err := strconv.ParseInt(os.Getenv(envChildStart), 10, 64)
	if err != nil {
		return err
	}
	// Open the connections before the start line so both processes really
	// hit the server at the same time.
	var warm sync.WaitGroup
	for range childWorkers {
		warm.Go(func() { _ = db.PingContext(context.Background()) })
	}
	warm.Wait()
	time.Sleep(time.Until(time.Unix(0, startNS)))
	began := time.Now()
	now, key := time.UnixMilli(nowMS), os.Getenv(envChildKey)
	var allowed, refused, next atomic.Int64
	errs := make(chan error, childWorkers)
	var wg sync.WaitGroup
	for range childWorkers {
		wg.Go(func() {
			for next.Add(1) <= childHits {
				d, err := ratelimit.Allow(context.Background(), db, key, crossLimit, time.Minute, now)
				switch fe, _ := fault.As(err); {
				case err == nil && d.Allowed:
					allowed.Add(1)
				case fe != nil && fe.Code == "rate_limited" && fe.Kind == fault.TooManyRequests && fe.RetryAfter > 0 && !d.Allowed:
					refused.Add(1)
				default:
					errs <- fmt.Errorf("unexpected decision %+v, %v", d, err)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		return err
	}
	fmt.Printf("allowed=%d refused=%d began=%d ended=%d\n", allowed.Load(), refused.Load(), began.UnixNano(), time.Now().UnixNano())
	return nil
}

// newDB returns a migrated system database of the test's own and its DSN.
func newDB(tb testing.TB) (*sql.DB, string) {
	tb.Helper()
	db, dsn := sqldbtest.NewDatabase(tb)
	if _, err := provisioning.MigrateSystem(context.Background(), db, logging.Discard()); err != nil {
		tb.Fatal(err)
	}
	return db, dsn
}

// windowCount reads key's count in the window starting at start.
func windowCount(tb testing.TB, db *sql.DB, key string, start time.Time) int64 {
	tb.Helper()
	var n int64
	err := db.QueryRow("SELECT `count` FROM rate_limit_counters WHERE bucket_key = ? AND window_start = ?", key, start).Scan(&n)
	if err != nil {
		tb.Fatal(err)
	}
	return n
}

func TestAllow(t *testing.T) {
	t.Parallel()
	db, _ := newDB(t)
	ctx := context.Background()
	now := time.Date(2030, 5, 1, 12, 0, 45, 0, time.UTC)

	t.Run("OK", func(t *testing.T) {
		for i := 1; i <= 3; i++ {
			d, err := ratelimit.Allow(ctx, db, "t:ok", 3, time.Minute, now)
			if err != nil || !d.Allowed || d.Count != int64(i) || d.Remaining != 3-i {
				t.Fatalf("hit %d: %+v, %v", i, d, err)
			}
		}
		d, err := ratelimit.Allow(ctx, db, "t:ok", 3, time.Minute, now)
		fe, ok := fault.As(err)
		if !ok || fe.Kind != fault.TooManyRequests || fe.Code != "rate_limited" {
			t.Fatalf("4th hit: got %v, want 429 rate_limited", err)
		}
		if d.Allowed || d.Remaining != 0 || d.RetryAfter != 15*time.Second || fe.RetryAfter != 15*time.Second {
			t.Fatalf("4th hit: %+v, fault RetryAfter %s; want refused, 15s to the end of the minute", d, fe.RetryAfter)
		}
		if want := time.Date(2030, 5, 1, 12, 0, 0, 0, time.UTC); !d.WindowStart.Equal(want) || !d.ResetAt.Equal(want.Add(time.Minute)) {
			t.Fatalf("window %s..%s, want the minute from %s", d.WindowStart, d.ResetAt, want)
		}
		// The next window starts from zero.
		d, err = ratelimit.Allow(ctx, db, "t:ok", 3, time.Minute, now.Add(15*time.Second))
		if err != nil || !d.Allowed || d.Count != 1 {
			t.Fatalf("next window: %+v, %v", d, err)
		}
	})

	t.Run("RetryAfterRoundsUp", func(t *testing.T) {
		at := now.Add(14*time.Second + 500*time.Millisecond) // 500 ms before the minute ends
		_, _ = ratelimit.Allow(ctx, db, "t:round", 0, time.Minute, at)
		_, err := ratelimit.Allow(ctx, db, "t:round", 0, time.Minute, at)
		if fe, ok := fault.As(err); !ok || fe.RetryAfter != time.Second {
			t.Fatalf("got %v, want RetryAfter 1s", err)
		}
	})

	t.Run("ErrBadKey", func(t *testing.T) {
		if _, err := ratelimit.Allow(ctx, db, "", 3, time.Minute, now); err == nil {
			t.Fatal("empty key accepted")
		}
		if _, err := ratelimit.Allow(ctx, db, strings.Repeat("k", 256), 3, time.Minute, now); err == nil {
			t.Fatal("256-byte key accepted")
		}
	})
}

// TestAllowTwoPools checks the limit against two independent pools in one
// process (the quick version of TestAllowAcrossProcesses).
func TestAllowTwoPools(t *testing.T) {
	t.Parallel()
	db, dsn := newDB(t)
	other, err := sqldb.OpenDSN(dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	now := time.Now()
	var allowed atomic.Int64
	var wg sync.WaitGroup
	for i := range 32 {
		pool := []*sql.DB{db, other}[i%2]
		wg.Go(func() {
			for range 10 {
				d, err := ratelimit.Allow(context.Background(), pool, "t:pools", 50, time.Minute, now)
				if d.Allowed {
					allowed.Add(1)
				} else if fe, ok := fault.As(err); !ok || fe.Code != "rate_limited" {
					t.Errorf("refusal: %v", err)
					return
				}
			}
		})
	}
	wg.Wait()
	if got := allowed.Load(); got != 50 {
		t.Fatalf("allowed %d of 320, want 50", got)
	}
}

// TestAllowAcrossProcesses runs two OS processes (this test binary, see
// TestMain), each with its own pool, hammering one key with 200 checks
// each at the same moment: exactly 100 pass in the window, not 200.
func TestAllowAcrossProcesses(t *testing.T) {
	t.Parallel()
	db, dsn := newDB(t)
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	key := "ai:tenant:42:rpm"
	start := time.Now().Add(1500 * time.Millisecond)
	type child struct {
		cmd *exec.Cmd
		out strings.Builder
		err strings.Builder
	}
	children := make([]*child, 2)
	for i := range children {
		c := &child{cmd: exec.Command(exe, "-test.run=^$")}
		c.cmd.Env = append(os.Environ(), envChildDSN+"="+dsn, envChildKey+"="+key,
			envChildNow+"="+strconv.FormatInt(now.UnixMilli(), 10), envChildStart+"="+strconv.FormatInt(start.UnixNano(), 10))
		c.cmd.Stdout, c.cmd.Stderr = &c.out, &c.err
		if err := c.cmd.Start(); err != nil {
			t.Fatal(err)
		}
		children[i] = c
	}
	var allowed, refused int64
	var began, ended []time.Time
	for i, c := range children {
		if err := c.cmd.Wait(); err != nil {
			t.Fatalf("child %d: %v\n%s", i, err, c.err.String())
		}
		var a, r, b, e int64
		if _, err := fmt.Sscanf(c.out.String(), "allowed=%d refused=%d began=%d ended=%d", &a, &r, &b, &e); err != nil {
			t.Fatalf("child %d output %q: %v", i, c.out.String(), err)
		}
		t.Logf("child %d (pid %d): %d allowed, %d refused in %s", i, c.cmd.Process.Pid, a, r, time.Duration(e-b))
		allowed, refused = allowed+a, refused+r
		began, ended = append(began, time.Unix(0, b)), append(ended, time.Unix(0, e))
	}
	// The two runs overlapped in time: each began before the other ended.
	if !began[0].Before(ended[1]) || !began[1].Before(ended[0]) {
		t.Errorf("the children did not run at the same time: %v .. %v", began, ended)
	}
	if allowed != crossLimit || refused != 2*childHits-crossLimit {
		t.Fatalf("allowed %d, refused %d; want exactly %d allowed of %d", allowed, refused, crossLimit, 2*childHits)
	}
	start0 := time.UnixMilli(now.UnixMilli() - now.UnixMilli()%60000).UTC()
	if got := windowCount(t, db, key, start0); got != 2*childHits {
		t.Fatalf("window count %d, want %d (every check counted once)", got, 2*childHits)
	}
}

func TestConsume(t *testing.T) {
	t.Parallel()
	db, _ := newDB(t)
	ctx := context.Background()
	now := time.Date(2030, 5, 1, 12, 0, 10, 0, time.UTC)

	t.Run("RefusalGivesBack", func(t *testing.T) {
		d, err := ratelimit.Consume(ctx, db, "t:tpm", 600, 1000, time.Minute, now)
		if err != nil || !d.Allowed || d.Remaining != 400 {
			t.Fatalf("600 of 1000: %+v, %v", d, err)
		}
		d, err = ratelimit.Consume(ctx, db, "t:tpm", 500, 1000, time.Minute, now)
		if fe, ok := fault.As(err); !ok || fe.Code != "rate_limited" || d.Allowed {
			t.Fatalf("500 more: %+v, %v; want refused", d, err)
		}
		if got := windowCount(t, db, "t:tpm", d.WindowStart); got != 600 {
			t.Fatalf("count after a refusal %d, want 600 (the refused 500 given back)", got)
		}
		d, err = ratelimit.Consume(ctx, db, "t:tpm", 400, 1000, time.Minute, now)
		if err != nil || !d.Allowed || d.Remaining != 0 {
			t.Fatalf("400 more: %+v, %v; want allowed, 0 left", d, err)
		}
	})

	t.Run("Adjust", func(t *testing.T) {
		d, err := ratelimit.Consume(ctx, db, "t:adj", 800, 1000, time.Minute, now)
		if err != nil {
			t.Fatal(err)
		}
		// The call used 300 tokens, not the 800 estimated.
		if err := ratelimit.Adjust(ctx, db, "t:adj", d.WindowStart, 300-800); err != nil {
			t.Fatal(err)
		}
		if got := windowCount(t, db, "t:adj", d.WindowStart); got != 300 {
			t.Fatalf("count %d, want 300", got)
		}
		if err := ratelimit.Adjust(ctx, db, "t:adj", d.WindowStart, -1000); err != nil {
			t.Fatal(err)
		}
		if got := windowCount(t, db, "t:adj", d.WindowStart); got != 0 {
			t.Fatalf("count %d, want 0 (never negative)", got)
		}
	})
}

// BenchmarkAllow measures shared-storage checks per second from 16
// concurrent callers over a handful of keys (tenants), as the bridge makes
// them.
func BenchmarkAllow(b *testing.B) {
	db, _ := newDB(b)
	db.SetMaxOpenConns(16)
	db.SetMaxIdleConns(16)
	b.SetParallelism(8) // × GOMAXPROCS goroutines
	var n atomic.Int64
	b.ResetTimer()
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			i := n.Add(1)
			_, err := ratelimit.Allow(context.Background(), db, "bench:tenant:"+strconv.FormatInt(i%8, 10), 1<<30, time.Minute, time.Now())
			if err != nil && !errors.Is(err, context.Canceled) {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "checks/s")
}

// TestStagedCountsJoinTheCallersTransaction: counts staged in a batch are
// judged from its results like Consume's; a refused or rolled-back
// transaction leaves no count behind.
func TestStagedCountsJoinTheCallersTransaction(t *testing.T) {
	ctx := context.Background()
	_, dsn := newDB(t)
	db := sqldbtest.Batching(t, dsn)
	now := time.Date(2026, 5, 1, 10, 0, 30, 0, time.UTC)
	// Two counts in one transaction: "a" 3 per minute, "b" tokens, 10 per minute.
	call := func(tokens int) error {
		var sa, sb ratelimit.Staged
		committed, err := sqldb.TxBatch(ctx, db, func(b *sqldb.Tx) (err error) {
			if sa, err = ratelimit.Stage(b, "t:a", 1, 3, time.Minute, now); err != nil {
				return err
			}
			sb, err = ratelimit.Stage(b, "t:b", tokens, 10, time.Minute, now)
			return err
		}, func(_ *sql.Conn, r sqldb.Results) error {
			if _, err := sa.Decide(r); err != nil {
				return err
			}
			_, err := sb.Decide(r)
			return err
		})
		if err != nil {
			return err
		}
		return committed()
	}
	counts := func() (a, b int) {
		t.Helper()
		for key, dst := range map[string]*int{"t:a": &a, "t:b": &b} {
			if err := db.QueryRow("SELECT COALESCE(SUM(`count`), 0) FROM rate_limit_counters WHERE bucket_key = ?", key).Scan(dst); err != nil {
				t.Fatal(err)
			}
		}
		return a, b
	}
	if err := call(4); err != nil {
		t.Fatal(err)
	}
	// 4 + 7 tokens is over 10: refused, and neither count moves.
	err := call(7)
	if e, ok := fault.As(err); !ok || e.Code != "rate_limited" || e.RetryAfter != 30*time.Second {
		t.Fatalf("over the token limit: %v, want 429 rate_limited retrying in 30s", err)
	}
	if a, b := counts(); a != 1 || b != 4 {
		t.Fatalf("after a refusal counts a=%d b=%d, want 1 and 4", a, b)
	}
	for range 2 {
		if err := call(1); err != nil {
			t.Fatal(err)
		}
	}
	if err := call(1); err == nil {
		t.Fatal("a fourth request in a window of 3 was allowed")
	}
	if a, b := counts(); a != 3 || b != 6 {
		t.Fatalf("counts a=%d b=%d, want 3 and 6", a, b)
	}
	if _, err := ratelimit.Stage(&sqldb.Tx{}, "t:a", -1, 3, time.Minute, now); err == nil {
		t.Error("a negative amount was staged")
	}
}

// Many calls opening a window together (its row not there yet), half of
// them then refused by the caller and rolled back, never fail: the
// window's row is made before the transactions that count in it, which
// then only lock rows, never the gap a new row goes into (where upserts
// waiting on a row whose inserter rolls back deadlock). So too with the
// callers sharing a Windows, as a process's calls do: those that find the
// window's row made send no statement making it.
func TestStagedCountsOfANewWindowNeverDeadlock(t *testing.T) {
	ctx := context.Background()
	_, dsn := newDB(t)
	db := sqldbtest.Batching(t, dsn)
	const callers = 200
	refusal := errors.New("refused by the caller")
	retried := sqldb.Retries()
	windows := &ratelimit.Windows{}
	for w := range 8 {
		seen := windows
		if w%2 == 0 {
			seen = nil // the package's Stage
		}
		now := time.Date(2026, 5, 1, 10, w, 30, 0, time.UTC)
		var (
			wg              sync.WaitGroup
			allowed, denied atomic.Int64
		)
		gate := make(chan struct{})
		for i := range callers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-gate
				var sa, sb ratelimit.Staged
				committed, err := sqldb.TxBatch(ctx, db, func(b *sqldb.Tx) (err error) {
					if sa, err = seen.Stage(b, "t:new", 1, 1000, time.Minute, now); err != nil {
						return err
					}
					sb, err = seen.Stage(b, "k:new", 1, 1000, time.Minute, now)
					return err
				}, func(_ *sql.Conn, r sqldb.Results) error {
					if _, err := sa.Decide(r); err != nil {
						return err
					}
					if _, err := sb.Decide(r); err != nil {
						return err
					}
					if i%2 == 0 {
						return refusal // as a budget refusal comes after the counts
					}
					return nil
				})
				if err == nil {
					err = committed()
				}
				switch {
				case err == nil:
					allowed.Add(1)
				case errors.Is(err, refusal):
					denied.Add(1)
				default:
					t.Errorf("window %d: %v", w, err)
				}
			}()
		}
		close(gate)
		wg.Wait()
		if allowed.Load() != callers/2 || denied.Load() != callers/2 {
			t.Fatalf("window %d: %d allowed, %d refused; want %d each", w, allowed.Load(), denied.Load(), callers/2)
		}
		if n := windowCount(t, db, "t:new", now.Truncate(time.Minute)); n != callers/2 {
			t.Fatalf("window %d counts %d, want %d", w, n, callers/2)
		}
	}
	if n := sqldb.Retries() - retried; n != 0 {
		t.Errorf("%d transactions were run again after a deadlock or lock wait timeout, want none", n)
	}
}

func isLimited(err error) bool {
	e, ok := fault.As(err)
	return ok && e.Code == "rate_limited"
}

// A Windows makes each window's row once: counting again in a window it
// saw made sends no statement making it, and counts stay exact — even when
// the row it remembers is gone (the count makes it then). What a batch
// that failed staged is not remembered, and another process (another
// Windows) makes the row itself.
func TestWindowsMakeEachWindowsRowOnce(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	_, dsn := newDB(t)
	db := sqldbtest.Batching(t, dsn)
	now := time.Date(2026, 5, 1, 10, 0, 30, 0, time.UTC)
	// call counts 1 for "t:w" through w and reports how many statements
	// were prepared before the transaction; extra is added after the count.
	call := func(w *ratelimit.Windows, now time.Time, extra string) (prepared int, err error) {
		t.Helper()
		var s ratelimit.Staged
		committed, err := sqldb.TxBatch(ctx, db, func(b *sqldb.Tx) (err error) {
			s, err = w.Stage(b, "t:w", 1, 100, time.Minute, now)
			if extra != "" {
				b.Add(extra)
			}
			prepared = b.Prepared()
			return err
		}, func(_ *sql.Conn, r sqldb.Results) error {
			_, err := s.Decide(r)
			return err
		})
		if err == nil {
			err = committed()
		}
		return prepared, err
	}
	var w ratelimit.Windows
	window := now.Truncate(time.Minute)
	// A batch that fails after the count: the row was made, but w is not
	// told, so the next call makes sure of it again.
	if _, err := call(&w, now, "SELECT * FROM no_such_table"); err == nil {
		t.Fatal("a batch with a failing statement succeeded")
	}
	for i, want := range []int{1, 0, 0} {
		p, err := call(&w, now, "")
		if err != nil {
			t.Fatal(err)
		}
		if p != want {
			t.Fatalf("call %d in the window prepared %d statements, want %d", i+1, p, want)
		}
	}
	if n := windowCount(t, db, "t:w", window); n != 3 {
		t.Fatalf("window counts %d, want 3", n)
	}
	// The next window's row is made once again.
	next := now.Add(time.Minute)
	for i, want := range []int{1, 0} {
		if p, err := call(&w, next, ""); err != nil || p != want {
			t.Fatalf("call %d in the next window: prepared %d (err %v), want %d", i+1, p, err, want)
		}
	}
	// Another process knows nothing yet.
	var other ratelimit.Windows
	if p, err := call(&other, next, ""); err != nil || p != 1 {
		t.Fatalf("another Windows prepared %d (err %v), want 1", p, err)
	}
	if n := windowCount(t, db, "t:w", next.Truncate(time.Minute)); n != 3 {
		t.Fatalf("next window counts %d, want 3", n)
	}
	// The row remembered is gone: the count makes it.
	if _, err := db.Exec("DELETE FROM rate_limit_counters WHERE bucket_key = 't:w' AND window_start = ?", next.Truncate(time.Minute)); err != nil {
		t.Fatal(err)
	}
	if p, err := call(&w, next, ""); err != nil || p != 0 {
		t.Fatalf("after the row went: prepared %d (err %v), want 0 and no error", p, err)
	}
	if n := windowCount(t, db, "t:w", next.Truncate(time.Minute)); n != 1 {
		t.Fatalf("remade window counts %d, want 1", n)
	}
}
