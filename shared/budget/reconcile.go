package budget

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/unitenant/unitenant/shared/sqldb"
)

// ReconcileReport says what one Reconcile run closed.
type ReconcileReport struct {
	Settled  int // closed at the cost their call logs recorded
	Expired  int // closed at no charge: no attempt of theirs finished
	Orphaned int // closed at no charge: their tenant's account is gone
	Skipped  int // closed by a concurrent Settle or Release first
	// Locked are left open for the next run: another transaction held
	// their row, or their tenant's account, and Reconcile waits for no
	// lock (see Reconcile).
	Locked  int
	Charged Total // total charged by this run
	// Uncharged is what the calls of the orphaned reservations were
	// metered at (their call logs keep it): no account was left to charge.
	Uncharged Total
	// Overruns are the Settled whose call logs recorded more than they
	// held; Overrun is the sum of the excess, not charged (see the
	// package doc), to be logged.
	Overruns int
	Overrun  Total
	Orphans  []Orphan // the reservations orphaned by this run, to be logged
	// LockedRows are the first maxLockedRows of the Locked, to be logged.
	LockedRows []LockedRow
}

// Orphan is a reservation Reconcile closed as orphaned.
type Orphan struct {
	RequestID string
	TenantID  int64
	Reserved  Amount // what it held, on an account that no longer exists
	Uncharged Total  // what its call logs recorded; 0 when no attempt finished
}

// LockedRow is a reservation Reconcile left open, for its next run, because
// another transaction held a row closing it must lock.
type LockedRow struct {
	RequestID string
	TenantID  int64
	// Table is the held row's: ai_budget_reservations (the reservation's
	// own) or tenant_accounts (its tenant's account).
	Table string
}

// The tables of the rows Reconcile locks.
const (
	reservationsTable = "ai_budget_reservations"
	accountsTable     = "tenant_accounts"
)

const (
	// reconcileBatch bounds how many expired reservations one query lists.
	reconcileBatch = 200
	// lockTries is how many times Reconcile tries to lock the rows of a
	// reservation another transaction holds, at pauses doubling from 10ms
	// (about 300ms in all), before it leaves the reservation for its next
	// run. A Settle, a Reserve or another Reconcile's transaction holds
	// them for milliseconds (though a busy tenant's account is seldom free
	// for long); a stuck transaction for as long as it lives.
	lockTries = 6
	// maxLockedRows bounds ReconcileReport.LockedRows: a stuck account
	// may hold up many reservations.
	maxLockedRows = 100
)

// Reconcile closes every reservation still 'reserved' whose expires_at is
// before now: the function that made it was killed, or froze, between
// Reserve and Settle. When the call log of its request id has finished
// attempts (status other than 'pending'), the call reached a provider and
// was metered, so the reservation is settled at the sum of their costs
// (capped at the reservation, like Settle, the excess reported as an
// overrun); otherwise it expires at no charge. Each reservation is closed
// in its own transaction under its row lock, so Reconcile is idempotent,
// may run beside itself, and a concurrent or late Settle of the same
// request id finds it closed and charges nothing.
//
// Reconcile never waits for a lock: a transaction that holds a
// reservation's row or its account's (a stuck one, say, until
// innodb_lock_wait_timeout) would otherwise stall the run on each of them,
// and fail it. It locks them with NOWAIT, tries again a few milliseconds
// later, lockTries times in all, and then leaves the reservation open for
// its next run, reported as Locked; once a tenant's account has been found
// held, the run leaves that tenant's other reservations as well, untried.
//
// A reservation whose tenant has no account any more (the provisioning abort
// path deletes the tenant with its account) can be neither charged nor
// released: it is closed as orphaned, moving no money, and reported in
// Orphans with the cost its call logs recorded, for the caller to log.
// Reconcile goes on past a reservation it fails to close (the next run
// tries it again) and returns the joined errors with the report of the
// others.
func Reconcile(ctx context.Context, db *sql.DB, now time.Time) (ReconcileReport, error) {
	var (
		rep    ReconcileReport
		errs   []error
		lastID int64
		busy   = map[int64]bool{} // tenants whose account was found held
	)
	now = now.UTC()
	for {
		batch, err := expiredReservations(ctx, db, now, lastID)
		if err != nil {
			return rep, errors.Join(append(errs, err)...)
		}
		for _, e := range batch {
			lastID = e.id
			if busy[e.tenantID] {
				rep.locked(e, accountsTable)
				continue
			}
			table, err := reconcileOne(ctx, db, e, now, &rep)
			switch {
			case err != nil:
				errs = append(errs, fmt.Errorf("reconcile reservation %s: %w", e.requestID, err))
			case table == accountsTable:
				busy[e.tenantID] = true
			}
		}
		if len(batch) < reconcileBatch {
			return rep, errors.Join(errs...)
		}
	}
}

