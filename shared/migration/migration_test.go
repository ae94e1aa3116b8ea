package migration_test

import (
	"context"
	"strings"
	"sync"
	"testing"
	"testing/fstest"

	"github.com/unitenant/unitenant/shared/migration"
	"github.com/unitenant/unitenant/shared/sqldb/sqldbtest"
)

func TestSplit(t *testing.T) {
	t.Parallel()
	src := "-- header; not a statement\n" +
		"CREATE TABLE a (id INT, note VARCHAR(9) DEFAULT 'x;y', `odd;name` INT);\n" +
		"/* block; comment\n spanning */ INSERT INTO a VALUES (1, 'it''s; fine', 2);\n" +
		"# hash comment; too\n" +
		"INSERT INTO a VALUES (2, \"dq \\\" ; \", 3)  ;\n" +
		"SELECT 1--1\n;"
	got, err := migration.Split(src)
	if err != nil {
		t.Fatal(err)
	}
	want := []migration.Statement{
		{SQL: "CREATE TABLE a (id INT, note VARCHAR(9) DEFAULT 'x;y', `odd;name` INT)", Line: 2},
		{SQL: "INSERT INTO a VALUES (1, 'it''s; fine', 2)", Line: 4},
		{SQL: "INSERT INTO a VALUES (2, \"dq \\\" ; \", 3)", Line: 6},
		{SQL: "SELECT 1--1", Line: 7},
	}
	if len(got) != len(want) {
		t.Fatalf("got %d statements, want %d: %+v", len(got), len(want), got)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("statement %d:\n got  %+v\n want %+v", i+1, got[i], want[i])
		}
	}
	if _, err := migration.Split("SELECT 'open"); err == nil {
		t.Error("unterminated quote: want an error")
	}
}

func TestLoadRefusesBadFiles(t *testing.T) {
	t.Parallel()
	for name, fsys := range map[string]fstest.MapFS{
		"BadName":      {"1_x.sql": {Data: []byte("SELECT 1;")}},
		"Duplicate":    {"0001_a.sql": {Data: []byte("SELECT 1;")}, "0001_b.sql": {Data: []byte("SELECT 1;")}},
		"Empty":        {"0001_a.sql": {Data: []byte("-- nothing\n")}},
		"VersionZero":  {"0000_a.sql": {Data: []byte("SELECT 1;")}},
		"Unterminated": {"0001_a.sql": {Data: []byte("SELECT 'x;")}},
	} {
		if _, err := migration.Load(fsys); err == nil {
			t.Errorf("%s: Load succeeded, want an error", name)
		}
	}
	ms, err := migration.Load(fstest.MapFS{
		"0002_b.sql": {Data: []byte("SELECT 2;")},
		"0001_a.sql": {Data: []byte("SELECT 1;")},
		"README.md":  {Data: []byte("ignored")},
	})
	if err != nil || len(ms) != 2 || ms[0].Version != 1 || migration.Latest(ms) != 2 {
		t.Fatalf("Load = %+v, %v", ms, err)
	}
}

func load(t *testing.T, files map[string]string) []migration.Migration {
	t.Helper()
	fsys := fstest.MapFS{}
	for name, body := range files {
		fsys[name] = &fstest.MapFile{Data: []byte(body)}
	}
	ms, err := migration.Load(fsys)
	if err != nil {
		t.Fatal(err)
	}
	return ms
}

var base = map[string]string{
	"0001_people.sql": "CREATE TABLE people (id INT PRIMARY KEY, name VARCHAR(50));\nINSERT INTO people VALUES (1, 'ann');\n",
	"0002_pets.sql":   "CREATE TABLE pets (id INT PRIMARY KEY, owner INT, FOREIGN KEY (owner) REFERENCES people(id));\n",
}

