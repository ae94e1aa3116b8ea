// Package ratelimit counts requests and tokens per key in fixed windows kept
// in MySQL (rate_limit_counters), so every function instance shares one
// count: a limit of 100 per minute is 100 across all instances, not 100 each.
//
// Each check is one atomic statement, INSERT ... ON DUPLICATE KEY UPDATE
// with the new count handed back through LAST_INSERT_ID(expr) in the same
// statement's OK packet: the count a caller judges is the one its own
// increment produced, never a later read racing other instances. It must
// never keep a count in process memory.
//
// Windows are fixed (aligned on multiples of the window since the Unix
// epoch, UTC): up to twice the limit can pass around a boundary, the last
// moments of one window and the first of the next. For per-minute AI quotas
// that burst is accepted for one statement per check; a sliding estimate
// would need the previous window's count as well.
package ratelimit

import (
	"context"
	"database/sql"
	"fmt"
	"math"
	"net/netip"
	"sync"
	"time"

	"github.com/unitenant/unitenant/shared/fault"
	"github.com/unitenant/unitenant/shared/sqldb"
)

// Decision is the outcome of one check.
type Decision struct {
	Allowed     bool
	Limit       int
	Count       int64         // the window's count after this check (refused hits included)
	Remaining   int           // what the window still allows
	RetryAfter  time.Duration // until the window ends, when refused
	WindowStart time.Time     // the window counted in; pass it to Adjust
	ResetAt     time.Time     // the window's end
}

// MaxKeyLen is the longest bucket key (rate_limit_counters.bucket_key).
const MaxKeyLen = 255

// upsert adds ? to the window's count and hands the new count back as the
// statement's last insert id: LAST_INSERT_ID(expr) sets it to expr on the
// insert path and on the update path alike.
const upsert = "INSERT INTO rate_limit_counters (bucket_key, window_start, `count`, expires_at) VALUES (?, ?, LAST_INSERT_ID(?), ?) " +
	"ON DUPLICATE KEY UPDATE `count` = LAST_INSERT_ID(`count` + ?)"

// ensure makes a window's row, empty, unless it is there: a statement that
// changes nothing commits without writing the log.
const ensure = "INSERT IGNORE INTO rate_limit_counters (bucket_key, window_start, `count`, expires_at) VALUES (?, ?, 0, ?)"

// Allow counts one request for key in the window containing now and allows
// it when the window's count is at most limit. A refusal is returned both as
// the Decision and as a 429 rate_limited *fault.Error whose RetryAfter is the
// time left in the window (rounded up to whole seconds, for Retry-After).
// Refused requests count too, so a client hammering a full window stays out
// of it. It is one statement, safe from any number of processes at once.
func Allow(ctx context.Context, db *sql.DB, key string, limit int, window time.Duration, now time.Time) (Decision, error) {
	return count(ctx, db, key, 1, limit, window, now)
}

// Consume counts n units (tokens, estimated before the call) for key in the
// window containing now, allowed when the window's total stays at most
// limit. A refusal gives the n units back, so a large request that does not
// fit does not use up the window for smaller ones; two concurrent refusals
// may both be refused where one would have fit alone, never the reverse.
// After the call, Adjust the window by the real usage minus n.
// An n above limit can never pass: refuse it as invalid before asking.
func Consume(ctx context.Context, db *sql.DB, key string, n, limit int, window time.Duration, now time.Time) (Decision, error) {
	if n < 0 {
		return Decision{}, fmt.Errorf("rate limit %s: negative amount %d", key, n)
	}
	d, err := count(ctx, db, key, n, limit, window, now)
	if d.Allowed || !isRateLimited(err) || n == 0 {
		return d, err
	}
	if aerr := Adjust(ctx, db, key, d.WindowStart, -n); aerr != nil {
		return d, fmt.Errorf("give back refused units: %w", aerr)
	}
	return d, err
}

// Adjust adds delta (negative to give units back) to key's window starting
// at windowStart, as returned in Decision.WindowStart; the count never goes
// below zero. A window already past is still corrected, which does not
// matter for fixed windows but keeps the counts honest for reporting.
func Adjust(ctx context.Context, db *sql.DB, key string, windowStart time.Time, delta int) error {
	if delta == 0 {
		return nil
	}
	_, err := db.ExecContext(ctx, adjust, delta, key, windowStart.UTC())
	if err != nil {
		return fmt.Errorf("adjust rate limit %s: %w", key, err)
	}
	return nil
}

const adjust = "UPDATE rate_limit_counters SET `count` = GREATEST(CAST(`count` AS SIGNED) + ?, 0) WHERE bucket_key = ? AND window_start = ?"

func count(ctx context.Context, db *sql.DB, key string, n, limit int, window time.Duration, now time.Time) (Decision, error) {
	d, err := window0(key, limit, window, now)
	if err != nil {
		return d, err
	}
	var res sql.Result
	err = sqldb.Retry(ctx, func() (err error) {
		res, err = db.ExecContext(ctx, upsert, key, d.WindowStart, n, d.ResetAt, n)
		return err
	})
	if err != nil {
		return d, fmt.Errorf("rate limit %s: %w", key, err)
	}
	c, err := res.LastInsertId()
	if err != nil {
		return d, fmt.Errorf("rate limit %s: read count: %w", key, err)
	}
	return judge(d, c, window, now)
}

