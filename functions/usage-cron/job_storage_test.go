package main

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/unitenant/unitenant/shared/config"
	"github.com/unitenant/unitenant/shared/logging"
	"github.com/unitenant/unitenant/shared/objectstore"
	"github.com/unitenant/unitenant/shared/storageusage"
)

// TestJobMeasuresStorage: a run measures each tenant's prefix and reports
// it; the next run within storageusage.DefaultEvery leaves the figures as
// they are.
func TestJobMeasuresStorage(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db := newSystem(t,
		"INSERT INTO tenants (id, tenant_code, tenant_name, subdomain, status, max_storage) VALUES (1, 'u001', 'u001', 'u001', 'active', 10)",
		"INSERT INTO tenants (id, tenant_code, tenant_name, subdomain, status) VALUES (2, 'u002', 'u002', 'u002', 'active')",
	)
	store, err := objectstore.Load(config.FromMap(map[string]string{
		"STORAGE_BACKEND": "local", "LOCAL_STORAGE_DIR": t.TempDir(), "LOCAL_STORAGE_SECRET": strings.Repeat("s", 32),
	}), true)
	if err != nil {
		t.Fatal(err)
	}
	for key, body := range map[string]string{"tenants/u001/a.txt": "hello", "tenants/u001/b/c.txt": "world!", "tenants/u002/x.png": "png"} {
		if err := store.Store.Put(ctx, key, strings.NewReader(body), int64(len(body)), "text/plain"); err != nil {
			t.Fatal(err)
		}
	}
	now := time.Now()
	j := &job{db: db, log: logging.Discard(), now: func() time.Time { return now }, store: store}
	out, err := j.run(ctx)
	if err != nil {
		t.Fatal(err)
	}
	res := out.(result)
	if res.Storage == nil || *res.Storage != (storageusage.Result{Measured: 2, Pages: 2, Bytes: 14}) {
		t.Fatalf("storage %+v, want 2 tenants measured, 14 bytes", res.Storage)
	}
	b, _ := json.Marshal(res)
	if !strings.Contains(string(b), `"storage":{"measured":2,"partial":0,"pages":2,"bytes":14}`) {
		t.Errorf("the report: %s", b)
	}
	u, err := storageusage.Get(ctx, db, 1)
	if err != nil || u.UsedBytes != 11 || u.Objects != 2 || u.MeasuredAt == nil || !u.Full() {
		t.Fatalf("u001: %+v (%v), want 11 bytes in 2 objects, over its 10", u, err)
	}
	out, err = j.run(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st := out.(result).Storage; st.Measured != 0 || st.Pages != 0 {
		t.Errorf("the second run measured again: %+v", st)
	}
}
