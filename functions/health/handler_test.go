package main

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/unitenant/unitenant/infra/schema"
	"github.com/unitenant/unitenant/shared/logging"
	"github.com/unitenant/unitenant/shared/migration"
	"github.com/unitenant/unitenant/shared/provisioning"
	"github.com/unitenant/unitenant/shared/sqldb"
	"github.com/unitenant/unitenant/shared/sqldb/sqldbtest"
)

type body struct {
	Success bool   `json:"success"`
	Data    report `json:"data"`
	Error   *struct {
		Code string `json:"code"`
	} `json:"error"`
	RequestID string `json:"requestId"`
}

func call(t *testing.T, h http.Handler) (int, body) {
	t.Helper()
	w := httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest("GET", "/api/health", nil))
	var b body
	if err := json.Unmarshal(w.Body.Bytes(), &b); err != nil {
		t.Fatalf("body %q: %v", w.Body.String(), err)
	}
	return w.Code, b
}

func TestHealthOK(t *testing.T) {
	t.Parallel()
	db, _ := sqldbtest.NewDatabase(t)
	if _, err := provisioning.MigrateSystem(context.Background(), db, logging.Discard()); err != nil {
		t.Fatal(err)
	}
	ms, _ := schema.System()
	code, b := call(t, newHandler(db, logging.Discard()))
	if code != 200 || !b.Success || b.Data.Status != "ok" || b.Data.Database != "ok" {
		t.Fatalf("got %d %+v", code, b)
	}
	if b.Data.SchemaVersion != migration.Latest(ms) {
		t.Errorf("schemaVersion = %d, want %d", b.Data.SchemaVersion, migration.Latest(ms))
	}
	if b.Data.Version == "" {
		t.Error("version is empty")
	}
}

func TestHealthDatabaseDown(t *testing.T) {
	t.Parallel()
	// Nothing listens on port 1: the database is down.
	db, err := sqldb.OpenDSN("root@tcp(127.0.0.1:1)/unitenant?timeout=1s")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	h := &handler{db: db, log: logging.Discard(), timeout: 2 * time.Second}
	rt := http.HandlerFunc(h.health)
	code, b := call(t, rt)
	if code != 503 || b.Success || b.Data.Database != "down" || b.Error == nil || b.Error.Code != "database_unavailable" {
		t.Fatalf("got %d %+v, want 503 with database down", code, b)
	}
}
