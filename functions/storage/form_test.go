package main

import (
	"bytes"
	"context"
	"maps"
	"mime/multipart"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/unitenant/unitenant/shared/httpapi/httpapitest"
	"github.com/unitenant/unitenant/shared/storageusage"
)

// sendForm posts a form upload as a browser does: the grant's fields with
// change applied, then the file, last.
func (f *fixture) sendForm(t *testing.T, grant presignOutput, change map[string]string, file []byte) (int, string) {
	t.Helper()
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	fields := maps.Clone(grant.Fields)
	maps.Copy(fields, change)
	for _, k := range slices.Sorted(maps.Keys(fields)) {
		_ = mw.WriteField(k, fields[k])
	}
	fw, _ := mw.CreateFormFile("file", "report.pdf")
	_, _ = fw.Write(file)
	_ = mw.Close()
	status, b, _ := f.fetch(t, grant.Method, grant.URL, mw.FormDataContentType(), body.Bytes())
	return status, string(b)
}

// TestFormUpload: a form upload grant (op "post") on either backend pins
// the key, the type and the size, and the store refuses anything else —
// another tenant's key above all — storing nothing.
func TestFormUpload(t *testing.T) {
	t.Parallel()
	for name, mk := range map[string]func(*testing.T) *fixture{
		"Local": func(t *testing.T) *fixture { return newFixture(t, nil) },
		"OSS":   func(t *testing.T) *fixture { f, _, _ := newOSSFixture(t); return f },
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			f := mk(t)
			grant := f.presign(t, map[string]any{"op": "post", "key": "docs/report.pdf"})
			if grant.Method != "POST" || grant.MaxSize != defaultMaxUpload || grant.Fields["Content-Type"] != "application/pdf" ||
				grant.Key != "tenants/k001/docs/report.pdf" {
				t.Fatalf("default grant = %+v", grant)
			}
			grant = f.presign(t, map[string]any{"op": "post", "key": "docs/report.pdf", "maxSize": 16})
			pdf := []byte("%PDF-1.7 sixteen")
			if grant.MaxSize != 16 || len(pdf) != 16 {
				t.Fatalf("grant of 16 bytes = %+v", grant)
			}
			// Refused: a byte too many, another tenant's key, another type.
			if status, body := f.sendForm(t, grant, nil, append(slices.Clone(pdf), '!')); status != 400 && status != 413 {
				t.Errorf("17 bytes on a grant of 16: %d %s", status, body)
			}
			if status, body := f.sendForm(t, grant, map[string]string{"key": "tenants/k002/docs/report.pdf"}, pdf); status != 403 {
				t.Errorf("k001's grant for k002's key: %d %s", status, body)
			}
			if status, body := f.sendForm(t, grant, map[string]string{"Content-Type": "text/html"}, pdf); status != 403 {
				t.Errorf("the grant with text/html: %d %s", status, body)
			}
			for _, code := range []string{"k001", "k002"} {
				page, err := f.objects.Store.List(context.Background(), "tenants/"+code+"/", "", 10)
				if err != nil || len(page.Objects) != 0 {
					t.Fatalf("refused forms stored %+v (%v)", page.Objects, err)
				}
			}
			// Accepted: the file the grant was for, at its limit, as a PDF.
			if status, body := f.sendForm(t, grant, nil, pdf); status/100 != 2 {
				t.Fatalf("form upload: %d %s", status, body)
			}
			down := f.presign(t, map[string]any{"op": "get", "key": "docs/report.pdf"})
			if status, body, h := f.fetch(t, "GET", down.URL, "", nil); status != 200 || !bytes.Equal(body, pdf) || h.Get("Content-Type") != "application/pdf" {
				t.Fatalf("download: %d %q %q", status, body, h.Get("Content-Type"))
			}

			// Bad requests name the problem.
			for _, tc := range []struct {
				in   map[string]any
				code string
			}{
				{map[string]any{"op": "post", "key": "page.html"}, "invalid_content_type"},
				{map[string]any{"op": "post", "key": "a.png", "contentType": "image/svg+xml"}, "invalid_content_type"},
				{map[string]any{"op": "post", "key": "a.png", "maxSize": 0}, "invalid_max_size"},
				{map[string]any{"op": "post", "key": "a.png", "maxSize": defaultMaxUpload + 1}, "invalid_max_size"},
				{map[string]any{"op": "put", "key": "a.png", "maxSize": 10}, "invalid_max_size"},
				{map[string]any{"op": "post", "key": "../k002/a.png"}, "key_forbidden"},
			} {
				r := f.call(t, "k001", "k001", "POST", "/api/v1/oss/presign", tc.in)
				if r.Code() != tc.code || !strings.Contains(string(r.Raw), "message") {
					t.Errorf("%v: %d %s, want %s", tc.in, r.Status, r.Raw, tc.code)
				}
			}
			// A file named like a page is granted as a download.
			g := f.presign(t, map[string]any{"op": "post", "key": "page.html", "contentType": "application/octet-stream"})
			if g.Fields["Content-Type"] != "application/octet-stream" {
				t.Fatalf("page as a download: %+v", g)
			}
		})
	}
}

