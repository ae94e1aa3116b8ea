package provisioning_test

import (
	"context"
	"crypto/rand"
	"database/sql"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/unitenant/unitenant/shared/config"
	"github.com/unitenant/unitenant/shared/fault"
	"github.com/unitenant/unitenant/shared/logging"
	"github.com/unitenant/unitenant/shared/objectstore"
	"github.com/unitenant/unitenant/shared/provisioning"
	"github.com/unitenant/unitenant/shared/secretbox"
	"github.com/unitenant/unitenant/shared/sqldb"
	"github.com/unitenant/unitenant/shared/sqldb/sqldbtest"
	"github.com/unitenant/unitenant/shared/tenancy"
	"github.com/unitenant/unitenant/tests/testenv"
)

// harness is a control plane of the test's own: system database, one
// cluster (the test server), a local object store, a global user who asks
// for tenants, and a default AI model.
type harness struct {
	sys       *sql.DB
	box       *secretbox.Box
	server    *sql.DB
	clusterID int64
	store     *objectstore.Service
	prefix    string // tenant databases
	template  string
	userID    int64
	now       time.Time
}

func newHarness(t testing.TB) *harness {
	t.Helper()
	ctx := context.Background()
	sys, _ := sqldbtest.NewDatabase(t)
	if _, err := provisioning.MigrateSystem(ctx, sys, logging.Discard()); err != nil {
		t.Fatal(err)
	}
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	box, _ := secretbox.New(key)
	h := &harness{sys: sys, box: box, server: sqldbtest.Server(t), prefix: sqldbtest.Name(t) + "_", now: time.Now().UTC()}
	h.template = h.prefix + "template"
	testenv.DropDatabasesLike(t, h.prefix)
	var err error
	if h.clusterID, err = provisioning.EnsureCluster(ctx, sys, box, "default", sqldbtest.ServerDSN(t), 0); err != nil {
		t.Fatal(err)
	}
	h.store, err = objectstore.Load(config.FromMap(map[string]string{
		"STORAGE_BACKEND": "local", "LOCAL_STORAGE_DIR": t.TempDir(), "LOCAL_STORAGE_SECRET": strings.Repeat("s", 32),
	}), true)
	if err != nil {
		t.Fatal(err)
	}
	res, err := sys.Exec("INSERT INTO global_users (phone, password_hash, real_name) VALUES ('13811112222', 'x', 'Owner')")
	if err != nil {
		t.Fatal(err)
	}
	h.userID, _ = res.LastInsertId()
	if _, err := sys.Exec(`INSERT INTO ai_model_config (model_name, display_name, provider, is_default, status)
		VALUES ('gpt-4o-mini', 'GPT-4o mini', 'openai', 1, 'active'), ('other', 'Other', 'openai', 0, 'active')`); err != nil {
		t.Fatal(err)
	}
	return h
}

func (h *harness) pipeline(owner string) *provisioning.Pipeline {
	return &provisioning.Pipeline{
		Sys: h.sys, Box: h.box, Storage: h.store, Template: h.template, Prefix: h.prefix, Owner: owner,
		LeaseTTL: time.Minute, Now: func() time.Time { return h.now }, Log: logging.Discard(),
	}
}

func request(code, plan string, userID int64) provisioning.Request {
	return provisioning.Request{Code: code, Name: "Kindergarten " + code, ContactName: "Li Hua",
		ContactEmail: "li@" + code + ".example.com", ContactPhone: "13811112222", PlanType: plan, AdminUserID: userID}
}

// create runs the whole pipeline for code, dropping what it made at the end.
func (h *harness) create(t *testing.T, p *provisioning.Pipeline, code, plan string) {
	t.Helper()
	ctx := context.Background()
	if _, err := p.Start(ctx, request(code, plan, h.userID)); err != nil {
		t.Fatal(err)
	}
	if err := p.Run(ctx, code); err != nil {
		t.Fatal(err)
	}
}

// snapshot is everything a tenant's creation makes, without the ids, names
// and times that differ between two tenants.
type snapshot struct {
	Status, Tier, Progress        string
	Steps                         []string
	Version, Differences          int
	AdminRoles                    []string
	Relation                      string
	Objects                       []string
	Models                        int
	Account                       bool
	TenantName, ContactInTemplate string
	Campuses                      int
	// CreatedEvents are the tenant.created events in the outbox.
	CreatedEvents []string
}

