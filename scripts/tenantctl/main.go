// Command tenantctl is the operator's command line for unitenant.
//
//	tenantctl help                            print the usage
//	tenantctl migrate [system|template|all]   apply pending migrations (default all)
//	tenantctl migrate tenants [--concurrency N] [--failure-budget N]
//	                                          roll the tenant schema out: templates, then every tenant
//	tenantctl migrate status                  tenants by schema version, failures, the last roll-out
//	tenantctl version                         print the system schema version
//	tenantctl check [code]                    compare tenant databases with the template
//	tenantctl tenant add --code C --name N [--owner-phone P] [--cluster default]
//	                                          create an active tenant and its database
//	tenantctl member add --tenant C --phone P --role R
//	                                          make a global user a member of a tenant
//	tenantctl user add --phone P --password X --name N
//	                                          create a global user
//	tenantctl admin add --username U --password X [--role super_admin]
//	                                          create a platform administrator
//	tenantctl restore-archive KEY --into DB [--cluster default]
//	                                          restore a purged tenant's archive into a new database
//	tenantctl dev-seed [--credentials F] [--port N]
//	                                          the super admin, demo tenants k001 and k002
//	                                          and a demo user for `make dev` (idempotent)
//
// It reads MYSQL_DSN (the system database) like the functions do, and:
//
//	TENANT_CLUSTER_DSN  server that hosts tenant databases when the default
//	                    cluster is registered (default: the server of MYSQL_DSN)
//	TENANT_DB_PREFIX    tenant database names start with it (default tenant_)
//	MASTER_KEY          seals cluster credentials (development: .dev/keys)
//	BCRYPT_COST         password hashing cost (default 12)
//	PHONE_PATTERN       what a phone number looks like (default mainland mobile)
//	DEV_ADMIN_USERNAME, DEV_ADMIN_PASSWORD, DEV_USER_PHONE, DEV_USER_PASSWORD
//	                    dev-seed's accounts (else admin / 13800000000, generated passwords)
//
// Results are printed as JSON on stdout; usage and errors go to stderr.
package main

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"regexp"
	"strings"
	"syscall"

	"github.com/unitenant/unitenant/shared/config"
	"github.com/unitenant/unitenant/shared/identity"
	"github.com/unitenant/unitenant/shared/logging"
	"github.com/unitenant/unitenant/shared/migration"
	"github.com/unitenant/unitenant/shared/provisioning"
	"github.com/unitenant/unitenant/shared/secretbox"
	"github.com/unitenant/unitenant/shared/sqldb"
)

const usage = `usage:
  tenantctl help
  tenantctl migrate [system|template|all]
  tenantctl migrate tenants [--concurrency 4] [--failure-budget N]
  tenantctl migrate status
  tenantctl version
  tenantctl check [code]
  tenantctl tenant add --code CODE --name NAME [--owner-phone PHONE] [--contact-name N] [--contact-phone P]
                       [--contact-email E] [--subdomain S] [--plan basic|standard|premium|enterprise]
  tenantctl provision resume [CODE]     finish unfinished provisioning (all, or one tenant)
  tenantctl provision abort CODE        remove everything an unfinished provisioning made
  tenantctl member add --tenant CODE --phone PHONE --role ROLE
  tenantctl user add --phone PHONE --password PASSWORD --name NAME
  tenantctl admin add --username USERNAME --password PASSWORD [--role super_admin|admin|operator]
  tenantctl restore-archive ARCHIVE-KEY --into DATABASE [--cluster default]
  tenantctl dev-seed [--credentials .dev/credentials.json] [--port 8080]`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	if err := run(ctx, os.Args[1:], config.FromOS(), os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "tenantctl:", err)
		var ue usageError
		if errors.As(err, &ue) {
			os.Exit(2)
		}
		os.Exit(1)
	}
}

// usageError is a command line that does not say what to do.
type usageError string

// Error returns the problem followed by the usage.
func (e usageError) Error() string { return string(e) + "\n" + usage }

// cli is one run of tenantctl: its configuration, the system database and
// where results go.
type cli struct {
	env        *config.Env
	base       config.Base
	db         *sql.DB
	log        *slog.Logger
	out, diag  io.Writer
	template   string
	clusterDSN string
	dbPrefix   string
	bcryptCost int
	phone      *regexp.Regexp
	box        *secretbox.Box // built on first use: only tenant commands need the master key
}

