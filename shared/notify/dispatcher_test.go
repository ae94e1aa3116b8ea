package notify_test

import (
	"context"
	"database/sql"
	"errors"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/unitenant/unitenant/shared/notify"
	"github.com/unitenant/unitenant/shared/sqldb"
)

// A receiver verifying signatures gets every emitted event, once, signed;
// a tampered body, another secret or an old timestamp fail verification.
func TestWebhookReceiverVerifiesSignatures(t *testing.T) {
	t.Parallel()
	db, box := newSystem(t)
	clk := newClock()
	secret := notify.NewSecret()
	r := newReceiver(t, secret, clk.Now)
	addEndpoint(t, db, box, r.URL+"/hooks?token=abc", secret, 0)
	ids := emit(t, db, threeEvents()...)

	rep := deliver(t, newDispatcher(db, box, clk, "a"))
	if want := (notify.Report{Events: 3, Dispatched: 3, Sent: 3}); rep != want {
		t.Fatalf("report %+v, want %+v", rep, want)
	}
	got := r.deliveries()
	for _, id := range ids {
		if got[id] != 1 {
			t.Errorf("event %s delivered %d times, want 1", id, got[id])
		}
	}
	for id, s := range eventStatuses(t, db) {
		if s != "dispatched/1" {
			t.Errorf("event %s: %s, want dispatched/1", id, s)
		}
	}
	var sent int
	var target string
	if err := db.QueryRow(`SELECT COUNT(*), MAX(target) FROM notification_logs
		WHERE channel = 'webhook' AND status = 'sent' AND http_status = 200 AND response_excerpt = '{"ok":true}'`).Scan(&sent, &target); err != nil || sent != 3 {
		t.Fatalf("sent log rows %d (%v), want 3", sent, err)
	}
	if target != r.URL+"/hooks?…" {
		t.Errorf("logged target %q: the query string (a token) must not be logged", target)
	}
	if rep := deliver(t, newDispatcher(db, box, clk, "a")); rep != (notify.Report{}) {
		t.Fatalf("second run %+v, want nothing to do", rep)
	}

	d := r.got[0]
	ts, sig := d.Header.Get(notify.HeaderTimestamp), d.Header.Get(notify.HeaderSignature)
	tampered := append([]byte{}, d.Body...)
	tampered[len(tampered)-2] ^= 1
	signedAt, _ := strconv.ParseInt(ts, 10, 64)
	for _, c := range []struct {
		name   string
		secret string
		body   []byte
		now    time.Time
		want   error
	}{
		{"OK", secret, d.Body, clk.Now(), nil},
		{"TamperedBody", secret, tampered, clk.Now(), notify.ErrBadSignature},
		{"WrongSecret", notify.NewSecret(), d.Body, clk.Now(), notify.ErrBadSignature},
		{"Replayed", secret, d.Body, time.Unix(signedAt, 0).Add(notify.DefaultTolerance + time.Second), notify.ErrBadTimestamp},
	} {
		t.Run(c.name, func(t *testing.T) {
			err := notify.VerifySignature([]byte(c.secret), ts, sig, c.body, c.now, notify.DefaultTolerance)
			if !errors.Is(err, c.want) {
				t.Fatalf("VerifySignature = %v, want %v", err, c.want)
			}
		})
	}
}

