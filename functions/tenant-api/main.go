// Command tenant-api is the tenant instance's own API (/api/app/*): a
// tenant-scoped token's holder, routed by shared/tenancy to its tenant's
// database and no other, reads its membership, users, classes and students
// there, as far as its roles' permissions allow.
package main

import (
	"context"
	"errors"
	"time"

	"github.com/unitenant/unitenant/shared/auth"
	"github.com/unitenant/unitenant/shared/config"
	"github.com/unitenant/unitenant/shared/serverless"
	"github.com/unitenant/unitenant/shared/sqldb"
	"github.com/unitenant/unitenant/shared/tenancy"
)

func main() { serverless.Main("tenant-api", setup) }

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
	return serverless.Service{
		Handler: newHandler(keys.Verifier, ten, d.Log, time.Now),
		Close:   func() error { return errors.Join(ten.Router.Close(), db.Close()) },
	}, nil
}
