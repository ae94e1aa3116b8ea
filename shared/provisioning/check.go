package provisioning

import (
	"context"
	"database/sql"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/unitenant/unitenant/shared/sqldb"
)

// Difference is one way a database differs from its template. Kind is what
// differs (database, table, column, column order, index, foreign key,
// version); Object names it inside Table. Want is the template's definition
// and Got the database's: an empty Want means the database has something
// extra, an empty Got that it lacks something.
type Difference struct {
	Kind   string `json:"kind"`
	Table  string `json:"table,omitempty"`
	Object string `json:"object,omitempty"`
	Want   string `json:"want,omitempty"`
	Got    string `json:"got,omitempty"`
}

// String says the difference in a line, e.g. "missing column classes.name".
func (d Difference) String() string {
	name := d.Table
	if d.Object != "" {
		if name != "" {
			name += "."
		}
		name += d.Object
	}
	switch {
	case d.Got == "":
		return "missing " + d.Kind + " " + name
	case d.Want == "":
		return "extra " + d.Kind + " " + name
	}
	return fmt.Sprintf("%s %s differs: want %s, got %s", d.Kind, name, d.Want, d.Got)
}

// Schema is the shape of a database as information_schema describes it:
// what CheckDatabase compares.
type Schema struct {
	Database string
	Exists   bool
	Version  int // highest version in its schema_migrations ledger, 0 for none
	Tables   map[string]*TableSchema
}

// TableSchema is one base table: its options, its columns in order, its
// indexes and foreign keys by name, each rendered as a comparable string.
type TableSchema struct {
	Options     string
	Columns     []string          // names in ordinal order
	ColumnDefs  map[string]string // name -> type, nullability, default, extra, collation
	Indexes     map[string]string // name -> uniqueness and columns in order
	ForeignKeys map[string]string // name -> columns, referenced table and columns, rules
}

// CheckDatabase compares database target with database template on the same
// server through information_schema: tables, columns (type, nullability,
// default, extra, order), indexes (uniqueness, columns in order), foreign
// keys (columns, referenced table and columns, update and delete rules) and
// the migration version. No differences means target is what a clone of
// template would be. A missing target is one difference; a missing template
// is an error.
func CheckDatabase(ctx context.Context, server *sql.DB, template, target string) ([]Difference, error) {
	want, err := ReadSchema(ctx, server, template)
	if err != nil {
		return nil, err
	}
	if !want.Exists {
		return nil, fmt.Errorf("check %s: template database %s does not exist", target, template)
	}
	got, err := ReadSchema(ctx, server, target)
	if err != nil {
		return nil, err
	}
	return want.Compare(got), nil
}

// ReadSchema reads the schema of database name; Exists says whether there is
// such a database.
func ReadSchema(ctx context.Context, server *sql.DB, name string) (*Schema, error) {
	q, err := sqldb.QuoteIdent(name)
	if err != nil {
		return nil, err
	}
	exists, err := queryStrings(ctx, server, "SELECT SCHEMA_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = ?", name)
	if err != nil {
		return nil, fmt.Errorf("read schema of %s: %w", name, err)
	}
	s := &Schema{Database: name, Exists: len(exists) > 0, Tables: map[string]*TableSchema{}}
	if !s.Exists {
		return s, nil
	}
	for _, step := range []struct {
		what string
		read func(context.Context, *sql.DB) error
	}{
		{"tables", s.readTables},
		{"columns", s.readColumns},
		{"indexes", s.readIndexes},
		{"foreign keys", s.readForeignKeys},
	} {
		if err := step.read(ctx, server); err != nil {
			return nil, fmt.Errorf("read %s of %s: %w", step.what, name, err)
		}
	}
	if _, ok := s.Tables["schema_migrations"]; ok {
		if err := server.QueryRowContext(ctx, "SELECT COALESCE(MAX(version), 0) FROM "+q+".schema_migrations").Scan(&s.Version); err != nil {
			return nil, fmt.Errorf("read version of %s: %w", name, err)
		}
	}
	return s, nil
}

