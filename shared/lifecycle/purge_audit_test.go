package lifecycle_test

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/unitenant/unitenant/shared/lifecycle"
	"github.com/unitenant/unitenant/shared/logging"
)

// purgeAudit is one tenant.purge row of audit_logs.
type purgeAudit struct {
	ActorType, ActorName, Target, Code, Before, After, RequestID string
	ActorID                                                      int64
}

// purgeAudits returns the tenant.purge rows of tenant id.
func (e *purgeEnv) purgeAudits(id int64) []purgeAudit {
	e.t.Helper()
	return e.audits(id, "tenant.purge")
}

// audits returns the audit rows of action on tenant id, oldest first.
func (e *purgeEnv) audits(id int64, action string) []purgeAudit {
	e.t.Helper()
	rows, err := e.sys.DB.Query(`SELECT actor_type, COALESCE(actor_id, 0), COALESCE(actor_name, ''), CONCAT(target_type, ':', target_id),
		JSON_VALUE(before_state, '$.tenantCode'), JSON_VALUE(before_state, '$.status'), JSON_VALUE(after_state, '$.status'),
		COALESCE(request_id, '')
		FROM audit_logs WHERE tenant_id = ? AND action = ? ORDER BY id`, id, action)
	if err != nil {
		e.t.Fatal(err)
	}
	defer rows.Close()
	var out []purgeAudit
	for rows.Next() {
		var a purgeAudit
		if err := rows.Scan(&a.ActorType, &a.ActorID, &a.ActorName, &a.Target, &a.Code, &a.Before, &a.After, &a.RequestID); err != nil {
			e.t.Fatal(err)
		}
		out = append(out, a)
	}
	if err := rows.Err(); err != nil {
		e.t.Fatal(err)
	}
	return out
}

// The purge is a lifecycle transition (deleted → purged) and is audited as
// the others are: one tenant.purge row, by the system, named by the run
// that made it. A later run finds nothing to do and writes nothing; a run
// that dies before its last step leaves no row, and the run that resumes
// the purge writes it once.
func TestPurgeIsAuditedOnce(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name  string
		crash string // the step the first run dies at; "" for none
		owner string // the run that purges
	}{
		{"OneRun", "", "run"},
		{"ResumedAfterACrash", "objects:removed", "rerun"},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			ctx := logging.WithRequestID(context.Background(), "req-purge")
			e := newPurgeEnv(t)
			d := e.createDeleted("k001", "")
			at := e.now
			if c.crash != "" {
				o := e.options("crashing", at)
				o.Crash = func(s string) error {
					if s == c.crash {
						return errCrash
					}
					return nil
				}
				if _, err := lifecycle.Purge(ctx, o); !errors.Is(err, errCrash) {
					t.Fatalf("err = %v, want the crash", err)
				}
				if got := e.purgeAudits(d.id); len(got) != 0 {
					t.Fatalf("audit rows %+v before the purge was made", got)
				}
				at = at.Add(lifecycle.DefaultLeaseTTL + time.Minute) // the lease expired
			}
			rep, err := lifecycle.Purge(ctx, e.options(c.owner, at))
			if err != nil || !slices.Equal(rep.Purged, []string{"k001"}) {
				t.Fatalf("Purge = %+v, %v", rep, err)
			}
			e.checkPurged(d)
			want := []purgeAudit{{ActorType: "system", ActorName: c.owner, Target: "tenant:k001", Code: "k001",
				Before: "deleted", After: "purged", RequestID: "req-purge"}}
			if got := e.purgeAudits(d.id); !slices.Equal(got, want) {
				t.Fatalf("audit rows %+v, want %+v", got, want)
			}
			if rep, err := lifecycle.Purge(ctx, e.options("later", at.Add(48*time.Hour))); err != nil || len(rep.Purged) != 0 {
				t.Fatalf("later run %+v, %v: want nothing done", rep, err)
			}
			if got := e.purgeAudits(d.id); !slices.Equal(got, want) {
				t.Errorf("audit rows after a later run %+v, want %+v", got, want)
			}
		})
	}
}

