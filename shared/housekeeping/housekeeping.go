// Package housekeeping deletes the system database's rows that have served
// their purpose and that nothing else ever removes: rate-limit windows long
// over, SMS codes and refresh tokens long expired, idempotency keys past
// their replay window, lockout state of names untried for a day. Without it
// these tables grow with every request for as long as the platform runs.
// cleanup-cron runs it daily; each table goes a batch at a time, so no
// statement holds many locks, and a run cut short is finished by the next.
package housekeeping

import (
	"context"
	"database/sql"
	"fmt"
	"time"
)

// Rule is one table's rows to delete: those whose column is older than
// now minus Keep. Table and Column are constants, never input; Column is
// indexed.
type Rule struct {
	Table, Column string
	Keep          time.Duration
}

// Rules are what Prune deletes, and why each keeps what it keeps.
var Rules = []Rule{
	// A window counts nothing once over; an hour leaves room for the
	// token corrections of calls that ended after their window.
	{"rate_limit_counters", "expires_at", time.Hour},
	// The per-phone limits count the codes of the last day.
	{"sms_codes", "expires_at", 7 * 24 * time.Hour},
	// An expired refresh token is refused by its expiry alone; a week
	// keeps the family's history for anyone looking into a reuse.
	{"refresh_tokens", "expires_at", 7 * 24 * time.Hour},
	// An expired key replays nothing: its next use starts afresh.
	{"idempotency_keys", "expires_at", time.Hour},
	// The lockout window and the lock last minutes.
	{"login_lockouts", "updated_at", 24 * time.Hour},
}

// batch bounds one DELETE.
const batch = 5000

// Prune deletes what Rules name, as of now, and returns how many rows went
// from each table. It stops at the first error, or when ctx ends, with the
// counts so far.
func Prune(ctx context.Context, db *sql.DB, now time.Time) (map[string]int64, error) {
	deleted := map[string]int64{}
	for _, r := range Rules {
		q := "DELETE FROM " + r.Table + " WHERE " + r.Column + " < ? LIMIT ?"
		before := now.Add(-r.Keep).UTC()
		for {
			if err := ctx.Err(); err != nil {
				return deleted, err
			}
			res, err := db.ExecContext(ctx, q, before, batch)
			if err != nil {
				return deleted, fmt.Errorf("prune %s: %w", r.Table, err)
			}
			n, err := res.RowsAffected()
			if err != nil {
				return deleted, fmt.Errorf("prune %s: %w", r.Table, err)
			}
			deleted[r.Table] += n
			if n < batch {
				break
			}
		}
	}
	return deleted, nil
}
