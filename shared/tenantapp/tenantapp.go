// Package tenantapp is the tenant instance's own domain, the part of the SaaS
// that lives inside one tenant's database: who the caller is there (the
// tenant user bound to a global user, its roles and permissions), the
// tenant's users, classes and students.
//
// Every function takes the tenant database handle it must work on (the
// connection tenancy pinned for the request, or a transaction on it) and
// never chooses a database itself, so it cannot reach another tenant's data.
// It returns *fault.Error for everything a client can act on and never
// imports net/http.
package tenantapp

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/go-sql-driver/mysql"

	"github.com/unitenant/unitenant/shared/fault"
)

// DB is what the package needs of a tenant database handle: *sql.Conn (from
// tenancy.Conn), *sql.Tx and *sql.DB all fit.
type DB interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// TxDB is a tenant database handle that can also start a transaction.
type TxDB interface {
	DB
	BeginTx(ctx context.Context, opts *sql.TxOptions) (*sql.Tx, error)
}

// notFound is the answer for a row that does not exist in this tenant's
// database, whatever exists elsewhere.
func notFound(what string, id int64) error {
	return fault.New(fault.NotFound, "not_found", "%s %d not found", what, id)
}

// problems collects every invalid field of one input, so a client learns
// all its mistakes at once.
type problems map[string]string

func (p problems) add(field, problem string) { p[field] = problem }

// err returns the collected problems as one Invalid error with code, or nil.
func (p problems) err(code string) error {
	return fault.Fields(code, p)
}

// text checks a string field: trimmed, at most max characters, and not
// empty when required. It returns the trimmed value.
func (p problems) text(field, v string, required bool, max int) string {
	v = strings.TrimSpace(v)
	switch {
	case required && v == "":
		p.add(field, "is required")
	case !utf8.ValidString(v):
		p.add(field, "must be valid UTF-8")
	case utf8.RuneCountInString(v) > max:
		p.add(field, fmt.Sprintf("must be at most %d characters", max))
	}
	return v
}

// oneOf checks an enumerated field.
func (p problems) oneOf(field, v string, allowed ...string) {
	for _, a := range allowed {
		if v == a {
			return
		}
	}
	p.add(field, "must be one of "+strings.Join(allowed, ", "))
}

// intRange checks an integer field.
func (p problems) intRange(field string, v, min, max int) {
	if v < min || v > max {
		p.add(field, fmt.Sprintf("must be between %d and %d", min, max))
	}
}

// Opt is an input field that distinguishes absent, null and a value, so an
// update can clear a nullable column ("classId": null) without clearing the
// columns it does not mention.
type Opt[T any] struct {
	Set   bool // present in the input (null included)
	Null  bool // present and null
	Value T
}

// UnmarshalJSON records that the field was present.
func (o *Opt[T]) UnmarshalJSON(b []byte) error {
	o.Set = true
	if string(b) == "null" {
		o.Null = true
		return nil
	}
	return json.Unmarshal(b, &o.Value)
}

// isForeignKeyMissing reports MySQL's "parent row missing" (1452): a row
// referred to was deleted between our check and our write.
func isForeignKeyMissing(err error) bool {
	var me *mysql.MySQLError
	return errors.As(err, &me) && me.Number == 1452
}

// assignments are the SET clause of an update: only the fields the input
// holds.
type assignments struct {
	cols []string
	args []any
}

func (a *assignments) add(col string, v any) {
	a.cols = append(a.cols, col+" = ?")
	a.args = append(a.args, v)
}

// assign adds col when the input gave v.
func assign[T any](a *assignments, col string, v *T) {
	if v != nil {
		a.add(col, *v)
	}
}

// assignOpt adds col when the input gave v, null included.
func assignOpt[T any](a *assignments, col string, v Opt[T]) {
	if v.Set {
		a.add(col, nullable(v))
	}
}

// update runs UPDATE table SET <a> WHERE <where>, args following a's.
func (a *assignments) update(ctx context.Context, db DB, table, where string, args ...any) error {
	_, err := db.ExecContext(ctx, "UPDATE "+table+" SET "+strings.Join(a.cols, ", ")+" WHERE "+where, append(a.args, args...)...)
	return err
}

// scanner is a *sql.Row or *sql.Rows.
type scanner interface{ Scan(...any) error }

// listRows returns page p of `SELECT columns FROM from [WHERE where] ORDER BY
// order`, with the total count.
func listRows[T any](ctx context.Context, db DB, p Page, what, columns, from, where, order string, scan func(scanner) (T, error), args ...any) (List[T], error) {
	if where != "" {
		from += " WHERE " + where
	}
	var total int64
	if err := db.QueryRowContext(ctx, "SELECT COUNT(*) FROM "+from, args...).Scan(&total); err != nil {
		return List[T]{}, fmt.Errorf("count %s: %w", what, err)
	}
	rows, err := db.QueryContext(ctx, "SELECT "+columns+" FROM "+from+" ORDER BY "+order+" LIMIT ? OFFSET ?",
		append(args, p.Size, p.offset())...)
	if err != nil {
		return List[T]{}, fmt.Errorf("list %s: %w", what, err)
	}
	defer rows.Close()
	var out []T
	for rows.Next() {
		v, err := scan(rows)
		if err != nil {
			return List[T]{}, fmt.Errorf("list %s: %w", what, err)
		}
		out = append(out, v)
	}
	if err := rows.Err(); err != nil {
		return List[T]{}, fmt.Errorf("list %s: %w", what, err)
	}
	return newList(p, total, out), nil
}
