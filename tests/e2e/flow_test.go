package e2e_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/unitenant/unitenant/tests/testenv"
)

// api calls the gateway as a browser would: a Host (tenant subdomain or the
// platform), a bearer token, a JSON body; it returns the status and the
// decoded envelope.
func (s *system) api(t *testing.T, method, path, host, token string, body any) (int, envelope) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, s.URL+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if host != "" {
		req.Host = host
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var env envelope
	if err := json.Unmarshal(raw, &env); err != nil {
		t.Fatalf("%s %s: body %q is not the envelope: %v", method, path, raw, err)
	}
	env.raw = raw
	return resp.StatusCode, env
}

type envelope struct {
	Success bool            `json:"success"`
	Data    json.RawMessage `json:"data"`
	Error   struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
	raw []byte
}

func (e envelope) decode(t *testing.T, v any) {
	t.Helper()
	if err := json.Unmarshal(e.Data, v); err != nil {
		t.Fatalf("data %s: %v", e.Data, err)
	}
}

// must asserts the status and returns the envelope.
func must(t *testing.T, wantStatus int) func(int, envelope) envelope {
	return func(status int, env envelope) envelope {
		t.Helper()
		if status != wantStatus {
			t.Fatalf("status %d, want %d: %s", status, wantStatus, env.raw)
		}
		return env
	}
}

// tenantctl runs the admin CLI against the system under test.
func (s *system) tenantctl(t *testing.T, args ...string) string {
	t.Helper()
	cmd := exec.Command(filepath.Join(binDir, "tenantctl"), args...)
	cmd.Env = s.env
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("tenantctl %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// smsCode reads the newest code sent to phone from the development outbox.
func (s *system) smsCode(t *testing.T, phone string) string {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		if f, err := os.Open(s.outbox); err == nil {
			var code string
			sc := bufio.NewScanner(f)
			for sc.Scan() {
				var m struct{ Phone, Code string }
				if json.Unmarshal(sc.Bytes(), &m) == nil && m.Phone == phone {
					code = m.Code
				}
			}
			f.Close()
			if code != "" {
				return code
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("no SMS to %s in %s", phone, s.outbox)
	return ""
}

func TestSignUpSwitchTenantsAndStayIsolated(t *testing.T) {
	t.Parallel()
	s := start(t)
	prefix := s.sys.Template + "_"
	testenv.DropDatabasesLike(t, prefix)
	s.tenantctl(t, "tenant", "add", "--code", "k001", "--name", "Sunshine Kindergarten", "--contact-phone", "13700001111")
	s.tenantctl(t, "tenant", "add", "--code", "k002", "--name", "Rainbow Kindergarten", "--contact-phone", "13700001111")

	const phone, password = "13912345678", "s3cret-pass"
	platform := "localhost"
	must(t, 200)(s.api(t, "POST", "/api/auth/sms-code", platform, "", map[string]any{"phone": phone, "purpose": "register"}))
	code := s.smsCode(t, phone)
	must(t, 201)(s.api(t, "POST", "/api/auth/register", platform, "", map[string]any{
		"phone": phone, "password": password, "realName": "Li Hua", "smsCode": code}))
	s.tenantctl(t, "member", "add", "--tenant", "k001", "--phone", phone, "--role", "admin")
	s.tenantctl(t, "member", "add", "--tenant", "k002", "--phone", phone, "--role", "admin")

	var login struct {
		Token   string `json:"token"`
		Tenants []struct {
			TenantCode string `json:"tenantCode"`
			Role       string `json:"role"`
		} `json:"tenants"`
	}
	must(t, 200)(s.api(t, "POST", "/api/auth/login", platform, "", map[string]any{"phone": phone, "password": password})).decode(t, &login)
	if len(login.Tenants) != 2 {
		t.Fatalf("login lists %d tenants, want k001 and k002: %+v", len(login.Tenants), login.Tenants)
	}

	switchTo := func(code string) string {
		var sw struct {
			Token      string `json:"token"`
			TenantCode string `json:"tenantCode"`
		}
		must(t, 200)(s.api(t, "POST", "/api/auth/switch-tenant", platform, login.Token, map[string]any{"tenantCode": code})).decode(t, &sw)
		if sw.TenantCode != code || sw.Token == "" {
			t.Fatalf("switch to %s: %+v", code, sw)
		}
		return sw.Token
	}

	// In k001: create a class and a student in it.
	k001 := switchTo("k001")
	host1 := "k001.localhost"
	var class struct {
		ID int64 `json:"id"`
	}
	must(t, 201)(s.api(t, "POST", "/api/app/classes", host1, k001, map[string]any{"name": "Sunflower", "grade": "small"})).decode(t, &class)
	var student struct {
		ID int64 `json:"id"`
	}
	must(t, 201)(s.api(t, "POST", "/api/app/students", host1, k001, map[string]any{
		"name": "Xiao Ming", "gender": "male", "birthDate": "2021-03-04", "classId": class.ID})).decode(t, &student)
	must(t, 200)(s.api(t, "GET", fmt.Sprintf("/api/app/students/%d", student.ID), host1, k001, nil))

	// The k001 token does not open k002.
	if st, env := s.api(t, "GET", "/api/app/classes", "k002.localhost", k001, nil); st != 403 || env.Error.Code != "tenant_forbidden" {
		t.Fatalf("k001 token on k002: %d %s", st, env.raw)
	}

	// In k002: k001's rows are invisible and unreachable by id.
	k002 := switchTo("k002")
	host2 := "k002.localhost"
	var list struct {
		Items []json.RawMessage `json:"items"`
		Total int               `json:"total"`
	}
	must(t, 200)(s.api(t, "GET", "/api/app/classes", host2, k002, nil)).decode(t, &list)
	if list.Total != 0 || len(list.Items) != 0 {
		t.Fatalf("k002 sees classes it never made: %+v", list)
	}
	if st, env := s.api(t, "GET", fmt.Sprintf("/api/app/students/%d", student.ID), host2, k002, nil); st != 404 {
		t.Fatalf("k001's student by id in k002: %d %s", st, env.raw)
	}
	if st, _ := s.api(t, "GET", fmt.Sprintf("/api/app/classes/%d", class.ID), host2, k002, nil); st != 404 {
		t.Fatalf("k001's class by id in k002: %d", st)
	}
	if st, _ := s.api(t, "DELETE", fmt.Sprintf("/api/app/students/%d", student.ID), host2, k002, nil); st != 404 {
		t.Fatalf("deleting k001's student from k002: %d", st)
	}
	// k002's own data works.
	var c2 struct {
		ID int64 `json:"id"`
	}
	must(t, 201)(s.api(t, "POST", "/api/app/classes", host2, k002, map[string]any{"name": "Rainbow", "grade": "middle"})).decode(t, &c2)
	must(t, 200)(s.api(t, "GET", "/api/app/classes", host2, k002, nil)).decode(t, &list)
	if list.Total != 1 {
		t.Fatalf("k002 classes: %+v", list)
	}
	// And k001's student is still there, untouched.
	must(t, 200)(s.api(t, "GET", fmt.Sprintf("/api/app/students/%d", student.ID), host1, k001, nil))
}
