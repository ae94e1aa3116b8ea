package budget_test

import (
	"context"
	"testing"
	"time"

	"github.com/unitenant/unitenant/shared/budget"
)

// seq is a WITH clause naming the numbers 0 to 9999 seq(n) (MariaDB stops
// a recursion at 1000 rows).
const seq = "WITH RECURSIVE s(n) AS (SELECT 0 UNION ALL SELECT n + 1 FROM s WHERE n < 99), seq(n) AS (SELECT a.n * 100 + b.n FROM s a JOIN s b) "

// TestReconcileTotalsBeyondAmount: what one run charges, and leaves
// uncharged, is reported exactly when it passes the range of an Amount
// (9223372036854.775807), and a call log whose cost is past that range
// (DECIMAL(20,6) holds up to 99999999999999.999999) is reconciled too:
// 924 reservations of the largest amount a call can cost (two on each of
// 462 accounts that hold that much) are settled at it, one of them from a
// call log far above it, and an orphaned reservation is reported with such
// a call log's cost.
func TestReconcileTotalsBeyondAmount(t *testing.T) {
	t.Parallel()
	db := mustOpenSystem(t)
	ctx := context.Background()
	most := budget.MaxAmount.String()
	huge := "99999999999999.999999"
	expiry := time.Now().UTC().Add(-time.Hour)
	for _, q := range []struct {
		sql  string
		args []any
	}{
		{`INSERT INTO tenants (id, tenant_code, tenant_name, subdomain, status) ` + seq +
			`SELECT n, CONCAT('m', n), CONCAT('m', n), CONCAT('m', n), 'active' FROM seq WHERE n BETWEEN 1 AND 462`, nil},
		{`INSERT INTO tenant_accounts (tenant_id, balance, credit_limit, reserved_amount) ` + seq +
			`SELECT n, CAST(? AS DECIMAL(20,6)), CAST(? AS DECIMAL(20,6)), 2 * CAST(? AS DECIMAL(20,6)) FROM seq WHERE n BETWEEN 1 AND 462`, []any{most, most, most}},
		// r1 to r924 on accounts 1 to 462, two each; r925 on a tenant
		// that has none.
		{`INSERT INTO ai_budget_reservations (request_id, tenant_id, amount, status, expires_at) ` + seq +
			`SELECT CONCAT('r', n), IF(n <= 924, (n + 1) DIV 2, 999), CAST(? AS DECIMAL(20,6)), 'reserved', ? FROM seq WHERE n BETWEEN 1 AND 925`, []any{most, expiry}},
		{`INSERT INTO ai_service_call_logs (request_id, tenant_id, model_name, provider, cost, status)
			SELECT request_id, tenant_id, 'm', 'openai', IF(request_id IN ('r1', 'r925'), CAST(? AS DECIMAL(20,6)), amount), 'success'
			FROM ai_budget_reservations`, []any{huge}},
	} {
		if _, err := db.Exec(q.sql, q.args...); err != nil {
			t.Fatalf("%s: %v", q.sql, err)
		}
	}

	rep, err := budget.Reconcile(ctx, db, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if rep.Settled != 924 || rep.Orphaned != 1 {
		t.Fatalf("%d settled, %d orphaned; want 924 and 1", rep.Settled, rep.Orphaned)
	}
	if got, want := rep.Charged.String(), "9239999999999.907600"; got != want {
		t.Errorf("charged %s, want %s", got, want)
	}
	if got := rep.Uncharged.String(); got != huge {
		t.Errorf("uncharged %s, want %s", got, huge)
	}
	for _, tenant := range []int64{1, 462} {
		if a := account(t, db, tenant); a.Balance != -budget.MaxAmount || a.Reserved != 0 {
			t.Errorf("account %+v, want both reservations charged", a)
		}
	}
}
