package lifecycle_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/unitenant/unitenant/shared/lifecycle"
)

// userExists reports whether the server has MySQL user name on any host.
func (e *purgeEnv) userExists(name string) bool {
	e.t.Helper()
	var n int
	if err := e.tenants.Server.QueryRow("SELECT COUNT(*) FROM mysql.user WHERE User = ?", name).Scan(&n); err != nil {
		e.t.Fatal(err)
	}
	return n > 0
}

// A purge run stalls in a siloed tenant's db_user step (the user's hosts
// found, the user not yet dropped) or in its objects step (a page listed,
// not yet deleted) until its lease has ended. Meanwhile:
//
//   - taken over: a new run took the rows over and is held at the same
//     point of its own;
//   - restored: the purge was cancelled and the tenant brought back by hand.
//
// When the stalled run goes on it must neither drop the user nor delete an
// object: it stops, and reports the lease it lost. The new run then
// finishes the purge.
func TestStalePurgeDropsNoUserAndDeletesNoObject(t *testing.T) {
	t.Parallel()
	later := func(e *purgeEnv) time.Time { return e.now.Add(lifecycle.DefaultLeaseTTL + time.Minute) }
	for _, stall := range []string{"db_user:found", "objects:listed"} {
		for _, meanwhile := range []string{"taken_over", "restored"} {
			t.Run(strings.ReplaceAll(stall, ":", "_")+"/"+meanwhile, func(t *testing.T) {
				t.Parallel()
				ctx := context.Background()
				e := newPurgeEnv(t)
				d := e.createDeleted("k001", "enterprise")
				if d.dbUser == "" {
					t.Fatal("the enterprise tenant has no siloed user")
				}
				objects := e.objectKeys(e.store.Prefix(d.code))
				o := e.options("run-a", e.now)
				var other *pausedPurge
				stalled := false
				o.Crash = func(s string) error {
					if s != stall || stalled {
						return nil
					}
					stalled = true
					switch meanwhile {
					case "taken_over":
						other, _ = e.startPaused("run-b", later(e), stall)
					case "restored":
						e.restoreByHand(d)
					}
					return nil
				}
				rep, err := lifecycle.Purge(ctx, o)
				if !stalled {
					t.Fatalf("run A never reached %s", stall)
				}
				wantCompleted := 1 // the database
				if stall == "objects:listed" {
					wantCompleted = 2 // and the user
				}
				if err != nil || rep.Completed != wantCompleted || len(rep.Purged) != 0 || rep.LeasesLost != 1 {
					t.Errorf("stalled run: %+v, %v; want %d resources completed, then stopped on the lost lease", rep, err, wantCompleted)
				}
				if stall == "db_user:found" && !e.userExists(d.dbUser) {
					t.Errorf("the stalled run dropped user %s (%s)", d.dbUser, meanwhile)
				}
				if got := e.objectKeys(e.store.Prefix(d.code)); !slices.Equal(got, objects) {
					t.Errorf("the stalled run deleted objects (%s): %d left of %d", meanwhile, len(got), len(objects))
				}

				switch meanwhile {
				case "taken_over":
					if other == nil {
						t.FailNow()
					}
					rep, err := other.finish()
					if err != nil || !slices.Equal(rep.Purged, []string{"k001"}) || rep.LeasesLost != 0 {
						t.Fatalf("new run: %+v, %v; want k001 purged", rep, err)
					}
					e.checkPurged(d)
				case "restored":
					if n := e.count("SELECT COUNT(*) FROM tenants WHERE id = ? AND status = 'active'", d.id); n != 1 {
						t.Errorf("the restored tenant is no longer active")
					}
				}
			})
		}
	}
}

// objectSum returns the size and hex SHA-256 of the object under key.
func (e *purgeEnv) objectSum(key string) (int64, string) {
	e.t.Helper()
	body, _, err := e.store.Store.Get(context.Background(), key)
	if err != nil {
		e.t.Fatal(err)
	}
	defer body.Close()
	h := sha256.New()
	n, err := io.Copy(h, body)
	if err != nil {
		e.t.Fatal(err)
	}
	return n, hex.EncodeToString(h.Sum(nil))
}

// purgedArchives returns the archives tenant.purged named for tenant id.
func (e *purgeEnv) purgedArchives(id int64) []string {
	e.t.Helper()
	var payload string
	if err := e.sys.DB.QueryRow("SELECT payload FROM webhook_events WHERE tenant_id = ? AND event_type = 'tenant.purged'", id).Scan(&payload); err != nil {
		e.t.Fatal(err)
	}
	var p struct {
		Data struct {
			Archives []string `json:"archives"`
		} `json:"data"`
	}
	if err := json.Unmarshal([]byte(payload), &p); err != nil {
		e.t.Fatal(err)
	}
	return p.Data.Archives
}