// window0 checks a key and a limit and returns the decision frame of the
// window containing now.
func window0(key string, limit int, window time.Duration, now time.Time) (Decision, error) {
	if key == "" || len(key) > MaxKeyLen {
		return Decision{}, fmt.Errorf("rate limit key %q: want 1 to %d bytes", key, MaxKeyLen)
	}
	if limit < 0 || window < time.Millisecond {
		return Decision{}, fmt.Errorf("rate limit %s: bad limit %d per %s", key, limit, window)
	}
	start := windowStart(now, window)
	return Decision{Limit: limit, WindowStart: start, ResetAt: start.Add(window)}, nil
}

// judge completes d with the window's count c after the increment.
func judge(d Decision, c int64, window time.Duration, now time.Time) (Decision, error) {
	d.Count = c
	d.Allowed = c <= int64(d.Limit)
	d.Remaining = int(max(int64(d.Limit)-c, 0))
	if d.Allowed {
		return d, nil
	}
	d.RetryAfter = d.ResetAt.Sub(now)
	e := fault.New(fault.TooManyRequests, "rate_limited", "rate limit of %d per %s reached; retry in %s", d.Limit, window, d.RetryAfter.Round(time.Second))
	e.RetryAfter = time.Duration(math.Ceil(d.RetryAfter.Seconds())) * time.Second
	return d, e
}

// Staged is a count added to a batch; Decide judges it from the batch's
// results.
type Staged struct {
	d      Decision
	i      int
	window time.Duration
	now    time.Time
	seen   *Windows // remembers the window's row once its ensure ran (nil: none)
	key    string
}

// Stage adds counting n units for key to the transaction b, like Consume:
// the caller judges the count with Decide and undoes it by rolling back.
// The window's row is made beforehand, committed on its own, so the
// transaction only locks it (see sqldb.Tx.Prepare).
func Stage(b *sqldb.Tx, key string, n, limit int, window time.Duration, now time.Time) (Staged, error) {
	return (*Windows)(nil).Stage(b, key, n, limit, window, now)
}

// Windows remembers, for each key, the latest window whose row this
// process has seen made, so that counting in it again needs no statement
// making it. A row lives until an hour after its window ended (housekeeping
// deletes it then), so what is remembered holds for the window's life; and
// were the row gone all the same, the count makes it, only locking the gap
// it goes into. Nothing of a count lives here: only that a row exists. The
// zero value is ready; it is safe for concurrent use.
type Windows struct {
	mu   sync.Mutex
	rows map[string]time.Time // key → the start of its window whose row exists
}

// maxWindows bounds what Windows remembers: past it, it starts afresh.
const maxWindows = 1 << 14

func (w *Windows) made(key string, start time.Time) bool {
	if w == nil {
		return false
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	s, ok := w.rows[key]
	return ok && s.Equal(start)
}

func (w *Windows) remember(key string, start time.Time) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.rows == nil || len(w.rows) >= maxWindows {
		w.rows = make(map[string]time.Time)
	}
	w.rows[key] = start
}

// Stage is the package's Stage, making the window's row only when w does
// not know it made.
func (w *Windows) Stage(b *sqldb.Tx, key string, n, limit int, window time.Duration, now time.Time) (Staged, error) {
	if n < 0 {
		return Staged{}, fmt.Errorf("rate limit %s: negative amount %d", key, n)
	}
	d, err := window0(key, limit, window, now)
	if err != nil {
		return Staged{}, err
	}
	s := Staged{d: d, window: window, now: now}
	if !w.made(key, d.WindowStart) {
		b.Prepare(ensure, key, d.WindowStart, d.ResetAt)
		s.seen, s.key = w, key
	}
	s.i = b.Add(upsert, key, d.WindowStart, n, d.ResetAt, n)
	return s, nil
}

// Decide is the staged count's decision: a refusal is returned as Consume's.
func (s Staged) Decide(r sqldb.Results) (Decision, error) {
	if !r.Ran(s.i) || s.i >= len(r.IDs) {
		return s.d, fmt.Errorf("rate limit: the count at statement %d did not run", s.i)
	}
	if s.seen != nil {
		s.seen.remember(s.key, s.d.WindowStart) // its ensure ran, committed, before the count
	}
	return judge(s.d, r.IDs[s.i], s.window, s.now)
}

// AddressKey is the bucket key of a client address under prefix: the
// address itself, or its /64 for IPv6 (one subscriber's usual allocation,
// which an attacker could otherwise walk through); "" when ip is empty or
// not an address.
func AddressKey(prefix, ip string) string {
	a, err := netip.ParseAddr(ip)
	if err != nil {
		return ""
	}
	a = a.Unmap()
	if a.Is6() {
		p, _ := a.WithZone("").Prefix(64)
		return prefix + p.String()
	}
	return prefix + a.String()
}

// windowStart is the start of the window of length w containing now,
// aligned on the Unix epoch so every instance computes the same one, at
// millisecond precision (DATETIME(3)).
func windowStart(now time.Time, w time.Duration) time.Time {
	ms := now.UnixMilli()
	wms := w.Milliseconds()
	return time.UnixMilli(ms - ms%wms).UTC()
}

func isRateLimited(err error) bool {
	fe, ok := fault.As(err)
	return ok && fe.Code == "rate_limited"
}
