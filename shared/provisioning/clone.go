package provisioning

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"

	"golang.org/x/sync/errgroup"

	"github.com/unitenant/unitenant/shared/sqldb"
)

// DefaultCloneParallel is how many connections CloneDatabase uses when told 0.
const DefaultCloneParallel = 8

// CloneDatabase creates database target from database template on the same
// server: every base table as SHOW CREATE TABLE prints it (columns, indexes,
// foreign keys, AUTO_INCREMENT), then the rows of every table that has any in
// the template (the seed rows, and the schema_migrations ledger, so the clone
// knows its version). CREATE TABLE ... LIKE is not used: it drops foreign
// keys.
//
// Tables are made over parallel connections (DefaultCloneParallel when
// parallel <= 0) with foreign key checks off, so parent and child tables need
// no order; the rows are copied in one transaction. server is an admin pool
// with no database selected; the connections whose session state
// CloneDatabase changes are closed, never handed back to the pool.
//
// target must not exist. When anything fails, target is dropped again and the
// error returned: a rerun starts clean. A template holding views or triggers
// is refused, since they would not be copied.
func CloneDatabase(ctx context.Context, server *sql.DB, template, target string, parallel int) (err error) {
	qTemplate, err := sqldb.QuoteIdent(template)
	if err != nil {
		return fmt.Errorf("clone template: %w", err)
	}
	qTarget, err := sqldb.QuoteIdent(target)
	if err != nil {
		return fmt.Errorf("clone target: %w", err)
	}
	if parallel <= 0 {
		parallel = DefaultCloneParallel
	}
	defer func() {
		if err != nil {
			err = fmt.Errorf("clone %s into %s: %w", template, target, err)
		}
	}()
	r, err := loadRecipe(ctx, server, template, qTemplate)
	if err != nil {
		return err
	}
	if _, err := server.ExecContext(ctx, "CREATE DATABASE "+qTarget+" CHARACTER SET "+r.charset+" COLLATE "+r.collation); err != nil {
		return fmt.Errorf("create database: %w", err)
	}
	// From here on target is ours: a failure drops it.
	defer func() {
		if err != nil {
			if derr := sqldb.DropDatabase(context.WithoutCancel(ctx), server, target); derr != nil {
				err = errors.Join(err, fmt.Errorf("drop the half-made clone: %w", derr))
			}
		}
	}()
	jobs := make(chan string)
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		defer close(jobs)
		for _, t := range r.tables {
			select {
			case jobs <- t:
			case <-gctx.Done():
				return gctx.Err()
			}
		}
		return nil
	})
	for range min(parallel, len(r.tables)) {
		g.Go(func() error { return createTables(gctx, server, qTarget, r.ddl, jobs) })
	}
	if err := g.Wait(); err != nil {
		return err
	}
	return copyRows(ctx, server, qTemplate, qTarget, r.tables, r.copies)
}

// recipe is what cloning a template takes: its character set, its tables
// with their DDL (SHOW CREATE TABLE: columns, indexes, foreign keys), and the
// columns of the tables whose rows are copied.
type recipe struct {
	charset, collation string
	tables             []string
	ddl                map[string]string
	copies             map[string][]string
}

// recipes caches recipes by template name and ledger version: migrations
// never change once applied, so a template at one version is always the
// same, and a clone need not read 80 table definitions again. A hand-edited
// template is what `tenantctl check` is for.
var recipes sync.Map

// loadRecipe returns the recipe of template, reading it when its version is
// not cached (a template without a ledger is read every time).
func loadRecipe(ctx context.Context, server *sql.DB, template, qTemplate string) (*recipe, error) {
	version, err := DatabaseVersion(ctx, server, template)
	if err != nil {
		return nil, err
	}
	key := template + "@" + strconv.Itoa(version)
	if r, ok := recipes.Load(key); ok && version > 0 {
		return r.(*recipe), nil
	}
	r := &recipe{ddl: map[string]string{}}
	if r.charset, r.collation, r.tables, err = templateTables(ctx, server, template); err != nil {
		return nil, err
	}
	if r.copies, err = rowsToCopy(ctx, server, template, r.tables); err != nil {
		return nil, err
	}
	for _, t := range r.tables {
		// SHOW CREATE TABLE names tables of the same database without a
		// database, so the foreign keys point into the clone.
		var name, ddl string
		if err := server.QueryRowContext(ctx, "SHOW CREATE TABLE "+qTemplate+".`"+t+"`").Scan(&name, &ddl); err != nil {
			return nil, fmt.Errorf("show create table %s: %w", t, err)
		}
		r.ddl[t] = ddl
	}
	if version > 0 {
		recipes.Store(key, r)
	}
	return r, nil
}

// templateTables reads the template's character set and collation and lists
// its base tables.
func templateTables(ctx context.Context, server *sql.DB, template string) (charset, collation string, tables []string, err error) {
	err = server.QueryRowContext(ctx,
		"SELECT DEFAULT_CHARACTER_SET_NAME, DEFAULT_COLLATION_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = ?", template).
		Scan(&charset, &collation)
	if errors.Is(err, sql.ErrNoRows) {
		return "", "", nil, fmt.Errorf("template database %s does not exist", template)
	}
	if err != nil {
		return "", "", nil, fmt.Errorf("read template: %w", err)
	}
	// Both are spliced into CREATE DATABASE: they must look like names.
	if sqldb.ValidateIdent(charset) != nil || sqldb.ValidateIdent(collation) != nil {
		return "", "", nil, fmt.Errorf("template character set %q, collation %q", charset, collation)
	}
	tables, err = queryStrings(ctx, server, `SELECT TABLE_NAME FROM information_schema.TABLES
		WHERE TABLE_SCHEMA = ? AND TABLE_TYPE = 'BASE TABLE' ORDER BY TABLE_NAME`, template)
	if err != nil {
		return "", "", nil, fmt.Errorf("list tables: %w", err)
	}
	if len(tables) == 0 {
		return "", "", nil, fmt.Errorf("template database %s holds no table", template)
	}
	for _, t := range tables {
		if err := sqldb.ValidateIdent(t); err != nil {
			return "", "", nil, fmt.Errorf("table of the template: %w", err)
		}
	}
	return charset, collation, tables, nil
}

