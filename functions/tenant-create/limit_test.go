package main

import (
	"fmt"
	"sync"
	"testing"

	"github.com/unitenant/unitenant/shared/auth"
)

// One account may hold only so many tenants it created itself: a user who
// fires creations at once, each with a good SMS code, gets no more than the
// limit, and a refused creation spends nothing (its code stays good). Tenants
// an admin made for the user count against nobody; deleted ones count until
// they are purged.
func TestUserMayCreateOnlySoManyTenants(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.pipe.MaxTenantsPerUser = 2
	user := f.token(t, auth.KindUser, f.userID, auth.AudiencePlatform, "")

	// An admin's tenant whose contact is the user: the user is its admin,
	// not its creator.
	admin := f.token(t, auth.KindAdmin, 1, auth.AudienceAdmin, "admin")
	if r := f.do(t, "POST", "/api/tenants", admin, "", body("k100", ownerPhone, "")); r.status != 201 {
		t.Fatalf("admin's create: %d %s", r.status, r.raw)
	}

	const n = 5
	phones, codes := make([]string, n), make([]string, n)
	for i := range n {
		phones[i] = fmt.Sprintf("1385555000%d", i)
		codes[i] = f.smsCode(t, phones[i])
	}
	type outcome struct {
		i      int
		status int
		code   string
	}
	out := make(chan outcome, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := f.do(t, "POST", "/api/tenants", user, "", body(fmt.Sprintf("k11%d", i), phones[i], codes[i]))
			out <- outcome{i, r.status, r.env.Error.Code}
		}()
	}
	wg.Wait()
	close(out)
	var refused []int
	made := 0
	for o := range out {
		switch {
		case o.status == 201 || o.status == 202:
			made++
		case o.status == 403 && o.code == "tenant_limit_reached":
			refused = append(refused, o.i)
		default:
			t.Errorf("create %d: %d %s", o.i, o.status, o.code)
		}
	}
	if made != 2 || len(refused) != n-2 {
		t.Fatalf("%d created, %d refused: want 2 and %d", made, len(refused), n-2)
	}
	if got := f.count(t, fmt.Sprintf("SELECT COUNT(*) FROM tenants WHERE created_by_user = %d", f.userID)); got != 2 {
		t.Fatalf("the user created %d tenants, want 2", got)
	}
	if got := f.count(t, "SELECT COUNT(*) FROM tenants"); got != 3 {
		t.Fatalf("%d tenants in all, want 3 (the admin's and the user's 2)", got)
	}

	// A deleted tenant still counts: it may be restored.
	var mine string
	if err := f.sys.DB.QueryRow("SELECT tenant_code FROM tenants WHERE created_by_user = ? ORDER BY id LIMIT 1", f.userID).Scan(&mine); err != nil {
		t.Fatal(err)
	}
	f.exec(t, "UPDATE tenants SET status = 'deleted' WHERE tenant_code = ?", mine)
	again := refused[0]
	if r := f.do(t, "POST", "/api/tenants", user, "", body(fmt.Sprintf("k11%d", again), phones[again], codes[again])); r.status != 403 || r.env.Error.Code != "tenant_limit_reached" {
		t.Fatalf("with a deleted tenant: %d %s", r.status, r.raw)
	}
	// Purged, it frees its place, and the code refused before was never spent.
	f.exec(t, "UPDATE tenants SET status = 'purged' WHERE tenant_code = ?", mine)
	if r := f.do(t, "POST", "/api/tenants", user, "", body(fmt.Sprintf("k11%d", again), phones[again], codes[again])); r.status != 201 {
		t.Fatalf("after the purge: %d %s", r.status, r.raw)
	}
	// The limit is the creator's: an admin still creates for the user.
	if r := f.do(t, "POST", "/api/tenants", admin, "", body("k101", ownerPhone, "")); r.status != 201 {
		t.Fatalf("admin's create past the user's limit: %d %s", r.status, r.raw)
	}
}

func (f *fixture) exec(t *testing.T, q string, args ...any) {
	t.Helper()
	if _, err := f.sys.DB.Exec(q, args...); err != nil {
		t.Fatal(err)
	}
}