// locked records the reservation e as left open, its row in table held.
func (rep *ReconcileReport) locked(e expired, table string) {
	rep.Locked++
	if len(rep.LockedRows) < maxLockedRows {
		rep.LockedRows = append(rep.LockedRows, LockedRow{RequestID: e.requestID, TenantID: e.tenantID, Table: table})
	}
}

// expired is an open reservation past its expiry, as listed.
type expired struct {
	id        int64
	requestID string
	tenantID  int64
}

// expiredReservations lists open reservations expired before now, after
// afterID in id order (so a reservation that keeps failing is not listed
// again in the same run). The read takes no lock.
func expiredReservations(ctx context.Context, db *sql.DB, now time.Time, afterID int64) ([]expired, error) {
	rows, err := db.QueryContext(ctx, "SELECT id, request_id, tenant_id FROM ai_budget_reservations WHERE status = 'reserved' AND expires_at < ? AND id > ? ORDER BY id LIMIT ?",
		now, afterID, reconcileBatch)
	if err != nil {
		return nil, fmt.Errorf("list expired reservations: %w", err)
	}
	defer rows.Close()
	var out []expired
	for rows.Next() {
		var e expired
		if err := rows.Scan(&e.id, &e.requestID, &e.tenantID); err != nil {
			return nil, fmt.Errorf("list expired reservations: %w", err)
		}
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list expired reservations: %w", err)
	}
	return out, nil
}

// heldError is a locking read refused at once (NOWAIT): another
// transaction holds a row of table. It does not wrap the server's error,
// which sqldb.Retry would retry as a lock wait timeout.
type heldError struct{ table string }

func (e heldError) Error() string { return "a row of " + e.table + " is locked by another transaction" }

// isLockRefused reports whether err is a NOWAIT locking read refused
// because another transaction holds the row: MariaDB reports it as a lock
// wait timeout (1205), MySQL as ER_LOCK_NOWAIT (3572).
func isLockRefused(err error) bool {
	var me *mysql.MySQLError
	return errors.As(err, &me) && (me.Number == 1205 || me.Number == 3572)
}

// reconcileOne closes the reservation e, or leaves it open and returns
// the table of the row another transaction held (and recorded it in rep as
// locked).
func reconcileOne(ctx context.Context, db *sql.DB, e expired, now time.Time, rep *ReconcileReport) (heldTable string, err error) {
	var (
		s      Settlement
		orphan *Orphan
		cost   Total // what the call logs recorded, exactly
	)
	for try := 1; ; try++ {
		err = sqldb.InTxRetry(ctx, db, func(tx *sql.Tx) error {
			s, orphan, cost = Settlement{}, nil, Total{}
			r, charged, err := lockReservation(ctx, tx, e.requestID, " FOR UPDATE NOWAIT")
			if isLockRefused(err) {
				return heldError{reservationsTable}
			}
			if err != nil {
				return err
			}
			if r.Status != StatusReserved || !r.ExpiresAt.Before(now) {
				s = Settlement{Status: r.Status, Charged: charged}
				return nil
			}
			var metered bool
			cost, metered, err = loggedCost(ctx, tx, e.requestID)
			if err != nil {
				return err
			}
			switch found, err := lockAccount(ctx, tx, r.TenantID); {
			case err != nil:
				return err
			case !found:
				orphan = &Orphan{RequestID: r.RequestID, TenantID: r.TenantID, Reserved: r.Amount, Uncharged: cost}
				return orphanIn(ctx, tx, r)
			}
			to := StatusExpired
			if metered {
				to = StatusSettled
			}
			// No reservation holds more than MaxAmount, so a cost past it
			// (or past an Amount's range) charges the same: all of it.
			s, err = apply(ctx, tx, r, charged, to, cost.clamp(0, MaxAmount))
			return err
		})
		var held heldError
		if !errors.As(err, &held) {
			break
		}
		if try == lockTries {
			rep.locked(e, held.table)
			return held.table, nil
		}
		if err := pause(ctx, try); err != nil {
			return "", err
		}
	}
	switch {
	case err != nil:
		return "", err
	case orphan != nil:
		rep.Orphaned++
		rep.Orphans = append(rep.Orphans, *orphan)
		if rep.Uncharged, err = rep.Uncharged.Add(orphan.Uncharged); err != nil {
			return "", fmt.Errorf("closed, but the run's uncharged total is past reporting: %w", err)
		}
	case !s.Applied:
		rep.Skipped++
	case s.Status == StatusSettled:
		rep.Settled++
		if rep.Charged, err = rep.Charged.Add(TotalOf(s.Charged)); err != nil {
			return "", fmt.Errorf("closed, but the run's charged total is past reporting: %w", err)
		}
		// s.Overrun is of the capped cost: the excess is the exact one's.
		var over Total
		if over, err = cost.Add(TotalOf(-s.Reserved)); err == nil && (Total{}).less(over) {
			rep.Overruns++
			rep.Overrun, err = rep.Overrun.Add(over)
		}
		if err != nil {
			return "", fmt.Errorf("closed, but the run's overrun total is past reporting: %w", err)
		}
	default:
		rep.Expired++
	}
	return "", nil
}

