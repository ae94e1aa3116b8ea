// Command tenant-admin is the platform administrators' API over tenants:
// list and inspect them, change their plan, limits, domains and members, and
// move them through their lifecycle — suspend, resume, a confirmed soft
// delete with a grace period, restore, purge.
package main

import (
	"context"
	"fmt"
	"regexp"
	"time"

	"github.com/unitenant/unitenant/shared/config"
	"github.com/unitenant/unitenant/shared/idempotency"
	"github.com/unitenant/unitenant/shared/identity"
	"github.com/unitenant/unitenant/shared/lifecycle"
	"github.com/unitenant/unitenant/shared/notify"
	"github.com/unitenant/unitenant/shared/secretbox"
	"github.com/unitenant/unitenant/shared/serverless"
	"github.com/unitenant/unitenant/shared/tenancy"
)

func main() { serverless.Main("tenant-admin", setup) }

func setup(_ context.Context, d serverless.Deps) (serverless.Service, error) {
	box, err := secretbox.FromEnv(d.Env.Secret("MASTER_KEY", ""), d.Dev(), config.DefaultDevDir)
	if err != nil {
		return serverless.Service{}, err
	}
	// Contact phones are checked as tenant creation checks them.
	phones, err := regexp.Compile(d.Env.String("PHONE_PATTERN", identity.DefaultPhonePattern))
	if err != nil {
		return serverless.Service{}, fmt.Errorf("PHONE_PATTERN: %w", err)
	}
	f, err := tenancy.OpenFunction(d)
	if err != nil {
		return serverless.Service{}, err
	}
	notifyCfg := notify.LoadConfig(d.Env, d.Dev())
	notifier, err := notifyCfg.Notifier(f.DB, d.Log)
	if err != nil {
		f.Close()
		return serverless.Service{}, err
	}
	h := &handler{
		db: f.DB, tenants: f.Tenancy, notifier: notifier, box: box, idem: &idempotency.Store{DB: f.DB}, verifier: f.Verifier, log: d.Log, now: time.Now,
		allowPrivateURLs: notifyCfg.AllowPrivate, phones: phones,
		life: &lifecycle.Service{DB: f.DB,
			Grace:        d.Env.Duration("DELETION_GRACE", lifecycle.DefaultGrace),
			Confirmation: d.Env.Duration("DELETION_CONFIRMATION_TTL", lifecycle.DefaultConfirmation)},
	}
	return serverless.Service{Handler: newHandler(h), Close: f.Close}, nil
}
