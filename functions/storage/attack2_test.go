package main

import (
	"context"
	"mime"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/aliyun/aliyun-oss-go-sdk/oss"

	"github.com/unitenant/unitenant/shared/auth"
	"github.com/unitenant/unitenant/shared/httpapi/httpapitest"
	"github.com/unitenant/unitenant/shared/storageusage"
)

// TestAttack2ContentTypesBrowsersRunAnyway: besides the page and script
// types, an upload is refused a Content-Type that makes a browser sniff the
// body (the "unknown" types and */*, which Chrome sniffs as HTML without
// nosniff, which OSS does not send) or that is no media type at all ("foo":
// mime.ParseMediaType takes it, as it parses Content-Disposition too, and a
// browser ignores it and sniffs), and the remaining JavaScript and legacy
// page types. Nothing is granted for any.
func TestAttack2ContentTypesBrowsersRunAnyway(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nil)
	for _, ct := range []string{
		"foo", "html", "text", "attachment", "application/unknown", "unknown/unknown", "*/*", "UNKNOWN/UNKNOWN; x=1",
		"text/x-javascript", "application/x-ecmascript", "text/x-ecmascript", "text/livescript", "text/javascript1.5",
		"application/hta", "text/x-component", "text/scriptlet", "text/webviewhtml", "text/vbscript",
	} {
		for _, op := range []string{"put", "post"} {
			resp := f.call(t, "k001", "k001", "POST", "/api/v1/oss/presign", map[string]any{"op": op, "key": "uploads/files/a.png", "contentType": ct})
			if resp.Status != 400 || resp.Code() != "invalid_content_type" || resp.Error.Fields["contentType"] == "" {
				t.Errorf("%s with Content-Type %q: %d %s, want 400 invalid_content_type", op, ct, resp.Status, resp.Raw)
			}
		}
	}
	// Ordinary types still go.
	for _, ct := range []string{"image/png", "text/plain; charset=utf-8", "application/octet-stream", "application/pdf", "video/mp4"} {
		want(t, f.call(t, "k001", "k001", "POST", "/api/v1/oss/presign", map[string]any{"op": "put", "key": "uploads/files/a.png", "contentType": ct}), 200, "")
	}
}

// TestAttack2ExtensionsTypedAsPages: an upload without a declared type is
// typed by its key's extension — by OSS from its own table (the SDK's,
// oss.TypeByExtension), by the local store and the form grant from Go's
// (with the system's mime.types). Any extension either types as a page or
// script (.shtm, .dhtml and .xhtm are HTML to OSS; .atom, .rdf, .mathml,
// .xul are XML) must declare a type, as .html and .svg must.
func TestAttack2ExtensionsTypedAsPages(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nil)
	exts := []string{".shtm", ".SHTM", ".dhtml", ".hts", ".stm", ".xhtm", ".htt", ".hta", ".htc", ".sct", ".swfl",
		".atom", ".rdf", ".mathml", ".xul", ".vxml", ".grxml", ".xsit", ".xslt"}
	// And whatever this machine's mime.types types as active.
	for _, ext := range []string{".rss", ".xsd", ".mml", ".smil", ".kml", ".gpx", ".dtd", ".wsdl", ".opf", ".xspf"} {
		if mt, _, _ := mime.ParseMediaType(mime.TypeByExtension(ext)); activeType(mt) {
			exts = append(exts, ext)
		}
	}
	for _, ext := range exts {
		for _, op := range []string{"put", "post"} {
			resp := f.call(t, "k001", "k001", "POST", "/api/v1/oss/presign", map[string]any{"op": op, "key": "uploads/files/a" + ext})
			if resp.Status != 400 || resp.Code() != "invalid_content_type" {
				t.Errorf("%s of a%s without a type: %d %s, want 400 invalid_content_type", op, ext, resp.Status, resp.Raw)
			}
		}
		// Declared as a download, the file is taken.
		want(t, f.call(t, "k001", "k001", "POST", "/api/v1/oss/presign",
			map[string]any{"op": "post", "key": "uploads/files/a" + ext, "contentType": "application/octet-stream"}), 200, "")
	}
	// No form grant ever pins an active type the client did not ask for.
	for _, key := range []string{"a.png", "a.pdf", "a.txt", "a.json", "a.css", "a", "a.unknownext", "a.tar.gz", "a.docx"} {
		r := f.call(t, "k001", "k001", "POST", "/api/v1/oss/presign", map[string]any{"op": "post", "key": key})
		want(t, r, 200, "")
		g := httpapitest.Data[presignOutput](t, r)
		if mt, _, _ := mime.ParseMediaType(g.Fields["Content-Type"]); activeType(mt) || mt == "" {
			t.Errorf("form grant for %s pins %q", key, g.Fields["Content-Type"])
		}
	}
}

