// Package config reads a function's configuration from the environment once,
// at start: typed getters with defaults that work on a developer machine, and
// one error naming every variable that is wrong. It never logs a secret: the
// Base configuration masks the database password when logged.
package config

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/go-sql-driver/mysql"
)

// Version is the build version, set by the Makefile with
// -ldflags "-X github.com/unitenant/unitenant/shared/config.Version=...".
var Version = "dev"

// Env reads variables and collects the errors of every bad one, so a
// misconfigured function reports all its mistakes at once.
type Env struct {
	lookup func(string) (string, bool)
	errs   []error
}

// FromOS reads the process environment.
func FromOS() *Env { return &Env{lookup: os.LookupEnv} }

// FromMap reads the given variables, for tests.
func FromMap(m map[string]string) *Env {
	return &Env{lookup: func(k string) (string, bool) { v, ok := m[k]; return v, ok }}
}

func (e *Env) get(name string) (string, bool) {
	v, ok := e.lookup(name)
	v = strings.TrimSpace(v)
	return v, ok && v != ""
}

// Fail records that variable name with value is wrong, for checks the
// getters cannot make (a pattern that does not compile, say).
func (e *Env) Fail(name, value, problem string) { e.fail(name, value, problem) }

func (e *Env) fail(name, value, problem string) {
	e.errs = append(e.errs, fmt.Errorf("%s=%q: %s", name, value, problem))
}

// String returns the variable, or def when unset or empty.
func (e *Env) String(name, def string) string {
	if v, ok := e.get(name); ok {
		return v
	}
	return def
}

// Secret is String for values that must never be printed in errors.
func (e *Env) Secret(name, def string) string { return e.String(name, def) }

// OneOf returns the variable when it is one of allowed, else records an error.
func (e *Env) OneOf(name, def string, allowed ...string) string {
	v := e.String(name, def)
	for _, a := range allowed {
		if v == a {
			return v
		}
	}
	e.fail(name, v, "must be one of "+strings.Join(allowed, ", "))
	return def
}

// Int returns the variable as an integer within [min, max].
func (e *Env) Int(name string, def, min, max int) int {
	v, ok := e.get(name)
	if !ok {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		e.fail(name, v, "not an integer")
		return def
	}
	if n < min || n > max {
		e.fail(name, v, fmt.Sprintf("must be between %d and %d", min, max))
		return def
	}
	return n
}

// Duration returns the variable as a positive Go duration ("1.5s", "5m").
func (e *Env) Duration(name string, def time.Duration) time.Duration {
	v, ok := e.get(name)
	if !ok {
		return def
	}
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 {
		e.fail(name, v, "not a positive duration like 30s or 5m")
		return def
	}
	return d
}

// Bool returns the variable as a boolean (1/0, true/false, yes/no).
func (e *Env) Bool(name string, def bool) bool {
	v, ok := e.get(name)
	if !ok {
		return def
	}
	switch strings.ToLower(v) {
	case "1", "true", "yes", "on":
		return true
	case "0", "false", "no", "off":
		return false
	}
	e.fail(name, v, "not a boolean")
	return def
}

// Err returns every problem found so far, or nil.
func (e *Env) Err() error {
	if len(e.errs) == 0 {
		return nil
	}
	return fmt.Errorf("configuration: %w", errors.Join(e.errs...))
}

// DB is how to reach the system database and how big the pool may grow.
type DB struct {
	DSN             string // go-sql-driver DSN including the system database name
	MaxOpenConns    int
	MaxIdleConns    int
	ConnMaxLifetime time.Duration
	ConnMaxIdleTime time.Duration
	DialTimeout     time.Duration
	QueryTimeout    time.Duration // read/write timeout on the wire
	// MultiStatements lets one round trip carry several statements
	// (sqldb.Batch). Off unless a function's hot path needs it: with it
	// off, the server refuses any stacked statement outright.
	MultiStatements bool
}

// LogValue masks the password so a logged config never leaks it.
func (d DB) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("dsn", MaskDSN(d.DSN)),
		slog.Int("max_open_conns", d.MaxOpenConns),
	)
}

// MaskDSN returns the DSN with its password replaced by "***".
func MaskDSN(dsn string) string {
	c, err := mysql.ParseDSN(dsn)
	if err != nil {
		return "(unparsable dsn)"
	}
	if c.Passwd != "" {
		c.Passwd = "***"
	}
	return c.FormatDSN()
}

// Base is what every function reads.
type Base struct {
	Env      string // "development" or "production"
	LogLevel slog.Level
	DB       DB
}

// DefaultDSN is the system database on a developer machine.
const DefaultDSN = "root@tcp(127.0.0.1:3306)/unitenant"

// LoadBase reads the settings every function shares.
func LoadBase(e *Env) Base {
	b := Base{
		Env: e.OneOf("APP_ENV", "development", "development", "production"),
		DB: DB{
			DSN: e.Secret("MYSQL_DSN", DefaultDSN),
			// A serverless instance serves one request at a time (Lambda) or a
			// few (FC): a small pool keeps a fleet of instances from exhausting
			// MySQL's max_connections.
			MaxOpenConns:    e.Int("MYSQL_MAX_OPEN_CONNS", 8, 1, 1000),
			MaxIdleConns:    e.Int("MYSQL_MAX_IDLE_CONNS", 8, 0, 1000),
			ConnMaxLifetime: e.Duration("MYSQL_CONN_MAX_LIFETIME", 5*time.Minute),
			ConnMaxIdleTime: e.Duration("MYSQL_CONN_MAX_IDLE_TIME", time.Minute),
			DialTimeout:     e.Duration("MYSQL_DIAL_TIMEOUT", 3*time.Second),
			QueryTimeout:    e.Duration("MYSQL_IO_TIMEOUT", 30*time.Second),
		},
	}
	switch lvl := strings.ToLower(e.String("LOG_LEVEL", "info")); lvl {
	case "debug":
		b.LogLevel = slog.LevelDebug
	case "info":
		b.LogLevel = slog.LevelInfo
	case "warn":
		b.LogLevel = slog.LevelWarn
	case "error":
		b.LogLevel = slog.LevelError
	default:
		e.fail("LOG_LEVEL", lvl, "must be one of debug, info, warn, error")
	}
	if c, err := mysql.ParseDSN(b.DB.DSN); err != nil {
		e.errs = append(e.errs, fmt.Errorf("MYSQL_DSN: %v", err)) // the value holds a password: never echo it
	} else if c.DBName == "" {
		e.errs = append(e.errs, errors.New("MYSQL_DSN: names no database (want user:pass@tcp(host:3306)/unitenant)"))
	}
	return b
}
