package main

import (
	"context"
	"database/sql"
	"fmt"
	"log/slog"

	"github.com/unitenant/unitenant/shared/migration"
	"github.com/unitenant/unitenant/shared/provisioning"
)

// Steps, in order:
//
//	system     apply pending control-plane migrations
//	template   bring the materialized tenant template to the latest version
type job struct {
	db       *sql.DB
	dsn      string
	template string
	log      *slog.Logger
}

// result is the job's report.
type result struct {
	System   migration.Result `json:"system"`
	Template migration.Result `json:"template"`
}

func (j *job) run(ctx context.Context) (any, error) {
	var res result
	var err error
	if res.System, err = provisioning.MigrateSystem(ctx, j.db, j.log); err != nil {
		return nil, fmt.Errorf("system schema: %w", err)
	}
	if res.Template, err = provisioning.MigrateTemplate(ctx, j.db, j.dsn, j.template, j.log); err != nil {
		return nil, fmt.Errorf("tenant template: %w", err)
	}
	return res, nil
}
