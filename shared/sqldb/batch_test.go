package sqldb_test

import (
	"context"
	"database/sql"
	"errors"
	"testing"
	"time"

	"github.com/unitenant/unitenant/shared/sqldb"
	"github.com/unitenant/unitenant/shared/sqldb/sqldbtest"
)

// batchDB is a database of the test's own with a table t, a batching pool
// of one connection (so a transaction left open would show) and a plain
// pool.
func batchDB(t *testing.T) (batching, plain *sql.DB) {
	t.Helper()
	plain, dsn := sqldbtest.NewDatabase(t)
	if _, err := plain.Exec("CREATE TABLE t (id BIGINT AUTO_INCREMENT PRIMARY KEY, k VARCHAR(40) NOT NULL UNIQUE, n INT NOT NULL) ENGINE=InnoDB"); err != nil {
		t.Fatal(err)
	}
	batching = sqldbtest.Batching(t, dsn)
	batching.SetMaxOpenConns(1)
	return batching, plain
}

func count(t *testing.T, db *sql.DB) int {
	t.Helper()
	var n int
	if err := db.QueryRow("SELECT COUNT(*) FROM t").Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// inTransaction reports whether the batching pool's one session still has
// a transaction open.
func inTransaction(t *testing.T, db *sql.DB) bool {
	t.Helper()
	var n int
	if err := db.QueryRow("SELECT @@in_transaction").Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n == 1
}

func TestTxBatchCommitsOrRollsBackOnTheDecision(t *testing.T) {
	ctx := context.Background()
	db, plain := batchDB(t)
	var a, b, up int
	stage := func(batch *sqldb.Tx) error {
		a = batch.Add("INSERT INTO t (k, n) VALUES (?, ?)", "a", 1)
		b = batch.Add("INSERT INTO t (k, n) VALUES (?, ?)", "b; DROP TABLE t", 2) // a parameter, never SQL
		up = batch.Add("UPDATE t SET n = n + 10 WHERE k IN (?, ?)", "a", "zzz")
		return nil
	}
	refused := errors.New("refused")
	var seen sqldb.Results
	_, err := sqldb.TxBatch(ctx, db, stage, func(q *sql.Conn, r sqldb.Results) error {
		seen = r
		var n int
		if err := q.QueryRowContext(ctx, "SELECT COUNT(*) FROM t").Scan(&n); err != nil || n != 2 {
			t.Errorf("inside the transaction %d rows (%v), want 2", n, err)
		}
		return refused
	})
	if !errors.Is(err, refused) {
		t.Fatalf("TxBatch = %v, want the decision's error", err)
	}
	if seen.Affected[a] != 1 || seen.Affected[b] != 1 || seen.Affected[up] != 1 || seen.IDs[b] != seen.IDs[a]+1 {
		t.Errorf("results %+v: want one row each and consecutive ids", seen)
	}
	if n := count(t, plain); n != 0 || inTransaction(t, db) {
		t.Fatalf("after a refusal %d rows, transaction open %v; want nothing", n, inTransaction(t, db))
	}

	committed, err := sqldb.TxBatch(ctx, db, stage, func(*sql.Conn, sqldb.Results) error { return nil })
	if err != nil {
		t.Fatal(err)
	}
	if err := committed(); err != nil {
		t.Fatal(err)
	}
	var n int
	if err := plain.QueryRow("SELECT n FROM t WHERE k = 'a'").Scan(&n); err != nil || n != 11 || count(t, plain) != 2 {
		t.Fatalf("after a commit a.n = %d (%v), %d rows; want 11 and 2", n, err, count(t, plain))
	}
}

func TestTxBatchFailingStatementRollsBackAll(t *testing.T) {
	ctx := context.Background()
	db, plain := batchDB(t)
	if _, err := plain.Exec("INSERT INTO t (k, n) VALUES ('dup', 0)"); err != nil {
		t.Fatal(err)
	}
	decided := false
	_, err := sqldb.TxBatch(ctx, db, func(b *sqldb.Tx) error {
		b.Add("INSERT INTO t (k, n) VALUES ('new', 1)")
		b.Add("INSERT INTO t (k, n) VALUES ('dup', 1)")
		b.Add("INSERT INTO t (k, n) VALUES ('after', 1)")
		return nil
	}, func(*sql.Conn, sqldb.Results) error { decided = true; return nil })
	if !sqldb.IsDuplicate(err) || decided {
		t.Fatalf("TxBatch = %v (decided %v), want the duplicate key error and no decision", err, decided)
	}
	if n := count(t, plain); n != 1 || inTransaction(t, db) {
		t.Fatalf("%d rows, transaction open %v; want only the first row and none open", n, inTransaction(t, db))
	}
}

func TestExecEachCommitsEachStatementOnItsOwn(t *testing.T) {
	ctx := context.Background()
	db, plain := batchDB(t)
	var b sqldb.Batch
	b.Add("INSERT INTO t (k, n) VALUES ('one', 1)")
	b.Add("INSERT INTO t (k, n) VALUES ('one', 2)")
	b.Add("INSERT INTO t (k, n) VALUES ('three', 3)")
	if _, err := b.ExecEach(ctx, db); !sqldb.IsDuplicate(err) {
		t.Fatalf("ExecEach = %v, want the duplicate reported", err)
	}
	var n int
	if err := plain.QueryRow("SELECT COUNT(*) FROM t WHERE k = 'one' AND n = 1").Scan(&n); err != nil || n != 1 || count(t, plain) != 1 || inTransaction(t, db) {
		t.Fatalf("%d rows; want only the first statement's, committed on its own", count(t, plain))
	}
	var ok sqldb.Batch
	i := ok.Add("UPDATE t SET n = 5 WHERE k = 'one'")
	j := ok.Add("INSERT INTO t (k, n) VALUES ('two', 2)")
	res, err := ok.ExecEach(ctx, db)
	if err != nil || res.Affected[i] != 1 || res.Affected[j] != 1 || res.IDs[j] == 0 {
		t.Fatalf("ExecEach = %+v, %v; want a row each", res, err)
	}
}

func TestBatchNeedsAMultiStatementPool(t *testing.T) {
	_, plain := batchDB(t)
	var b sqldb.Batch
	b.Add("INSERT INTO t (k, n) VALUES ('x', 1)")
	b.Add("INSERT INTO t (k, n) VALUES ('y', 1)")
	_, err := b.ExecEach(context.Background(), plain)
	if !errors.Is(err, sqldb.ErrNoMultiStatements) {
		t.Fatalf("ExecEach on a plain pool = %v, want ErrNoMultiStatements", err)
	}
	if n := count(t, plain); n != 0 {
		t.Fatalf("%d rows after a refused batch, want 0", n)
	}
}

// TxBatch returns once the decision is taken, with the COMMIT on its way;
// until it lands the transaction's row locks keep other writers waiting,
// and committed reports the outcome.
func TestTxBatchCommitsBehindTheCaller(t *testing.T) {
	ctx := context.Background()
	db, plain := batchDB(t)
	if _, err := plain.Exec("INSERT INTO t (k, n) VALUES ('acct', 10)"); err != nil {
		t.Fatal(err)
	}
	committed, err := sqldb.TxBatch(ctx, db, func(b *sqldb.Tx) error {
		b.Add("UPDATE t SET n = n - 3 WHERE k = 'acct'")
		return nil
	}, func(*sql.Conn, sqldb.Results) error { return nil })
	if err != nil {
		t.Fatal(err)
	}
	// A writer of the same row sees the committed value, never the old one.
	if _, err := plain.Exec("UPDATE t SET n = n - 3 WHERE k = 'acct' AND n >= 3"); err != nil {
		t.Fatal(err)
	}
	if err := committed(); err != nil || committed() != nil {
		t.Fatalf("committed = %v", err)
	}
	var n int
	if err := plain.QueryRow("SELECT n FROM t WHERE k = 'acct'").Scan(&n); err != nil || n != 4 {
		t.Fatalf("n = %d (%v), want 4: both decrements, in turn", n, err)
	}
	if inTransaction(t, db) {
		t.Fatal("the pooled session still holds a transaction")
	}
}

// Lead returns once the first statement has committed, while the rest
// still waits on a lock; rest returns when they are done.
func TestLeadReturnsAfterTheFirstStatement(t *testing.T) {
	ctx := context.Background()
	db, plain := batchDB(t)
	if _, err := plain.Exec("INSERT INTO t (k, n) VALUES ('locked', 0)"); err != nil {
		t.Fatal(err)
	}
	// Another session holds the row the second statement needs.
	holder, err := plain.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer holder.Rollback()
	if _, err := holder.Exec("UPDATE t SET n = 100 WHERE k = 'locked'"); err != nil {
		t.Fatal(err)
	}
	var b sqldb.Batch
	b.Add("INSERT INTO t (k, n) VALUES ('row', 1)")
	b.Add("UPDATE t SET n = n + 1 WHERE k = 'locked'")
	first, rest, err := b.Lead(ctx, db)
	if err != nil || first != 1 {
		t.Fatalf("Lead = %d, %v; want 1 row", first, err)
	}
	var n int
	if err := plain.QueryRow("SELECT COUNT(*) FROM t WHERE k = 'row'").Scan(&n); err != nil || n != 1 {
		t.Fatalf("first statement's row: %d (%v), want committed", n, err)
	}
	done := make(chan error, 1)
	go func() { done <- rest() }()
	select {
	case err := <-done:
		t.Fatalf("rest returned (%v) while its statement waits on a lock", err)
	case <-time.After(200 * time.Millisecond):
	}
	if err := holder.Commit(); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if err := plain.QueryRow("SELECT n FROM t WHERE k = 'locked'").Scan(&n); err != nil || n != 101 {
		t.Fatalf("locked row n = %d (%v), want 101", n, err)
	}
}

// A failing first statement runs nothing after it; a failing later one
// leaves the first committed and is rest's error; both leave the pooled
// session clean.
func TestLeadFailures(t *testing.T) {
	ctx := context.Background()
	db, plain := batchDB(t)
	if _, err := plain.Exec("INSERT INTO t (k, n) VALUES ('dup', 0)"); err != nil {
		t.Fatal(err)
	}
	var b sqldb.Batch
	b.Add("INSERT INTO t (k, n) VALUES ('dup', 1)")
	b.Add("INSERT INTO t (k, n) VALUES ('after', 1)")
	if _, _, err := b.Lead(ctx, db); !sqldb.IsDuplicate(err) {
		t.Fatalf("Lead = %v, want the duplicate", err)
	}
	if n := count(t, plain); n != 1 {
		t.Fatalf("%d rows, want only the one before", n)
	}
	var c sqldb.Batch
	c.Add("INSERT INTO t (k, n) VALUES ('first', 1)")
	c.Add("INSERT INTO t (k, n) VALUES ('dup', 2)")
	first, rest, err := c.Lead(ctx, db)
	if err != nil || first != 1 {
		t.Fatalf("Lead = %d, %v", first, err)
	}
	if err := rest(); !sqldb.IsDuplicate(err) {
		t.Fatalf("rest = %v, want the duplicate", err)
	}
	if n := count(t, plain); n != 2 || inTransaction(t, db) {
		t.Fatalf("%d rows, want 2 (the first committed); transaction open %v", n, inTransaction(t, db))
	}
	var d sqldb.Batch
	d.Add("INSERT INTO t (k, n) VALUES ('x', 1)")
	d.Add("INSERT INTO t (k, n) VALUES ('y', 1)")
	if _, _, err := d.Lead(ctx, plain); !errors.Is(err, sqldb.ErrNoMultiStatements) {
		t.Fatalf("Lead on a plain pool = %v, want ErrNoMultiStatements", err)
	}
}

// A COMMIT that fails (its session killed after the decision) is
// committed's error, and nothing of the transaction remains.
func TestTxBatchReportsAFailedCommit(t *testing.T) {
	ctx := context.Background()
	db, plain := batchDB(t)
	committed, err := sqldb.TxBatch(ctx, db, func(b *sqldb.Tx) error {
		b.Add("INSERT INTO t (k, n) VALUES ('lost', 1)")
		return nil
	}, func(q *sql.Conn, _ sqldb.Results) error {
		var id int64
		if err := q.QueryRowContext(ctx, "SELECT CONNECTION_ID()").Scan(&id); err != nil {
			return err
		}
		_, err := plain.Exec("KILL CONNECTION ?", id)
		return err
	})
	if err != nil {
		t.Fatalf("TxBatch = %v, want the decision accepted", err)
	}
	if err := committed(); err == nil {
		t.Fatal("committed = nil after the session was killed")
	}
	if n := count(t, plain); n != 0 {
		t.Fatalf("%d rows after a failed commit, want 0", n)
	}
	if inTransaction(t, db) {
		t.Fatal("the pool kept a session in doubt")
	}
}
