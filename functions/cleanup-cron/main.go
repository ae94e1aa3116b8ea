// Command cleanup-cron runs daily: it purges the tenants whose grace period
// has ended (archive, then database, siloed user and objects), cancels
// deletion requests nobody confirmed, deletes archives past their 180 days
// and temp objects past their 7.
//
//	CLEANUP_BUDGET  how long a run may work (default 4m): keep it below the
//	                function timeout, what is left waits for the next run
//	MASTER_KEY      opens cluster credentials (development: .dev/keys)
//
// It also reads the object store's settings (objectstore.Load).
package main

import (
	"context"
	"time"

	"github.com/unitenant/unitenant/shared/config"
	"github.com/unitenant/unitenant/shared/lifecycle"
	"github.com/unitenant/unitenant/shared/objectstore"
	"github.com/unitenant/unitenant/shared/secretbox"
	"github.com/unitenant/unitenant/shared/serverless"
	"github.com/unitenant/unitenant/shared/sqldb"
)

func main() { serverless.Main("cleanup-cron", setup) }

func setup(_ context.Context, d serverless.Deps) (serverless.Service, error) {
	budget := d.Env.Duration("CLEANUP_BUDGET", lifecycle.DefaultPurgeBudget)
	dev := d.Dev()
	box, err := secretbox.FromEnv(d.Env.Secret("MASTER_KEY", ""), dev, config.DefaultDevDir)
	if err != nil {
		return serverless.Service{}, err
	}
	store, err := objectstore.Load(d.Env, dev)
	if err != nil {
		return serverless.Service{}, err
	}
	if err := d.Env.Err(); err != nil {
		return serverless.Service{}, err
	}
	db, err := sqldb.Open(d.Config.DB)
	if err != nil {
		return serverless.Service{}, err
	}
	j := &job{opts: lifecycle.Options{Sys: db, Box: box, Store: store, Log: d.Log}, budget: budget, now: time.Now}
	return serverless.Service{Job: j.run, Close: db.Close}, nil
}
