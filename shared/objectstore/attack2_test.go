package objectstore_test

import (
	"context"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/unitenant/unitenant/shared/fault"
	"github.com/unitenant/unitenant/shared/objectstore"
)

// TestAttack2ListingPagesPastAnyStoredKey: a listing page may end on any
// key OSS holds under the tenant's prefix, including ones CheckKey refuses
// (STS credentials upload "a//b.jpg", `a\b.jpg`, "../x.jpg" under the
// prefix). The page's NextMarker must then open the next page: a marker
// only says where to resume and reaches nothing outside the prefix, which
// bounds the listing. Refusing it left every later object unlistable, and
// usage-cron's scan (which resumes from the last key counted) stuck on the
// tenant for good.
func TestAttack2ListingPagesPastAnyStoredKey(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	fake, b := newOSS(t)
	k001, err := objectstore.DefaultLayout().Tenant(b.store, "k001")
	if err != nil {
		t.Fatal(err)
	}
	odd := []string{"tenants/k001/a//b.jpg", `tenants/k001/a\b.jpg`, "tenants/k001/../x.jpg", "tenants/k001/b/./c.jpg", "tenants/k001/c/"}
	for _, k := range odd {
		fake.Plant(t, k)
	}
	put(t, b.store, "tenants/k001/z.jpg", "z", "image/jpeg")
	put(t, b.store, "tenants/k002/a.jpg", "k002", "image/jpeg")

	var got []string
	marker := ""
	for range 20 {
		page, err := k001.List(ctx, "", marker, 1)
		if err != nil {
			t.Fatalf("List after marker %q: %v", marker, err)
		}
		for _, o := range page.Objects {
			got = append(got, o.Key)
		}
		if !page.Truncated {
			break
		}
		marker = page.NextMarker
	}
	want := []string{"tenants/k001/../x.jpg", "tenants/k001/a//b.jpg", `tenants/k001/a\b.jpg`,
		"tenants/k001/b/./c.jpg", "tenants/k001/c/", "tenants/k001/z.jpg"}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Fatalf("k001 lists %q, want %q", got, want)
	}
	// The store itself resumes after such a key, too.
	page, err := b.store.List(ctx, "tenants/k001/", "tenants/k001/a//b.jpg", 10)
	if err != nil || len(page.Objects) != 4 {
		t.Fatalf("store List after an odd marker: %+v, %v", page, err)
	}
	// A marker still never names another tenant's key, nor is it malformed.
	for marker, code := range map[string]string{
		"tenants/k002/a.jpg": "key_forbidden",
		"a\xffb":             "invalid_key",
		strings.Repeat("m", objectstore.MaxKeyLen): "invalid_key", // too long with the prefix
	} {
		if _, err := k001.List(ctx, "", marker, 10); fault.CodeOf(err) != code {
			t.Errorf("List marker %.20q: %v, want %s", marker, err, code)
		}
	}
	// A marker past k001's keys but before k002's lists nothing of k002.
	if page, err := k001.List(ctx, "", "tenants/k001/zzz", 10); err != nil || len(page.Objects) != 0 {
		t.Fatalf("after k001's last key: %+v, %v", page, err)
	}
}

// TestAttack2LocalListUnnameablePrefix: a listing prefix with a folder name
// longer than the filesystem takes holds nothing on the local store (no key
// with such a segment can be stored): an empty page, not a 500.
func TestAttack2LocalListUnnameablePrefix(t *testing.T) {
	t.Parallel()
	l, _ := newLocal(t, nil)
	ctx := context.Background()
	put(t, l, "t/a", "a", "text/plain")
	for _, prefix := range []string{
		"t/" + strings.Repeat("x", 300) + "/",
		"t/" + strings.Repeat("x", 300) + "/y",
		strings.Repeat("é", 200) + "/",
	} {
		page, err := l.List(ctx, prefix, "", 10)
		if err != nil || len(page.Objects) != 0 || page.Truncated {
			t.Errorf("List %.12q...: %+v, %v; want an empty page", prefix, page, err)
		}
	}
}

// TestAttack2TenantKeysStayInside: encodings and look-alikes of another
// tenant's key are literal names inside the caller's own prefix, never a
// way out of it: keys are never decoded, so %2F, %2e%2e, double encoding,
// full-width slashes and Unicode dots stay characters of one name.
func TestAttack2TenantKeysStayInside(t *testing.T) {
	t.Parallel()
	l, _ := newLocal(t, nil)
	k001, _ := objectstore.DefaultLayout().Tenant(l, "k001")
	for _, key := range []string{
		"tenants%2Fk002%2Fx", "%2e%2e/k002/x", "..%2Fk002%2Fx", "%252e%252e/k002/x",
		"Tenants/k002/x", "tenants／k002/x", "\u2024\u2024/k002/x", "．．/k002/x",
		"x/...", "x/.. ", " ../x", "a.b/..c",
	} {
		got, err := k001.Key(key)
		if err != nil || got != "tenants/k001/"+key {
			t.Errorf("Key(%q) = %q, %v; want it inside k001's prefix, unchanged", key, got, err)
		}
	}
	for key, code := range map[string]string{
		"tenants/k002/x":       "key_forbidden",
		"tenants/k0011/x":      "key_forbidden",
		"tenants/k001":         "key_forbidden", // the root's k001 without its slash is not inside it
		"x/\u0085/y":           "invalid_key",   // a C1 control character
		"x\u007f":              "invalid_key",
		"x/../../tenants/k002": "key_forbidden",
		"tenants/k001/x/..":    "key_forbidden",
	} {
		if _, err := k001.Key(key); fault.CodeOf(err) != code {
			t.Errorf("Key(%q): %v, want %s", key, err, code)
		}
	}
}

