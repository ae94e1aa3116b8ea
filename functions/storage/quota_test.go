package main

import (
	"context"
	"testing"
	"time"

	"github.com/unitenant/unitenant/shared/storageusage"
)

// TestQuotaStopsUploadGrants, on OSS (the fake speaks its wire protocol):
// once usage-cron's measurement shows k001 at its max_storage, k001 gets no
// upload URL and no STS credentials (STS is not even asked), while it still
// downloads, lists and deletes; after deleting and a new measurement it
// uploads again. k002, with no quota, is never held back by k001's.
func TestQuotaStopsUploadGrants(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f, _, sts := newOSSFixture(t)
	if _, err := f.sys.Exec("UPDATE tenants SET max_storage = 20 WHERE tenant_code = 'k001'"); err != nil {
		t.Fatal(err)
	}
	putURL := map[string]any{"op": "put", "key": "docs/more.png", "contentType": "image/png"}
	measure := func(now time.Time) {
		t.Helper()
		if _, err := storageusage.Measure(ctx, f.sys, f.objects, now, time.Now().Add(time.Minute), storageusage.Options{}); err != nil {
			t.Fatal(err)
		}
	}

	// Under the quota (never measured yet): uploads are granted.
	f.roundTrip(t, "docs/a.png", []byte("0123456789"))     // 10 bytes
	f.roundTrip(t, "docs/b.png", []byte("01234567890123")) // 14 bytes
	for _, code := range []string{"k001", "k002"} {
		want(t, f.call(t, code, code, "POST", "/api/v1/oss/presign", putURL), 200, "")
	}
	measure(time.Now())

	// 24 bytes of 20: no upload grant for k001.
	n := len(sts.calls)
	want(t, f.call(t, "k001", "k001", "POST", "/api/v1/oss/presign", putURL), 403, "storage_quota_exceeded")
	want(t, f.call(t, "k001", "k001", "POST", "/api/v1/oss/sts-token", nil), 403, "storage_quota_exceeded")
	if len(sts.calls) != n {
		t.Fatalf("STS asked for a tenant at its quota: %v", sts.calls[n:])
	}
	// Reading, listing and deleting go on; k002 uploads as before.
	want(t, f.call(t, "k001", "k001", "POST", "/api/v1/oss/presign", map[string]any{"op": "get", "key": "docs/a.png"}), 200, "")
	want(t, f.call(t, "k001", "k001", "GET", "/api/v1/oss/files?prefix=docs/", nil), 200, "")
	want(t, f.call(t, "k002", "k002", "POST", "/api/v1/oss/presign", putURL), 200, "")
	want(t, f.call(t, "k002", "k002", "POST", "/api/v1/oss/sts-token", nil), 200, "")
	want(t, f.call(t, "k001", "k001", "DELETE", "/api/v1/oss/files?key=docs/b.png", nil), 200, "")

	// Still refused until a measurement shows the deletion...
	want(t, f.call(t, "k001", "k001", "POST", "/api/v1/oss/presign", putURL), 403, "storage_quota_exceeded")
	// ...which the next hourly run makes: 10 bytes of 20.
	measure(time.Now().Add(storageusage.DefaultEvery + time.Minute))
	want(t, f.call(t, "k001", "k001", "POST", "/api/v1/oss/presign", putURL), 200, "")
	want(t, f.call(t, "k001", "k001", "POST", "/api/v1/oss/sts-token", nil), 200, "")
}
