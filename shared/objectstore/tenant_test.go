package objectstore_test

import (
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/unitenant/unitenant/shared/fault"
	"github.com/unitenant/unitenant/shared/objectstore"
)

func TestParseLayout(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		pattern, code, want string
		ok                  bool
	}{
		{"tenants/{code}/", "k001", "tenants/k001/", true},
		{"{code}/", "k001", "k001/", true},
		{"saas/prod/{code}/files/", "k042", "saas/prod/k042/files/", true},
		{"tenants/{code}", "", "", false},          // k001 would be a prefix of k0011
		{"tenants/{code}-x/", "", "", false},       // likewise k001-x of k001-xy... refused
		{"t{code}/", "", "", false},                // the relative key temp/x would be tenant emp's full key
		{"tenant-{code}/", "", "", false},          // likewise tenant-logo/x
		{"tenants/", "", "", false},                // no code
		{"{code}/{code}/", "", "", false},          // twice
		{"/tenants/{code}/", "", "", false},        // leading slash
		{"tenants/../{code}/", "", "", false},      // climbing
		{"tenants//{code}/", "", "", false},        // empty segment
		{"tenants/{code}/a\\b/", "", "", false},    // backslash
		{"tenants/{code}/files", "", "", false},    // does not end with /
		{"tenants/{code}/./files/", "", "", false}, // dot segment
	} {
		l, err := objectstore.ParseLayout(tc.pattern)
		if (err == nil) != tc.ok {
			t.Errorf("ParseLayout(%q) err = %v, want ok %v", tc.pattern, err, tc.ok)
			continue
		}
		if !tc.ok {
			continue
		}
		if got, err := l.Prefix(tc.code); err != nil || got != tc.want {
			t.Errorf("%q.Prefix(%s) = %q, %v; want %q", tc.pattern, tc.code, got, err, tc.want)
		}
		if l.String() != tc.pattern {
			t.Errorf("String() = %q, want %q", l.String(), tc.pattern)
		}
	}
	if _, err := objectstore.DefaultLayout().Prefix("K001/../x"); err == nil {
		t.Error("a malformed code got a prefix")
	}
}

func TestTenantKeys(t *testing.T) {
	t.Parallel()
	l, _ := newLocal(t, nil)
	k001, err := objectstore.DefaultLayout().Tenant(l, "k001")
	if err != nil {
		t.Fatal(err)
	}
	if k001.Prefix() != "tenants/k001/" || k001.Code() != "k001" {
		t.Fatalf("prefix %q code %q", k001.Prefix(), k001.Code())
	}
	long := strings.Repeat("x", objectstore.MaxKeyLen-len("tenants/k001/"))
	for _, tc := range []struct {
		name, key, want, code string
	}{
		{"Relative", "uploads/images/a.png", "tenants/k001/uploads/images/a.png", ""},
		{"Full", "tenants/k001/uploads/a.png", "tenants/k001/uploads/a.png", ""},
		{"Unicode", "uploads/照片 1.jpg", "tenants/k001/uploads/照片 1.jpg", ""},
		{"LongestFits", long, "tenants/k001/" + long, ""},
		{"OtherTenantFull", "tenants/k002/x", "", "key_forbidden"},
		{"SimilarCode", "tenants/k0011/x", "", "key_forbidden"},
		{"UpAndOver", "../k002/x", "", "key_forbidden"},
		{"DeepUp", "uploads/../../k002/x", "", "key_forbidden"},
		{"FullThenUp", "tenants/k001/../k002/x", "", "key_forbidden"},
		{"Absolute", "/tenants/k001/x", "", "key_forbidden"},
		{"Dot", "./x", "", "key_forbidden"},
		{"Root", "tenants/k001/", "", "invalid_key"},
		{"TooLongWithPrefix", long + "x", "", "invalid_key"},
		{"Empty", "", "", "invalid_key"},
		{"Backslash", `..\k002\x`, "", "invalid_key"},
		{"Control", "a\tb", "", "invalid_key"},
		{"BadUTF8", "a\xc3", "", "invalid_key"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := k001.Key(tc.key)
			if fault.CodeOf(err) != tc.code || got != tc.want {
				t.Fatalf("Key(%q) = %q, %v; want %q, code %q", tc.key, got, err, tc.want, tc.code)
			}
			if fe, ok := fault.As(err); ok {
				if _, named := fe.Fields["key"]; !named {
					t.Errorf("error does not name the field: %+v", fe)
				}
				if tc.code == "key_forbidden" && fe.Kind != fault.Forbidden {
					t.Errorf("kind %v, want Forbidden", fe.Kind)
				}
			}
		})
	}
	// Every operation goes through the same check.
	ctx := context.Background()
	for name, err := range map[string]error{
		"Put":        k001.Put(ctx, "tenants/k002/x", strings.NewReader("x"), 1, ""),
		"Delete":     k001.Delete(ctx, "../k002/x"),
		"PresignPut": second(k001.PresignPut(ctx, "tenants/k002/x", "", 60e9)),
		"PresignGet": second(k001.PresignGet(ctx, "../k002/x", 60e9)),
		"List":       second(k001.List(ctx, "../k002/", "", 10)),
		"ListMarker": second(k001.List(ctx, "", "tenants/k002/a", 10)),
	} {
		if fault.CodeOf(err) != "key_forbidden" {
			t.Errorf("%s outside the prefix: %v", name, err)
		}
	}
	if _, _, err := k001.Get(ctx, "tenants/k002/x"); fault.CodeOf(err) != "key_forbidden" {
		t.Errorf("Get outside the prefix: %v", err)
	}
}

