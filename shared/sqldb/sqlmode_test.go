package sqldb_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/go-sql-driver/mysql"

	"github.com/unitenant/unitenant/shared/sqldb"
	"github.com/unitenant/unitenant/shared/sqldb/sqldbtest"
)

// strictModes are the sql_mode flags every connection sqldb opens must
// have, whatever the server's default (managed MySQL often has none).
var strictModes = []string{"STRICT_ALL_TABLES", "STRICT_TRANS_TABLES", "NO_ZERO_DATE", "NO_ZERO_IN_DATE",
	"ERROR_FOR_DIVISION_BY_ZERO", "NO_ENGINE_SUBSTITUTION"}

// A value that does not fit its column is refused, never stored altered:
// the session is strict for every table, not only transactional ones. The
// table is MEMORY (not transactional) and the bad value in a statement's
// second row, which STRICT_TRANS_TABLES alone (a common server default)
// would store truncated or clipped with a warning.
func TestOpenIsStrict(t *testing.T) {
	t.Parallel()
	_, dsn := sqldbtest.NewDatabase(t)
	for _, c := range []struct {
		name string
		dsn  string
	}{
		{"OK", dsn},
		// A DSN cannot loosen it: sqldb's mode wins over the DSN's.
		{"DSNAsksForNone", dsn + "?sql_mode=%27%27"},
	} {
		t.Run(c.name, func(t *testing.T) {
			db, err := sqldb.OpenDSN(c.dsn)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { db.Close() })
			ctx := context.Background()
			conn, err := db.Conn(ctx) // the temporary table is the session's
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			var mode, global string
			if err := conn.QueryRowContext(ctx, "SELECT @@SESSION.sql_mode, @@GLOBAL.sql_mode").Scan(&mode, &global); err != nil {
				t.Fatal(err)
			}
			have := strings.Split(mode, ",")
			for _, m := range strictModes {
				if !slices.Contains(have, m) {
					t.Errorf("session sql_mode %q lacks %s", mode, m)
				}
			}
			// The server's own safety net is kept (MariaDB's default).
			if slices.Contains(strings.Split(global, ","), "NO_AUTO_CREATE_USER") && !slices.Contains(have, "NO_AUTO_CREATE_USER") {
				t.Errorf("session sql_mode %q lacks the server's NO_AUTO_CREATE_USER", mode)
			}
			if _, err := conn.ExecContext(ctx, "CREATE TEMPORARY TABLE strict_t (s VARCHAR(3) NULL, n TINYINT NULL, d DATE NULL) ENGINE=MEMORY"); err != nil {
				t.Fatal(err)
			}
			for _, v := range []struct {
				name, insert string
				code         uint16
				stored       string // the altered value, which must not be there
			}{
				{"TooLong", "INSERT INTO strict_t (s) VALUES ('ok'), ('abcdef')", 1406, "SELECT COUNT(*) FROM strict_t WHERE s = 'abc'"},
				{"OutOfRange", "INSERT INTO strict_t (n) VALUES (1), (1000)", 1264, "SELECT COUNT(*) FROM strict_t WHERE n = 127"},
				{"ZeroDate", "INSERT INTO strict_t (d) VALUES ('2024-01-01'), ('0000-00-00')", 1292, "SELECT COUNT(*) FROM strict_t WHERE d = 0"},
			} {
				_, err := conn.ExecContext(ctx, v.insert)
				if me := (*mysql.MySQLError)(nil); !errors.As(err, &me) || me.Number != v.code {
					t.Errorf("%s: %s = %v, want error %d", v.name, v.insert, err, v.code)
				}
				var n int
				if err := conn.QueryRowContext(ctx, v.stored).Scan(&n); err != nil || n != 0 {
					t.Errorf("%s: %d rows stored altered (%v), want none", v.name, n, err)
				}
			}
		})
	}
}