func (h *harness) snapshot(t *testing.T, code string) snapshot {
	t.Helper()
	ctx := context.Background()
	var s snapshot
	var id int64
	var dbName string
	if err := h.sys.QueryRow(`SELECT t.id, t.status, d.tier, d.schema_version, d.database_name FROM tenants t
		JOIN tenant_databases d ON d.tenant_id = t.id WHERE t.tenant_code = ?`, code).Scan(&id, &s.Status, &s.Tier, &s.Version, &dbName); err != nil {
		t.Fatalf("snapshot %s: %v", code, err)
	}
	_ = h.sys.QueryRow("SELECT status FROM tenant_init_progress WHERE tenant_id = ?", id).Scan(&s.Progress)
	rows, _ := h.sys.Query("SELECT CONCAT(step_name, ':', status) FROM tenant_init_steps WHERE tenant_id = ? ORDER BY step_order", id)
	for rows.Next() {
		var v string
		_ = rows.Scan(&v)
		s.Steps = append(s.Steps, v)
	}
	rows.Close()
	diffs, err := provisioning.CheckDatabase(ctx, h.server, h.template, dbName)
	if err != nil {
		t.Fatal(err)
	}
	s.Differences = len(diffs)
	_ = h.sys.QueryRow(`SELECT CONCAT(role_in_tenant, '/', status) FROM global_user_tenant_relations WHERE tenant_id = ? AND global_user_id = ?`,
		id, h.userID).Scan(&s.Relation)
	_ = h.sys.QueryRow("SELECT COUNT(*) FROM tenant_ai_model_configs WHERE tenant_id = ?", id).Scan(&s.Models)
	var acct int
	_ = h.sys.QueryRow("SELECT COUNT(*) FROM tenant_accounts WHERE tenant_id = ?", id).Scan(&acct)
	s.Account = acct == 1
	rows, err = h.sys.Query(`SELECT CONCAT(tenant_code, ' ', JSON_VALUE(payload, '$.type'), ' ', JSON_VALUE(payload, '$.tenantCode'))
		FROM webhook_events WHERE tenant_id = ? AND event_type = 'tenant.created' ORDER BY id`, id)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var v string
		_ = rows.Scan(&v)
		s.CreatedEvents = append(s.CreatedEvents, strings.ReplaceAll(v, code, "CODE"))
	}
	rows.Close()
	q := func(query string, dst any) {
		if err := h.server.QueryRow(strings.ReplaceAll(query, "DB.", "`"+dbName+"`."), h.userID).Scan(dst); err != nil {
			t.Fatalf("%s: %v", query, err)
		}
	}
	var roles string
	q(`SELECT GROUP_CONCAT(r.code ORDER BY r.code) FROM DB.users u JOIN DB.user_roles ur ON ur.user_id = u.id
		JOIN DB.roles r ON r.id = ur.role_id WHERE u.global_user_id = ?`, &roles)
	s.AdminRoles = strings.Split(roles, ",")
	q(`SELECT config_value FROM DB.tenant_config WHERE config_key = 'tenant.name' AND ? > 0`, &s.TenantName)
	s.TenantName = strings.TrimSuffix(s.TenantName, code)
	q(`SELECT config_value FROM DB.tenant_config WHERE config_key = 'tenant.contact_phone' AND ? > 0`, &s.ContactInTemplate)
	q(`SELECT COUNT(*) FROM DB.kindergartens WHERE ? > 0`, &s.Campuses)
	tn, err := h.store.Tenant(code)
	if err != nil {
		t.Fatal(err)
	}
	page, err := tn.List(ctx, "", "", 1000)
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range page.Objects {
		s.Objects = append(s.Objects, strings.TrimPrefix(o.Key, tn.Prefix()))
	}
	slices.Sort(s.Objects)
	return s
}

