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
// is charged what it held, and the excess is logged as a warning, not
// dropped.
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
	if _, err := j.run(ctx); err != nil {
		t.Fatalf("second run: %v", err)
	}
	if strings.Contains(logs.String(), `"level":"WARN"`) {
		t.Errorf("second run warned, with nothing to reconcile:\n%s", logs.String())
	}
}
