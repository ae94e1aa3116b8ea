package e2e_test

import (
	"bufio"
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/unitenant/unitenant/shared/aibridge"
	"github.com/unitenant/unitenant/shared/aiprovider/fakeprovider"
	"github.com/unitenant/unitenant/shared/auth"
	"github.com/unitenant/unitenant/shared/budget"
	"github.com/unitenant/unitenant/shared/provisioning"
	"github.com/unitenant/unitenant/shared/sqldb/sqldbtest"
	"github.com/unitenant/unitenant/tests/testenv"
)

// aiTenant is one active tenant of a system database, ready for the AI
// bridge: its row and placement (the bridge never opens the tenant's
// database, so none is created), an account, an admin member, and models
// served by a fake OpenAI provider in this process.
type aiTenant struct {
	sys      testenv.System
	provider *fakeprovider.Server
	id       int64
	code     string
	admin    int64 // global user id of the tenant's admin
	balance  budget.Amount
}

// newAITenant creates tenant code in sys with balance on its account.
func newAITenant(t *testing.T, sys testenv.System, code, balance string) *aiTenant {
	t.Helper()
	a := &aiTenant{sys: sys, code: code, balance: budget.MustParseAmount(balance),
		provider: fakeprovider.NewOpenAI(t, fakeprovider.Options{})}
	cluster, err := provisioning.EnsureCluster(context.Background(), sys.DB, sys.Box, "default", sqldbtest.ServerDSN(t), 0)
	if err != nil {
		t.Fatal(err)
	}
	a.id = a.insert(t, "INSERT INTO tenants (tenant_code, tenant_name, subdomain, status) VALUES (?, ?, ?, 'active')", code, "Kindergarten "+code, code)
	a.insert(t, "INSERT INTO tenant_databases (tenant_id, cluster_id, database_name, status) VALUES (?, ?, ?, 'ready')", a.id, cluster, sqldbtest.Name(t)+"_"+code)
	a.insert(t, "INSERT INTO tenant_accounts (tenant_id, balance) VALUES (?, ?)", a.id, balance)
	a.admin = a.insert(t, "INSERT INTO global_users (phone, password_hash, real_name) VALUES ('13800000001', 'unused', 'AI Admin')")
	a.insert(t, "INSERT INTO global_user_tenant_relations (global_user_id, tenant_id, tenant_code, role_in_tenant) VALUES (?, ?, ?, 'admin')", a.admin, a.id, code)
	return a
}

func (a *aiTenant) insert(t *testing.T, q string, args ...any) int64 {
	t.Helper()
	res, err := a.sys.DB.Exec(q, args...)
	if err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	id, _ := res.LastInsertId()
	return id
}

// enableModel registers chat model name on the fake provider, with its
// behaviour and prices per 1000 tokens, its API key sealed as the admin API
// seals it, and enables it for the tenant.
func (a *aiTenant) enableModel(t *testing.T, name string, m fakeprovider.Model, in, out string) {
	t.Helper()
	a.provider.SetModel(name, m)
	model := a.insert(t, `INSERT INTO ai_model_config (model_name, display_name, model_type, provider, endpoint_url, api_key_encrypted, input_price_per_1k, output_price_per_1k, status)
		VALUES (?, ?, 'text', 'openai', ?, ?, ?, ?, 'active')`,
		name, "Model "+name, a.provider.BaseURL(), a.sys.Box.Seal([]byte(a.provider.APIKey), aibridge.ModelKeyAAD(name)), in, out)
	a.insert(t, "INSERT INTO tenant_ai_model_configs (tenant_id, model_id, is_enabled, priority) VALUES (?, ?, 1, 10)", a.id, model)
}

