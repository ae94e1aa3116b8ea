// Package testenv is what the binary-level test suites (tests/platform,
// tests/e2e) share: the repository root, the function binaries built once per
// run, free ports, and a migrated system database of each test's own.
package testenv

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"database/sql"
	"encoding/base64"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/unitenant/unitenant/shared/auth"
	"github.com/unitenant/unitenant/shared/config"
	"github.com/unitenant/unitenant/shared/logging"
	"github.com/unitenant/unitenant/shared/objectstore"
	"github.com/unitenant/unitenant/shared/provisioning"
	"github.com/unitenant/unitenant/shared/secretbox"
	"github.com/unitenant/unitenant/shared/sqldb"
	"github.com/unitenant/unitenant/shared/sqldb/sqldbtest"
)

// Root returns the repository root.
func Root() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..")
}

// Main builds every function (and the extra packages, e.g. ./scripts/gateway)
// into a temporary directory, runs the tests and removes it. Use it from
// TestMain: os.Exit(testenv.Main(m, &binDir, "./scripts/gateway")).
func Main(m *testing.M, binDir *string, extra ...string) int {
	dir, err := os.MkdirTemp("", "unitenant-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	args := append([]string{"build", "-o", dir + "/", "./functions/..."}, extra...)
	cmd := exec.Command("go", args...)
	cmd.Dir, cmd.Stdout, cmd.Stderr = Root(), os.Stderr, os.Stderr
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if err := cmd.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build binaries:", err)
		return 1
	}
	*binDir = dir
	return m.Run()
}

// Functions lists the directories under functions/.
func Functions(tb testing.TB) []string {
	tb.Helper()
	entries, err := os.ReadDir(filepath.Join(Root(), "functions"))
	if err != nil {
		tb.Fatal(err)
	}
	var out []string
	for _, e := range entries {
		if e.IsDir() {
			out = append(out, e.Name())
		}
	}
	if len(out) == 0 {
		tb.Fatal("no functions found")
	}
	return out
}

// FreePort returns a TCP port on loopback that was free a moment ago.
func FreePort(tb testing.TB) string {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	defer ln.Close()
	return strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)
}

