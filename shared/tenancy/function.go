package tenancy

import (
	"database/sql"
	"errors"

	"github.com/unitenant/unitenant/shared/auth"
	"github.com/unitenant/unitenant/shared/config"
	"github.com/unitenant/unitenant/shared/serverless"
	"github.com/unitenant/unitenant/shared/sqldb"
)

// Function is what every tenant-facing function starts from: the verifier
// of access tokens, the system database and tenancy over it.
type Function struct {
	Verifier *auth.Verifier
	DB       *sql.DB
	Tenancy  *Service
}

// OpenFunction builds a tenant-facing function's common parts from its
// dependencies (see Load and auth.LoadKeys for the variables read).
func OpenFunction(d serverless.Deps) (*Function, error) {
	keys, err := auth.LoadKeys(d.Env, d.Dev(), config.DefaultDevDir)
	if err != nil {
		return nil, err
	}
	db, err := sqldb.Open(d.Config.DB)
	if err != nil {
		return nil, err
	}
	ten, err := Load(d.Env, d.Dev(), db, d.Log)
	if err != nil {
		db.Close()
		return nil, err
	}
	return &Function{Verifier: keys.Verifier, DB: db, Tenancy: ten}, nil
}

// Close releases the tenant pools and the system database.
func (f *Function) Close() error { return errors.Join(f.Tenancy.Router.Close(), f.DB.Close()) }
