// Package e2e_test runs the whole system the way `make dev` does — the local
// gateway reading template.yaml and every function binary behind it — and
// talks to it over HTTP only.
package e2e_test

import (
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/unitenant/unitenant/tests/testenv"
)

var binDir string

func TestMain(m *testing.M) {
	os.Exit(testenv.Main(m, &binDir, "./scripts/gateway", "./scripts/tenantctl"))
}

// system is a running local deployment.
type system struct {
	URL          string
	sys          testenv.System
	relay        *relay
	logs         *testenv.Buffer
	env          []string // what the functions run with
	outbox       string   // the development SMS outbox
	notifyOutbox string   // the development notification outbox (e-mails)
	objects      string   // the local object store's directory
}

// start migrates a fresh system database, puts a relay in front of MySQL and
// starts the gateway with every function, as `make dev` does, with secrets of
// the test's own (not the developer's .dev/keys).
func start(t *testing.T) *system {
	t.Helper()
	sys := testenv.NewSystem(t)
	tmp := t.TempDir()
	outbox, notifyOutbox, objects := filepath.Join(tmp, "sms.jsonl"), filepath.Join(tmp, "notifications.jsonl"), filepath.Join(tmp, "objects")
	mc, err := mysql.ParseDSN(sys.DSN)
	if err != nil {
		t.Fatal(err)
	}
	rl := newRelay(t, mc.Addr)
	mc.Addr = rl.Addr()
	mc.Timeout = time.Second
	port := testenv.FreePort(t)
	logs := &testenv.Buffer{}
	cmd := exec.Command(filepath.Join(binDir, "gateway"), "-template", filepath.Join(testenv.Root(), "template.yaml"),
		"-bin", binDir, "-addr", "127.0.0.1:"+port, "-base-port", "0", "-schedules=false")
	env := append(append(os.Environ(), "MYSQL_DSN="+mc.FormatDSN(), "TEMPLATE_DATABASE="+sys.Template, "LOG_LEVEL=warn"),
		sys.Secrets...)
	env = append(env, "STORAGE_BACKEND=local", "LOCAL_STORAGE_DIR="+objects, "NOTIFY_OUTBOX="+notifyOutbox, "DELETION_GRACE=1s", "LOCAL_STORAGE_SECRET="+strings.Repeat("e", 32),
		"POOL_SIZE=0", "TENANT_CACHE_TTL=1s", "SMS_SENDER=outbox", "SMS_OUTBOX="+outbox, "BASE_DOMAIN=localhost", "BCRYPT_COST=4",
		"TENANT_DB_PREFIX="+sys.Template+"_")
	cmd.Env = env
	cmd.Stdout, cmd.Stderr = logs, logs
	testenv.Start(t, cmd, os.Interrupt, 15*time.Second, false, logs)
	s := &system{URL: "http://127.0.0.1:" + port, sys: sys, relay: rl, logs: logs, env: env, outbox: outbox, notifyOutbox: notifyOutbox, objects: objects}
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get(s.URL + "/api/health")
		if err == nil {
			resp.Body.Close()
			return s
		}
		if time.Now().After(deadline) {
			t.Fatalf("gateway not up: %v\n%s", err, logs.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

type healthBody struct {
	Success bool `json:"success"`
	Data    struct {
		Status        string `json:"status"`
		Database      string `json:"database"`
		SchemaVersion int    `json:"schemaVersion"`
		Version       string `json:"version"`
	} `json:"data"`
}

func (s *system) health(t *testing.T) (int, healthBody) {
	t.Helper()
	resp, err := http.Get(s.URL + "/api/health")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var b healthBody
	raw, _ := io.ReadAll(resp.Body)
	if err := json.Unmarshal(raw, &b); err != nil {
		t.Fatalf("health body %q: %v", raw, err)
	}
	return resp.StatusCode, b
}

func TestHealthFollowsTheDatabase(t *testing.T) {
	t.Parallel()
	s := start(t)
	code, b := s.health(t)
	if code != 200 || !b.Success || b.Data.Database != "ok" || b.Data.SchemaVersion == 0 || b.Data.Version == "" {
		t.Fatalf("healthy: %d %+v", code, b)
	}

	s.relay.Cut()
	code, b = s.health(t)
	if code != 503 || b.Success || b.Data.Database != "down" {
		t.Fatalf("database down: %d %+v, want 503 with database down", code, b)
	}

	s.relay.Restore()
	// The pool dials again on the next request: no restart needed.
	code, b = s.health(t)
	if code != 200 || b.Data.Database != "ok" {
		t.Fatalf("database back: %d %+v, want 200", code, b)
	}
}

func TestGatewayRoutesJobsAndUnknownPaths(t *testing.T) {
	t.Parallel()
	s := start(t)
	resp, err := http.Post(s.URL+"/_jobs/provision-cron", "application/json", nil)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(body), `"template":{"from":0`) {
		t.Fatalf("POST /_jobs/provision-cron: %d %s", resp.StatusCode, body)
	}
	resp, err = http.Get(s.URL + "/api/no-such-route")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 404 {
		t.Fatalf("unknown route: %d, want 404", resp.StatusCode)
	}
	// One log line per request, naming the function and the status.
	if logs := s.logs.String(); !strings.Contains(logs, "/api/health") || !strings.Contains(logs, "health 200") {
		t.Errorf("gateway log lacks the health request line:\n%s", logs)
	}
}