// An operator's purge and the purge it brings forward are two events, and
// the audit log has one row for each: tenant.purge_requested by the
// operator when they ask (the tenant is still deleted), then tenant.purge by
// the system when cleanup-cron purges it (deleted → purged). The request
// never passes for the purge: a reader counting tenant.purge rows counts
// purged tenants.
func TestOperatorPurgeIsAuditedApartFromThePurge(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newPurgeEnv(t)
	d := e.createDeleted("k001", "")
	life := &lifecycle.Service{DB: e.sys.DB, Now: func() time.Time { return e.now }}
	operator := lifecycle.Actor{Type: "admin", ID: 7, Name: "super_admin", RequestID: "req-operator"}
	if _, err := life.Purge(ctx, "k001", operator); err != nil {
		t.Fatal(err)
	}
	requested := []purgeAudit{{ActorType: "admin", ActorID: 7, ActorName: "super_admin", Target: "tenant:k001", Code: "k001",
		Before: "deleted", After: "deleted", RequestID: "req-operator"}}
	if got := e.audits(d.id, "tenant.purge_requested"); !slices.Equal(got, requested) {
		t.Fatalf("tenant.purge_requested rows %+v, want %+v", got, requested)
	}
	if got := e.purgeAudits(d.id); len(got) != 0 {
		t.Fatalf("tenant.purge rows %+v before the tenant was purged, want none", got)
	}
	rep, err := lifecycle.Purge(logging.WithRequestID(ctx, "req-cron"), e.options("run", e.now))
	if err != nil || !slices.Equal(rep.Purged, []string{"k001"}) {
		t.Fatalf("Purge = %+v, %v", rep, err)
	}
	e.checkPurged(d)
	purged := []purgeAudit{{ActorType: "system", ActorName: "run", Target: "tenant:k001", Code: "k001",
		Before: "deleted", After: "purged", RequestID: "req-cron"}}
	if got := e.purgeAudits(d.id); !slices.Equal(got, purged) {
		t.Errorf("tenant.purge rows %+v, want %+v", got, purged)
	}
	if got := e.audits(d.id, "tenant.purge_requested"); !slices.Equal(got, requested) {
		t.Errorf("tenant.purge_requested rows after the purge %+v, want %+v", got, requested)
	}
}

// The audit row is written in the purge's transaction: a purge whose row
// cannot be written does not happen (the tenant stays deleted, no
// tenant.purged), and the run that resumes it purges and audits it once.
func TestPurgeWithoutItsAuditRowDoesNotHappen(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newPurgeEnv(t)
	d := e.createDeleted("k001", "")
	if _, err := e.sys.DB.Exec("RENAME TABLE audit_logs TO audit_logs_away"); err != nil {
		t.Fatal(err)
	}
	if _, err := lifecycle.Purge(ctx, e.options("run", e.now)); err == nil {
		t.Fatal("Purge purged the tenant without its audit row")
	}
	if n := e.count("SELECT COUNT(*) FROM tenants WHERE id = ? AND status = 'deleted' AND purged_at IS NULL", d.id); n != 1 {
		t.Fatal("the tenant is no longer deleted")
	}
	if n := e.count("SELECT COUNT(*) FROM webhook_events WHERE tenant_id = ? AND event_type = 'tenant.purged'", d.id); n != 0 {
		t.Fatalf("%d tenant.purged events, want none", n)
	}
	if _, err := e.sys.DB.Exec("RENAME TABLE audit_logs_away TO audit_logs"); err != nil {
		t.Fatal(err)
	}
	rep, err := lifecycle.Purge(ctx, e.options("rerun", e.now.Add(lifecycle.DefaultLeaseTTL+time.Minute)))
	if err != nil || !slices.Equal(rep.Purged, []string{"k001"}) {
		t.Fatalf("rerun = %+v, %v", rep, err)
	}
	e.checkPurged(d)
	if got := e.purgeAudits(d.id); len(got) != 1 || got[0].ActorType != "system" || got[0].ActorName != "rerun" {
		t.Errorf("audit rows %+v, want one, by the rerun", got)
	}
}