// createKey makes a tenant API key through POST /api/v1/ai/keys at baseURL,
// as the tenant's admin with a tenant-scoped token, and returns its secret.
func (a *aiTenant) createKey(t *testing.T, baseURL string) string {
	t.Helper()
	tok, _, err := auth.NewSigner(a.sys.SigningKey, nil).Issue(auth.KindUser, a.admin, auth.AudienceTenant, a.code, "admin", 10*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	r := aiDo(t, http.DefaultClient, "POST", baseURL+"/api/v1/ai/keys", tok, `{"name":"e2e"}`)
	var body struct {
		Data struct {
			Key string `json:"key"`
		} `json:"data"`
	}
	if err := json.Unmarshal(r.body, &body); r.status != http.StatusCreated || err != nil || !strings.HasPrefix(body.Data.Key, aibridge.KeyPrefix) {
		t.Fatalf("create key: %d %s", r.status, r.body)
	}
	return body.Data.Key
}

// account reads the tenant's account.
func (a *aiTenant) account(t *testing.T) budget.Account {
	t.Helper()
	acc, err := budget.GetAccount(context.Background(), a.sys.DB, a.id)
	if err != nil {
		t.Fatal(err)
	}
	return acc
}

// aiReply is a raw HTTP answer.
type aiReply struct {
	status int
	header http.Header
	body   []byte
}

// openAIError reads the answer as OpenAI's error body.
func (r aiReply) openAIError() (code, typ string, ok bool) {
	var e struct {
		Error *struct {
			Code string `json:"code"`
			Type string `json:"type"`
		} `json:"error"`
	}
	if json.Unmarshal(r.body, &e) != nil || e.Error == nil {
		return "", "", false
	}
	return e.Error.Code, e.Error.Type, true
}

// aiSend makes one request; it may run on any goroutine.
func aiSend(c *http.Client, method, url, bearer, body string) (aiReply, error) {
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		return aiReply{}, err
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	resp, err := c.Do(req)
	if err != nil {
		return aiReply{}, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return aiReply{status: resp.StatusCode, header: resp.Header, body: b}, err
}

// aiDo is aiSend on the test's goroutine.
func aiDo(t *testing.T, c *http.Client, method, url, bearer, body string) aiReply {
	t.Helper()
	r, err := aiSend(c, method, url, bearer, body)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	return r
}

// startAIChat runs an ai-chat process in local mode and returns its address
// and process. With cleanExit, it must stop cleanly at the end of the test;
// a test that kills it passes false.
func startAIChat(t *testing.T, env []string, cleanExit bool) (addr string, cmd *exec.Cmd) {
	t.Helper()
	port := testenv.FreePort(t)
	addr = "127.0.0.1:" + port
	cmd = exec.Command(filepath.Join(binDir, "ai-chat"))
	cmd.Env = append(env, "PORT="+port, "BASE_DOMAIN=localhost")
	logs := &testenv.Buffer{}
	cmd.Stdout, cmd.Stderr = logs, logs
	testenv.Start(t, cmd, os.Interrupt, 10*time.Second, cleanExit, logs)
	testenv.WaitListening(t, addr, 5*time.Second)
	return addr, cmd
}

// TestAIRateLimitHoldsAcrossTwoAIChatProcesses: the tenant's 100 calls a
// minute are counted in the shared database, so two processes together let
// exactly 100 of 160 concurrent calls through (each counting alone would let
// all 160 through: 80 each), refuse the rest as OpenAI clients expect, and
// never reach the provider for a refused call.
func TestAIRateLimitHoldsAcrossTwoAIChatProcesses(t *testing.T) {
	t.Parallel()
	const calls, limit = 160, 100 // limit: AI_TENANT_RPM's default, the seed's 100 a minute
	sys := testenv.NewSystem(t)
	ten := newAITenant(t, sys, "r001", "100")
	// 500 × 0.01/1000 + 250 × 0.02/1000 = 0.01 a call.
	ten.enableModel(t, "gpt-mini", fakeprovider.Model{Reply: "hi", PromptTokens: 500, CompletionTokens: 250}, "0.01", "0.02")
	var urls []string
	for range 2 {
		addr, _ := startAIChat(t, sys.Env(), true)
		urls = append(urls, "http://"+addr)
	}
	key := ten.createKey(t, urls[0])

	// The window is the calendar minute (windows are aligned on the epoch):
	// every call must be counted in the same one.
	if left := time.Minute - time.Duration(time.Now().UnixMilli()%60_000)*time.Millisecond; left < 25*time.Second {
		time.Sleep(left + 100*time.Millisecond)
	}
	client := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: calls}}
	replies, errs := make([]aiReply, calls), make([]error, calls)
	var wg sync.WaitGroup
	gate := make(chan struct{})
	for i := range calls {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-gate
			replies[i], errs[i] = aiSend(client, "POST", urls[i%2]+"/v1/chat/completions", key,
				`{"model":"gpt-mini","messages":[{"role":"user","content":"hello"}]}`)
		}()
	}
	began := time.Now()
	close(gate)
	wg.Wait()
	t.Logf("%d calls answered in %s", calls, time.Since(began).Round(time.Millisecond))

	var ok, limited int
	for i, r := range replies {
		switch {
		case errs[i] != nil:
			t.Errorf("call %d: %v", i, errs[i])
		case r.status == http.StatusOK:
			ok++
		case r.status == http.StatusTooManyRequests:
			limited++
			code, typ, isOpenAI := r.openAIError()
			retry, err := strconv.Atoi(r.header.Get("Retry-After"))
			if !isOpenAI || code != "rate_limited" || typ != "rate_limit_error" || err != nil || retry < 1 || retry > 60 {
				t.Errorf("call %d: 429 with Retry-After %q and body %s, want code rate_limited in OpenAI's shape and 1..60 s",
					i, r.header.Get("Retry-After"), r.body)
			}
		default:
			t.Errorf("call %d: %d %s", i, r.status, r.body)
		}
	}
	if ok != limit || limited != calls-limit {
		t.Errorf("%d answered and %d refused, want %d and %d", ok, limited, limit, calls-limit)
	}
	if n := ten.provider.Calls("gpt-mini"); n != limit {
		t.Errorf("the provider got %d calls, want %d", n, limit)
	}
	// The refused calls were never metered; the answered ones all settled.
	var rows, succeeded int
	if err := sys.DB.QueryRow("SELECT COUNT(*), COALESCE(SUM(status = 'success'), 0) FROM ai_service_call_logs WHERE tenant_id = ?", ten.id).Scan(&rows, &succeeded); err != nil {
		t.Fatal(err)
	}
	if rows != limit || succeeded != limit {
		t.Errorf("%d call log rows (%d successful), want %d", rows, succeeded, limit)
	}
	// A call answers once its row is durable; its settlement lands a
	// moment later.
	want := ten.balance - limit*budget.MustParseAmount("0.01")
	var acc budget.Account
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if acc = ten.account(t); acc.Reserved == 0 {
			break
		}
	}
	if acc.Reserved != 0 || acc.Balance != want {
		t.Errorf("account %+v after the calls, want balance %s and nothing reserved", acc, want)
	}
}

