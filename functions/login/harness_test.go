package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"database/sql"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/unitenant/unitenant/shared/auth"
	"github.com/unitenant/unitenant/shared/httpapi/httpapitest"
	"github.com/unitenant/unitenant/shared/identity"
	"github.com/unitenant/unitenant/shared/logging"
	"github.com/unitenant/unitenant/shared/provisioning"
	"github.com/unitenant/unitenant/shared/serverless"
	"github.com/unitenant/unitenant/shared/sms"
	"github.com/unitenant/unitenant/shared/sqldb/sqldbtest"
)

// The signing key is generated once for the package: RSA generation is slow.
var (
	keyOnce sync.Once
	testKey *rsa.PrivateKey
)

func signingKey(t *testing.T) *rsa.PrivateKey {
	t.Helper()
	keyOnce.Do(func() {
		k, err := rsa.GenerateKey(rand.Reader, 2048)
		if err != nil {
			panic(err)
		}
		testKey = k
	})
	return testKey
}

// clock is real time plus an offset tests move forward.
type clock struct {
	mu     sync.Mutex
	offset time.Duration
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return time.Now().Add(c.offset) }

func (c *clock) Add(d time.Duration) { c.mu.Lock(); c.offset += d; c.mu.Unlock() }

// env is one login function on its own fresh system database.
type env struct {
	t        *testing.T
	db       *sql.DB
	srv      *httptest.Server
	clock    *clock
	outbox   string
	verifier *auth.Verifier
	signer   *auth.Signer
	cost     int
}

func newEnv(t *testing.T) *env { return newEnvCost(t, bcrypt.MinCost) }

func newEnvCost(t *testing.T, cost int, opts ...func(*identity.Config)) *env {
	t.Helper()
	db, _ := sqldbtest.NewDatabase(t)
	if _, err := provisioning.MigrateSystem(context.Background(), db, logging.Discard()); err != nil {
		t.Fatal(err)
	}
	key := signingKey(t)
	e := &env{t: t, db: db, clock: &clock{}, outbox: filepath.Join(t.TempDir(), "outbox", "sms.jsonl"), cost: cost,
		signer: auth.NewSigner(key, nil), verifier: auth.NewVerifier([]*rsa.PublicKey{&key.PublicKey}, nil)}
	codes := sms.NewCodes(db, sms.NewOutbox(e.outbox, nil), []byte("test-code-key-0123456789abcdef!!"), sms.Options{Now: e.clock.Now})
	cfg := identity.Config{
		BcryptCost: cost, AccessTTL: 15 * time.Minute, RefreshTTL: 720 * time.Hour,
		BaseDomain: "saas.test", Now: e.clock.Now,
	}
	for _, o := range opts {
		o(&cfg)
	}
	svc, err := identity.New(db, e.signer, codes, cfg)
	if err != nil {
		t.Fatal(err)
	}
	log := logging.Discard()
	e.srv = httptest.NewServer(serverless.Handler(newHandler(svc, e.verifier, log), log, 0))
	t.Cleanup(e.srv.Close)
	return e
}

// reply is a decoded response envelope.
type reply = httpapitest.Reply

// call sends a JSON request as a browser behind the local gateway would:
// with a user agent and a forwarded client address.
func (e *env) call(method, path string, body any, token string) reply {
	e.t.Helper()
	return e.callAs("203.0.113.7", method, path, body, token)
}

// callFrom is call without a token from another client address.
func (e *env) callFrom(addr, method, path string, body any) reply {
	e.t.Helper()
	return e.callAs(addr, method, path, body, "")
}

