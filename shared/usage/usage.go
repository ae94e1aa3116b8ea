// Package usage rolls the AI bridge's call logs (ai_service_call_logs) up
// into daily totals: tenant_ai_usage_summary per tenant, model and UTC day,
// the AI columns of tenant_statistics, and the day's 'ai_usage' line of
// billing_records per tenant; and the members' side of tenant_statistics
// from the memberships and the login history. usage-cron runs it every
// hour.
//
// Every total is recomputed from the call logs and written over the previous
// one, never added to it, so a day may be rolled up any number of times, by
// runs that overlap or repeat, and always ends with the same totals; a late
// call log row is simply counted by the next run. Money is summed by MySQL in
// DECIMAL and read back as budget.Amount: it never passes through a float.
// It must never modify the call logs, nor change a billing record that has
// left 'pending' (charged or void).
package usage

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/unitenant/unitenant/shared/budget"
	"github.com/unitenant/unitenant/shared/sqldb"
)

// BillingCategory is the billing_records category of AI usage.
const BillingCategory = "ai_usage"

// Report describes one day's totals after a Rollup.
type Report struct {
	Date    string        `json:"date"`    // the UTC day, 2006-01-02
	Rows    int           `json:"rows"`    // summary rows (tenant and model) of the day
	Tenants int           `json:"tenants"` // tenants with usage that day
	Calls   int64         `json:"calls"`   // finished calls (pending ones are not counted)
	Tokens  int64         `json:"tokens"`
	Cost    budget.Amount `json:"-"`
	CostDec string        `json:"cost"` // Cost with six decimals, as money is written
}

// Day returns the UTC day containing t, at midnight.
func Day(t time.Time) time.Time {
	y, m, d := t.UTC().Date()
	return time.Date(y, m, d, 0, 0, 0, 0, time.UTC)
}

// summarize recomputes every (tenant, model) row of one day from the call
// logs in a single statement. Parameters: date, start, end.
//
// A call counts once it has finished (any status but 'pending'); error_count
// is every finished call that did not succeed (error, timeout, cancelled), so
// success_count + error_count = total_calls. A call log without a model id
// counts under model 0 ("unknown"). average_response_time is over the calls
// that recorded one, rounded to the millisecond; success_rate is rounded to
// the four places the column holds.
const summarize = `
INSERT INTO tenant_ai_usage_summary
  (tenant_id, model_id, model_name, ` + "`date`" + `, total_calls, success_count, error_count,
   total_input_tokens, total_output_tokens, total_tokens, total_cost, average_response_time, success_rate)
SELECT tenant_id, COALESCE(model_id, 0), MAX(model_name), ?,
       COUNT(*), SUM(status = 'success'), SUM(status <> 'success'),
       SUM(input_tokens), SUM(output_tokens), SUM(total_tokens), SUM(cost),
       COALESCE(ROUND(AVG(response_time_ms)), 0),
       ROUND(CAST(SUM(status = 'success') AS DECIMAL(20,4)) / COUNT(*), 4)
FROM ai_service_call_logs
WHERE created_at >= ? AND created_at < ? AND status <> 'pending'
GROUP BY tenant_id, COALESCE(model_id, 0)
ON DUPLICATE KEY UPDATE
  model_name = VALUES(model_name), total_calls = VALUES(total_calls),
  success_count = VALUES(success_count), error_count = VALUES(error_count),
  total_input_tokens = VALUES(total_input_tokens), total_output_tokens = VALUES(total_output_tokens),
  total_tokens = VALUES(total_tokens), total_cost = VALUES(total_cost),
  average_response_time = VALUES(average_response_time), success_rate = VALUES(success_rate)`

// statistics writes the AI columns of tenant_statistics from the day's
// summary rows; the user and login columns belong to whoever computes them.
// Parameter: date.
const statistics = `
INSERT INTO tenant_statistics (tenant_id, stat_date, ai_calls, ai_tokens, ai_cost)
SELECT tenant_id, ` + "`date`" + `, SUM(total_calls), SUM(total_tokens), SUM(total_cost)
FROM tenant_ai_usage_summary
WHERE ` + "`date`" + ` = ?
GROUP BY tenant_id, ` + "`date`" + `
ON DUPLICATE KEY UPDATE ai_calls = VALUES(ai_calls), ai_tokens = VALUES(ai_tokens), ai_cost = VALUES(ai_cost)`

// members writes the member columns of every tenant's tenant_statistics
// row of the day (a tenant that existed at some time that day):
// active_users, the members who entered the tenant or refreshed a session
// scoped to it that day; login_count, their entries (tenant switches);
// user_count, the active memberships made before the day's end, counted
// at users_counted_at — on every run while the day lasts, and on the first
// run after it ended, whose count is kept from then on: a finished day's
// members do not change with later removals. Parameters: date, end, now,
// start, end, start, end, end, start, end, end.
const members = `
INSERT INTO tenant_statistics (tenant_id, stat_date, user_count, users_counted_at, active_users, login_count)
SELECT t.id, ?,
       (SELECT COUNT(*) FROM global_user_tenant_relations r
         WHERE r.tenant_id = t.id AND r.status = 'active' AND r.created_at < ?),
       ?,
       (SELECT COUNT(DISTINCT h.subject_id) FROM login_history h
         WHERE h.tenant_id = t.id AND h.subject_type = 'user' AND h.success = 1 AND h.created_at >= ? AND h.created_at < ?),
       (SELECT COUNT(*) FROM login_history h
         WHERE h.tenant_id = t.id AND h.subject_type = 'user' AND h.success = 1 AND h.login_method = 'tenant_switch'
           AND h.created_at >= ? AND h.created_at < ?)
FROM tenants t
WHERE t.created_at < ? AND (t.deleted_at IS NULL OR t.deleted_at >= ?)
ON DUPLICATE KEY UPDATE
  user_count = IF(tenant_statistics.users_counted_at >= ?, tenant_statistics.user_count, VALUES(user_count)),
  users_counted_at = IF(tenant_statistics.users_counted_at >= ?, tenant_statistics.users_counted_at, VALUES(users_counted_at)),
  active_users = VALUES(active_users), login_count = VALUES(login_count)`

