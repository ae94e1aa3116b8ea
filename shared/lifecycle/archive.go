package lifecycle

import (
	"bufio"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"database/sql"
	"database/sql/driver"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strings"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/unitenant/unitenant/shared/objectstore"
	"github.com/unitenant/unitenant/shared/secretbox"
	"github.com/unitenant/unitenant/shared/sqldb"
	"github.com/unitenant/unitenant/shared/tenancy"
)

// ArchiveRetention is how long a purged tenant's archive is kept (seed 002).
const ArchiveRetention = 180 * 24 * time.Hour

// ArchiveFormat is the format of the archives written here: SQL statements
// (schema, then rows as batched INSERTs), gzip-compressed.
const ArchiveFormat = "sql.gz"

// archiveMagic opens every archive; RestoreArchive refuses anything else.
const archiveMagic = "-- unitenant archive v1"

// rowCountsLine, near the end of an archive, carries the row count of every
// table as JSON, so an archive can be checked on its own.
const rowCountsLine = "-- row-counts: "

// insertBatchBytes bounds one INSERT statement, far below MariaDB's
// max_allowed_packet (16 MiB by default).
const insertBatchBytes = 512 << 10

// ArchiveKey is where the archive of tenant code made at t is stored. It is
// outside every tenant's prefix (objectstore.ArchivesPrefix, which no
// tenant's prefix may overlap): purging the tenant's objects must not take
// its archive with it, nor may any tenant read another's.
func ArchiveKey(code string, t time.Time) string {
	return objectstore.ArchivesPrefix + code + "/" + t.UTC().Format("20060102T150405Z") + "." + ArchiveFormat
}

// Archived describes an archive once written.
type Archived struct {
	Key       string           `json:"key"`
	Size      int64            `json:"size"`
	Checksum  string           `json:"checksum"` // hex SHA-256 of the object
	RowCounts map[string]int64 `json:"rowCounts"`
}

// OpenServer opens an administrator pool on cluster clusterID for
// WriteArchive and RestoreArchive: values are read as the server sends them
// (no time parsing), so dates, zero dates and decimals reach the archive
// byte for byte, and the session is in UTC. The caller closes it.
func OpenServer(ctx context.Context, sys *sql.DB, box *secretbox.Box, clusterID int64) (*sql.DB, error) {
	cfg, _, err := tenancy.LoadCluster(ctx, sys, box, clusterID)
	if err != nil {
		return nil, err
	}
	return openRaw(cfg)
}

// openRaw opens a pool on cfg for dumping and restoring: text values as
// sent, UTC session, utf8mb4, bounded dial and I/O.
func openRaw(cfg *mysql.Config) (*sql.DB, error) {
	cfg.ParseTime = false
	cfg.Loc = time.UTC
	cfg.Collation = "utf8mb4_unicode_ci"
	cfg.InterpolateParams = true
	if cfg.Params == nil {
		cfg.Params = map[string]string{}
	}
	cfg.Params["time_zone"] = "'+00:00'"
	if cfg.Timeout == 0 {
		cfg.Timeout = 5 * time.Second
	}
	cfg.ReadTimeout, cfg.WriteTimeout = 10*time.Minute, 10*time.Minute
	connector, err := mysql.NewConnector(cfg)
	if err != nil {
		return nil, fmt.Errorf("connector for %s: %w", cfg.Addr, err)
	}
	db := sql.OpenDB(connector)
	db.SetMaxOpenConns(4)
	db.SetConnMaxIdleTime(time.Minute)
	return db, nil
}

