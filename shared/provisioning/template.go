package provisioning

import (
	"context"
	"database/sql"
	"fmt"
	"log/slog"

	"github.com/unitenant/unitenant/shared/migration"
	"github.com/unitenant/unitenant/shared/secretbox"
	"github.com/unitenant/unitenant/shared/sqldb"
	"github.com/unitenant/unitenant/shared/tenancy"
)

// OpenCluster opens an admin pool on cluster clusterID, on database (""
// for none), and returns it with its DSN. The caller closes the pool.
func OpenCluster(ctx context.Context, sys *sql.DB, box *secretbox.Box, clusterID int64, database string) (*sql.DB, string, error) {
	cfg, _, err := tenancy.LoadCluster(ctx, sys, box, clusterID)
	if err != nil {
		return nil, "", err
	}
	if database != "" {
		if err := sqldb.ValidateIdent(database); err != nil {
			return nil, "", err
		}
		cfg.DBName = database
	}
	dsn := cfg.FormatDSN()
	server, err := sqldb.OpenDSN(dsn)
	if err != nil {
		return nil, "", fmt.Errorf("db cluster %d: %w", clusterID, err)
	}
	return server, dsn, nil
}

// EnsureClusterTemplate materializes the tenant template (database
// template) on cluster clusterID at the latest tenant version. Tenant
// databases are cloned on the server they live on, so every active cluster
// needs its own copy of the template.
func EnsureClusterTemplate(ctx context.Context, sys *sql.DB, box *secretbox.Box, clusterID int64, template string, log *slog.Logger) (migration.Result, error) {
	server, dsn, err := OpenCluster(ctx, sys, box, clusterID, "")
	if err != nil {
		return migration.Result{}, err
	}
	defer server.Close()
	res, err := MigrateTenantDatabase(ctx, server, dsn, template, log)
	if err != nil {
		return res, fmt.Errorf("template %s on db cluster %d: %w", template, clusterID, err)
	}
	return res, nil
}
