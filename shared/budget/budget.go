// Package budget holds the worst-case cost of an AI call against its tenant's
// account before the call and settles it to the real cost after, so that any
// number of concurrent calls, on any number of function instances, can never
// spend more than balance + credit_limit.
//
// The flow is Reserve (one conditional UPDATE of tenant_accounts plus the
// ai_budget_reservations row, in one transaction), the provider call, then
// Settle at the real cost or Release when no call was made. A function killed
// in between leaves a 'reserved' row that Reconcile (usage-cron) closes after
// it expires: settled at the cost the call log recorded, or expired at no
// charge when no attempt finished, or orphaned, moving no money, when the
// tenant's account is gone.
//
// It must never move money without a reservation row changing state in the
// same transaction, never close a reservation twice, and never charge more
// than was reserved: the reservation is the worst case, so a cost above it is
// reported as an overrun and not charged (charging it could take the account
// past its credit limit behind the backs of concurrent reservations).
package budget

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/unitenant/unitenant/shared/fault"
	"github.com/unitenant/unitenant/shared/sqldb"
)

// Status is the state of a reservation (ai_budget_reservations.status).
type Status string

// Reservation states. Only StatusReserved holds money; the others are final.
const (
	StatusReserved Status = "reserved" // held, the call may be running
	StatusSettled  Status = "settled"  // charged at the real cost
	StatusReleased Status = "released" // the call did not happen, nothing charged
	StatusExpired  Status = "expired"  // abandoned, closed by Reconcile without a cost
	// StatusOrphaned: abandoned with its tenant's account gone (deleted by
	// the provisioning abort path), closed by Reconcile without moving money.
	StatusOrphaned Status = "orphaned"
)

// Reservation is money held for one call, identified by its request id.
type Reservation struct {
	ID        int64
	RequestID string
	TenantID  int64
	Amount    Amount // held: the worst case rounded up to AccountStep
	Status    Status
	ExpiresAt time.Time
}

// Settlement is the outcome of closing a reservation.
type Settlement struct {
	RequestID string
	TenantID  int64
	Status    Status // the reservation's final status
	Reserved  Amount // what was held
	Charged   Amount // what the balance was debited (by whichever call closed it)
	// Overrun is the part of the real cost above the reservation: not
	// charged, to be logged (the estimate was wrong).
	Overrun Amount
	// Applied is false when the reservation was already closed (a retried
	// Settle, or Reconcile got there first): nothing moved this time.
	Applied bool
}

// Account is a tenant's balance as tenant_accounts holds it.
type Account struct {
	TenantID      int64
	Balance       Amount
	CreditLimit   Amount
	Reserved      Amount
	PaymentStatus string
}

// Available is what a new reservation may still take.
func (a Account) Available() Amount { return a.Balance + a.CreditLimit - a.Reserved }

// decimal binds an Amount as an exact DECIMAL: MySQL compares and adds a
// DECIMAL column and a string parameter as double precision floats.
const decimal = "CAST(? AS DECIMAL(20,6))"

// Reserve holds amount (rounded up to AccountStep) of tenantID's account for
// the call requestID, until ttl from now; make ttl longer than the longest
// call. It refuses with 402 insufficient_balance (or account_frozen) when the
// account cannot cover it. Reserving a request id again returns its open
// reservation unchanged (a retry); a closed one is a 409 reservation_closed.
func Reserve(ctx context.Context, db *sql.DB, tenantID int64, requestID string, amount Amount, ttl time.Duration) (Reservation, error) {
	var r Reservation
	err := sqldb.InTxRetry(ctx, db, func(tx *sql.Tx) (err error) {
		r, err = reserveIn(ctx, tx, tenantID, requestID, amount, ttl)
		return err
	})
	switch {
	case err == nil:
		return r, nil
	case sqldb.IsDuplicate(err):
		return existing(ctx, db, tenantID, requestID)
	case isFault(err):
		return Reservation{}, err
	default:
		return Reservation{}, fmt.Errorf("reserve %s for tenant %d request %s: %w", amount, tenantID, requestID, err)
	}
}

// reserveIn is Reserve as one transaction's statements.
func reserveIn(ctx context.Context, tx *sql.Tx, tenantID int64, requestID string, amount Amount, ttl time.Duration) (Reservation, error) {
	r, err := newReservation(tenantID, requestID, amount, ttl)
	if err != nil {
		return r, err
	}
	// The row first, then the account: every writer locks a reservation
	// before its account, so they never deadlock on each other.
	res, err := tx.ExecContext(ctx, insertReservation, requestID, tenantID, r.Amount.String(), r.ExpiresAt)
	if err != nil {
		return Reservation{}, err
	}
	if r.ID, err = res.LastInsertId(); err != nil {
		return Reservation{}, fmt.Errorf("reservation id: %w", err)
	}
	if err := hold(ctx, tx, tenantID, r.Amount); err != nil {
		return Reservation{}, err
	}
	return r, nil
}

