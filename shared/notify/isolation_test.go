package notify_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/unitenant/unitenant/shared/notify"
)

// arrivals records which event ids a receiver got, in order, and when.
type arrivals struct {
	mu  sync.Mutex
	ids []string
	at  []time.Time
}

func (a *arrivals) add(id string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.ids = append(a.ids, id)
	a.at = append(a.at, time.Now())
}

func (a *arrivals) get() ([]string, []time.Time) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return slices.Clone(a.ids), slices.Clone(a.at)
}

// TestSlowReceiverDelaysOnlyItsOwnEvents: a tenant's receiver that hangs
// until the delivery timeout holds up its own events only. Another tenant's
// healthy receiver gets every one of its events while the hanging one still
// waits for its first answer, each receiver gets its events in the order
// they were emitted, and the hanging one's events are retried after their
// backoff as before.
func TestSlowReceiverDelaysOnlyItsOwnEvents(t *testing.T) {
	t.Parallel()
	db, box := newSystem(t)
	clk := newClock()
	for i, code := range []string{"k001", "k002"} {
		if _, err := db.Exec("INSERT INTO tenants (id, tenant_code, tenant_name, subdomain) VALUES (?, ?, ?, ?)", i+1, code, code, code); err != nil {
			t.Fatal(err)
		}
	}
	var slowGot, healthyGot arrivals
	var hanging atomic.Bool
	hanging.Store(true)
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body) // then the server notices the client leaving
		slowGot.add(r.Header.Get(notify.HeaderEventID))
		if hanging.Load() {
			select {
			case <-r.Context().Done():
			case <-time.After(30 * time.Second):
			}
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(slow.Close)
	healthy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		healthyGot.add(r.Header.Get(notify.HeaderEventID))
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(healthy.Close)
	addEndpoint(t, db, box, slow.URL, "slow-secret-0123456789", 1)
	addEndpoint(t, db, box, healthy.URL, "healthy-secret-0123456789", 2)
	var evs []notify.Event
	for range 3 {
		evs = append(evs,
			notify.Event{Type: notify.TenantSuspended, TenantID: 1, TenantCode: "k001"},
			notify.Event{Type: notify.TenantSuspended, TenantID: 2, TenantCode: "k002"})
	}
	ids := emit(t, db, evs...)
	slowIDs := []string{ids[0], ids[2], ids[4]}
	healthyIDs := []string{ids[1], ids[3], ids[5]}
	d := newDispatcher(db, box, clk, "cron")

	if rep, want := deliver(t, d), (notify.Report{Events: 6, Dispatched: 3, Retrying: 3, Sent: 3, Errors: 3}); rep != want {
		t.Fatalf("with one receiver hanging: %+v, want %+v", rep, want)
	}
	got, slowAt := slowGot.get()
	if !slices.Equal(got, slowIDs) {
		t.Fatalf("hanging receiver got %q, want %q in this order", got, slowIDs)
	}
	got, healthyAt := healthyGot.get()
	if !slices.Equal(got, healthyIDs) {
		t.Fatalf("healthy receiver got %q, want %q in this order", got, healthyIDs)
	}
	// Waiting behind the hanging receiver, the healthy one would get its
	// first event a whole timeout after the hanging one got its first.
	for i, at := range healthyAt {
		if late := at.Sub(slowAt[0]); late > d.Timeout/2 {
			t.Errorf("healthy receiver got event %d %s after the hanging one got its first (timeout %s): it waited behind it", i+1, late, d.Timeout)
		}
	}
	statuses := eventStatuses(t, db)
	for _, id := range healthyIDs {
		if s := statuses[id]; s != "dispatched/1" {
			t.Errorf("healthy receiver's event %s: %s, want dispatched/1", id, s)
		}
	}
	for _, id := range slowIDs {
		if s := statuses[id]; s != "pending/1" {
			t.Errorf("hanging receiver's event %s: %s, want pending/1", id, s)
		}
	}

	hanging.Store(false)
	if rep := deliver(t, d); rep != (notify.Report{}) {
		t.Fatalf("before the backoff: %+v, want nothing due", rep)
	}
	clk.Advance(30 * time.Second)
	if rep, want := deliver(t, d), (notify.Report{Events: 3, Dispatched: 3, Sent: 3}); rep != want {
		t.Fatalf("after the backoff: %+v, want %+v", rep, want)
	}
	if got, _ := slowGot.get(); !slices.Equal(got[3:], slowIDs) {
		t.Fatalf("retries reached the receiver as %q, want %q in this order", got[3:], slowIDs)
	}
	if got, _ := healthyGot.get(); len(got) != 3 {
		t.Fatalf("healthy receiver got %d deliveries, want its 3 events once", len(got))
	}
}

// TestRunEndingMidBatchSettlesWhatFinished: when the run ends while a
// receiver's deliveries of a batch are under way, the ones that failed on
// their own before (a timeout) are its failures and spend their events'
// rounds; the one cut short and the ones never tried blame it for nothing
// and spend none. A run that always ends mid-batch still makes progress.
// (A regression guard: this held while events were delivered one by one.)
func TestRunEndingMidBatchSettlesWhatFinished(t *testing.T) {
	t.Parallel()
	db, box := newSystem(t)
	clk := newClock()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var requests atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body) // then the server notices the client leaving
		if requests.Add(1) == 2 {
			cancel() // the run ends during the second delivery
		}
		select {
		case <-r.Context().Done():
		case <-time.After(30 * time.Second):
		}
	}))
	t.Cleanup(srv.Close)
	id := addEndpoint(t, db, box, srv.URL, "hanging-secret-0123456789", 0)
	ids := emit(t, db, threeEvents()...)
	d := newDispatcher(db, box, clk, "cron")
	d.Timeout = 500 * time.Millisecond

	rep, err := d.Deliver(ctx, 10)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Retrying != 1 || rep.Errors != 1 || rep.Failed != 0 || rep.Dispatched != 0 {
		t.Errorf("run ended mid-batch: %+v, want 1 event retrying after 1 error", rep)
	}
	statuses := eventStatuses(t, db)
	for i, want := range []string{"pending/1", "pending/0", "pending/0"} {
		if got := statuses[ids[i]]; got != want {
			t.Errorf("event %d: %s, want %s", i+1, got, want)
		}
	}
	var failures, logged int
	if err := db.QueryRow("SELECT consecutive_failures FROM webhook_endpoints WHERE id = ?", id).Scan(&failures); err != nil {
		t.Fatal(err)
	}
	if err := db.QueryRow("SELECT COUNT(*) FROM notification_logs WHERE event_id = ? AND status = 'failed'", ids[0]).Scan(&logged); err != nil {
		t.Fatal(err)
	}
	if failures != 1 || logged != 1 || requests.Load() != 2 {
		t.Errorf("%d failures in a row, %d failed attempts logged, %d requests; want 1, 1, 2", failures, logged, requests.Load())
	}
}
