package sqldb

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/go-sql-driver/mysql"
)

// Batch is statements sent to MySQL in one round trip. The server runs them
// one after another and stops at the first that fails. It needs a pool
// opened with config.DB.MultiStatements; parameters are interpolated by the
// driver (escaped for the connection's charset), never concatenated.
//
// A hot path whose statements do not depend on each other's results (a
// transaction's bookkeeping, say) pays one network round trip for all of
// them instead of one each.
type Batch struct {
	stmts []stmt
}

type stmt struct {
	sql  string
	args []any
}

// Add appends a statement and returns its index in Results.
func (b *Batch) Add(query string, args ...any) int {
	b.stmts = append(b.stmts, stmt{query, args})
	return len(b.stmts) - 1
}

// Len is the number of statements.
func (b *Batch) Len() int { return len(b.stmts) }

// Results are the batch's statements' outcomes, by the index Add returned.
// A batch that failed has none: the statements before the failing one ran,
// but the driver does not report them.
type Results struct {
	Affected []int64 // rows affected
	IDs      []int64 // last insert ids (LAST_INSERT_ID(expr) included)
}

// Ran reports whether statement i completed.
func (r Results) Ran(i int) bool { return i < len(r.Affected) }

// ErrNoMultiStatements is returned when the server refused a batch because
// the connection was not opened with multi statements.
var ErrNoMultiStatements = errors.New("sqldb: a batch needs a pool opened with config.DB.MultiStatements")

// Exec runs the batch on conn. On an error the statements before the
// failing one have run (and committed, outside a transaction).
func (b *Batch) Exec(ctx context.Context, conn *sql.Conn) (Results, error) {
	var out Results
	if len(b.stmts) == 0 {
		return out, nil
	}
	text, all := b.text(-1, "")
	err := conn.Raw(func(dc any) error {
		ex, ok := dc.(driver.ExecerContext)
		if !ok {
			return fmt.Errorf("sqldb: driver connection %T cannot execute a batch", dc)
		}
		args := make([]driver.NamedValue, len(all))
		checker, _ := dc.(driver.NamedValueChecker)
		for i, a := range all {
			args[i] = driver.NamedValue{Ordinal: i + 1, Value: a}
			if checker != nil {
				if err := checker.CheckNamedValue(&args[i]); err != nil {
					return fmt.Errorf("sqldb: batch argument %d: %w", i+1, err)
				}
			} else if v, err := driver.DefaultParameterConverter.ConvertValue(a); err != nil {
				return fmt.Errorf("sqldb: batch argument %d: %w", i+1, err)
			} else {
				args[i].Value = v
			}
		}
		res, err := ex.ExecContext(ctx, text, args)
		if res != nil {
			if mr, ok := res.(mysql.Result); ok {
				out.Affected, out.IDs = mr.AllRowsAffected(), mr.AllLastInsertIds()
			}
		}
		return err
	})
	if err != nil && len(b.stmts) > 1 && errorNumber(err) == 1064 {
		return out, fmt.Errorf("%w (%v)", ErrNoMultiStatements, err)
	}
	return out, err
}

// text is the batch as one query and its arguments, with extra inserted
// after statement after (none when after is -1).
func (b *Batch) text(after int, extra string) (string, []any) {
	var text strings.Builder
	var all []any
	for i, st := range b.stmts {
		if i > 0 {
			text.WriteString(";\n")
		}
		text.WriteString(st.sql)
		all = append(all, st.args...)
		if i == after {
			text.WriteString(";\n" + extra)
		}
	}
	return text.String(), all
}

// Lead runs a batch of statements that each commit on their own, like
// ExecEach, but returns as soon as the first has committed, with the rows
// it changed; the server goes on with the rest meanwhile, whatever becomes
// of this process. rest waits for them and returns their error, after
// running them again on a deadlock or lock wait timeout (so each must be
// safe to run twice, as for ExecEach). rest must be called: it gives the
// connection back. ctx must outlive rest.
//
// It puts the rest's round trip after the first's commit out of the
// caller's way: a call can answer once its record is durable while the
// bookkeeping that follows from the record completes.
func (b *Batch) Lead(ctx context.Context, db *sql.DB) (first int64, rest func() error, err error) {
	if len(b.stmts) == 0 {
		return 0, nil, errors.New("sqldb: Lead needs a statement")
	}
	if len(b.stmts) == 1 {
		res, err := b.ExecEach(ctx, db)
		if err != nil {
			return 0, nil, err
		}
		return res.Affected[0], func() error { return nil }, nil
	}
	// ROW_COUNT() right after the first statement is the first result set
	// that has columns, where the driver hands the query back: the
	// statements after it are still being read from the server.
	text, args := b.text(0, "SELECT ROW_COUNT()")
	var (
		conn *sql.Conn
		rows *sql.Rows
	)
	err = Retry(ctx, func() error {
		c, err := db.Conn(ctx)
		if err != nil {
			return fmt.Errorf("connect: %w", err)
		}
		r, err := c.QueryContext(ctx, text, args...)
		if err == nil && !r.Next() {
			err = errors.Join(errors.New("sqldb: no row count after the first statement"), r.Err(), r.Close())
		}
		if err == nil {
			err = r.Scan(&first)
		}
		if err != nil {
			if r != nil {
				_ = r.Close()
			}
			c.Close()
			if len(b.stmts) > 1 && errorNumber(err) == 1064 {
				return fmt.Errorf("%w (%v)", ErrNoMultiStatements, err)
			}
			return err
		}
		conn, rows = c, r
		return nil
	})
	if err != nil {
		return 0, nil, err
	}
	rest = func() error {
		err := rows.Close() // reads the rest's results
		conn.Close()
		if IsRetryable(err) {
			after := Batch{stmts: b.stmts[1:]}
			_, err = after.ExecEach(ctx, db)
		}
		return err
	}
	return first, rest, nil
}

