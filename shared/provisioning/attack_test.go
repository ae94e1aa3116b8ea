package provisioning_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"regexp"
	"strings"
	"sync"
	"testing"

	"github.com/unitenant/unitenant/shared/fault"
	"github.com/unitenant/unitenant/shared/provisioning"
	"github.com/unitenant/unitenant/shared/tenancy"
)

// MySQL reads '_' and '%' in the database of a database-level GRANT as
// wildcards: a siloed user granted `<prefix>ab_c`.* could reach
// `<prefix>abxc`, the database of tenant abxc, under a code pattern that
// allows hyphens (which become underscores in database names).
func TestSiloedGrantIsNoWildcard(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	p := h.pipeline("api")
	p.CodePattern = regexp.MustCompile(`^[a-z][a-z0-9-]{2,20}$`)
	h.create(t, p, "ab-c", "enterprise")
	h.create(t, p, "abxc", "basic")
	h.readsOnlyItsOwn(t, "ab-c", "abxc")
}

// A code whose database name is the template's would have its database
// step drop the template and put the tenant's database in its place.
func TestCodeNamingTheTemplateIsRefused(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	p := h.pipeline("api")
	p.CodePattern = regexp.MustCompile(`^[a-z]+$`)
	_, err := p.Start(context.Background(), request("template", "basic", h.userID))
	fe, ok := fault.As(err)
	if !ok || fe.Code != "invalid_input" || fe.Fields["tenantCode"] == "" {
		t.Fatalf("code naming the template %s: %v, want invalid_input naming tenantCode", h.template, err)
	}
}

// Lengths are checked on the trimmed values: the values stored must be
// those, not the padded ones (which do not fit their columns: a 500).
func TestPaddedFieldsAreStoredTrimmed(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	p := h.pipeline("api")
	r := request("k301", "basic", h.userID)
	r.Name = strings.Repeat(" ", 300) + "Sunshine" + strings.Repeat("\t", 10)
	r.ContactName = strings.Repeat(" ", 200) + "Li Hua"
	r.Address = strings.Repeat(" ", 600) + "1 Main St"
	r.Description = strings.Repeat(" ", 70000) + "about"
	if _, err := p.Start(context.Background(), r); err != nil {
		t.Fatalf("padded fields: %v", err)
	}
	var name, contact, addr, desc string
	if err := h.sys.QueryRow("SELECT tenant_name, contact_name, address, description FROM tenants WHERE tenant_code = 'k301'").
		Scan(&name, &contact, &addr, &desc); err != nil {
		t.Fatal(err)
	}
	if name != "Sunshine" || contact != "Li Hua" || addr != "1 Main St" || desc != "about" {
		t.Fatalf("stored %q %q %q %q", name, contact, addr, desc)
	}
	if err := p.Run(context.Background(), "k301"); err != nil {
		t.Fatal(err)
	}
}

// A name the request accepts (up to 255 characters) must not leave the
// tenant stuck in provisioning: its main campus's name column is shorter.
func TestLongNameIsProvisioned(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	p := h.pipeline("api")
	r := request("k302", "basic", h.userID)
	r.Name = strings.Repeat("幼", 255)
	if _, err := p.Start(context.Background(), r); err != nil {
		t.Fatal(err)
	}
	if err := p.Run(context.Background(), "k302"); err != nil {
		t.Fatalf("a 255-character name: %v", err)
	}
	if s := h.snapshot(t, "k302"); s.Status != tenancy.StatusActive || s.Campuses != 1 || s.TenantName != r.Name {
		t.Fatalf("snapshot %+v", s)
	}
}

// A cluster's max_tenants holds under concurrent creates: a tenant placed
// on it but not yet given its database (cloning, seconds) takes its room.
func TestConcurrentPlacementsKeepTheClusterCapacity(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	ctx := context.Background()
	if _, err := h.sys.Exec("UPDATE db_clusters SET max_tenants = 2 WHERE id = ?", h.clusterID); err != nil {
		t.Fatal(err)
	}
	p := h.pipeline("api")
	codes := []string{"k801", "k802", "k803", "k804", "k805"}
	for _, c := range codes {
		if _, err := p.Start(ctx, request(c, "basic", h.userID)); err != nil {
			t.Fatal(err)
		}
	}
	var wg sync.WaitGroup
	errs := make([]error, len(codes))
	for i, c := range codes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = p.Run(ctx, c)
		}()
	}
	wg.Wait()
	var placed, full int
	for i, err := range errs {
		switch {
		case err == nil:
			placed++
		case fault.CodeOf(err) == "no_capacity":
			full++
		default:
			t.Errorf("%s: %v", codes[i], err)
		}
	}
	var n int
	if err := h.sys.QueryRow("SELECT COUNT(*) FROM tenant_databases WHERE cluster_id = ?", h.clusterID).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 2 || placed != 2 || full != 3 {
		t.Fatalf("%d tenants on a cluster for 2 (%d provisioned, %d refused for capacity)", n, placed, full)
	}
}

