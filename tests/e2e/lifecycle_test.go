package e2e_test

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/unitenant/unitenant/shared/sqldb"
	"github.com/unitenant/unitenant/shared/sqldb/sqldbtest"
	"github.com/unitenant/unitenant/tests/testenv"
)

var tokenLine = regexp.MustCompile(`Confirmation token: (\S+)`)

// deletionToken reads the newest confirmation token for code from the
// development notification outbox.
func (s *system) deletionToken(t *testing.T, code string) string {
	t.Helper()
	var token string
	deadline := time.Now().Add(5 * time.Second)
	for token == "" && time.Now().Before(deadline) {
		if f, err := os.Open(s.notifyOutbox); err == nil {
			sc := bufio.NewScanner(f)
			sc.Buffer(make([]byte, 1<<20), 1<<20)
			for sc.Scan() {
				var m struct{ Subject, Body string }
				if json.Unmarshal(sc.Bytes(), &m) == nil && strings.Contains(m.Subject, code) {
					if g := tokenLine.FindStringSubmatch(m.Body); g != nil {
						token = g[1]
					}
				}
			}
			f.Close()
		}
		if token == "" {
			time.Sleep(50 * time.Millisecond)
		}
	}
	if token == "" {
		t.Fatalf("no confirmation token for %s in %s", code, s.notifyOutbox)
	}
	return token
}