// bill writes the day's 'ai_usage' billing record of each tenant from its
// summary rows: quantity is the tokens, amount the cost rounded to the four
// places of DECIMAL(14,4), halves away from zero (as budget.Settle charges),
// details the exact figures. Call logs of a tenant no longer in tenants
// (billing_records has a foreign key) are not billed. A record that is no
// longer pending keeps what was charged. Parameters: category, date.
const bill = `
INSERT INTO billing_records (tenant_id, billing_date, category, quantity, amount, details)
SELECT s.tenant_id, s.` + "`date`" + `, ?, SUM(s.total_tokens), ROUND(SUM(s.total_cost), 4),
       JSON_OBJECT('calls', SUM(s.total_calls), 'inputTokens', SUM(s.total_input_tokens),
                   'outputTokens', SUM(s.total_output_tokens), 'cost', CAST(SUM(s.total_cost) AS CHAR))
FROM tenant_ai_usage_summary s
JOIN tenants t ON t.id = s.tenant_id
WHERE s.` + "`date`" + ` = ?
GROUP BY s.tenant_id, s.` + "`date`" + `
ON DUPLICATE KEY UPDATE
  quantity = IF(billing_records.status = 'pending', VALUES(quantity), billing_records.quantity),
  amount = IF(billing_records.status = 'pending', VALUES(amount), billing_records.amount),
  details = IF(billing_records.status = 'pending', VALUES(details), billing_records.details)`

// Rollup recomputes the totals of the UTC day containing day (see the
// package comment) at now, and reports them. The statements run in one
// READ COMMITTED transaction, retried on deadlock: the call logs are read
// without locking them, so the AI bridge never waits for a roll-up.
func Rollup(ctx context.Context, db *sql.DB, day, now time.Time) (Report, error) {
	start := Day(day)
	date := start.Format(time.DateOnly)
	end := start.AddDate(0, 0, 1)
	const (
		stamp   = "2006-01-02 15:04:05"
		stampMS = "2006-01-02 15:04:05.000"
	)
	rep := Report{Date: date}
	err := sqldb.Retry(ctx, func() error {
		return readCommitted(ctx, db, func(tx *sql.Tx) error {
			if _, err := tx.ExecContext(ctx, summarize, date, start.Format(stamp), end.Format(stamp)); err != nil {
				return fmt.Errorf("usage summary: %w", err)
			}
			if _, err := tx.ExecContext(ctx, statistics, date); err != nil {
				return fmt.Errorf("tenant statistics: %w", err)
			}
			s, e, n := start.Format(stamp), end.Format(stamp), now.UTC().Format(stampMS)
			if _, err := tx.ExecContext(ctx, members, date, e, n, s, e, s, e, e, s, e, e); err != nil {
				return fmt.Errorf("tenant member statistics: %w", err)
			}
			if _, err := tx.ExecContext(ctx, bill, BillingCategory, date); err != nil {
				return fmt.Errorf("billing records: %w", err)
			}
			var err error
			rep, err = totals(ctx, tx, date)
			return err
		})
	})
	if err != nil {
		return Report{}, fmt.Errorf("roll up usage of %s: %w", date, err)
	}
	return rep, nil
}

// totals reads the day's summary back for the report.
func totals(ctx context.Context, tx *sql.Tx, date string) (Report, error) {
	rep := Report{Date: date}
	var cost string
	err := tx.QueryRowContext(ctx, "SELECT COUNT(*), COUNT(DISTINCT tenant_id), COALESCE(SUM(total_calls), 0), COALESCE(SUM(total_tokens), 0), COALESCE(SUM(total_cost), 0) FROM tenant_ai_usage_summary WHERE `date` = ?",
		date).Scan(&rep.Rows, &rep.Tenants, &rep.Calls, &rep.Tokens, &cost)
	if err != nil {
		return Report{}, fmt.Errorf("read totals: %w", err)
	}
	if rep.Cost, err = budget.ParseAmount(cost); err != nil {
		return Report{}, fmt.Errorf("read totals: %w", err)
	}
	rep.CostDec = rep.Cost.String()
	return rep, nil
}

// readCommitted is sqldb.InTx at READ COMMITTED, where INSERT ... SELECT
// reads its source consistently instead of share-locking it.
func readCommitted(ctx context.Context, db *sql.DB, fn func(*sql.Tx) error) (err error) {
	tx, err := db.BeginTx(ctx, &sql.TxOptions{Isolation: sql.LevelReadCommitted})
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	defer func() {
		if err != nil {
			_ = tx.Rollback()
		}
	}()
	if err = fn(tx); err != nil {
		return err
	}
	if err = tx.Commit(); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}
