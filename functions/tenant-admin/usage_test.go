package main

import (
	"encoding/json"
	"testing"
	"time"
)

// The month's AI cost of a tenant is answered exactly, as a JSON number:
// sums a float64 cannot hold (past an Amount's range, too) come back to
// the micro-unit.
func TestTenantAIUsageCostExact(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	today := time.Now().UTC().Format(time.DateOnly)
	for model, cost := range []string{"99999999999999.999999", "99999999999999.999999", "99999999999999.999999", "0.000001"} {
		if _, err := f.sys.DB.Exec(`INSERT INTO tenant_ai_usage_summary (tenant_id, model_id, `+"`date`"+`, total_calls, total_tokens, total_cost)
			SELECT id, ?, ?, 1, 10, ? FROM tenants WHERE tenant_code = 'k001'`, model+1, today, cost); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct{ code, cost string }{{"k001", "299999999999999.999998"}, {"k002", "0.000000"}} {
		r := f.do(t, "operator", "GET", "/api/admin/tenants/"+tc.code, nil)
		want(t, r, 200, "")
		var d struct {
			AIUsage struct {
				Calls, Tokens int64
				Cost          json.RawMessage
			} `json:"aiUsageThisMonth"`
		}
		if err := json.Unmarshal(r.Data, &d); err != nil {
			t.Fatal(err)
		}
		if string(d.AIUsage.Cost) != tc.cost {
			t.Errorf("%s: cost %s, want the JSON number %s", tc.code, d.AIUsage.Cost, tc.cost)
		}
	}
}
