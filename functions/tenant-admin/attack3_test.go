package main

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/unitenant/unitenant/shared/fault"
	"github.com/unitenant/unitenant/shared/provisioning"
)

// tenantRow is what a change to tenant code could touch, as stored.
func (f *fixture) tenantRow(t *testing.T, code string) string {
	t.Helper()
	var row string
	err := f.sys.DB.QueryRow(`SELECT CONCAT_WS('|', tenant_name, plan_type, IFNULL(max_users, 'null'), IFNULL(max_storage, 'null'),
		IFNULL(contact_name, 'null'), IFNULL(contact_phone, 'null'), IFNULL(contact_email, 'null'), updated_at)
		FROM tenants WHERE tenant_code = ?`, code).Scan(&row)
	if err != nil {
		t.Fatal(err)
	}
	return row
}

// changes is every kind of change PATCH .../tenants/{code} takes.
var changes = map[string]any{"name": "Renamed", "planType": "enterprise", "maxUsers": 5, "maxStorage": nil,
	"contactName": "Wu", "contactPhone": "13811112222", "contactEmail": "wu@example.com"}

// TestDeletedTenantIsNotChanged: a tenant deleted (restorable) or purged
// took a PATCH of its name, plan, limits and contact and a custom domain
// (which would route to it once restored). Both are refused as member
// changes are, 410 tenant_deleted naming the status, with nothing changed
// and nothing audited; a tenant being set up is 503 tenant_provisioning
// (its placement follows the plan it was created with). A suspended tenant
// is still managed, and a restored one is changed again.
func TestDeletedTenantIsNotChanged(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	want(t, f.do(t, "super_admin", "POST", "/api/admin/tenants/k002/delete", map[string]string{"reason": "closed"}), 202, "")
	want(t, f.do(t, "super_admin", "POST", "/api/admin/tenants/k002/delete/confirm", map[string]string{"token": f.confirmationToken(t)}), 200, "")
	if _, err := f.sys.DB.Exec("INSERT INTO tenants (tenant_code, tenant_name, subdomain, status) VALUES ('kpro', 'P', 'kpro', 'provisioning'), ('kgon', 'G', 'kgon', 'purged')"); err != nil {
		t.Fatal(err)
	}
	audits := func() int {
		return f.count(t, "SELECT COUNT(*) FROM audit_logs WHERE action IN ('tenant.update', 'tenant.domain.add')")
	}
	for _, tc := range []struct{ code, status, errCode string }{
		{"k002", "deleted", "tenant_deleted"},
		{"kgon", "purged", "tenant_deleted"},
		{"kpro", "provisioning", "tenant_provisioning"},
	} {
		t.Run(tc.status, func(t *testing.T) {
			before := f.tenantRow(t, tc.code)
			httpStatus := 410
			if tc.status == "provisioning" {
				httpStatus = 503
			}
			for _, r := range []reply{
				f.do(t, "admin", "PATCH", "/api/admin/tenants/"+tc.code, changes),
				f.do(t, "admin", "POST", "/api/admin/tenants/"+tc.code+"/domains", map[string]string{"domain": tc.code + ".example.com"}),
			} {
				if r.Status != httpStatus || r.Error.Code != tc.errCode {
					t.Errorf("got %d %q, want %d %q (%s)", r.Status, r.Error.Code, httpStatus, tc.errCode, r.Data)
				}
				if tc.status != "provisioning" && r.Error.Fields["status"] != tc.status {
					t.Errorf("refused without naming the status: %+v", r.Error)
				}
			}
			if after := f.tenantRow(t, tc.code); after != before {
				t.Errorf("tenant %s %s changed: %s, was %s", tc.code, tc.status, after, before)
			}
			if n := f.count(t, "SELECT COUNT(*) FROM tenant_domains WHERE domain = ?", tc.code+".example.com"); n != 0 {
				t.Errorf("tenant %s %s took a custom domain", tc.code, tc.status)
			}
			if n := audits(); n != 0 {
				t.Errorf("%d audit rows of refused changes", n)
			}
		})
	}

	want(t, f.do(t, "admin", "POST", "/api/admin/tenants/k001/suspend", map[string]string{"reason": "late payment"}), 200, "")
	want(t, f.do(t, "admin", "PATCH", "/api/admin/tenants/k001", map[string]any{"planType": "premium"}), 200, "")
	want(t, f.do(t, "admin", "POST", "/api/admin/tenants/k001/domains", map[string]string{"domain": "k001.example.com"}), 201, "")
	want(t, f.do(t, "admin", "POST", "/api/admin/tenants/k002/restore", nil), 200, "")
	want(t, f.do(t, "admin", "PATCH", "/api/admin/tenants/k002", changes), 200, "")
	want(t, f.do(t, "admin", "POST", "/api/admin/tenants/k002/domains", map[string]string{"domain": "k002.example.com"}), 201, "")
	if n := audits(); n != 4 {
		t.Fatalf("%d audit rows of the changes to running tenants, want 4", n)
	}
}