func TestCreateTenant(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.create(t, h.pipeline("api"), "k001", "basic")
	s := h.snapshot(t, "k001")
	if s.Status != tenancy.StatusActive || s.Progress != "completed" || s.Tier != tenancy.TierPooled || s.Differences != 0 {
		t.Fatalf("snapshot %+v", s)
	}
	if s.Relation != "admin/active" || !slices.Contains(s.AdminRoles, "admin") || s.Models != 1 || !s.Account || s.Campuses != 1 {
		t.Fatalf("snapshot %+v", s)
	}
	// The outbox has tenant.created, once (TestCrashAtEachStepIsResumed
	// checks that a resumed pipeline neither loses it nor emits it twice).
	if !slices.Equal(s.CreatedEvents, []string{"CODE tenant.created CODE"}) {
		t.Fatalf("tenant.created events %q, want one", s.CreatedEvents)
	}
	if len(s.Objects) < 10 {
		t.Fatalf("storage layout has %d objects: %v", len(s.Objects), s.Objects)
	}
	v, err := provisioning.Progress(context.Background(), h.sys, "k001")
	if err != nil || v.Percent != 100 || len(v.Steps) != len(provisioning.Steps) {
		t.Fatalf("progress %+v %v", v, err)
	}
	for _, st := range v.Steps {
		if st.Status != "completed" || st.StartedAt == nil || st.CompletedAt == nil {
			t.Errorf("step %+v", st)
		}
	}
}

var errCrash = errors.New("simulated crash")

// TestCrashAtEachStepIsResumed kills the pipeline after each step's work,
// before the step is recorded (so the step runs again on its own leftovers),
// then lets another process (provision-cron) resume once the lease expired.
// The result must equal an uninterrupted run.
func TestCrashAtEachStepIsResumed(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	h.create(t, h.pipeline("api"), "k100", "basic")
	want := h.snapshot(t, "k100")
	for i, step := range provisioning.Steps[2:] {
		code := fmt.Sprintf("k2%02d", i)
		t.Run(step, func(t *testing.T) {
			ctx := context.Background()
			p := h.pipeline("api")
			p.Crash = func(s string) error {
				if s == step {
					return errCrash
				}
				return nil
			}
			if _, err := p.Start(ctx, request(code, "basic", h.userID)); err != nil {
				t.Fatal(err)
			}
			if err := p.Run(ctx, code); !errors.Is(err, errCrash) {
				t.Fatalf("Run = %v, want the crash", err)
			}
			cron := h.pipeline("provision-cron")
			if done, _ := cron.Resume(ctx, 10); len(done) != 0 {
				t.Fatalf("cron resumed %v while the crashed process still held the lease", done)
			}
			cron.Now = func() time.Time { return h.now.Add(2 * time.Minute) } // the lease expired
			done, err := cron.Resume(ctx, 10)
			if err != nil || !slices.Contains(done, code) {
				t.Fatalf("Resume = %v, %v", done, err)
			}
			if got := h.snapshot(t, code); !cmp.Equal(got, want) {
				t.Fatalf("after a crash at %s (-want +got):\n%s", step, cmp.Diff(want, got))
			}
		})
	}
}

func TestAbortLeavesNothing(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	for i, step := range []string{"database", "storage", "activate"} {
		code := fmt.Sprintf("k3%02d", i)
		t.Run(step, func(t *testing.T) {
			ctx := context.Background()
			p := h.pipeline("api")
			p.Crash = func(s string) error {
				if s == step {
					return errCrash
				}
				return nil
			}
			plan := "enterprise" // a siloed user too
			if _, err := p.Start(ctx, request(code, plan, h.userID)); err != nil {
				t.Fatal(err)
			}
			if err := p.Run(ctx, code); !errors.Is(err, errCrash) {
				t.Fatalf("Run = %v", err)
			}
			if err := p.Abort(ctx, code); err != nil {
				t.Fatal(err)
			}
			if err := p.Abort(ctx, code); err != nil { // idempotent
				t.Fatal(err)
			}
			var n int
			for _, q := range []string{
				"SELECT COUNT(*) FROM tenants WHERE tenant_code = '" + code + "'",
				"SELECT COUNT(*) FROM tenant_init_progress WHERE tenant_code = '" + code + "'",
				"SELECT COUNT(*) FROM global_user_tenant_relations WHERE tenant_code = '" + code + "'",
				"SELECT COUNT(*) FROM tenant_databases WHERE database_name LIKE '%" + code + "'",
			} {
				if err := h.sys.QueryRow(q).Scan(&n); err != nil || n != 0 {
					t.Errorf("%s = %d (%v), want 0", q, n, err)
				}
			}
			if err := h.server.QueryRow("SELECT COUNT(*) FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = ?", h.prefix+code).Scan(&n); err != nil || n != 0 {
				t.Errorf("database %s still exists", h.prefix+code)
			}
			if err := h.server.QueryRow("SELECT COUNT(*) FROM mysql.user WHERE user LIKE 'ut\\_%' AND user IN (SELECT user FROM mysql.db WHERE REPLACE(db, '\\\\_', '_') = ?)", h.prefix+code).Scan(&n); err != nil || n != 0 {
				t.Errorf("a siloed user of %s still exists (%v)", code, err)
			}
			tn, _ := h.store.Tenant(code)
			if page, err := tn.List(ctx, "", "", 10); err != nil || len(page.Objects) != 0 {
				t.Errorf("objects left: %+v %v", page.Objects, err)
			}
		})
	}
}

