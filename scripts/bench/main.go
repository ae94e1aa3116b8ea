// Command bench measures unitenant and writes BENCHMARKS.md: the machine, the
// date, and every figure with its target, all measured in this run (nothing
// is typed in by hand). scripts/bench.sh builds what it measures first.
//
//	go run ./scripts/bench -bin .dev/bin -dist dist -out BENCHMARKS.md
package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/unitenant/unitenant/shared/sqldb"
)

func main() {
	bin := flag.String("bin", ".dev/bin", "function binaries for this machine")
	dist := flag.String("dist", "dist", "deployable bootstraps (make build)")
	out := flag.String("out", "BENCHMARKS.md", "report to write")
	starts := flag.Int("starts", 20, "cold starts to measure")
	flag.Parse()
	if err := run(*bin, *dist, *out, *starts); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

// row is one measured figure.
type row struct {
	Name, Value, Target string
	Met                 bool
	HasTarget           bool
}

// goBenches are the Go benchmarks the report is built from.
var goBenches = []struct{ pkg, pattern, benchtime string }{
	{"./shared/httpapi", "StandardStack", "1s"},
	{"./shared/tenancy", "RoutingOverhead", "1s"}, // 5 alternating rounds of each
	{"./shared/tenancy", "Connections500Tenants", "1x"},
	{"./shared/provisioning", "TenantCreateWarm", "1x"},
	{"./shared/provisioning", "CloneTemplate", "10x"},
	{"./shared/provisioning", "RefillPool", "3x"},
	{"./shared/rollout", "RolloutAlter200", "1x"},
	{"./shared/rollout", "RolloutNothingPending", "1x"},
	{"./shared/lifecycle", "Purge", "1x"},
	{"./functions/ai-chat", "BridgeOverhead", "1x"},
}

// section is a titled table of the report.
type section struct {
	title string
	rows  []row
}

func run(bin, dist, out string, starts int) error {
	durability, restore, err := durableCommits(os.Getenv("MYSQL_DSN"))
	if err != nil {
		return err
	}
	defer restore()
	var rows []row

	cold, err := coldStarts(filepath.Join(bin, "health"), starts)
	if err != nil {
		return fmt.Errorf("cold start: %w", err)
	}
	med := percentile(cold, 50)
	rows = append(rows, row{
		Name:   fmt.Sprintf("Cold start, health, local mode: process start to first 200 (median of %d)", starts),
		Value:  fmt.Sprintf("%.1f ms (min %.1f, p90 %.1f, max %.1f)", ms(med), ms(cold[0]), ms(percentile(cold, 90)), ms(cold[len(cold)-1])),
		Target: "≤ 50 ms", HasTarget: true, Met: med <= 50*time.Millisecond,
	})

	sizes, err := filepath.Glob(filepath.Join(dist, "*", "bootstrap"))
	if err != nil || len(sizes) == 0 {
		return fmt.Errorf("no bootstraps under %s (run make build)", dist)
	}
	sort.Strings(sizes)
	for _, p := range sizes {
		fi, err := os.Stat(p)
		if err != nil {
			return err
		}
		mb := float64(fi.Size()) / 1e6
		rows = append(rows, row{
			Name:   "Size of " + filepath.Base(filepath.Dir(p)) + "/bootstrap (linux/arm64, -s -w)",
			Value:  fmt.Sprintf("%.2f MB", mb),
			Target: "≤ 15 MB", HasTarget: true, Met: mb <= 15,
		})
	}

	results, raw, err := runGoBenches()
	if err != nil {
		return err
	}
	login, err := loginLatency(filepath.Join(bin, "login"), filepath.Join(bin, "tenantctl"), 30)
	if err != nil {
		return fmt.Errorf("login latency: %w", err)
	}
	sections := []section{
		{"Foundation (issue 2)", rows},
		{"Tenant routing and login (issue 3)", append(routingRows(results), login...)},
		{"Onboarding (issue 4)", onboardingRows(results)},
		{"Lifecycle (issue 5)", rolloutRows(results)},
		{"AI bridge (issue 6)", bridgeRows(results)},
	}

	var b bytes.Buffer
	fmt.Fprintf(&b, "# Benchmarks\n\nWritten by `make bench` (scripts/bench); every figure below was measured in that run.\n\n")
	fmt.Fprintf(&b, "- Date: %s\n", time.Now().UTC().Format("2006-01-02 15:04 MST"))
	for _, m := range append(machine(), durability) {
		fmt.Fprintf(&b, "- %s\n", m)
	}
	var missed []row
	for _, sec := range sections {
		fmt.Fprintf(&b, "\n## %s\n\n| figure | measured | target | met |\n|---|---|---|---|\n", sec.title)
		for _, r := range sec.rows {
			met := "—"
			if r.HasTarget {
				met = map[bool]string{true: "yes", false: "**no**"}[r.Met]
				if !r.Met {
					missed = append(missed, r)
				}
			}
			fmt.Fprintf(&b, "| %s | %s | %s | %s |\n", r.Name, r.Value, r.Target, met)
		}
	}
	fmt.Fprintf(&b, "\n## Go benchmarks (raw)\n\n```\n%s```\n", raw)
	if err := os.WriteFile(out, b.Bytes(), 0o644); err != nil {
		return err
	}
	fmt.Print(b.String())
	for _, r := range missed {
		fmt.Fprintf(os.Stderr, "bench: target missed: %s = %s (target %s)\n", r.Name, r.Value, r.Target)
	}
	return nil
}

// runGoBenches runs goBenches and returns metric values by benchmark name
// (without the -GOMAXPROCS suffix) and unit, and the raw result lines.
func runGoBenches() (map[string]map[string]float64, string, error) {
	all := map[string]map[string][]float64{} // every run of a (sub-)benchmark, by metric
	var raw strings.Builder
	for _, gb := range goBenches {
		cmd := exec.Command("go", "test", "-run", "^$", "-bench", "^Benchmark"+gb.pattern+"$", "-benchtime", gb.benchtime,
			"-benchmem", "-count", "1", "-timeout", "20m", gb.pkg)
		cmd.Env = os.Environ()
		out, err := cmd.CombinedOutput()
		if err != nil {
			return nil, "", fmt.Errorf("%s %s: %v\n%s", gb.pkg, gb.pattern, err, out)
		}
		for _, line := range strings.Split(string(out), "\n") {
			if !strings.HasPrefix(line, "Benchmark") {
				continue
			}
			raw.WriteString(line + "\n")
			f := strings.Fields(line)
			name := f[0]
			if i := strings.LastIndexByte(name, '-'); i > 0 {
				name = name[:i]
			}
			if i := strings.LastIndexByte(name, '#'); i > 0 {
				name = name[:i] // a repeated sub-benchmark: another round of the same
			}
			if all[name] == nil {
				all[name] = map[string][]float64{}
			}
			for i := 2; i+1 < len(f); i += 2 {
				if v, err := strconv.ParseFloat(f[i], 64); err == nil {
					all[name][f[i+1]] = append(all[name][f[i+1]], v)
				}
			}
		}
	}
	// A benchmark run in rounds is reported by each metric's median.
	results := map[string]map[string]float64{}
	for name, metrics := range all {
		results[name] = map[string]float64{}
		for k, vs := range metrics {
			slices.Sort(vs)
			results[name][k] = vs[len(vs)/2]
		}
	}
	return results, raw.String(), nil
}

// routingRows are issue 3's figures: routing overhead against a pool opened
// on the tenant's database, and connections against a pool per tenant.
func routingRows(res map[string]map[string]float64) []row {
	var rows []row
	direct, routed := res["BenchmarkRoutingOverhead/direct"]["ns/op"], res["BenchmarkRoutingOverhead/routed"]["ns/op"]
	if direct > 0 && routed > 0 {
		ratio := routed / direct
		rows = append(rows, row{
			Name:   "Routing overhead: PK SELECT through tenancy middleware + router vs a pool opened on the tenant DB (hot tenant)",
			Value:  fmt.Sprintf("%.3fx (%.1f µs vs %.1f µs)", ratio, routed/1000, direct/1000),
			Target: "≤ 1.15x", HasTarget: true, Met: ratio <= 1.15,
		})
	}
	if c, ok := res["BenchmarkConnections500Tenants"]; ok {
		rows = append(rows, row{
			Name:   "Connections: 500 tenants, 32 workers, 10 s — most MySQL connections held by the process",
			Value:  fmt.Sprintf("%.0f (%.0f req/s)", c["max-conns"], c["req/s"]),
			Target: "≤ 32", HasTarget: true, Met: c["max-conns"] <= 32 && c["max-conns"] > 0,
		})
		seed := fmt.Sprintf("%.0f (%.0f req/s", c["seed-max-conns"], c["seed-req/s"])
		if c["seed-refused"] > 0 {
			seed += fmt.Sprintf(", %.0f queries failed: the server ran out of connections", c["seed-refused"])
		}
		rows = append(rows, row{
			Name:  "Baseline, same load: a pool per tenant (seed 001 DatabaseManager, connectionLimit 10)",
			Value: seed + ")",
		})
		if c["seed-max-conns"] > 0 {
			rows = append(rows, row{Name: "Connections, ours vs the baseline", Value: fmt.Sprintf("%.1fx fewer", c["seed-max-conns"]/c["max-conns"])})
		}
	}
	return rows
}

// onboardingRows are issue 4's figures: a cold clone of the full template
// against the seed's CREATE TABLE ... LIKE, and the warm pool's refill rate.
func onboardingRows(res map[string]map[string]float64) []row {
	var rows []row
	if c := res["BenchmarkCloneTemplate"]; c["clone-ms"] > 0 && c["baseline-ms"] > 0 {
		ratio := c["clone/baseline"]
		rows = append(rows, row{
			Name: fmt.Sprintf("Cold clone (pool empty) of the full template: %.0f tables, %.0f foreign keys, seed rows and ledger, vs the baseline (medians, runs alternated)",
				c["tables"], c["fks"]),
			Value:  fmt.Sprintf("%.2fx (%.0f ms vs %.0f ms)", ratio, c["clone-ms"], c["baseline-ms"]),
			Target: "≤ 1.00x (no slower than the baseline)", HasTarget: true, Met: ratio <= 1,
		}, row{
			Name:  "Baseline, the seed's way: CREATE DATABASE + sequential CREATE TABLE ... LIKE per template table (no foreign keys, no rows)",
			Value: fmt.Sprintf("%.0f ms", c["baseline-ms"]),
		})
	}
	if c := res["BenchmarkTenantCreateWarm"]; c["p50-ms"] > 0 {
		rows = append(rows, row{
			Name:   "tenant-create p50 with the warm pool (whole pipeline: reserve → activate; 10 creates)",
			Value:  fmt.Sprintf("%.1f ms (p90 %.1f ms)", c["p50-ms"], c["p90-ms"]),
			Target: "≤ 150 ms", HasTarget: true, Met: c["p50-ms"] <= 150,
		}, row{
			Name:   "tenant-create with the warm pool vs the baseline's database alone (CREATE DATABASE + sequential CREATE TABLE ... LIKE)",
			Value:  fmt.Sprintf("%.1fx faster (%.1f ms vs %.0f ms)", c["speedup"], c["p50-ms"], c["baseline-ms"]),
			Target: "≥ 5x", HasTarget: true, Met: c["speedup"] >= 5,
		})
	}
	if p := res["BenchmarkRefillPool"]; p["dbs/s"] > 0 {
		rows = append(rows, row{
			Name:  "Warm pool refill: ready databases made per second (empty pool of 4, clone + bookkeeping)",
			Value: fmt.Sprintf("%.1f databases/s (%.0f ms each)", p["dbs/s"], 1000/p["dbs/s"]),
		})
	}
	return rows
}

// rolloutRows are issue 5's schema roll-out figures: one ALTER TABLE to 200
// tenant databases against a sequential loop, and a roll-out with nothing
// pending over 1,000 tenants.
func rolloutRows(res map[string]map[string]float64) []row {
	var rows []row
	if a := res["BenchmarkRolloutAlter200"]; a["rollout-ms"] > 0 {
		rows = append(rows, row{
			Name: fmt.Sprintf("Schema roll-out of one ALTER TABLE to 200 tenant databases (waves 1 / 10 %% / rest, %.0f at once, one pool per cluster) vs a sequential loop (pool per tenant, Runner.Up, mirror update); medians of 3 alternated rounds",
				a["concurrency"]),
			Value:  fmt.Sprintf("%.2fx faster (%.0f ms vs %.0f ms)", a["speedup"], a["rollout-ms"], a["loop-ms"]),
			Target: "≥ 3x on 2 cores", HasTarget: true, Met: a["speedup"] >= 3,
		}, row{
			Name: fmt.Sprintf("The server's own ceiling: the same bare ALTER TABLEs %.0f at once vs one at a time (MariaDB syncs each ALTER's .frm and DDL log)",
				a["concurrency"]),
			Value: fmt.Sprintf("%.2fx", a["ddl-ceiling"]),
		})
	}
	if p, ok := res["BenchmarkRolloutNothingPending"]; ok {
		rows = append(rows, row{
			Name:   fmt.Sprintf("Schema roll-out with nothing pending: %.0f tenants, all at the latest version in the ledger (template check included)", p["tenants"]),
			Value:  fmt.Sprintf("%.1f ms, %.0f tenant connections", p["max-ms"], p["tenant-conns"]),
			Target: "≤ 1 s, 0 tenant connections", HasTarget: true, Met: p["max-ms"] > 0 && p["max-ms"] <= 1000 && p["tenant-conns"] == 0,
		})
	}
	if p := res["BenchmarkPurge"]; p["tenants/min"] > 0 {
		rows = append(rows, row{
			Name:  "cleanup-cron: tenants purged per minute (archive of 80 tables, drop, objects; one run)",
			Value: fmt.Sprintf("%.0f tenants/min", p["tenants/min"]),
		})
	}
	return rows
}

// bridgeRows reports BenchmarkBridgeOverhead: ai-chat against a fake
// provider on loopback that answers at once, vs calling that fake directly.
func bridgeRows(res map[string]map[string]float64) []row {
	a, ok := res["BenchmarkBridgeOverhead"]
	if !ok || a["bridge-rps"] == 0 {
		return nil
	}
	return []row{{
		Name: fmt.Sprintf("Bridge overhead, 50 concurrent clients over 10 tenants at a steady %.0f calls/s (half the bridge's maximum): p50 added latency vs calling the fake provider directly (bridge %.2f ms, direct %.2f ms); auth by API key, rate limits, budget hold, two call-log writes, settlement: 3 durable commits per call, the answer waiting for 3 round trips to MySQL (the settlement follows it), %.1f ms per durable commit on this server; the function's MySQL pool as deployed (%.0f connections, MYSQL_MAX_OPEN_CONNS); latencies of %.0f bridged calls pooled over 5 alternating rounds of 3 s",
			a["paced-rps"], a["paced-bridge-p50-ms"], a["paced-direct-p50-ms"], a["commit-ms"], a["pool-conns"], a["paced-calls"]),
		Value:  fmt.Sprintf("%.2f ms", a["paced-p50-added-ms"]),
		Target: "≤ 2 ms", HasTarget: true, Met: a["paced-p50-added-ms"] <= 2,
	}, {
		Name:   "Bridge overhead, same run: p99 added latency (all rounds' calls pooled)",
		Value:  fmt.Sprintf("%.2f ms", a["paced-p99-added-ms"]),
		Target: "≤ 10 ms", HasTarget: true, Met: a["paced-p99-added-ms"] <= 10,
	}, {
		Name: "Bridge overhead, same run: p99 added latency of each round on its own (how much the slowest 1% moves between rounds on this shared machine)",
		Value: fmt.Sprintf("min %.2f ms, median %.2f ms, max %.2f ms",
			a["round-p99-added-min-ms"], a["round-p99-added-median-ms"], a["round-p99-added-max-ms"]),
	}, {
		Name: "Same run: one durable commit on the server (a one-row autocommit INSERT every 50 ms) while the bridged paced rounds run",
		Value: fmt.Sprintf("p50 %.2f ms, p99 %.2f ms, max %.2f ms (%.0f commits)",
			a["paced-commit-p50-ms"], a["paced-commit-p99-ms"], a["paced-commit-max-ms"], a["paced-commits"]),
	}, {
		Name:  "Same run: two durable commits one after the other (the one above, then a second on the same connection), for scale: what an answer would wait for if its row's commit had to wait for the begin's to be flushed; the row's statement waits only for the begin's commit to free its rows",
		Value: fmt.Sprintf("p50 %.2f ms, p99 %.2f ms", a["paced-commit-pair-p50-ms"], a["paced-commit-pair-p99-ms"]),
	}, {
		Name: fmt.Sprintf("Same run: where the slowest 1%% of the bridged paced calls (%.0f) spent their time, by their Server-Timing headers (medians): inside ai-chat's route, of which authenticating the key, the begin (limits, budget hold, row), the provider, and the record (the row made durable: the server's log flush); the latency their clients saw in brackets",
			a["slow1-calls"]),
		Value: fmt.Sprintf("route %.2f ms: auth %.2f, begin %.2f, provider %.2f, record %.2f ms (%.1f ms); the record took longer than the begin and the provider together in %.0f%% of them",
			a["slow1-route-ms"], a["slow1-auth-ms"], a["slow1-begin-ms"], a["slow1-provider-ms"], a["slow1-record-ms"], a["slow1-latency-ms"], a["slow1-record-most-pct"]),
	}, {
		Name: "Bridge flat out, 50 clients over 10 tenants, metering, budget and rate limits on: requests per second (the fake provider alone serves the same clients at the figure in brackets)",
		Value: fmt.Sprintf("%.0f req/s (direct %.0f req/s); added latency at saturation p50 %.1f ms, p99 %.1f ms; %.0f failed calls",
			a["bridge-rps"], a["direct-rps"], a["sat-p50-added-ms"], a["sat-p99-added-ms"], a["bridge-errors"]),
	}, {
		Name:  "Bridge flat out, all 50 clients on one tenant (one account row and one rate-limit counter every call locks)",
		Value: fmt.Sprintf("%.0f req/s, p50 %.1f ms", a["one-tenant-rps"], a["one-tenant-p50-ms"]),
	}}
}

// loginLatency starts the login function in local mode with the production
// bcrypt cost, logs a user in n times, and compares the median with the
// median of bcrypt's own comparison at that cost.
func loginLatency(login, tenantctl string, n int) ([]row, error) {
	const phone, password, cost = "13900000009", "bench-pass-123", 12
	env := append(os.Environ(), fmt.Sprintf("BCRYPT_COST=%d", cost), "LOG_LEVEL=warn")
	add := exec.Command(tenantctl, "user", "add", "--phone", phone, "--password", password, "--name", "Bench")
	add.Env = env
	if out, err := add.CombinedOutput(); err != nil && !strings.Contains(string(out), "taken") && !strings.Contains(string(out), "exists") {
		return nil, fmt.Errorf("tenantctl user add: %v\n%s", err, out)
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(login)
	cmd.Env = append(env, "PORT="+port)
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	url := "http://127.0.0.1:" + port + "/api/auth/login"
	body := fmt.Sprintf(`{"phone":%q,"password":%q}`, phone, password)
	var lat []time.Duration
	deadline := time.Now().Add(10 * time.Second)
	for len(lat) < n+1 { // the first login warms the process up and is not counted
		start := time.Now()
		resp, err := http.Post(url, "application/json", strings.NewReader(body))
		if err != nil {
			if time.Now().After(deadline) {
				return nil, err
			}
			time.Sleep(10 * time.Millisecond)
			continue
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			return nil, fmt.Errorf("login answered %d", resp.StatusCode)
		}
		lat = append(lat, time.Since(start))
	}
	lat = lat[1:]
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })

	hash, err := bcrypt.GenerateFromPassword([]byte(password), cost)
	if err != nil {
		return nil, err
	}
	var bc []time.Duration
	for range n {
		start := time.Now()
		_ = bcrypt.CompareHashAndPassword(hash, []byte(password))
		bc = append(bc, time.Since(start))
	}
	sort.Slice(bc, func(i, j int) bool { return bc[i] < bc[j] })
	lp, bp := percentile(lat, 50), percentile(bc, 50)
	return []row{
		{Name: fmt.Sprintf("Login latency p50 (POST /api/auth/login, bcrypt cost %d, %d logins)", cost, n),
			Value: fmt.Sprintf("%.1f ms (p90 %.1f ms)", ms(lp), ms(percentile(lat, 90)))},
		{Name: "bcrypt's share of it (median CompareHashAndPassword at that cost)",
			Value: fmt.Sprintf("%.0f%% (%.1f ms)", 100*float64(bp)/float64(lp), ms(bp))},
	}, nil
}

