// Command tenant-api is the tenant instance's own API (/api/app/*): a
// tenant-scoped token's holder, routed by shared/tenancy to its tenant's
// database and no other, reads its membership, users, classes and students
// there, as far as its roles' permissions allow.
package main

import (
	"context"
	"time"

	"github.com/unitenant/unitenant/shared/serverless"
	"github.com/unitenant/unitenant/shared/tenancy"
)

func main() { serverless.Main("tenant-api", setup) }

func setup(_ context.Context, d serverless.Deps) (serverless.Service, error) {
	f, err := tenancy.OpenFunction(d)
	if err != nil {
		return serverless.Service{}, err
	}
	return serverless.Service{Handler: newHandler(f.Verifier, f.Tenancy, f.DB, d.Log, time.Now), Close: f.Close}, nil
}
