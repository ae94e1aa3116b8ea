package e2e_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"net/url"
	"slices"
	"testing"

	"github.com/unitenant/unitenant/shared/provisioning"
	"github.com/unitenant/unitenant/shared/sqldb/sqldbtest"
	"github.com/unitenant/unitenant/tests/testenv"
)

// TestOnboardingOverHTTP: a logged-in user creates a tenant, watches every
// step complete, switches into it, uses the tenant API, and stores a file
// under the tenant's prefix through presigned URLs — all through the gateway.
func TestOnboardingOverHTTP(t *testing.T) {
	t.Parallel()
	s := start(t)
	testenv.DropDatabasesLike(t, s.sys.Template+"_")
	if _, err := provisioning.EnsureCluster(context.Background(), s.sys.DB, s.sys.Box, "default", sqldbtest.ServerDSN(t), 0); err != nil {
		t.Fatal(err)
	}
	const phone, password = "13655556666", "onboard-123"
	platform := "localhost"
	must(t, 200)(s.api(t, "POST", "/api/auth/sms-code", platform, "", map[string]any{"phone": phone, "purpose": "register"}))
	must(t, 201)(s.api(t, "POST", "/api/auth/register", platform, "", map[string]any{
		"phone": phone, "password": password, "realName": "Wang Fang", "smsCode": s.smsCode(t, phone)}))
	var login struct{ Token string }
	must(t, 200)(s.api(t, "POST", "/api/auth/login", platform, "", map[string]any{"phone": phone, "password": password})).decode(t, &login)

	// The SMS code proves the contact phone (the school's, not the user's:
	// codes to one phone are limited to one a minute).
	const contact = "13677778888"
	must(t, 200)(s.api(t, "POST", "/api/auth/sms-code", platform, "", map[string]any{"phone": contact, "purpose": "tenant_create"}))
	var created struct {
		TenantCode, Status, Domain, ProgressURL string
	}
	st, env := s.api(t, "POST", "/api/tenants", platform, login.Token, map[string]any{
		"tenantCode": "k321", "name": "Sunflower Kindergarten", "contactName": "Wang Fang", "contactEmail": "wang@example.com",
		"contactPhone": contact, "smsVerificationCode": s.smsCode(t, contact)})
	env.decode(t, &created)
	// 201 when provisioning finished within the request's budget; 202 (a
	// loaded machine) means: follow the progress URL, as a client does.
	switch {
	case st == 201 && created.Status == "active", st == 202 && created.Status == "provisioning":
	default:
		t.Fatalf("create: %d %s", st, env.raw)
	}
	if created.Domain != "k321.localhost" || created.ProgressURL != "/api/tenants/k321/progress" {
		t.Fatalf("created %+v", created)
	}
	var progress provisioning.ProgressView
	s.eventually(t, func() bool {
		must(t, 200)(s.api(t, "GET", created.ProgressURL, platform, login.Token, nil)).decode(t, &progress)
		return progress.Status == "completed"
	})
	if progress.Status != "completed" || progress.Percent != 100 || len(progress.Steps) != len(provisioning.Steps) {
		t.Fatalf("progress %+v", progress)
	}
	for _, st := range progress.Steps {
		if st.Status != "completed" {
			t.Fatalf("step %s is %s", st.Name, st.Status)
		}
	}

	// The creator is its admin: switch in and use the tenant API.
	var sw struct{ Token string }
	must(t, 200)(s.api(t, "POST", "/api/auth/switch-tenant", platform, login.Token, map[string]any{"tenantCode": "k321"})).decode(t, &sw)
	host := "k321.localhost"
	var me struct{ Roles []string }
	must(t, 200)(s.api(t, "GET", "/api/app/me", host, sw.Token, nil)).decode(t, &me)
	if len(me.Roles) != 1 || me.Roles[0] != "admin" {
		t.Fatalf("roles %v", me.Roles)
	}
	must(t, 201)(s.api(t, "POST", "/api/app/classes", host, sw.Token, map[string]any{"name": "Daisy", "grade": "middle"}))

	// The storage prefix exists with its folder layout ...
	var files struct {
		Objects []struct{ Key string } `json:"objects"`
	}
	must(t, 200)(s.api(t, "GET", "/api/v1/oss/files?prefix=uploads/", host, sw.Token, nil)).decode(t, &files)
	if len(files.Objects) == 0 {
		t.Fatal("the tenant's storage prefix has no uploads/ layout")
	}
	// ... and a presigned put then get round-trips a file.
	content := []byte("hello from k321 " + fmt.Sprint(len(files.Objects)))
	var put, get struct{ URL, Method, Key string }
	must(t, 200)(s.api(t, "POST", "/api/v1/oss/presign", host, sw.Token, map[string]any{
		"op": "put", "key": "uploads/files/hello.txt", "contentType": "text/plain"})).decode(t, &put)
	req := s.viaGateway(t, put.Method, put.URL, bytes.NewReader(content))
	req.Header.Set("Content-Type", "text/plain")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		t.Fatalf("presigned put: %d", resp.StatusCode)
	}
	must(t, 200)(s.api(t, "POST", "/api/v1/oss/presign", host, sw.Token, map[string]any{"op": "get", "key": "uploads/files/hello.txt"})).decode(t, &get)
	resp, err = http.DefaultClient.Do(s.viaGateway(t, "GET", get.URL, nil))
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !bytes.Equal(got, content) {
		t.Fatalf("presigned get: %d %q, want %q", resp.StatusCode, got, content)
	}
	if put.Key != "tenants/k321/uploads/files/hello.txt" {
		t.Fatalf("object key %q is not under the tenant's prefix", put.Key)
	}

	// A form upload (op "post") through the gateway, held to its size.
	var form struct {
		URL, Method string
		Fields      map[string]string
		MaxSize     int64
	}
	must(t, 200)(s.api(t, "POST", "/api/v1/oss/presign", host, sw.Token, map[string]any{
		"op": "post", "key": "uploads/files/form.txt", "maxSize": len(content)})).decode(t, &form)
	send := func(file []byte) int {
		var body bytes.Buffer
		mw := multipart.NewWriter(&body)
		for k, v := range form.Fields {
			_ = mw.WriteField(k, v)
		}
		fw, _ := mw.CreateFormFile("file", "form.txt")
		_, _ = fw.Write(file)
		_ = mw.Close()
		req := s.viaGateway(t, form.Method, form.URL, &body)
		req.Header.Set("Content-Type", mw.FormDataContentType())
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if status := send(append(slices.Clone(content), '!')); status != 413 {
		t.Fatalf("form upload over its size: %d, want 413", status)
	}
	if status := send(content); status != 200 {
		t.Fatalf("form upload: %d", status)
	}
	must(t, 200)(s.api(t, "POST", "/api/v1/oss/presign", host, sw.Token, map[string]any{"op": "get", "key": "uploads/files/form.txt"})).decode(t, &get)
	resp, err = http.DefaultClient.Do(s.viaGateway(t, "GET", get.URL, nil))
	if err != nil {
		t.Fatal(err)
	}
	got, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !bytes.Equal(got, content) || resp.Header.Get("Content-Type") != "text/plain; charset=utf-8" {
		t.Fatalf("form upload read back: %d %q %q", resp.StatusCode, got, resp.Header.Get("Content-Type"))
	}
}

// viaGateway aims a request for rawURL (a *.localhost URL the functions
// build from the Host they were called with) at the gateway, keeping that
// Host: what a browser resolving *.localhost to this machine does.
func (s *system) viaGateway(t *testing.T, method, rawURL string, body io.Reader) *http.Request {
	t.Helper()
	u, err := url.Parse(rawURL)
	if err != nil {
		t.Fatal(err)
	}
	gw, _ := url.Parse(s.URL)
	host := u.Host
	u.Scheme, u.Host = gw.Scheme, gw.Host
	req, err := http.NewRequest(method, u.String(), body)
	if err != nil {
		t.Fatal(err)
	}
	req.Host = host
	return req
}
