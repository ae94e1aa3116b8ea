package notify_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/unitenant/unitenant/shared/notify"
)

// TestRunEndingMidDeliveryBlamesNoReceiver: the run's own end (the
// function's deadline, a shutdown) cutting a delivery short says nothing of
// the receiver. The attempt is not logged as the receiver's failure, does
// not count towards disabling it, and does not use up one of the event's
// rounds: an event in its last round stays pending and reaches the receiver
// on the next run, instead of going dead with "no response within 5s".
func TestRunEndingMidDeliveryBlamesNoReceiver(t *testing.T) {
	t.Parallel()
	db, box := newSystem(t)
	clk := newClock()
	var slow atomic.Bool
	slow.Store(true)
	var got atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body) // then the server notices the client leaving
		if slow.Load() {
			select { // a receiver taking its time, well within the dispatcher's timeout
			case <-r.Context().Done():
			case <-time.After(5 * time.Second):
			}
			return
		}
		got.Add(1)
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(srv.Close)
	id := addEndpoint(t, db, box, srv.URL, "deadline-secret-0123456789", 0)
	ids := emit(t, db, threeEvents()[0])
	d := newDispatcher(db, box, clk, "cron")
	d.MaxAttempts, d.DisableAfter, d.Timeout = 1, 1, 5*time.Second

	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	if _, err := d.Deliver(ctx, 10); err != nil {
		t.Fatal(err)
	}
	if got, want := eventStatuses(t, db)[ids[0]], "pending/0"; got != want {
		t.Errorf("event after a run cut short: %s, want %s", got, want)
	}
	var status string
	var failures, logged int
	if err := db.QueryRow("SELECT status, consecutive_failures FROM webhook_endpoints WHERE id = ?", id).Scan(&status, &failures); err != nil {
		t.Fatal(err)
	}
	if err := db.QueryRow("SELECT COUNT(*) FROM notification_logs WHERE status <> 'sent'").Scan(&logged); err != nil {
		t.Fatal(err)
	}
	if status != "active" || failures != 0 || logged != 0 {
		t.Errorf("endpoint %s with %d failures, %d failed attempts logged; want active, 0, 0", status, failures, logged)
	}

	slow.Store(false)
	rep := deliver(t, d)
	if rep.Sent != 1 || got.Load() != 1 || eventStatuses(t, db)[ids[0]] != "dispatched/1" {
		t.Fatalf("next run: report %+v, %d received, event %s; want it delivered", rep, got.Load(), eventStatuses(t, db)[ids[0]])
	}
}

// TestEventWithNothingToSendSettles: an event no endpoint wants (none
// subscribed to it, or every one already has it) is settled by the run that
// leases it. Renewing its lease then leaves the row as the lease left it
// when the clock has not moved a millisecond since (MySQL reports no row
// changed), which must not read as the lease lost to another dispatcher:
// that left the event leased, counted lost and leased again until the run
// ran out of turns, never settled.
func TestEventWithNothingToSendSettles(t *testing.T) {
	t.Parallel()
	db, box := newSystem(t)
	clk := newClock()
	r := newReceiver(t, notify.NewSecret(), clk.Now)
	addEndpoint(t, db, box, r.URL, r.secret, 0, notify.TenantPurged)
	ids := emit(t, db, threeEvents()[0])
	rep := deliver(t, newDispatcher(db, box, clk, "cron"))
	if rep.Lost != 0 || rep.Dispatched != 1 || eventStatuses(t, db)[ids[0]] != "dispatched/0" {
		t.Fatalf("report %+v, event %s; want it dispatched, nothing lost", rep, eventStatuses(t, db)[ids[0]])
	}
}