// WriteArchive streams database (on server, a pool from OpenServer: a pool
// that parses times fails on the first date) into store under key: every base table's CREATE TABLE and
// its rows as batched INSERTs, gzip-compressed on the way, never held whole
// in memory. It reads one consistent snapshot, checks each table's rows
// written against SELECT COUNT(*) in that snapshot, and returns the
// object's size, checksum and row counts. A failure leaves no object (stores
// write whole objects or none).
func WriteArchive(ctx context.Context, server *sql.DB, store objectstore.Store, key, database string) (*Archived, error) {
	if _, err := sqldb.QuoteIdent(database); err != nil {
		return nil, err
	}
	conn, err := server.Conn(ctx)
	if err != nil {
		return nil, fmt.Errorf("archive %s: %w", database, err)
	}
	// The snapshot and session settings must not leak into the pool.
	defer discard(conn)

	pr, pw := io.Pipe()
	uploaded := make(chan error, 1)
	go func() {
		err := store.Put(ctx, key, pr, -1, "application/gzip")
		pr.CloseWithError(err) // unblocks the writer if the upload gave up
		uploaded <- err
	}()
	sum, size := sha256.New(), &counter{}
	zw := gzip.NewWriter(io.MultiWriter(pw, sum, size))
	counts, err := dump(ctx, conn, database, zw)
	if err == nil {
		err = zw.Close()
	}
	pw.CloseWithError(err) // nil: EOF, the object is complete
	if uerr := <-uploaded; err == nil && uerr != nil {
		err = uerr
	}
	if err != nil {
		return nil, fmt.Errorf("archive %s to %s: %w", database, key, err)
	}
	return &Archived{Key: key, Size: size.n, Checksum: hex.EncodeToString(sum.Sum(nil)), RowCounts: counts}, nil
}

// badArchiveError is an object that is not a whole archive.
type badArchiveError struct{ msg string }

func (e *badArchiveError) Error() string { return e.msg }

// readArchive reads the archive stored under key through to its end and
// describes it as WriteArchive did once it had written it: its size, its
// checksum and the row counts it carries. An object that is not a whole
// archive (not gzip, not an archive, cut short, without its row counts or
// its end) is a *badArchiveError; a missing one is objectstore.ErrNotFound.
func readArchive(ctx context.Context, store objectstore.Store, key string) (*Archived, error) {
	body, _, err := store.Get(ctx, key)
	if err != nil {
		return nil, fmt.Errorf("read archive %s: %w", key, err)
	}
	defer body.Close()
	sum, size := sha256.New(), &counter{}
	raw := io.TeeReader(body, io.MultiWriter(sum, size))
	bad := func(format string, args ...any) error {
		return &badArchiveError{fmt.Sprintf("archive %s: ", key) + fmt.Sprintf(format, args...)}
	}
	zr, err := gzip.NewReader(raw)
	if err != nil {
		return nil, bad("%v", err)
	}
	var counts map[string]int64
	first, end := true, false
	sc := newStatementScanner(zr)
	for {
		_, comments, err := sc.next()
		for _, c := range comments {
			if first && c != archiveMagic {
				return nil, bad("not a unitenant archive")
			}
			first = false
			if js, ok := strings.CutPrefix(c, rowCountsLine); ok {
				if err := json.Unmarshal([]byte(js), &counts); err != nil {
					return nil, bad("row counts: %v", err)
				}
			}
			end = c == strings.TrimSuffix(archiveEpilogue[len(archiveEpilogue)-1], "\n")
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			// A read of the store failing mid-way is not the archive's fault.
			if errors.Is(err, gzip.ErrChecksum) || errors.Is(err, gzip.ErrHeader) || errors.Is(err, io.ErrUnexpectedEOF) {
				return nil, bad("%v", err)
			}
			return nil, fmt.Errorf("read archive %s: %w", key, err)
		}
		if first {
			return nil, bad("not a unitenant archive")
		}
	}
	if counts == nil || !end {
		return nil, bad("cut short: no row counts or no end")
	}
	// Whatever follows the compressed stream is part of the object too.
	if _, err := io.Copy(io.Discard, raw); err != nil {
		return nil, fmt.Errorf("read archive %s: %w", key, err)
	}
	return &Archived{Key: key, Size: size.n, Checksum: hex.EncodeToString(sum.Sum(nil)), RowCounts: counts}, nil
}

// counter counts the bytes written through it.
type counter struct{ n int64 }

func (c *counter) Write(p []byte) (int, error) { c.n += int64(len(p)); return len(p), nil }

// discard closes conn without handing it back to the pool.
func discard(conn *sql.Conn) {
	_ = conn.Raw(func(any) error { return driver.ErrBadConn })
	_ = conn.Close()
}