// TestFormUploadHeldToQuota: a form upload grant never exceeds what the
// tenant has left of its max_storage as last measured, and OSS itself
// refuses a bigger file, so the quota holds per upload, not just per grant.
func TestFormUploadHeldToQuota(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f, fake, _ := newOSSFixture(t)
	if _, err := f.sys.Exec("UPDATE tenants SET max_storage = 20 WHERE tenant_code = 'k001'"); err != nil {
		t.Fatal(err)
	}
	measure := func(now time.Time) {
		t.Helper()
		if _, err := storageusage.Measure(ctx, f.sys, f.objects, now, time.Now().Add(time.Minute), storageusage.Options{}); err != nil {
			t.Fatal(err)
		}
	}
	f.roundTrip(t, "docs/a.png", []byte("0123456789")) // 10 bytes of 20
	measure(time.Now())

	grant := f.presign(t, map[string]any{"op": "post", "key": "docs/b.bin"})
	if grant.MaxSize != 10 || grant.Fields["Content-Type"] != "application/octet-stream" {
		t.Fatalf("grant with 10 bytes left = %+v", grant)
	}
	if status, body := f.sendForm(t, grant, nil, []byte("0123456789x")); status != 400 || !strings.Contains(body, "EntityTooLarge") {
		t.Fatalf("11 bytes with 10 left: %d %s", status, body)
	}
	if _, _, ok := fake.Object("tenants/k001/docs/b.bin"); ok {
		t.Fatal("OSS stored the file over the quota")
	}
	want(t, f.call(t, "k001", "k001", "POST", "/api/v1/oss/presign", map[string]any{"op": "post", "key": "docs/b.bin", "maxSize": 11}), 403, "storage_quota_exceeded")
	if status, body := f.sendForm(t, grant, nil, []byte("0123456789")); status != 200 {
		t.Fatalf("10 bytes with 10 left: %d %s", status, body)
	}
	// k002 has no quota: its grants are the function's maximum.
	r := f.call(t, "k002", "k002", "POST", "/api/v1/oss/presign", map[string]any{"op": "post", "key": "b.bin"})
	want(t, r, 200, "")
	if g := httpapitest.Data[presignOutput](t, r); g.MaxSize != defaultMaxUpload {
		t.Fatalf("k002's grant = %+v", g)
	}
	// Full once measured: no grant at all.
	measure(time.Now().Add(storageusage.DefaultEvery + time.Minute))
	want(t, f.call(t, "k001", "k001", "POST", "/api/v1/oss/presign", map[string]any{"op": "post", "key": "docs/c.bin"}), 403, "storage_quota_exceeded")
}

// TestQuotaBeforeAnyMeasurement: a tenant never measured is judged by its
// quota alone — a quota of 0 is full, a small one caps form grants — and
// the refusals say it was not measured yet.
func TestQuotaBeforeAnyMeasurement(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nil)
	if _, err := f.sys.Exec("UPDATE tenants SET max_storage = CASE tenant_code WHEN 'k001' THEN 0 ELSE 5 END"); err != nil {
		t.Fatal(err)
	}
	for _, in := range []map[string]any{{"op": "put", "key": "a.png", "contentType": "image/png"}, {"op": "post", "key": "a.png"}} {
		r := f.call(t, "k001", "k001", "POST", "/api/v1/oss/presign", in)
		want(t, r, 403, "storage_quota_exceeded")
		if !strings.Contains(string(r.Raw), "not measured yet") {
			t.Errorf("%v: %s", in, r.Raw)
		}
	}
	r := f.call(t, "k002", "k002", "POST", "/api/v1/oss/presign", map[string]any{"op": "post", "key": "a.png", "maxSize": 6})
	want(t, r, 403, "storage_quota_exceeded")
	if !strings.Contains(string(r.Raw), "not measured yet") {
		t.Errorf("maxSize over a never measured quota: %s", r.Raw)
	}
	r = f.call(t, "k002", "k002", "POST", "/api/v1/oss/presign", map[string]any{"op": "post", "key": "a.png"})
	want(t, r, 200, "")
	if g := httpapitest.Data[presignOutput](t, r); g.MaxSize != 5 {
		t.Fatalf("grant under a quota of 5, never measured = %+v", g)
	}
}