// checkRestorable checks that the archive under key is recorded complete,
// that its object is the one recorded (size, checksum), and that it
// restores to d's tables as they were before the purge.
func (e *purgeEnv) checkRestorable(d *deletedTenant, key string) {
	e.t.Helper()
	ctx := context.Background()
	a, err := lifecycle.FindArchive(ctx, e.sys.DB, key)
	if err != nil {
		e.t.Fatal(err)
	}
	if a.Status != "completed" || !mapsEqual(a.RowCounts, d.counts) {
		e.t.Errorf("archive %s is %s with row counts %v, want completed with %v", key, a.Status, a.RowCounts, d.counts)
	}
	if size, sum := e.objectSum(key); size != a.Size || sum != a.Checksum {
		e.t.Errorf("archive %s: the object has %d bytes, SHA-256 %s; recorded %d bytes, %s", key, size, sum, a.Size, a.Checksum)
	}
	server, err := lifecycle.OpenServer(ctx, e.sys.DB, e.sys.Box, clusterID(e.t, e.sys.DB))
	if err != nil {
		e.t.Fatal(err)
	}
	defer server.Close()
	into := e.tenants.Prefix + "restored_" + d.code
	counts, err := lifecycle.RestoreArchive(ctx, server, e.store.Store, key, into)
	if err != nil {
		e.t.Fatal(err)
	}
	gotCounts, gotSums := tableState(e.t, e.tenants.Server, into)
	if !mapsEqual(counts, d.counts) || !mapsEqual(gotCounts, d.counts) || !mapsEqual(gotSums, d.sums) {
		e.t.Errorf("archive %s does not restore the tenant as it was: tables differ: %v", key, differing(gotSums, d.sums))
	}
}

// differing lists the keys whose values in got and want differ.
func differing[V comparable](got, want map[string]V) []string {
	var out []string
	for k, v := range want {
		if w, ok := got[k]; !ok || w != v {
			out = append(out, k)
		}
	}
	for k := range got {
		if _, ok := want[k]; !ok {
			out = append(out, k)
		}
	}
	slices.Sort(out)
	return out
}

// A purge run stalls once it has recorded the archive it is about to
// write, until its lease has ended. A new run takes the row over, archives
// the database itself and is held before the drop; the database changes (a
// row more), and the stalled run goes on to write its archive. It must not
// replace the new run's: the archive the purge records, and tenant.purged
// names, is the new run's, its object matches its record and restores the
// tenant as it was. The stalled run's object is no purge's: the sweep
// deletes it.
func TestStalePurgeCannotReplaceTheArchive(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newPurgeEnv(t)
	d := e.createDeleted("k001", "")
	later := e.now.Add(lifecycle.DefaultLeaseTTL + time.Minute)
	o := e.options("run-a", e.now)
	var other *pausedPurge
	stalled := false
	o.Crash = func(s string) error {
		if s != "database:writing" || stalled {
			return nil
		}
		stalled = true
		other, _ = e.startPaused("run-b", later, "database:archived")
		if _, err := e.tenants.Server.Exec("INSERT INTO `" + d.database + "`.tenant_config (config_key, config_value) VALUES ('test.late', 'x')"); err != nil {
			t.Error(err)
		}
		return nil
	}
	rep, err := lifecycle.Purge(ctx, o)
	if !stalled || other == nil {
		t.Fatal("run A never stalled before writing its archive, or run B never archived")
	}
	if err != nil || rep.Completed != 0 || len(rep.Archives) != 0 || rep.LeasesLost != 1 {
		t.Errorf("stalled run: %+v, %v; want nothing recorded, the lease reported lost", rep, err)
	}
	brep, err := other.finish()
	if err != nil || !slices.Equal(brep.Purged, []string{"k001"}) || len(brep.Archives) != 1 {
		t.Fatalf("new run: %+v, %v; want k001 purged with its own archive", brep, err)
	}
	key := brep.Archives[0]
	if got := e.purgedArchives(d.id); !slices.Equal(got, []string{key}) {
		t.Errorf("tenant.purged names archives %v, want [%s]", got, key)
	}
	e.checkRestorable(d, key)

	srep, err := lifecycle.Sweep(ctx, e.options("sweep", later))
	if err != nil || srep.ArchivesAbandoned != 1 {
		t.Errorf("sweep: %+v, %v; want the stalled run's archive deleted", srep, err)
	}
	if keys := e.objectKeys("archives/" + d.code + "/"); !slices.Equal(keys, []string{key}) {
		t.Errorf("archives stored %v, want only %s", keys, key)
	}
	if n := e.count("SELECT COUNT(*) FROM tenant_archives WHERE tenant_id = ? AND status = 'completed'", d.id); n != 1 {
		t.Errorf("%d archives completed, want 1", n)
	}
}

// A purge run died once it had written its archive, before recording it;
// the object was then damaged. The run after it does not take that object
// for the archive: it writes one of its own, under a key of its own, and
// the purge finishes with it; the sweep deletes the damaged one.
func TestPurgeRewritesADamagedUnrecordedArchive(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newPurgeEnv(t)
	d := e.createDeleted("k001", "")
	damaged := e.crashAfterWriting(d, "run-a", e.now)
	if err := e.store.Store.Put(ctx, damaged, strings.NewReader("not an archive"), -1, "application/gzip"); err != nil {
		t.Fatal(err)
	}
	later := e.now.Add(lifecycle.DefaultLeaseTTL + time.Minute)
	rep, err := lifecycle.Purge(ctx, e.options("rerun", later))
	if err != nil || !slices.Equal(rep.Purged, []string{"k001"}) || len(rep.Archives) != 1 || rep.Archives[0] == damaged {
		t.Fatalf("rerun: %+v, %v; want k001 purged with a new archive", rep, err)
	}
	key := rep.Archives[0]
	if got := e.purgedArchives(d.id); !slices.Equal(got, []string{key}) {
		t.Errorf("tenant.purged names archives %v, want [%s]", got, key)
	}
	e.checkRestorable(d, key)
	srep, err := lifecycle.Sweep(ctx, e.options("sweep", later))
	if err != nil || srep.ArchivesAbandoned != 1 || e.archiveStatus(damaged) != "expired" {
		t.Errorf("sweep: %+v, %v; want the damaged archive deleted", srep, err)
	}
	if keys := e.objectKeys("archives/" + d.code + "/"); !slices.Equal(keys, []string{key}) {
		t.Errorf("archives stored %v, want only %s", keys, key)
	}
}
