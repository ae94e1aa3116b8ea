package main

import (
	"mime"
	"strings"
	"testing"

	"github.com/unitenant/unitenant/shared/objectstore"
	"github.com/unitenant/unitenant/shared/objectstore/osstest"
)

// TestUploadsAreNeverPages: an upload URL is never signed for a type that
// browsers run as a page or script of the origin serving it (HTML, SVG, XML,
// JavaScript), nor, without a declared type, for a key whose extension
// would make a store choose one. OSS serves objects with their uploaded type
// from the bucket's origin, shared by every tenant's links: a tenant's user
// would otherwise host a page there that runs for whoever opens its link.
// Declaring a harmless type stores such a file as a download. Nothing is
// written for a refused request, on either backend.
func TestUploadsAreNeverPages(t *testing.T) {
	t.Parallel()
	fake := osstest.New(t, "unitenant-test", "LTAI5tFakeKeyId", "fake-secret-0123456789")
	backends := map[string]map[string]string{
		"Local": nil,
		"OSS": {"STORAGE_BACKEND": "oss", "OSS_ENDPOINT": fake.Endpoint(), "OSS_BUCKET": fake.Bucket,
			"OSS_ACCESS_KEY_ID": fake.AccessKeyID, "OSS_ACCESS_KEY_SECRET": fake.AccessKeySecret},
	}
	for name, vars := range backends {
		t.Run(name, func(t *testing.T) {
			f := newFixture(t, vars)
			for _, in := range []map[string]any{
				{"key": "uploads/files/a.png", "contentType": "text/html"},
				{"key": "uploads/files/a.png", "contentType": "TEXT/HTML; charset=utf-8"},
				{"key": "uploads/images/a.svg", "contentType": "image/svg+xml"},
				{"key": "uploads/files/a", "contentType": "application/xhtml+xml"},
				{"key": "uploads/files/a", "contentType": "text/xml"},
				{"key": "uploads/files/a", "contentType": "application/xml"},
				{"key": "uploads/files/a", "contentType": "application/rss+xml"},
				{"key": "uploads/files/a", "contentType": "text/javascript"},
				{"key": "uploads/files/a", "contentType": "application/javascript"},
				{"key": "uploads/files/a.html"},
				{"key": "uploads/images/a.SVG"},
				{"key": "uploads/files/a.xml"},
				{"key": "uploads/files/a.js"},
			} {
				in["op"] = "put"
				resp := f.call(t, "k001", "k001", "POST", "/api/v1/oss/presign", in)
				if resp.Status != 400 || resp.Error == nil || resp.Error.Code != "invalid_content_type" || resp.Error.Fields["contentType"] == "" {
					t.Errorf("presign %v: %d %s, want 400 invalid_content_type naming contentType", in, resp.Status, resp.Raw)
				}
			}
			// Harmless types, and page extensions declared as something
			// harmless, are taken and upload.
			for _, in := range []map[string]any{
				{"key": "uploads/files/page.html", "contentType": "application/octet-stream"},
				{"key": "uploads/files/notes.txt", "contentType": "text/plain"},
				{"key": "uploads/images/logo.svg", "contentType": "application/octet-stream"},
				{"key": "uploads/files/report.pdf"},
				{"key": "uploads/files/data.json", "contentType": "application/json"},
			} {
				in["op"] = "put"
				resp := f.call(t, "k001", "k001", "POST", "/api/v1/oss/presign", in)
				want(t, resp, 200, "")
			}
			// get URLs are for whatever is stored.
			want(t, f.call(t, "k001", "k001", "POST", "/api/v1/oss/presign", map[string]any{"op": "get", "key": "uploads/files/old.html"}), 200, "")
		})
	}
	if keys := fake.Keys(); len(keys) != 0 {
		t.Errorf("OSS holds %q after presigning only", keys)
	}
}

// TestSTSUploadExtensionsAreHarmless: the extensions STS credentials may
// upload (objectstore.UploadExtensions, where OSS chooses the type from the
// extension when the client sends none) are ones presign takes without a
// declared type too: none is a page or script extension, and the type Go
// knows for each is not one browsers run.
func TestSTSUploadExtensionsAreHarmless(t *testing.T) {
	t.Parallel()
	if len(objectstore.UploadExtensions) == 0 {
		t.Fatal("no upload extensions")
	}
	f := newFixture(t, nil)
	for _, ext := range objectstore.UploadExtensions {
		if activeExtensions[ext] || activeExtensions[strings.ToLower(ext)] {
			t.Errorf("%s is a page or script extension", ext)
		}
		if mt, _, _ := mime.ParseMediaType(mime.TypeByExtension(ext)); activeType(mt) {
			t.Errorf("%s is typed %s, which browsers run", ext, mt)
		}
		want(t, f.call(t, "k001", "k001", "POST", "/api/v1/oss/presign", map[string]any{"op": "put", "key": "uploads/files/a" + ext}), 200, "")
	}
}