// ExecEach runs a batch of statements that each commit on their own (no
// transaction around them) in one round trip. Each must be safe to run
// twice: a deadlock or lock wait timeout runs the whole batch again (as
// Retry does), since after an error the driver does not say which
// statements ran.
func (b *Batch) ExecEach(ctx context.Context, db *sql.DB) (Results, error) {
	var out Results
	err := Retry(ctx, func() error {
		conn, err := db.Conn(ctx)
		if err != nil {
			return fmt.Errorf("connect: %w", err)
		}
		defer conn.Close()
		out, err = b.Exec(ctx, conn)
		return err
	})
	return out, err
}

// Tx is the transaction TxBatch's stage builds: its statements (Add, after
// START TRANSACTION, at index 0) and the ones prepared before it.
type Tx struct {
	Batch
	pre Batch
}

// Prepare adds a statement run before the transaction, in the same round
// trip, committed on its own: idempotent setup, such as making sure a row
// the transaction will update exists. A transaction that only updates rows
// locks those rows; one that may insert them locks the gaps they go into,
// and transactions waiting on a new row whose inserter rolls back deadlock
// on its gap.
func (t *Tx) Prepare(query string, args ...any) { t.pre.Add(query, args...) }

// Prepared is the number of statements prepared.
func (t *Tx) Prepared() int { return t.pre.Len() }

// TxBatch runs a transaction in two round trips: the statements stage adds
// (after START TRANSACTION, and after the ones it prepares) in one, then COMMIT — or ROLLBACK when decide,
// reading their results (and querying q, inside the transaction, to explain
// a refusal), returns an error, which TxBatch returns. A deadlock or lock
// wait timeout runs it all again, as InTxRetry does; stage and decide must
// therefore only record what they learn.
//
// Once decide accepts, TxBatch returns with the COMMIT on its way:
// committed waits for its outcome (and may be called any number of times).
// Until the commit, the transaction's locks keep every other writer of its
// rows waiting, so work that only needs no one else to act on those rows
// first may start at once; whatever must follow the commit's durability
// waits for committed. A commit that failed leaves nothing behind, or — its
// outcome unknown — a session that is dropped, never reused.
func TxBatch(ctx context.Context, db *sql.DB, stage func(*Tx) error, decide func(q *sql.Conn, r Results) error) (committed func() error, err error) {
	var conn *sql.Conn
	err = Retry(ctx, func() error {
		c, err := db.Conn(ctx)
		if err != nil {
			return fmt.Errorf("connect: %w", err)
		}
		var tx Tx
		tx.Add("START TRANSACTION")
		if err := stage(&tx); err != nil {
			c.Close()
			return err
		}
		all := Batch{stmts: append(slices.Clip(tx.pre.stmts), tx.stmts...)}
		res, err := all.Exec(ctx, c)
		if err == nil {
			// Indexes as Add returned them: the prepared statements are not the transaction's.
			res.Affected, res.IDs = res.Affected[len(tx.pre.stmts):], res.IDs[len(tx.pre.stmts):]
			if err = decide(c, res); err == nil {
				conn = c
				return nil
			}
		}
		if _, rerr := c.ExecContext(context.WithoutCancel(ctx), "ROLLBACK"); rerr != nil {
			discard(c) // a session that may still hold the transaction goes, not back to the pool
		}
		c.Close()
		return err
	})
	if err != nil {
		return nil, err
	}
	done := make(chan struct{})
	var cerr error
	go func() {
		defer close(done)
		defer conn.Close()
		// Never cancelled half-way: a commit cut off is a commit in doubt.
		if _, err := conn.ExecContext(context.WithoutCancel(ctx), "COMMIT"); err != nil {
			discard(conn) // commit or not, the server knows: never reuse a session in doubt
			cerr = fmt.Errorf("commit: %w", err)
		}
	}()
	return func() error { <-done; return cerr }, nil
}

// discard makes the pool drop conn instead of reusing it.
func discard(conn *sql.Conn) {
	_ = conn.Raw(func(any) error { return driver.ErrBadConn })
}