// scanRows runs query and calls each for every row, scanning into dest.
func scanRows(ctx context.Context, db *sql.DB, query string, args []any, dest []any, each func()) error {
	rows, err := db.QueryContext(ctx, query, args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		if err := rows.Scan(dest...); err != nil {
			return err
		}
		each()
	}
	return rows.Err()
}

func (s *Schema) readTables(ctx context.Context, db *sql.DB) error {
	var name, engine, collation sql.NullString
	return scanRows(ctx, db, `SELECT TABLE_NAME, ENGINE, TABLE_COLLATION FROM information_schema.TABLES
		WHERE TABLE_SCHEMA = ? AND TABLE_TYPE = 'BASE TABLE'`, []any{s.Database},
		[]any{&name, &engine, &collation}, func() {
			s.Tables[name.String] = &TableSchema{
				Options:     "ENGINE=" + engine.String + " COLLATE=" + collation.String,
				ColumnDefs:  map[string]string{},
				Indexes:     map[string]string{},
				ForeignKeys: map[string]string{},
			}
		})
}

func (s *Schema) readColumns(ctx context.Context, db *sql.DB) error {
	var table, column, typ, nullable, extra string
	var def, collation sql.NullString
	return scanRows(ctx, db, `SELECT TABLE_NAME, COLUMN_NAME, COLUMN_TYPE, IS_NULLABLE, COLUMN_DEFAULT, EXTRA, COLLATION_NAME
		FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = ? ORDER BY TABLE_NAME, ORDINAL_POSITION`, []any{s.Database},
		[]any{&table, &column, &typ, &nullable, &def, &extra, &collation}, func() {
			t, ok := s.Tables[table]
			if !ok { // a view's column
				return
			}
			d := typ
			if nullable == "NO" {
				d += " NOT NULL"
			}
			if def.Valid {
				d += " DEFAULT " + def.String
			}
			if extra != "" {
				d += " " + extra
			}
			if collation.Valid {
				d += " COLLATE " + collation.String
			}
			t.Columns = append(t.Columns, column)
			t.ColumnDefs[column] = d
		})
}

func (s *Schema) readIndexes(ctx context.Context, db *sql.DB) error {
	var table, index, column string
	var nonUnique int
	var subPart sql.NullInt64
	parts := map[[2]string][]string{}
	unique := map[[2]string]bool{}
	err := scanRows(ctx, db, `SELECT TABLE_NAME, INDEX_NAME, NON_UNIQUE, COLUMN_NAME, SUB_PART
		FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = ? ORDER BY TABLE_NAME, INDEX_NAME, SEQ_IN_INDEX`, []any{s.Database},
		[]any{&table, &index, &nonUnique, &column, &subPart}, func() {
			k := [2]string{table, index}
			c := column
			if subPart.Valid {
				c += "(" + strconv.FormatInt(subPart.Int64, 10) + ")"
			}
			parts[k] = append(parts[k], c)
			unique[k] = nonUnique == 0
		})
	if err != nil {
		return err
	}
	for k, cols := range parts {
		t, ok := s.Tables[k[0]]
		if !ok {
			continue
		}
		d := "KEY (" + strings.Join(cols, ", ") + ")"
		if unique[k] {
			d = "UNIQUE " + d
		}
		t.Indexes[k[1]] = d
	}
	return nil
}