func TestConcurrentCreatesOfOneCode(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	const n = 20
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := h.pipeline(fmt.Sprint("api", i)).Start(context.Background(), request("k500", "basic", h.userID))
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	won, taken := 0, 0
	for err := range errs {
		switch fault.CodeOf(err) {
		case "":
			won++
		case "tenant_code_taken":
			taken++
		default:
			t.Errorf("unexpected error: %v", err)
		}
	}
	if won != 1 || taken != n-1 {
		t.Fatalf("%d won and %d were told the code is taken, want 1 and %d", won, taken, n-1)
	}
}

func TestValidationNamesEveryField(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	p := h.pipeline("api")
	_, err := p.Start(context.Background(), provisioning.Request{Code: "x1", Name: "", ContactName: "a",
		ContactEmail: "not-an-email", ContactPhone: "123", Subdomain: "www", PlanType: "gold"})
	fe, ok := fault.As(err)
	if !ok || fe.Code != "invalid_input" {
		t.Fatalf("err = %v", err)
	}
	for _, f := range []string{"tenantCode", "name", "contactEmail", "contactPhone", "subdomain", "planType"} {
		if _, ok := fe.Fields[f]; !ok {
			t.Errorf("field %s not named: %v", f, fe.Fields)
		}
	}
	var n int
	if err := h.sys.QueryRow("SELECT COUNT(*) FROM tenants").Scan(&n); err != nil || n != 0 {
		t.Fatalf("bad input wrote %d tenants", n)
	}
}

// A code pattern that admits "archives" in the layout "{code}/" must not
// make a tenant whose prefix is the platform's archives of other tenants'
// databases: it is refused as invalid, and nothing is written.
func TestCodeWithoutStoragePrefixIsRefused(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	store, err := objectstore.Load(config.FromMap(map[string]string{
		"STORAGE_BACKEND": "local", "LOCAL_STORAGE_DIR": t.TempDir(), "LOCAL_STORAGE_SECRET": strings.Repeat("s", 32),
		"TENANT_STORAGE_PREFIX": "{code}/",
	}), true)
	if err != nil {
		t.Fatal(err)
	}
	p := h.pipeline("api")
	p.Storage, p.CodePattern = store, regexp.MustCompile(`^[a-z]+$`)
	_, err = p.Start(context.Background(), request("archives", "basic", h.userID))
	if fe, ok := fault.As(err); !ok || fe.Code != "invalid_input" || fe.Fields["tenantCode"] == "" {
		t.Fatalf("tenant archives in layout {code}/: err = %v, want invalid_input naming tenantCode", err)
	}
	var n int
	if err := h.sys.QueryRow("SELECT COUNT(*) FROM tenants").Scan(&n); err != nil || n != 0 {
		t.Fatalf("the refused code wrote %d tenants (%v)", n, err)
	}
	if _, err := p.Start(context.Background(), request("archive", "basic", h.userID)); err != nil {
		t.Fatalf("tenant archive (its own prefix archive/): %v", err)
	}
}