// coldStarts starts binary n times in local mode and measures each time from
// exec to the first 200 from /api/health.
func coldStarts(binary string, n int) ([]time.Duration, error) {
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 5 * time.Second}
	var out []time.Duration
	for i := 0; i < n; i++ {
		port, err := freePort()
		if err != nil {
			return nil, err
		}
		cmd := exec.Command(binary)
		cmd.Env = append(os.Environ(), "PORT="+port, "LOG_LEVEL=warn")
		url := "http://127.0.0.1:" + port + "/api/health"
		start := time.Now()
		if err := cmd.Start(); err != nil {
			return nil, err
		}
		d, err := firstOK(client, url, start)
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		if err != nil {
			return nil, err
		}
		out = append(out, d)
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out, nil
}

func firstOK(client *http.Client, url string, start time.Time) (time.Duration, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for ctx.Err() == nil {
		req, _ := http.NewRequestWithContext(ctx, "GET", url, nil)
		resp, err := client.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return time.Since(start), nil
			}
			return 0, fmt.Errorf("health answered %d (is MYSQL_DSN migrated?)", resp.StatusCode)
		}
		time.Sleep(200 * time.Microsecond) // connection refused: not listening yet
	}
	return 0, fmt.Errorf("no 200 from %s within 10s", url)
}

