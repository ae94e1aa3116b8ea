package provisioning_test

import (
	"context"
	"database/sql"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/unitenant/unitenant/infra/schema"
	"github.com/unitenant/unitenant/shared/logging"
	"github.com/unitenant/unitenant/shared/migration"
	"github.com/unitenant/unitenant/shared/provisioning"
	"github.com/unitenant/unitenant/shared/sqldb"
	"github.com/unitenant/unitenant/shared/sqldb/sqldbtest"
)

// materializedTemplate returns the test server and the name of a tenant
// template of the test's own at version (0: the latest), dropped at the end.
func materializedTemplate(tb testing.TB, version int) (*sql.DB, string) {
	tb.Helper()
	name := sqldbtest.Name(tb)
	db, _ := sqldbtest.CreateDatabase(tb, name)
	ms, err := schema.Tenant()
	if err != nil {
		tb.Fatal(err)
	}
	if version > 0 {
		ms = ms[:version]
	}
	r := migration.Runner{DB: db, Migrations: ms, Log: logging.Discard()}
	if _, err := r.Up(context.Background()); err != nil {
		tb.Fatal(err)
	}
	return sqldbtest.Server(tb), name
}

// dropLater drops database name at the end of the test.
func dropLater(tb testing.TB, server *sql.DB, name string) {
	tb.Cleanup(func() {
		if err := sqldb.DropDatabase(context.Background(), server, name); err != nil {
			tb.Errorf("drop %s: %v", name, err)
		}
	})
}

func databaseExists(tb testing.TB, server *sql.DB, name string) bool {
	tb.Helper()
	var n int
	if err := server.QueryRow("SELECT COUNT(*) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = ?", name).Scan(&n); err != nil {
		tb.Fatal(err)
	}
	return n == 1
}

// count returns the single integer query answers.
func count(tb testing.TB, db *sql.DB, query string, args ...any) int {
	tb.Helper()
	var n int
	if err := db.QueryRow(query, args...).Scan(&n); err != nil {
		tb.Fatalf("%s: %v", query, err)
	}
	return n
}

func TestCloneDatabase(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	server, tmpl := materializedTemplate(t, 0)

	t.Run("OK", func(t *testing.T) {
		t.Parallel()
		target := sqldbtest.Name(t)
		dropLater(t, server, target)
		if err := provisioning.CloneDatabase(ctx, server, tmpl, target, 4); err != nil {
			t.Fatal(err)
		}
		diffs, err := provisioning.CheckDatabase(ctx, server, tmpl, target)
		if err != nil {
			t.Fatal(err)
		}
		if len(diffs) > 0 {
			t.Fatalf("a fresh clone differs from its template: %v", diffs)
		}
		// Foreign keys, seed rows and the ledger came along, and every key
		// points into the clone, not back at the template.
		for _, q := range []string{
			"SELECT COUNT(*) FROM information_schema.REFERENTIAL_CONSTRAINTS WHERE CONSTRAINT_SCHEMA = ?",
			"SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = ?",
		} {
			if w, g := count(t, server, q, tmpl), count(t, server, q, target); w != g || w == 0 {
				t.Errorf("%s: template %d, clone %d", q, w, g)
			}
		}
		if n := count(t, server, "SELECT COUNT(*) FROM information_schema.KEY_COLUMN_USAGE WHERE TABLE_SCHEMA = ? AND REFERENCED_TABLE_SCHEMA <> TABLE_SCHEMA", target); n != 0 {
			t.Errorf("%d foreign key columns of the clone reference another database", n)
		}
		for _, table := range []string{"roles", "permissions", "role_permissions", "schema_migrations"} {
			q := "SELECT COUNT(*) FROM `%s`." + table
			if w, g := count(t, server, fmt.Sprintf(q, tmpl)), count(t, server, fmt.Sprintf(q, target)); w != g || w == 0 {
				t.Errorf("%s: template %d rows, clone %d", table, w, g)
			}
		}
	})

	t.Run("ErrTargetExists", func(t *testing.T) {
		t.Parallel()
		target := sqldbtest.Name(t)
		sqldbtest.CreateDatabase(t, target)
		err := provisioning.CloneDatabase(ctx, server, tmpl, target, 2)
		if err == nil || !strings.Contains(err.Error(), "exists") {
			t.Fatalf("err = %v, want database exists", err)
		}
		if !databaseExists(t, server, target) {
			t.Fatal("a clone onto an existing database dropped it")
		}
	})

	t.Run("ErrBadNames", func(t *testing.T) {
		t.Parallel()
		for _, names := range [][2]string{{tmpl, "Bad-Name"}, {"x`; DROP DATABASE y", "ok_name"}} {
			if err := provisioning.CloneDatabase(ctx, server, names[0], names[1], 1); err == nil {
				t.Errorf("clone %q into %q: want an error", names[0], names[1])
			}
		}
	})

	t.Run("ErrNoTemplate", func(t *testing.T) {
		t.Parallel()
		target := sqldbtest.Name(t)
		if err := provisioning.CloneDatabase(ctx, server, sqldbtest.Name(t), target, 1); err == nil {
			t.Fatal("want an error")
		}
		if databaseExists(t, server, target) {
			t.Fatal("target was created")
		}
	})
}

