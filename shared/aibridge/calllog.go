package aibridge

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/unitenant/unitenant/shared/aiprovider"
	"github.com/unitenant/unitenant/shared/budget"
	"github.com/unitenant/unitenant/shared/sqldb"
)

// Call log statuses (ai_service_call_logs.status).
const (
	LogPending   = "pending"
	LogSuccess   = "success"
	LogError     = "error"
	LogTimeout   = "timeout"
	LogCancelled = "cancelled"
)

// logWriteTimeout bounds one log write; it runs even after the client left.
const logWriteTimeout = 15 * time.Second

const decimal = "CAST(? AS DECIMAL(20,6))"

// write runs one call-log statement, even after the client left, and
// returns how many rows it changed.
func (cl *call) write(ctx context.Context, q string, args []any) (int64, error) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), logWriteTimeout)
	defer cancel()
	var n int64
	err := sqldb.Retry(ctx, func() error {
		res, err := cl.b.DB.ExecContext(ctx, q, args...)
		if err == nil {
			n, err = res.RowsAffected()
		}
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("call log: %w", err)
	}
	return n, nil
}

// insertLog is the statement inserting the attempt's pending row.
func (cl *call) insertLog(a *attempt) (string, []any) {
	var user, key any
	if cl.c.UserID != 0 {
		user = strconv.FormatInt(cl.c.UserID, 10)
	}
	if cl.c.Key != nil {
		key = cl.c.Key.ID
	}
	m := a.model
	return `INSERT INTO ai_service_call_logs (request_id, attempt, tenant_id, user_id, api_key_id, endpoint,
			model_id, model_name, provider, input_price_per_1k, output_price_per_1k, status, ip_address, user_agent, metadata)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ` + decimal + `, ` + decimal + `, 'pending', ?, ?, ?)`,
		[]any{cl.id, a.n, cl.c.TenantID, user, key, cl.endpoint, m.ID, m.Name, m.Provider, m.InPrice.String(), m.OutPrice.String(),
			nullStr(sqldb.Text(cl.c.IP, 45)), nullStr(sqldb.Text(cl.c.UserAgent, 500)), cl.metadata(a, 0, false)}
}

// logFinish completes the row of an attempt that failed and is followed by
// another.
func (cl *call) logFinish(ctx context.Context, a *attempt, failure error) error {
	q, args, charged := cl.finishRow(a, failure)
	n, err := cl.write(ctx, q, args)
	if err == nil && n == 0 {
		charged, err = cl.finishLate(ctx, a, failure)
	}
	if err != nil {
		return err
	}
	cl.logged += charged
	in, out, _ := cl.tokens(a)
	cl.usedBy(a, in+out)
	return nil
}

// finishRow is the statement completing the attempt's pending row with its
// outcome and the cost charged for it, and that cost. It changes the row
// only while the call's reservation is open, read under a shared lock (at
// any isolation level) so that Reconcile cannot close the reservation in
// between: a reservation Reconcile closed — the function frozen past its
// expiry — was settled at the cost the rows carried then, and a row
// completed after it at a cost would be billed and never charged. Such a
// row is left for finishLate.
func (cl *call) finishRow(a *attempt, failure error) (string, []any, budget.Amount) {
	cost := cl.cost(a)
	// The row carries what the account is charged: rounded as the account
	// holds money, and never past what was reserved for the call.
	charged := min(cost.Round(budget.AccountStep), cl.reserved-cl.logged)
	q, args := cl.completeRow(a, failure, charged, max(cost-charged, 0), false)
	return q + " AND EXISTS (SELECT 1 FROM ai_budget_reservations WHERE request_id = ? AND status = 'reserved' LOCK IN SHARE MODE)",
		append(args, cl.id), charged
}

