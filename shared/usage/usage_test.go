package usage_test

import (
	"context"
	"database/sql"
	"fmt"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/unitenant/unitenant/shared/budget"
	"github.com/unitenant/unitenant/shared/logging"
	"github.com/unitenant/unitenant/shared/provisioning"
	"github.com/unitenant/unitenant/shared/sqldb/sqldbtest"
	"github.com/unitenant/unitenant/shared/usage"
)

// callLog is one ai_service_call_logs row of a fixture.
type callLog struct {
	tenant, model int64
	in, out       int
	cost          string
	ms            int // 0: no response time recorded
	status        string
	at            string
}

var (
	day1 = time.Date(2024, 3, 10, 0, 0, 0, 0, time.UTC)
	day2 = day1.AddDate(0, 0, 1)
)

// fixture: tenants 1 and 2, models 1 and 2, over day1 and day2, with every
// status, costs with six decimals, and rows on both sides of midnight.
var fixture = []callLog{
	{1, 1, 100, 50, "0.001234", 200, "success", "2024-03-10 00:00:00.000"},
	{1, 1, 300, 0, "0.000800", 400, "error", "2024-03-10 08:30:00.000"},
	{1, 1, 10, 10, "0.000015", 0, "timeout", "2024-03-10 23:59:59.999"},
	{1, 1, 999, 999, "9.999999", 100, "pending", "2024-03-10 12:00:00.000"},
	{1, 2, 1000, 2000, "0.123457", 1000, "success", "2024-03-10 10:00:00.000"},
	{1, 2, 500, 500, "0.050001", 1500, "success", "2024-03-10 11:00:00.000"},
	{2, 1, 20, 30, "0.000051", 150, "cancelled", "2024-03-10 09:00:00.000"},
	{2, 2, 7, 3, "1.000001", 90, "success", "2024-03-10 13:00:00.000"},
	{1, 1, 40, 60, "0.002000", 300, "success", "2024-03-11 00:00:00.000"},
	{2, 1, 1, 1, "0.000001", 10, "success", "2024-03-11 01:00:00.000"},
	{2, 1, 2, 2, "0.000002", 20, "error", "2024-03-11 02:00:00.000"},
	{2, 2, 5, 5, "0.333333", 0, "success", "2024-03-11 23:59:59.999"},
}

func newDB(t *testing.T) *sql.DB {
	t.Helper()
	db, _ := sqldbtest.NewDatabase(t)
	if _, err := provisioning.MigrateSystem(context.Background(), db, logging.Discard()); err != nil {
		t.Fatal(err)
	}
	for _, id := range []int64{1, 2} {
		code := fmt.Sprintf("u%03d", id)
		if _, err := db.Exec("INSERT INTO tenants (id, tenant_code, tenant_name, subdomain) VALUES (?, ?, ?, ?)", id, code, code, code); err != nil {
			t.Fatal(err)
		}
	}
	return db
}

var seq atomic.Int64 // request ids, unique across parallel tests

func insertLogs(t *testing.T, db *sql.DB, logs ...callLog) {
	t.Helper()
	for _, l := range logs {
		var ms any
		if l.ms > 0 {
			ms = l.ms
		}
		_, err := db.Exec(`INSERT INTO ai_service_call_logs (request_id, tenant_id, model_id, model_name, provider,
			input_tokens, output_tokens, total_tokens, cost, response_time_ms, status, created_at)
			VALUES (?, ?, ?, ?, 'openai', ?, ?, ?, CAST(? AS DECIMAL(20,6)), ?, ?, ?)`, // as the bridge binds costs
			fmt.Sprintf("req-%d", seq.Add(1)), l.tenant, l.model, fmt.Sprintf("model-%d", l.model),
			l.in, l.out, l.in+l.out, l.cost, ms, l.status, l.at)
		if err != nil {
			t.Fatal(err)
		}
	}
}

// summary is a tenant_ai_usage_summary row, as the test expects it.
type summary struct {
	Tenant, Model       int64
	Date                string
	Calls, Success, Err int
	In, Out, Tokens     int64
	Cost                string
	AvgMS               int
	Rate                string
}