// dump writes the archive's SQL text for database to w.
func dump(ctx context.Context, conn *sql.Conn, database string, w io.Writer) (map[string]int64, error) {
	q, _ := sqldb.QuoteIdent(database)
	for _, stmt := range []string{
		"SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ",
		"START TRANSACTION WITH CONSISTENT SNAPSHOT",
		"USE " + q,
	} {
		if _, err := conn.ExecContext(ctx, stmt); err != nil {
			return nil, fmt.Errorf("%s: %w", stmt, err)
		}
	}
	tables, err := baseTables(ctx, conn, database)
	if err != nil {
		return nil, err
	}
	bw := bufio.NewWriterSize(w, 64<<10)
	fmt.Fprintf(bw, "%s\n-- database %s, %d tables\n%s", archiveMagic, database, len(tables), strings.Join(archivePrologue, ""))
	counts := make(map[string]int64, len(tables))
	for _, t := range tables {
		n, err := dumpTable(ctx, conn, database, t, bw)
		if err != nil {
			return nil, fmt.Errorf("table %s: %w", t, err)
		}
		var want int64
		if err := conn.QueryRowContext(ctx, "SELECT COUNT(*) FROM `"+t+"`").Scan(&want); err != nil {
			return nil, fmt.Errorf("count %s: %w", t, err)
		}
		if n != want {
			return nil, fmt.Errorf("table %s: %d rows archived, COUNT(*) says %d", t, n, want)
		}
		counts[t] = n
	}
	js, _ := json.Marshal(counts)
	fmt.Fprintf(bw, "%s%s\n%s", rowCountsLine, js, strings.Join(archiveEpilogue, ""))
	if err := bw.Flush(); err != nil {
		return nil, err
	}
	return counts, nil
}

// archivePrologue and archiveEpilogue are the only SET statements an
// archive holds (RestoreArchive refuses any other): the rows go in as they
// were, in any table order, with AUTO_INCREMENT values of 0 kept.
var (
	archivePrologue = []string{
		"SET NAMES utf8mb4;\n",
		"SET time_zone = '+00:00';\n",
		"SET SQL_MODE = 'NO_AUTO_VALUE_ON_ZERO';\n",
		"SET FOREIGN_KEY_CHECKS = 0;\n",
		"SET UNIQUE_CHECKS = 0;\n",
	}
	archiveEpilogue = []string{
		"SET UNIQUE_CHECKS = 1;\n",
		"SET FOREIGN_KEY_CHECKS = 1;\n",
		"-- end\n",
	}
)

// baseTables lists database's base tables (views and sequences are not
// part of a tenant schema), refusing a name that could not be quoted safely.
func baseTables(ctx context.Context, conn *sql.Conn, database string) ([]string, error) {
	tables, err := queryStrings(ctx, conn, `SELECT TABLE_NAME FROM information_schema.TABLES
		WHERE TABLE_SCHEMA = ? AND TABLE_TYPE = 'BASE TABLE' ORDER BY TABLE_NAME`, database)
	if err != nil {
		return nil, fmt.Errorf("list tables of %s: %w", database, err)
	}
	for _, t := range tables {
		if err := sqldb.ValidateIdent(t); err != nil {
			return nil, fmt.Errorf("table of %s: %w", database, err)
		}
	}
	return tables, nil
}

// dumpTable writes table t's CREATE TABLE and its rows, and returns how
// many rows it wrote. Generated columns are left out of the INSERTs: the
// server computes them again.
func dumpTable(ctx context.Context, conn *sql.Conn, database, t string, w *bufio.Writer) (int64, error) {
	var name, ddl string
	if err := conn.QueryRowContext(ctx, "SHOW CREATE TABLE `"+t+"`").Scan(&name, &ddl); err != nil {
		return 0, err
	}
	fmt.Fprintf(w, "\n-- table %s\n%s;\n", t, ddl)
	cols, err := storedColumns(ctx, conn, database, t)
	if err != nil {
		return 0, err
	}
	rows, err := conn.QueryContext(ctx, "SELECT "+strings.Join(cols, ", ")+" FROM `"+t+"`")
	if err != nil {
		return 0, err
	}
	defer rows.Close()
	types, err := rows.ColumnTypes()
	if err != nil {
		return 0, err
	}
	kinds := make([]valueKind, len(types))
	for i, ct := range types {
		kinds[i] = kindOf(ct.DatabaseTypeName())
	}
	head := "INSERT INTO `" + t + "` (" + strings.Join(cols, ", ") + ") VALUES\n"
	vals := make([]sql.RawBytes, len(cols))
	dest := make([]any, len(cols))
	for i := range vals {
		dest[i] = &vals[i]
	}
	var n int64
	var batch []byte
	for rows.Next() {
		if err := rows.Scan(dest...); err != nil {
			return n, err
		}
		if len(batch) == 0 {
			batch = append(batch, head...)
		} else {
			batch = append(batch, ",\n"...)
		}
		batch = appendRow(batch, vals, kinds)
		n++
		if len(batch) >= insertBatchBytes {
			if _, err := w.Write(append(batch, ";\n"...)); err != nil {
				return n, err
			}
			batch = batch[:0]
		}
	}
	if err := rows.Err(); err != nil {
		return n, err
	}
	if len(batch) > 0 {
		if _, err := w.Write(append(batch, ";\n"...)); err != nil {
			return n, err
		}
	}
	return n, nil
}

