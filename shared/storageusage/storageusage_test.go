package storageusage_test

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/unitenant/unitenant/shared/config"
	"github.com/unitenant/unitenant/shared/fault"
	"github.com/unitenant/unitenant/shared/objectstore"
	"github.com/unitenant/unitenant/shared/storageusage"
	"github.com/unitenant/unitenant/tests/testenv"
)

type fixture struct {
	db    *sql.DB
	store *objectstore.Service
	ids   map[string]int64
}

// newFixture: tenants k001 (active, 5 objects, 15 bytes), k002 (suspended,
// 2 objects, 300 bytes), k003 (purged, 1 object left behind: not measured)
// and k004 (active, no objects), on the local object store.
func newFixture(t *testing.T) *fixture {
	t.Helper()
	sys := testenv.NewSystem(t)
	store, err := objectstore.Load(config.FromMap(map[string]string{
		"STORAGE_BACKEND": "local", "LOCAL_STORAGE_DIR": t.TempDir(), "LOCAL_STORAGE_SECRET": strings.Repeat("s", 32),
	}), true)
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{db: sys.DB, store: store, ids: map[string]int64{}}
	for code, status := range map[string]string{"k001": "active", "k002": "suspended", "k003": "purged", "k004": "active"} {
		r, err := sys.DB.Exec("INSERT INTO tenants (tenant_code, tenant_name, subdomain, status) VALUES (?, ?, ?, ?)", code, code, code, status)
		if err != nil {
			t.Fatal(err)
		}
		f.ids[code], _ = r.LastInsertId()
	}
	for i, size := range []int{1, 2, 3, 4, 5} {
		f.put(t, fmt.Sprintf("tenants/k001/docs/%02d.txt", i), size)
	}
	f.put(t, "tenants/k002/a.png", 100)
	f.put(t, "tenants/k002/b/c.pdf", 200)
	f.put(t, "tenants/k003/left.txt", 7)
	f.put(t, "tenants/k0011/not-k001.txt", 1000) // a prefix of k001's name, not its prefix
	return f
}

func (f *fixture) put(t *testing.T, key string, size int) {
	t.Helper()
	if err := f.store.Store.Put(context.Background(), key, strings.NewReader(strings.Repeat("x", size)), int64(size), "text/plain"); err != nil {
		t.Fatal(err)
	}
}

