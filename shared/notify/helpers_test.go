package notify_test

import (
	"context"
	"database/sql"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/unitenant/unitenant/shared/logging"
	"github.com/unitenant/unitenant/shared/notify"
	"github.com/unitenant/unitenant/shared/secretbox"
	"github.com/unitenant/unitenant/shared/sqldb"
	"github.com/unitenant/unitenant/tests/testenv"
)

// newSystem returns a migrated system database of the test's own and a box
// with a random master key.
func newSystem(t *testing.T) (*sql.DB, *secretbox.Box) {
	t.Helper()
	sys := testenv.NewSystem(t)
	return sys.DB, sys.Box
}

// fixture is a system database, an injected clock, and one receiver
// registered as a platform-wide endpoint for every event.
type fixture struct {
	db  *sql.DB
	box *secretbox.Box
	clk *clock
	r   *receiver
}

func newFixture(t *testing.T) fixture {
	t.Helper()
	f := fixture{clk: newClock()}
	f.db, f.box = newSystem(t)
	f.r = newReceiver(t, notify.NewSecret(), f.clk.Now)
	addEndpoint(t, f.db, f.box, f.r.URL, f.r.secret, 0)
	return f
}

// clock is the injected clock tests move by hand.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Now().UTC().Truncate(time.Second)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// delivery is one request a receiver accepted.
type delivery struct {
	Header http.Header
	Body   []byte
}

// receiver is a webhook integrator's server: it checks every request's
// signature with VerifySignature (on the dispatcher's clock) and records the
// deliveries it accepts. While down it answers 503 and records nothing.
type receiver struct {
	*httptest.Server
	t      *testing.T
	secret string
	clock  func() time.Time
	delay  time.Duration
	down   atomic.Bool
	mu     sync.Mutex
	got    []delivery
	counts map[string]int // event id -> deliveries
}

func newReceiver(t *testing.T, secret string, clock func() time.Time) *receiver {
	r := &receiver{t: t, secret: secret, clock: clock, counts: map[string]int{}}
	r.Server = httptest.NewServer(http.HandlerFunc(r.serve))
	t.Cleanup(r.Close)
	return r
}

func (r *receiver) serve(w http.ResponseWriter, req *http.Request) {
	time.Sleep(r.delay)
	if r.down.Load() {
		http.Error(w, "upstream maintenance", http.StatusServiceUnavailable)
		return
	}
	body, _ := io.ReadAll(req.Body)
	if err := notify.VerifySignature([]byte(r.secret), req.Header.Get(notify.HeaderTimestamp),
		req.Header.Get(notify.HeaderSignature), body, r.clock(), notify.DefaultTolerance); err != nil {
		r.t.Errorf("receiver: %v", err)
		http.Error(w, "bad signature", http.StatusUnauthorized)
		return
	}
	var p notify.Payload
	if err := json.Unmarshal(body, &p); err != nil {
		r.t.Errorf("receiver: body %q: %v", body, err)
	}
	if req.Method != http.MethodPost || req.Header.Get("Content-Type") != "application/json" ||
		req.Header.Get(notify.HeaderEvent) != p.Type || req.Header.Get(notify.HeaderEventID) != p.ID {
		r.t.Errorf("receiver: %s with headers %v for payload %+v", req.Method, req.Header, p)
	}
	r.mu.Lock()
	r.got = append(r.got, delivery{Header: req.Header.Clone(), Body: body})
	r.counts[p.ID]++
	r.mu.Unlock()
	_, _ = io.WriteString(w, `{"ok":true}`)
}

// deliveries returns how many times each event id arrived.
func (r *receiver) deliveries() map[string]int {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make(map[string]int, len(r.counts))
	for k, v := range r.counts {
		out[k] = v
	}
	return out
}

// payloads returns what arrived, decoded.
func (r *receiver) payloads() []notify.Payload {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []notify.Payload
	for _, d := range r.got {
		var p notify.Payload
		if err := json.Unmarshal(d.Body, &p); err == nil {
			out = append(out, p)
		}
	}
	return out
}

// addEndpoint registers url for every event (or events) with secret.
func addEndpoint(t *testing.T, db *sql.DB, box *secretbox.Box, url, secret string, tenantID int64, events ...string) int64 {
	t.Helper()
	id, err := notify.AddEndpoint(context.Background(), db, box, notify.Endpoint{TenantID: tenantID, Name: "test", URL: url, Events: events, Secret: secret})
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// emit writes evs in one committed transaction and returns their ids.
func emit(t *testing.T, db *sql.DB, evs ...notify.Event) []string {
	t.Helper()
	var ids []string
	err := sqldb.InTx(context.Background(), db, func(tx *sql.Tx) error {
		for _, ev := range evs {
			id, err := notify.Emit(context.Background(), tx, ev)
			if err != nil {
				return err
			}
			ids = append(ids, id)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return ids
}

// threeEvents is a suspension, a resumption and a deletion request of k001.
func threeEvents() []notify.Event {
	return []notify.Event{
		{Type: notify.TenantSuspended, TenantID: 1, TenantCode: "k001", Data: map[string]string{"reason": "unpaid"}},
		{Type: notify.TenantResumed, TenantID: 1, TenantCode: "k001"},
		{Type: notify.TenantDeletionRequested, TenantID: 1, TenantCode: "k001"},
	}
}

func newDispatcher(db *sql.DB, box *secretbox.Box, clk *clock, owner string) *notify.Dispatcher {
	return &notify.Dispatcher{DB: db, Box: box, Client: notify.NewHTTPClient(true), Now: clk.Now, Owner: owner,
		Timeout: 2 * time.Second, Log: logging.Discard()}
}

func deliver(t *testing.T, d *notify.Dispatcher) notify.Report {
	t.Helper()
	rep, err := d.Deliver(context.Background(), 100)
	if err != nil {
		t.Fatal(err)
	}
	return rep
}

// eventStatuses returns status and attempts of every event, by event id.
func eventStatuses(t *testing.T, db *sql.DB) map[string]string {
	t.Helper()
	rows, err := db.Query("SELECT event_id, CONCAT(status, '/', attempts) FROM webhook_events")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	out := map[string]string{}
	for rows.Next() {
		var id, s string
		if err := rows.Scan(&id, &s); err != nil {
			t.Fatal(err)
		}
		out[id] = s
	}
	return out
}