func TestLifecycleOverHTTP(t *testing.T) {
	t.Parallel()
	s := start(t)
	prefix := s.sys.Template + "_"
	testenv.DropDatabasesLike(t, prefix)
	s.tenantctl(t, "user", "add", "--phone", "13511112222", "--password", "member-123", "--name", "Member")
	s.tenantctl(t, "tenant", "add", "--code", "k501", "--name", "Lifecycle Kindergarten", "--owner-phone", "13511112222")
	s.tenantctl(t, "admin", "add", "--username", "root", "--password", "root-pass-123", "--role", "super_admin")
	platform := "localhost"
	var adminLogin struct{ Token string }
	must(t, 200)(s.api(t, "POST", "/api/admin/auth/login", platform, "", map[string]any{"username": "root", "password": "root-pass-123"})).decode(t, &adminLogin)
	adm := adminLogin.Token
	var login struct{ Token string }
	must(t, 200)(s.api(t, "POST", "/api/auth/login", platform, "", map[string]any{"phone": "13511112222", "password": "member-123"})).decode(t, &login)
	var sw struct{ Token string }
	must(t, 200)(s.api(t, "POST", "/api/auth/switch-tenant", platform, login.Token, map[string]any{"tenantCode": "k501"})).decode(t, &sw)
	host := "k501.localhost"
	var class struct{ ID int64 }
	must(t, 201)(s.api(t, "POST", "/api/app/classes", host, sw.Token, map[string]any{"name": "Keep Me", "grade": "large"})).decode(t, &class)

	// Suspend: the tenant API refuses (within the registry TTL), resume: it works.
	must(t, 200)(s.api(t, "POST", "/api/admin/tenants/k501/suspend", platform, adm, map[string]any{"reason": "unpaid"}))
	s.eventually(t, func() bool {
		st, env := s.api(t, "GET", "/api/app/classes", host, sw.Token, nil)
		return st == 403 && env.Error.Code == "tenant_suspended"
	})
	must(t, 200)(s.api(t, "POST", "/api/admin/tenants/k501/resume", platform, adm, nil))
	s.eventually(t, func() bool { st, _ := s.api(t, "GET", "/api/app/classes", host, sw.Token, nil); return st == 200 })

	// Delete with the token delivered by notification: 410, then restore, data intact.
	must(t, 202)(s.api(t, "POST", "/api/admin/tenants/k501/delete", platform, adm, map[string]any{"reason": "closing"}))
	must(t, 200)(s.api(t, "POST", "/api/admin/tenants/k501/delete/confirm", platform, adm, map[string]any{"token": s.deletionToken(t, "k501")}))
	s.eventually(t, func() bool {
		st, env := s.api(t, "GET", "/api/app/classes", host, sw.Token, nil)
		return st == 410 && env.Error.Code == "tenant_deleted"
	})
	must(t, 200)(s.api(t, "POST", "/api/admin/tenants/k501/restore", platform, adm, nil))
	s.eventually(t, func() bool {
		st, _ := s.api(t, "GET", fmt.Sprintf("/api/app/classes/%d", class.ID), host, sw.Token, nil)
		return st == 200
	})

	// Counts of the database as it is now, to compare with its archive.
	var dbName string
	if err := s.sys.DB.QueryRow("SELECT d.database_name FROM tenant_databases d JOIN tenants t ON t.id = d.tenant_id WHERE t.tenant_code = 'k501'").Scan(&dbName); err != nil {
		t.Fatal(err)
	}
	want := tableCounts(t, dbName)

	// Delete again; the (short) grace passes; cleanup-cron purges with an archive.
	must(t, 202)(s.api(t, "POST", "/api/admin/tenants/k501/delete", platform, adm, map[string]any{"reason": "closing for good"}))
	time.Sleep(20 * time.Millisecond) // the outbox is appended after the response
	must(t, 200)(s.api(t, "POST", "/api/admin/tenants/k501/delete/confirm", platform, adm, map[string]any{"token": s.deletionToken(t, "k501")}))
	time.Sleep(2 * time.Second) // DELETION_GRACE is 1s in this system
	st, env := s.api(t, "POST", "/_jobs/cleanup-cron", platform, "", nil)
	if st != 200 {
		t.Fatalf("cleanup-cron: %d %s", st, env.raw)
	}
	var status string
	if err := s.sys.DB.QueryRow("SELECT status FROM tenants WHERE tenant_code = 'k501'").Scan(&status); err != nil || status != "purged" {
		t.Fatalf("tenant status %q (%v), want purged", status, err)
	}
	var exists int
	_ = sqldbtest.Server(t).QueryRow("SELECT COUNT(*) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = ?", dbName).Scan(&exists)
	if exists != 0 {
		t.Fatalf("database %s still exists after the purge", dbName)
	}
	var archive string
	if err := s.sys.DB.QueryRow("SELECT object_key FROM tenant_archives WHERE tenant_code = 'k501'").Scan(&archive); err != nil {
		t.Fatalf("no archive recorded: %v", err)
	}
	if entries, _ := os.ReadDir(s.objects + "/data/tenants/k501"); len(entries) != 0 {
		t.Fatalf("objects of k501 still stored: %v", entries)
	}

	// restore-archive into a new database equals the original.
	restored := prefix + "restored_k501"
	s.tenantctl(t, "restore-archive", archive, "--into", restored)
	if got := tableCounts(t, restored); !equalCounts(got, want) {
		t.Fatalf("restored counts differ:\n got  %v\n want %v", got, want)
	}
}

// eventually retries cond for a few registry TTLs.
func (s *system) eventually(t *testing.T, cond func() bool) {
	t.Helper()
	waitFor(t, "the condition", 15*time.Second, cond)
}

// waitFor polls cond until it holds, failing the test after timeout.
func waitFor(t *testing.T, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("waited %s for %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// tableCounts returns every table's row count in database name.
func tableCounts(t *testing.T, name string) map[string]int64 {
	t.Helper()
	server := sqldbtest.Server(t)
	q, err := sqldb.QuoteIdent(name)
	if err != nil {
		t.Fatal(err)
	}
	rows, err := server.Query("SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? AND TABLE_TYPE = 'BASE TABLE'", name)
	if err != nil {
		t.Fatal(err)
	}
	var tables []string
	for rows.Next() {
		var n string
		_ = rows.Scan(&n)
		tables = append(tables, n)
	}
	rows.Close()
	out := map[string]int64{}
	for _, tb := range tables {
		var n int64
		if err := server.QueryRow("SELECT COUNT(*) FROM " + q + ".`" + tb + "`").Scan(&n); err != nil {
			t.Fatal(err)
		}
		out[tb] = n
	}
	return out
}

func equalCounts(a, b map[string]int64) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}
