// Command tenant-create onboards tenants: POST /api/tenants reserves the
// tenant and runs the provisioning pipeline (201 when it finishes within the
// request's budget, else 202 and provision-cron finishes it), and
// GET /api/tenants/{code}/progress shows every step as it happens.
package main

import (
	"context"
	"time"

	"github.com/unitenant/unitenant/shared/auth"
	"github.com/unitenant/unitenant/shared/config"
	"github.com/unitenant/unitenant/shared/idempotency"
	"github.com/unitenant/unitenant/shared/objectstore"
	"github.com/unitenant/unitenant/shared/provisioning"
	"github.com/unitenant/unitenant/shared/secretbox"
	"github.com/unitenant/unitenant/shared/serverless"
	"github.com/unitenant/unitenant/shared/sms"
	"github.com/unitenant/unitenant/shared/sqldb"
)

func main() { serverless.Main("tenant-create", setup) }

func setup(ctx context.Context, d serverless.Deps) (serverless.Service, error) {
	dev := d.Dev()
	keys, err := auth.LoadKeys(d.Env, dev, config.DefaultDevDir)
	if err != nil {
		return serverless.Service{}, err
	}
	box, err := secretbox.FromEnv(d.Env.Secret("MASTER_KEY", ""), dev, config.DefaultDevDir)
	if err != nil {
		return serverless.Service{}, err
	}
	smsCfg, err := sms.LoadConfig(d.Env, dev, config.DefaultDevDir)
	if err != nil {
		return serverless.Service{}, err
	}
	sender, err := smsCfg.NewSender()
	if err != nil {
		return serverless.Service{}, err
	}
	store, err := objectstore.Load(d.Env, dev)
	if err != nil {
		return serverless.Service{}, err
	}
	db, err := sqldb.Open(d.Config.DB)
	if err != nil {
		return serverless.Service{}, err
	}
	pipeline := provisioning.LoadPipeline(d.Env, db, box, store, d.Log)
	h := &handler{
		db: db, pipeline: pipeline, verifier: keys.Verifier, log: d.Log,
		codes:      sms.NewCodes(db, sender, smsCfg.CodeKey, sms.Options{}),
		idem:       &idempotency.Store{DB: db},
		budget:     d.Env.Duration("PROVISION_BUDGET", 8*time.Second),
		baseDomain: d.Env.String("BASE_DOMAIN", "localhost"),
		bcryptCost: d.Env.Int("BCRYPT_COST", 12, 4, 31),
	}
	return serverless.Service{Handler: newHandler(h), Close: db.Close}, nil
}