// finishLate completes the pending row of attempt a, which finishRow left
// because the call's reservation was closed: at no cost, for nothing more
// can be charged for the call, its cost kept in the metadata as uncharged.
// It returns the cost the row carries: nothing, or what it carried already
// when it was complete before (a write retried after its reply was lost).
func (cl *call) finishLate(ctx context.Context, a *attempt, failure error) (budget.Amount, error) {
	cost := cl.cost(a)
	q, args := cl.completeRow(a, failure, 0, cost, true)
	n, err := cl.write(ctx, q, args)
	if err != nil {
		return 0, err
	}
	if n == 1 {
		cl.b.log().WarnContext(ctx, "AI call ended after its reservation was closed; its cost is not charged",
			"call", cl.id, "attempt", a.n, "tenant", cl.c.TenantID, "uncharged", cost.String())
		return 0, nil
	}
	var logged string
	if err := cl.b.DB.QueryRowContext(ctx, "SELECT cost FROM ai_service_call_logs WHERE request_id = ? AND attempt = ?", cl.id, a.n).Scan(&logged); err != nil {
		return 0, fmt.Errorf("call log: %w", err)
	}
	return budget.ParseAmount(logged)
}

// cost is what attempt a cost at its model's prices, exactly.
func (cl *call) cost(a *attempt) budget.Amount {
	in, out, _ := cl.tokens(a)
	return budget.Cost(in, out, a.model.InPrice, a.model.OutPrice)
}

// completeRow is the statement completing attempt a's pending row at cost
// charged, uncharged the part of its cost not charged (late: because its
// reservation was already closed).
func (cl *call) completeRow(a *attempt, failure error, charged, uncharged budget.Amount, late bool) (string, []any) {
	in, out, source := cl.tokens(a)
	status, code, msg, httpStatus := outcome(failure)
	var firstByte any
	if a.streamed {
		firstByte = a.firstByte.Milliseconds()
	}
	return `UPDATE ai_service_call_logs SET input_tokens = ?, output_tokens = ?, total_tokens = ?, cost = ` + decimal + `,
				response_time_ms = ?, first_byte_ms = ?, status = ?, error_code = ?, error_message = ?, http_status = ?, usage_source = ?,
				streamed = ?, client_disconnected = ?, metadata = ?, completed_at = NOW(3)
			WHERE request_id = ? AND attempt = ? AND status = 'pending'`,
		[]any{in, out, in + out, charged.String(), time.Since(a.started).Milliseconds(), firstByte, status, nullStr(code), nullStr(msg), httpStatus, source,
			a.streamed, a.clientGone, cl.metadata(a, uncharged, late), cl.id, a.n}
}

// metadata is the row's metadata: the HTTP request and, when the estimate
// fell short or the reservation was closed before the attempt ended, the
// cost not charged.
func (cl *call) metadata(a *attempt, uncharged budget.Amount, late bool) string {
	md := map[string]any{"tenantCode": cl.c.TenantCode}
	if cl.c.RequestID != "" {
		md["httpRequestId"] = cl.c.RequestID
	}
	if a.model.Upstream != "" {
		md["upstreamModel"] = a.model.Upstream
	}
	if uncharged > 0 {
		md["uncharged"] = json.Number(uncharged.String())
	}
	if late {
		md["reservationClosed"] = true
	}
	b, _ := json.Marshal(md)
	return string(b)
}

// outcome is a failure as the log row records it.
func outcome(err error) (status, code, message string, httpStatus any) {
	if err == nil {
		return LogSuccess, "", "", nil
	}
	var pe *aiprovider.ProviderError
	if errors.As(err, &pe) {
		status = LogError
		if pe.Type == aiprovider.ErrTypeTimeout {
			status = LogTimeout
		}
		code = pe.Code
		if code == "" {
			code = pe.Type
		}
		if pe.Status != 0 {
			httpStatus = pe.Status
		}
		return status, sqldb.Text(code, 64), sqldb.Text(pe.Error(), 2000), httpStatus
	}
	if errors.Is(err, context.Canceled) {
		return LogCancelled, "cancelled", "", nil
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return LogTimeout, "timeout", sqldb.Text(err.Error(), 2000), nil
	}
	return LogError, "bridge_error", sqldb.Text(err.Error(), 2000), nil
}

func nullStr(s string) any {
	if s == "" {
		return nil
	}
	return s
}
