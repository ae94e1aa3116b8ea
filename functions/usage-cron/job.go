package main

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/unitenant/unitenant/shared/budget"
	"github.com/unitenant/unitenant/shared/usage"
)

// job is one hourly run, in order:
//
//	rollup     recompute yesterday's and today's totals (UTC): call logs of
//	           yesterday still land after midnight, and a recomputation is
//	           idempotent, so both are redone every run
//	reconcile  close the budget reservations past their expiry
//
// A failing step does not stop the other; the run still fails, so it alarms.
type job struct {
	db  *sql.DB
	log *slog.Logger
	now func() time.Time
}

// result is the job's report.
type result struct {
	Days      []usage.Report  `json:"days"`
	Reconcile reconcileReport `json:"reconcile"`
}

// reconcileReport is budget.ReconcileReport with its money as a decimal.
type reconcileReport struct {
	Settled int    `json:"settled"`
	Expired int    `json:"expired"`
	Skipped int    `json:"skipped"`
	Charged string `json:"charged"`
}

func (j *job) run(ctx context.Context) (any, error) {
	now := j.now().UTC()
	res := result{Days: []usage.Report{}}
	var errs []error
	for _, day := range []time.Time{now.AddDate(0, 0, -1), now} {
		rep, err := usage.Rollup(ctx, j.db, day, now)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		res.Days = append(res.Days, rep)
	}
	rec, err := budget.Reconcile(ctx, j.db, now)
	res.Reconcile = reconcileReport{Settled: rec.Settled, Expired: rec.Expired, Skipped: rec.Skipped, Charged: rec.Charged.String()}
	if err != nil {
		errs = append(errs, fmt.Errorf("reconcile reservations: %w", err))
	}
	j.log.InfoContext(ctx, "usage", "days", res.Days, "reconcile", res.Reconcile)
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return res, nil
}
