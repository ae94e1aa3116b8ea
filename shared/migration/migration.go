// Package migration applies versioned SQL files to a database: forward only,
// each file once, recorded in a version ledger (schema_migrations), under a
// per-database lock so two runners never apply the same file twice.
//
// MySQL commits DDL implicitly, so a file cannot be applied atomically. The
// runner records each statement it completes (schema_migration_progress) and
// a rerun after a failure or a kill resumes at the first statement not done;
// the ledger only records a file once all its statements have run. It never
// applies a file whose recorded checksum differs from the file on disk.
package migration

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io/fs"
	"path"
	"regexp"
	"sort"
	"strconv"
	"strings"
)

// Migration is one versioned SQL file.
type Migration struct {
	Version    int
	Name       string // the file name, e.g. "0003_ai.sql"
	Statements []Statement
	Checksum   string // sha256 of the file, hex
}

// Statement is one SQL statement of a file and the line it starts on.
type Statement struct {
	SQL  string
	Line int
}

var fileName = regexp.MustCompile(`^(\d{4,})_[a-z0-9_]+\.sql$`)

// Load reads every NNNN_name.sql file at the top of fsys, sorted by version.
// Files that do not match the pattern, duplicate versions and empty files are
// errors, not silently skipped: a typo must not drop a migration.
func Load(fsys fs.FS) ([]Migration, error) {
	entries, err := fs.ReadDir(fsys, ".")
	if err != nil {
		return nil, fmt.Errorf("read migrations: %w", err)
	}
	var ms []Migration
	seen := map[int]string{}
	for _, e := range entries {
		if e.IsDir() || path.Ext(e.Name()) != ".sql" {
			continue
		}
		m := fileName.FindStringSubmatch(e.Name())
		if m == nil {
			return nil, fmt.Errorf("migration file %q: name must look like 0001_snake_name.sql", e.Name())
		}
		v, _ := strconv.Atoi(m[1])
		if v == 0 {
			return nil, fmt.Errorf("migration file %q: versions start at 1", e.Name())
		}
		if other, dup := seen[v]; dup {
			return nil, fmt.Errorf("migration files %q and %q share version %d", other, e.Name(), v)
		}
		seen[v] = e.Name()
		b, err := fs.ReadFile(fsys, e.Name())
		if err != nil {
			return nil, fmt.Errorf("read %s: %w", e.Name(), err)
		}
		stmts, err := Split(string(b))
		if err != nil {
			return nil, fmt.Errorf("%s: %w", e.Name(), err)
		}
		if len(stmts) == 0 {
			return nil, fmt.Errorf("migration file %q holds no statement", e.Name())
		}
		sum := sha256.Sum256(b)
		ms = append(ms, Migration{Version: v, Name: e.Name(), Statements: stmts, Checksum: hex.EncodeToString(sum[:])})
	}
	sort.Slice(ms, func(i, j int) bool { return ms[i].Version < ms[j].Version })
	return ms, nil
}

// Latest returns the highest version in ms, 0 for none.
func Latest(ms []Migration) int {
	if len(ms) == 0 {
		return 0
	}
	return ms[len(ms)-1].Version
}

// Split cuts SQL text into statements at semicolons outside quotes and
// comments. Comments are dropped; DELIMITER is not supported (migrations hold
// no stored programs).
func Split(src string) ([]Statement, error) {
	var (
		out   []Statement
		cur   strings.Builder
		line  = 1
		start = 0 // line the current statement starts on; 0 = none yet
	)
	flush := func() {
		s := strings.TrimSpace(cur.String())
		if s != "" {
			out = append(out, Statement{SQL: s, Line: start})
		}
		cur.Reset()
		start = 0
	}
	mark := func() {
		if start == 0 {
			start = line
		}
	}
	for i := 0; i < len(src); i++ {
		c := src[i]
		switch {
		case c == '\n':
			line++
			cur.WriteByte(c)
		case c == '-' && strings.HasPrefix(src[i:], "--") && (i+2 == len(src) || src[i+2] == ' ' || src[i+2] == '\t' || src[i+2] == '\n' || src[i+2] == '\r'),
			c == '#':
			for i < len(src) && src[i] != '\n' {
				i++
			}
			i-- // let the newline be counted
		case c == '/' && strings.HasPrefix(src[i:], "/*"):
			end := strings.Index(src[i+2:], "*/")
			if end < 0 {
				return nil, fmt.Errorf("line %d: unterminated /* comment", line)
			}
			line += strings.Count(src[i:i+2+end+2], "\n")
			cur.WriteByte(' ')
			i += 2 + end + 1
		case c == '\'' || c == '"' || c == '`':
			mark()
			j := i + 1
			for ; j < len(src); j++ {
				if src[j] == '\\' && c != '`' {
					j++
					continue
				}
				if src[j] == c {
					if j+1 < len(src) && src[j+1] == c { // doubled quote
						j++
						continue
					}
					break
				}
			}
			if j >= len(src) {
				return nil, fmt.Errorf("line %d: unterminated %c quote", line, c)
			}
			line += strings.Count(src[i:j+1], "\n")
			cur.WriteString(src[i : j+1])
			i = j
		case c == ';':
			flush()
		default:
			if c != ' ' && c != '\t' && c != '\r' {
				mark()
			}
			cur.WriteByte(c)
		}
	}
	flush()
	return out, nil
}