const insertReservation = "INSERT INTO ai_budget_reservations (request_id, tenant_id, amount, status, expires_at) VALUES (?, ?, " + decimal + ", 'reserved', ?)"

// newReservation checks a reservation's terms: the amount held is rounded
// up to AccountStep.
func newReservation(tenantID int64, requestID string, amount Amount, ttl time.Duration) (Reservation, error) {
	if err := validRequestID(requestID); err != nil {
		return Reservation{}, err
	}
	if amount < 0 || amount > MaxAmount {
		return Reservation{}, fault.Field("invalid_amount", "amount", "must be between 0 and "+MaxAmount.String())
	}
	if ttl <= 0 {
		return Reservation{}, fault.Field("invalid_ttl", "ttl", "must be positive")
	}
	return Reservation{RequestID: requestID, TenantID: tenantID, Amount: amount.Ceil(AccountStep),
		Status: StatusReserved, ExpiresAt: time.Now().UTC().Add(ttl).Truncate(time.Millisecond)}, nil
}

// covers is the condition of a tenant's account (tenant_id = ?) that is
// not frozen and has at least the amount that follows available.
const covers = " WHERE tenant_id = ? AND payment_status <> 'frozen' AND balance + credit_limit - reserved_amount >= "

// holdSQL takes amount from what the account has available, if it has it
// and is not frozen: one row affected, or none.
const holdSQL = "UPDATE tenant_accounts SET reserved_amount = reserved_amount + " + decimal + covers + decimal

// Staged is a reservation added to a batch; Decide reads its outcome.
type Staged struct {
	r         Reservation
	ins, held int // statement indexes: the row's insert, the hold
}

// StageReserve adds Reserve's statements to b, for a transaction of the
// caller's (sqldb.TxBatch) that commits the hold with the call's other
// bookkeeping in one round trip. A request id reserved before is a
// duplicate-key error of the batch.
func StageReserve(b *sqldb.Batch, tenantID int64, requestID string, amount Amount, ttl time.Duration) (Staged, error) {
	r, err := newReservation(tenantID, requestID, amount, ttl)
	if err != nil {
		return Staged{}, err
	}
	s := Staged{r: r}
	if r.Amount == 0 {
		// An UPDATE that changes nothing reports no affected row: a free
		// call's row is inserted only if the account is usable.
		s.ins = b.Add("INSERT INTO ai_budget_reservations (request_id, tenant_id, amount, status, expires_at) SELECT ?, tenant_id, 0, 'reserved', ? FROM tenant_accounts"+
			covers+"0", requestID, r.ExpiresAt, tenantID)
		s.held = s.ins
		return s, nil
	}
	s.ins = b.Add(insertReservation, requestID, tenantID, r.Amount.String(), r.ExpiresAt)
	s.held = b.Add(holdSQL, r.Amount.String(), tenantID, r.Amount.String())
	return s, nil
}

// Decide is the staged reservation, or the 402 that refuses it (explained
// from the account, read through q inside the transaction).
func (s Staged) Decide(ctx context.Context, q Querier, res sqldb.Results) (Reservation, error) {
	if !res.Ran(s.held) {
		return Reservation{}, fmt.Errorf("reserve for request %s: the hold did not run", s.r.RequestID)
	}
	if res.Affected[s.held] != 1 {
		return Reservation{}, refusal(ctx, q, s.r.TenantID, s.r.Amount)
	}
	r := s.r
	r.ID = res.IDs[s.ins]
	return r, nil
}

// Querier is what *sql.DB, *sql.Tx and *sql.Conn share.
type Querier interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// hold takes amount from tenantID's account in tx, or refuses.
func hold(ctx context.Context, tx *sql.Tx, tenantID int64, amount Amount) error {
	var n int64
	if amount == 0 {
		// An UPDATE that changes nothing reports no affected row; a free
		// call only needs a usable account.
		err := tx.QueryRowContext(ctx, "SELECT COUNT(*) FROM tenant_accounts"+covers+"0", tenantID).Scan(&n)
		if err != nil {
			return fmt.Errorf("check account: %w", err)
		}
	} else {
		res, err := tx.ExecContext(ctx, holdSQL, amount.String(), tenantID, amount.String())
		if err != nil {
			return fmt.Errorf("hold on account: %w", err)
		}
		if n, err = res.RowsAffected(); err != nil {
			return fmt.Errorf("hold on account: %w", err)
		}
	}
	if n == 1 {
		return nil
	}
	return refusal(ctx, tx, tenantID, amount)
}

