package main

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/unitenant/unitenant/shared/budget"
)

// A reservation the run settles at call logs that cost more than it held
// is charged what it held, and the excess is logged as a warning and
// reported in the run's result, not dropped.
func TestJobWarnsOfOverruns(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := newSystem(t,
		"INSERT INTO tenants (id, tenant_code, tenant_name, subdomain) VALUES (1, 'u001', 'u001', 'u001')",
		"INSERT INTO tenant_accounts (tenant_id, balance, credit_limit) VALUES (1, 10, 0)",
	)
	for _, r := range []struct{ request, cost string }{{"req-over", "1.3"}, {"req-under", "0.5"}} {
		if _, err := budget.Reserve(ctx, db, 1, r.request, budget.MustParseAmount("1"), time.Minute); err != nil {
			t.Fatal(err)
		}
		if _, err := db.Exec(`INSERT INTO ai_service_call_logs (request_id, tenant_id, model_id, model_name, provider, cost, status)
			VALUES (?, 1, 1, 'm', 'openai', ?, 'success')`, r.request, r.cost); err != nil {
			t.Fatal(err)
		}
	}
	var logs bytes.Buffer
	later := time.Now().Add(2 * time.Hour)
	j := &job{db: db, log: slog.New(slog.NewJSONHandler(&logs, nil)), now: func() time.Time { return later }}

	out, err := j.run(ctx)
	if err != nil {
		t.Fatalf("run: %v", err)
	}
	if rec := out.(result).Reconcile; rec.Settled != 2 || rec.Charged != "1.500000" {
		t.Errorf("reconcile %+v, want 2 settled charging 1.500000", rec)
	}
	if got := overrunJSON(t, out); got != `{"overrun":"0.300000","overruns":1}` {
		t.Errorf("result's reconcile overruns %s, want 1 of 0.300000", got)
	}
	var warned int
	for line := range strings.Lines(logs.String()) {
		var l map[string]any
		if err := json.Unmarshal([]byte(line), &l); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		if l["level"] == "WARN" && l["reservations"] == float64(1) && l["uncharged"] == "0.300000" {
			warned++
		}
	}
	if warned != 1 {
		t.Errorf("%d warnings of 1 overrun of 0.300000, want 1; logs:\n%s", warned, logs.String())
	}

	logs.Reset()
	again, err := j.run(ctx)
	if err != nil {
		t.Fatalf("second run: %v", err)
	}
	if got := overrunJSON(t, again); got != `{"overrun":"0.000000","overruns":0}` {
		t.Errorf("second run's reconcile overruns %s, want none", got)
	}
	if strings.Contains(logs.String(), `"level":"WARN"`) {
		t.Errorf("second run warned, with nothing to reconcile:\n%s", logs.String())
	}
}

// overrunJSON is the overruns and overrun of the reconcile report in the
// JSON of a run's result, as the run prints it; absent ones are left out.
func overrunJSON(t *testing.T, out any) string {
	t.Helper()
	b, err := json.Marshal(out)
	if err != nil {
		t.Fatal(err)
	}
	var res struct {
		Reconcile map[string]json.RawMessage `json:"reconcile"`
	}
	if err := json.Unmarshal(b, &res); err != nil {
		t.Fatalf("result %s: %v", b, err)
	}
	got := map[string]json.RawMessage{}
	for _, k := range []string{"overruns", "overrun"} {
		if v, ok := res.Reconcile[k]; ok {
			got[k] = v
		}
	}
	b, _ = json.Marshal(got)
	return string(b)
}
