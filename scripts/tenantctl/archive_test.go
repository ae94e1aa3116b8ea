package main

import (
	"context"
	"database/sql"
	"encoding/json"
	"maps"
	"strings"
	"testing"
	"time"

	"github.com/unitenant/unitenant/shared/config"
	"github.com/unitenant/unitenant/shared/lifecycle"
	"github.com/unitenant/unitenant/shared/objectstore"
	"github.com/unitenant/unitenant/shared/secretbox"
	"github.com/unitenant/unitenant/shared/sqldb"
)

// A purged tenant's archive comes back into a new database with the rows it
// had; a damaged archive or an existing database is refused.
func TestRestoreArchive(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newTestEnv(t)
	e.mustRun("tenant", "add", "--code", "k001", "--name", "Kindergarten One", "--contact-phone", "13900000000")
	before := map[string]int64{}
	db := e.tenantDB("k001")
	rows, err := db.Query("SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() AND TABLE_TYPE = 'BASE TABLE'")
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var name string
		_ = rows.Scan(&name)
		before[name] = 0
	}
	rows.Close()
	for name := range before {
		var n int64
		if err := db.QueryRow("SELECT COUNT(*) FROM `" + name + "`").Scan(&n); err != nil {
			t.Fatal(err)
		}
		before[name] = n
	}

	box, err := secretbox.FromEnv(e.vars["MASTER_KEY"], false, "")
	if err != nil {
		t.Fatal(err)
	}
	store, err := objectstore.Load(config.FromMap(e.vars), true)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC()
	err = sqldb.InTx(ctx, e.sys, func(tx *sql.Tx) error {
		if _, err := tx.Exec("UPDATE tenants SET status = 'deleted', deleted_at = ? WHERE tenant_code = 'k001'", now); err != nil {
			return err
		}
		var id int64
		if err := tx.QueryRow("SELECT id FROM tenants WHERE tenant_code = 'k001'").Scan(&id); err != nil {
			return err
		}
		return lifecycle.Schedule(ctx, tx, id, 0, now)
	})
	if err != nil {
		t.Fatal(err)
	}
	rep, err := lifecycle.Purge(ctx, lifecycle.Options{Sys: e.sys, Box: box, Store: store})
	if err != nil || len(rep.Archives) != 1 {
		t.Fatalf("purge %+v, %v", rep, err)
	}
	key := rep.Archives[0]

	out := e.mustRun("restore-archive", key, "--into", e.prefix+"restored")
	var res restoredArchive
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	if res.Tenant != "k001" || res.Database != e.prefix+"restored" || !maps.Equal(res.RowCounts, before) {
		t.Fatalf("restored %+v, want the counts %v", res, before)
	}

	if _, err := e.run("restore-archive", key, "--into", e.prefix+"restored"); err == nil || !strings.Contains(err.Error(), "exists") {
		t.Fatalf("restore into an existing database: %v", err)
	}
	if _, err := e.sys.Exec("UPDATE tenant_archives SET checksum = ? WHERE object_key = ?", strings.Repeat("0", 64), key); err != nil {
		t.Fatal(err)
	}
	if _, err := e.run("restore-archive", key, "--into", e.prefix+"again"); err == nil || !strings.Contains(err.Error(), "damaged") {
		t.Fatalf("restore of a damaged archive: %v", err)
	}
	if _, err := e.run("restore-archive", "--into", "x"); err == nil {
		t.Fatal("no archive key accepted")
	}
}
