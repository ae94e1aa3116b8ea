package main

import (
	"context"
	"database/sql"
	"strings"
	"testing"
	"time"

	"github.com/aliyun/aliyun-oss-go-sdk/oss"

	"github.com/unitenant/unitenant/shared/lifecycle"
	"github.com/unitenant/unitenant/shared/logging"
	"github.com/unitenant/unitenant/shared/objectstore"
	"github.com/unitenant/unitenant/shared/objectstore/osstest"
	"github.com/unitenant/unitenant/shared/sqldb"
	"github.com/unitenant/unitenant/tests/testenv"
)

// TestAttackOneTenantsTempKeyBlocksNoPurge: tenant k001 (active) has a
// folder the OSS console made under its temp/ ("temp/sub/"), a week old.
// The run's sweep could not delete it by name and failed, and the run
// stopped there, every day: k002, deleted and due, was never purged (nor
// anyone else), and the system database's spent rows never pruned.
func TestAttackOneTenantsTempKeyBlocksNoPurge(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	sys := testenv.NewSystem(t)
	ts := testenv.NewTenants(t, sys.DB, sys.Box)
	fake := osstest.New(t, "unitenant-test", "LTAI5tFakeKeyId", "fake-secret-0123456789")
	s, err := objectstore.NewOSS(objectstore.OSSConfig{Endpoint: fake.Endpoint(), Bucket: fake.Bucket,
		AccessKeyID: fake.AccessKeyID, AccessKeySecret: fake.AccessKeySecret})
	if err != nil {
		t.Fatal(err)
	}
	store := &objectstore.Service{Backend: objectstore.BackendOSS, Store: s, OSS: s, Layout: objectstore.DefaultLayout()}
	ts.Pipeline.Storage = store
	now := time.Now().UTC()
	ids := map[string]int64{}
	for _, code := range []string{"k001", "k002"} {
		id, _, err := ts.Create(t, code, 0)
		if err != nil {
			t.Fatal(err)
		}
		ids[code] = id
	}
	c, err := oss.New(fake.Endpoint(), fake.AccessKeyID, fake.AccessKeySecret)
	if err != nil {
		t.Fatal(err)
	}
	b, err := c.Bucket(fake.Bucket)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.PutObject("tenants/k001/temp/sub/", strings.NewReader("")); err != nil {
		t.Fatal(err)
	}
	due := now.Add(-time.Minute)
	err = sqldb.InTx(ctx, sys.DB, func(tx *sql.Tx) error {
		if _, err := tx.Exec("UPDATE tenants SET status = 'deleted', deleted_at = ?, scheduled_deletion_at = ? WHERE id = ?", now, due, ids["k002"]); err != nil {
			return err
		}
		return lifecycle.Schedule(ctx, tx, ids["k002"], 0, due)
	})
	if err != nil {
		t.Fatal(err)
	}
	// The run is a week and a day later: what is stored now is old by then.
	later := func() time.Time { return time.Now().Add(lifecycle.DefaultTempAge + 24*time.Hour) }
	j := &job{opts: lifecycle.Options{Sys: sys.DB, Box: sys.Box, Store: store, Log: logging.Discard()}, budget: time.Minute, now: later}
	out, err := j.run(ctx)
	if err != nil {
		t.Fatalf("run: %v", err)
	}
	if res := out.(result); len(res.Purge.Purged) != 1 || res.Purge.Purged[0] != "k002" {
		t.Fatalf("result %+v, want k002 purged", res)
	}
	var status string
	if err := sys.DB.QueryRow("SELECT status FROM tenants WHERE id = ?", ids["k002"]).Scan(&status); err != nil || status != "purged" {
		t.Fatalf("k002 is %q (%v), want purged", status, err)
	}
	for _, k := range fake.Keys() {
		if strings.HasPrefix(k, "tenants/k002/") {
			t.Errorf("k002's %s is left", k)
		}
	}
}