// refusal explains why a hold did not fit.
func refusal(ctx context.Context, q Querier, tenantID int64, amount Amount) error {
	a, err := readAccount(ctx, q, tenantID)
	if errors.Is(err, sql.ErrNoRows) {
		return fault.New(fault.PaymentRequired, "insufficient_balance", "the tenant has no AI account")
	}
	if err != nil {
		return err
	}
	if a.PaymentStatus == "frozen" {
		return fault.New(fault.PaymentRequired, "account_frozen", "the tenant's account is frozen")
	}
	return fault.New(fault.PaymentRequired, "insufficient_balance", "this call may cost up to %s and %s is available", amount, max(a.Available(), 0))
}

// existing returns the open reservation of a retried request id.
func existing(ctx context.Context, db *sql.DB, tenantID int64, requestID string) (Reservation, error) {
	r, _, err := lockReservation(ctx, db, requestID, "")
	if err != nil {
		return Reservation{}, fmt.Errorf("read reservation %s: %w", requestID, err)
	}
	if r.TenantID != tenantID {
		return Reservation{}, fault.New(fault.Conflict, "request_id_reused", "request id %s belongs to another tenant", requestID)
	}
	if r.Status != StatusReserved {
		return Reservation{}, fault.New(fault.Conflict, "reservation_closed", "the reservation of request %s is already %s", requestID, r.Status)
	}
	return r, nil
}

// Settle charges the real cost of the call requestID (rounded half up to
// AccountStep, at most the reserved amount) and releases the whole hold, in
// one transaction. A reservation already closed is left alone (Applied
// false): settling twice, or after Reconcile, never charges twice.
func Settle(ctx context.Context, db *sql.DB, requestID string, actualCost Amount) (Settlement, error) {
	if actualCost < 0 {
		return Settlement{}, fault.Field("invalid_amount", "actualCost", "must not be negative")
	}
	return closeReservation(ctx, db, requestID, StatusSettled, actualCost)
}

// Release closes the reservation of a call that did not happen (refused
// before reaching a provider, or failed without usage) at no charge.
func Release(ctx context.Context, db *sql.DB, requestID string) (Settlement, error) {
	return closeReservation(ctx, db, requestID, StatusReleased, 0)
}

func closeReservation(ctx context.Context, db *sql.DB, requestID string, to Status, cost Amount) (Settlement, error) {
	if err := validRequestID(requestID); err != nil {
		return Settlement{}, err
	}
	var n int64
	err := sqldb.Retry(ctx, func() error {
		res, err := db.ExecContext(ctx, closeSQL, closeArgs(requestID, to, cost)...)
		if err != nil {
			return err
		}
		n, err = res.RowsAffected()
		return err
	})
	if err != nil {
		return Settlement{}, fmt.Errorf("close reservation %s as %s: %w", requestID, to, err)
	}
	// The row is final now (closed by this call or an earlier one): read
	// what it holds.
	r, charged, err := lockReservation(ctx, db, requestID, "")
	if errors.Is(err, sql.ErrNoRows) {
		return Settlement{}, fault.New(fault.NotFound, "reservation_not_found", "no budget reservation for request %s", requestID)
	}
	if err != nil {
		return Settlement{}, fmt.Errorf("read reservation %s: %w", requestID, err)
	}
	s := Settlement{RequestID: requestID, TenantID: r.TenantID, Status: r.Status, Reserved: r.Amount, Charged: charged, Applied: n > 0}
	if s.Applied {
		s.Overrun = max(cost-r.Amount, 0)
	}
	return s, nil
}

// closeSQL closes an open reservation and moves its money in one
// statement: the balance is charged the cost, at most the amount held, and
// the whole hold is released. A reservation already closed matches
// nothing, so nothing is ever charged twice. The reservation row is locked
// before its account, as by every writer.
const closeSQL = "UPDATE ai_budget_reservations r JOIN tenant_accounts a ON a.tenant_id = r.tenant_id" +
	" SET r.status = ?, r.settled_amount = LEAST(" + decimal + ", r.amount), r.settled_at = NOW(3)," +
	" a.balance = a.balance - LEAST(" + decimal + ", r.amount), a.reserved_amount = a.reserved_amount - r.amount" +
	" WHERE r.request_id = ? AND r.status = 'reserved'"