func second[T any](_ T, err error) error { return err }

func TestTenantWithoutRoot(t *testing.T) {
	t.Parallel()
	l, _ := newLocal(t, nil)
	layout, err := objectstore.ParseLayout("{code}/")
	if err != nil {
		t.Fatal(err)
	}
	k001, _ := layout.Tenant(l, "k001")
	// Without a common root another tenant's key cannot be told from a
	// folder of one's own: it lands inside the prefix, harmlessly.
	for key, want := range map[string]string{"k002/x": "k001/k002/x", "k001/x": "k001/x", "x": "k001/x"} {
		if got, err := k001.Key(key); err != nil || got != want {
			t.Errorf("Key(%q) = %q, %v; want %q", key, got, err, want)
		}
	}
}

func TestTenantsDoNotSeeEachOther(t *testing.T) {
	t.Parallel()
	l, _ := newLocal(t, nil)
	ctx := context.Background()
	k001, _ := objectstore.DefaultLayout().Tenant(l, "k001")
	k0011, _ := objectstore.DefaultLayout().Tenant(l, "k0011")
	put(t, k001, "a.txt", "one", "")
	put(t, k0011, "a.txt", "eleven", "")
	page, err := k001.List(ctx, "", "", 100)
	if err != nil || len(page.Objects) != 1 || page.Objects[0].Key != "tenants/k001/a.txt" {
		t.Fatalf("k001 lists %+v, %v", page, err)
	}
	if got, _ := read(t, k0011, "a.txt"); got != "eleven" {
		t.Fatalf("k0011 reads %q", got)
	}
}

func TestAllocatePrefix(t *testing.T) {
	t.Parallel()
	eachBackend(t, func(t *testing.T, b backend) {
		ctx := context.Background()
		k001, _ := objectstore.DefaultLayout().Tenant(b.store, "k001")
		for range 2 { // idempotent
			if err := objectstore.AllocatePrefix(ctx, k001); err != nil {
				t.Fatal(err)
			}
		}
		page, err := k001.List(ctx, "", "", 100)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, o := range page.Objects {
			got = append(got, strings.TrimPrefix(o.Key, "tenants/k001/"))
			if o.Size != 0 {
				t.Errorf("%s: %d bytes", o.Key, o.Size)
			}
		}
		var want []string
		for _, f := range objectstore.Folders {
			want = append(want, f+"/.keep")
		}
		slices.Sort(want)
		if !slices.Equal(got, want) {
			t.Fatalf("layout %v, want %v", got, want)
		}
		for _, f := range []string{"uploads/images", "generated/posters", "posters/user_created", "documents/enrollment", "temp"} {
			if !slices.Contains(objectstore.Folders, f) {
				t.Errorf("seed folder %s missing", f)
			}
		}
	})
}

