package lifecycle_test

import (
	"context"
	"database/sql"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/unitenant/unitenant/shared/fault"
	"github.com/unitenant/unitenant/shared/lifecycle"
	"github.com/unitenant/unitenant/tests/testenv"
)

type env struct {
	sys  testenv.System
	life *lifecycle.Service
	now  time.Time
}

func newEnv(t *testing.T, codes ...string) *env {
	t.Helper()
	sys := testenv.NewSystem(t)
	tenants := testenv.NewTenants(t, sys.DB, sys.Box)
	for _, c := range codes {
		if _, _, err := tenants.Create(t, c, 0); err != nil {
			t.Fatal(err)
		}
	}
	e := &env{sys: sys, now: time.Now().UTC()}
	e.life = &lifecycle.Service{DB: sys.DB, Now: func() time.Time { return e.now }}
	return e
}

var admin = lifecycle.Actor{Type: "admin", ID: 1, Name: "super_admin", IP: "203.0.113.9", RequestID: "req-1"}

func (e *env) count(t *testing.T, q string, args ...any) int {
	t.Helper()
	var n int
	if err := e.sys.DB.QueryRow(q, args...).Scan(&n); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	return n
}

func (e *env) status(t *testing.T, code string) string {
	t.Helper()
	var s string
	if err := e.sys.DB.QueryRow("SELECT status FROM tenants WHERE tenant_code = ?", code).Scan(&s); err != nil {
		t.Fatal(err)
	}
	return s
}

func wantCode(t *testing.T, err error, code string) {
	t.Helper()
	if fault.CodeOf(err) != code {
		t.Fatalf("err = %v, want %s", err, code)
	}
}

func TestLifecycle(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "k001")
	ctx := context.Background()

	_, err := e.life.Suspend(ctx, "k001", admin, "")
	wantCode(t, err, "invalid_input")
	suspended, err := e.life.Suspend(ctx, "k001", admin, "unpaid invoice")
	if err != nil {
		t.Fatal(err)
	}
	if e.status(t, "k001") != "suspended" {
		t.Fatal("not suspended")
	}
	// What it was before is stored, as the answer says: MariaDB assigns
	// left to right, so "previous_status = status" must come first.
	var prev sql.NullString
	if err := e.sys.DB.QueryRow("SELECT previous_status FROM tenants WHERE tenant_code = 'k001'").Scan(&prev); err != nil {
		t.Fatal(err)
	}
	if prev.String != "active" || suspended.PreviousStatus == nil || *suspended.PreviousStatus != prev.String {
		t.Fatalf("previous_status stored %q, answered %v; want active", prev.String, suspended.PreviousStatus)
	}
	_, err = e.life.Suspend(ctx, "k001", admin, "again")
	wantCode(t, err, "invalid_transition")
	if fe, _ := fault.As(err); fe.Fields["status"] != "suspended" || fe.Fields["allowed"] == "" {
		t.Fatalf("invalid_transition does not name the status and the allowed actions: %+v", fe)
	}
	if _, err := e.life.Resume(ctx, "k001", admin); err != nil {
		t.Fatal(err)
	}

	// Delete: a token, then a confirmation.
	token, expires, err := e.life.RequestDeletion(ctx, "k001", admin, "school closed")
	if err != nil || token == "" || !expires.After(e.now.Add(6*24*time.Hour)) {
		t.Fatalf("RequestDeletion = %q %v %v", token, expires, err)
	}
	if e.status(t, "k001") != "active" {
		t.Fatal("a deletion request alone changed the status")
	}
	_, err = e.life.ConfirmDeletion(ctx, "k001", "not-the-token", admin)
	wantCode(t, err, "invalid_confirmation_token")
	tn, err := e.life.ConfirmDeletion(ctx, "k001", token, admin)
	if err != nil {
		t.Fatal(err)
	}
	if tn.Status != "deleted" || tn.ScheduledDeletionAt == nil || tn.ScheduledDeletionAt.Sub(e.now) != lifecycle.DefaultGrace {
		t.Fatalf("after confirm: %+v", tn)
	}
	if n := e.count(t, "SELECT COUNT(*) FROM tenant_resource_cleanup WHERE tenant_code = 'k001' AND status = 'pending'"); n < 2 {
		t.Fatalf("%d resources scheduled, want the database and the objects at least", n)
	}
	_, err = e.life.ConfirmDeletion(ctx, "k001", token, admin)
	wantCode(t, err, "invalid_transition") // deleted already

	// Restore brings it back and cancels the purge.
	if tn, err = e.life.Restore(ctx, "k001", admin); err != nil || tn.Status != "active" {
		t.Fatalf("restore: %+v %v", tn, err)
	}
	if n := e.count(t, "SELECT COUNT(*) FROM tenant_resource_cleanup WHERE tenant_code = 'k001' AND status <> 'cancelled'"); n != 0 {
		t.Fatalf("%d cleanup rows still live after restore", n)
	}

	// Every transition was audited and emitted, in order.
	for _, action := range []string{"suspend", "resume", "delete", "confirm_delete", "restore"} {
		if n := e.count(t, "SELECT COUNT(*) FROM audit_logs WHERE action = ? AND target_id = 'k001' AND request_id = 'req-1'", "tenant."+action); n != 1 {
			t.Errorf("audit rows for %s: %d", action, n)
		}
	}
	for _, ev := range []string{"tenant.suspended", "tenant.resumed", "tenant.deletion_requested", "tenant.deleted", "tenant.restored"} {
		if n := e.count(t, "SELECT COUNT(*) FROM webhook_events WHERE event_type = ? AND tenant_code = 'k001'", ev); n != 1 {
			t.Errorf("events %s: %d", ev, n)
		}
	}

	// Deleted again, a purge makes everything due now.
	token, _, _ = e.life.RequestDeletion(ctx, "k001", admin, "")
	if _, err := e.life.ConfirmDeletion(ctx, "k001", token, admin); err != nil {
		t.Fatal(err)
	}
	if _, err := e.life.Purge(ctx, "k001", admin); err != nil {
		t.Fatal(err)
	}
	if n := e.count(t, "SELECT COUNT(*) FROM tenant_resource_cleanup WHERE tenant_code = 'k001' AND status = 'pending' AND scheduled_deletion_at <= ?", e.now); n < 2 {
		t.Fatalf("%d resources due after purge", n)
	}
	// The operator asked for the purge; cleanup-cron has not purged yet.
	if n := e.count(t, "SELECT COUNT(*) FROM audit_logs WHERE action = 'tenant.purge_requested' AND target_id = 'k001' AND actor_type = 'admin' AND request_id = 'req-1'"); n != 1 {
		t.Errorf("audit rows for purge_requested: %d, want 1", n)
	}
	if n := e.count(t, "SELECT COUNT(*) FROM audit_logs WHERE action = 'tenant.purge' AND target_id = 'k001'"); n != 0 {
		t.Errorf("audit rows for purge: %d before the tenant was purged, want 0", n)
	}
	// Once the purge has started, restore is refused.
	if _, err := e.sys.DB.Exec("UPDATE tenant_resource_cleanup SET status = 'in_progress' WHERE tenant_code = 'k001' LIMIT 1"); err != nil {
		t.Fatal(err)
	}
	_, err = e.life.Restore(ctx, "k001", admin)
	wantCode(t, err, "purge_started")
}

