package tenancy_test

import (
	"context"
	"database/sql"
	"slices"
	"testing"

	"github.com/unitenant/unitenant/shared/tenancy"
)

// TestSessionStateNeverReachesTheNextTenant: a pooled connection is shared
// by every tenant of its cluster. Whatever a request of k001 leaves in its
// session (a user variable, a session setting, a temporary table, a
// transaction it opened and never ended) must not be there when the same
// connection serves k002, who would read it or write inside k001's
// transaction. A connection whose session only ever ran plain statements
// keeps being reused, as the routing hot path needs.
func TestSessionStateNeverReachesTheNextTenant(t *testing.T) {
	t.Parallel()
	f := newFleet(t)
	f.add(t, "k001", tenancy.StatusActive)
	f.add(t, "k002", tenancy.StatusActive)
	a, b, conn := oneConnection(t, f)
	ctx := context.Background()
	connID := func(c *sql.Conn) (id int64) {
		t.Helper()
		if err := c.QueryRowContext(ctx, "SELECT CONNECTION_ID()").Scan(&id); err != nil {
			t.Fatal(err)
		}
		return id
	}

	// Plain statements leave nothing behind: the connection is reused.
	c := conn(a)
	first := connID(c)
	if _, err := c.ExecContext(ctx, "UPDATE marker SET tenant = ? WHERE id = ?", "k001", 1); err != nil {
		t.Fatal(err)
	}
	c.Close()
	c = conn(b)
	if got := connID(c); got != first {
		t.Errorf("a connection that ran only plain statements was not reused (%d, then %d)", first, got)
	}
	c.Close()

	for _, dirty := range [][]string{
		{"SET @secret = 'k001-secret'"},
		{"SELECT @secret := 'k001-secret'"},
		{"SET SESSION foreign_key_checks = 0"},
		{"CREATE TEMPORARY TABLE secret (s VARCHAR(20))", "INSERT INTO secret VALUES ('k001-secret')"},
		{"START TRANSACTION", "UPDATE marker SET tenant = 'k001-uncommitted' WHERE id = 1"},
		{"  begin", "UPDATE marker SET tenant = 'k001-uncommitted' WHERE id = 1"},
		{"SET autocommit = 0", "UPDATE marker SET tenant = 'k001-uncommitted' WHERE id = 1"},
		{"SELECT get_lock('k001-lock', 0)"},
	} {
		c := conn(a)
		for _, q := range dirty {
			if _, err := c.ExecContext(ctx, q); err != nil {
				t.Fatalf("%s: %v", q, err)
			}
		}
		c.Close()

		c = conn(b)
		var (
			secret     sql.NullString
			fk, inTx   int
			autocommit int
			temp, lock int
		)
		if err := c.QueryRowContext(ctx, `SELECT @secret, @@SESSION.foreign_key_checks, @@in_transaction, @@SESSION.autocommit,
			COALESCE(IS_USED_LOCK('k001-lock') = CONNECTION_ID(), 0)`).
			Scan(&secret, &fk, &inTx, &autocommit, &lock); err != nil {
			t.Fatalf("after %q: %v", dirty, err)
		}
		// k001's database has no table "secret": only a temporary table
		// of this session would answer.
		if err := c.QueryRowContext(ctx, "SELECT COUNT(*) FROM `"+f.prefix+"k001`.secret").Scan(&temp); err != nil {
			temp = 0
		}
		if secret.Valid || fk != 1 || inTx != 0 || autocommit != 1 || temp != 0 || lock != 0 {
			t.Errorf("after k001 ran %q, k002's session has @secret=%q foreign_key_checks=%d in_transaction=%d autocommit=%d k001's temporary tables=%d k001's lock=%d",
				dirty, secret.String, fk, inTx, autocommit, temp, lock)
		}
		c.Close()

		// k001's transaction ended with its request: nothing it left open
		// was committed by whoever used the connection next.
		var got string
		if err := f.server.QueryRowContext(ctx, "SELECT tenant FROM `"+f.prefix+"k001`.marker WHERE id = 1").Scan(&got); err != nil {
			t.Fatal(err)
		}
		if got != "k001" {
			t.Fatalf("after %q, k001's marker is %q", dirty, got)
		}
	}
}

