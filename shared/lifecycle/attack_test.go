package lifecycle_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/unitenant/unitenant/shared/lifecycle"
	"github.com/unitenant/unitenant/shared/objectstore"
	"github.com/unitenant/unitenant/shared/objectstore/osstest"
)

// useOSS puts e's tenants on a fake OSS (the real wire protocol) instead of
// the local store, which cannot hold every key OSS can.
func (e *purgeEnv) useOSS() *osstest.Server {
	e.t.Helper()
	fake := osstest.New(e.t, "unitenant-test", "LTAI5tFakeKeyId", "fake-secret-0123456789")
	s, err := objectstore.NewOSS(objectstore.OSSConfig{Endpoint: fake.Endpoint(), Bucket: fake.Bucket,
		AccessKeyID: fake.AccessKeyID, AccessKeySecret: fake.AccessKeySecret})
	if err != nil {
		e.t.Fatal(err)
	}
	e.store = &objectstore.Service{Backend: objectstore.BackendOSS, Store: s, OSS: s, Layout: objectstore.DefaultLayout()}
	e.tenants.Pipeline.Storage = e.store
	return fake
}

func keysUnder(fake *osstest.Server, prefix string) []string {
	var out []string
	for _, k := range fake.Keys() {
		if strings.HasPrefix(k, prefix) {
			out = append(out, k)
		}
	}
	return out
}

// TestAttackPurgeRemovesKeysOnlyTheStoreCanName: a deleted tenant's prefix
// holds keys CheckKey refuses — a folder the OSS console made
// ("photos/"), an STS upload "a//b.jpg". The purge deleted each listed key
// through Tenant.Delete, which refuses them: every attempt failed, the
// third alerted, and the tenant was never purged, its files left in the
// bucket for good. The purge must empty the prefix, and touch nothing of
// k0011 (whose prefix k001's is the start of, as text).
func TestAttackPurgeRemovesKeysOnlyTheStoreCanName(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newPurgeEnv(t)
	fake := e.useOSS()
	if _, _, err := e.tenants.Create(t, "k0011", 0); err != nil {
		t.Fatal(err)
	}
	d := e.createDeleted("k001", "")
	for _, k := range []string{"tenants/k001/photos/", "tenants/k001/a//b.jpg", "tenants/k001/uploads/images/x.jpg", "tenants/k0011/a//b.jpg"} {
		fake.Plant(t, k)
	}
	other := keysUnder(fake, "tenants/k0011/")
	for run := range 3 { // as many as the row's retries
		rep, err := lifecycle.Purge(ctx, e.options(fmt.Sprintf("run-%d", run), e.now.Add(time.Duration(run)*24*time.Hour)))
		if err != nil {
			t.Fatalf("run %d: %v", run, err)
		}
		if slices.Equal(rep.Purged, []string{"k001"}) {
			break
		}
		if run == 2 {
			t.Fatalf("k001 never purged: last run %+v", rep)
		}
	}
	if left := keysUnder(fake, "tenants/k001/"); len(left) != 0 {
		t.Errorf("k001's prefix still holds %q", left)
	}
	if got := keysUnder(fake, "tenants/k0011/"); !slices.Equal(got, other) {
		t.Errorf("k0011's objects changed: %q, want %q", got, other)
	}
	if n := e.count("SELECT COUNT(*) FROM tenants WHERE id = ? AND status = 'purged'", d.id); n != 1 {
		t.Errorf("k001 is not purged")
	}
}

// TestAttackSweepGetsPastKeysOnlyTheStoreCanName: an old folder marker (a
// console's "temp/sub/") or an STS upload "temp//x.jpg" under one tenant's
// temp/ failed the whole sweep on every run: Tenant.Delete refuses such
// keys, Sweep returned the error, and cleanup-cron, which sweeps first,
// stopped there — no tenant after it swept, and no tenant of the platform
// ever purged again. Such a key is left for the purge (which removes the
// prefix as listed); the sweep goes on.
func TestAttackSweepGetsPastKeysOnlyTheStoreCanName(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newPurgeEnv(t)
	fake := e.useOSS()
	for _, code := range []string{"k001", "k002"} {
		if _, _, err := e.tenants.Create(t, code, 0); err != nil {
			t.Fatal(err)
		}
	}
	for _, k := range []string{"tenants/k001/temp/sub/", "tenants/k001/temp//x.jpg", "tenants/k001/temp/old.jpg", "tenants/k002/temp/old.jpg"} {
		fake.Plant(t, k)
	}
	o := e.options("sweep", time.Now().Add(lifecycle.DefaultTempAge+24*time.Hour)) // every object is old by then
	rep, err := lifecycle.Sweep(ctx, o)
	if err != nil {
		t.Fatalf("sweep: %v (%+v)", err, rep)
	}
	for _, k := range []string{"tenants/k001/temp/old.jpg", "tenants/k002/temp/old.jpg"} {
		if _, _, ok := fake.Object(k); ok {
			t.Errorf("%s was not swept", k)
		}
	}
	if _, _, ok := fake.Object("tenants/k002/temp/.keep"); !ok {
		t.Errorf("k002's temp/ folder marker was swept")
	}
	if rep.TempObjects != 2 {
		t.Errorf("report %+v, want 2 temp objects deleted", rep)
	}
}