// TestChangeRacingADeletionSeesIt: a PATCH or a custom domain that reaches
// a tenant while its deletion is being confirmed (the row locked and set
// deleted, not yet committed) waits for it and is refused; read without
// the lock, the domain was added to the tenant the deletion had just
// taken, to route to it once restored.
func TestChangeRacingADeletionSeesIt(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	before := f.tenantRow(t, "k002")
	ctx := context.Background()
	tx, err := f.sys.DB.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	if _, err := tx.Exec("SELECT id FROM tenants WHERE tenant_code = 'k002' FOR UPDATE"); err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(`UPDATE tenants SET previous_status = status, status = 'deleted', deleted_at = NOW(3), updated_at = updated_at
		WHERE tenant_code = 'k002'`); err != nil {
		t.Fatal(err)
	}
	replies := make(chan reply, 2)
	go func() {
		replies <- f.do(t, "admin", "POST", "/api/admin/tenants/k002/domains", map[string]string{"domain": "k002.example.com"})
	}()
	go func() { replies <- f.do(t, "admin", "PATCH", "/api/admin/tenants/k002", changes) }()
	// Both wait on the deletion's lock before it commits: two queries of
	// this test's database held up (nothing else here takes 200ms).
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		waiting := f.count(t, `SELECT COUNT(*) FROM information_schema.PROCESSLIST
			WHERE DB = DATABASE() AND COMMAND = 'Query' AND TIME_MS > 200 AND ID <> CONNECTION_ID()`)
		if waiting == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d requests wait for the deletion, want 2", waiting)
		}
	}
	if err := tx.Commit(); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		want(t, <-replies, 410, "tenant_deleted")
	}
	if n := f.count(t, "SELECT COUNT(*) FROM tenant_domains WHERE domain = 'k002.example.com'"); n != 0 {
		t.Fatal("a domain added while the tenant was being deleted")
	}
	if after := f.tenantRow(t, "k002"); after != before {
		t.Fatalf("tenant changed while being deleted: %s, was %s", after, before)
	}
	if n := f.count(t, "SELECT COUNT(*) FROM audit_logs WHERE action IN ('tenant.update', 'tenant.domain.add')"); n != 0 {
		t.Fatalf("%d audit rows of refused changes", n)
	}
}