// A code whose database name is a warm pool database's name must be refused:
// with the pool empty its database step drops "its" database before cloning
// it, which is the database another tenant claimed from the pool (and Abort
// drops it too).
func TestCodeNamingAWarmDatabaseIsRefused(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	ctx := context.Background()
	if _, err := provisioning.EnsureClusterTemplate(ctx, h.sys, h.box, h.clusterID, h.template, logging.Discard()); err != nil {
		t.Fatal(err)
	}
	if _, err := provisioning.RefillPool(ctx, h.sys, h.box, h.clusterID, h.template, 1, h.prefix, logging.Discard()); err != nil {
		t.Fatal(err)
	}
	p := h.pipeline("api")
	p.CodePattern = regexp.MustCompile(`^[a-z][a-z0-9]{2,}$`) // a deployment's own TENANT_CODE_PATTERN
	h.create(t, p, "k701", "basic")                           // takes the pool's one database
	var warm string
	if err := h.sys.QueryRow("SELECT database_name FROM tenant_databases t JOIN tenants n ON n.id = t.tenant_id WHERE n.tenant_code = 'k701'").Scan(&warm); err != nil {
		t.Fatal(err)
	}
	code := strings.TrimPrefix(warm, h.prefix)
	_, err := p.Start(ctx, request(code, "basic", h.userID))
	if fe, ok := fault.As(err); !ok || fe.Code != "invalid_input" || fe.Fields["tenantCode"] == "" {
		runErr := p.Run(ctx, code)
		var n int
		cerr := h.server.QueryRow("SELECT COUNT(*) FROM `" + warm + "`.tenant_config WHERE config_key = 'tenant.name' AND config_value = 'Kindergarten k701'").Scan(&n)
		t.Fatalf("code %q (k701's database %s) accepted: start %v, run %v; k701's name rows left in it: %d (%v)", code, warm, err, runErr, n, cerr)
	}
}