func (e *env) callAs(addr, method, path string, body any, token string) reply {
	e.t.Helper()
	req, err := http.NewRequest(method, e.srv.URL+path, httpapitest.Body(body))
	if err != nil {
		e.t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("User-Agent", "login-test/1.0")
	req.Header.Set("X-Forwarded-For", addr)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := e.srv.Client().Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	return httpapitest.Parse(e.t, resp.StatusCode, resp.Header, raw)
}

// post is call with POST.
func (e *env) post(path string, body any) reply { e.t.Helper(); return e.call("POST", path, body, "") }

// want fails the test unless r has status and error code ("" = success).
var want = httpapitest.Want

// lastCode returns the latest code the outbox holds for phone.
func (e *env) lastCode(phone string) string {
	e.t.Helper()
	f, err := os.Open(e.outbox)
	if err != nil {
		e.t.Fatal(err)
	}
	defer f.Close()
	code := ""
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var m sms.OutboxMessage
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			e.t.Fatal(err)
		}
		if m.Phone == phone {
			code = m.Code
		}
	}
	if code == "" {
		e.t.Fatalf("no code for %s in the outbox", phone)
	}
	return code
}

// addUser inserts an active global user and returns its id.
func (e *env) addUser(phone, password string) int64 {
	e.t.Helper()
	h, err := bcrypt.GenerateFromPassword([]byte(password), e.cost)
	if err != nil {
		e.t.Fatal(err)
	}
	res, err := e.db.Exec(`INSERT INTO global_users (phone, password_hash, real_name) VALUES (?, ?, ?)`, phone, h, "User "+phone[len(phone)-4:])
	if err != nil {
		e.t.Fatal(err)
	}
	id, _ := res.LastInsertId()
	return id
}

// addAdmin inserts an active administrator and returns its id.
func (e *env) addAdmin(username, password, role string) int64 {
	e.t.Helper()
	h, _ := bcrypt.GenerateFromPassword([]byte(password), e.cost)
	res, err := e.db.Exec(`INSERT INTO admin_users (username, password_hash, role) VALUES (?, ?, ?)`, username, h, role)
	if err != nil {
		e.t.Fatal(err)
	}
	id, _ := res.LastInsertId()
	return id
}

// addTenant inserts a tenant row with status and returns its id.
func (e *env) addTenant(code, status string) int64 {
	e.t.Helper()
	res, err := e.db.Exec(`INSERT INTO tenants (tenant_code, tenant_name, subdomain, status) VALUES (?, ?, ?, ?)`,
		code, "Tenant "+code, code, status)
	if err != nil {
		e.t.Fatal(err)
	}
	id, _ := res.LastInsertId()
	return id
}

// addMember makes user a member of tenant with role.
func (e *env) addMember(user, tenant int64, code, role string) {
	e.t.Helper()
	if _, err := e.db.Exec(`INSERT INTO global_user_tenant_relations (global_user_id, tenant_id, tenant_code, role_in_tenant)
		VALUES (?, ?, ?, ?)`, user, tenant, code, role); err != nil {
		e.t.Fatal(err)
	}
}

// exec runs a statement on the test database.
func (e *env) exec(q string, args ...any) {
	e.t.Helper()
	if _, err := e.db.Exec(q, args...); err != nil {
		e.t.Fatal(err)
	}
}

// count returns the result of a COUNT(*) query.
func (e *env) count(q string, args ...any) int {
	e.t.Helper()
	var n int
	if err := e.db.QueryRow(q, args...).Scan(&n); err != nil {
		e.t.Fatal(err)
	}
	return n
}

// loginResult is the data of a user login.
type loginResult struct {
	GlobalUserID int64                 `json:"globalUserId"`
	Phone        string                `json:"phone"`
	RealName     string                `json:"realName"`
	Token        string                `json:"token"`
	RefreshToken string                `json:"refreshToken"`
	ExpiresIn    int                   `json:"expiresIn"`
	Tenants      []identity.Membership `json:"tenants"`
}

// login logs phone in and returns the session, failing the test otherwise.
func (e *env) login(phone, password string) loginResult {
	e.t.Helper()
	r := e.post("/api/auth/login", map[string]string{"phone": phone, "password": password})
	want(e.t, r, 200, "")
	return httpapitest.Data[loginResult](e.t, r)
}
