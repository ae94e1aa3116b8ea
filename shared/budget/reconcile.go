package budget

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/unitenant/unitenant/shared/sqldb"
)

// ReconcileReport says what one Reconcile run closed.
type ReconcileReport struct {
	Settled  int    // closed at the cost their call logs recorded
	Expired  int    // closed at no charge: no attempt of theirs finished
	Orphaned int    // closed at no charge: their tenant's account is gone
	Skipped  int    // closed by a concurrent Settle or Release first
	Charged  Amount // total charged by this run
	// Uncharged is what the calls of the orphaned reservations were
	// metered at (their call logs keep it): no account was left to charge.
	Uncharged Amount
	Orphans   []Orphan // the reservations orphaned by this run, to be logged
}

// Orphan is a reservation Reconcile closed as orphaned.
type Orphan struct {
	RequestID string
	TenantID  int64
	Reserved  Amount // what it held, on an account that no longer exists
	Uncharged Amount // what its call logs recorded; 0 when no attempt finished
}

// reconcileBatch bounds how many expired reservations one query lists.
const reconcileBatch = 200

// Reconcile closes every reservation still 'reserved' whose expires_at is
// before now: the function that made it was killed, or froze, between
// Reserve and Settle. When the call log of its request id has finished
// attempts (status other than 'pending'), the call reached a provider and
// was metered, so the reservation is settled at the sum of their costs
// (capped at the reservation, like Settle); otherwise it expires at no
// charge. Each reservation is closed in its own transaction under its row
// lock, so Reconcile is idempotent, may run beside itself, and a concurrent
// or late Settle of the same request id finds it closed and charges nothing.
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
	)
	now = now.UTC()
	for {
		ids, requests, err := expiredReservations(ctx, db, now, lastID)
		if err != nil {
			return rep, errors.Join(append(errs, err)...)
		}
		for i, requestID := range requests {
			lastID = ids[i]
			if err := reconcileOne(ctx, db, requestID, now, &rep); err != nil {
				errs = append(errs, fmt.Errorf("reconcile reservation %s: %w", requestID, err))
			}
		}
		if len(ids) < reconcileBatch {
			return rep, errors.Join(errs...)
		}
	}
}

// expiredReservations lists open reservations expired before now, after
// afterID in id order (so a reservation that keeps failing is not listed
// again in the same run).
func expiredReservations(ctx context.Context, db *sql.DB, now time.Time, afterID int64) ([]int64, []string, error) {
	rows, err := db.QueryContext(ctx, "SELECT id, request_id FROM ai_budget_reservations WHERE status = 'reserved' AND expires_at < ? AND id > ? ORDER BY id LIMIT ?",
		now, afterID, reconcileBatch)
	if err != nil {
		return nil, nil, fmt.Errorf("list expired reservations: %w", err)
	}
	defer rows.Close()
	var (
		ids      []int64
		requests []string
	)
	for rows.Next() {
		var (
			id  int64
			req string
		)
		if err := rows.Scan(&id, &req); err != nil {
			return nil, nil, fmt.Errorf("list expired reservations: %w", err)
		}
		ids, requests = append(ids, id), append(requests, req)
	}
	if err := rows.Err(); err != nil {
		return nil, nil, fmt.Errorf("list expired reservations: %w", err)
	}
	return ids, requests, nil
}

func reconcileOne(ctx context.Context, db *sql.DB, requestID string, now time.Time, rep *ReconcileReport) error {
	var (
		s      Settlement
		orphan *Orphan
	)
	err := sqldb.InTxRetry(ctx, db, func(tx *sql.Tx) error {
		s, orphan = Settlement{}, nil
		r, charged, err := lockReservation(ctx, tx, requestID, " FOR UPDATE")
		if err != nil {
			return err
		}
		if r.Status != StatusReserved || !r.ExpiresAt.Before(now) {
			s = Settlement{Status: r.Status, Charged: charged}
			return nil
		}
		cost, metered, err := loggedCost(ctx, tx, requestID)
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
		s, err = apply(ctx, tx, r, charged, to, cost)
		return err
	})
	switch {
	case err != nil:
		return err
	case orphan != nil:
		rep.Orphaned++
		rep.Uncharged += orphan.Uncharged
		rep.Orphans = append(rep.Orphans, *orphan)
	case !s.Applied:
		rep.Skipped++
	case s.Status == StatusSettled:
		rep.Settled++
		rep.Charged += s.Charged
	default:
		rep.Expired++
	}
	return nil
}

// lockAccount locks tenantID's account row for the rest of tx, or, when it
// has none, the place where it would be, so that the answer holds until tx
// ends. The reservation is locked first, as by every writer.
func lockAccount(ctx context.Context, tx *sql.Tx, tenantID int64) (found bool, err error) {
	var one int
	err = tx.QueryRowContext(ctx, "SELECT 1 FROM tenant_accounts WHERE tenant_id = ? FOR UPDATE", tenantID).Scan(&one)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return false, nil
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
func loggedCost(ctx context.Context, tx *sql.Tx, requestID string) (cost Amount, metered bool, err error) {
	var (
		n   int
		sum string
	)
	err = tx.QueryRowContext(ctx, "SELECT COUNT(*), COALESCE(SUM(cost), 0) FROM ai_service_call_logs WHERE request_id = ? AND status <> 'pending'", requestID).Scan(&n, &sum)
	if err != nil {
		return 0, false, fmt.Errorf("read call log: %w", err)
	}
	if cost, err = ParseAmount(sum); err != nil {
		return 0, false, fmt.Errorf("call log cost: %w", err)
	}
	return cost, n > 0, nil
}
