// Package sqldb opens MySQL connection pools with sane limits and timeouts,
// runs transactions, and validates and quotes identifiers. Database and table
// names cannot be bound as parameters, so every identifier that reaches SQL
// text goes through QuoteIdent: this package never lets an unchecked name into
// a statement.
package sqldb

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math/rand/v2"
	"regexp"
	"sync/atomic"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/unitenant/unitenant/shared/config"
)

// Open returns a pool for cfg. It does not connect: a function must start
// (and report "database down" from its health check) even while MySQL is
// unreachable.
func Open(cfg config.DB) (*sql.DB, error) {
	mc, err := mysql.ParseDSN(cfg.DSN)
	if err != nil {
		return nil, fmt.Errorf("parse MYSQL_DSN: %w", err)
	}
	applyDefaults(mc, cfg)
	connector, err := mysql.NewConnector(mc)
	if err != nil {
		return nil, fmt.Errorf("mysql connector: %w", err)
	}
	db := sql.OpenDB(connector)
	db.SetMaxOpenConns(cfg.MaxOpenConns)
	db.SetMaxIdleConns(cfg.MaxIdleConns)
	db.SetConnMaxLifetime(cfg.ConnMaxLifetime)
	db.SetConnMaxIdleTime(cfg.ConnMaxIdleTime)
	return db, nil
}

// SQLMode is the sql_mode of every connection sqldb opens, whatever the
// server's default (managed MySQL often is not strict): a value that does
// not fit its column — too long, out of range, a zero or invalid date — or a
// division by zero is an error, in every table, never stored altered with a
// warning; and a table is created with the engine asked for or not at all.
// ONLY_FULL_GROUP_BY is left out, as it is of MariaDB's default (MySQL 8
// has it): the queries are tested without it.
const SQLMode = "STRICT_ALL_TABLES,STRICT_TRANS_TABLES,NO_ZERO_DATE,NO_ZERO_IN_DATE,ERROR_FOR_DIVISION_BY_ZERO,NO_ENGINE_SUBSTITUTION"

// sqlModeValue is SQLMode as the value of the driver's sql_mode parameter,
// set in the one SET statement the driver runs on connecting (with
// time_zone): no round trip of its own. NO_AUTO_CREATE_USER is kept where
// the server has it (MariaDB's default: a GRANT to a user that is gone
// fails instead of creating it without a password); MySQL 8 has no such
// mode and refuses it.
const sqlModeValue = "CONCAT_WS(',', '" + SQLMode + "', IF(FIND_IN_SET('NO_AUTO_CREATE_USER', @@GLOBAL.sql_mode), 'NO_AUTO_CREATE_USER', NULL))"

// Session gives mc's connections the session every unitenant connection
// has, for pools opened on a *mysql.Config outside Open: sql_mode SQLMode
// (replacing any the DSN asks for), and times in UTC — the session's
// time_zone (unless the DSN names one) and the driver's parsing of them.
func Session(mc *mysql.Config) {
	if mc.Params == nil {
		mc.Params = map[string]string{}
	}
	mc.Params["sql_mode"] = sqlModeValue
	if _, ok := mc.Params["time_zone"]; !ok {
		mc.Params["time_zone"] = "'+00:00'"
	}
	mc.ParseTime = true
	mc.Loc = time.UTC
}

// applyDefaults sets what every unitenant connection needs regardless of the
// DSN: the session (Session: strict, UTC), utf8mb4, bounded dial and I/O.
func applyDefaults(mc *mysql.Config, cfg config.DB) {
	Session(mc)
	mc.Collation = "utf8mb4_unicode_ci"
	// Interpolating parameters client-side saves the prepare/close round trips
	// on every query; the driver escapes for the connection's charset.
	mc.InterpolateParams = true
	mc.MultiStatements = cfg.MultiStatements
	if cfg.DialTimeout > 0 {
		mc.Timeout = cfg.DialTimeout
	}
	if cfg.QueryTimeout > 0 {
		mc.ReadTimeout = cfg.QueryTimeout
		mc.WriteTimeout = cfg.QueryTimeout
	}
}

// OpenDSN is Open with default pool settings, for tools and tests.
func OpenDSN(dsn string) (*sql.DB, error) {
	return Open(config.DB{DSN: dsn, MaxOpenConns: 8, MaxIdleConns: 8,
		ConnMaxLifetime: 5 * time.Minute, ConnMaxIdleTime: time.Minute,
		DialTimeout: 3 * time.Second, QueryTimeout: 5 * time.Minute})
}

// WithDatabase returns dsn pointing at database name (empty for none).
func WithDatabase(dsn, name string) (string, error) {
	mc, err := mysql.ParseDSN(dsn)
	if err != nil {
		return "", fmt.Errorf("parse dsn: %w", err)
	}
	if name != "" {
		if err := ValidateIdent(name); err != nil {
			return "", err
		}
	}
	mc.DBName = name
	return mc.FormatDSN(), nil
}

