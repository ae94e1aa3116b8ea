// Package provisioning makes and keeps the databases tenants live in: the
// control-plane schema, the materialized tenant template on every cluster,
// clones of it (with the information_schema check that proves a clone equal
// to the template), the warm pool of ready databases, and the pipeline that
// creates a tenant step by step, resumable after any crash. It never touches
// a tenant database it was not asked for.
package provisioning

import (
	"context"
	"database/sql"
	"fmt"
	"log/slog"

	"github.com/unitenant/unitenant/infra/schema"
	"github.com/unitenant/unitenant/shared/migration"
	"github.com/unitenant/unitenant/shared/sqldb"
)

// DefaultTemplateDatabase is the name of the materialized tenant template.
const DefaultTemplateDatabase = "unitenant_template"

// MigrateSystem applies pending control-plane migrations to db.
func MigrateSystem(ctx context.Context, db *sql.DB, log *slog.Logger) (migration.Result, error) {
	ms, err := schema.System()
	if err != nil {
		return migration.Result{}, fmt.Errorf("load system migrations: %w", err)
	}
	r := migration.Runner{DB: db, Migrations: ms, Log: log}
	return r.Up(ctx)
}

// MigrateTemplate creates the template database next to the system database
// (dsn is the system DSN) if needed and brings it to the latest tenant
// version, so clones are always made at the current schema.
func MigrateTemplate(ctx context.Context, sys *sql.DB, dsn, name string, log *slog.Logger) (migration.Result, error) {
	return MigrateTenantDatabase(ctx, sys, dsn, name, log)
}

// MigrateTenantDatabase creates database name on the server of dsn if needed
// and applies pending tenant-template migrations to it.
func MigrateTenantDatabase(ctx context.Context, server *sql.DB, dsn, name string, log *slog.Logger) (migration.Result, error) {
	ms, err := schema.Tenant()
	if err != nil {
		return migration.Result{}, fmt.Errorf("load tenant migrations: %w", err)
	}
	if err := sqldb.CreateDatabase(ctx, server, name); err != nil {
		return migration.Result{}, err
	}
	tdsn, err := sqldb.WithDatabase(dsn, name)
	if err != nil {
		return migration.Result{}, err
	}
	db, err := sqldb.OpenDSN(tdsn)
	if err != nil {
		return migration.Result{}, err
	}
	defer db.Close()
	r := migration.Runner{DB: db, Migrations: ms, Log: log}
	return r.Up(ctx)
}