// readsOnlyItsOwn checks that siloed tenant code, routed as requests are,
// reads its own database and is denied other's.
func (h *harness) readsOnlyItsOwn(t *testing.T, code, other string) {
	t.Helper()
	svc := &tenancy.Service{Registry: tenancy.NewRegistry(h.sys, tenancy.RegistryOptions{}), Router: tenancy.NewRouter(h.sys, h.box, tenancy.RouterOptions{})}
	defer svc.Router.Close()
	ctx := context.Background()
	tn, err := svc.Registry.ByCode(ctx, code)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := svc.Router.Conn(ctx, tn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	var n int
	if err := conn.QueryRowContext(ctx, "SELECT COUNT(*) FROM roles").Scan(&n); err != nil || n == 0 {
		t.Fatalf("siloed %s reads its own roles: %d %v", code, n, err)
	}
	err = conn.QueryRowContext(ctx, "SELECT COUNT(*) FROM `"+h.prefix+strings.ReplaceAll(other, "-", "_")+"`.roles").Scan(&n)
	if err == nil || !strings.Contains(err.Error(), "denied") {
		t.Fatalf("siloed %s read %s's roles (%d rows): %v", code, other, n, err)
	}
}

func TestSiloedTenantIsolatedByGrants(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	p := h.pipeline("api")
	h.create(t, p, "k601", "enterprise")
	h.create(t, p, "k602", "basic")
	s := h.snapshot(t, "k601")
	if s.Tier != tenancy.TierSiloed || s.Differences != 0 {
		t.Fatalf("siloed snapshot %+v", s)
	}
	h.readsOnlyItsOwn(t, "k601", "k602")
}

func TestPlacementPicksTheLeastLoadedClusterWithRoom(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	ctx := context.Background()
	// A second cluster (the same server under another name) with room for one.
	second, err := provisioning.EnsureCluster(ctx, h.sys, h.box, "second", sqldbtest.ServerDSN(t), 1)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.sys.Exec("UPDATE db_clusters SET max_tenants = 1 WHERE id = ?", h.clusterID); err != nil {
		t.Fatal(err)
	}
	p := h.pipeline("api")
	h.create(t, p, "k701", "basic")
	h.create(t, p, "k702", "basic")
	var clusters []int64
	rows, _ := h.sys.Query("SELECT cluster_id FROM tenant_databases ORDER BY cluster_id")
	for rows.Next() {
		var c int64
		_ = rows.Scan(&c)
		clusters = append(clusters, c)
	}
	rows.Close()
	if !slices.Equal(clusters, []int64{h.clusterID, second}) {
		t.Fatalf("tenants placed on %v, want one on each of %d and %d", clusters, h.clusterID, second)
	}
	// Both full: the third waits, failed with no_capacity, nothing placed.
	if _, err := p.Start(ctx, request("k703", "basic", h.userID)); err != nil {
		t.Fatal(err)
	}
	if err := p.Run(ctx, "k703"); fault.CodeOf(err) != "no_capacity" {
		t.Fatalf("Run = %v, want no_capacity", err)
	}
	v, _ := provisioning.Progress(ctx, h.sys, "k703")
	if v.Status != "failed" || v.Error == nil {
		t.Fatalf("progress %+v", v)
	}
}

// BenchmarkTenantCreateWarm: creating a tenant (the whole pipeline: reserve,
// place, claim a warm database, seed, admin, storage, AI models, activate)
// with the warm pool filled, against the seed's way of making a tenant
// database (CREATE DATABASE + sequential CREATE TABLE ... LIKE). Reports the
// p50 and p90 of 10 creates, the baseline's median of 3, and the speed-up.
// Run it with -benchtime 1x.
func BenchmarkTenantCreateWarm(b *testing.B) {
	const creates = 10
	ctx := context.Background()
	h := newHarness(b)
	if _, err := provisioning.EnsureClusterTemplate(ctx, h.sys, h.box, h.clusterID, h.template, logging.Discard()); err != nil {
		b.Fatal(err)
	}
	var tables []string
	rows, err := h.server.QueryContext(ctx, "SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? AND TABLE_TYPE = 'BASE TABLE'", h.template)
	if err != nil {
		b.Fatal(err)
	}
	for rows.Next() {
		var n string
		_ = rows.Scan(&n)
		tables = append(tables, n)
	}
	rows.Close()
	for i := 0; i < b.N; i++ {
		if _, err := provisioning.RefillPool(ctx, h.sys, h.box, h.clusterID, h.template, creates, h.prefix, logging.Discard()); err != nil {
			b.Fatal(err)
		}
		p := &provisioning.Pipeline{Sys: h.sys, Box: h.box, Storage: h.store, Template: h.template, Prefix: h.prefix,
			Owner: "bench", Log: logging.Discard()}
		var took []time.Duration
		for j := range creates {
			code := fmt.Sprintf("k9%d%02d", i, j)
			start := time.Now()
			if _, err := p.Start(ctx, request(code, "basic", h.userID)); err != nil {
				b.Fatal(err)
			}
			if err := p.Run(ctx, code); err != nil {
				b.Fatal(err)
			}
			took = append(took, time.Since(start))
			var warm int
			_ = h.sys.QueryRow("SELECT COUNT(*) FROM warm_pool_databases WHERE claimed_by_tenant_id = (SELECT id FROM tenants WHERE tenant_code = ?)", code).Scan(&warm)
			if warm != 1 {
				b.Fatalf("%s did not get a warm database", code)
			}
		}
		var base []time.Duration
		for j := range 3 {
			target := fmt.Sprintf("%sbase%d_%d", h.prefix, i, j)
			start := time.Now()
			if err := sqldb.CreateDatabase(ctx, h.server, target); err != nil {
				b.Fatal(err)
			}
			for _, t := range tables {
				if _, err := h.server.ExecContext(ctx, fmt.Sprintf("CREATE TABLE `%s`.`%s` LIKE `%s`.`%s`", target, t, h.template, t)); err != nil {
					b.Fatal(err)
				}
			}
			base = append(base, time.Since(start))
			if err := sqldb.DropDatabase(ctx, h.server, target); err != nil {
				b.Fatal(err)
			}
		}
		slices.Sort(took)
		slices.Sort(base)
		p50, p90, bm := took[len(took)/2], took[len(took)*9/10], base[len(base)/2]
		b.ReportMetric(float64(p50.Microseconds())/1000, "p50-ms")
		b.ReportMetric(float64(p90.Microseconds())/1000, "p90-ms")
		b.ReportMetric(float64(bm.Microseconds())/1000, "baseline-ms")
		b.ReportMetric(float64(bm)/float64(p50), "speedup")
	}
}