// TestAttack2ListingAndMeasuringPastSTSKeys, on OSS: STS credentials let a
// member upload keys under the prefix that the API's own key check refuses
// ("a//b.jpg", `a\b.jpg`, "../x.jpg": the policy only holds the prefix and
// the extension). A listing page that ends on one must still lead to the
// next page, and usage-cron's scan must go past it: a refused marker left
// the rest of the tenant unlistable and the scan stuck (failing every
// usage-cron run at that tenant, so no tenant's usage, and no quota, was
// measured again).
func TestAttack2ListingAndMeasuringPastSTSKeys(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f, fake, _ := newOSSFixture(t)
	c, err := oss.New(fake.Endpoint(), fake.AccessKeyID, fake.AccessKeySecret)
	if err != nil {
		t.Fatal(err)
	}
	bucket, err := c.Bucket(fake.Bucket)
	if err != nil {
		t.Fatal(err)
	}
	keys := []string{"tenants/k001/../x.jpg", "tenants/k001/a//b.jpg", `tenants/k001/a\b.jpg`, "tenants/k001/b.jpg", "tenants/k002/c.jpg"}
	for _, k := range keys {
		if err := bucket.PutObject(k, strings.NewReader("12345")); err != nil {
			t.Fatal(err)
		}
	}
	type page struct {
		Objects []struct {
			Key string `json:"key"`
		} `json:"objects"`
		Truncated  bool   `json:"truncated"`
		NextMarker string `json:"nextMarker"`
	}
	var got []string
	marker := ""
	for range 10 {
		resp := f.call(t, "k001", "k001", "GET", "/api/v1/oss/files?max=1&marker="+url.QueryEscape(marker), nil)
		want(t, resp, 200, "")
		p := httpapitest.Data[page](t, resp)
		for _, o := range p.Objects {
			got = append(got, o.Key)
		}
		if !p.Truncated {
			break
		}
		marker = p.NextMarker
	}
	if strings.Join(got, "|") != strings.Join(keys[:4], "|") {
		t.Fatalf("k001 lists %q, want %q", got, keys[:4])
	}
	// Markers stay the caller's: another tenant's is refused.
	want(t, f.call(t, "k001", "k001", "GET", "/api/v1/oss/files?marker=tenants/k002/a", nil), 403, "key_forbidden")

	res, err := storageusage.Measure(ctx, f.sys, f.objects, time.Now(), time.Now().Add(time.Minute), storageusage.Options{PageSize: 1})
	if err != nil || res.Measured != 2 || res.Partial != 0 {
		t.Fatalf("Measure = %+v, %v; want both tenants measured", res, err)
	}
	for code, n := range map[string]int64{"k001": 4, "k002": 1} {
		u, err := storageusage.Get(ctx, f.sys, f.tenants[code])
		if err != nil || u.Objects != n || u.UsedBytes != 5*n || u.MeasuredAt == nil {
			t.Errorf("%s usage %+v, %v; want %d objects", code, u, err, n)
		}
	}
}

// TestAttack2LocalListUnnameablePrefix: a listing prefix naming a folder
// longer than a file name may be is an empty listing on the local store,
// not a 500.
func TestAttack2LocalListUnnameablePrefix(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nil)
	resp := f.call(t, "k001", "k001", "GET", "/api/v1/oss/files?prefix="+strings.Repeat("x", 300)+"/", nil)
	want(t, resp, 200, "")
	if !strings.Contains(string(resp.Raw), `"objects":[]`) {
		t.Fatalf("listing %s", resp.Raw)
	}
}