// TestAttack2LocalGrantsAreForOneOperation: a local URL or form grant is
// good for exactly what it was signed for: the signature of a GET is no
// PUT, a PUT's no GET, a form's fields no URL, and the same key spelled
// another way (Unicode normalization, a trailing slash, encoded) is another
// key whose signature does not match.
func TestAttack2LocalGrantsAreForOneOperation(t *testing.T) {
	t.Parallel()
	l, b := newLocal(t, nil)
	ctx := context.Background()
	put(t, l, "t/café.txt", "secret", "text/plain")
	get, err := l.PresignGet(ctx, "t/café.txt", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	putURL, err := l.PresignPut(ctx, "t/café.txt", "text/plain", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	form, err := l.PresignPost(ctx, "t/café.txt", "text/plain", 10, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	swap := func(raw, op string) string {
		u, _ := url.Parse(raw)
		u.Path = objectstore.LocalURLPath + "/" + op
		return b.resolve(u.String())
	}
	if status, body, _ := do(t, "PUT", swap(get, "put"), "", []byte("owned")); status != 403 {
		t.Errorf("a GET URL used to PUT: %d %s", status, body)
	}
	if status, body, _ := do(t, "GET", swap(putURL, "get"), "", nil); status != 403 {
		t.Errorf("a PUT URL used to GET: %d %s", status, body)
	}
	q := url.Values{"key": {form.Fields["key"]}, "expires": {form.Fields["expires"]}, "sig": {form.Fields["sig"]}, "contentType": {"text/plain"}}
	if status, body, _ := do(t, "PUT", b.resolve(objectstore.LocalURLPath+"/put?"+q.Encode()), "text/plain", []byte("owned")); status != 403 {
		t.Errorf("a form grant used as a PUT URL: %d %s", status, body)
	}
	for _, other := range []string{"t/cafe\u0301.txt", "t/café.txt/", "t%2Fcafé.txt", "t/CAFÉ.txt"} {
		u, _ := url.Parse(get)
		v := u.Query()
		v.Set("key", other)
		u.RawQuery = v.Encode()
		if status, body, _ := do(t, "GET", b.resolve(u.String()), "", nil); status != 403 {
			t.Errorf("the GET signature for another spelling %q: %d %s", other, status, body)
		}
	}
	if got, _ := read(t, l, "t/café.txt"); got != "secret" {
		t.Fatalf("a refused request changed the object: %q", got)
	}
	if status, resp := postForm(t, b.resolve(form.URL), form, map[string]string{"key": "t/other.txt"}, []byte("x")); status != 403 {
		t.Errorf("a form grant for another key: %d %s", status, resp)
	}
	if keys := listKeys(t, l, "t/"); len(keys) != 1 {
		t.Fatalf("refused requests stored %q", keys)
	}
}

// TestAttack2RemoveEmptiesPrefixOfAnyKey: purging a tenant (cleanup-cron,
// Service.Remove) deletes every object OSS lists under its prefix, keys
// CheckKey refuses included (uploaded with the tenant's STS credentials):
// refusing them failed the purge on every retry and left the tenant's
// files in the bucket for good. Nothing outside the prefix is touched.
func TestAttack2RemoveEmptiesPrefixOfAnyKey(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	fake, b := newOSS(t)
	svc := &objectstore.Service{Store: b.store, Layout: objectstore.DefaultLayout()}
	for _, k := range []string{"tenants/k001/a//b.jpg", `tenants/k001/a\b.jpg`, "tenants/k001/../x.jpg", "tenants/k001/c/",
		"tenants/k001//d.jpg", "tenants/k0011/a//b.jpg", "tenants/k002/../k001.jpg"} {
		fake.Plant(t, k)
	}
	put(t, b.store, "tenants/k001/ok.jpg", "x", "image/jpeg")
	if err := svc.Remove(ctx, "tenants/k001/"); err != nil {
		t.Fatalf("Remove k001: %v", err)
	}
	if got := strings.Join(fake.Keys(), "|"); got != "tenants/k0011/a//b.jpg|tenants/k002/../k001.jpg" {
		t.Fatalf("after Remove k001 the bucket holds %s", got)
	}
	// Deleting by a key a caller names still goes through CheckKey.
	if err := b.store.Delete(ctx, "tenants/k0011/a//b.jpg"); fault.CodeOf(err) != "invalid_key" {
		t.Fatalf("Delete of a key CheckKey refuses: %v", err)
	}
}