// pause waits before try+1, 10ms·2^(try-1) give or take half (the jitter
// keeps two reconcilers from colliding again in step), or until ctx ends.
func pause(ctx context.Context, try int) error {
	d := 10 * time.Millisecond << (try - 1)
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(d/2 + rand.N(d)):
		return nil
	}
}

// lockAccount locks tenantID's account row for the rest of tx, or, when it
// has none, the place where it would be, so that the answer holds until tx
// ends. The reservation is locked first, as by every writer. It does not
// wait: an account another transaction holds is a heldError.
func lockAccount(ctx context.Context, tx *sql.Tx, tenantID int64) (found bool, err error) {
	var one int
	err = tx.QueryRowContext(ctx, "SELECT 1 FROM tenant_accounts WHERE tenant_id = ? FOR UPDATE NOWAIT", tenantID).Scan(&one)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return false, nil
	case isLockRefused(err):
		return false, heldError{accountsTable}
	case err != nil:
		return false, fmt.Errorf("lock account of tenant %d: %w", tenantID, err)
	}
	return true, nil
}

// orphanIn closes the locked open reservation r, whose account is gone, as
// orphaned: no money moves (there is no account to charge or to release the
// hold from) and settled_amount stays NULL (nothing was charged).
func orphanIn(ctx context.Context, tx *sql.Tx, r Reservation) error {
	res, err := tx.ExecContext(ctx, "UPDATE ai_budget_reservations SET status = ?, settled_at = NOW(3) WHERE id = ? AND status = 'reserved'",
		string(StatusOrphaned), r.ID)
	if err != nil {
		return fmt.Errorf("close orphaned reservation: %w", err)
	}
	if n, err := res.RowsAffected(); err != nil || n != 1 {
		return fmt.Errorf("close orphaned reservation %s of tenant %d: %d rows changed (%v)", r.RequestID, r.TenantID, n, err)
	}
	return nil
}

// loggedCost sums the cost of the finished attempts of requestID in
// ai_service_call_logs; metered is false when none finished.
func loggedCost(ctx context.Context, tx *sql.Tx, requestID string) (cost Total, metered bool, err error) {
	var (
		n   int
		sum string
	)
	err = tx.QueryRowContext(ctx, "SELECT COUNT(*), COALESCE(SUM(cost), 0) FROM ai_service_call_logs WHERE request_id = ? AND status <> 'pending'", requestID).Scan(&n, &sum)
	if err != nil {
		return Total{}, false, fmt.Errorf("read call log: %w", err)
	}
	if cost, err = ParseTotal(sum); err != nil {
		return Total{}, false, fmt.Errorf("call log cost: %w", err)
	}
	return cost, n > 0, nil
}
