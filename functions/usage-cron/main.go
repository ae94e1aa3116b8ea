// Command usage-cron runs every hour: it rolls the AI call logs of today and
// yesterday (UTC) up into the daily usage summary, tenant statistics (with
// the members counted from the memberships and the login history) and
// billing records (shared/usage), then settles or expires the budget
// reservations that a killed ai-chat left open (budget.Reconcile).
//
// It reads no settings of its own besides the database's.
package main

import (
	"context"
	"time"

	"github.com/unitenant/unitenant/shared/serverless"
	"github.com/unitenant/unitenant/shared/sqldb"
)

func main() { serverless.Main("usage-cron", setup) }

func setup(_ context.Context, d serverless.Deps) (serverless.Service, error) {
	db, err := sqldb.Open(d.Config.DB)
	if err != nil {
		return serverless.Service{}, err
	}
	j := &job{db: db, log: d.Log, now: time.Now}
	return serverless.Service{Job: j.run, Close: db.Close}, nil
}
