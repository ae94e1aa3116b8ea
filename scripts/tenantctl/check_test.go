package main

import (
	"encoding/json"
	"strings"
	"testing"
)

// check finds a column dropped by hand in one tenant's database and names it.
func TestCheck(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t)
	e.mustRun("migrate", "template")
	e.mustRun("tenant", "add", "--code", "k001", "--name", "One", "--contact-phone", "13900000000")
	e.mustRun("tenant", "add", "--code", "k002", "--name", "Two", "--contact-phone", "13900000000")

	var rep checkReport
	if err := json.Unmarshal([]byte(e.mustRun("check")), &rep); err != nil {
		t.Fatal(err)
	}
	if rep.Checked != 2 || rep.Differ != 0 {
		t.Fatalf("fresh tenants: %+v", rep)
	}

	if _, err := e.tenantDB("k002").Exec("ALTER TABLE classes DROP COLUMN classroom"); err != nil {
		t.Fatal(err)
	}
	out, err := e.run("check")
	if err == nil || !strings.Contains(err.Error(), "1 of 2 tenant databases differ") {
		t.Fatalf("check after a column was dropped: err = %v", err)
	}
	rep = checkReport{}
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("output %q: %v", out, err)
	}
	if len(rep.Tenants) != 2 || !rep.Tenants[0].OK || rep.Tenants[1].OK {
		t.Fatalf("tenants %+v, want k001 ok and k002 not", rep.Tenants)
	}
	k002 := rep.Tenants[1]
	if k002.Tenant != "k002" || len(k002.Differences) != 1 || k002.Differences[0].Message != "missing column classes.classroom" {
		t.Fatalf("k002: %+v, want exactly the missing column classes.classroom", k002)
	}

	t.Run("OneTenant", func(t *testing.T) {
		out := e.mustRun("check", "k001")
		if !strings.Contains(out, `"checked": 1`) || !strings.Contains(out, `"tenant": "k001"`) {
			t.Fatalf("check k001: %s", out)
		}
		if _, err := e.run("check", "k002"); err == nil {
			t.Fatal("check k002 succeeded")
		}
	})
	t.Run("ErrUnknownTenant", func(t *testing.T) {
		if _, err := e.run("check", "k999"); err == nil || !strings.Contains(err.Error(), "k999") {
			t.Fatalf("err = %v", err)
		}
		if _, err := e.run("check", "k001", "k002"); err == nil {
			t.Fatal("two codes: want a usage error")
		}
	})
}