// A receiver down for a while still gets every event afterwards, exactly
// once; the receiver that was up all along is not sent anything again.
func TestReceiverDownGetsEveryEventAfterwards(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db, box := newSystem(t)
	clk := newClock()
	up := newReceiver(t, "up-secret-0123456789", clk.Now)
	down := newReceiver(t, "down-secret-0123456789", clk.Now)
	down.down.Store(true)
	addEndpoint(t, db, box, up.URL, up.secret, 0)
	downID := addEndpoint(t, db, box, down.URL, down.secret, 0)
	ids := emit(t, db, threeEvents()...)
	d := newDispatcher(db, box, clk, "cron")

	if rep := deliver(t, d); rep != (notify.Report{Events: 3, Retrying: 3, Sent: 3, Errors: 3}) {
		t.Fatalf("while down: %+v", rep)
	}
	if rep := deliver(t, d); rep != (notify.Report{}) {
		t.Fatalf("before the backoff: %+v, want nothing due", rep)
	}
	clk.Advance(30 * time.Second)
	if rep := deliver(t, d); rep != (notify.Report{Events: 3, Retrying: 3, Errors: 3}) {
		t.Fatalf("still down after 30s: %+v (the up endpoint must not get them again)", rep)
	}
	// Attempts are logged with the 503 and a growing backoff.
	rows, err := db.QueryContext(ctx, `SELECT attempt, status, http_status, response_excerpt, TIMESTAMPDIFF(SECOND, ?, next_attempt_at)
		FROM notification_logs WHERE endpoint_id = ? AND event_id = ? ORDER BY attempt`, clk.Now(), downID, ids[0])
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for rows.Next() {
		var attempt, status, excerpt string
		var code, wait int
		if err := rows.Scan(&attempt, &status, &code, &excerpt, &wait); err != nil {
			t.Fatal(err)
		}
		got = append(got, attempt+" "+status+" "+strconv.Itoa(code)+" "+excerpt[:len("upstream")]+" "+strconv.Itoa(wait))
	}
	rows.Close()
	if want := []string{"1 failed 503 upstream 0", "2 failed 503 upstream 60"}; len(got) != 2 || got[0] != want[0] || got[1] != want[1] {
		t.Fatalf("attempts of the down endpoint %q, want %q", got, want)
	}

	down.down.Store(false)
	clk.Advance(time.Minute)
	if rep := deliver(t, d); rep != (notify.Report{Events: 3, Dispatched: 3, Sent: 3}) {
		t.Fatalf("back up: %+v", rep)
	}
	for _, r := range []*receiver{up, down} {
		got := r.deliveries()
		for _, id := range ids {
			if got[id] != 1 {
				t.Errorf("%s got event %s %d times, want 1", r.URL, id, got[id])
			}
		}
	}
	for id, s := range eventStatuses(t, db) {
		if s != "dispatched/3" {
			t.Errorf("event %s: %s, want dispatched/3", id, s)
		}
	}
	var failures int
	if err := db.QueryRow("SELECT consecutive_failures FROM webhook_endpoints WHERE id = ?", downID).Scan(&failures); err != nil || failures != 0 {
		t.Errorf("consecutive failures after a success %d (%v), want 0", failures, err)
	}
}

// Dispatchers running at once never send one event twice to an endpoint.
func TestConcurrentDispatchersNeverSendTwice(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	db, box, clk, r := f.db, f.box, f.clk, f.r
	r.delay = 5 * time.Millisecond // keeps the dispatchers overlapping
	var evs []notify.Event
	for i := range 40 {
		evs = append(evs, notify.Event{Type: notify.TenantCreated, TenantID: int64(i + 1), TenantCode: "k" + strconv.Itoa(i)})
	}
	ids := emit(t, db, evs...)

	var mu sync.Mutex
	var total notify.Report
	var wg sync.WaitGroup
	for i := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rep, err := newDispatcher(db, box, clk, "d"+strconv.Itoa(i)).Deliver(context.Background(), 100)
			if err != nil {
				t.Error(err)
			}
			mu.Lock()
			total.Events += rep.Events
			total.Sent += rep.Sent
			mu.Unlock()
		}()
	}
	wg.Wait()
	got := r.deliveries()
	for _, id := range ids {
		if got[id] != 1 {
			t.Errorf("event %s delivered %d times, want 1", id, got[id])
		}
	}
	if total.Events != 40 || total.Sent != 40 {
		t.Errorf("dispatchers processed %d events, sent %d; want 40 and 40", total.Events, total.Sent)
	}
}

