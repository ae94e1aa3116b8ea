// Command tenant-admin is the platform administrators' API over tenants:
// list and inspect them, change their plan, limits, domains and members, and
// move them through their lifecycle — suspend, resume, a confirmed soft
// delete with a grace period, restore, purge.
package main

import (
	"context"
	"database/sql"
	"errors"
	"time"

	"github.com/unitenant/unitenant/shared/auth"
	"github.com/unitenant/unitenant/shared/config"
	"github.com/unitenant/unitenant/shared/lifecycle"
	"github.com/unitenant/unitenant/shared/notify"
	"github.com/unitenant/unitenant/shared/secretbox"
	"github.com/unitenant/unitenant/shared/serverless"
	"github.com/unitenant/unitenant/shared/sqldb"
	"github.com/unitenant/unitenant/shared/tenancy"
)

func main() { serverless.Main("tenant-admin", setup) }

func setup(_ context.Context, d serverless.Deps) (serverless.Service, error) {
	dev := d.Config.Env == "development"
	keys, err := auth.LoadKeys(d.Env, dev, config.DefaultDevDir)
	if err != nil {
		return serverless.Service{}, err
	}
	db, err := sqldb.Open(d.Config.DB)
	if err != nil {
		return serverless.Service{}, err
	}
	ten, err := tenancy.Load(d.Env, dev, db, d.Log)
	if err != nil {
		db.Close()
		return serverless.Service{}, err
	}
	box, err := secretbox.FromEnv(d.Env.Secret("MASTER_KEY", ""), dev, config.DefaultDevDir)
	if err != nil {
		db.Close()
		return serverless.Service{}, err
	}
	notifier, err := loadNotifier(d, db)
	if err != nil {
		db.Close()
		return serverless.Service{}, err
	}
	h := &handler{
		db: db, tenants: ten, notifier: notifier, box: box, verifier: keys.Verifier, log: d.Log, now: time.Now,
		life: &lifecycle.Service{DB: db,
			Grace:        d.Env.Duration("DELETION_GRACE", lifecycle.DefaultGrace),
			Confirmation: d.Env.Duration("DELETION_CONFIRMATION_TTL", lifecycle.DefaultConfirmation)},
	}
	return serverless.Service{
		Handler: newHandler(h),
		Close:   func() error { return errors.Join(ten.Router.Close(), db.Close()) },
	}, nil
}

// loadNotifier builds how confirmation tokens reach admins: e-mail through
// SMTP when configured, the development outbox otherwise.
func loadNotifier(d serverless.Deps, db *sql.DB) (Notifier, error) {
	return notify.LoadConfig(d.Env, d.Config.Env == "development").Notifier(db, d.Log)
}
