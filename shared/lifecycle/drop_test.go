package lifecycle_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/unitenant/unitenant/shared/lifecycle"
)

// pausedPurge is a purge run in a goroutine of its own, held at a hook point
// until resumed.
type pausedPurge struct {
	resume chan struct{}
	once   sync.Once
	done   chan error
	rep    lifecycle.Report
}

// startPaused starts a purge by owner at now and returns once it has
// reached point, where it waits for finish. ok is false when the run ended
// without reaching it.
func (e *purgeEnv) startPaused(owner string, now time.Time, point string) (*pausedPurge, bool) {
	e.t.Helper()
	r := &pausedPurge{resume: make(chan struct{}), done: make(chan error, 1)}
	reached := make(chan struct{})
	o := e.options(owner, now)
	held := false
	o.Crash = func(s string) error {
		if s == point && !held {
			held = true
			close(reached)
			<-r.resume
		}
		return nil
	}
	go func() {
		var err error
		r.rep, err = lifecycle.Purge(context.Background(), o)
		r.done <- err
	}()
	// A test that stops early still lets it end.
	e.t.Cleanup(func() { r.once.Do(func() { close(r.resume) }) })
	select {
	case <-reached:
		return r, true
	case err := <-r.done:
		e.t.Errorf("run %s ended (%+v, %v) before it reached %s", owner, r.rep, err, point)
		return r, false
	}
}

// finish lets r go on and returns its outcome.
func (r *pausedPurge) finish() (lifecycle.Report, error) {
	r.once.Do(func() { close(r.resume) })
	err := <-r.done
	return r.rep, err
}

// A purge run stalls once it has written the tenant's archive (before
// recording it) or once it has recorded it (before the drop), long enough
// for its lease to end. Meanwhile:
//
//   - taken over: a new run (another process, or this same one leasing
//     again) took the row over and is archiving the database itself; it is
//     held just after its own dump (or, the archive being complete, just
//     before its drop);
//   - restored: the tenant was brought back by hand, its purge cancelled;
//   - restored, deleted again: ... then deleted once more, its purge not
//     yet due.
//
// When the stalled run goes on it must neither record the archive nor drop
// the database: the database is the new run's to archive and drop, or a
// live tenant's. The new run then finishes the purge with one archive.
//
// The runs are driven through the purge's hook points: the stalled run's
// hook does what happens meanwhile, the new run is held in its own hook.
func TestStalePurgeDropsNothing(t *testing.T) {
	t.Parallel()
	later := func(e *purgeEnv) time.Time { return e.now.Add(lifecycle.DefaultLeaseTTL + time.Minute) }
	for _, stall := range []string{"database:written", "database:archived"} {
		for _, meanwhile := range []string{"taken_over", "taken_over_same_owner", "restored", "restored_deleted_again"} {
			t.Run(strings.ReplaceAll(stall, ":", "_")+"/"+meanwhile, func(t *testing.T) {
				t.Parallel()
				ctx := context.Background()
				e := newPurgeEnv(t)
				d := e.createDeleted("k001", "")
				o := e.options("run-a", e.now)
				var other *pausedPurge
				stalled := false
				o.Crash = func(s string) error {
					if s != stall || stalled {
						return nil
					}
					stalled = true
					switch meanwhile {
					case "taken_over", "taken_over_same_owner":
						owner := "run-b"
						if meanwhile == "taken_over_same_owner" {
							owner = "run-a"
						}
						// Held where the archive is written but not yet
						// recorded, or (already complete) not yet dropped.
						other, _ = e.startPaused(owner, later(e), stall)
					case "restored":
						e.restoreByHand(d)
					case "restored_deleted_again":
						e.restoreByHand(d)
						e.softDelete(d.id, later(e))
					}
					return nil
				}
				rep, err := lifecycle.Purge(ctx, o)
				if !stalled {
					t.Fatalf("run A never reached %s", stall)
				}
				if err != nil || rep.Completed != 0 || len(rep.Purged) != 0 {
					t.Errorf("stalled run: %+v, %v; want it stopped, nothing done", rep, err)
				}
				if !e.databaseExists(d.database) {
					t.Fatalf("the stalled run dropped %s (%s)", d.database, meanwhile)
				}
				if stall == "database:written" && len(rep.Archives) != 0 {
					t.Errorf("the stalled run recorded archives %v", rep.Archives)
				}

				switch meanwhile {
				case "taken_over", "taken_over_same_owner":
					if other == nil {
						t.FailNow()
					}
					rep, err := other.finish()
					if err != nil || !slices.Equal(rep.Purged, []string{"k001"}) {
						t.Fatalf("new run: %+v, %v; want k001 purged", rep, err)
					}
					e.checkPurged(d)
				case "restored":
					if n := e.count("SELECT COUNT(*) FROM tenants WHERE id = ? AND status = 'active'", d.id); n != 1 {
						t.Errorf("the restored tenant is no longer active")
					}
					got, _ := tableState(t, e.tenants.Server, d.database)
					if !mapsEqual(got, d.counts) {
						t.Errorf("the restored tenant's tables hold %v, want %v", got, d.counts)
					}
					if stall == "database:written" {
						// Left in_progress for no purge: the sweep deletes it.
						srep, err := lifecycle.Sweep(ctx, e.options("sweep", e.now))
						if err != nil || srep.ArchivesAbandoned != 1 || len(e.objectKeys("archives/")) != 0 {
							t.Errorf("sweep: %+v, %v, objects %v; want the unrecorded archive deleted", srep, err, e.objectKeys("archives/"))
						}
					}
				case "restored_deleted_again":
					if n := e.count("SELECT COUNT(*) FROM tenant_resource_cleanup WHERE tenant_id = ? AND status = 'pending' AND lease_owner IS NULL", d.id); n != 2 {
						t.Errorf("%d cleanup rows pending, want both waiting for the new due date", n)
					}
				}
			})
		}
	}
}