// DatabaseName returns the database a DSN names.
func DatabaseName(dsn string) (string, error) {
	mc, err := mysql.ParseDSN(dsn)
	if err != nil {
		return "", fmt.Errorf("parse dsn: %w", err)
	}
	return mc.DBName, nil
}

// InTx runs fn in a transaction, committing when it returns nil and rolling
// back on an error or a panic.
func InTx(ctx context.Context, db *sql.DB, fn func(*sql.Tx) error) (err error) {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	defer func() {
		if p := recover(); p != nil {
			_ = tx.Rollback()
			panic(p)
		}
		if err != nil {
			_ = tx.Rollback()
		}
	}()
	if err = fn(tx); err != nil {
		return err
	}
	if err = tx.Commit(); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}

// identPattern is deliberately narrower than MySQL allows: lower-case ASCII,
// digits and underscores, starting with a letter, at most 64 characters.
// Every name unitenant generates fits it; anything else is refused.
var identPattern = regexp.MustCompile(`^[a-z][a-z0-9_]{0,63}$`)

// ErrBadIdent is returned for a name that is not a safe identifier.
var ErrBadIdent = errors.New("invalid identifier")

// ValidateIdent reports whether name is a safe identifier.
func ValidateIdent(name string) error {
	if !identPattern.MatchString(name) {
		return fmt.Errorf("%w %q: want ^[a-z][a-z0-9_]{0,63}$", ErrBadIdent, name)
	}
	return nil
}

// QuoteIdent validates name and returns it in backticks.
func QuoteIdent(name string) (string, error) {
	if err := ValidateIdent(name); err != nil {
		return "", err
	}
	return "`" + name + "`", nil
}

// IsDuplicate reports whether err is MySQL's duplicate-key error (1062).
func IsDuplicate(err error) bool { return errorNumber(err) == 1062 }

// IsUnknownDatabase reports whether err is MySQL's unknown-database error (1049).
func IsUnknownDatabase(err error) bool { return errorNumber(err) == 1049 }

// IsNoSuchTable reports whether err is MySQL's unknown-table error (1146).
func IsNoSuchTable(err error) bool { return errorNumber(err) == 1146 }

func errorNumber(err error) uint16 {
	var me *mysql.MySQLError
	if errors.As(err, &me) {
		return me.Number
	}
	return 0
}

// CreateDatabase creates database name if it does not exist, in utf8mb4.
func CreateDatabase(ctx context.Context, db *sql.DB, name string) error {
	q, err := QuoteIdent(name)
	if err != nil {
		return err
	}
	if _, err := db.ExecContext(ctx, "CREATE DATABASE IF NOT EXISTS "+q+" CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci"); err != nil {
		return fmt.Errorf("create database %s: %w", name, err)
	}
	return nil
}

// DropDatabase drops database name if it exists.
func DropDatabase(ctx context.Context, db *sql.DB, name string) error {
	q, err := QuoteIdent(name)
	if err != nil {
		return err
	}
	if _, err := db.ExecContext(ctx, "DROP DATABASE IF EXISTS "+q); err != nil {
		return fmt.Errorf("drop database %s: %w", name, err)
	}
	return nil
}

// IsRetryable reports whether err is a deadlock (1213) or a lock wait
// timeout (1205): InnoDB rolled the transaction back and it may simply be
// run again. Concurrent inserts of one unique key deadlock this way.
func IsRetryable(err error) bool {
	n := errorNumber(err)
	return n == 1213 || n == 1205
}

// Retry runs fn, again (up to 4 times in all, after a short growing pause
// with jitter, so that the transactions that collided do not collide
// again in step) while it fails with a retryable error. fn must only touch
// the database.
func Retry(ctx context.Context, fn func() error) error {
	var err error
	for attempt := 0; attempt < 4; attempt++ {
		if err = fn(); !IsRetryable(err) {
			return err
		}
		retries.Add(1)
		pause := time.Duration(attempt+1) * 10 * time.Millisecond
		pause = pause/2 + rand.N(pause)
		select {
		case <-ctx.Done():
			return err
		case <-time.After(pause):
		}
	}
	return err
}

// retries counts the runs Retry repeated, process-wide.
var retries atomic.Int64

// Retries is how many times Retry has run a function again in this
// process: deadlocks and lock wait timeouts met, a figure to watch.
func Retries() int64 { return retries.Load() }

// InTxRetry is InTx, retried on deadlock (see Retry).
func InTxRetry(ctx context.Context, db *sql.DB, fn func(*sql.Tx) error) error {
	return Retry(ctx, func() error { return InTx(ctx, db, fn) })
}
