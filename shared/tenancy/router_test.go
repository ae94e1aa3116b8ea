package tenancy_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/unitenant/unitenant/shared/sqldb"
	"github.com/unitenant/unitenant/shared/tenancy"
)

// TestInterleavedTenantsNeverMix: 50 tenants, 32 workers, two independent
// routers (as two processes would have) over the same tenants. Every row read
// must be its tenant's, while pooled connections hop between schemas.
func TestInterleavedTenantsNeverMix(t *testing.T) {
	t.Parallel()
	f := newFleet(t)
	const tenants, workers, perWorker = 50, 32, 60
	codes := make([]string, tenants)
	for i := range codes {
		codes[i] = fmt.Sprintf("k%03d", i+1)
		id := f.add(t, codes[i], tenancy.StatusActive)
		if i%10 == 0 {
			f.silo(t, codes[i], id) // a few siloed tenants in the mix
		}
	}
	procs := []*tenancy.Service{
		f.service(tenancy.RouterOptions{ClusterMaxOpen: 8, MaxSilos: 3}),
		f.service(tenancy.RouterOptions{ClusterMaxOpen: 8, MaxSilos: 3}),
	}
	for _, p := range procs {
		t.Cleanup(func() { p.Router.Close() })
	}
	ctx := context.Background()
	var reads, wrong atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p := procs[w%2]
			rng := rand.New(rand.NewPCG(uint64(w), 7))
			for range perWorker {
				code := codes[rng.IntN(tenants)]
				tn, err := p.Registry.ByCode(ctx, code)
				if err != nil {
					errs <- err
					return
				}
				conn, err := p.Router.Conn(ctx, tn)
				if err != nil {
					errs <- err
					return
				}
				got, err := marker(ctx, conn)
				conn.Close()
				if err != nil {
					errs <- fmt.Errorf("%s: %w", code, err)
					return
				}
				reads.Add(1)
				if got != code {
					wrong.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if wrong.Load() != 0 {
		t.Fatalf("%d of %d reads returned another tenant's row", wrong.Load(), reads.Load())
	}
	if reads.Load() != workers*perWorker {
		t.Fatalf("reads = %d, want %d", reads.Load(), workers*perWorker)
	}
	for i, p := range procs {
		// 8 pooled + at most 3 silo pools of 2: connections never grow with tenants.
		if open, _ := p.Router.Stats(); open > 8+3*2 {
			t.Errorf("router %d holds %d connections for %d tenants", i, open, tenants)
		}
	}
}

func TestSiloedUserCannotReadAnotherTenant(t *testing.T) {
	t.Parallel()
	f := newFleet(t)
	idA := f.add(t, "k001", tenancy.StatusActive)
	f.add(t, "k002", tenancy.StatusActive)
	f.silo(t, "k001", idA)
	svc := f.service(tenancy.RouterOptions{})
	defer svc.Router.Close()
	ctx := context.Background()
	tn, err := svc.Registry.ByCode(ctx, "k001")
	if err != nil {
		t.Fatal(err)
	}
	conn, err := svc.Router.Conn(ctx, tn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if got, err := marker(ctx, conn); err != nil || got != "k001" {
		t.Fatalf("own marker: %q %v", got, err)
	}
	// The siloed user's grants stop it at the server, whatever SQL runs.
	var other string
	err = conn.QueryRowContext(ctx, "SELECT tenant FROM `"+f.prefix+"k002`.marker").Scan(&other)
	if err == nil || !strings.Contains(err.Error(), "denied") {
		t.Fatalf("siloed k001 read k002: %q, err %v; want access denied", other, err)
	}
}

func TestSiloPoolsAreCappedLRU(t *testing.T) {
	t.Parallel()
	f := newFleet(t)
	svc := f.service(tenancy.RouterOptions{MaxSilos: 2, SiloMaxOpen: 1})
	defer svc.Router.Close()
	ctx := context.Background()
	for i := 1; i <= 4; i++ {
		code := fmt.Sprintf("k%03d", i)
		f.silo(t, code, f.add(t, code, tenancy.StatusActive))
	}
	for round := 0; round < 2; round++ {
		for i := 1; i <= 4; i++ {
			tn, _ := svc.Registry.ByCode(ctx, fmt.Sprintf("k%03d", i))
			conn, err := svc.Router.Conn(ctx, tn)
			if err != nil {
				t.Fatal(err)
			}
			if got, _ := marker(ctx, conn); got != tn.Code {
				t.Fatalf("%s read %q", tn.Code, got)
			}
			conn.Close()
		}
	}
	time.Sleep(100 * time.Millisecond) // evicted pools close in the background
	if open, _ := svc.Router.Stats(); open > 2 {
		t.Fatalf("%d silo connections open, cap is 2 pools of 1", open)
	}
}

// A siloed tenant's password re-keyed (provisioning run again re-keys its
// user) is the password its next connections log in with: the pool opened
// with the old one is replaced, not kept until the instance dies, failing
// every request of the tenant once its connections are gone.
func TestSiloPoolFollowsARekeyedPassword(t *testing.T) {
	t.Parallel()
	f := newFleet(t)
	id := f.add(t, "k001", tenancy.StatusActive)
	user := f.silo(t, "k001", id)
	svc := f.service(tenancy.RouterOptions{SiloMaxOpen: 1})
	defer svc.Router.Close()
	ctx := context.Background()
	read := func() (conn int64, err error) {
		t.Helper()
		// A fresh registry: another instance's view, or this one's after
		// its cache lapsed.
		tn, err := tenancy.NewRegistry(f.sys, tenancy.RegistryOptions{TTL: time.Minute}).ByCode(ctx, "k001")
		if err != nil {
			t.Fatal(err)
		}
		c, err := svc.Router.Conn(ctx, tn)
		if err != nil {
			return 0, err
		}
		defer c.Close()
		if got, err := marker(ctx, c); err != nil || got != "k001" {
			return 0, fmt.Errorf("marker %q: %w", got, err)
		}
		return conn, c.QueryRowContext(ctx, "SELECT CONNECTION_ID()").Scan(&conn)
	}
	old, err := read()
	if err != nil {
		t.Fatal(err)
	}
	pw := "rekeyed-Pw9!" + fmt.Sprint(rand.Int64())
	if _, err := f.server.ExecContext(ctx, fmt.Sprintf("ALTER USER '%s'@'%%' IDENTIFIED BY '%s'", user, pw)); err != nil {
		t.Fatal(err)
	}
	if _, err := f.sys.ExecContext(ctx, "UPDATE tenant_databases SET db_password_encrypted = ? WHERE tenant_id = ?",
		f.box.Seal([]byte(pw), tenancy.SiloSecretAAD(id)), id); err != nil {
		t.Fatal(err)
	}
	// The server drops the pool's connection (idle timeout, a restart).
	if _, err := f.server.ExecContext(ctx, fmt.Sprintf("KILL %d", old)); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		if _, err := read(); err != nil {
			t.Fatalf("request %d after the re-key: %v", i+1, err)
		}
	}
	time.Sleep(100 * time.Millisecond) // a replaced pool closes in the background
	if open, _ := svc.Router.Stats(); open != 1 {
		t.Fatalf("%d silo connections open, want the new pool's 1", open)
	}
}

func TestFailedSchemaSwitchNeverHandsOutTheConnection(t *testing.T) {
	t.Parallel()
	f := newFleet(t)
	f.add(t, "k001", tenancy.StatusActive)
	f.add(t, "k002", tenancy.StatusActive)
	ctx := context.Background()
	// k002's database disappears (dropped by hand).
	if _, err := f.server.ExecContext(ctx, "DROP DATABASE `"+f.prefix+"k002`"); err != nil {
		t.Fatal(err)
	}
	svc := f.service(tenancy.RouterOptions{ClusterMaxOpen: 1}) // one connection: k002 must get k001's
	defer svc.Router.Close()
	a, _ := svc.Registry.ByCode(ctx, "k001")
	b, _ := svc.Registry.ByCode(ctx, "k002")
	conn, err := svc.Router.Conn(ctx, a)
	if err != nil {
		t.Fatal(err)
	}
	conn.Close() // back in the pool, on k001's schema
	if conn, err := svc.Router.Conn(ctx, b); err == nil {
		got, _ := marker(ctx, conn)
		conn.Close()
		t.Fatalf("k002 got a connection (reading %q) although its database is gone", got)
	}
	conn, err = svc.Router.Conn(ctx, a)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if got, err := marker(ctx, conn); err != nil || got != "k001" {
		t.Fatalf("k001 after the failure: %q %v", got, err)
	}
}

// A tenant's connection, pooled or siloed, has sqldb's session: in UTC, as
// its times are read, and strict: a value too long for its column is
// refused, never stored cut, whatever the server's default sql_mode. The table is MEMORY (not transactional) and the
// bad value in the second row, which STRICT_TRANS_TABLES alone would store
// truncated with a warning.
func TestTenantConnectionsAreStrict(t *testing.T) {
	t.Parallel()
	f := newFleet(t)
	f.add(t, "k001", tenancy.StatusActive)
	f.silo(t, "k002", f.add(t, "k002", tenancy.StatusActive))
	svc := f.service(tenancy.RouterOptions{})
	defer svc.Router.Close()
	ctx := context.Background()
	for _, code := range []string{"k001", "k002"} {
		if _, err := f.server.ExecContext(ctx, "CREATE TABLE `"+f.prefix+code+"`.notes (s VARCHAR(3) NULL) ENGINE=MEMORY"); err != nil {
			t.Fatal(err)
		}
		tn, err := svc.Registry.ByCode(ctx, code)
		if err != nil {
			t.Fatal(err)
		}
		conn, err := svc.Router.Conn(ctx, tn)
		if err != nil {
			t.Fatal(err)
		}
		var mode, zone string
		if err := conn.QueryRowContext(ctx, "SELECT @@SESSION.sql_mode, @@SESSION.time_zone").Scan(&mode, &zone); err != nil {
			t.Fatal(err)
		}
		if zone != "+00:00" {
			t.Errorf("%s (%s): session time_zone %q, want +00:00 (times are read as UTC)", code, tn.Placement.Tier, zone)
		}
		for _, m := range strings.Split(sqldb.SQLMode, ",") {
			if !slices.Contains(strings.Split(mode, ","), m) {
				t.Errorf("%s (%s): session sql_mode %q lacks %s", code, tn.Placement.Tier, mode, m)
			}
		}
		_, err = conn.ExecContext(ctx, "INSERT INTO notes (s) VALUES ('ok'), ('abcdef')")
		if me := (*mysql.MySQLError)(nil); !errors.As(err, &me) || me.Number != 1406 {
			t.Errorf("%s (%s): a value too long = %v, want error 1406", code, tn.Placement.Tier, err)
		}
		var cut int
		if err := conn.QueryRowContext(ctx, "SELECT COUNT(*) FROM notes WHERE s = 'abc'").Scan(&cut); err != nil || cut != 0 {
			t.Errorf("%s (%s): %d values stored cut (%v), want none", code, tn.Placement.Tier, cut, err)
		}
		conn.Close()
	}
}
