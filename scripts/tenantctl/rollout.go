package main

import (
	"context"
	"flag"
	"fmt"
	"os"

	"github.com/unitenant/unitenant/shared/rollout"
)

// migrateTenants rolls the latest tenant migration out to the template on
// every cluster and to every tenant database behind it (shared/rollout),
// prints the report, and fails when a tenant failed or the roll-out
// stopped. Interrupted (Ctrl-C, SIGTERM), it lets the tenants in flight
// finish and pauses; run it again to resume. The warm pool is left to
// provision-cron, whose refill upgrades ready databases to the template's
// version (and a claim only takes databases at that version).
func (c *cli) migrateTenants(ctx context.Context, args []string) error {
	o := rollout.Options{Sys: c.db, Template: c.template, Log: c.log}
	err := c.flags("migrate tenants", args, func(fs *flag.FlagSet) {
		fs.IntVar(&o.Concurrency, "concurrency", rollout.DefaultConcurrency, "tenant databases migrated at once")
		fs.IntVar(&o.FailureBudget, "failure-budget", 0, "failed tenants tolerated before the roll-out stops (0: 5% of those behind, at least 1)")
	})
	if err != nil {
		return err
	}
	if o.Box, err = c.secretBox(); err != nil {
		return err
	}
	host, _ := os.Hostname()
	o.Owner = fmt.Sprintf("tenantctl@%s:%d", host, os.Getpid())
	rep, err := rollout.Run(ctx, o)
	if err != nil {
		return err
	}
	if err := c.print(rep); err != nil {
		return err
	}
	return rep.Err()
}

// migrateStatus prints the fleet by schema version, the tenants whose last
// migration failed (with the error) and the latest roll-out.
func (c *cli) migrateStatus(ctx context.Context, args []string) error {
	if len(args) > 0 {
		return usageError(fmt.Sprintf("migrate status: unexpected argument %q", args[0]))
	}
	fleet, err := rollout.Status(ctx, c.db, nil)
	if err != nil {
		return err
	}
	return c.print(fleet)
}
