package e2e_test

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/unitenant/unitenant/shared/auth"
	"github.com/unitenant/unitenant/tests/testenv"
)

// TestTwoTenantAPIProcessesNeverMixTenants: 50 real tenants, two tenant-api
// processes serving all of them with small pools (so connections hop between
// tenant schemas all the time), 32 concurrent workers; every row read must be
// the tenant's own.
func TestTwoTenantAPIProcessesNeverMixTenants(t *testing.T) {
	t.Parallel()
	const tenants, workers, perWorker = 50, 32, 25
	ctx := context.Background()
	sys := testenv.NewSystem(t)
	tenantsMaker := testenv.NewTenants(t, sys.DB, sys.Box)
	res, err := sys.DB.Exec("INSERT INTO global_users (phone, password_hash, real_name) VALUES ('13700000000', 'unused', 'Iso Tester')")
	if err != nil {
		t.Fatal(err)
	}
	userID, _ := res.LastInsertId()

	// The fleet: each tenant has one class named after it.
	codes := make([]string, tenants)
	var wg sync.WaitGroup
	errc := make(chan error, tenants)
	sem := make(chan struct{}, 4)
	for i := range codes {
		codes[i] = fmt.Sprintf("k%03d", 900+i)
		wg.Add(1)
		go func(code string) {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			errc <- makeTenant(ctx, t, tenantsMaker, code, userID)
		}(codes[i])
	}
	wg.Wait()
	close(errc)
	for err := range errc {
		if err != nil {
			t.Fatal(err)
		}
	}

	// Two processes, each with a 4-connection pool for 50 tenants.
	var urls []string
	for range 2 {
		urls = append(urls, startTenantAPI(t, append(sys.Env(), "BASE_DOMAIN=localhost", "TENANT_POOL_MAX_OPEN=4")))
	}
	signer := auth.NewSigner(sys.SigningKey, nil)
	tokens := map[string]string{}
	for _, c := range codes {
		tok, _, err := signer.Issue(auth.KindUser, userID, auth.AudienceTenant, c, "admin", 10*time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		tokens[c] = tok
	}

	var reads, wrong atomic.Int64
	failures := make(chan string, workers)
	client := &http.Client{Timeout: 10 * time.Second}
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(w), 3))
			for range perWorker {
				code := codes[rng.IntN(tenants)]
				req, _ := http.NewRequest("GET", urls[rng.IntN(2)]+"/api/app/classes", nil)
				req.Host = code + ".localhost"
				req.Header.Set("Authorization", "Bearer "+tokens[code])
				resp, err := client.Do(req)
				if err != nil {
					failures <- err.Error()
					return
				}
				var body struct {
					Data struct {
						Items []struct{ Name string } `json:"items"`
						Total int                     `json:"total"`
					} `json:"data"`
				}
				err = json.NewDecoder(resp.Body).Decode(&body)
				resp.Body.Close()
				if resp.StatusCode != 200 || err != nil {
					failures <- fmt.Sprintf("%s: status %d (%v)", code, resp.StatusCode, err)
					return
				}
				reads.Add(1)
				if body.Data.Total != 1 || len(body.Data.Items) != 1 || body.Data.Items[0].Name != "class-"+code {
					wrong.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	close(failures)
	for f := range failures {
		t.Fatal(f)
	}
	if wrong.Load() != 0 {
		t.Fatalf("%d of %d reads saw another tenant's classes", wrong.Load(), reads.Load())
	}
	if reads.Load() != workers*perWorker {
		t.Fatalf("reads = %d, want %d", reads.Load(), workers*perWorker)
	}
}

// makeTenant creates tenant code through the provisioning pipeline with the
// user as its admin, and gives it one class named after it.
func makeTenant(ctx context.Context, t *testing.T, ts *testenv.Tenants, code string, userID int64) error {
	_, tdb, err := ts.Create(t, code, userID)
	if err != nil {
		return err
	}
	_, err = tdb.ExecContext(ctx, `INSERT INTO classes (kindergarten_id, name, grade, school_year) SELECT id, ?, 'small', '2026-2027' FROM kindergartens`, "class-"+code)
	if err != nil {
		return fmt.Errorf("%s class: %w", code, err)
	}
	return nil
}

// startTenantAPI runs a tenant-api process in local mode and returns its URL.
func startTenantAPI(t *testing.T, env []string) string {
	t.Helper()
	port := testenv.FreePort(t)
	cmd := exec.Command(filepath.Join(binDir, "tenant-api"))
	cmd.Env = append(env, "PORT="+port)
	logs := &testenv.Buffer{}
	cmd.Stdout, cmd.Stderr = logs, logs
	testenv.Start(t, cmd, os.Interrupt, 10*time.Second, true, logs)
	testenv.WaitListening(t, "127.0.0.1:"+port, 5*time.Second)
	return "http://127.0.0.1:" + port
}