// A dispatcher whose lease ran out (it died) leaves the event to the next
// one, which delivers it; a live lease keeps other dispatchers off it.
func TestExpiredLeaseIsTakenOver(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	db, box, clk, r := f.db, f.box, f.clk, f.r
	ids := emit(t, db, threeEvents()[0])
	// A dispatcher that leased the event and died.
	if _, err := db.Exec("UPDATE webhook_events SET lease_owner = 'dead/1', lease_expires_at = ?", clk.Now().Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	d := newDispatcher(db, box, clk, "next")
	if rep := deliver(t, d); rep != (notify.Report{}) {
		t.Fatalf("under a live lease: %+v, want nothing", rep)
	}
	clk.Advance(time.Minute)
	if rep := deliver(t, d); rep.Dispatched != 1 || r.deliveries()[ids[0]] != 1 {
		t.Fatalf("after the lease expired: %+v, deliveries %v", rep, r.deliveries())
	}
}

// After MaxAttempts rounds the event is failed (dead) and never tried again.
func TestEventDeadAfterMaxAttempts(t *testing.T) {
	t.Parallel()
	db, box := newSystem(t)
	clk := newClock()
	// A receiver that is gone: nothing listens on its port.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	gone := "http://" + l.Addr().String() + "/hook"
	l.Close()
	id := addEndpoint(t, db, box, gone, "gone-secret-0123456789", 0)
	emit(t, db, threeEvents()[0])
	d := newDispatcher(db, box, clk, "cron")
	d.MaxAttempts = 3
	var failed int
	for range 5 {
		rep := deliver(t, d)
		failed += rep.Failed
		clk.Advance(2 * time.Hour)
	}
	if failed != 1 {
		t.Fatalf("failed %d events, want 1", failed)
	}
	for _, s := range eventStatuses(t, db) {
		if s != "failed/3" {
			t.Fatalf("event %s, want failed/3", s)
		}
	}
	var statuses string
	if err := db.QueryRow(`SELECT GROUP_CONCAT(CONCAT(attempt, ':', status) ORDER BY attempt) FROM notification_logs
		WHERE endpoint_id = ? AND error_message IS NOT NULL`, id).Scan(&statuses); err != nil {
		t.Fatal(err)
	}
	if statuses != "1:failed,2:failed,3:dead" {
		t.Fatalf("attempts %s, want 1:failed,2:failed,3:dead", statuses)
	}
}

// An event emitted in a transaction that rolls back does not exist, and
// nothing is sent for it.
func TestEmitRolledBackLeavesNoEvent(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	f := newFixture(t)
	db, box, clk, r := f.db, f.box, f.clk, f.r
	errAbort := errors.New("the change failed")
	err := sqldb.InTx(ctx, db, func(tx *sql.Tx) error {
		if _, err := notify.Emit(ctx, tx, threeEvents()[0]); err != nil {
			return err
		}
		return errAbort
	})
	if !errors.Is(err, errAbort) {
		t.Fatal(err)
	}
	if n := len(eventStatuses(t, db)); n != 0 {
		t.Fatalf("%d events after a rollback, want 0", n)
	}
	if rep := deliver(t, newDispatcher(db, box, clk, "cron")); rep != (notify.Report{}) || len(r.deliveries()) != 0 {
		t.Fatalf("report %+v, deliveries %v; want none", rep, r.deliveries())
	}
}

// Tenant endpoints get only their tenant's events, subscriptions filter by
// type, and disabled endpoints get nothing.
func TestEndpointsGetWhatTheySubscribedTo(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db, box := newSystem(t)
	clk := newClock()
	for i, code := range []string{"k001", "k002"} {
		if _, err := db.Exec("INSERT INTO tenants (id, tenant_code, tenant_name, subdomain) VALUES (?, ?, ?, ?)", i+1, code, code, code); err != nil {
			t.Fatal(err)
		}
	}
	recv := map[string]*receiver{}
	for _, name := range []string{"platform", "tenant1", "tenant2", "purges", "disabled"} {
		recv[name] = newReceiver(t, name+"-secret-0123456789", clk.Now)
	}
	addEndpoint(t, db, box, recv["platform"].URL, recv["platform"].secret, 0)
	addEndpoint(t, db, box, recv["tenant1"].URL, recv["tenant1"].secret, 1)
	addEndpoint(t, db, box, recv["tenant2"].URL, recv["tenant2"].secret, 2, notify.TenantSuspended)
	addEndpoint(t, db, box, recv["purges"].URL, recv["purges"].secret, 0, notify.TenantPurged)
	off := addEndpoint(t, db, box, recv["disabled"].URL, recv["disabled"].secret, 0)
	if err := notify.SetEndpointStatus(ctx, db, off, notify.EndpointDisabled); err != nil {
		t.Fatal(err)
	}
	ids := emit(t, db,
		notify.Event{Type: notify.TenantCreated, TenantID: 1, TenantCode: "k001"},
		notify.Event{Type: notify.TenantSuspended, TenantID: 2, TenantCode: "k002"},
		notify.Event{Type: notify.TenantPurged, TenantID: 1, TenantCode: "k001"},
		notify.Event{Type: notify.TenantCreated, TenantID: 2, TenantCode: "k002"},
	)
	if rep := deliver(t, newDispatcher(db, box, clk, "cron")); rep.Dispatched != 4 || rep.Sent != 4+2+1+1 {
		t.Fatalf("report %+v", rep)
	}
	want := map[string][]string{
		"platform": ids, "tenant1": {ids[0], ids[2]}, "tenant2": {ids[1]}, "purges": {ids[2]}, "disabled": nil,
	}
	for name, evs := range want {
		got := recv[name].deliveries()
		if len(got) != len(evs) {
			t.Errorf("%s got %v, want %v", name, got, evs)
		}
		for _, id := range evs {
			if got[id] != 1 {
				t.Errorf("%s got %s %d times, want 1", name, id, got[id])
			}
		}
	}
}

// Outside development a webhook cannot reach a private address (the
// cloud's metadata service, say): the attempt fails and says why.
func TestPrivateAddressesRefusedInProduction(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	db, box, clk, r := f.db, f.box, f.clk, f.r
	emit(t, db, threeEvents()[0])
	d := newDispatcher(db, box, clk, "cron")
	d.Client = notify.NewHTTPClient(false)
	if rep := deliver(t, d); rep.Errors != 1 || len(r.deliveries()) != 0 {
		t.Fatalf("report %+v, deliveries %v", rep, r.deliveries())
	}
	var msg string
	if err := db.QueryRow("SELECT error_message FROM notification_logs").Scan(&msg); err != nil || !strings.HasSuffix(msg, notify.ErrPrivateAddress.Error()) {
		t.Fatalf("logged error %q (%v), want %q", msg, err, notify.ErrPrivateAddress)
	}
	if _, err := notify.NewHTTPClient(false).Get("http://169.254.169.254/latest/meta-data/"); !errors.Is(err, notify.ErrPrivateAddress) {
		t.Fatalf("metadata service: %v", err)
	}
}

// TestEndpointDisabledAfterFailingInARow: an endpoint that fails
// DisableAfter deliveries in a row is disabled, once, and its disabling is
// an event the other endpoints of its tenant and the platform's get (never
// another tenant's); a success between failures starts the count again;
// enabled again by an admin, it is delivered to again.
func TestEndpointDisabledAfterFailingInARow(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db, box := newSystem(t)
	clk := newClock()
	tenant := func(code string) int64 {
		res, err := db.Exec("INSERT INTO tenants (tenant_code, tenant_name, subdomain, status) VALUES (?, ?, ?, 'active')", code, code, code)
		if err != nil {
			t.Fatal(err)
		}
		id, _ := res.LastInsertId()
		return id
	}
	k1, k2 := tenant("k001"), tenant("k002")
	flaky := newReceiver(t, "flaky-secret-0123456789", clk.Now)
	mine := newReceiver(t, "mine-secret-01234567890", clk.Now)
	other := newReceiver(t, "other-secret-0123456789", clk.Now)
	platform := newReceiver(t, "platform-secret-0123456", clk.Now)
	flakyID := addEndpoint(t, db, box, flaky.URL, flaky.secret, k1)
	addEndpoint(t, db, box, mine.URL, mine.secret, k1)
	addEndpoint(t, db, box, other.URL, other.secret, k2)
	addEndpoint(t, db, box, platform.URL, platform.secret, 0)
	d := newDispatcher(db, box, clk, "cron")
	d.DisableAfter = 3
	event := func() string {
		t.Helper()
		id, err := notify.Emit(ctx, db, notify.Event{Type: notify.TenantSuspended, TenantID: k1, TenantCode: "k001"})
		if err != nil {
			t.Fatal(err)
		}
		return id
	}
	state := func() (string, int) {
		t.Helper()
		var status string
		var failures int
		if err := db.QueryRow("SELECT status, consecutive_failures FROM webhook_endpoints WHERE id = ?", flakyID).Scan(&status, &failures); err != nil {
			t.Fatal(err)
		}
		return status, failures
	}

	// Two failures, a success, two failures: never three in a row.
	flaky.down.Store(true)
	event()
	event()
	deliver(t, d)
	flaky.down.Store(false)
	clk.Advance(time.Hour)
	deliver(t, d)
	flaky.down.Store(true)
	event()
	event()
	deliver(t, d)
	if s, n := state(); s != notify.EndpointActive || n != 2 {
		t.Fatalf("after 2 failures, a success and 2 failures: %s with %d in a row, want active with 2", s, n)
	}
	// The third in a row disables it.
	event()
	deliver(t, d)
	if s, n := state(); s != notify.EndpointDisabled || n != 3 {
		t.Fatalf("after the third failure in a row: %s with %d, want disabled", s, n)
	}
	var disabledEvents int
	if err := db.QueryRow("SELECT COUNT(*) FROM webhook_events WHERE event_type = ?", notify.WebhookDisabled).Scan(&disabledEvents); err != nil || disabledEvents != 1 {
		t.Fatalf("%d %s events (%v), want 1", disabledEvents, notify.WebhookDisabled, err)
	}
	// Its tenant's other endpoint and the platform's are told; the other
	// tenant's is not, and the disabled endpoint gets nothing more.
	before := len(flaky.deliveries())
	clk.Advance(2 * time.Hour)
	event()
	deliver(t, d)
	clk.Advance(2 * time.Hour)
	deliver(t, d)
	told := func(r *receiver) bool {
		for _, p := range r.payloads() {
			if p.Type == notify.WebhookDisabled && p.TenantCode == "k001" {
				return true
			}
		}
		return false
	}
	if !told(mine) || !told(platform) || told(other) {
		t.Errorf("told of the disabling: its tenant's %v, the platform's %v, another tenant's %v; want true, true, false", told(mine), told(platform), told(other))
	}
	if got := len(flaky.deliveries()); got != before {
		t.Errorf("the disabled endpoint got %d more events", got-before)
	}
	// Enabled again, it starts from zero and is delivered to.
	if err := notify.SetEndpointStatus(ctx, db, flakyID, notify.EndpointActive); err != nil {
		t.Fatal(err)
	}
	flaky.down.Store(false)
	id := event()
	deliver(t, d)
	if s, n := state(); s != notify.EndpointActive || n != 0 || flaky.deliveries()[id] != 1 {
		t.Errorf("enabled again: %s with %d in a row, event delivered %d times", s, n, flaky.deliveries()[id])
	}
}
