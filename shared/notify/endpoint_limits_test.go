package notify_test

import (
	"context"
	"fmt"
	"sync"
	"testing"

	"github.com/unitenant/unitenant/shared/fault"
	"github.com/unitenant/unitenant/shared/notify"
)

// TestEndpointsCapped: a tenant has at most MaxEndpointsPerTenant endpoints,
// and so do the platform-wide ones; racing adds at the limit are counted one
// after another, so exactly one gets the last place; the refusal is a
// Conflict too_many_webhooks that stores nothing; a tenant's place is not
// another's.
func TestEndpointsCapped(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db, box := newSystem(t)
	var tenants [2]int64
	for i, code := range []string{"k001", "k002"} {
		res, err := db.Exec("INSERT INTO tenants (tenant_code, tenant_name, subdomain, status) VALUES (?, ?, ?, 'active')", code, code, code)
		if err != nil {
			t.Fatal(err)
		}
		tenants[i], _ = res.LastInsertId()
	}
	count := func(tenantID int64) int {
		t.Helper()
		var n int
		q, args := "SELECT COUNT(*) FROM webhook_endpoints WHERE tenant_id = ?", []any{tenantID}
		if tenantID == 0 {
			q, args = "SELECT COUNT(*) FROM webhook_endpoints WHERE tenant_id IS NULL", nil
		}
		if err := db.QueryRow(q, args...).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	for name, tenantID := range map[string]int64{"Tenant": tenants[0], "PlatformWide": 0} {
		t.Run(name, func(t *testing.T) {
			add := func(i int) error {
				_, err := notify.AddEndpoint(ctx, db, box, notify.Endpoint{TenantID: tenantID, URL: fmt.Sprintf("https://hooks.example.com/%s/%d", name, i),
					Secret: "a-long-enough-secret"})
				return err
			}
			for i := range notify.MaxEndpointsPerTenant - 1 {
				if err := add(i); err != nil {
					t.Fatal(err)
				}
			}
			const racers = 8
			errs := make(chan error, racers)
			var wg sync.WaitGroup
			for i := range racers {
				wg.Add(1)
				go func() { defer wg.Done(); errs <- add(100 + i) }()
			}
			wg.Wait()
			close(errs)
			ok := 0
			for err := range errs {
				if err == nil {
					ok++
				} else if fe, isFault := fault.As(err); !isFault || fe.Kind != fault.Conflict || fe.Code != "too_many_webhooks" {
					t.Errorf("racer: %v, want a Conflict too_many_webhooks", err)
				}
			}
			if ok != 1 || count(tenantID) != notify.MaxEndpointsPerTenant {
				t.Fatalf("%d racers got in, %d endpoints; want 1 and %d", ok, count(tenantID), notify.MaxEndpointsPerTenant)
			}
		})
	}
	if n := count(tenants[1]); n != 0 {
		t.Fatalf("k002 has %d endpoints", n)
	}
	if _, err := notify.AddEndpoint(ctx, db, box, notify.Endpoint{TenantID: tenants[1], URL: "https://hooks.example.com/k002",
		Secret: "a-long-enough-secret"}); err != nil {
		t.Fatalf("k002 is not k001: %v", err)
	}
}

// TestListEndpointsPage: one tenant's endpoints page by page, oldest first,
// with their total; a page past the end is empty; bad bounds are refused.
func TestListEndpointsPage(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db, box := newSystem(t)
	res, err := db.Exec("INSERT INTO tenants (tenant_code, tenant_name, subdomain, status) VALUES ('k001', 'k001', 'k001', 'active')")
	if err != nil {
		t.Fatal(err)
	}
	k1, _ := res.LastInsertId()
	var mine []int64
	for i := range 5 {
		mine = append(mine, addEndpoint(t, db, box, fmt.Sprintf("https://a.example.com/%d", i), "a-long-enough-secret", k1))
		addEndpoint(t, db, box, fmt.Sprintf("https://p.example.com/%d", i), "a-long-enough-secret", 0)
	}
	var got []int64
	for offset := 0; offset < 8; offset += 2 {
		eps, total, err := notify.ListEndpointsPage(ctx, db, k1, offset, 2)
		if err != nil {
			t.Fatal(err)
		}
		if total != 5 {
			t.Errorf("offset %d: total %d, want 5", offset, total)
		}
		for _, ep := range eps {
			got = append(got, ep.ID)
		}
	}
	if fmt.Sprint(got) != fmt.Sprint(mine) {
		t.Errorf("pages hold %v, want %v", got, mine)
	}
	if eps, total, err := notify.ListEndpointsPage(ctx, db, notify.AllTenants, 0, 100); err != nil || total != 10 || len(eps) != 10 {
		t.Errorf("all: %d of %d (%v), want 10 of 10", len(eps), total, err)
	}
	for _, bad := range [][2]int{{-1, 10}, {0, 0}, {0, -1}} {
		if _, _, err := notify.ListEndpointsPage(ctx, db, k1, bad[0], bad[1]); err == nil {
			t.Errorf("offset %d, limit %d: accepted", bad[0], bad[1])
		}
	}
}
