// Command login is unitenant's unified login: SMS codes, registration, phone
// and password login, refresh-token rotation, logout, the caller's profile
// and tenants, switching into a tenant, administrator login, and the JWKS
// every other function verifies tokens with.
package main

import (
	"context"

	"github.com/unitenant/unitenant/shared/auth"
	"github.com/unitenant/unitenant/shared/config"
	"github.com/unitenant/unitenant/shared/identity"
	"github.com/unitenant/unitenant/shared/serverless"
	"github.com/unitenant/unitenant/shared/sms"
	"github.com/unitenant/unitenant/shared/sqldb"
)

func main() { serverless.Main("login", setup) }

func setup(_ context.Context, d serverless.Deps) (serverless.Service, error) {
	dev := d.Dev()
	keys, err := auth.LoadKeys(d.Env, dev, config.DefaultDevDir)
	if err != nil {
		return serverless.Service{}, err
	}
	idCfg, err := identity.LoadConfig(d.Env)
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
	if err := d.Env.Err(); err != nil { // before the bcrypt work New does
		return serverless.Service{}, err
	}
	db, err := sqldb.Open(d.Config.DB)
	if err != nil {
		return serverless.Service{}, err
	}
	svc, err := identity.New(db, keys.Signer, sms.NewCodes(db, sender, smsCfg.CodeKey, sms.Options{Policy: smsCfg.Policy()}), idCfg)
	if err != nil {
		db.Close()
		return serverless.Service{}, err
	}
	return serverless.Service{Handler: newHandler(svc, keys.Verifier, d.Log), Close: db.Close}, nil
}
