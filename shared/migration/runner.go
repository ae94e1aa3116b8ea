package migration

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/unitenant/unitenant/shared/sqldb"
)

// Runner applies migrations to the database its pool points at.
type Runner struct {
	DB         *sql.DB
	Migrations []Migration
	Log        *slog.Logger
	// LockTimeout bounds the wait for another runner on the same database.
	LockTimeout time.Duration
}

// Result says what a run did.
type Result struct {
	From    int   `json:"from"`
	To      int   `json:"to"`
	Applied []int `json:"applied"`
}

const ledgerDDL = `CREATE TABLE IF NOT EXISTS schema_migrations (
  version INT NOT NULL PRIMARY KEY,
  name VARCHAR(255) NOT NULL,
  checksum CHAR(64) NOT NULL,
  statements INT NOT NULL,
  duration_ms INT NOT NULL,
  applied_at DATETIME(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci`

const progressDDL = `CREATE TABLE IF NOT EXISTS schema_migration_progress (
  version INT NOT NULL PRIMARY KEY,
  checksum CHAR(64) NOT NULL,
  statements_done INT NOT NULL,
  last_error TEXT NULL,
  updated_at DATETIME(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3) ON UPDATE CURRENT_TIMESTAMP(3)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci`

// Version returns the highest applied version of the database db points at,
// 0 when it has no ledger yet.
func Version(ctx context.Context, db *sql.DB) (int, error) {
	var v int
	err := db.QueryRowContext(ctx, "SELECT COALESCE(MAX(version), 0) FROM schema_migrations").Scan(&v)
	if err != nil {
		if sqldb.IsNoSuchTable(err) {
			return 0, nil
		}
		return 0, fmt.Errorf("read schema version: %w", err)
	}
	return v, nil
}

// Up applies every pending migration in version order.
func (r *Runner) Up(ctx context.Context) (Result, error) {
	// GET_LOCK belongs to a session: lock, read and apply on one connection.
	conn, err := r.DB.Conn(ctx)
	if err != nil {
		return Result{}, fmt.Errorf("migrate: connect: %w", err)
	}
	defer conn.Close()
	return r.UpConn(ctx, conn)
}

// UpConn is Up on conn, a connection the caller holds with the database to
// migrate already selected (r.DB is not used). A roll-out over many
// databases of one server migrates them all through one pool this way,
// instead of opening a pool per database.
func (r *Runner) UpConn(ctx context.Context, conn *sql.Conn) (Result, error) {
	log := r.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	var dbName sql.NullString
	if err := conn.QueryRowContext(ctx, "SELECT DATABASE()").Scan(&dbName); err != nil || !dbName.Valid {
		return Result{}, fmt.Errorf("migrate: the connection selects no database (%v)", err)
	}
	release, err := lock(ctx, conn, dbName.String, r.LockTimeout)
	if err != nil {
		return Result{}, err
	}
	defer release()

	for _, ddl := range []string{ledgerDDL, progressDDL} {
		if _, err := conn.ExecContext(ctx, ddl); err != nil {
			return Result{}, fmt.Errorf("migrate %s: create ledger: %w", dbName.String, err)
		}
	}
	applied, err := readLedger(ctx, conn)
	if err != nil {
		return Result{}, err
	}
	res := Result{Applied: []int{}}
	for v := range applied {
		res.From = max(res.From, v)
	}
	res.To = res.From
	for _, m := range r.Migrations {
		if sum, ok := applied[m.Version]; ok {
			if sum != m.Checksum {
				return res, fmt.Errorf("migrate %s: %s was changed after it was applied (checksum %s… recorded, %s… on disk); add a new migration instead",
					dbName.String, m.Name, sum[:12], m.Checksum[:12])
			}
			continue
		}
		if err := apply(ctx, conn, m, log); err != nil {
			return res, fmt.Errorf("migrate %s: %w", dbName.String, err)
		}
		res.Applied = append(res.Applied, m.Version)
		res.To = max(res.To, m.Version)
	}
	return res, nil
}

func readLedger(ctx context.Context, conn *sql.Conn) (map[int]string, error) {
	rows, err := conn.QueryContext(ctx, "SELECT version, checksum FROM schema_migrations")
	if err != nil {
		return nil, fmt.Errorf("read ledger: %w", err)
	}
	defer rows.Close()
	out := map[int]string{}
	for rows.Next() {
		var v int
		var sum string
		if err := rows.Scan(&v, &sum); err != nil {
			return nil, fmt.Errorf("read ledger: %w", err)
		}
		out[v] = sum
	}
	return out, rows.Err()
}