func TestUpTwiceChangesNothing(t *testing.T) {
	t.Parallel()
	db, _ := sqldbtest.NewDatabase(t)
	ctx := context.Background()
	r := migration.Runner{DB: db, Migrations: load(t, base)}
	res, err := r.Up(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if res.From != 0 || res.To != 2 || len(res.Applied) != 2 {
		t.Fatalf("first run = %+v", res)
	}
	res, err = r.Up(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if res.From != 2 || res.To != 2 || len(res.Applied) != 0 {
		t.Fatalf("second run = %+v, want nothing applied", res)
	}
	var people int
	if err := db.QueryRow("SELECT COUNT(*) FROM people").Scan(&people); err != nil || people != 1 {
		t.Fatalf("people rows = %d (%v), want 1: the seed row ran twice?", people, err)
	}
	if v, err := migration.Version(ctx, db); err != nil || v != 2 {
		t.Fatalf("Version = %d, %v", v, err)
	}
}

func TestVersionOfEmptyDatabaseIsZero(t *testing.T) {
	t.Parallel()
	db, _ := sqldbtest.NewDatabase(t)
	if v, err := migration.Version(context.Background(), db); err != nil || v != 0 {
		t.Fatalf("Version = %d, %v; want 0, nil", v, err)
	}
}

func TestConcurrentRunnersApplyEachOnce(t *testing.T) {
	t.Parallel()
	db, _ := sqldbtest.NewDatabase(t)
	ms := load(t, map[string]string{
		"0001_counter.sql": "CREATE TABLE counter (n INT NOT NULL);\n",
		// Not idempotent on purpose: applied twice it would insert twice.
		"0002_bump.sql":  "INSERT INTO counter VALUES (1);\n",
		"0003_bump2.sql": "INSERT INTO counter VALUES (1);\n",
	})
	const runners = 6
	var wg sync.WaitGroup
	errs := make(chan error, runners)
	applied := make(chan int, runners*3)
	for range runners {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := migration.Runner{DB: db, Migrations: ms}
			res, err := r.Up(context.Background())
			errs <- err
			for _, v := range res.Applied {
				applied <- v
			}
		}()
	}
	wg.Wait()
	close(errs)
	close(applied)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	count := map[int]int{}
	for v := range applied {
		count[v]++
	}
	for v := 1; v <= 3; v++ {
		if count[v] != 1 {
			t.Errorf("migration %d applied %d times across runners, want 1", v, count[v])
		}
	}
	var n int
	if err := db.QueryRow("SELECT COUNT(*) FROM counter").Scan(&n); err != nil || n != 2 {
		t.Fatalf("counter rows = %d (%v), want 2", n, err)
	}
}

func TestFailedMigrationLeavesLedgerAndResumes(t *testing.T) {
	t.Parallel()
	db, _ := sqldbtest.NewDatabase(t)
	ctx := context.Background()
	broken := map[string]string{
		"0001_people.sql": base["0001_people.sql"],
		"0002_three.sql": "CREATE TABLE t1 (id INT);\n" +
			"CREATE TABLE t2 (id INT);\n" +
			"INSERT INTO no_such_table VALUES (1);\n" +
			"CREATE TABLE t3 (id INT);\n",
	}
	r := migration.Runner{DB: db, Migrations: load(t, broken)}
	res, err := r.Up(ctx)
	if err == nil {
		t.Fatal("want an error from the broken migration")
	}
	for _, want := range []string{"0002_three.sql", "statement 3 of 4", "line 3", "no_such_table"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
	if res.To != 1 {
		t.Errorf("result To = %d, want 1", res.To)
	}
	var inLedger int
	if err := db.QueryRow("SELECT COUNT(*) FROM schema_migrations WHERE version = 2").Scan(&inLedger); err != nil || inLedger != 0 {
		t.Fatalf("ledger rows for the failed migration = %d (%v), want 0", inLedger, err)
	}
	if v, _ := migration.Version(ctx, db); v != 1 {
		t.Fatalf("version after failure = %d, want 1", v)
	}

	// An edited file with the failure still in place is refused.
	edited := map[string]string{"0001_people.sql": base["0001_people.sql"], "0002_three.sql": broken["0002_three.sql"] + "-- edited\n"}
	r.Migrations = load(t, edited)
	if _, err := r.Up(ctx); err == nil || !strings.Contains(err.Error(), "changed after 2 of its statements") {
		t.Fatalf("edited partial migration: err = %v", err)
	}

	// Fix the cause (the table appears) and rerun: it resumes at statement 3,
	// not re-running the CREATE TABLEs that would now fail.
	if _, err := db.Exec("CREATE TABLE no_such_table (id INT)"); err != nil {
		t.Fatal(err)
	}
	r.Migrations = load(t, broken)
	res, err = r.Up(ctx)
	if err != nil {
		t.Fatalf("rerun after the fix: %v", err)
	}
	if len(res.Applied) != 1 || res.Applied[0] != 2 {
		t.Fatalf("rerun applied %v, want [2]", res.Applied)
	}
	var t3 int
	if err := db.QueryRow("SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 't3'").Scan(&t3); err != nil || t3 != 1 {
		t.Fatalf("t3 exists = %d (%v)", t3, err)
	}
}

func TestAppliedFileChangedIsRefused(t *testing.T) {
	t.Parallel()
	db, _ := sqldbtest.NewDatabase(t)
	ctx := context.Background()
	r := migration.Runner{DB: db, Migrations: load(t, base)}
	if _, err := r.Up(ctx); err != nil {
		t.Fatal(err)
	}
	changed := map[string]string{"0001_people.sql": base["0001_people.sql"] + "-- sneaky edit\n", "0002_pets.sql": base["0002_pets.sql"]}
	r.Migrations = load(t, changed)
	if _, err := r.Up(ctx); err == nil || !strings.Contains(err.Error(), "0001_people.sql was changed after it was applied") {
		t.Fatalf("err = %v, want a changed-file error", err)
	}
}

// TestResumedDataStatementsRunOnce: after a failure, the resume starts past
// the data statements already recorded, so a row is inserted once. (That a
// kill between a data statement and its record cannot make it run twice
// holds by construction: both commit in one transaction.)
func TestResumedDataStatementsRunOnce(t *testing.T) {
	t.Parallel()
	db, _ := sqldbtest.NewDatabase(t)
	ctx := context.Background()
	if _, err := db.Exec("CREATE TABLE seen (n INT NOT NULL)"); err != nil {
		t.Fatal(err)
	}
	ms := load(t, map[string]string{"0001_rows.sql": "INSERT INTO seen VALUES (1);\nINSERT INTO nowhere VALUES (2);\n"})
	if _, err := (&migration.Runner{DB: db, Migrations: ms}).Up(ctx); err == nil {
		t.Fatal("want the failure of statement 2")
	}
	if _, err := db.Exec("CREATE TABLE nowhere (n INT NOT NULL)"); err != nil {
		t.Fatal(err)
	}
	if _, err := (&migration.Runner{DB: db, Migrations: ms}).Up(ctx); err != nil {
		t.Fatal(err)
	}
	var n int
	if err := db.QueryRow("SELECT COUNT(*) FROM seen").Scan(&n); err != nil || n != 1 {
		t.Fatalf("rows in seen = %d (%v), want exactly 1", n, err)
	}
}
