package provisioning_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/unitenant/unitenant/shared/fault"
	"github.com/unitenant/unitenant/shared/logging"
	"github.com/unitenant/unitenant/shared/provisioning"
)

// Two runs of one tenant's provisioning overlap: run A stalled just before
// taking a warm database until its lease expired, and provision-cron's run
// B took the tenant over and finished it on a warm database. Meanwhile a
// refill made an older warm database claimable again, first in the pool.
// When A goes on it must neither take a database for the tenant nor hand
// B's back to the pool, where the next tenant would be given the first
// one's database, data and all; nor may it mark the finished tenant failed.
//
// The runs are driven step by step: B runs inside A's hook at the point
// where A is about to take a database.
func TestStaleRunNeitherTakesNorReturnsAWarmDatabase(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	h := newHarness(t)
	if _, err := provisioning.EnsureClusterTemplate(ctx, h.sys, h.box, h.clusterID, h.template, logging.Discard()); err != nil {
		t.Fatal(err)
	}
	if _, err := provisioning.RefillPool(ctx, h.sys, h.box, h.clusterID, h.template, 2, h.prefix, logging.Discard()); err != nil {
		t.Fatal(err)
	}
	// The older warm database is recorded a version behind (made before the
	// template's last migration, as a refill finds it): no claim takes it
	// until a refill has upgraded it.
	var older string
	if err := h.sys.QueryRow("SELECT database_name FROM warm_pool_databases WHERE status = 'ready' ORDER BY id LIMIT 1").Scan(&older); err != nil {
		t.Fatal(err)
	}
	if _, err := h.sys.Exec("UPDATE warm_pool_databases SET schema_version = schema_version - 1 WHERE database_name = ?", older); err != nil {
		t.Fatal(err)
	}

	a := h.pipeline("api") // its lease ends a minute after h.now
	stalled := false
	a.Crash = func(step string) error {
		if step != "database:claim" || stalled {
			return nil
		}
		stalled = true
		b := h.pipeline("provision-cron")
		b.Now = func() time.Time { return h.now.Add(2 * time.Minute) }
		if done, err := b.Resume(ctx, 10); err != nil || !slices.Equal(done, []string{"k001"}) {
			t.Errorf("run B: resumed %v, %v; want k001 finished", done, err)
		}
		rep, err := provisioning.RefillPool(ctx, h.sys, h.box, h.clusterID, h.template, 1, h.prefix, logging.Discard())
		if err != nil || rep.Upgraded != 1 || rep.Ready != 1 {
			t.Errorf("refill: %+v, %v; want the older database upgraded and ready", rep, err)
		}
		return nil
	}
	if _, err := a.Start(ctx, request("k001", "basic", h.userID)); err != nil {
		t.Fatal(err)
	}
	err := a.Run(ctx, "k001")
	if !stalled {
		t.Fatal("run A never reached the point where it takes a warm database")
	}
	if fault.CodeOf(err) != "provisioning_lease_lost" {
		t.Errorf("run A: err = %v, want provisioning_lease_lost", err)
	}

	var tenantID int64
	var inUse string
	if err := h.sys.QueryRow(`SELECT t.id, d.database_name FROM tenants t JOIN tenant_databases d ON d.tenant_id = t.id
		WHERE t.tenant_code = 'k001'`).Scan(&tenantID, &inUse); err != nil {
		t.Fatal(err)
	}
	var status string
	var claimedBy *int64
	if err := h.sys.QueryRow("SELECT status, claimed_by_tenant_id FROM warm_pool_databases WHERE database_name = ?", inUse).Scan(&status, &claimedBy); err != nil {
		t.Fatal(err)
	}
	if status != "claimed" || claimedBy == nil || *claimedBy != tenantID {
		t.Errorf("k001's database %s is %s (claimed by %v) in the pool, want claimed by %d", inUse, status, claimedBy, tenantID)
	}
	if n := count(t, h.sys, "SELECT COUNT(*) FROM warm_pool_databases WHERE claimed_by_tenant_id = ?", tenantID); n != 1 {
		t.Errorf("k001 holds %d warm databases, want 1", n)
	}
	if s := h.snapshot(t, "k001"); s.Status != "active" || s.Progress != "completed" || len(s.CreatedEvents) != 1 {
		t.Errorf("k001 is %s, its provisioning %s, %d tenant.created events: want active, completed, 1", s.Status, s.Progress, len(s.CreatedEvents))
	}

	// The next tenant gets the other warm database, not k001's.
	h.create(t, h.pipeline("api"), "k002", "basic")
	var next string
	if err := h.sys.QueryRow("SELECT d.database_name FROM tenant_databases d JOIN tenants t ON t.id = d.tenant_id WHERE t.tenant_code = 'k002'").Scan(&next); err != nil {
		t.Fatal(err)
	}
	if next == inUse || next != older {
		t.Errorf("k002 was given %s; k001 has %s, the pool's other database is %s", next, inUse, older)
	}
	var name string
	if err := h.server.QueryRow("SELECT config_value FROM `" + inUse + "`.tenant_config WHERE config_key = 'tenant.name'").Scan(&name); err != nil || name != "Kindergarten k001" {
		t.Errorf("k001's tenant.name is %q (%v)", name, err)
	}
}