func readSummaries(t *testing.T, db *sql.DB) []summary {
	t.Helper()
	rows, err := db.Query("SELECT tenant_id, model_id, DATE_FORMAT(`date`, '%Y-%m-%d'), total_calls, success_count, error_count, total_input_tokens, total_output_tokens, total_tokens, total_cost, average_response_time, success_rate FROM tenant_ai_usage_summary ORDER BY `date`, tenant_id, model_id")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []summary
	for rows.Next() {
		var s summary
		if err := rows.Scan(&s.Tenant, &s.Model, &s.Date, &s.Calls, &s.Success, &s.Err, &s.In, &s.Out, &s.Tokens, &s.Cost, &s.AvgMS, &s.Rate); err != nil {
			t.Fatal(err)
		}
		out = append(out, s)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// dump returns every column but updated_at of the rows of table, in id order.
func dump(t *testing.T, db *sql.DB, table string) [][]sql.NullString {
	t.Helper()
	rows, err := db.Query("SELECT * FROM " + table + " ORDER BY id")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		t.Fatal(err)
	}
	var out [][]sql.NullString
	for rows.Next() {
		vals := make([]sql.NullString, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			t.Fatal(err)
		}
		for i, c := range cols {
			if c == "updated_at" {
				vals[i] = sql.NullString{}
			}
		}
		out = append(out, vals)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

func rollup(t *testing.T, db *sql.DB, days ...time.Time) []usage.Report {
	t.Helper()
	var reps []usage.Report
	for _, d := range days {
		rep, err := usage.Rollup(context.Background(), db, d, rollupNow)
		if err != nil {
			t.Fatal(err)
		}
		reps = append(reps, rep)
	}
	return reps
}

// The expected rows, computed by hand from fixture.
var want = []summary{
	// 1.1 day1: success, error, timeout (pending not counted); avg of 200 and 400.
	{1, 1, "2024-03-10", 3, 1, 2, 410, 60, 470, "0.002049", 300, "0.3333"},
	{1, 2, "2024-03-10", 2, 2, 0, 1500, 2500, 4000, "0.173458", 1250, "1.0000"},
	{2, 1, "2024-03-10", 1, 0, 1, 20, 30, 50, "0.000051", 150, "0.0000"},
	{2, 2, "2024-03-10", 1, 1, 0, 7, 3, 10, "1.000001", 90, "1.0000"},
	{1, 1, "2024-03-11", 1, 1, 0, 40, 60, 100, "0.002000", 300, "1.0000"},
	{2, 1, "2024-03-11", 2, 1, 1, 3, 3, 6, "0.000003", 15, "0.5000"},
	{2, 2, "2024-03-11", 1, 1, 0, 5, 5, 10, "0.333333", 0, "1.0000"},
}

func TestRollup(t *testing.T) {
	t.Parallel()
	db := newDB(t)
	insertLogs(t, db, fixture...)

	t.Run("OK", func(t *testing.T) {
		reps := rollup(t, db, day1.Add(17*time.Hour), day2)
		if got := readSummaries(t, db); !reflect.DeepEqual(got, want) {
			t.Fatalf("summaries\n got %+v\nwant %+v", got, want)
		}
		want1 := usage.Report{Date: "2024-03-10", Rows: 4, Tenants: 2, Calls: 7, Tokens: 4530,
			Cost: budget.MustParseTotal("1.175559"), CostDec: "1.175559"}
		if reps[0] != want1 {
			t.Errorf("day1 report %+v, want %+v", reps[0], want1)
		}
		if reps[1].Calls != 4 || reps[1].CostDec != "0.335336" {
			t.Errorf("day2 report %+v", reps[1])
		}
		// Billing: tenant 1 day1 = 0.002049 + 0.173458 = 0.175507 -> 0.1755;
		// tenant 2 day1 = 1.000052 -> 1.0001; day2: 0.002000 -> 0.0020, 0.333336 -> 0.3333.
		if got, want := billing(t, db), []string{
			"1 2024-03-10 ai_usage 4470.0000 0.1755 pending 0.175507",
			"2 2024-03-10 ai_usage 60.0000 1.0001 pending 1.000052",
			"1 2024-03-11 ai_usage 100.0000 0.0020 pending 0.002000",
			"2 2024-03-11 ai_usage 16.0000 0.3333 pending 0.333336",
		}; !reflect.DeepEqual(got, want) {
			t.Errorf("billing\n got %q\nwant %q", got, want)
		}
		var calls int
		var cost string
		if err := db.QueryRow("SELECT ai_calls, ai_cost FROM tenant_statistics WHERE tenant_id = 2 AND stat_date = '2024-03-10'").Scan(&calls, &cost); err != nil || calls != 2 || cost != "1.000052" {
			t.Errorf("tenant statistics: %d calls, cost %s (%v)", calls, cost, err)
		}
	})

	t.Run("Rerun", func(t *testing.T) {
		before := [][][]sql.NullString{dump(t, db, "tenant_ai_usage_summary"), dump(t, db, "billing_records"), dump(t, db, "tenant_statistics")}
		rollup(t, db, day1, day2, day1)
		after := [][][]sql.NullString{dump(t, db, "tenant_ai_usage_summary"), dump(t, db, "billing_records"), dump(t, db, "tenant_statistics")}
		if !reflect.DeepEqual(before, after) {
			t.Fatalf("a second run changed the rows\nbefore %v\n after %v", before, after)
		}
	})

	t.Run("LateRow", func(t *testing.T) {
		insertLogs(t, db, callLog{2, 2, 11, 22, "0.000007", 110, "success", "2024-03-10 22:00:00.000"})
		rollup(t, db, day1, day2)
		w := append([]summary(nil), want...)
		w[3] = summary{2, 2, "2024-03-10", 2, 2, 0, 18, 25, 43, "1.000008", 100, "1.0000"}
		if got := readSummaries(t, db); !reflect.DeepEqual(got, w) {
			t.Fatalf("summaries after a late row\n got %+v\nwant %+v", got, w)
		}
		if got := billing(t, db)[1]; got != "2 2024-03-10 ai_usage 93.0000 1.0001 pending 1.000059" {
			t.Errorf("billing after a late row: %q", got)
		}
	})
}

// A billing record that has been charged keeps its amount; a call log of
// a tenant that does not exist is summarized but not billed; a call log
// without a model counts under model 0.
func TestRollupEdges(t *testing.T) {
	t.Parallel()
	db := newDB(t)
	insertLogs(t, db,
		callLog{1, 1, 1, 1, "0.500000", 10, "success", "2024-03-10 01:00:00.000"},
		callLog{99, 1, 1, 1, "0.100000", 10, "success", "2024-03-10 01:00:00.000"},
	)
	if _, err := db.Exec("INSERT INTO ai_service_call_logs (request_id, tenant_id, model_name, provider, cost, status, created_at) VALUES ('nomodel', 2, 'gone', 'openai', 0.25, 'success', '2024-03-10 02:00:00')"); err != nil {
		t.Fatal(err)
	}
	rollup(t, db, day1)
	if _, err := db.Exec("UPDATE billing_records SET status = 'charged' WHERE tenant_id = 1"); err != nil {
		t.Fatal(err)
	}
	insertLogs(t, db, callLog{1, 1, 1, 1, "0.500000", 10, "success", "2024-03-10 03:00:00.000"})
	rep := rollup(t, db, day1)[0]
	if rep.Tenants != 3 || rep.CostDec != "1.350000" {
		t.Errorf("report %+v", rep)
	}
	got := billing(t, db)
	if want := []string{
		"1 2024-03-10 ai_usage 2.0000 0.5000 charged 0.500000",
		"2 2024-03-10 ai_usage 0.0000 0.2500 pending 0.250000",
	}; !reflect.DeepEqual(got, want) {
		t.Errorf("billing\n got %q\nwant %q", got, want)
	}
	var name string
	if err := db.QueryRow("SELECT model_name FROM tenant_ai_usage_summary WHERE tenant_id = 2 AND model_id = 0").Scan(&name); err != nil || name != "gone" {
		t.Errorf("unknown model row: %q (%v)", name, err)
	}
}

// The largest amount a call can cost (budget.MaxAmount: Estimate and Cost
// saturate there, and an account holds no more) is recorded exactly at
// every step: the call logs, the day's summary of several such calls, the
// tenant's statistics and billing record, and the report.
func TestRollupMaxAmount(t *testing.T) {
	t.Parallel()
	db := newDB(t)
	most := budget.MaxAmount.String() // 9999999999.999900
	insertLogs(t, db,
		callLog{1, 1, 1, 1, most, 10, "success", "2024-03-10 01:00:00.000"},
		callLog{1, 1, 1, 1, most, 10, "error", "2024-03-10 02:00:00.000"},
		callLog{1, 2, 1, 1, most, 10, "success", "2024-03-10 03:00:00.000"},
		callLog{2, 1, 1, 1, "0.000001", 10, "success", "2024-03-10 04:00:00.000"},
	)
	rep := rollup(t, db, day1)[0]
	if want := budget.MustParseTotal("29999999999.999701"); rep.Cost != want || rep.CostDec != want.String() {
		t.Errorf("report cost %s (%q), want %s", rep.Cost, rep.CostDec, want)
	}
	got := readSummaries(t, db)
	if len(got) != 3 || got[0].Cost != "19999999999.999800" || got[1].Cost != most || got[2].Cost != "0.000001" {
		t.Fatalf("summaries %+v", got)
	}
	var cost string
	if err := db.QueryRow("SELECT ai_cost FROM tenant_statistics WHERE tenant_id = 1 AND stat_date = '2024-03-10'").Scan(&cost); err != nil || cost != "29999999999.999700" {
		t.Errorf("tenant statistics cost %s (%v), want 29999999999.999700", cost, err)
	}
	if got, want := billing(t, db), []string{
		"1 2024-03-10 ai_usage 6.0000 29999999999.9997 pending 29999999999.999700",
		"2 2024-03-10 ai_usage 2.0000 0.0000 pending 0.000001",
	}; !reflect.DeepEqual(got, want) {
		t.Errorf("billing\n got %q\nwant %q", got, want)
	}
}

func billing(t *testing.T, db *sql.DB) []string {
	t.Helper()
	rows, err := db.Query("SELECT tenant_id, DATE_FORMAT(billing_date, '%Y-%m-%d'), category, quantity, amount, status, JSON_UNQUOTE(JSON_EXTRACT(details, '$.cost')) FROM billing_records ORDER BY billing_date, tenant_id")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		f := make([]string, 7)
		if err := rows.Scan(&f[0], &f[1], &f[2], &f[3], &f[4], &f[5], &f[6]); err != nil {
			t.Fatal(err)
		}
		out = append(out, strings.Join(f, " "))
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// rollupNow is when the roll-ups of day1 and day2 run: after both.
var rollupNow = day2.AddDate(0, 0, 1).Add(time.Hour)

// TestMemberStatistics: the member columns of tenant_statistics, for every
// tenant that existed on the day, from the memberships and the login
// history; a finished day's user_count is the one counted on the first run
// after it and stays, while today's follows the memberships.
func TestMemberStatistics(t *testing.T) {
	t.Parallel()
	db := newDB(t)
	exec := func(q string, args ...any) {
		t.Helper()
		if _, err := db.Exec(q, args...); err != nil {
			t.Fatal(err)
		}
	}
	exec("UPDATE tenants SET created_at = '2024-03-01'")
	exec(`INSERT INTO tenants (id, tenant_code, tenant_name, subdomain, created_at, deleted_at) VALUES
		(3, 'u003', 'u003', 'u003', '2024-03-10 12:00:00', NULL),   -- made during day1
		(4, 'u004', 'u004', 'u004', '2024-03-12 00:00:00', NULL),   -- made after both days
		(5, 'u005', 'u005', 'u005', '2024-03-01 00:00:00', '2024-03-09 23:59:59')`) // deleted before
	for u := 1; u <= 4; u++ {
		exec("INSERT INTO global_users (id, phone, password_hash) VALUES (?, ?, 'x')", u, fmt.Sprintf("1380000000%d", u))
	}
	exec(`INSERT INTO global_user_tenant_relations (global_user_id, tenant_id, tenant_code, status, created_at) VALUES
		(1, 1, 'u001', 'active', '2024-03-01 00:00:00'),
		(2, 1, 'u001', 'active', '2024-03-10 15:00:00'),
		(3, 1, 'u001', 'removed', '2024-03-01 00:00:00'),
		(4, 1, 'u001', 'active', '2024-03-11 05:00:00'),   -- joined on day2
		(1, 2, 'u002', 'active', '2024-03-01 00:00:00'),
		(1, 5, 'u005', 'active', '2024-03-01 00:00:00')`)
	login := func(subject string, user, tenant int64, method string, ok bool, at string) {
		t.Helper()
		exec(`INSERT INTO login_history (subject_type, subject_id, identifier, tenant_id, login_method, success, created_at)
			VALUES (?, ?, 'x', ?, ?, ?, ?)`, subject, user, tenant, method, ok, at)
	}
	login("user", 1, 1, "tenant_switch", true, "2024-03-10 00:00:00")
	login("user", 1, 1, "tenant_switch", true, "2024-03-10 20:00:00")
	login("user", 2, 1, "refresh", true, "2024-03-10 21:00:00")        // active, not an entry
	login("user", 3, 1, "tenant_switch", false, "2024-03-10 22:00:00") // refused: neither
	login("admin", 9, 1, "tenant_switch", true, "2024-03-10 22:00:00") // not a member
	login("user", 1, 2, "tenant_switch", true, "2024-03-09 23:59:59")  // the day before
	login("user", 1, 1, "tenant_switch", true, "2024-03-11 00:00:00")

	type stat struct {
		tenant                int64
		date                  string
		users, active, logins int
	}
	read := func() []stat {
		t.Helper()
		rows, err := db.Query("SELECT tenant_id, DATE_FORMAT(stat_date, '%Y-%m-%d'), user_count, active_users, login_count FROM tenant_statistics ORDER BY stat_date, tenant_id")
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		var out []stat
		for rows.Next() {
			var s stat
			if err := rows.Scan(&s.tenant, &s.date, &s.users, &s.active, &s.logins); err != nil {
				t.Fatal(err)
			}
			out = append(out, s)
		}
		if err := rows.Err(); err != nil {
			t.Fatal(err)
		}
		return out
	}
	run := func(now time.Time, days ...time.Time) {
		t.Helper()
		for _, d := range days {
			if _, err := usage.Rollup(context.Background(), db, d, now); err != nil {
				t.Fatal(err)
			}
		}
	}

	// The first run after day1, during day2.
	during2 := day2.Add(6 * time.Hour)
	run(during2, day1, day2)
	want := []stat{
		{1, "2024-03-10", 2, 2, 2}, {2, "2024-03-10", 1, 0, 0}, {3, "2024-03-10", 0, 0, 0},
		{1, "2024-03-11", 3, 1, 1}, {2, "2024-03-11", 1, 0, 0}, {3, "2024-03-11", 0, 0, 0},
	}
	if got := read(); !reflect.DeepEqual(got, want) {
		t.Fatalf("member statistics\n got %+v\nwant %+v", got, want)
	}
	before := dump(t, db, "tenant_statistics")
	run(during2, day1, day2)
	if after := dump(t, db, "tenant_statistics"); !reflect.DeepEqual(before, after) {
		t.Fatalf("a second run changed the rows\nbefore %v\n after %v", before, after)
	}

	// A member leaves during day2: day1 keeps its count, day2 follows.
	exec("UPDATE global_user_tenant_relations SET status = 'removed' WHERE global_user_id = 2 AND tenant_id = 1")
	login("user", 4, 1, "tenant_switch", true, "2024-03-11 09:00:00")
	run(during2.Add(4*time.Hour), day1, day2)
	want[3] = stat{1, "2024-03-11", 2, 2, 2}
	if got := read(); !reflect.DeepEqual(got, want) {
		t.Fatalf("after a member left on day2\n got %+v\nwant %+v", got, want)
	}
}