// TestAIKillBetweenProviderAnswerAndSettle: ai-chat is killed after the
// provider answered and the attempt's log row was completed, while its
// settlement waits for the account's row lock (and its session dies with
// it). The client has its answer already: it is on record. Nothing is
// charged until the reservation expires; then usage-cron settles it at
// exactly the logged cost, once, however often it runs.
func TestAIKillBetweenProviderAnswerAndSettle(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	sys := testenv.NewSystem(t)
	ten := newAITenant(t, sys, "s001", "10")
	// 120 × 0.01/1000 + 250 × 0.03/1000 = 0.0087, a multiple of the account's step.
	ten.enableModel(t, "gpt-mini", fakeprovider.Model{Reply: "a slow answer", PromptTokens: 120, CompletionTokens: 250, Delay: time.Second}, "0.01", "0.03")
	const wantCost = "0.0087"
	addr, cmd := startAIChat(t, append(sys.Env(), "AI_RESERVATION_TTL=3s"), false)
	key := ten.createKey(t, "http://"+addr)

	type result struct {
		r   aiReply
		err error
	}
	answered := make(chan result, 1)
	go func() {
		r, err := aiSend(&http.Client{Timeout: 30 * time.Second}, "POST", "http://"+addr+"/v1/chat/completions", key,
			`{"model":"gpt-mini","messages":[{"role":"user","content":"take your time"}]}`)
		answered <- result{r, err}
	}()

	// The provider is answering: the reservation is made.
	var (
		requestID string
		held      string
		expires   time.Time
	)
	waitFor(t, "the call's reservation", 5*time.Second, func() bool {
		err := sys.DB.QueryRow("SELECT request_id, amount, expires_at FROM ai_budget_reservations WHERE tenant_id = ? AND status = 'reserved'", ten.id).
			Scan(&requestID, &held, &expires)
		return err == nil
	})
	reserved := budget.MustParseAmount(held)

	// Hold the account's row so that the process's Settle must wait.
	tx, err := sys.DB.BeginTx(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback()
	var locked string
	if err := tx.QueryRowContext(ctx, "SELECT balance FROM tenant_accounts WHERE tenant_id = ? FOR UPDATE", ten.id).Scan(&locked); err != nil {
		t.Fatal(err)
	}
	if s := reservationStatus(t, sys.DB, requestID); s != "reserved" {
		t.Fatalf("reservation %s before the lock was taken, want reserved (the provider answered too fast)", s)
	}

	// The provider answered and the attempt is on record...
	var status, cost string
	waitFor(t, "the call log row to complete", 10*time.Second, func() bool {
		err := sys.DB.QueryRow("SELECT status, cost FROM ai_service_call_logs WHERE request_id = ? AND attempt = 1", requestID).Scan(&status, &cost)
		return err == nil && status != aibridge.LogPending
	})
	if status != aibridge.LogSuccess || budget.MustParseAmount(cost) != budget.MustParseAmount(wantCost) {
		t.Fatalf("call log row: status %s, cost %s; want success costing %s", status, cost, wantCost)
	}
	// ...and Settle is waiting for the account.
	mc, err := mysql.ParseDSN(sys.DSN)
	if err != nil {
		t.Fatal(err)
	}
	var session int64
	waitFor(t, "Settle to wait for the account's lock", 10*time.Second, func() bool {
		err := sys.DB.QueryRow("SELECT ID FROM information_schema.PROCESSLIST WHERE DB = ? AND INFO LIKE 'UPDATE ai_budget_reservations r JOIN tenant_accounts a%'", mc.DBName).Scan(&session)
		return err == nil
	})
	// The answer does not wait for the settlement: its row is durable.
	select {
	case res := <-answered:
		if res.err != nil || res.r.status != http.StatusOK {
			t.Fatalf("the client's answer while the settlement waits: %+v", res)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the client waits for the settlement")
	}

	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the killed process to stop listening", 5*time.Second, func() bool {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			c.Close()
		}
		return err != nil
	})
	// The settlement statement was already on the server, waiting: the
	// server only notices the dead client when it writes to it, so it would
	// settle (once, correctly) when the lock is released. End the dead
	// process's session as a server noticing its closed socket would: the
	// statement never takes effect, as if the kill had come before it.
	if _, err := sys.DB.Exec("KILL CONNECTION ?", session); err != nil {
		t.Fatal(err)
	}
	if err := tx.Rollback(); err != nil {
		t.Fatal(err)
	}

	// Nothing was settled.
	if s := reservationStatus(t, sys.DB, requestID); s != "reserved" {
		t.Fatalf("reservation %s after the kill, want reserved", s)
	}
	if acc := ten.account(t); acc.Balance != ten.balance || acc.Reserved != reserved || reserved <= 0 {
		t.Fatalf("account %+v after the kill, want balance %s and %s (> 0) reserved", acc, ten.balance, reserved)
	}

	// Once the reservation has expired, usage-cron settles it at the logged cost.
	time.Sleep(time.Until(expires) + 300*time.Millisecond)
	want := ten.balance - budget.MustParseAmount(wantCost)
	check := func(run int, settledByRun int, charged string) {
		t.Helper()
		rep := runUsageCron(t, sys.Env())
		if rep.Reconcile.Settled != settledByRun || budget.MustParseAmount(rep.Reconcile.Charged) != budget.MustParseAmount(charged) {
			t.Errorf("usage-cron run %d reconciled %+v, want %d settled charging %s", run, rep.Reconcile, settledByRun, charged)
		}
		var (
			s       string
			settled sql.NullString
		)
		if err := sys.DB.QueryRow("SELECT status, settled_amount FROM ai_budget_reservations WHERE request_id = ?", requestID).Scan(&s, &settled); err != nil {
			t.Fatal(err)
		}
		if s != "settled" || !settled.Valid || budget.MustParseAmount(settled.String) != budget.MustParseAmount(cost) {
			t.Errorf("after run %d the reservation is %s at %v, want settled at the logged %s", run, s, settled, cost)
		}
		if acc := ten.account(t); acc.Balance != want || acc.Reserved != 0 {
			t.Errorf("after run %d the account is %+v, want balance %s and nothing reserved", run, acc, want)
		}
		var (
			calls int
			total string
		)
		err := sys.DB.QueryRow("SELECT s.total_calls, s.total_cost FROM tenant_ai_usage_summary s JOIN ai_service_call_logs l ON l.tenant_id = s.tenant_id AND s.`date` = DATE(l.created_at) WHERE l.request_id = ?",
			requestID).Scan(&calls, &total)
		if err != nil || calls != 1 || budget.MustParseAmount(total) != budget.MustParseAmount(cost) {
			t.Errorf("after run %d the day's usage summary has %d calls costing %s (%v), want 1 costing %s", run, calls, total, err, cost)
		}
	}
	check(1, 1, wantCost)
	check(2, 0, "0") // no double count
}

