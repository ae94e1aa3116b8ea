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

// A tenant's detail shows its storage as usage-cron last measured it, with
// its quota: null measuredAt before any measurement.
func TestTenantDetailShowsStorage(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	storage := func(code string) map[string]any {
		t.Helper()
		r := f.do(t, "operator", "GET", "/api/admin/tenants/"+code, nil)
		want(t, r, 200, "")
		var d struct {
			Storage map[string]any `json:"storage"`
		}
		if err := json.Unmarshal(r.Data, &d); err != nil {
			t.Fatal(err)
		}
		return d.Storage
	}
	if s := storage("k001"); s["usedBytes"] != 0.0 || s["objectCount"] != 0.0 || s["measuredAt"] != nil || s["maxStorage"] != nil {
		t.Fatalf("before a measurement: %v", s)
	}
	at := time.Date(2026, 11, 1, 3, 4, 5, 0, time.UTC)
	if _, err := f.sys.DB.Exec(`INSERT INTO tenant_storage_usage (tenant_id, used_bytes, object_count, measured_at)
		SELECT id, 123456789, 42, ? FROM tenants WHERE tenant_code = 'k001'`, at); err != nil {
		t.Fatal(err)
	}
	if _, err := f.sys.DB.Exec("UPDATE tenants SET max_storage = 1073741824 WHERE tenant_code = 'k001'"); err != nil {
		t.Fatal(err)
	}
	s := storage("k001")
	if s["usedBytes"] != 123456789.0 || s["objectCount"] != 42.0 || s["measuredAt"] != "2026-11-01T03:04:05Z" || s["maxStorage"] != 1073741824.0 {
		t.Fatalf("after a measurement: %v", s)
	}
	if s := storage("k002"); s["usedBytes"] != 0.0 || s["measuredAt"] != nil {
		t.Fatalf("k002 shows k001's storage: %v", s)
	}
}
