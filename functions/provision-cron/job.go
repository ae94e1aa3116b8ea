package main

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"

	"github.com/unitenant/unitenant/shared/migration"
	"github.com/unitenant/unitenant/shared/notify"
	"github.com/unitenant/unitenant/shared/provisioning"
	"github.com/unitenant/unitenant/shared/rollout"
	"github.com/unitenant/unitenant/shared/secretbox"
)

// Steps, in order:
//
//	system     apply pending control-plane migrations
//	template   bring the materialized tenant template to the latest version
//	clusters   on every active cluster: its own template (tenant databases are
//	           cloned on the server they live on), then the warm pool refilled
//	           to poolSize ready databases (0: no pool)
//	rollout    the tenant databases behind the template brought to its version,
//	           in waves with a failure budget (shared/rollout); no work, and no
//	           tenant connection, when none is behind
//	resume     finish the provisioning a crash or a timeout left unfinished
//	notify     deliver due lifecycle events (webhooks, e-mail), notifyLimit a run
type job struct {
	db       *sql.DB
	dsn      string
	template string
	box      func() (*secretbox.Box, error) // opens cluster credentials
	poolSize int
	prefix   string // tenant database names start with it
	log      *slog.Logger
	// pipeline is built when there is provisioning to resume.
	pipeline func() (*provisioning.Pipeline, error)
	// notify is the webhook dispatcher; nil skips the step.
	notify func() (*notify.Dispatcher, error)
}

// notifyLimit bounds the events one run delivers; the rest wait five minutes.
const notifyLimit = 100

// result is the job's report.
type result struct {
	System   migration.Result `json:"system"`
	Template migration.Result `json:"template"`
	Clusters []clusterResult  `json:"clusters"`
	Rollout  *rollout.Report  `json:"rollout,omitempty"`
	Resumed  []string         `json:"resumed"`
	Notify   *notify.Report   `json:"notify,omitempty"`
}

// clusterResult is what the job did on one cluster.
type clusterResult struct {
	ID       int64                    `json:"id"`
	Name     string                   `json:"name"`
	Template *migration.Result        `json:"template,omitempty"`
	Pool     *provisioning.PoolReport `json:"pool,omitempty"`
	Error    string                   `json:"error,omitempty"`
}

func (j *job) run(ctx context.Context) (any, error) {
	res := result{Clusters: []clusterResult{}}
	var err error
	if res.System, err = provisioning.MigrateSystem(ctx, j.db, j.log); err != nil {
		return nil, fmt.Errorf("system schema: %w", err)
	}
	if res.Template, err = provisioning.MigrateTemplate(ctx, j.db, j.dsn, j.template, j.log); err != nil {
		return nil, fmt.Errorf("tenant template: %w", err)
	}
	clusters, err := j.activeClusters(ctx)
	if err != nil {
		return nil, err
	}
	// A cluster that fails does not stop the others; the job still fails,
	// so the failure alarms.
	var errs []error
	for _, c := range clusters {
		if err := j.cluster(ctx, &c); err != nil {
			c.Error = err.Error()
			errs = append(errs, fmt.Errorf("db cluster %s: %w", c.Name, err))
			j.log.ErrorContext(ctx, "db cluster", "cluster", c.Name, "err", err)
		} else {
			j.log.InfoContext(ctx, "db cluster", "cluster", c.Name, "template", c.Template, "pool", c.Pool)
		}
		res.Clusters = append(res.Clusters, c)
	}
	if res.Rollout, err = j.rollout(ctx); err != nil {
		errs = append(errs, fmt.Errorf("schema roll-out: %w", err))
	}
	if res.Resumed, err = j.resume(ctx); err != nil {
		errs = append(errs, fmt.Errorf("resume provisioning: %w", err))
	}
	if j.notify != nil {
		rep, err := j.deliver(ctx)
		res.Notify = &rep
		if err != nil {
			errs = append(errs, fmt.Errorf("notify: %w", err))
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return res, nil
}

// resume finishes unfinished provisioning (see Pipeline.Resume); the
// pipeline, which needs the master key and the object store, is only built
// when there is some.
func (j *job) resume(ctx context.Context) ([]string, error) {
	var unfinished int
	if err := j.db.QueryRowContext(ctx,
		"SELECT COUNT(*) FROM tenant_init_progress WHERE status IN ('pending', 'running', 'failed')").Scan(&unfinished); err != nil {
		return nil, err
	}
	if unfinished == 0 {
		return []string{}, nil
	}
	p, err := j.pipeline()
	if err != nil {
		return nil, err
	}
	done, err := p.Resume(ctx, 50)
	if done == nil {
		done = []string{}
	}
	return done, err
}

// deliver sends the due events of the outbox (see notify.Dispatcher): failed
// deliveries are retried by later runs and are in the report, not the error.
func (j *job) deliver(ctx context.Context) (notify.Report, error) {
	d, err := j.notify()
	if err != nil {
		return notify.Report{}, err
	}
	rep, err := d.Deliver(ctx, notifyLimit)
	j.log.InfoContext(ctx, "notify", "report", rep)
	return rep, err
}

func (j *job) activeClusters(ctx context.Context) ([]clusterResult, error) {
	rows, err := j.db.QueryContext(ctx, "SELECT id, name FROM db_clusters WHERE status = 'active' ORDER BY id")
	if err != nil {
		return nil, fmt.Errorf("list db clusters: %w", err)
	}
	defer rows.Close()
	var out []clusterResult
	for rows.Next() {
		var c clusterResult
		if err := rows.Scan(&c.ID, &c.Name); err != nil {
			return nil, fmt.Errorf("list db clusters: %w", err)
		}
		out = append(out, c)
	}
	return out, rows.Err()
}

// cluster brings c's template to the latest version and refills its pool.
func (j *job) cluster(ctx context.Context, c *clusterResult) error {
	box, err := j.box()
	if err != nil {
		return err
	}
	tmpl, err := provisioning.EnsureClusterTemplate(ctx, j.db, box, c.ID, j.template, j.log)
	if err != nil {
		return err
	}
	c.Template = &tmpl
	if j.poolSize <= 0 {
		return nil
	}
	pool, err := provisioning.RefillPool(ctx, j.db, box, c.ID, j.template, j.poolSize, j.prefix, j.log)
	c.Pool = &pool
	return err
}
