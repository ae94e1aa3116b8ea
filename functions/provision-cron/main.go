// Command provision-cron runs every few minutes and keeps provisioning ready:
// the system schema and the tenant template at the latest version, the
// template on every active cluster, and each cluster's warm pool of tenant
// databases full.
//
//	TEMPLATE_DATABASE  the tenant template's name (default unitenant_template)
//	POOL_SIZE          ready warm databases kept per cluster (default 2, 0: none)
//	TENANT_DB_PREFIX   tenant database names start with it (default tenant_)
//	MASTER_KEY         opens cluster credentials (development: .dev/keys)
//
// Resuming provisioning also reads the pipeline's and the object store's
// settings (provisioning.LoadPipeline, objectstore.Load); delivering
// notifications reads notify.LoadConfig's (SMTP_*, NOTIFY_*).
package main

import (
	"context"
	"fmt"
	"sync"

	"github.com/unitenant/unitenant/shared/config"
	"github.com/unitenant/unitenant/shared/notify"
	"github.com/unitenant/unitenant/shared/objectstore"
	"github.com/unitenant/unitenant/shared/provisioning"
	"github.com/unitenant/unitenant/shared/secretbox"
	"github.com/unitenant/unitenant/shared/serverless"
	"github.com/unitenant/unitenant/shared/sqldb"
)

func main() { serverless.Main("provision-cron", setup) }

func setup(_ context.Context, d serverless.Deps) (serverless.Service, error) {
	template := d.Env.String("TEMPLATE_DATABASE", provisioning.DefaultTemplateDatabase)
	if err := sqldb.ValidateIdent(template); err != nil {
		return serverless.Service{}, fmt.Errorf("TEMPLATE_DATABASE: %w", err)
	}
	prefix := d.Env.String("TENANT_DB_PREFIX", provisioning.DefaultDatabasePrefix)
	if err := sqldb.ValidateIdent(prefix + "w000000000000"); err != nil {
		return serverless.Service{}, fmt.Errorf("TENANT_DB_PREFIX: %w", err)
	}
	poolSize := d.Env.Int("POOL_SIZE", 2, 0, 100)
	// A MASTER_KEY given (or required, outside development) is checked now;
	// the development key under .dev/keys is only made when a cluster needs it.
	masterKey, dev := d.Env.Secret("MASTER_KEY", ""), d.Dev()
	box := sync.OnceValues(func() (*secretbox.Box, error) {
		return secretbox.FromEnv(masterKey, dev, config.DefaultDevDir)
	})
	if masterKey != "" || !dev {
		if _, err := box(); err != nil {
			return serverless.Service{}, err
		}
	}
	db, err := sqldb.Open(d.Config.DB)
	if err != nil {
		return serverless.Service{}, err
	}
	j := &job{db: db, dsn: d.Config.DB.DSN, template: template, box: box, poolSize: poolSize, prefix: prefix, log: d.Log}
	j.pipeline = sync.OnceValues(func() (*provisioning.Pipeline, error) {
		b, err := box()
		if err != nil {
			return nil, err
		}
		store, err := objectstore.Load(d.Env, dev)
		if err != nil {
			return nil, err
		}
		p := provisioning.LoadPipeline(d.Env, db, b, store, d.Log)
		return p, d.Env.Err()
	})
	notifyCfg := notify.LoadConfig(d.Env, dev)
	j.notify = sync.OnceValues(func() (*notify.Dispatcher, error) {
		b, err := box()
		if err != nil {
			return nil, err
		}
		return notifyCfg.Dispatcher(db, b, "provision-cron", d.Log)
	})
	return serverless.Service{Job: j.run, Close: db.Close}, nil
}