// cronReport is what usage-cron -once prints.
type cronReport struct {
	Reconcile struct {
		Settled int    `json:"settled"`
		Expired int    `json:"expired"`
		Skipped int    `json:"skipped"`
		Charged string `json:"charged"`
	} `json:"reconcile"`
}

// runUsageCron runs the usage-cron job once, as the local gateway's
// schedule or an operator does, and returns its report.
func runUsageCron(t *testing.T, env []string) cronReport {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(binDir, "usage-cron"), "-once")
	// It measures tenants' storage too: in a store of the test's own.
	cmd.Env = append(env, "STORAGE_BACKEND=local", "LOCAL_STORAGE_DIR="+t.TempDir(), "LOCAL_STORAGE_SECRET="+strings.Repeat("u", 32))
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("usage-cron -once: %v\n%s%s", err, stdout.String(), stderr.String())
	}
	// The report is the last line: logs (warnings only here) come before it.
	lines := strings.Split(strings.TrimSpace(stdout.String()), "\n")
	var rep cronReport
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &rep); err != nil {
		t.Fatalf("usage-cron report %q: %v", stdout.String(), err)
	}
	return rep
}

func reservationStatus(t *testing.T, db *sql.DB, requestID string) string {
	t.Helper()
	var s string
	if err := db.QueryRow("SELECT status FROM ai_budget_reservations WHERE request_id = ?", requestID).Scan(&s); err != nil {
		t.Fatal(err)
	}
	return s
}

