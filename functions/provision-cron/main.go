// Command provision-cron runs every few minutes and keeps provisioning ready:
// the system schema and the tenant template at the latest version.
package main

import (
	"context"
	"fmt"

	"github.com/unitenant/unitenant/shared/provisioning"
	"github.com/unitenant/unitenant/shared/serverless"
	"github.com/unitenant/unitenant/shared/sqldb"
)

func main() { serverless.Main("provision-cron", setup) }

func setup(_ context.Context, d serverless.Deps) (serverless.Service, error) {
	template := d.Env.String("TEMPLATE_DATABASE", provisioning.DefaultTemplateDatabase)
	if err := sqldb.ValidateIdent(template); err != nil {
		return serverless.Service{}, fmt.Errorf("TEMPLATE_DATABASE: %w", err)
	}
	db, err := sqldb.Open(d.Config.DB)
	if err != nil {
		return serverless.Service{}, err
	}
	j := &job{db: db, dsn: d.Config.DB.DSN, template: template, log: d.Log}
	return serverless.Service{Job: j.run, Close: db.Close}, nil
}
