package sqldb

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
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
	var text strings.Builder
	var all []any
	for i, st := range b.stmts {
		if i > 0 {
			text.WriteString(";\n")
		}
		text.WriteString(st.sql)
		all = append(all, st.args...)
	}
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
		res, err := ex.ExecContext(ctx, text.String(), args)
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

// TxBatch runs a transaction in two round trips: the statements stage adds
// (after START TRANSACTION) in one, then COMMIT — or ROLLBACK when decide,
// reading their results (and querying q, inside the transaction, to explain
// a refusal), returns an error, which TxBatch returns. A deadlock or lock
// wait timeout runs it all again, as InTxRetry does; stage and decide must
// therefore only record what they learn.
func TxBatch(ctx context.Context, db *sql.DB, stage func(*Batch) error, decide func(q *sql.Conn, r Results) error) error {
	return Retry(ctx, func() error {
		conn, err := db.Conn(ctx)
		if err != nil {
			return fmt.Errorf("connect: %w", err)
		}
		defer conn.Close()
		var b Batch
		b.Add("START TRANSACTION")
		if err := stage(&b); err != nil {
			return err
		}
		res, err := b.Exec(ctx, conn)
		if err == nil {
			err = decide(conn, res)
			if err == nil {
				if _, err = conn.ExecContext(ctx, "COMMIT"); err != nil {
					err = fmt.Errorf("commit: %w", err)
				}
				if err != nil {
					discard(conn) // commit or not, the server knows: never reuse a session in doubt
				}
				return err
			}
		}
		if _, rerr := conn.ExecContext(context.WithoutCancel(ctx), "ROLLBACK"); rerr != nil {
			discard(conn) // a session that may still hold the transaction goes, not back to the pool
		}
		return err
	})
}

// discard makes the pool drop conn instead of reusing it.
func discard(conn *sql.Conn) {
	_ = conn.Raw(func(any) error { return driver.ErrBadConn })
}