// A purge run that has authorized the drop and dies before making it leaves
// a purge begun (no restore through the lifecycle, no other run during its
// lease); the run after the lease drops the database, idempotently, with
// the archive already made, and purges the tenant.
func TestPurgeDiesBetweenAuthorizingAndDropping(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newPurgeEnv(t)
	d := e.createDeleted("k001", "")
	round := func(i int) time.Time { return e.now.Add(time.Duration(i) * (lifecycle.DefaultLeaseTTL + time.Minute)) }
	// It dies there twice: the second time the DROP was half made.
	for i, dropped := range []bool{false, true} {
		o := e.options("run-a", round(i))
		o.Crash = func(s string) error {
			if s != "database:authorized" {
				return nil
			}
			if dropped {
				if _, err := e.tenants.Server.Exec("DROP TABLE `" + d.database + "`.tenant_config"); err != nil {
					t.Error(err)
				}
			}
			return errCrash
		}
		if _, err := lifecycle.Purge(ctx, o); !errors.Is(err, errCrash) {
			t.Fatalf("round %d: err = %v, want the crash", i, err)
		}
		svc := &lifecycle.Service{DB: e.sys.DB, Now: func() time.Time { return round(i) }}
		if _, err := svc.Restore(ctx, d.code, lifecycle.Actor{Type: "admin", ID: 1}); !errors.Is(err, lifecycle.ErrPurgeStarted) {
			t.Fatalf("round %d: restore once the drop was authorized: err = %v, want purge_started", i, err)
		}
		if rep, err := lifecycle.Purge(ctx, e.options("early", round(i).Add(time.Minute))); err != nil || rep.Completed != 0 {
			t.Fatalf("round %d: run during the lease: %+v, %v", i, rep, err)
		}
	}
	rep, err := lifecycle.Purge(ctx, e.options("rerun", round(2)))
	if err != nil || !slices.Equal(rep.Purged, []string{"k001"}) || len(rep.Archives) != 0 {
		t.Fatalf("rerun: %+v, %v; want k001 purged with the archive it had", rep, err)
	}
	e.checkPurged(d)
}
