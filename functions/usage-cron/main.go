// Command usage-cron runs every hour: it rolls the AI call logs of today and
// yesterday (UTC) up into the daily usage summary, tenant statistics (with
// the members counted from the memberships and the login history) and
// billing records (shared/usage), then settles or expires the budget
// reservations that a killed ai-chat left open (budget.Reconcile), and
// measures the object storage each tenant uses (shared/storageusage).
//
// Besides the database's, it reads the object store's settings
// (objectstore.Load) and STORAGE_SCAN_BUDGET (default 1m), the most a run
// spends listing tenants' prefixes.
package main

import (
	"context"
	"time"

	"github.com/unitenant/unitenant/shared/objectstore"
	"github.com/unitenant/unitenant/shared/serverless"
	"github.com/unitenant/unitenant/shared/sqldb"
)

func main() { serverless.Main("usage-cron", setup) }

func setup(_ context.Context, d serverless.Deps) (serverless.Service, error) {
	store, err := objectstore.Load(d.Env, d.Dev())
	if err != nil {
		return serverless.Service{}, err
	}
	scan := d.Env.Duration("STORAGE_SCAN_BUDGET", DefaultStorageBudget)
	if err := d.Env.Err(); err != nil {
		return serverless.Service{}, err
	}
	db, err := sqldb.Open(d.Config.DB)
	if err != nil {
		return serverless.Service{}, err
	}
	j := &job{db: db, log: d.Log, now: time.Now, store: store, storageBudget: scan}
	return serverless.Service{Job: j.run, Close: db.Close}, nil
}