func (s *Schema) readForeignKeys(ctx context.Context, db *sql.DB) error {
	type fk struct {
		refTable, rules string
		cols, refCols   []string
	}
	fks := map[[2]string]*fk{}
	var table, name, refTable, onUpdate, onDelete string
	err := scanRows(ctx, db, `SELECT TABLE_NAME, CONSTRAINT_NAME, REFERENCED_TABLE_NAME, UPDATE_RULE, DELETE_RULE
		FROM information_schema.REFERENTIAL_CONSTRAINTS WHERE CONSTRAINT_SCHEMA = ?`, []any{s.Database},
		[]any{&table, &name, &refTable, &onUpdate, &onDelete}, func() {
			fks[[2]string{table, name}] = &fk{rules: "ON UPDATE " + onUpdate + " ON DELETE " + onDelete}
		})
	if err != nil {
		return err
	}
	var column, refSchema, refColumn string
	err = scanRows(ctx, db, `SELECT TABLE_NAME, CONSTRAINT_NAME, COLUMN_NAME, REFERENCED_TABLE_SCHEMA, REFERENCED_TABLE_NAME, REFERENCED_COLUMN_NAME
		FROM information_schema.KEY_COLUMN_USAGE WHERE TABLE_SCHEMA = ? AND REFERENCED_TABLE_NAME IS NOT NULL
		ORDER BY TABLE_NAME, CONSTRAINT_NAME, ORDINAL_POSITION`, []any{s.Database},
		[]any{&table, &name, &column, &refSchema, &refTable, &refColumn}, func() {
			f, ok := fks[[2]string{table, name}]
			if !ok {
				return
			}
			// A reference into another database is spelled out, so a clone
			// whose keys still point at its template is told apart.
			if refSchema != s.Database {
				refTable = refSchema + "." + refTable
			}
			f.refTable = refTable
			f.cols = append(f.cols, column)
			f.refCols = append(f.refCols, refColumn)
		})
	if err != nil {
		return err
	}
	for k, f := range fks {
		if t, ok := s.Tables[k[0]]; ok {
			t.ForeignKeys[k[1]] = fmt.Sprintf("(%s) REFERENCES %s (%s) %s",
				strings.Join(f.cols, ", "), f.refTable, strings.Join(f.refCols, ", "), f.rules)
		}
	}
	return nil
}

// Compare lists how got differs from s (the template), table by table in
// name order. A database that does not exist is one difference.
func (s *Schema) Compare(got *Schema) []Difference {
	if !got.Exists {
		return []Difference{{Kind: "database", Object: got.Database, Want: "like " + s.Database}}
	}
	var out []Difference
	if s.Version != got.Version {
		out = append(out, Difference{Kind: "version", Object: "schema_migrations", Want: strconv.Itoa(s.Version), Got: strconv.Itoa(got.Version)})
	}
	for _, name := range unionKeys(s.Tables, got.Tables) {
		w, g := s.Tables[name], got.Tables[name]
		switch {
		case g == nil:
			out = append(out, Difference{Kind: "table", Table: name, Want: w.Options})
			continue
		case w == nil:
			out = append(out, Difference{Kind: "table", Table: name, Got: g.Options})
			continue
		case w.Options != g.Options:
			out = append(out, Difference{Kind: "table", Table: name, Want: w.Options, Got: g.Options})
		}
		out = append(out, compareMaps("column", name, w.ColumnDefs, g.ColumnDefs)...)
		if wo, gotOrder := commonOrder(w.Columns, g.ColumnDefs), commonOrder(g.Columns, w.ColumnDefs); !slices.Equal(wo, gotOrder) {
			out = append(out, Difference{Kind: "column order", Table: name,
				Want: strings.Join(wo, ", "), Got: strings.Join(gotOrder, ", ")})
		}
		out = append(out, compareMaps("index", name, w.Indexes, g.Indexes)...)
		out = append(out, compareMaps("foreign key", name, w.ForeignKeys, g.ForeignKeys)...)
	}
	return out
}

// compareMaps lists the differences between two name -> definition maps.
func compareMaps(kind, table string, want, got map[string]string) []Difference {
	var out []Difference
	for _, name := range unionKeys(want, got) {
		if w, g := want[name], got[name]; w != g {
			out = append(out, Difference{Kind: kind, Table: table, Object: name, Want: w, Got: g})
		}
	}
	return out
}

// commonOrder returns the columns of order that other also has: the order
// of the columns both tables have, so one dropped column is reported once
// and not as a shift of every column after it.
func commonOrder(order []string, other map[string]string) []string {
	var out []string
	for _, c := range order {
		if _, ok := other[c]; ok {
			out = append(out, c)
		}
	}
	return out
}

// unionKeys returns the keys of a and b, sorted.
func unionKeys[V any](a, b map[string]V) []string {
	keys := make([]string, 0, len(a)+len(b))
	for k := range a {
		keys = append(keys, k)
	}
	for k := range b {
		if _, ok := a[k]; !ok {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	return keys
}
