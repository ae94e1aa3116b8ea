package provisioning_test

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/unitenant/unitenant/shared/logging"
)

// activationAudit is one tenant.activate row of audit_logs.
type activationAudit struct {
	ActorType, Target, Before, After, RequestID string
	ActorID                                     int64
}

// activationAudits returns the tenant.activate rows of tenant id.
func (h *harness) activationAudits(t *testing.T, id int64) []activationAudit {
	t.Helper()
	rows, err := h.sys.Query(`SELECT actor_type, COALESCE(actor_id, 0), CONCAT(target_type, ':', target_id),
		JSON_VALUE(before_state, '$.status'), JSON_VALUE(after_state, '$.status'), COALESCE(request_id, '')
		FROM audit_logs WHERE tenant_id = ? AND action = 'tenant.activate' ORDER BY id`, id)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []activationAudit
	for rows.Next() {
		var a activationAudit
		if err := rows.Scan(&a.ActorType, &a.ActorID, &a.Target, &a.Before, &a.After, &a.RequestID); err != nil {
			t.Fatal(err)
		}
		out = append(out, a)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// Activation is a lifecycle transition (provisioning → active) and is
// audited as the others are: one tenant.activate row, by the tenant's
// creator (system when none is recorded). The activation is made, then the
// process dies before its step is recorded: the run that resumes it
// activates again and finds the tenant active, so the row is written once.
func TestActivationIsAuditedOnce(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	for _, c := range []struct {
		name, code string
		createdBy  int64
		admin      bool
		wantActor  string
	}{
		{"ByAdmin", "k001", 7, true, "admin"},
		{"ByUser", "k002", -1, false, "user"}, // -1: the harness's user
		{"BySystem", "k003", 0, false, "system"},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			ctx := logging.WithRequestID(context.Background(), "req-"+c.code)
			req := request(c.code, "basic", h.userID)
			req.CreatedBy, req.CreatedByAdmin = c.createdBy, c.admin
			if c.createdBy < 0 {
				req.CreatedBy = h.userID
			}
			p := h.pipeline("api")
			p.Crash = func(s string) error {
				if s == "activate" {
					return errCrash
				}
				return nil
			}
			id, err := p.Start(ctx, req)
			if err != nil {
				t.Fatal(err)
			}
			if err := p.Run(ctx, c.code); !errors.Is(err, errCrash) {
				t.Fatalf("Run = %v, want the crash after the activation", err)
			}
			cron := h.pipeline("provision-cron")
			cron.Now = func() time.Time { return h.now.Add(2 * time.Minute) } // the lease expired
			// Run, not Resume: the subtests share the harness, and each
			// resumes its own tenant.
			if err := cron.Run(context.Background(), c.code); err != nil {
				t.Fatalf("resume %s: %v", c.code, err)
			}
			if s := h.snapshot(t, c.code); s.Status != "active" || s.Progress != "completed" || len(s.CreatedEvents) != 1 {
				t.Fatalf("%s is %s, its provisioning %s, %d tenant.created events", c.code, s.Status, s.Progress, len(s.CreatedEvents))
			}
			want := []activationAudit{{ActorType: c.wantActor, ActorID: req.CreatedBy, Target: "tenant:" + c.code,
				Before: "provisioning", After: "active", RequestID: "req-" + c.code}}
			if got := h.activationAudits(t, id); !slices.Equal(got, want) {
				t.Errorf("audit rows %+v, want %+v", got, want)
			}
		})
	}
}

// The audit row is written in the activation's transaction: an activation
// whose row cannot be written does not happen (the tenant stays
// provisioning, no tenant.created), and the retry activates and audits it
// once.
func TestActivationWithoutItsAuditRowDoesNotHappen(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	h := newHarness(t)
	if _, err := h.sys.Exec("RENAME TABLE audit_logs TO audit_logs_away"); err != nil {
		t.Fatal(err)
	}
	p := h.pipeline("api")
	id, err := p.Start(ctx, request("k001", "basic", h.userID))
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Run(ctx, "k001"); err == nil {
		t.Fatal("Run activated the tenant without its audit row")
	}
	var status string
	var events int
	if err := h.sys.QueryRow(`SELECT t.status, (SELECT COUNT(*) FROM webhook_events e WHERE e.tenant_id = t.id AND e.event_type = 'tenant.created')
		FROM tenants t WHERE t.id = ?`, id).Scan(&status, &events); err != nil {
		t.Fatal(err)
	}
	if status != "provisioning" || events != 0 {
		t.Fatalf("k001 is %s with %d tenant.created events, want provisioning and none", status, events)
	}
	if _, err := h.sys.Exec("RENAME TABLE audit_logs_away TO audit_logs"); err != nil {
		t.Fatal(err)
	}
	if done, err := h.pipeline("provision-cron").Resume(ctx, 10); err != nil || !slices.Equal(done, []string{"k001"}) {
		t.Fatalf("Resume = %v, %v", done, err)
	}
	if s := h.snapshot(t, "k001"); s.Status != "active" || len(s.CreatedEvents) != 1 {
		t.Fatalf("k001 is %s with %d tenant.created events", s.Status, len(s.CreatedEvents))
	}
	if got := h.activationAudits(t, id); len(got) != 1 || got[0].ActorType != "system" {
		t.Errorf("audit rows %+v, want one, by the system", got)
	}
}
