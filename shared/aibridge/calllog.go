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

// write runs one call-log statement, even after the client left.
func (cl *call) write(ctx context.Context, q string, args []any) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), logWriteTimeout)
	defer cancel()
	err := sqldb.Retry(ctx, func() error {
		_, err := cl.b.DB.ExecContext(ctx, q, args...)
		return err
	})
	if err != nil {
		return fmt.Errorf("call log: %w", err)
	}
	return nil
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
			nullStr(sqldb.Text(cl.c.IP, 45)), nullStr(sqldb.Text(cl.c.UserAgent, 500)), cl.metadata(a, 0)}
}

// logFinish completes the row of an attempt that failed and is followed by
// another.
func (cl *call) logFinish(ctx context.Context, a *attempt, failure error) error {
	q, args, charged := cl.finishRow(a, failure)
	if err := cl.write(ctx, q, args); err != nil {
		return err
	}
	cl.logged += charged
	in, out, _ := cl.tokens(a)
	cl.usedBy(a, in+out)
	return nil
}

// finishRow is the statement completing the attempt's row with its outcome
// and the cost charged for it, and that cost.
func (cl *call) finishRow(a *attempt, failure error) (string, []any, budget.Amount) {
	in, out, source := cl.tokens(a)
	m := a.model
	cost := budget.Cost(in, out, m.InPrice, m.OutPrice)
	// The row carries what the account is charged: rounded as the account
	// holds money, and never past what was reserved for the call.
	charged := min(cost.Round(budget.AccountStep), cl.reserved-cl.logged)
	var overrun budget.Amount
	if cost > charged {
		overrun = cost - charged
	}
	status, code, msg, httpStatus := outcome(failure)
	var firstByte any
	if a.streamed {
		firstByte = a.firstByte.Milliseconds()
	}
	return `UPDATE ai_service_call_logs SET input_tokens = ?, output_tokens = ?, total_tokens = ?, cost = ` + decimal + `,
				response_time_ms = ?, first_byte_ms = ?, status = ?, error_code = ?, error_message = ?, http_status = ?, usage_source = ?,
				streamed = ?, client_disconnected = ?, metadata = ?, completed_at = NOW(3)
			WHERE request_id = ? AND attempt = ?`,
		[]any{in, out, in + out, charged.String(), time.Since(a.started).Milliseconds(), firstByte, status, nullStr(code), nullStr(msg), httpStatus, source,
			a.streamed, a.clientGone, cl.metadata(a, overrun), cl.id, a.n}, charged
}

// metadata is the row's metadata: the HTTP request and, when the estimate
// fell short, the cost not charged.
func (cl *call) metadata(a *attempt, overrun budget.Amount) string {
	md := map[string]any{"tenantCode": cl.c.TenantCode}
	if cl.c.RequestID != "" {
		md["httpRequestId"] = cl.c.RequestID
	}
	if a.model.Upstream != "" {
		md["upstreamModel"] = a.model.Upstream
	}
	if overrun > 0 {
		md["uncharged"] = json.Number(overrun.String())
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