func TestDeletionTokenExpires(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "k001")
	ctx := context.Background()
	token, _, err := e.life.RequestDeletion(ctx, "k001", admin, "")
	if err != nil {
		t.Fatal(err)
	}
	e.now = e.now.Add(lifecycle.DefaultConfirmation + time.Minute)
	_, err = e.life.ConfirmDeletion(ctx, "k001", token, admin)
	wantCode(t, err, "invalid_confirmation_token")
	if e.status(t, "k001") != "active" {
		t.Fatal("an expired token deleted the tenant")
	}
}

func TestConcurrentTransitionsHappenOnce(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "k001")
	const n = 10
	var wg sync.WaitGroup
	codes := make(chan string, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := e.life.Suspend(context.Background(), "k001", admin, fmt.Sprint("reason ", i))
			codes <- fault.CodeOf(err)
		}()
	}
	wg.Wait()
	close(codes)
	got := map[string]int{}
	for c := range codes {
		got[c]++
	}
	if got[""] != 1 || got["invalid_transition"] != n-1 {
		t.Fatalf("outcomes %v: want one suspension and %d invalid_transition", got, n-1)
	}
	if c := e.count(t, "SELECT COUNT(*) FROM webhook_events WHERE event_type = 'tenant.suspended'"); c != 1 {
		t.Fatalf("%d suspension events", c)
	}
}

// Confirming one deletion request ends the others: a second token sent
// for the same deletion cannot delete the tenant again after a restore.
func TestConfirmedDeletionSpendsEveryToken(t *testing.T) {
	t.Parallel()
	e := newEnv(t, "k001")
	ctx := context.Background()
	first, _, err := e.life.RequestDeletion(ctx, "k001", admin, "school closed")
	if err != nil {
		t.Fatal(err)
	}
	second, _, err := e.life.RequestDeletion(ctx, "k001", admin, "school closed (sent again)")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.life.ConfirmDeletion(ctx, "k001", first, admin); err != nil {
		t.Fatal(err)
	}
	if _, err := e.life.Restore(ctx, "k001", admin); err != nil {
		t.Fatal(err)
	}
	e.now = e.now.Add(time.Hour) // both tokens are well within their 7 days
	_, err = e.life.ConfirmDeletion(ctx, "k001", second, admin)
	wantCode(t, err, "invalid_confirmation_token")
	if e.status(t, "k001") != "active" {
		t.Fatal("a token of an earlier, confirmed deletion deleted the restored tenant")
	}
	if n := e.count(t, "SELECT COUNT(*) FROM tenant_deletion_requests WHERE tenant_code = 'k001' AND status = 'pending'"); n != 0 {
		t.Fatalf("%d deletion requests still pending after the confirmation", n)
	}
}
