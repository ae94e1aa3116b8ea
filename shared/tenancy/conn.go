package tenancy

import (
	"context"
	"database/sql/driver"
	"fmt"
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
type trackedConn struct {
	mysqlConn
	schema string
}

// use selects schema (an identifier already validated and quoted by the
// caller's pattern) unless the connection is on it already.
func (c *trackedConn) use(ctx context.Context, schema string) error {
	if c.schema == schema {
		return nil
	}
	c.schema = "" // unknown until the server confirms
	if _, err := c.ExecContext(ctx, "USE `"+schema+"`", nil); err != nil {
		return err
	}
	c.schema = schema
	return nil
}