// databases lists the server's databases named with h's prefix.
func (h *harness) databases(t *testing.T) []string {
	t.Helper()
	rows, err := h.server.Query("SELECT SCHEMA_NAME FROM information_schema.SCHEMATA ORDER BY SCHEMA_NAME")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			t.Fatal(err)
		}
		if strings.HasPrefix(n, h.prefix) {
			out = append(out, strings.TrimPrefix(n, h.prefix))
		}
	}
	return out
}

// A run of k001's provisioning finds no warm database and stalls about to
// clone one, or with its clone made and not yet recorded, until its lease
// has expired. Meanwhile:
//
//   - taken over: provision-cron's run took k001 over and finished it, on a
//     clone of its own, seeded and recorded as k001's database;
//   - aborted: an operator aborted k001's provisioning;
//   - died: the stalled run was killed there instead, and provision-cron's
//     run finished k001 later.
//
// The stalled run, going on, must neither drop nor replace k001's database
// (a new clone in place of the seeded one would lose the tenant's data),
// nor leave a clone it can no longer record: in the end the server holds
// the template and, unless aborted, k001's database, whole and seeded.
//
// The runs are driven through the pipeline's hook points: what happens
// meanwhile happens in the stalled run's hook.
func TestStaleCloneLeavesTheTenantsDatabaseAlone(t *testing.T) {
	t.Parallel()
	for _, stall := range []string{"database:clone", "database:cloned"} {
		for _, meanwhile := range []string{"taken_over", "aborted", "died"} {
			t.Run(strings.ReplaceAll(stall, ":", "_")+"/"+meanwhile, func(t *testing.T) {
				t.Parallel()
				ctx := context.Background()
				h := newHarness(t)
				if _, err := provisioning.EnsureClusterTemplate(ctx, h.sys, h.box, h.clusterID, h.template, logging.Discard()); err != nil {
					t.Fatal(err)
				}
				later := h.pipeline("provision-cron") // after the stalled run's lease
				later.Now = func() time.Time { return h.now.Add(2 * time.Minute) }
				a := h.pipeline("api")
				stalled := false
				a.Crash = func(step string) error {
					if step != stall || stalled {
						return nil
					}
					stalled = true
					switch meanwhile {
					case "taken_over":
						if done, err := later.Resume(ctx, 10); err != nil || !slices.Equal(done, []string{"k001"}) {
							t.Errorf("run B: resumed %v, %v; want k001 finished", done, err)
						}
					case "aborted":
						if err := later.Abort(ctx, "k001"); err != nil {
							t.Errorf("abort: %v", err)
						}
					case "died":
						return errors.New("killed")
					}
					return nil
				}
				if _, err := a.Start(ctx, request("k001", "basic", h.userID)); err != nil {
					t.Fatal(err)
				}
				err := a.Run(ctx, "k001")
				if !stalled {
					t.Fatalf("run A never reached %s", stall)
				}
				if meanwhile == "died" {
					if done, err := later.Resume(ctx, 10); err != nil || !slices.Equal(done, []string{"k001"}) {
						t.Fatalf("run B: resumed %v, %v; want k001 finished", done, err)
					}
				} else if fault.CodeOf(err) != "provisioning_lease_lost" {
					t.Errorf("run A: err = %v, want provisioning_lease_lost", err)
				}

				want := []string{"k001", "template"}
				if meanwhile == "aborted" {
					want = []string{"template"}
				}
				if got := h.databases(t); !slices.Equal(got, want) {
					t.Errorf("databases %v, want %v: a clone was left behind or k001's was lost", got, want)
				}
				if n := count(t, h.sys, "SELECT COUNT(*) FROM warm_pool_databases WHERE status NOT IN ('discarded')"); n != 0 {
					t.Errorf("%d clones still recorded as to be dropped", n)
				}
				if meanwhile == "aborted" {
					if n := count(t, h.sys, "SELECT COUNT(*) FROM tenants WHERE tenant_code = 'k001'"); n != 0 {
						t.Error("k001 is still there after the abort")
					}
					return
				}
				var name string
				if err := h.server.QueryRow("SELECT config_value FROM `" + h.prefix + "k001`.tenant_config WHERE config_key = 'tenant.name'").Scan(&name); err != nil || name != "Kindergarten k001" {
					t.Fatalf("k001's tenant.name is %q (%v): its seeded database was replaced", name, err)
				}
				s := h.snapshot(t, "k001")
				if s.Status != "active" || s.Progress != "completed" || s.Differences != 0 || s.Campuses != 1 || len(s.AdminRoles) == 0 {
					t.Errorf("k001: %+v; want active, completed, equal to the template, seeded", s)
				}
			})
		}
	}
}