// storedColumns returns t's quoted non-generated columns, in order.
func storedColumns(ctx context.Context, conn *sql.Conn, database, t string) ([]string, error) {
	cols, err := queryStrings(ctx, conn, `SELECT COLUMN_NAME FROM information_schema.COLUMNS
		WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? AND IS_GENERATED = 'NEVER' ORDER BY ORDINAL_POSITION`, database, t)
	if err != nil {
		return nil, fmt.Errorf("columns of %s: %w", t, err)
	}
	if len(cols) == 0 {
		return nil, fmt.Errorf("table %s has no stored column", t)
	}
	for i, c := range cols {
		cols[i] = "`" + strings.ReplaceAll(c, "`", "``") + "`"
	}
	return cols, nil
}

// valueKind is how a column's values are written as SQL literals.
type valueKind int

const (
	kindString valueKind = iota // quoted and escaped: text, dates, times, enums, JSON
	kindNumber                  // as sent: integers, decimals, floats, years
	kindBytes                   // hex: binary strings, BLOBs, BITs, geometry
)

// kindOf maps the driver's type name of a column to its kind.
func kindOf(typeName string) valueKind {
	t := strings.TrimPrefix(typeName, "UNSIGNED ")
	switch t {
	case "TINYINT", "SMALLINT", "MEDIUMINT", "INT", "BIGINT", "DECIMAL", "FLOAT", "DOUBLE", "YEAR":
		return kindNumber
	case "BINARY", "VARBINARY", "BLOB", "TINYBLOB", "MEDIUMBLOB", "LONGBLOB", "BIT", "GEOMETRY":
		return kindBytes
	}
	return kindString
}

// appendRow appends one parenthesized row of literals.
func appendRow(b []byte, vals []sql.RawBytes, kinds []valueKind) []byte {
	b = append(b, '(')
	for i, v := range vals {
		if i > 0 {
			b = append(b, ',')
		}
		switch {
		case v == nil:
			b = append(b, "NULL"...)
		case kinds[i] == kindNumber:
			b = append(b, v...)
		case kinds[i] == kindBytes:
			b = append(b, "X'"...)
			b = hex.AppendEncode(b, v)
			b = append(b, '\'')
		default:
			b = appendQuoted(b, v)
		}
	}
	return append(b, ')')
}

// appendQuoted appends v as a single-quoted string literal, escaped as
// mysql_real_escape_string does (the archive's SQL_MODE keeps backslash
// escapes on).
func appendQuoted(b, v []byte) []byte {
	b = append(b, '\'')
	for _, c := range v {
		switch c {
		case 0:
			b = append(b, '\\', '0')
		case '\n':
			b = append(b, '\\', 'n')
		case '\r':
			b = append(b, '\\', 'r')
		case '\\', '\'', '"':
			b = append(b, '\\', c)
		case 0x1a:
			b = append(b, '\\', 'Z')
		default:
			b = append(b, c)
		}
	}
	return append(b, '\'')
}

// allowedStatement is what an archive may hold: its own SET statements,
// and CREATE TABLE / INSERT INTO on unqualified table names. Anything else
// (another database's table, a GRANT, a DROP) is refused before it runs:
// RestoreArchive runs with administrator rights.
var allowedStatement = regexp.MustCompile("^(?:CREATE TABLE `[a-z][a-z0-9_]{0,63}` \\(|INSERT INTO `[a-z][a-z0-9_]{0,63}` \\()")