// run executes one command line; env, stdout and stderr are parameters so
// tests run it in-process.
func run(ctx context.Context, args []string, env *config.Env, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return usageError("no command")
	}
	if args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		_, err := fmt.Fprintln(stdout, usage)
		return err
	}
	c := &cli{env: env, out: stdout, diag: stderr}
	c.base = config.LoadBase(env)
	c.template = env.String("TEMPLATE_DATABASE", provisioning.DefaultTemplateDatabase)
	c.clusterDSN = env.Secret("TENANT_CLUSTER_DSN", "")
	c.dbPrefix = env.String("TENANT_DB_PREFIX", provisioning.DefaultDatabasePrefix)
	c.bcryptCost = env.Int("BCRYPT_COST", 12, 4, 31)
	phone, perr := regexp.Compile(env.String("PHONE_PATTERN", identity.DefaultPhonePattern))
	if err := errors.Join(env.Err(), wrapErr("PHONE_PATTERN", perr)); err != nil {
		return err
	}
	c.phone = phone
	c.log = logging.New(stderr, "tenantctl", c.base.LogLevel)
	db, err := sqldb.Open(c.base.DB)
	if err != nil {
		return err
	}
	defer db.Close()
	c.db = db

	cmd, rest := args[0], args[1:]
	if len(rest) > 0 && (cmd == "tenant" || cmd == "member" || cmd == "user" || cmd == "admin") {
		if rest[0] != "add" {
			return usageError(fmt.Sprintf("unknown command %q", cmd+" "+rest[0]))
		}
		cmd, rest = cmd+" add", rest[1:]
	}
	switch cmd {
	case "migrate":
		what := "all"
		if len(rest) > 0 {
			what = rest[0]
		}
		switch what {
		case "tenants":
			return c.migrateTenants(ctx, rest[1:])
		case "status":
			return c.migrateStatus(ctx, rest[1:])
		}
		return c.migrate(ctx, what)
	case "version":
		v, err := migration.Version(ctx, db)
		if err != nil {
			return err
		}
		fmt.Fprintln(c.out, v)
		return nil
	case "tenant add":
		return c.tenantAdd(ctx, rest)
	case "member add":
		return c.memberAdd(ctx, rest)
	case "user add":
		return c.userAdd(ctx, rest)
	case "admin add":
		return c.adminAdd(ctx, rest)
	case "provision":
		return c.provision(ctx, rest)
	case "check":
		return c.check(ctx, rest)
	case "restore-archive":
		return c.restoreArchive(ctx, rest)
	case "dev-seed":
		return c.devSeed(ctx, rest)
	}
	return usageError(fmt.Sprintf("unknown command %q", strings.Join(args[:min(2, len(args))], " ")))
}

func wrapErr(what string, err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("%s: %w", what, err)
}

// flags parses a command's flags; every name in required must be given.
func (c *cli) flags(cmd string, args []string, define func(*flag.FlagSet), required ...string) error {
	fs := flag.NewFlagSet(cmd, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	define(fs)
	if err := fs.Parse(args); err != nil {
		return usageError(cmd + ": " + err.Error())
	}
	if fs.NArg() > 0 {
		return usageError(fmt.Sprintf("%s: unexpected argument %q", cmd, fs.Arg(0)))
	}
	var missing []string
	for _, name := range required {
		if strings.TrimSpace(fs.Lookup(name).Value.String()) == "" {
			missing = append(missing, "--"+name)
		}
	}
	if len(missing) > 0 {
		return usageError(fmt.Sprintf("%s: %s required", cmd, strings.Join(missing, ", ")))
	}
	return nil
}

// migrate creates the system database when missing (a fresh server), then
// applies what was asked for and prints what it did.
func (c *cli) migrate(ctx context.Context, what string) error {
	if what != "all" && what != "system" && what != "template" {
		return usageError(fmt.Sprintf("migrate %q: want system, template, all, tenants or status", what))
	}
	if err := ensureSystemDatabase(ctx, c.base.DB.DSN); err != nil {
		return err
	}
	out := map[string]migration.Result{}
	if what == "all" || what == "system" {
		res, err := provisioning.MigrateSystem(ctx, c.db, c.log)
		if err != nil {
			return err
		}
		out["system"] = res
	}
	if what == "all" || what == "template" {
		res, err := provisioning.MigrateTemplate(ctx, c.db, c.base.DB.DSN, c.template, c.log)
		if err != nil {
			return err
		}
		out["template"] = res
	}
	return c.print(out)
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

// print writes v as indented JSON on stdout.
func (c *cli) print(v any) error {
	enc := json.NewEncoder(c.out)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// secretBox returns the master-key box, built on first use.
func (c *cli) secretBox() (*secretbox.Box, error) {
	if c.box == nil {
		box, err := secretbox.FromEnv(c.env.Secret("MASTER_KEY", ""), c.base.Env == "development", config.DefaultDevDir)
		if err != nil {
			return nil, err
		}
		c.box = box
	}
	return c.box, nil
}
