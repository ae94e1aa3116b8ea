// Command tenantctl is the operator's command line for unitenant.
//
//	tenantctl migrate            apply pending system and template migrations
//	tenantctl migrate system     the control-plane database only
//	tenantctl migrate template   the tenant template only
//	tenantctl version            print the system schema version
//
// It reads MYSQL_DSN (the system database) like the functions do.
package main

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/unitenant/unitenant/shared/config"
	"github.com/unitenant/unitenant/shared/logging"
	"github.com/unitenant/unitenant/shared/migration"
	"github.com/unitenant/unitenant/shared/provisioning"
	"github.com/unitenant/unitenant/shared/sqldb"
)

const usage = `usage:
  tenantctl migrate [system|template|all]
  tenantctl version`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	if err := run(ctx, os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "tenantctl:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string) error {
	if len(args) == 0 {
		return fmt.Errorf("no command\n%s", usage)
	}
	env := config.FromOS()
	base := config.LoadBase(env)
	template := env.String("TEMPLATE_DATABASE", provisioning.DefaultTemplateDatabase)
	if err := env.Err(); err != nil {
		return err
	}
	log := logging.New(os.Stderr, "tenantctl", base.LogLevel)
	db, err := sqldb.Open(base.DB)
	if err != nil {
		return err
	}
	defer db.Close()

	switch args[0] {
	case "migrate":
		what := "all"
		if len(args) > 1 {
			what = args[1]
		}
		return migrate(ctx, db, base.DB.DSN, template, what, log)
	case "version":
		v, err := migration.Version(ctx, db)
		if err != nil {
			return err
		}
		fmt.Println(v)
		return nil
	}
	return fmt.Errorf("unknown command %q\n%s", args[0], usage)
}

// migrate creates the system database when missing (a fresh server), then
// applies what was asked for and prints what it did.
func migrate(ctx context.Context, db *sql.DB, dsn, template, what string, log *slog.Logger) error {
	if what != "all" && what != "system" && what != "template" {
		return fmt.Errorf("migrate %q: want system, template or all", what)
	}
	if err := ensureSystemDatabase(ctx, dsn); err != nil {
		return err
	}
	out := map[string]migration.Result{}
	if what == "all" || what == "system" {
		res, err := provisioning.MigrateSystem(ctx, db, log)
		if err != nil {
			return err
		}
		out["system"] = res
	}
	if what == "all" || what == "template" {
		res, err := provisioning.MigrateTemplate(ctx, db, dsn, template, log)
		if err != nil {
			return err
		}
		out["template"] = res
	}
	return printJSON(out)
}

func ensureSystemDatabase(ctx context.Context, dsn string) error {
	name, err := sqldb.DatabaseName(dsn)
	if err != nil {
		return err
	}
	serverDSN, err := sqldb.WithDatabase(dsn, "")
	if err != nil {
		return err
	}
	server, err := sqldb.OpenDSN(serverDSN)
	if err != nil {
		return err
	}
	defer server.Close()
	return sqldb.CreateDatabase(ctx, server, name)
}

func printJSON(v any) error {
	enc := json.NewEncoder(os.Stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