// TestAttack2EncodedKeysStayInside: a key is decoded once, as a query
// parameter or a JSON string, and never again: %2F, %252F and look-alike
// slashes are characters of a name inside the caller's prefix, and a
// decoded slash that names another tenant is refused. k002's object
// survives every attempt.
func TestAttack2EncodedKeysStayInside(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nil)
	ctx := context.Background()
	if err := f.objects.Store.Put(ctx, "tenants/k002/x.txt", strings.NewReader("k002"), 4, "text/plain"); err != nil {
		t.Fatal(err)
	}
	for _, raw := range []string{"tenants%2Fk002%2Fx.txt", "..%2Fk002%2Fx.txt", "%2E%2E%2F%2E%2E%2Ftenants%2Fk002%2Fx.txt", "tenants%252Fk002%252Fx.txt",
		"..%5Ck002%5Cx.txt", "%2Ftenants%2Fk002%2Fx.txt", "tenants/k002/x.txt%00", "..%c0%afk002%c0%afx.txt"} {
		resp := f.call(t, "k001", "k001", "DELETE", "/api/v1/oss/files?key="+raw, nil)
		dec, _ := url.QueryUnescape(raw)
		switch {
		case resp.Status == 200:
			if k := httpapitest.Data[map[string]any](t, resp)["key"]; k != "tenants/k001/"+dec {
				t.Errorf("DELETE key=%s deleted %v", raw, k)
			}
		case resp.Status != 400 && resp.Status != 403:
			t.Errorf("DELETE key=%s: %d %s", raw, resp.Status, resp.Raw)
		}
	}
	for _, key := range []string{"tenants%2Fk002%2Fx.txt", "tenants／k002／x.txt", "%2e%2e/k002/x.txt"} {
		g := f.presign(t, map[string]any{"op": "get", "key": key})
		if g.Key != "tenants/k001/"+key {
			t.Errorf("presign %q named %q", key, g.Key)
		}
	}
	if rc, _, err := f.objects.Store.Get(ctx, "tenants/k002/x.txt"); err != nil {
		t.Fatalf("k002's object: %v", err)
	} else {
		rc.Close()
	}
}

// TestAttack2SuspendedAndDeletedTenantsGetNothing: a suspended tenant's
// members (403) and a deleted tenant's (410) get no URL, credential,
// listing or deletion, whatever their token and role say.
func TestAttack2SuspendedAndDeletedTenantsGetNothing(t *testing.T) {
	t.Parallel()
	f, _, sts := newOSSFixture(t)
	for code, status := range map[string]string{"k003": "suspended", "k004": "deleted"} {
		id := f.addTenant(t, code)
		if _, err := f.sys.Exec("UPDATE tenants SET status = ? WHERE id = ?", status, id); err != nil {
			t.Fatal(err)
		}
		if _, err := f.sys.Exec(`INSERT INTO global_user_tenant_relations (global_user_id, tenant_id, tenant_code, role_in_tenant) VALUES (?, ?, ?, 'owner')`,
			k002Admin, id, code); err != nil {
			t.Fatal(err)
		}
	}
	for code, w := range map[string]struct {
		status int
		code   string
	}{"k003": {403, "tenant_suspended"}, "k004": {410, "tenant_deleted"}} {
		tok := f.tokenAs(t, auth.AudienceTenant, code, k002Admin, "owner")
		for _, rq := range []struct {
			method, path string
			body         any
		}{
			{"POST", "/api/v1/oss/presign", map[string]any{"op": "get", "key": "a.png"}},
			{"POST", "/api/v1/oss/presign", map[string]any{"op": "put", "key": "a.png", "contentType": "image/png"}},
			{"POST", "/api/v1/oss/presign", map[string]any{"op": "post", "key": "a.png"}},
			{"POST", "/api/v1/oss/sts-token", nil},
			{"GET", "/api/v1/oss/files", nil},
			{"DELETE", "/api/v1/oss/files?key=a.png", nil},
		} {
			want(t, f.callWith(t, code, tok, rq.method, rq.path, rq.body), w.status, w.code)
		}
	}
	if len(sts.calls) != 0 {
		t.Fatalf("STS asked for a suspended or deleted tenant: %v", sts.calls)
	}
}