// TestLastStatementValuesNeverReachTheNextTenant: a session also keeps
// what its last statements produced — LAST_INSERT_ID() after an insert,
// FOUND_ROWS() after a SELECT, ROW_COUNT() after a change — and plain
// statements, which keep a connection pooled, produce them. Reading them
// as the next tenant on the same connection would tell k002 the ids k001
// is handing out and the size of what k001 just read. The connection is
// reused all the same, and each tenant still reads its own values.
func TestLastStatementValuesNeverReachTheNextTenant(t *testing.T) {
	t.Parallel()
	f := newFleet(t)
	f.add(t, "k001", tenancy.StatusActive)
	f.add(t, "k002", tenancy.StatusActive)
	for _, code := range []string{"k001", "k002"} {
		if _, err := f.server.Exec("CREATE TABLE `" + f.prefix + code + "`.notes (id BIGINT AUTO_INCREMENT PRIMARY KEY, body TEXT) AUTO_INCREMENT = 1000"); err != nil {
			t.Fatal(err)
		}
	}
	a, b, conn := oneConnection(t, f)
	ctx := context.Background()
	var ids []int64
	session := func(c *sql.Conn) (id, insertID, found, changed int64) {
		t.Helper()
		if err := c.QueryRowContext(ctx, "SELECT CONNECTION_ID(), LAST_INSERT_ID(), FOUND_ROWS(), ROW_COUNT()").Scan(&id, &insertID, &found, &changed); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
		return id, insertID, found, changed
	}

	for _, last := range []string{
		"INSERT INTO notes (body) VALUES ('k001 secret'), ('k001 secret 2')",
		"SELECT SQL_CALC_FOUND_ROWS id FROM notes LIMIT 1",
		"UPDATE notes SET body = 'k001 changed'",
	} {
		c := conn(a)
		if _, err := c.ExecContext(ctx, "INSERT INTO notes (body) VALUES ('k001 private')"); err != nil {
			t.Fatal(err)
		}
		if _, err := c.ExecContext(ctx, last); err != nil {
			t.Fatalf("%s: %v", last, err)
		}
		c.Close()

		c = conn(b)
		if _, insertID, found, changed := session(c); insertID != 0 || found > 1 || changed > 0 {
			t.Errorf("after k001 ran %q, k002 reads LAST_INSERT_ID() %d, FOUND_ROWS() %d, ROW_COUNT() %d", last, insertID, found, changed)
		}
		// k002's own values are its own.
		res, err := c.ExecContext(ctx, "INSERT INTO notes (body) VALUES ('k002 note')")
		if err != nil {
			t.Fatal(err)
		}
		want, _ := res.LastInsertId()
		if _, err := c.ExecContext(ctx, "UPDATE notes SET body = body WHERE id = 0"); err != nil {
			t.Fatal(err)
		}
		var got int64
		if err := c.QueryRowContext(ctx, "SELECT LAST_INSERT_ID()").Scan(&got); err != nil || got != want {
			t.Errorf("k002's own LAST_INSERT_ID() is %d (%v), want %d", got, err, want)
		}
		c.Close()
	}
	if slices.Min(ids) != slices.Max(ids) {
		t.Errorf("connections %v: the one connection was not reused", ids)
	}

	// @@identity is LAST_INSERT_ID() by another name (and, naming a
	// variable, the last use of its connection).
	c := conn(a)
	if _, err := c.ExecContext(ctx, "INSERT INTO notes (body) VALUES ('k001 private')"); err != nil {
		t.Fatal(err)
	}
	c.Close()
	c = conn(b)
	defer c.Close()
	var identity int64
	if err := c.QueryRowContext(ctx, "SELECT @@identity").Scan(&identity); err != nil || identity != 0 {
		t.Errorf("k002 reads @@identity %d (%v)", identity, err)
	}
	if id, _, _, _ := session(c); id != ids[0] {
		t.Errorf("k002 was not on k001's connection (%d, not %d): nothing was shown", id, ids[0])
	}
}

// routerConn is a connection of svc's router to tn, as a request gets it.
// oneConnection routes k001 (a) and k002 (b) of f over a cluster pool of
// one connection, which k002 gets from k001; conn takes it for a tenant.
// The router closes at the end of the test.
func oneConnection(t *testing.T, f *fleet) (a, b *tenancy.Tenant, conn func(*tenancy.Tenant) *sql.Conn) {
	t.Helper()
	svc := f.service(tenancy.RouterOptions{ClusterMaxOpen: 1})
	t.Cleanup(func() { svc.Router.Close() })
	ctx := context.Background()
	a, _ = svc.Registry.ByCode(ctx, "k001")
	b, _ = svc.Registry.ByCode(ctx, "k002")
	return a, b, func(tn *tenancy.Tenant) *sql.Conn { return routerConn(t, svc, tn) }
}

func routerConn(t *testing.T, svc *tenancy.Service, tn *tenancy.Tenant) *sql.Conn {
	t.Helper()
	c, err := svc.Router.Conn(context.Background(), tn)
	if err != nil {
		t.Fatal(err)
	}
	return c
}
