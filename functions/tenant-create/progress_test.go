package main

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/unitenant/unitenant/shared/auth"
	"github.com/unitenant/unitenant/shared/provisioning"
)

// A step that fails on our side shows its creator only that it failed: the
// error in full names our database server (its address, its user), which is
// for admins.
func TestProgressShowsTheCreatorNoInternalError(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.exec(t, "UPDATE db_clusters SET host = '127.0.0.1', port = 1") // nothing listens there
	user := f.token(t, auth.KindUser, f.userID, auth.AudiencePlatform, "")
	if r := f.do(t, "POST", "/api/tenants", user, "", body("k200", ownerPhone, f.smsCode(t, ownerPhone))); r.status != 202 {
		t.Fatalf("create with the cluster down: %d %s", r.status, r.raw)
	}
	view := func(token string) (provisioning.ProgressView, string) {
		r := f.do(t, "GET", "/api/tenants/k200/progress", token, "", nil)
		if r.status != 200 {
			t.Fatalf("progress: %d %s", r.status, r.raw)
		}
		var v provisioning.ProgressView
		if err := json.Unmarshal(r.env.Data, &v); err != nil {
			t.Fatal(err)
		}
		return v, string(r.raw)
	}
	v, raw := view(user)
	if v.Status != "failed" || v.Error == nil {
		t.Fatalf("creator's view: %s", raw)
	}
	failed := 0
	for _, s := range v.Steps {
		if s.Status == "failed" {
			failed++
			if s.Error == nil || *s.Error == "" {
				t.Errorf("failed step %s says nothing to its creator", s.Name)
			}
		}
	}
	if failed != 1 {
		t.Fatalf("%d failed steps in %s", failed, raw)
	}
	for _, leak := range []string{"127.0.0.1", "dial", "tcp", "root", "errorDetail"} {
		if strings.Contains(raw, leak) {
			t.Errorf("the creator's view holds %q: %s", leak, raw)
		}
	}
	// An admin sees what went wrong.
	v, raw = view(f.token(t, auth.KindAdmin, 1, auth.AudienceAdmin, "operator"))
	if v.ErrorDetail == nil || !strings.Contains(*v.ErrorDetail, "127.0.0.1:1") {
		t.Fatalf("admin's view lacks the error in full: %s", raw)
	}
}