// A failure after the target was created drops it again: a rerun starts
// clean.
func TestCloneDatabaseFailureDropsTarget(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	tmplDB, _ := sqldbtest.NewDatabase(t)
	server := sqldbtest.Server(t)
	var tmpl string
	if err := tmplDB.QueryRow("SELECT DATABASE()").Scan(&tmpl); err != nil {
		t.Fatal(err)
	}
	// A row the template accepted with checks off, which the copy (checks
	// on) refuses, fails the clone halfway.
	conn, err := tmplDB.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	for _, q := range []string{
		"CREATE TABLE parent (id INT PRIMARY KEY)",
		"CREATE TABLE child (id INT PRIMARY KEY, parent_id INT, v INT, CONSTRAINT ck_v CHECK (v > 0), CONSTRAINT fk_child_parent FOREIGN KEY (parent_id) REFERENCES parent (id))",
		"SET SESSION check_constraint_checks = 0",
		"INSERT INTO child VALUES (1, NULL, -1)",
	} {
		if _, err := conn.ExecContext(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	target := sqldbtest.Name(t)
	dropLater(t, server, target)
	err = provisioning.CloneDatabase(ctx, server, tmpl, target, 2)
	if err == nil || !strings.Contains(err.Error(), "copy rows of child") {
		t.Fatalf("err = %v, want the copy of child to fail", err)
	}
	if databaseExists(t, server, target) {
		t.Fatal("the half-made clone was left behind")
	}
	// The connections the clone changed never return to the pool.
	if n := count(t, server, "SELECT @@SESSION.foreign_key_checks"); n != 1 {
		t.Fatalf("a pooled connection has foreign_key_checks = %d", n)
	}
}

// BenchmarkCloneTemplate times a clone of the full template against the
// baseline, the seed's way: CREATE DATABASE and CREATE TABLE ... LIKE, one
// table after the other (no foreign keys, no seed rows). The two alternate
// within each iteration, so load from elsewhere on the server weighs on both
// alike, and each is reported as its median: clone-ms, baseline-ms and
// their ratio, clone/baseline.
func BenchmarkCloneTemplate(b *testing.B) {
	ctx := context.Background()
	server, tmpl := materializedTemplate(b, 0)
	tables, err := server.QueryContext(ctx, "SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? AND TABLE_TYPE = 'BASE TABLE'", tmpl)
	if err != nil {
		b.Fatal(err)
	}
	var names []string
	for tables.Next() {
		var n string
		if err := tables.Scan(&n); err != nil {
			b.Fatal(err)
		}
		names = append(names, n)
	}
	tables.Close()
	clone := func(target string) error { return provisioning.CloneDatabase(ctx, server, tmpl, target, 0) }
	baseline := func(target string) error {
		if err := sqldb.CreateDatabase(ctx, server, target); err != nil {
			return err
		}
		for _, n := range names {
			if _, err := server.ExecContext(ctx, fmt.Sprintf("CREATE TABLE `%s`.`%s` LIKE `%s`.`%s`", target, n, tmpl, n)); err != nil {
				return err
			}
		}
		return nil
	}
	timed := func(create func(string) error, target string) time.Duration {
		start := time.Now()
		if err := create(target); err != nil {
			b.Fatal(err)
		}
		d := time.Since(start)
		if err := sqldb.DropDatabase(ctx, server, target); err != nil {
			b.Fatal(err)
		}
		return d
	}
	// The first clone after the template was made pays for opening its
	// tables: warm up untimed.
	timed(clone, tmpl+"_warm")

	var clones, baselines []time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		clones = append(clones, timed(clone, fmt.Sprintf("%s_c%d", tmpl, i)))
		baselines = append(baselines, timed(baseline, fmt.Sprintf("%s_b%d", tmpl, i)))
	}
	b.StopTimer()
	c, base := median(clones), median(baselines)
	b.ReportMetric(float64(c.Microseconds())/1000, "clone-ms")
	b.ReportMetric(float64(base.Microseconds())/1000, "baseline-ms")
	b.ReportMetric(float64(c)/float64(base), "clone/baseline")
	b.ReportMetric(float64(len(names)), "tables")
	b.ReportMetric(float64(count(b, server, "SELECT COUNT(*) FROM information_schema.REFERENTIAL_CONSTRAINTS WHERE CONSTRAINT_SCHEMA = ?", tmpl)), "fks")
}

func median(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)/2]
}
