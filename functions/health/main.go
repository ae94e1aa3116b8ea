// Command health answers GET /api/health: is this deployment up, can it reach
// its system database, and at which schema version is that database.
package main

import (
	"context"

	"github.com/unitenant/unitenant/shared/serverless"
	"github.com/unitenant/unitenant/shared/sqldb"
)

func main() { serverless.Main("health", setup) }

func setup(_ context.Context, d serverless.Deps) (serverless.Service, error) {
	db, err := sqldb.Open(d.Config.DB)
	if err != nil {
		return serverless.Service{}, err
	}
	return serverless.Service{Handler: newHandler(db, d.Log), Close: db.Close}, nil
}
