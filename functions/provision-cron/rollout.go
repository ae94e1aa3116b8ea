package main

import (
	"context"
	"time"

	"github.com/unitenant/unitenant/shared/rollout"
)

// rolloutMargin is kept free before the invocation's deadline: no tenant
// starts after it, so the ones in flight finish and the run can report.
const rolloutMargin = 30 * time.Second

// rollout is the job's roll-out step: the templates again (a no-op after the
// clusters step, but a roll-out never trusts that), then every tenant
// behind. Tenant failures fail the step, so they alarm; the next run retries
// them, broken tenants last.
func (j *job) rollout(ctx context.Context) (*rollout.Report, error) {
	box, err := j.box()
	if err != nil {
		return nil, err
	}
	o := rollout.Options{Sys: j.db, Box: box, Template: j.template, Owner: "provision-cron", Log: j.log}
	if dl, ok := ctx.Deadline(); ok {
		o.Deadline = dl.Add(-min(rolloutMargin, time.Until(dl)/4))
	}
	rep, err := rollout.Run(ctx, o)
	if err != nil {
		return &rep, err
	}
	if rep.Status != rollout.StatusUpToDate {
		j.log.InfoContext(ctx, "schema roll-out", "report", rep)
	}
	return &rep, rep.Err()
}