// apply runs m's statements from where an earlier attempt stopped.
func apply(ctx context.Context, conn *sql.Conn, m Migration, log *slog.Logger) error {
	start := time.Now()
	done := 0
	var sum string
	err := conn.QueryRowContext(ctx, "SELECT checksum, statements_done FROM schema_migration_progress WHERE version = ?", m.Version).Scan(&sum, &done)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		done = 0
	case err != nil:
		return fmt.Errorf("%s: read progress: %w", m.Name, err)
	case sum != m.Checksum:
		return fmt.Errorf("%s: changed after %d of its statements were applied; restore the file or repair the database by hand", m.Name, done)
	}
	if done > 0 {
		log.InfoContext(ctx, "resuming migration", "migration", m.Name, "statements_done", done)
	}
	for i := done; i < len(m.Statements); i++ {
		st := m.Statements[i]
		if err := runStatement(ctx, conn, m, i); err != nil {
			msg := fmt.Sprintf("statement %d of %d (line %d): %v", i+1, len(m.Statements), st.Line, err)
			_, _ = conn.ExecContext(context.WithoutCancel(ctx),
				`INSERT INTO schema_migration_progress (version, checksum, statements_done, last_error) VALUES (?, ?, ?, ?)
				 ON DUPLICATE KEY UPDATE last_error = VALUES(last_error)`, m.Version, m.Checksum, i, msg)
			return fmt.Errorf("%s: %s", m.Name, msg)
		}
	}
	if _, err := conn.ExecContext(ctx,
		"INSERT INTO schema_migrations (version, name, checksum, statements, duration_ms) VALUES (?, ?, ?, ?, ?)",
		m.Version, m.Name, m.Checksum, len(m.Statements), time.Since(start).Milliseconds()); err != nil {
		return fmt.Errorf("%s: record in ledger: %w", m.Name, err)
	}
	if _, err := conn.ExecContext(ctx, "DELETE FROM schema_migration_progress WHERE version = ?", m.Version); err != nil {
		return fmt.Errorf("%s: clear progress: %w", m.Name, err)
	}
	log.InfoContext(ctx, "applied migration", "migration", m.Name, "statements", len(m.Statements), "duration_ms", time.Since(start).Milliseconds())
	return nil
}

const recordProgress = `INSERT INTO schema_migration_progress (version, checksum, statements_done) VALUES (?, ?, ?)
	ON DUPLICATE KEY UPDATE statements_done = VALUES(statements_done), last_error = NULL`

// runStatement runs statement i of m and records it done. A data statement
// (INSERT, UPDATE...) and its record commit in one transaction, so a kill
// between them can never make a resume run it twice. DDL commits implicitly
// on MySQL and cannot join a transaction: it is recorded right after; a kill
// in between makes the resume fail loudly ("already exists") rather than
// silently duplicate data.
func runStatement(ctx context.Context, conn *sql.Conn, m Migration, i int) error {
	st := m.Statements[i]
	if isDDL(st.SQL) {
		if _, err := conn.ExecContext(ctx, st.SQL); err != nil {
			return err
		}
		if _, err := conn.ExecContext(ctx, recordProgress, m.Version, m.Checksum, i+1); err != nil {
			return fmt.Errorf("record progress: %w", err)
		}
		return nil
	}
	tx, err := conn.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer func() { _ = tx.Rollback() }()
	if _, err := tx.ExecContext(ctx, st.SQL); err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, recordProgress, m.Version, m.Checksum, i+1); err != nil {
		return fmt.Errorf("record progress: %w", err)
	}
	return tx.Commit()
}

// isDDL reports whether a statement commits implicitly on MySQL.
func isDDL(stmt string) bool {
	f := strings.Fields(stmt)
	if len(f) == 0 {
		return false
	}
	switch strings.ToUpper(f[0]) {
	case "CREATE", "ALTER", "DROP", "RENAME", "TRUNCATE", "GRANT", "REVOKE", "SET", "USE":
		return true
	}
	return false
}

// lock takes a server-wide named lock for dbName. Lock names are limited to
// 64 characters, so long database names are hashed.
func lock(ctx context.Context, conn *sql.Conn, dbName string, timeout time.Duration) (func(), error) {
	if timeout <= 0 {
		timeout = time.Minute
	}
	name := "unitenant.migrate." + dbName
	if len(name) > 64 {
		h := sha256.Sum256([]byte(dbName))
		name = "unitenant.migrate." + hex.EncodeToString(h[:])[:40]
	}
	var got sql.NullInt64
	if err := conn.QueryRowContext(ctx, "SELECT GET_LOCK(?, ?)", name, int(timeout.Seconds())).Scan(&got); err != nil {
		return nil, fmt.Errorf("migrate %s: take lock: %w", dbName, err)
	}
	if !got.Valid || got.Int64 != 1 {
		return nil, fmt.Errorf("migrate %s: another migration has held the lock for over %s", dbName, timeout)
	}
	return func() {
		_, _ = conn.ExecContext(context.WithoutCancel(ctx), "SELECT RELEASE_LOCK(?)", name)
	}, nil
}
