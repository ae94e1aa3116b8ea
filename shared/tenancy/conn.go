package tenancy

import (
	"context"
	"database/sql/driver"
	"fmt"
	"strings"
)

// trackingConnector wraps the MySQL connector so every connection remembers
// which schema it has selected. The router then skips `USE` when a pooled
// connection already sits on the tenant's schema, and never has to ask the
// server.
type trackingConnector struct{ driver.Connector }

func (c trackingConnector) Connect(ctx context.Context) (driver.Conn, error) {
	conn, err := c.Connector.Connect(ctx)
	if err != nil {
		return nil, err
	}
	inner, ok := conn.(mysqlConn)
	if !ok {
		conn.Close()
		return nil, fmt.Errorf("tenancy: driver connection %T lacks the interfaces it relies on", conn)
	}
	return &trackedConn{mysqlConn: inner}, nil
}

// mysqlConn is every interface go-sql-driver's connection implements and
// database/sql looks for; forwarding them keeps the driver's fast paths.
type mysqlConn interface {
	driver.Conn
	driver.ConnBeginTx
	driver.ConnPrepareContext
	driver.ExecerContext
	driver.QueryerContext
	driver.Pinger
	driver.SessionResetter
	driver.Validator
	driver.NamedValueChecker
}

// trackedConn is a connection and the schema it is on ("" = unknown).
//
// It also remembers whether its session may hold state a request left
// behind: a pooled connection serves every tenant of its cluster, and a
// user variable, session setting, temporary table, named lock or open
// transaction of one tenant's request must never be there for the next
// tenant's. The driver cannot reset a session without a round trip, so a
// connection that ran anything but a plain statement is not pooled again
// (IsValid reports it spent and database/sql closes it, which ends its
// session and rolls back what it left open). Only the statement's text is
// read, never its arguments, so no request data can make it look plain.
//
// A plain statement leaves values behind too, which the next statement may
// read: LAST_INSERT_ID() (set by an insert), FOUND_ROWS() and ROW_COUNT()
// (set by the statement before). Those are forgotten, when a statement is
// about to read one that another schema's statement left, by a statement
// that sets them to nothing of anyone's: a round trip only then.
type trackedConn struct {
	mysqlConn
	schema string
	dirty  bool
	// insertBy is the schema of the last statement that may have set
	// LAST_INSERT_ID(), lastBy of the last statement ("": none ran).
	insertBy, lastBy string
}

func (c *trackedConn) ExecContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Result, error) {
	if err := c.before(ctx, query); err != nil {
		return nil, err
	}
	return c.mysqlConn.ExecContext(ctx, query, args)
}

func (c *trackedConn) QueryContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Rows, error) {
	if err := c.before(ctx, query); err != nil {
		return nil, err
	}
	return c.mysqlConn.QueryContext(ctx, query, args)
}

func (c *trackedConn) PrepareContext(ctx context.Context, query string) (driver.Stmt, error) {
	if err := c.before(ctx, query); err != nil {
		return nil, err
	}
	return c.mysqlConn.PrepareContext(ctx, query)
}

// before notes what query may leave in the session and, when it reads a
// value another schema's statement left, forgets that value first.
func (c *trackedConn) before(ctx context.Context, query string) error {
	c.note(query)
	readsInsertID := containsFold(query, "LAST_INSERT_ID") || containsFold(query, "IDENTITY") // @@identity, @@last_insert_id
	if readsInsertID && c.insertBy != "" && c.insertBy != c.schema ||
		c.lastBy != "" && c.lastBy != c.schema && (containsFold(query, "FOUND_ROWS") || containsFold(query, "ROW_COUNT")) {
		if err := c.forgetLast(ctx); err != nil {
			return err
		}
	}
	c.lastBy = c.schema
	if readsInsertID || !selectStatement(query) {
		c.insertBy = c.schema
	}
	return nil
}

// forgetLast sets LAST_INSERT_ID() to 0, FOUND_ROWS() to 1 and
// ROW_COUNT() to -1: what one SELECT of nothing leaves.
func (c *trackedConn) forgetLast(ctx context.Context) error {
	rows, err := c.mysqlConn.QueryContext(ctx, "SELECT LAST_INSERT_ID(0)", nil)
	if err != nil {
		return err
	}
	dest := make([]driver.Value, 1)
	for rows.Next(dest) == nil {
	}
	if err := rows.Close(); err != nil {
		return err
	}
	c.insertBy, c.lastBy = c.schema, c.schema
	return nil
}

// selectStatement reports whether query starts with SELECT (which, unless
// it calls LAST_INSERT_ID(n), leaves the last insert id alone).
func selectStatement(query string) bool {
	q := strings.TrimLeft(query, " \t\r\n(")
	return len(q) >= 6 && strings.EqualFold(q[:6], "SELECT")
}

// IsValid keeps a connection whose session may hold a request's state out
// of the pool.
func (c *trackedConn) IsValid() bool { return !c.dirty && c.mysqlConn.IsValid() }

// ResetSession refuses to hand such a connection out again, should it be
// reused without passing IsValid.
func (c *trackedConn) ResetSession(ctx context.Context) error {
	if c.dirty {
		return driver.ErrBadConn
	}
	return c.mysqlConn.ResetSession(ctx)
}

func (c *trackedConn) note(query string) {
	if !c.dirty && !plainStatement(query) {
		c.dirty = true
	}
}

// plainStatement reports whether query can leave nothing in the session: a
// SELECT, INSERT, UPDATE, DELETE or REPLACE (or a WITH before one) that
// names no variable (@) and takes no named lock. Anything else (SET, BEGIN,
// START TRANSACTION, CREATE TEMPORARY TABLE, LOCK, CALL, a leading
// comment...) is taken to change the session; erring that way only costs a
// reconnection.
func plainStatement(query string) bool {
	q := strings.TrimLeft(query, " \t\r\n")
	end := 0
	for end < len(q) && (q[end]|0x20 >= 'a' && q[end]|0x20 <= 'z') {
		end++
	}
	switch strings.ToUpper(q[:end]) {
	case "SELECT", "INSERT", "UPDATE", "DELETE", "REPLACE", "WITH":
	default:
		return false
	}
	return !strings.Contains(q, "@") && !containsFold(q, "GET_LOCK")
}

// containsFold is a case-insensitive strings.Contains for an upper-case
// ASCII needle, without allocating.
func containsFold(s, upper string) bool {
	for i := 0; i+len(upper) <= len(s); i++ {
		j := 0
		for j < len(upper) && s[i+j]&^0x20 == upper[j]&^0x20 {
			j++
		}
		if j == len(upper) {
			return true
		}
	}
	return false
}

// use selects schema (an identifier already validated and quoted by the
// caller's pattern) unless the connection is on it already.
func (c *trackedConn) use(ctx context.Context, schema string) error {
	if c.schema == schema {
		return nil
	}
	c.schema = "" // unknown until the server confirms
	if _, err := c.mysqlConn.ExecContext(ctx, "USE `"+schema+"`", nil); err != nil {
		return err
	}
	c.schema = schema
	return nil
}