func (f *fixture) usage(t *testing.T, code string) storageusage.Usage {
	t.Helper()
	u, err := storageusage.Get(context.Background(), f.db, f.ids[code])
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// TestMeasureSumsEachTenantsPrefix: every tenant but the purged one is
// measured, each over its own prefix only, page by page; a second run
// within Every measures nobody and changes nothing.
func TestMeasureSumsEachTenantsPrefix(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := context.Background()
	if u := f.usage(t, "k001"); u.MeasuredAt != nil || u.UsedBytes != 0 {
		t.Fatalf("before any run: %+v", u)
	}
	now := time.Now()
	res, err := storageusage.Measure(ctx, f.db, f.store, now, now.Add(time.Minute), storageusage.Options{PageSize: 2})
	if err != nil {
		t.Fatal(err)
	}
	// k001: 3 pages of 2; k002: 1 page; k004: 1 (empty) page.
	if res.Measured != 3 || res.Partial != 0 || res.Pages != 5 || res.Bytes != 315 {
		t.Fatalf("result %+v, want 3 measured in 5 pages, 315 bytes", res)
	}
	for code, want := range map[string][2]int64{"k001": {15, 5}, "k002": {300, 2}, "k004": {0, 0}} {
		u := f.usage(t, code)
		if u.UsedBytes != want[0] || u.Objects != want[1] || u.MeasuredAt == nil {
			t.Errorf("%s: %+v, want %d bytes in %d objects, measured", code, u, want[0], want[1])
		}
	}
	if u := f.usage(t, "k003"); u.MeasuredAt != nil {
		t.Errorf("the purged tenant was measured: %+v", u)
	}

	again, err := storageusage.Measure(ctx, f.db, f.store, now.Add(time.Minute), now.Add(2*time.Minute), storageusage.Options{PageSize: 2})
	if err != nil {
		t.Fatal(err)
	}
	if again.Measured != 0 || again.Pages != 0 {
		t.Fatalf("a run within Every measured again: %+v", again)
	}
	// Past Every, a deletion shows.
	if err := f.store.Store.Delete(ctx, "tenants/k002/a.png"); err != nil {
		t.Fatal(err)
	}
	later := now.Add(storageusage.DefaultEvery + time.Minute)
	if _, err := storageusage.Measure(ctx, f.db, f.store, later, time.Now().Add(time.Minute), storageusage.Options{}); err != nil {
		t.Fatal(err)
	}
	if u := f.usage(t, "k002"); u.UsedBytes != 200 || u.Objects != 1 {
		t.Fatalf("k002 after a deletion: %+v, want 200 bytes in 1 object", u)
	}
}

// cutStore is the local store with a crash point: after cutAfter listings
// it cancels the run's context, as a function stopped at its deadline or
// killed between two pages.
type cutStore struct {
	objectstore.Store
	mu       sync.Mutex
	lists    int
	cutAfter int
	cancel   context.CancelFunc
}

func (s *cutStore) List(ctx context.Context, prefix, marker string, max int) (objectstore.Page, error) {
	p, err := s.Store.List(ctx, prefix, marker, max)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.lists++; s.lists == s.cutAfter {
		s.cancel()
	}
	return p, err
}

// TestMeasureResumesWhereAScanStopped: a scan stopped half-way keeps its
// place and partial sums, shows nothing half-done, and the next run
// finishes it from there (fewer pages than from the start) with the same
// totals as one uninterrupted scan.
func TestMeasureResumesWhereAScanStopped(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cut := &cutStore{Store: f.store.Store, cutAfter: 2, cancel: cancel}
	stopping := *f.store
	stopping.Store = cut
	// Only k001 is due: the others were measured just now.
	now := time.Now()
	for _, code := range []string{"k002", "k004"} {
		if _, err := f.db.Exec("INSERT INTO tenant_storage_usage (tenant_id, measured_at) VALUES (?, ?)", f.ids[code], now.UTC()); err != nil {
			t.Fatal(err)
		}
	}
	res, err := storageusage.Measure(ctx, f.db, &stopping, now, now.Add(time.Minute), storageusage.Options{PageSize: 2})
	if err != nil {
		t.Fatal(err)
	}
	if res.Measured != 0 || res.Partial != 1 || res.Pages != 2 {
		t.Fatalf("stopped run: %+v, want k001 partial after 2 pages", res)
	}
	var marker string
	var bytes, objects int64
	if err := f.db.QueryRow("SELECT scan_marker, scan_bytes, scan_objects FROM tenant_storage_usage WHERE tenant_id = ?", f.ids["k001"]).Scan(&marker, &bytes, &objects); err != nil {
		t.Fatal(err)
	}
	if marker != "tenants/k001/docs/03.txt" || bytes != 10 || objects != 4 {
		t.Fatalf("saved place %q %d bytes %d objects, want after 03.txt, 10 bytes, 4 objects", marker, bytes, objects)
	}
	if u := f.usage(t, "k001"); u.MeasuredAt != nil || u.UsedBytes != 0 {
		t.Fatalf("a half scan shows: %+v", u)
	}

	res, err = storageusage.Measure(context.Background(), f.db, f.store, now, time.Now().Add(time.Minute), storageusage.Options{PageSize: 2})
	if err != nil {
		t.Fatal(err)
	}
	if res.Measured != 1 || res.Pages != 1 {
		t.Fatalf("resumed run: %+v, want k001 finished in 1 page", res)
	}
	if u := f.usage(t, "k001"); u.UsedBytes != 15 || u.Objects != 5 || u.MeasuredAt == nil {
		t.Fatalf("k001 after the resumed scan: %+v, want 15 bytes in 5 objects", u)
	}
	if err := f.db.QueryRow("SELECT COUNT(*) FROM tenant_storage_usage WHERE scan_marker IS NOT NULL OR scan_bytes <> 0").Scan(&objects); err != nil || objects != 0 {
		t.Fatalf("scans left in progress: %d (%v)", objects, err)
	}
}

// TestConcurrentMeasuresAgree: runs at once never mix their sums.
func TestConcurrentMeasuresAgree(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	for i := 0; i < 40; i++ {
		f.put(t, fmt.Sprintf("tenants/k001/many/%03d.bin", i), 10)
	}
	now := time.Now()
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := storageusage.Measure(context.Background(), f.db, f.store, now, time.Now().Add(time.Minute), storageusage.Options{PageSize: 3})
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	// Any run may have left a tenant to another; one more finishes all.
	if _, err := storageusage.Measure(context.Background(), f.db, f.store, now, time.Now().Add(time.Minute), storageusage.Options{PageSize: 3}); err != nil {
		t.Fatal(err)
	}
	if u := f.usage(t, "k001"); u.UsedBytes != 415 || u.Objects != 45 {
		t.Fatalf("k001: %+v, want 415 bytes in 45 objects", u)
	}
	if u := f.usage(t, "k002"); u.UsedBytes != 300 || u.Objects != 2 {
		t.Fatalf("k002: %+v, want 300 bytes in 2 objects", u)
	}
}

// TestCheckHoldsTheQuota: no quota, or under it, passes; at or over it is
// 403 storage_quota_exceeded naming the figures.
func TestCheckHoldsTheQuota(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := context.Background()
	id := f.ids["k001"]
	now := time.Now()
	if _, err := storageusage.Measure(ctx, f.db, f.store, now, now.Add(time.Minute), storageusage.Options{}); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		max  any
		full bool
	}{{nil, false}, {int64(16), false}, {int64(15), true}, {int64(1), true}} {
		if _, err := f.db.Exec("UPDATE tenants SET max_storage = ? WHERE id = ?", tc.max, id); err != nil {
			t.Fatal(err)
		}
		err := storageusage.Check(ctx, f.db, id)
		if !tc.full && err != nil {
			t.Errorf("max %v: %v, want allowed", tc.max, err)
		}
		if tc.full {
			fe, ok := fault.As(err)
			if !ok || fe.Kind != fault.Forbidden || fe.Code != "storage_quota_exceeded" || !strings.Contains(fe.Message, "15 bytes") {
				t.Errorf("max %v: %v, want 403 storage_quota_exceeded naming 15 bytes", tc.max, err)
			}
		}
	}
	if err := storageusage.Check(ctx, f.db, 999999); fault.CodeOf(err) != "tenant_not_found" {
		t.Errorf("unknown tenant: %v", err)
	}
}
