package main

import (
	"context"
	"strings"
	"testing"

	"github.com/unitenant/unitenant/shared/auth"
)

// TestDeleteNeedsTenantAdmin: deleting a file needs the tenant's owner or
// admin role, as the caller's membership says now, not as the token said
// when it was issued (a token outlives a demotion or a removal). A member is
// 403 permission_denied, someone no longer (or never) a member of the tenant
// 403 not_a_member, and nothing is deleted for either.
func TestDeleteNeedsTenantAdmin(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nil)
	ctx := context.Background()
	put := func(t *testing.T, key string) {
		t.Helper()
		if err := f.objects.Store.Put(ctx, "tenants/k001/"+key, strings.NewReader("x"), 1, "text/plain"); err != nil {
			t.Fatal(err)
		}
	}
	exists := func(key string) bool {
		rc, _, err := f.objects.Store.Get(ctx, "tenants/k001/"+key)
		if err == nil {
			rc.Close()
		}
		return err == nil
	}
	del := func(t *testing.T, tok, key string) response {
		t.Helper()
		return f.callWith(t, "k001", tok, "DELETE", "/api/v1/oss/files?key="+key, nil)
	}

	for _, tc := range []struct {
		name string
		tok  string
		code string
	}{
		{"Member", f.tokenAs(t, auth.AudienceTenant, "k001", memberUser, "member"), "permission_denied"},
		// The token claims admin; the membership says member.
		{"MemberClaimingAdmin", f.tokenAs(t, auth.AudienceTenant, "k001", memberUser, "admin"), "permission_denied"},
		{"RemovedAdmin", f.tokenAs(t, auth.AudienceTenant, "k001", removedUser, "admin"), "not_a_member"},
		{"OtherTenantsAdmin", f.tokenAs(t, auth.AudienceTenant, "k001", k002Admin, "admin"), "not_a_member"},
	} {
		t.Run(tc.name+"Refused", func(t *testing.T) {
			put(t, "docs/keep.txt")
			resp := del(t, tc.tok, "docs/keep.txt")
			want(t, resp, 403, tc.code)
			if !exists("docs/keep.txt") {
				t.Fatal("the object was deleted anyway")
			}
			// A key outside the prefix is refused as well, whichever check comes first.
			if resp := del(t, tc.tok, "tenants/k002/x"); resp.Status != 403 {
				t.Errorf("other tenant's key: %d %s", resp.Status, resp.Raw)
			}
		})
	}

	for name, tok := range map[string]string{
		"Owner": f.tokenAs(t, auth.AudienceTenant, "k001", ownerUser, "owner"),
		"Admin": f.tokenAs(t, auth.AudienceTenant, "k001", adminUser, "admin"),
		// Promoted after the token was issued: the membership counts.
		"OwnerClaimingMember": f.tokenAs(t, auth.AudienceTenant, "k001", ownerUser, "member"),
	} {
		t.Run(name+"Deletes", func(t *testing.T) {
			key := "docs/" + name + ".txt"
			put(t, key)
			resp := del(t, tok, key)
			want(t, resp, 200, "")
			if exists(key) {
				t.Fatal("the object is still there")
			}
		})
	}

	// Demoting an admin takes effect at once, for a token already issued.
	t.Run("DemotedAdmin", func(t *testing.T) {
		tok := f.tokenAs(t, auth.AudienceTenant, "k001", ownerUser, "owner")
		put(t, "docs/d.txt")
		if _, err := f.sys.ExecContext(ctx, "UPDATE global_user_tenant_relations SET role_in_tenant = 'member' WHERE global_user_id = ? AND tenant_code = 'k001'", ownerUser); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			_, _ = f.sys.ExecContext(ctx, "UPDATE global_user_tenant_relations SET role_in_tenant = 'owner' WHERE global_user_id = ? AND tenant_code = 'k001'", ownerUser)
		})
		want(t, del(t, tok, "docs/d.txt"), 403, "permission_denied")
		if !exists("docs/d.txt") {
			t.Fatal("the object was deleted anyway")
		}
	})

	// Listing and presigning stay open to members.
	t.Run("MemberStillListsAndUploads", func(t *testing.T) {
		tok := f.tokenAs(t, auth.AudienceTenant, "k001", memberUser, "member")
		want(t, f.callWith(t, "k001", tok, "GET", "/api/v1/oss/files?prefix=docs/", nil), 200, "")
		want(t, f.callWith(t, "k001", tok, "POST", "/api/v1/oss/presign", map[string]any{"op": "put", "key": "docs/n.png", "contentType": "image/png"}), 200, "")
	})
}

// TestEveryRouteNeedsLiveMembership: a token outlives its user's removal
// from the tenant (up to its expiry), but none of the storage routes
// honours it after: presigning, listing, temporary credentials and
// deleting each read the membership as it is now. A removed user, or a
// user whose membership is disabled after the token was issued, gets 403
// not_a_member and no URL, listing or credential.
func TestEveryRouteNeedsLiveMembership(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nil)
	ctx := context.Background()
	if err := f.objects.Store.Put(ctx, "tenants/k001/docs/a.txt", strings.NewReader("x"), 1, "text/plain"); err != nil {
		t.Fatal(err)
	}
	routes := []struct {
		name, method, path string
		body               any
	}{
		{"PresignGet", "POST", "/api/v1/oss/presign", map[string]any{"op": "get", "key": "docs/a.txt"}},
		{"PresignPut", "POST", "/api/v1/oss/presign", map[string]any{"op": "put", "key": "docs/b.png", "contentType": "image/png"}},
		{"List", "GET", "/api/v1/oss/files?prefix=docs/", nil},
		{"STS", "POST", "/api/v1/oss/sts-token", nil},
		{"Delete", "DELETE", "/api/v1/oss/files?key=docs/a.txt", nil},
	}
	removed := f.tokenAs(t, auth.AudienceTenant, "k001", removedUser, "admin")
	for _, rt := range routes {
		resp := f.callWith(t, "k001", removed, rt.method, rt.path, rt.body)
		want(t, resp, 403, "not_a_member")
		if strings.Contains(string(resp.Raw), "http") || strings.Contains(string(resp.Raw), "accessKey") {
			t.Errorf("%s: the refusal carries a URL or a credential: %s", rt.name, resp.Raw)
		}
	}

	// A member whose membership is disabled after the token was issued.
	tok := f.tokenAs(t, auth.AudienceTenant, "k001", memberUser, "member")
	want(t, f.callWith(t, "k001", tok, "GET", "/api/v1/oss/files?prefix=docs/", nil), 200, "")
	if _, err := f.sys.ExecContext(ctx, "UPDATE global_user_tenant_relations SET status = 'disabled' WHERE global_user_id = ? AND tenant_code = 'k001'", memberUser); err != nil {
		t.Fatal(err)
	}
	for _, rt := range routes[:3] {
		want(t, f.callWith(t, "k001", tok, rt.method, rt.path, rt.body), 403, "not_a_member")
	}
	if _, _, err := f.objects.Store.Get(ctx, "tenants/k001/docs/a.txt"); err != nil {
		t.Fatalf("the object is gone: %v", err)
	}
}