func closeArgs(requestID string, to Status, cost Amount) []any {
	c := cost.Round(AccountStep).String()
	return []any{string(to), c, c, requestID}
}

// StageSettle adds Settle to b: requestID's reservation settled at cost
// (rounded half up to AccountStep, at most the amount held), or left alone
// when already closed. With cost 0 it is Release.
func StageSettle(b *sqldb.Batch, requestID string, cost Amount) error {
	if err := validRequestID(requestID); err != nil {
		return err
	}
	if cost < 0 {
		return fault.Field("invalid_amount", "actualCost", "must not be negative")
	}
	to := StatusSettled
	if cost == 0 {
		to = StatusReleased
	}
	b.Add(closeSQL, closeArgs(requestID, to, cost)...)
	return nil
}

// apply closes the locked reservation r as status to, charging cost (capped
// at the reservation), unless it is already closed.
func apply(ctx context.Context, tx *sql.Tx, r Reservation, charged Amount, to Status, cost Amount) (Settlement, error) {
	s := Settlement{RequestID: r.RequestID, TenantID: r.TenantID, Status: r.Status, Reserved: r.Amount, Charged: charged}
	if r.Status != StatusReserved {
		return s, nil
	}
	s.Status, s.Applied = to, true
	s.Charged = min(cost.Round(AccountStep), r.Amount)
	s.Overrun = max(cost-r.Amount, 0)
	res, err := tx.ExecContext(ctx, closeSQL, closeArgs(r.RequestID, to, cost)...)
	if err != nil {
		return s, fmt.Errorf("close reservation: %w", err)
	}
	if n, err := res.RowsAffected(); err != nil || n == 0 {
		return s, fmt.Errorf("close reservation %s of tenant %d: no row changed (%v)", r.RequestID, r.TenantID, err)
	}
	return s, nil
}

// lockReservation reads the reservation of requestID (suffix " FOR UPDATE"
// locks it) and what it charged.
func lockReservation(ctx context.Context, q Querier, requestID, suffix string) (Reservation, Amount, error) {
	var (
		r               Reservation
		amount, settled sql.NullString
		status          string
	)
	err := q.QueryRowContext(ctx, "SELECT id, request_id, tenant_id, amount, settled_amount, status, expires_at FROM ai_budget_reservations WHERE request_id = ?"+suffix, requestID).
		Scan(&r.ID, &r.RequestID, &r.TenantID, &amount, &settled, &status, &r.ExpiresAt)
	if err != nil {
		return r, 0, err
	}
	r.Status = Status(status)
	if r.Amount, err = ParseAmount(amount.String); err != nil {
		return r, 0, err
	}
	var charged Amount
	if settled.Valid {
		if charged, err = ParseAmount(settled.String); err != nil {
			return r, 0, err
		}
	}
	return r, charged, nil
}

// GetAccount reads tenantID's account; 404 account_not_found when it has none.
func GetAccount(ctx context.Context, db *sql.DB, tenantID int64) (Account, error) {
	a, err := readAccount(ctx, db, tenantID)
	if errors.Is(err, sql.ErrNoRows) {
		return a, fault.New(fault.NotFound, "account_not_found", "tenant %d has no account", tenantID)
	}
	return a, err
}

func readAccount(ctx context.Context, q Querier, tenantID int64) (Account, error) {
	a := Account{TenantID: tenantID}
	var balance, credit, reserved string
	err := q.QueryRowContext(ctx, "SELECT balance, credit_limit, reserved_amount, payment_status FROM tenant_accounts WHERE tenant_id = ?", tenantID).
		Scan(&balance, &credit, &reserved, &a.PaymentStatus)
	if errors.Is(err, sql.ErrNoRows) {
		return a, err
	}
	if err != nil {
		return a, fmt.Errorf("read account of tenant %d: %w", tenantID, err)
	}
	for _, f := range []struct {
		s   string
		dst *Amount
	}{{balance, &a.Balance}, {credit, &a.CreditLimit}, {reserved, &a.Reserved}} {
		if *f.dst, err = ParseAmount(f.s); err != nil {
			return a, fmt.Errorf("account of tenant %d: %w", tenantID, err)
		}
	}
	return a, nil
}

func validRequestID(id string) error {
	if id == "" || len(id) > 64 {
		return fault.Field("invalid_request_id", "requestId", "must be 1 to 64 characters")
	}
	return nil
}

func isFault(err error) bool {
	_, ok := fault.As(err)
	return ok
}