// The conflict is named by the key that refused the row, not by a word in
// the duplicate value: a taken code holding "subdomain" is tenant_code_taken.
func TestTakenCodeIsNotReportedAsTakenSubdomain(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	p := h.pipeline("api")
	p.CodePattern = regexp.MustCompile(`^[a-z][a-z0-9]{2,20}$`)
	ctx := context.Background()
	if _, err := p.Start(ctx, request("subdomain1", "basic", h.userID)); err != nil {
		t.Fatal(err)
	}
	r := request("subdomain1", "basic", h.userID)
	r.Subdomain = "another"
	if _, err := p.Start(ctx, r); fault.CodeOf(err) != "tenant_code_taken" {
		t.Fatalf("taken code: %v, want tenant_code_taken", err)
	}
	r = request("k901", "basic", h.userID)
	r.Subdomain = "subdomain1"
	if _, err := p.Start(ctx, r); fault.CodeOf(err) != "subdomain_taken" {
		t.Fatalf("taken subdomain: %v, want subdomain_taken", err)
	}
}

// A siloed user made before grants were escaped holds the wildcard grant:
// provisioning it again (a run resumed after the upgrade) takes it away,
// and leaves the escaped one alone.
func TestSiloedUserLosesAnOldWildcardGrant(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	p := h.pipeline("api")
	p.CodePattern = regexp.MustCompile(`^[a-z][a-z0-9-]{2,20}$`)
	name, err := provisioning.DatabaseName(p.Prefix, "ab-d")
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256([]byte(name))
	user := "'ut_" + hex.EncodeToString(sum[:])[:16] + "'@'%'"
	t.Cleanup(func() { _, _ = h.sys.Exec("DROP USER IF EXISTS " + user) })
	for _, q := range []string{"CREATE USER " + user + " IDENTIFIED BY 'old-password'", "GRANT SELECT ON `" + name + "`.* TO " + user} {
		if _, err := h.sys.Exec(q); err != nil {
			t.Fatal(err)
		}
	}
	h.create(t, p, "ab-d", "enterprise")
	rows, err := h.sys.Query("SHOW GRANTS FOR " + user)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var escaped bool
	for rows.Next() {
		var g string
		if err := rows.Scan(&g); err != nil {
			t.Fatal(err)
		}
		if strings.Contains(g, "`"+name+"`") {
			t.Errorf("the old wildcard grant is still there: %s", g)
		}
		escaped = escaped || strings.Contains(g, "`"+strings.ReplaceAll(name, "_", `\_`)+"`")
	}
	if !escaped {
		t.Error("no escaped grant on the tenant's database")
	}
}

// A punycode subdomain ("xn--...") shows in a browser as another script,
// and can be made to look like another tenant's: refused, as is every
// label RFC 5891 reserves by "--" in its third and fourth characters.
func TestPunycodeSubdomainIsRefused(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	p := h.pipeline("api")
	for _, sub := range []string{"xn--80ak6aa92e", "ab--c"} {
		r := request("k310", "basic", h.userID)
		r.Subdomain = sub
		_, err := p.Start(context.Background(), r)
		fe, ok := fault.As(err)
		if !ok || fe.Code != "invalid_input" || !strings.Contains(fe.Fields["subdomain"], "punycode") {
			t.Fatalf("subdomain %s: %v, want invalid_input naming subdomain", sub, err)
		}
	}
	var n int
	if err := h.sys.QueryRow("SELECT COUNT(*) FROM tenants WHERE tenant_code = 'k310'").Scan(&n); err != nil || n != 0 {
		t.Fatalf("a refused request left %d tenants (%v)", n, err)
	}
	r := request("k310", "basic", h.userID)
	r.Subdomain = "a-b-c"
	if _, err := p.Start(context.Background(), r); err != nil {
		t.Fatalf("a subdomain with single hyphens: %v", err)
	}
}
