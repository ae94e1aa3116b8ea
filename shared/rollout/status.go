package rollout

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/unitenant/unitenant/infra/schema"
	"github.com/unitenant/unitenant/shared/migration"
)

// Fleet is the tenant fleet by schema version, read from the system
// database alone.
type Fleet struct {
	Target   int            `json:"target"` // the latest tenant migration
	Tenants  int            `json:"tenants"`
	Behind   int            `json:"behind"`
	Versions []VersionCount `json:"versions"`
	// Failures are the tenants still behind whose last attempt failed.
	Failures    []Failure    `json:"failures"`
	LastRollout *RolloutView `json:"lastRollout,omitempty"`
}

// VersionCount is how many tenant databases are at Version.
type VersionCount struct {
	Version int `json:"version"`
	Tenants int `json:"tenants"`
}

// RolloutView is a schema_rollouts row.
type RolloutView struct {
	ID         int64      `json:"id"`
	Target     int        `json:"target"`
	Status     string     `json:"status"`
	Wave       int        `json:"wave"`
	Total      int        `json:"total"`
	Succeeded  int        `json:"succeeded"`
	Failed     int        `json:"failed"`
	UpToDate   int        `json:"upToDate"`
	LastError  string     `json:"lastError,omitempty"`
	StartedAt  *time.Time `json:"startedAt,omitempty"`
	FinishedAt *time.Time `json:"finishedAt,omitempty"`
}

// Status reads the fleet's schema versions, its failures and the latest
// roll-out. ms are the tenant migrations (nil: schema.Tenant()).
func Status(ctx context.Context, sys *sql.DB, ms []migration.Migration) (*Fleet, error) {
	if ms == nil {
		var err error
		if ms, err = schema.Tenant(); err != nil {
			return nil, fmt.Errorf("load tenant migrations: %w", err)
		}
	}
	f := &Fleet{Target: migration.Latest(ms), Versions: []VersionCount{}, Failures: []Failure{}}
	rows, err := sys.QueryContext(ctx, "SELECT d.schema_version, COUNT(*) "+fleetFrom+" GROUP BY d.schema_version ORDER BY d.schema_version")
	if err != nil {
		return nil, fmt.Errorf("rollout status: versions: %w", err)
	}
	for rows.Next() {
		var v VersionCount
		if err := rows.Scan(&v.Version, &v.Tenants); err != nil {
			rows.Close()
			return nil, fmt.Errorf("rollout status: versions: %w", err)
		}
		f.Versions = append(f.Versions, v)
		f.Tenants += v.Tenants
		if v.Version < f.Target {
			f.Behind += v.Tenants
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("rollout status: versions: %w", err)
	}

	rows, err = sys.QueryContext(ctx, `
		SELECT m.tenant_id, t.tenant_code, m.database_name, m.version, m.attempts, COALESCE(m.last_error, '')
		FROM tenant_schema_migrations m
		JOIN tenants t ON t.id = m.tenant_id
		JOIN tenant_databases d ON d.tenant_id = m.tenant_id
		WHERE m.status = 'failed' AND d.schema_version < m.version AND d.status = 'ready'
		ORDER BY m.tenant_id, m.version`)
	if err != nil {
		return nil, fmt.Errorf("rollout status: failures: %w", err)
	}
	for rows.Next() {
		var x Failure
		if err := rows.Scan(&x.TenantID, &x.Code, &x.Database, &x.Version, &x.Attempts, &x.Error); err != nil {
			rows.Close()
			return nil, fmt.Errorf("rollout status: failures: %w", err)
		}
		f.Failures = append(f.Failures, x)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("rollout status: failures: %w", err)
	}

	var r RolloutView
	var lastErr sql.NullString
	var started, finished sql.NullTime
	err = sys.QueryRowContext(ctx, `SELECT id, target_version, status, current_wave, total_count, succeeded_count, failed_count,
		skipped_count, last_error, started_at, finished_at FROM schema_rollouts ORDER BY id DESC LIMIT 1`).
		Scan(&r.ID, &r.Target, &r.Status, &r.Wave, &r.Total, &r.Succeeded, &r.Failed, &r.UpToDate, &lastErr, &started, &finished)
	switch {
	case errors.Is(err, sql.ErrNoRows):
	case err != nil:
		return nil, fmt.Errorf("rollout status: last roll-out: %w", err)
	default:
		r.LastError = lastErr.String
		if started.Valid {
			r.StartedAt = &started.Time
		}
		if finished.Valid {
			r.FinishedAt = &finished.Time
		}
		f.LastRollout = &r
	}
	return f, nil
}
