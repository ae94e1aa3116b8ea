package main

import (
	"context"
	"database/sql"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/unitenant/unitenant/shared/config"
	"github.com/unitenant/unitenant/shared/lifecycle"
	"github.com/unitenant/unitenant/shared/logging"
	"github.com/unitenant/unitenant/shared/objectstore"
	"github.com/unitenant/unitenant/shared/sqldb"
	"github.com/unitenant/unitenant/tests/testenv"
)

// A run purges the tenant whose grace period has ended, leaves the one
// still in it, and reports both its sweep and its purge.
func TestJobPurgesDueTenants(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	sys := testenv.NewSystem(t)
	ts := testenv.NewTenants(t, sys.DB, sys.Box)
	store, err := objectstore.Load(config.FromMap(map[string]string{
		"STORAGE_BACKEND": "local", "LOCAL_STORAGE_DIR": t.TempDir(), "LOCAL_STORAGE_SECRET": strings.Repeat("s", 32),
	}), true)
	if err != nil {
		t.Fatal(err)
	}
	ts.Pipeline.Storage = store
	now := time.Now().UTC()
	for code, due := range map[string]time.Time{"k001": now.Add(-time.Minute), "k002": now.Add(24 * time.Hour)} {
		id, _, err := ts.Create(t, code, 0)
		if err != nil {
			t.Fatal(err)
		}
		err = sqldb.InTx(ctx, sys.DB, func(tx *sql.Tx) error {
			if _, err := tx.Exec("UPDATE tenants SET status = 'deleted', deleted_at = ?, scheduled_deletion_at = ? WHERE id = ?", now, due, id); err != nil {
				return err
			}
			return lifecycle.Schedule(ctx, tx, id, 0, due)
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	// Spent rows go too: a rate-limit window over for a day, not the current one.
	for _, end := range []time.Time{now.Add(-24 * time.Hour), now.Add(time.Minute)} {
		if _, err := sys.DB.Exec("INSERT INTO rate_limit_counters (bucket_key, window_start, `count`, expires_at) VALUES ('ai:t:1', ?, 1, ?)", end.Add(-time.Minute), end); err != nil {
			t.Fatal(err)
		}
	}
	j := &job{opts: lifecycle.Options{Sys: sys.DB, Box: sys.Box, Store: store, Log: logging.Discard()}, budget: time.Minute, now: time.Now}
	out, err := j.run(ctx)
	if err != nil {
		t.Fatal(err)
	}
	res := out.(result)
	if len(res.Purge.Purged) != 1 || res.Purge.Purged[0] != "k001" || len(res.Purge.Archives) != 1 || res.Purge.Stopped {
		t.Fatalf("result %+v", res)
	}
	var windows int
	if err := sys.DB.QueryRow("SELECT COUNT(*) FROM rate_limit_counters WHERE bucket_key = 'ai:t:1'").Scan(&windows); err != nil || res.Prune["rate_limit_counters"] != 1 || windows != 1 {
		t.Fatalf("pruned %v, %d windows left (%v); want the spent one gone, the current one kept", res.Prune, windows, err)
	}
	b, err := json.Marshal(res)
	if err != nil || !strings.Contains(string(b), `"purged":["k001"]`) || !strings.Contains(string(b), `"tempObjectsDeleted":0`) {
		t.Fatalf("report JSON %s (%v)", b, err)
	}
	var statuses []string
	rows, err := sys.DB.Query("SELECT status FROM tenants ORDER BY tenant_code")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	for rows.Next() {
		var s string
		_ = rows.Scan(&s)
		statuses = append(statuses, s)
	}
	if strings.Join(statuses, ",") != "purged,deleted" {
		t.Fatalf("tenant statuses %v, want k001 purged and k002 still deleted", statuses)
	}
}