// TestAIBridgeThroughTheGateway: the AI bridge's routes in template.yaml
// reach ai-chat behind the local gateway, streams included, unbuffered.
func TestAIBridgeThroughTheGateway(t *testing.T) {
	t.Parallel()
	s := start(t)
	ten := newAITenant(t, s.sys, "g001", "10")
	const reply = "one two three four five six"
	ten.enableModel(t, "gpt-mini", fakeprovider.Model{Reply: reply, PromptTokens: 4, CompletionTokens: 6, ChunkDelay: 150 * time.Millisecond}, "0.001", "0.002")
	key := ten.createKey(t, s.URL)

	r := aiDo(t, http.DefaultClient, "GET", s.URL+"/v1/models", key, "")
	var models struct {
		Object string `json:"object"`
		Data   []struct {
			ID     string `json:"id"`
			Object string `json:"object"`
		} `json:"data"`
	}
	if err := json.Unmarshal(r.body, &models); r.status != 200 || err != nil || models.Object != "list" || len(models.Data) != 1 ||
		models.Data[0].ID != "gpt-mini" || models.Data[0].Object != "model" {
		t.Fatalf("GET /v1/models: %d %s", r.status, r.body)
	}

	req, _ := http.NewRequest("POST", s.URL+"/v1/chat/completions",
		strings.NewReader(`{"model":"gpt-mini","stream":true,"messages":[{"role":"user","content":"count to six"}]}`))
	req.Header.Set("Authorization", "Bearer "+key)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "text/event-stream" {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("stream: %d %s %s", resp.StatusCode, resp.Header.Get("Content-Type"), b)
	}
	var (
		events []string
		first  time.Time
		text   strings.Builder
	)
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		d, ok := strings.CutPrefix(sc.Text(), "data: ")
		if !ok {
			continue
		}
		if first.IsZero() {
			first = time.Now()
		}
		events = append(events, d)
		var c struct {
			Choices []struct {
				Delta struct {
					Content string `json:"content"`
				} `json:"delta"`
			} `json:"choices"`
		}
		if d != "[DONE]" && json.Unmarshal([]byte(d), &c) == nil {
			for _, ch := range c.Choices {
				text.WriteString(ch.Delta.Content)
			}
		}
	}
	last := time.Now()
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if len(events) < 2 || events[len(events)-1] != "[DONE]" || strings.TrimSpace(text.String()) != reply {
		t.Fatalf("stream events %q, want the reply %q in chunks ending with [DONE]", events, reply)
	}
	// Six chunks 150 ms apart: relayed as they come, the first arrives long
	// before the end; a buffering hop would deliver them all at once.
	if gap := last.Sub(first); gap < 300*time.Millisecond {
		t.Errorf("the stream's events arrived within %s of each other: buffered on the way", gap)
	}
	var streamed, succeeded int
	if err := s.sys.DB.QueryRow("SELECT COUNT(*), COALESCE(SUM(status = 'success'), 0) FROM ai_service_call_logs WHERE tenant_id = ? AND streamed = 1", ten.id).Scan(&streamed, &succeeded); err != nil {
		t.Fatal(err)
	}
	if streamed != 1 || succeeded != 1 {
		t.Errorf("%d streamed call log rows (%d successful), want 1", streamed, succeeded)
	}

	r = aiDo(t, http.DefaultClient, "POST", s.URL+"/v1/chat/completions", "", `{"model":"gpt-mini","messages":[{"role":"user","content":"hi"}]}`)
	if code, typ, ok := r.openAIError(); r.status != 401 || !ok || code != "missing_token" || typ != "authentication_error" || r.header.Get("WWW-Authenticate") == "" {
		t.Fatalf("no credentials: %d %s (WWW-Authenticate %q), want 401 missing_token in OpenAI's error shape",
			r.status, r.body, r.header.Get("WWW-Authenticate"))
	}
	if n := ten.provider.Calls("gpt-mini"); n != 1 {
		t.Errorf("the provider got %d calls, want 1 (the stream)", n)
	}
}
