// Package sqldbtest gives each test its own freshly created MySQL database on
// the real server named by TEST_MYSQL_DSN (default root@tcp(127.0.0.1:3306)/),
// dropped when the test ends, so tests never share state and run in parallel.
// It never mocks the database: a test that cannot reach MySQL fails.
package sqldbtest

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/unitenant/unitenant/shared/config"
	"github.com/unitenant/unitenant/shared/sqldb"
)

// DefaultServerDSN is the developer machine's MariaDB.
const DefaultServerDSN = "root@tcp(127.0.0.1:3306)/"

// ServerDSN returns the DSN of the test server, naming no database.
func ServerDSN(tb testing.TB) string {
	tb.Helper()
	dsn := os.Getenv("TEST_MYSQL_DSN")
	if dsn == "" {
		dsn = DefaultServerDSN
	}
	out, err := sqldb.WithDatabase(dsn, "")
	if err != nil {
		tb.Fatalf("TEST_MYSQL_DSN: %v", err)
	}
	return out
}

// Server returns a pool on the test server with no database selected, closed
// at the end of the test.
func Server(tb testing.TB) *sql.DB {
	tb.Helper()
	db, err := sqldb.OpenDSN(ServerDSN(tb))
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { db.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := db.PingContext(ctx); err != nil {
		tb.Fatalf("MySQL test server unreachable (set TEST_MYSQL_DSN or run `make test`, which starts one): %v", err)
	}
	return db
}

var nonIdent = regexp.MustCompile(`[^a-z0-9]+`)

// Name returns a unique database name derived from the test's name.
func Name(tb testing.TB) string {
	var b [5]byte
	_, _ = rand.Read(b[:])
	stem := nonIdent.ReplaceAllString(strings.ToLower(tb.Name()), "_")
	if len(stem) > 30 {
		stem = stem[len(stem)-30:]
	}
	return "ut_" + strings.Trim(stem, "_") + "_" + hex.EncodeToString(b[:])
}

// NewDatabase creates a unique empty database and returns a pool on it and
// its DSN. The database is dropped when the test ends.
func NewDatabase(tb testing.TB) (*sql.DB, string) {
	tb.Helper()
	name := Name(tb)
	return CreateDatabase(tb, name)
}

// CreateDatabase creates the named database (dropped at the end of the test)
// and returns a pool on it and its DSN.
func CreateDatabase(tb testing.TB, name string) (*sql.DB, string) {
	tb.Helper()
	server := Server(tb)
	ctx := context.Background()
	if err := sqldb.CreateDatabase(ctx, server, name); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		if err := sqldb.DropDatabase(context.Background(), server, name); err != nil {
			tb.Errorf("drop test database: %v", err)
		}
	})
	dsn, err := sqldb.WithDatabase(ServerDSN(tb), name)
	if err != nil {
		tb.Fatal(err)
	}
	db, err := sqldb.OpenDSN(dsn)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { db.Close() })
	return db, dsn
}

// Batching opens a pool on dsn that takes batches (sqldb.Batch: multi
// statements), closed at the end of the test.
func Batching(tb testing.TB, dsn string) *sql.DB {
	tb.Helper()
	db, err := sqldb.Open(config.DB{DSN: dsn, MaxOpenConns: 64, MaxIdleConns: 64, ConnMaxLifetime: 5 * time.Minute,
		ConnMaxIdleTime: time.Minute, DialTimeout: 3 * time.Second, QueryTimeout: time.Minute, MultiStatements: true})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { db.Close() })
	return db
}