// RestoreArchive creates database on server (it must not exist) and loads
// the archive stored under archiveKey into it, then checks every table's
// row count against the counts the archive carries and returns them. On
// failure the half-restored database is dropped. Compare the counts with
// tenant_archives.row_counts (ArchiveRecord) to check against what the purge
// recorded.
func RestoreArchive(ctx context.Context, server *sql.DB, store objectstore.Store, archiveKey, database string) (map[string]int64, error) {
	q, err := sqldb.QuoteIdent(database)
	if err != nil {
		return nil, err
	}
	var exists int
	if err := server.QueryRowContext(ctx, "SELECT COUNT(*) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = ?", database).Scan(&exists); err != nil {
		return nil, fmt.Errorf("restore into %s: %w", database, err)
	}
	if exists > 0 {
		return nil, fmt.Errorf("restore into %s: the database exists; restore into a new one", database)
	}
	body, _, err := store.Get(ctx, archiveKey)
	if err != nil {
		return nil, fmt.Errorf("restore %s: %w", archiveKey, err)
	}
	defer body.Close()
	zr, err := gzip.NewReader(body)
	if err != nil {
		return nil, fmt.Errorf("restore %s: %w", archiveKey, err)
	}
	// Created here or refused, in one statement: with IF NOT EXISTS a
	// database made since the check above (another restore into the same
	// name, a provisioning) would be loaded into, and dropped on failure.
	if _, err := server.ExecContext(ctx, "CREATE DATABASE "+q+" CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci"); err != nil {
		if me := (*mysql.MySQLError)(nil); errors.As(err, &me) && me.Number == 1007 { // ER_DB_CREATE_EXISTS
			return nil, fmt.Errorf("restore into %s: the database exists; restore into a new one", database)
		}
		return nil, fmt.Errorf("restore into %s: create database: %w", database, err)
	}
	counts, err := load(ctx, server, q, zr)
	if err != nil {
		// Nothing half-made is left behind; the archive is untouched.
		if derr := sqldb.DropDatabase(context.WithoutCancel(ctx), server, database); derr != nil {
			err = errors.Join(err, derr)
		}
		return nil, fmt.Errorf("restore %s into %s: %w", archiveKey, database, err)
	}
	return counts, nil
}

// load runs the archive's statements on one connection using database q,
// then checks the row counts.
func load(ctx context.Context, server *sql.DB, q string, r io.Reader) (map[string]int64, error) {
	conn, err := server.Conn(ctx)
	if err != nil {
		return nil, err
	}
	defer discard(conn) // the archive's session settings stay with it
	if _, err := conn.ExecContext(ctx, "USE "+q); err != nil {
		return nil, err
	}
	var want map[string]int64
	sc := newStatementScanner(r)
	first := true
	for {
		stmt, comments, err := sc.next()
		for _, c := range comments {
			if first && c != archiveMagic {
				return nil, errors.New("not a unitenant archive")
			}
			first = false
			if js, ok := strings.CutPrefix(c, rowCountsLine); ok {
				if err := json.Unmarshal([]byte(js), &want); err != nil {
					return nil, fmt.Errorf("row counts: %w", err)
				}
			}
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, err
		}
		if first {
			return nil, errors.New("not a unitenant archive")
		}
		if !allowedStatement.MatchString(stmt) && !isPrologue(stmt) {
			return nil, fmt.Errorf("refused statement in archive: %.80q", stmt)
		}
		if _, err := conn.ExecContext(ctx, stmt); err != nil {
			return nil, fmt.Errorf("%.80q: %w", stmt, err)
		}
	}
	if want == nil {
		return nil, errors.New("the archive is truncated: no row counts")
	}
	got := make(map[string]int64, len(want))
	for t, n := range want {
		if err := sqldb.ValidateIdent(t); err != nil {
			return nil, err
		}
		var c int64
		if err := conn.QueryRowContext(ctx, "SELECT COUNT(*) FROM `"+t+"`").Scan(&c); err != nil {
			return nil, fmt.Errorf("count %s: %w", t, err)
		}
		if c != n {
			return nil, fmt.Errorf("table %s: %d rows restored, the archive holds %d", t, c, n)
		}
		got[t] = c
	}
	return got, nil
}