// WaitListening waits until addr accepts TCP connections.
func WaitListening(tb testing.TB, addr string, timeout time.Duration) {
	tb.Helper()
	deadline := time.Now().Add(timeout)
	for {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			c.Close()
			return
		}
		if time.Now().After(deadline) {
			tb.Fatalf("nothing listens on %s after %s: %v", addr, timeout, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// System is a migrated system database of the test's own, and secrets of
// its own (never the developer's .dev/keys).
type System struct {
	DB       *sql.DB
	DSN      string
	Template string // a template database name, created empty and dropped at the end
	Secrets  []string

	SigningKey *rsa.PrivateKey // JWT_PRIVATE_KEY
	Box        *secretbox.Box  // MASTER_KEY
}

// Env returns the environment a function needs to use this system database.
func (s System) Env() []string {
	return append(append(os.Environ(), "MYSQL_DSN="+s.DSN, "TEMPLATE_DATABASE="+s.Template, "LOG_LEVEL=warn"), s.Secrets...)
}

// NewSystem makes a migrated system database and an empty template database,
// both dropped when the test ends.
func NewSystem(tb testing.TB) System {
	tb.Helper()
	db, dsn := sqldbtest.NewDatabase(tb)
	if _, err := provisioning.MigrateSystem(context.Background(), db, logging.Discard()); err != nil {
		tb.Fatal(err)
	}
	tmpl := sqldbtest.Name(tb)
	sqldbtest.CreateDatabase(tb, tmpl)
	keyPEM, master := SigningKeyPEM(tb), MasterKey(tb)
	key, err := auth.ParsePrivateKey([]byte(keyPEM))
	if err != nil {
		tb.Fatal(err)
	}
	box, err := secretbox.FromEnv(master, false, "")
	if err != nil {
		tb.Fatal(err)
	}
	return System{DB: db, DSN: dsn, Template: tmpl, SigningKey: key, Box: box, Secrets: []string{
		"JWT_PRIVATE_KEY=" + keyPEM, "MASTER_KEY=" + master, "SMS_CODE_SECRET=" + MasterKey(tb),
	}}
}

// Buffer is a goroutine-safe log sink for a child process.
type Buffer struct {
	mu sync.Mutex
	b  strings.Builder
}

// Write appends p.
func (l *Buffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

// String returns everything written so far.
func (l *Buffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// SigningKeyPEM returns a fresh RSA signing key in PEM, for JWT_PRIVATE_KEY.
func SigningKeyPEM(tb testing.TB) string {
	tb.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		tb.Fatal(err)
	}
	return string(auth.EncodePrivateKey(key))
}

// MasterKey returns a fresh master key in base64, for MASTER_KEY.
func MasterKey(tb testing.TB) string {
	tb.Helper()
	k := make([]byte, 32)
	_, _ = rand.Read(k)
	return base64.StdEncoding.EncodeToString(k)
}

// DropDatabasesLike drops, at the end of the test, every database whose name
// starts with prefix (tenant databases the system under test created) and
// every MySQL user granted on one of them (siloed tenants' users), even when
// the test failed half way.
func DropDatabasesLike(tb testing.TB, prefix string) {
	tb.Helper()
	server := sqldbtest.Server(tb)
	// _ is a LIKE wildcard: escape it so only this prefix matches.
	pattern := strings.ReplaceAll(prefix, "_", `\_`) + "%"
	tb.Cleanup(func() {
		// A grant's database is stored with _ escaped (see provisioning's
		// siloUser): compared unescaped.
		rows, err := server.Query(`SELECT DISTINCT user, host FROM mysql.db WHERE REPLACE(REPLACE(db, '\\_', '_'), '\\%', '%') LIKE ?`, pattern)
		if err != nil {
			tb.Errorf("list users: %v", err)
			return
		}
		var users [][2]string
		for rows.Next() {
			var u, h string
			if rows.Scan(&u, &h) == nil {
				users = append(users, [2]string{u, h})
			}
		}
		rows.Close()
		for _, u := range users {
			if _, err := server.Exec("DROP USER IF EXISTS ?@?", u[0], u[1]); err != nil {
				tb.Errorf("drop user %s: %v", u[0], err)
			}
		}
	})
	tb.Cleanup(func() {
		rows, err := server.Query("SELECT SCHEMA_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME LIKE ?", pattern)
		if err != nil {
			tb.Errorf("list databases: %v", err)
			return
		}
		var names []string
		for rows.Next() {
			var n string
			if rows.Scan(&n) == nil {
				names = append(names, n)
			}
		}
		rows.Close()
		for _, n := range names {
			if err := sqldb.DropDatabase(context.Background(), server, n); err != nil {
				tb.Errorf("drop %s: %v", n, err)
			}
		}
	})
}

// Start runs cmd for the rest of the test. At the end it sends sig and waits
// up to grace for the process to exit (killing it after), and fails the test
// if it had to kill it or, with cleanExit, if the exit status was not 0.
// logs, when not nil, are printed if the test failed.
func Start(tb testing.TB, cmd *exec.Cmd, sig os.Signal, grace time.Duration, cleanExit bool, logs fmt.Stringer) {
	tb.Helper()
	if err := cmd.Start(); err != nil {
		tb.Fatalf("start %s: %v", cmd.Path, err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	name := filepath.Base(cmd.Path)
	tb.Cleanup(func() {
		_ = cmd.Process.Signal(sig)
		select {
		case <-exited:
			if code := cmd.ProcessState.ExitCode(); cleanExit && code != 0 {
				tb.Errorf("%s exited %d after %v", name, code, sig)
			}
		case <-time.After(grace):
			_ = cmd.Process.Kill()
			<-exited
			tb.Errorf("%s did not stop within %s of %v", name, grace, sig)
		}
		if tb.Failed() && logs != nil {
			tb.Logf("%s output:\n%s", name, logs.String())
		}
	})
}

// Tenants makes tenants through the real provisioning pipeline, with
// databases named after the test (dropped at its end) and a local object
// store in a temporary directory.
type Tenants struct {
	Pipeline *provisioning.Pipeline
	Prefix   string // tenant database names
	Server   *sql.DB
	DSN      string // the server's DSN, no database
}

// NewTenants registers the test server as the default cluster of sys and
// returns a pipeline that creates tenants on it.
func NewTenants(tb testing.TB, sys *sql.DB, box *secretbox.Box) *Tenants {
	tb.Helper()
	ctx := context.Background()
	serverDSN := sqldbtest.ServerDSN(tb)
	if _, err := provisioning.EnsureCluster(ctx, sys, box, "default", serverDSN, 0); err != nil {
		tb.Fatal(err)
	}
	prefix := sqldbtest.Name(tb) + "_"
	DropDatabasesLike(tb, prefix)
	store, err := objectstore.Load(config.FromMap(map[string]string{
		"STORAGE_BACKEND": "local", "LOCAL_STORAGE_DIR": tb.TempDir(), "LOCAL_STORAGE_SECRET": strings.Repeat("k", 32),
	}), true)
	if err != nil {
		tb.Fatal(err)
	}
	p := &provisioning.Pipeline{Sys: sys, Box: box, Storage: store, Template: prefix + "template", Prefix: prefix,
		Owner: "test", Log: logging.Discard()}
	return &Tenants{Pipeline: p, Prefix: prefix, Server: sqldbtest.Server(tb), DSN: serverDSN}
}

// Create provisions tenant code (admin: the global user adminID, 0 for none)
// and returns its id and a pool on its database, closed at the end of the
// test. It may run on any goroutine: it reports failures as errors.
func (ts *Tenants) Create(tb testing.TB, code string, adminID int64) (int64, *sql.DB, error) {
	ctx := context.Background()
	id, err := ts.Pipeline.Start(ctx, provisioning.Request{Code: code, Name: "Kindergarten " + code, ContactName: "Test Contact",
		ContactEmail: "contact@" + code + ".example.com", ContactPhone: "13900009999", AdminUserID: adminID})
	if err != nil {
		return 0, nil, fmt.Errorf("create tenant %s: %w", code, err)
	}
	if err := ts.Pipeline.Run(ctx, code); err != nil {
		return 0, nil, fmt.Errorf("provision tenant %s: %w", code, err)
	}
	var name string
	if err := ts.Pipeline.Sys.QueryRowContext(ctx, "SELECT database_name FROM tenant_databases WHERE tenant_id = ?", id).Scan(&name); err != nil {
		return 0, nil, err
	}
	dsn, err := sqldb.WithDatabase(ts.DSN, name)
	if err != nil {
		return 0, nil, err
	}
	db, err := sqldb.OpenDSN(dsn)
	if err != nil {
		return 0, nil, err
	}
	tb.Cleanup(func() { db.Close() })
	return id, db, nil
}
