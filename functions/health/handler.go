package main

import (
	"context"
	"database/sql"
	"log/slog"
	"net/http"
	"time"

	"github.com/unitenant/unitenant/shared/config"
	"github.com/unitenant/unitenant/shared/fault"
	"github.com/unitenant/unitenant/shared/httpapi"
	"github.com/unitenant/unitenant/shared/migration"
)

// Routes:
//
//	GET /api/health   status, database reachability, system schema version, build
func newHandler(db *sql.DB, log *slog.Logger) http.Handler {
	h := &handler{db: db, log: log, timeout: 2 * time.Second}
	rt := httpapi.NewRouter()
	rt.HandleFunc("GET /api/health", h.health)
	return rt
}

type handler struct {
	db      *sql.DB
	log     *slog.Logger
	timeout time.Duration
}

// report is the body of GET /api/health.
type report struct {
	Status        string `json:"status"`
	Database      string `json:"database"`
	SchemaVersion int    `json:"schemaVersion"`
	Version       string `json:"version"`
}

func (h *handler) health(w http.ResponseWriter, r *http.Request) {
	// A load balancer must get its answer quickly even when MySQL hangs.
	ctx, cancel := context.WithTimeout(r.Context(), h.timeout)
	defer cancel()
	rep := report{Status: "ok", Database: "ok", Version: config.Version}
	v, err := migration.Version(ctx, h.db)
	if err != nil {
		h.log.WarnContext(ctx, "health: database unreachable", "err", err)
		rep.Status, rep.Database = "degraded", "down"
		httpapi.FailWith(w, r, h.log, fault.New(fault.Unavailable, "database_unavailable", "the system database is unreachable"), rep)
		return
	}
	rep.SchemaVersion = v
	httpapi.OK(w, r, rep)
}
