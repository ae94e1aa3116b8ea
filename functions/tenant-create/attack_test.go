package main

import (
	"strings"
	"testing"

	"github.com/unitenant/unitenant/shared/auth"
)

// An admin's request makes a global user of a new contact phone, named after
// the contact: a contact name the request accepts (up to 100 characters)
// must not fail that user's narrower real_name with a 500.
func TestAdminCreateWithLongContactName(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	admin := f.token(t, auth.KindAdmin, f.admin(t, "admin", "active"), auth.AudienceAdmin, "admin")
	b := body("k301", "13866667777", "")
	b["contactName"] = strings.Repeat("李", 100)
	if r := f.do(t, "POST", "/api/tenants", admin, "", b); r.status != 201 {
		t.Fatalf("create: %d %s", r.status, r.raw)
	}
	if n := f.count(t, "SELECT COUNT(*) FROM global_user_tenant_relations r JOIN global_users g ON g.id = r.global_user_id WHERE g.phone = '13866667777' AND r.role_in_tenant = 'admin'"); n != 1 {
		t.Fatalf("contact user admin relations = %d", n)
	}
}

// A refused request changes nothing: an admin's request for a code that is
// taken must not leave a global user behind for its contact phone.
func TestRefusedAdminCreateMakesNoContactUser(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	admin := f.token(t, auth.KindAdmin, f.admin(t, "admin", "active"), auth.AudienceAdmin, "admin")
	if r := f.do(t, "POST", "/api/tenants", admin, "", body("k302", "13866668888", "")); r.status != 201 {
		t.Fatalf("create: %d %s", r.status, r.raw)
	}
	if r := f.do(t, "POST", "/api/tenants", admin, "", body("k302", "13866669999", "")); r.status != 409 || r.env.Error.Code != "tenant_code_taken" {
		t.Fatalf("taken code: %d %s", r.status, r.raw)
	}
	if n := f.count(t, "SELECT COUNT(*) FROM global_users WHERE phone = '13866669999'"); n != 0 {
		t.Fatalf("the refused request made %d global users for its contact phone", n)
	}
}

// A token's role outlives a demotion or a disabling made after it was
// issued; the account does not. An admin demoted to operator or disabled
// since cannot create tenants (nor read their progress), and a global user
// suspended since cannot either.
func TestCreateChecksTheAccountAsItIsNow(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	good := f.token(t, auth.KindAdmin, f.admin(t, "admin", "active"), auth.AudienceAdmin, "admin")
	if r := f.do(t, "POST", "/api/tenants", good, "", body("k303", "13866660000", "")); r.status != 201 {
		t.Fatalf("create: %d %s", r.status, r.raw)
	}
	demoted := f.token(t, auth.KindAdmin, f.admin(t, "operator", "active"), auth.AudienceAdmin, "admin")
	disabled := f.token(t, auth.KindAdmin, f.admin(t, "super_admin", "inactive"), auth.AudienceAdmin, "super_admin")
	for name, tok := range map[string]string{"demoted": demoted, "disabled": disabled} {
		if r := f.do(t, "POST", "/api/tenants", tok, "", body("k304", "13866661111", "")); r.status != 403 {
			t.Errorf("%s admin creates: %d %s", name, r.status, r.raw)
		}
	}
	if r := f.do(t, "GET", "/api/tenants/k303/progress", disabled, "", nil); r.status == 200 {
		t.Errorf("disabled admin reads progress: %d %s", r.status, r.raw)
	}
	if _, err := f.sys.DB.Exec("UPDATE global_users SET status = 'suspended' WHERE id = ?", f.userID); err != nil {
		t.Fatal(err)
	}
	user := f.token(t, auth.KindUser, f.userID, auth.AudiencePlatform, "")
	if r := f.do(t, "POST", "/api/tenants", user, "", body("k305", ownerPhone, f.smsCode(t, ownerPhone))); r.status != 403 {
		t.Errorf("suspended user creates: %d %s", r.status, r.raw)
	}
	if n := f.count(t, "SELECT COUNT(*) FROM tenants"); n != 1 {
		t.Fatalf("%d tenants, want 1", n)
	}
}

// admin adds an admin account of role and status and returns its id.
func (f *fixture) admin(t *testing.T, role, status string) int64 {
	t.Helper()
	res, err := f.sys.DB.Exec(`INSERT INTO admin_users (username, password_hash, role, status)
		SELECT CONCAT('admin', COUNT(*) + 1), 'x', ?, ? FROM admin_users`, role, status)
	if err != nil {
		t.Fatal(err)
	}
	id, _ := res.LastInsertId()
	return id
}