// rowsToCopy refuses a template with views or triggers and returns, for
// every table holding rows, the columns a copy writes (generated columns
// cannot be written), in order.
func rowsToCopy(ctx context.Context, server *sql.DB, template string, tables []string) (map[string][]string, error) {
	other, err := queryStrings(ctx, server, `SELECT TABLE_NAME FROM information_schema.TABLES
		WHERE TABLE_SCHEMA = ? AND TABLE_TYPE <> 'BASE TABLE' UNION ALL
		SELECT TRIGGER_NAME FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = ?`, template, template)
	if err != nil {
		return nil, fmt.Errorf("list views and triggers: %w", err)
	}
	if len(other) > 0 {
		return nil, fmt.Errorf("the template holds views or triggers (%s), which a clone would not copy", strings.Join(other, ", "))
	}
	// Which tables hold rows, in one round trip.
	parts := make([]string, len(tables))
	args := make([]any, len(tables))
	for i, t := range tables {
		parts[i] = "SELECT ? FROM DUAL WHERE EXISTS (SELECT 1 FROM `" + template + "`.`" + t + "`)"
		args[i] = t
	}
	full, err := queryStrings(ctx, server, strings.Join(parts, " UNION ALL "), args...)
	if err != nil {
		return nil, fmt.Errorf("find tables with rows: %w", err)
	}
	out := map[string][]string{}
	if len(full) == 0 {
		return out, nil
	}
	args = []any{template}
	for _, t := range full {
		args = append(args, t)
	}
	var t, c string
	err = scanRows(ctx, server, `SELECT TABLE_NAME, COLUMN_NAME FROM information_schema.COLUMNS
		WHERE TABLE_SCHEMA = ? AND TABLE_NAME IN (?`+strings.Repeat(", ?", len(full)-1)+`)
		  AND EXTRA NOT LIKE '%VIRTUAL%' AND EXTRA NOT LIKE '%STORED%' AND EXTRA NOT LIKE '%PERSISTENT%'
		ORDER BY TABLE_NAME, ORDINAL_POSITION`, args, []any{&t, &c}, func() { out[t] = append(out[t], c) })
	if err != nil {
		return nil, fmt.Errorf("list columns: %w", err)
	}
	for t, cols := range out {
		for _, c := range cols {
			if err := sqldb.ValidateIdent(c); err != nil {
				return nil, fmt.Errorf("column of %s: %w", t, err)
			}
		}
	}
	return out, nil
}

// createTables makes the tables it receives on a connection of its own, with
// foreign key checks off (parents and children come in any order) and target
// selected, and closes that connection when done so its session state never
// reaches another user of the pool.
func createTables(ctx context.Context, server *sql.DB, qTarget string, ddl map[string]string, tables <-chan string) error {
	conn, err := server.Conn(ctx)
	if err != nil {
		return fmt.Errorf("connect: %w", err)
	}
	defer discardConn(conn)
	for _, stmt := range []string{"SET SESSION foreign_key_checks = 0", "USE " + qTarget} {
		if _, err := conn.ExecContext(ctx, stmt); err != nil {
			return fmt.Errorf("%s: %w", stmt, err)
		}
	}
	for t := range tables {
		if _, err := conn.ExecContext(ctx, ddl[t]); err != nil {
			return fmt.Errorf("create table %s: %w", t, err)
		}
	}
	return nil
}

// copyRows copies the rows of the tables in copies (table -> columns) in
// one transaction, so one commit and not one per table, with foreign key
// checks off.
func copyRows(ctx context.Context, server *sql.DB, qTemplate, qTarget string, tables []string, copies map[string][]string) error {
	if len(copies) == 0 {
		return nil
	}
	conn, err := server.Conn(ctx)
	if err != nil {
		return fmt.Errorf("copy rows: connect: %w", err)
	}
	defer discardConn(conn)
	if _, err := conn.ExecContext(ctx, "SET SESSION foreign_key_checks = 0"); err != nil {
		return fmt.Errorf("copy rows: %w", err)
	}
	tx, err := conn.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("copy rows: %w", err)
	}
	defer func() { _ = tx.Rollback() }()
	for _, t := range tables {
		cols, ok := copies[t]
		if !ok {
			continue
		}
		list := "`" + strings.Join(cols, "`, `") + "`"
		if _, err := tx.ExecContext(ctx, "INSERT INTO "+qTarget+".`"+t+"` ("+list+") SELECT "+list+" FROM "+qTemplate+".`"+t+"`"); err != nil {
			return fmt.Errorf("copy rows of %s: %w", t, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("copy rows: commit: %w", err)
	}
	return nil
}

// discardConn closes conn's underlying connection instead of returning it
// to the pool (returning driver.ErrBadConn from Raw tells database/sql so).
func discardConn(conn *sql.Conn) {
	_ = conn.Raw(func(any) error { return driver.ErrBadConn })
	_ = conn.Close()
}

// queryStrings runs a query of one string column and returns its values.
func queryStrings(ctx context.Context, db *sql.DB, query string, args ...any) ([]string, error) {
	var out []string
	var v string
	err := scanRows(ctx, db, query, args, []any{&v}, func() { out = append(out, v) })
	return out, err
}