// TestContactCheckedAsAtCreation: PATCH only length-checked contactPhone
// and contactEmail, so a tenant could hold a contact its creation would
// have refused ("12345", "Wu <wu@example.com>"). Each is now refused by
// tenant creation's own check (provisioning.ContactPhoneProblem and
// ContactEmailProblem), as written and never empty (creation requires
// both): 400 naming the field, with nothing changed, not even the fields
// beside it, and nothing audited.
func TestContactCheckedAsAtCreation(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	// created is whether tenant creation takes a contact.
	created := func(field, v string) bool {
		req := provisioning.Request{Code: "k777", Name: "N", ContactName: "C", ContactPhone: "13811112222", ContactEmail: "c@example.com"}
		if field == "contactPhone" {
			req.ContactPhone = v
		} else {
			req.ContactEmail = v
		}
		err := (&provisioning.Pipeline{}).Validate(&req)
		fe, _ := fault.As(err)
		return fe == nil || fe.Fields[field] == ""
	}
	for _, tc := range []struct{ field, value string }{
		{"contactPhone", "12345"},
		{"contactPhone", "1381111222a"},
		{"contactPhone", "+8613811112222"},
		{"contactPhone", " 13811112222"},
		{"contactPhone", ""},
		{"contactEmail", "not-an-email"},
		{"contactEmail", "Wu <wu@example.com>"},
		{"contactEmail", "wu@example.com "},
		{"contactEmail", ""},
	} {
		t.Run(fmt.Sprintf("%s=%q", tc.field, tc.value), func(t *testing.T) {
			if created(tc.field, tc.value) {
				t.Fatalf("tenant creation takes %s %q: not a bad contact", tc.field, tc.value)
			}
			before := f.tenantRow(t, "k001")
			r := f.do(t, "admin", "PATCH", "/api/admin/tenants/k001", map[string]any{"name": "Renamed", tc.field: tc.value})
			want(t, r, 400, "invalid_input")
			if r.Error.Fields[tc.field] == "" {
				t.Errorf("400 does not name %s: %+v", tc.field, r.Error)
			}
			if after := f.tenantRow(t, "k001"); after != before {
				t.Errorf("a refused PATCH changed the tenant: %s, was %s", after, before)
			}
		})
	}
	if n := f.count(t, "SELECT COUNT(*) FROM audit_logs WHERE action = 'tenant.update'"); n != 0 {
		t.Fatalf("%d audit rows of refused changes", n)
	}
	ok := map[string]any{"contactPhone": "13811112222", "contactEmail": "wu@example.com"}
	for field, v := range ok {
		if !created(field, v.(string)) {
			t.Fatalf("tenant creation refuses %s %q", field, v)
		}
	}
	r := f.do(t, "admin", "PATCH", "/api/admin/tenants/k001", ok)
	want(t, r, 200, "")
	var v TenantView
	if err := json.Unmarshal(r.Data, &v); err != nil {
		t.Fatal(err)
	}
	if v.ContactPhone == nil || *v.ContactPhone != "13811112222" || v.ContactEmail == nil || *v.ContactEmail != "wu@example.com" {
		t.Fatalf("contact after PATCH: %v %v", v.ContactPhone, v.ContactEmail)
	}
}

// TestRoleChangeIsItsOwnAuditAction: PATCH .../members/{userId} was
// audited as tenant.member.bind, with no trace of the role it replaced. It
// is tenant.member.role, from the previous role to the new one; binding
// stays tenant.member.bind.
func TestRoleChangeIsItsOwnAuditAction(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	gid := f.globalUser(t)
	want(t, f.do(t, "admin", "POST", "/api/admin/tenants/k001/members", map[string]string{"phone": "13722223333", "role": "teacher"}), 200, "")
	want(t, f.do(t, "admin", "PATCH", fmt.Sprintf("/api/admin/tenants/k001/members/%d", gid), map[string]string{"role": "principal"}), 200, "")
	if n := f.count(t, "SELECT COUNT(*) FROM audit_logs WHERE action = 'tenant.member.bind'"); n != 1 {
		t.Errorf("%d tenant.member.bind rows, want 1 (the bind)", n)
	}
	var before, after []byte
	err := f.sys.DB.QueryRow("SELECT before_state, after_state FROM audit_logs WHERE action = 'tenant.member.role' AND target_id = 'k001'").Scan(&before, &after)
	if err != nil {
		t.Fatalf("the role change's audit row: %v", err)
	}
	type member struct {
		GlobalUserID int64  `json:"globalUserId"`
		Role         string `json:"role"`
	}
	var b, a member
	if json.Unmarshal(before, &b) != nil || json.Unmarshal(after, &a) != nil ||
		b != (member{gid, "teacher"}) || a != (member{gid, "principal"}) {
		t.Fatalf("tenant.member.role from %s to %s, want user %d from teacher to principal", before, after, gid)
	}
}