func freePort() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return strconv.Itoa(ln.Addr().(*net.TCPAddr).Port), nil
}

func percentile(sorted []time.Duration, p int) time.Duration {
	i := (len(sorted) - 1) * p / 100
	return sorted[i]
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// durableCommits makes the server make every commit durable for the run, as
// a production server does: the bridge's figures wait on commits, and a
// server that does not sync them (the private dev server runs with
// innodb_flush_log_at_trx_commit=2 for speed) would flatter them. restore
// puts back what the server had, also when the run is interrupted. The
// note says what the figures were taken with.
func durableCommits(dsn string) (note string, restore func(), err error) {
	db, err := sqldb.OpenDSN(dsn)
	if err != nil {
		return "", nil, fmt.Errorf("durable commits: %w", err)
	}
	var (
		flush, syncBinlog int
		logBin, dblwr     bool
	)
	err = db.QueryRow("SELECT @@innodb_flush_log_at_trx_commit, @@sync_binlog, @@log_bin, @@innodb_doublewrite").Scan(&flush, &syncBinlog, &logBin, &dblwr)
	if err != nil {
		db.Close()
		return "", nil, fmt.Errorf("durable commits: read the server's settings: %w", err)
	}
	binlog := "binary log off"
	if logBin {
		binlog = fmt.Sprintf("binary log on, sync_binlog=%d", syncBinlog)
	}
	note = fmt.Sprintf("MySQL durability: innodb_flush_log_at_trx_commit=1 (each commit synced to disk), %s, doublewrite %s",
		binlog, map[bool]string{true: "on", false: "off"}[dblwr])
	if flush == 1 {
		db.Close()
		return note, func() {}, nil
	}
	if _, err := db.Exec("SET GLOBAL innodb_flush_log_at_trx_commit = 1"); err != nil {
		db.Close()
		return "", nil, fmt.Errorf("durable commits: the server runs with innodb_flush_log_at_trx_commit=%d and this user cannot set it to 1: %w", flush, err)
	}
	note += fmt.Sprintf(" (set for this run; the server runs with %d)", flush)
	var once sync.Once
	restore = func() {
		once.Do(func() {
			if _, err := db.Exec("SET GLOBAL innodb_flush_log_at_trx_commit = ?", flush); err != nil {
				fmt.Fprintf(os.Stderr, "bench: put back innodb_flush_log_at_trx_commit=%d: %v\n", flush, err)
			}
			db.Close()
		})
	}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	go func() {
		s := <-sig
		restore()
		fmt.Fprintln(os.Stderr, "bench:", s)
		os.Exit(1)
	}()
	return note, restore, nil
}

// machine describes where the figures were taken.
func machine() []string {
	var m []string
	if out, err := exec.Command("uname", "-srm").Output(); err == nil {
		m = append(m, "OS: "+strings.TrimSpace(string(out)))
	}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(l, "model name") {
				m = append(m, "CPU: "+strings.TrimSpace(strings.SplitN(l, ":", 2)[1]))
				break
			}
		}
	}
	m = append(m, fmt.Sprintf("Cores: %d", runtime.NumCPU()))
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(l, "MemTotal:") {
				f := strings.Fields(l)
				if kb, err := strconv.Atoi(f[1]); err == nil {
					m = append(m, fmt.Sprintf("Memory: %.1f GiB", float64(kb)/(1<<20)))
				}
			}
		}
	}
	m = append(m, "Go: "+runtime.Version())
	if db, err := sqldb.OpenDSN(os.Getenv("MYSQL_DSN")); err == nil {
		var v string
		if db.QueryRow("SELECT VERSION()").Scan(&v) == nil {
			m = append(m, "MySQL server: "+v)
		}
		db.Close()
	}
	return m
}