// isPrologue reports whether stmt is one of the archive's own SET statements.
func isPrologue(stmt string) bool {
	for _, s := range append(archivePrologue[:len(archivePrologue):len(archivePrologue)], archiveEpilogue...) {
		if strings.TrimSuffix(s, ";\n") == stmt {
			return true
		}
	}
	return false
}

// statementScanner splits SQL text into statements at semicolons outside
// quotes ('…', "…" with backslash escapes, `…`), and hands back the "-- "
// comment lines found between statements.
type statementScanner struct {
	r *bufio.Reader
}

func newStatementScanner(r io.Reader) *statementScanner {
	return &statementScanner{r: bufio.NewReaderSize(r, 256<<10)}
}

// next returns the next statement without its semicolon and the comment
// lines before it; io.EOF once only whitespace and comments remain (the
// comments are still returned), io.ErrUnexpectedEOF for a statement cut off.
func (s *statementScanner) next() (string, []string, error) {
	var comments []string
	var sb strings.Builder
	var quote byte // the open quote, 0 outside
	escaped := false
	for {
		c, err := s.r.ReadByte()
		if err == io.EOF {
			if strings.TrimSpace(sb.String()) != "" {
				return "", comments, io.ErrUnexpectedEOF
			}
			return "", comments, io.EOF
		}
		if err != nil {
			return "", comments, err
		}
		switch {
		case quote != 0:
			sb.WriteByte(c)
			switch {
			case escaped:
				escaped = false
			case c == '\\' && quote != '`':
				escaped = true
			case c == quote:
				quote = 0 // a doubled quote closes and reopens: same result
			}
		case c == '-' && strings.TrimSpace(sb.String()) == "":
			line, err := s.r.ReadString('\n')
			if err != nil && err != io.EOF {
				return "", comments, err
			}
			comments = append(comments, strings.TrimRight("-"+line, "\r\n"))
			sb.Reset()
		case c == ';':
			return strings.TrimSpace(sb.String()), comments, nil
		default:
			if c == '\'' || c == '"' || c == '`' {
				quote = c
			}
			sb.WriteByte(c)
		}
	}
}

// ArchiveRecord is an archive as tenant_archives records it.
type ArchiveRecord struct {
	ID            int64            `json:"id"`
	TenantID      int64            `json:"tenantId"`
	TenantCode    string           `json:"tenantCode"`
	Database      string           `json:"database"`
	SchemaVersion int              `json:"schemaVersion"`
	Key           string           `json:"key"`
	Size          int64            `json:"size"`
	Checksum      string           `json:"checksum"`
	RowCounts     map[string]int64 `json:"rowCounts"`
	Status        string           `json:"status"`
	CreatedAt     time.Time        `json:"createdAt"`
	ExpiresAt     time.Time        `json:"expiresAt"`
}

// ErrArchiveNotFound is returned for a key tenant_archives does not hold.
var ErrArchiveNotFound = errors.New("no archive recorded under this key")

// FindArchive returns the tenant_archives row of object key.
func FindArchive(ctx context.Context, sys *sql.DB, key string) (*ArchiveRecord, error) {
	a := &ArchiveRecord{}
	var version sql.NullInt64
	var checksum, counts sql.NullString
	err := sys.QueryRowContext(ctx, `SELECT id, tenant_id, tenant_code, database_name, schema_version, object_key, size_bytes,
		checksum, row_counts, status, created_at, expires_at FROM tenant_archives WHERE object_key = ?`, key).
		Scan(&a.ID, &a.TenantID, &a.TenantCode, &a.Database, &version, &a.Key, &a.Size, &checksum, &counts, &a.Status, &a.CreatedAt, &a.ExpiresAt)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("%w: %s", ErrArchiveNotFound, key)
	}
	if err != nil {
		return nil, fmt.Errorf("archive %s: %w", key, err)
	}
	a.SchemaVersion, a.Checksum = int(version.Int64), checksum.String
	if counts.Valid {
		if err := json.Unmarshal([]byte(counts.String), &a.RowCounts); err != nil {
			return nil, fmt.Errorf("archive %s row counts: %w", key, err)
		}
	}
	return a, nil
}
