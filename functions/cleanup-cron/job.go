package main

import (
	"context"
	"fmt"
	"time"

	"github.com/unitenant/unitenant/shared/housekeeping"
	"github.com/unitenant/unitenant/shared/lifecycle"
)

// job is one daily run, in order:
//
//	sweep  cancel unconfirmed deletion requests, delete expired archives and
//	       old temp objects (a quarter of the budget at most)
//	purge  purge the tenants that are due (the rest of the budget)
//	prune  delete the system database's spent rows (housekeeping.Rules):
//	       rate-limit windows, SMS codes, refresh tokens, idempotency keys,
//	       lockouts of unknown names
type job struct {
	opts   lifecycle.Options // Sys, Box, Store, Log
	budget time.Duration
	now    func() time.Time
}

// result is the job's report.
type result struct {
	Sweep lifecycle.SweepReport `json:"sweep"`
	Purge lifecycle.Report      `json:"purge"`
	Prune map[string]int64      `json:"prune"` // rows deleted per table
}

func (j *job) run(ctx context.Context) (any, error) {
	start := j.now()
	o := j.opts
	o.Now = j.now
	o.Budget = j.budget / 4
	var res result
	var err error
	if res.Sweep, err = lifecycle.Sweep(ctx, o); err != nil {
		return nil, fmt.Errorf("sweep: %w", err)
	}
	o.Budget = j.budget - j.now().Sub(start)
	if o.Budget <= 0 {
		o.Budget = time.Millisecond // report Stopped instead of working past the budget
	}
	if res.Purge, err = lifecycle.Purge(ctx, o); err != nil {
		return nil, fmt.Errorf("purge: %w", err)
	}
	if res.Prune, err = housekeeping.Prune(ctx, o.Sys, j.now()); err != nil {
		return nil, fmt.Errorf("prune: %w", err)
	}
	j.opts.Log.InfoContext(ctx, "cleanup", "purged", res.Purge.Purged, "completed", res.Purge.Completed,
		"retrying", res.Purge.Retrying, "failed", res.Purge.Failed, "leases_lost", res.Purge.LeasesLost, "stopped", res.Purge.Stopped,
		"sweep", res.Sweep, "prune", res.Prune)
	return res, nil
}