func TestServiceAllocateAndRemove(t *testing.T) {
	t.Parallel()
	eachBackend(t, func(t *testing.T, b backend) {
		ctx := context.Background()
		svc := &objectstore.Service{Store: b.store, Layout: objectstore.DefaultLayout()}
		for _, code := range []string{"k001", "k0011"} {
			prefix, err := svc.Allocate(ctx, code)
			if err != nil || prefix != "tenants/"+code+"/" || svc.Prefix(code) != prefix {
				t.Fatalf("Allocate %s = %q, %v", code, prefix, err)
			}
		}
		k001, _ := svc.Tenant("k001")
		for i := range 1005 - len(objectstore.Folders) { // more than one listing page
			put(t, k001, "uploads/files/"+strings.Repeat("f", i%7)+string(rune('a'+i%26))+strings.Repeat("0", i/26), "x", "")
		}
		for _, bad := range []string{"", "tenants/", "tenants/k001", "tenants/k001/uploads/", "other/k001/", "tenants/K001/"} {
			if err := svc.Remove(ctx, bad); err == nil {
				t.Errorf("Remove(%q) was accepted", bad)
			}
		}
		if err := svc.Remove(ctx, "tenants/k001/"); err != nil {
			t.Fatal(err)
		}
		if page, err := svc.Store.List(ctx, "tenants/k001/", "", 10); err != nil || len(page.Objects) != 0 {
			t.Fatalf("after Remove k001 holds %+v, %v", page, err)
		}
		if page, err := svc.Store.List(ctx, "tenants/k0011/", "", 100); err != nil || len(page.Objects) != len(objectstore.Folders) {
			t.Fatalf("Remove k001 touched k0011: %d objects, %v", len(page.Objects), err)
		}
		if svc.Prefix("../x") != "" {
			t.Error("a malformed code has a prefix")
		}
	})
}

// TestTenantPrefixNeverCoversArchives attacks the one place the platform
// keeps objects of its own in the bucket: the database archives of purged
// tenants under archives/<code>/ (lifecycle.ArchiveKey). A tenant whose
// prefix covered them could list, download and delete other tenants'
// database dumps, and purging it would delete them all.
func TestTenantPrefixNeverCoversArchives(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	l, _ := newLocal(t, nil)
	dump := "archives/k001/20250101T000000Z.sql.gz"
	put(t, l, dump, "k001's database", "application/gzip")

	// "{code}/" is a valid layout, and a deployment may allow codes besides
	// k\d+: the tenant named "archives" must still get no prefix.
	flat, err := objectstore.ParseLayout("{code}/")
	if err != nil {
		t.Fatal(err)
	}
	if mallory, err := flat.Tenant(l, "archives"); err == nil {
		page, _ := mallory.List(ctx, "", "", 10)
		_, _, getErr := mallory.Get(ctx, "k001/20250101T000000Z.sql.gz")
		t.Fatalf("tenant archives got prefix %q: lists %+v, reads k001's dump: %v", mallory.Prefix(), page.Objects, getErr)
	}
	svc := &objectstore.Service{Store: l, Layout: flat}
	if err := svc.Remove(ctx, "archives/"); err == nil {
		t.Fatal("Remove(archives/) was accepted as a tenant's prefix")
	}
	if _, _, err := l.Get(ctx, dump); err != nil {
		t.Fatalf("k001's archive: %v", err)
	}
	// Codes that merely look alike are tenants like any other.
	for _, code := range []string{"k001", "archive", "archives2", "archives-x"} {
		if p, err := flat.Prefix(code); err != nil || p != code+"/" {
			t.Errorf("Prefix(%s) = %q, %v", code, p, err)
		}
	}
	// A layout putting every tenant inside the archives is refused outright.
	for _, pattern := range []string{"archives/{code}/", "archives/tenants/{code}/"} {
		if _, err := objectstore.ParseLayout(pattern); err == nil {
			t.Errorf("ParseLayout(%q) was accepted", pattern)
		}
	}
}
