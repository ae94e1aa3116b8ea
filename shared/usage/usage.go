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
// DECIMAL and read back as budget.Total (a day's sums pass the range of a
// budget.Amount): it never passes through a float. A tenant whose day sums
// past what the daily columns hold is named in an error, its rows left as
// they were, and every other tenant's day is recorded.
// It must never modify the call logs, nor change a billing record that has
// left 'pending' (charged or void).
package usage

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/unitenant/unitenant/shared/budget"
	"github.com/unitenant/unitenant/shared/sqldb"
)

// BillingCategory is the billing_records category of AI usage.
const BillingCategory = "ai_usage"

// Report describes one day's totals after a Rollup.
type Report struct {
	Date    string       `json:"date"`    // the UTC day, 2006-01-02
	Rows    int          `json:"rows"`    // summary rows (tenant and model) of the day
	Tenants int          `json:"tenants"` // tenants with usage that day
	Calls   int64        `json:"calls"`   // finished calls (pending ones are not counted)
	Tokens  int64        `json:"tokens"`
	Cost    budget.Total `json:"-"`
	CostDec string       `json:"cost"` // Cost with six decimals, as money is written
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
WHERE created_at >= ? AND created_at < ? AND status <> 'pending' ` + exceptMark + `
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
WHERE ` + "`date`" + ` = ? ` + exceptMark + `
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
WHERE s.` + "`date`" + ` = ? ` + exceptMark + `
GROUP BY s.tenant_id, s.` + "`date`" + `
ON DUPLICATE KEY UPDATE
  quantity = IF(billing_records.status = 'pending', VALUES(quantity), billing_records.quantity),
  amount = IF(billing_records.status = 'pending', VALUES(amount), billing_records.amount),
  details = IF(billing_records.status = 'pending', VALUES(details), billing_records.details)`

// exceptMark is where summarize, statistics and bill leave tenants out
// (see except).
const exceptMark = "/* except */"

// except is query (summarize, statistics or bill, whose rows' tenant is
// column) leaving out the days of tenants, and its parameters for them.
func except(query, column string, tenants []int64) (string, []any) {
	if len(tenants) == 0 {
		return query, nil
	}
	args := make([]any, len(tenants))
	for i, id := range tenants {
		args[i] = id
	}
	return strings.Replace(query, exceptMark, "AND "+column+" NOT IN (?"+strings.Repeat(", ?", len(tenants)-1)+")", 1), args
}

// tooLarge lists the tenants whose finished calls of a day sum past what
// their rows of the day can record: cost past DECIMAL(20,6)
// (tenant_ai_usage_summary.total_cost, tenant_statistics.ai_cost), tokens
// past DECIMAL(20,4) (billing_records.quantity), calls past INT UNSIGNED
// (total_calls, ai_calls). A tenant's sums bound those of its models.
// Parameters: start, end.
const tooLarge = `
SELECT tenant_id, COUNT(*), CAST(SUM(total_tokens) AS CHAR), CAST(SUM(cost) AS CHAR)
FROM ai_service_call_logs
WHERE created_at >= ? AND created_at < ? AND status <> 'pending'
GROUP BY tenant_id
HAVING ABS(SUM(cost)) > 99999999999999.999999 OR SUM(total_tokens) > 9999999999999999 OR COUNT(*) > 4294967295
ORDER BY tenant_id`

// Rollup recomputes the totals of the UTC day containing day (see the
// package comment) at now, and reports them. The statements run in one
// READ COMMITTED transaction, retried on deadlock: the call logs are read
// without locking them, so the AI bridge never waits for a roll-up.
//
// A tenant whose day sums past what its rows can record fails the
// statements for every tenant (MySQL refuses the value: strict mode, the
// default of MySQL 8 and MariaDB): Rollup then finds those tenants, records
// the day of every other, and returns the report with an error naming each
// of them, the day and its sums.
func Rollup(ctx context.Context, db *sql.DB, day, now time.Time) (Report, error) {
	start := Day(day)
	date := start.Format(time.DateOnly)
	end := start.AddDate(0, 0, 1)
	var failed error
	err := rollupDay(ctx, db, start, end, now, nil)
	if err != nil {
		over, lerr := findTooLarge(ctx, db, start, end)
		if lerr != nil || len(over) == 0 {
			return Report{}, fmt.Errorf("roll up usage of %s: %w", date, errors.Join(err, lerr))
		}
		tenants, days := make([]int64, len(over)), make([]string, len(over))
		for i, o := range over {
			tenants[i], days[i] = o.tenant, o.String()
		}
		if err := rollupDay(ctx, db, start, end, now, tenants); err != nil {
			return Report{}, fmt.Errorf("roll up usage of %s but for tenants %v: %w", date, tenants, err)
		}
		failed = fmt.Errorf("roll up usage of %s: %s: past what a day's totals can record (cost DECIMAL(20,6), tokens DECIMAL(20,4), calls INT UNSIGNED); "+
			"left as they were, the other tenants' days recorded", date, strings.Join(days, ", "))
	}
	// Read after the commit: a report that cannot be made never undoes
	// the day's records.
	rep, err := totals(ctx, db, date)
	if err != nil {
		return Report{}, errors.Join(failed, fmt.Errorf("report usage of %s (recorded): %w", date, err))
	}
	return rep, failed
}

// rollupDay runs the statements of the day from start to end, leaving out
// the days of the tenants leftOut.
func rollupDay(ctx context.Context, db *sql.DB, start, end, now time.Time, leftOut []int64) error {
	const (
		stamp   = "2006-01-02 15:04:05"
		stampMS = "2006-01-02 15:04:05.000"
	)
	date := start.Format(time.DateOnly)
	s, e, n := start.Format(stamp), end.Format(stamp), now.UTC().Format(stampMS)
	sumQ, sumArgs := except(summarize, "tenant_id", leftOut)
	statQ, statArgs := except(statistics, "tenant_id", leftOut)
	billQ, billArgs := except(bill, "s.tenant_id", leftOut)
	return sqldb.Retry(ctx, func() error {
		return readCommitted(ctx, db, func(tx *sql.Tx) error {
			if _, err := tx.ExecContext(ctx, sumQ, append([]any{date, s, e}, sumArgs...)...); err != nil {
				return fmt.Errorf("usage summary: %w", err)
			}
			if _, err := tx.ExecContext(ctx, statQ, append([]any{date}, statArgs...)...); err != nil {
				return fmt.Errorf("tenant statistics: %w", err)
			}
			if _, err := tx.ExecContext(ctx, members, date, e, n, s, e, s, e, e, s, e, e); err != nil {
				return fmt.Errorf("tenant member statistics: %w", err)
			}
			if _, err := tx.ExecContext(ctx, billQ, append([]any{BillingCategory, date}, billArgs...)...); err != nil {
				return fmt.Errorf("billing records: %w", err)
			}
			return nil
		})
	})
}

// tooLargeDay is a tenant's day past what its rows can record.
type tooLargeDay struct {
	tenant       int64
	calls        int64
	tokens, cost string // exact, as MySQL summed them
}

func (d tooLargeDay) String() string {
	return fmt.Sprintf("tenant %d's day (%d calls, %s tokens, cost %s)", d.tenant, d.calls, d.tokens, d.cost)
}

// findTooLarge lists the tenants whose day from start to end sums past
// what its rows can record (see tooLarge).
func findTooLarge(ctx context.Context, db *sql.DB, start, end time.Time) ([]tooLargeDay, error) {
	const stamp = "2006-01-02 15:04:05"
	rows, err := db.QueryContext(ctx, tooLarge, start.Format(stamp), end.Format(stamp))
	if err != nil {
		return nil, fmt.Errorf("list the days too large to record: %w", err)
	}
	defer rows.Close()
	var out []tooLargeDay
	for rows.Next() {
		var d tooLargeDay
		if err := rows.Scan(&d.tenant, &d.calls, &d.tokens, &d.cost); err != nil {
			return nil, fmt.Errorf("list the days too large to record: %w", err)
		}
		out = append(out, d)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list the days too large to record: %w", err)
	}
	return out, nil
}

// totals reads the day's summary back for the report.
func totals(ctx context.Context, db *sql.DB, date string) (Report, error) {
	rep := Report{Date: date}
	var cost string
	err := db.QueryRowContext(ctx, "SELECT COUNT(*), COUNT(DISTINCT tenant_id), COALESCE(SUM(total_calls), 0), COALESCE(SUM(total_tokens), 0), COALESCE(SUM(total_cost), 0) FROM tenant_ai_usage_summary WHERE `date` = ?",
		date).Scan(&rep.Rows, &rep.Tenants, &rep.Calls, &rep.Tokens, &cost)
	if err != nil {
		return Report{}, fmt.Errorf("read totals: %w", err)
	}
	if rep.Cost, err = budget.ParseTotal(cost); err != nil {
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
