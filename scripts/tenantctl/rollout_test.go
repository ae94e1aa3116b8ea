package main

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/unitenant/unitenant/infra/schema"
	"github.com/unitenant/unitenant/shared/migration"
	"github.com/unitenant/unitenant/shared/rollout"
)

// migrate tenants rolls out to every tenant behind and prints the report;
// migrate status shows the fleet by version and the failures with their
// errors.
func TestMigrateTenantsAndStatus(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	e.mustRun("tenant", "add", "--code", "k001", "--name", "One", "--contact-phone", "13900000000")
	e.mustRun("tenant", "add", "--code", "k002", "--name", "Two", "--contact-phone", "13900000000")
	ms, err := schema.Tenant()
	if err != nil {
		t.Fatal(err)
	}
	latest := migration.Latest(ms)

	// k001's mirror says it is behind (its database is not): the roll-out
	// connects, applies nothing, and corrects the mirror. k002's database is
	// gone: it fails, within the budget, and is reported.
	for _, q := range []string{
		"UPDATE tenant_databases d JOIN tenants t ON t.id = d.tenant_id SET d.schema_version = 1 WHERE t.tenant_code = 'k001'",
		"UPDATE tenant_databases d JOIN tenants t ON t.id = d.tenant_id SET d.schema_version = 1, d.database_name = CONCAT(d.database_name, '_gone') WHERE t.tenant_code = 'k002'",
	} {
		if _, err := e.sys.Exec(q); err != nil {
			t.Fatal(err)
		}
	}
	out, err := e.run("migrate", "tenants", "--concurrency", "2", "--failure-budget", "5")
	if err == nil || !strings.Contains(err.Error(), "k002") {
		t.Fatalf("migrate tenants: err = %v, want k002's failure", err)
	}
	var rep rollout.Report
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("report %q: %v", out, err)
	}
	if rep.Target != latest || rep.Succeeded != 1 || len(rep.Failures) != 1 || rep.Failures[0].Code != "k002" ||
		!strings.Contains(rep.Failures[0].Error, "Unknown database") || len(rep.Templates) != 1 {
		t.Fatalf("report %+v", rep)
	}

	out = e.mustRun("migrate", "status")
	var fleet rollout.Fleet
	if err := json.Unmarshal([]byte(out), &fleet); err != nil {
		t.Fatalf("status %q: %v", out, err)
	}
	want := []rollout.VersionCount{{Version: 1, Tenants: 1}, {Version: latest, Tenants: 1}}
	if len(fleet.Versions) != 2 || fleet.Versions[0] != want[0] || fleet.Versions[1] != want[1] || fleet.Behind != 1 {
		t.Errorf("versions %+v, want %+v", fleet.Versions, want)
	}
	if len(fleet.Failures) != 1 || fleet.Failures[0].Code != "k002" || !strings.Contains(fleet.Failures[0].Error, "Unknown database") {
		t.Errorf("failures %+v", fleet.Failures)
	}
	if fleet.LastRollout == nil || fleet.LastRollout.Status != rollout.StatusFailed {
		t.Errorf("last roll-out %+v", fleet.LastRollout)
	}

	if _, err := e.run("migrate", "sideways", "x"); err == nil {
		t.Error("migrate sideways: want a usage error")
	}
	if _, err := e.run("migrate", "status", "extra"); err == nil {
		t.Error("migrate status extra: want a usage error")
	}
}
