package usage

import (
	"context"
	"database/sql"
	"reflect"
	"testing"

	"github.com/unitenant/unitenant/shared/logging"
	"github.com/unitenant/unitenant/shared/provisioning"
	"github.com/unitenant/unitenant/shared/sqldb/sqldbtest"
)

// TestCallLogIndexes: ai_service_call_logs takes a write on every AI call
// attempt, so it keeps only the secondary indexes the statements that run on
// it use, and each of those statements finds its rows through one:
//
//	the bridge's insert, and its update of an attempt   the unique key
//	budget.Reconcile's cost of a request id             the unique key's prefix
//	Rollup's summary of a day, and its sums per tenant   created_at
func TestCallLogIndexes(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db, _ := sqldbtest.NewDatabase(t)
	if _, err := provisioning.MigrateSystem(ctx, db, logging.Discard()); err != nil {
		t.Fatal(err)
	}

	rows, err := db.Query(`SELECT DISTINCT INDEX_NAME FROM information_schema.STATISTICS
		WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 'ai_service_call_logs' AND INDEX_NAME <> 'PRIMARY' ORDER BY INDEX_NAME`)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for rows.Next() {
		var name string
		if err := rows.Scan(&name); err != nil {
			t.Fatal(err)
		}
		got = append(got, name)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	if want := []string{"idx_ai_service_call_logs_created_at", "uk_ai_service_call_logs_request_attempt"}; !reflect.DeepEqual(got, want) {
		t.Errorf("secondary indexes %q, want %q", got, want)
	}

	// Thirty days of calls, a hundred a day, so that the plans are the ones
	// of a real table, not of a table small enough to scan.
	if _, err := db.Exec(`INSERT INTO ai_service_call_logs (request_id, attempt, tenant_id, user_id, api_key_id, model_id, model_name, provider, cost, status, created_at)
		WITH RECURSIVE s(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM s WHERE n < 100)
		SELECT CONCAT('req-', d.n, '-', c.n), 1 + c.n % 2, c.n % 7, c.n % 13, c.n % 5, c.n % 3, 'm', 'openai', 0.001,
		       IF(c.n % 10 = 0, 'pending', 'success'), '2024-03-01' + INTERVAL d.n - 1 DAY + INTERVAL c.n * 14 MINUTE
		FROM s d JOIN s c WHERE d.n <= 30`); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec("ANALYZE TABLE ai_service_call_logs"); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, query string
		args        []any
		key         string
	}{
		{"Rollup", summarize, []any{"2024-03-10", "2024-03-10 00:00:00", "2024-03-11 00:00:00"}, "idx_ai_service_call_logs_created_at"},
		{"RollupTooLarge", tooLarge, []any{"2024-03-10 00:00:00", "2024-03-11 00:00:00"}, "idx_ai_service_call_logs_created_at"},
		{"Reconcile", "SELECT COUNT(*), COALESCE(SUM(cost), 0) FROM ai_service_call_logs WHERE request_id = ? AND status <> 'pending'",
			[]any{"req-10-3"}, "uk_ai_service_call_logs_request_attempt"},
		{"BridgeUpdate", "UPDATE ai_service_call_logs SET cost = 1, status = 'success' WHERE request_id = ? AND attempt = ?",
			[]any{"req-10-3", 2}, "uk_ai_service_call_logs_request_attempt"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if key := explainKey(t, db, tc.query, tc.args...); key != tc.key {
				t.Errorf("reads ai_service_call_logs through %q, want %q", key, tc.key)
			}
		})
	}
}

// explainKey is the index EXPLAIN says query reads ai_service_call_logs
// through ("" for none).
func explainKey(t *testing.T, db *sql.DB, query string, args ...any) string {
	t.Helper()
	rows, err := db.Query("EXPLAIN "+query, args...)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		t.Fatal(err)
	}
	key := "(not read)"
	for rows.Next() {
		vals := make([]sql.NullString, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			t.Fatal(err)
		}
		row := map[string]string{}
		for i, c := range cols {
			row[c] = vals[i].String
		}
		if row["table"] == "ai_service_call_logs" {
			key = row["key"]
		}
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return key
}
