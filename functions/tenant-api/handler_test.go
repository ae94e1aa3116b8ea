package main

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"database/sql"
	"encoding/base64"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/unitenant/unitenant/shared/auth"
	"github.com/unitenant/unitenant/shared/config"
	"github.com/unitenant/unitenant/shared/httpapi/httpapitest"
	"github.com/unitenant/unitenant/shared/logging"
	"github.com/unitenant/unitenant/shared/provisioning"
	"github.com/unitenant/unitenant/shared/secretbox"
	"github.com/unitenant/unitenant/shared/sqldb/sqldbtest"
	"github.com/unitenant/unitenant/shared/tenancy"
	"github.com/unitenant/unitenant/shared/tenantapp"
	"github.com/unitenant/unitenant/tests/testenv"
)

// fixture is a system database with two real tenants, k001 and k002, their
// members, and the tenant-api handler in front of them.
type fixture struct {
	handler http.Handler
	signer  *auth.Signer
	sys     *sql.DB
	tenants map[string]*sql.DB // direct pools on the tenant databases, for setup and checks
	users   map[string]int64   // global user ids by name
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	ctx := context.Background()
	log := logging.Discard()
	sys, _ := sqldbtest.NewDatabase(t)
	if _, err := provisioning.MigrateSystem(ctx, sys, log); err != nil {
		t.Fatal(err)
	}
	masterKey := make([]byte, 32)
	_, _ = rand.Read(masterKey)
	box, err := secretbox.New(masterKey)
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{sys: sys, tenants: map[string]*sql.DB{}, users: map[string]int64{}}
	tenants := testenv.NewTenants(t, sys, box)
	for _, code := range []string{"k001", "k002"} {
		_, db, err := tenants.Create(t, code, 0)
		if err != nil {
			t.Fatal(err)
		}
		f.tenants[code] = db
	}

	// Members: who is what where.
	for i, m := range []struct{ name, tenant, role string }{
		{"admin1", "k001", "admin"},
		{"teacher1", "k001", "teacher"},
		{"disabled1", "k001", "admin"},
		{"admin2", "k002", "admin"},
		{"stranger", "", ""},
	} {
		phone := fmt.Sprintf("1390000%04d", i)
		res, err := sys.ExecContext(ctx, "INSERT INTO global_users (phone, password_hash, real_name) VALUES (?, 'x', ?)", phone, m.name)
		if err != nil {
			t.Fatal(err)
		}
		gid, _ := res.LastInsertId()
		f.users[m.name] = gid
		if m.tenant == "" {
			continue
		}
		var tid int64
		if err := sys.QueryRowContext(ctx, "SELECT id FROM tenants WHERE tenant_code = ?", m.tenant).Scan(&tid); err != nil {
			t.Fatal(err)
		}
		_, err = tenantapp.Bind(ctx, sys, f.tenants[m.tenant], tenantapp.Binding{
			GlobalUserID: gid, Phone: phone, RealName: m.name, TenantID: tid, TenantCode: m.tenant, Role: m.role})
		if err != nil {
			t.Fatal(err)
		}
	}
	if _, err := f.tenants["k001"].ExecContext(ctx, "UPDATE users SET status = 'inactive' WHERE global_user_id = ?", f.users["disabled1"]); err != nil {
		t.Fatal(err)
	}

	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	f.signer = auth.NewSigner(key, nil)
	verifier := auth.NewVerifier([]*rsa.PublicKey{&key.PublicKey}, nil)
	env := config.FromMap(map[string]string{"MASTER_KEY": base64.StdEncoding.EncodeToString(masterKey), "BASE_DOMAIN": "localhost"})
	ten, err := tenancy.Load(env, false, sys, log)
	if err != nil {
		t.Fatal(err)
	}
	if err := env.Err(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ten.Router.Close() })
	now := func() time.Time { return time.Date(2025, 10, 1, 8, 0, 0, 0, time.UTC) }
	f.handler = newHandler(verifier, ten, sys, logging.New(os.Stderr, "t", slog.LevelError), now)
	return f
}

// token is a tenant-scoped token of user for tenant ("" = a platform token).
func (f *fixture) token(t *testing.T, user, tenant string) string {
	t.Helper()
	aud := auth.AudienceTenant
	if tenant == "" {
		aud = auth.AudiencePlatform
	}
	tok, _, err := f.signer.Issue(auth.KindUser, f.users[user], aud, tenant, "admin", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// response is the envelope with its data left raw.
type response = httpapitest.Reply

// want fails unless resp has status and (for errors) code.
var want = httpapitest.Want

// call sends one request as user to tenant (host <tenant>.localhost).
func (f *fixture) call(t *testing.T, user, tenant, method, path string, body any) response {
	t.Helper()
	req := httptest.NewRequest(method, path, httpapitest.Body(body))
	req.Host = tenant + ".localhost"
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if user != "" {
		req.Header.Set("Authorization", "Bearer "+f.token(t, user, tenant))
	}
	w := httptest.NewRecorder()
	f.handler.ServeHTTP(w, req)
	return httpapitest.Parse(t, w.Code, w.Header(), w.Body.Bytes())
}

func count(t *testing.T, db *sql.DB, table string) int {
	t.Helper()
	var n int
	if err := db.QueryRow("SELECT COUNT(*) FROM " + table).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func TestTenantAPI(t *testing.T) {
	t.Parallel()
	f := newFixture(t)

	// k002 is only written by CrossTenant, so the ids it probes exist in k001 alone.
	t.Run("Me", func(t *testing.T) {
		t.Parallel()
		resp := f.call(t, "admin1", "k001", "GET", "/api/app/me", nil)
		want(t, resp, 200, "")
		m := httpapitest.Data[me](t, resp)
		if m.Tenant != (tenantInfo{Code: "k001", Name: "Kindergarten k001"}) || !slices.Equal(m.Roles, []string{"admin"}) ||
			m.User.RealName != "admin1" || m.User.GlobalUserID == nil || *m.User.GlobalUserID != f.users["admin1"] {
			t.Errorf("me = %+v", m)
		}
		for _, p := range []string{"users:read", "classes:write", "students:write"} {
			if !slices.Contains(m.Permissions, p) {
				t.Errorf("admin lacks %s: %v", p, m.Permissions)
			}
		}
		teacher := httpapitest.Data[me](t, f.call(t, "teacher1", "k001", "GET", "/api/app/me", nil))
		if !slices.Equal(teacher.Roles, []string{"teacher"}) || slices.Contains(teacher.Permissions, "classes:write") ||
			!slices.Contains(teacher.Permissions, "students:write") {
			t.Errorf("teacher = %+v", teacher)
		}
	})

	t.Run("NotAMember", func(t *testing.T) {
		t.Parallel()
		for _, user := range []string{"stranger", "disabled1", "admin2"} {
			want(t, f.call(t, user, "k001", "GET", "/api/app/me", nil), 403, "not_a_member")
		}
	})

	t.Run("TokenRequired", func(t *testing.T) {
		t.Parallel()
		want(t, f.call(t, "", "k001", "GET", "/api/app/me", nil), 401, "missing_token")
		for _, c := range []struct{ host, tokenTenant string }{
			{"k001.localhost", ""},     // a platform token names no tenant
			{"localhost", ""},          // nor does the platform host
			{"k002.localhost", "k001"}, // a k001 token on k002's host
		} {
			req := httptest.NewRequest("GET", "/api/app/me", nil)
			req.Host = c.host
			req.Header.Set("Authorization", "Bearer "+f.token(t, "admin1", c.tokenTenant))
			w := httptest.NewRecorder()
			f.handler.ServeHTTP(w, req)
			if w.Code != 403 || !strings.Contains(w.Body.String(), `"tenant_forbidden"`) {
				t.Errorf("host %s, token tid %q: %d %s", c.host, c.tokenTenant, w.Code, w.Body)
			}
		}
	})

	// Permissions and Validation count rows: they run first, alone (the
	// parallel subtests wait until this function returns).
	t.Run("Permissions", func(t *testing.T) {
		resp := f.call(t, "teacher1", "k001", "GET", "/api/app/users", nil)
		want(t, resp, 403, "permission_denied")
		if !strings.Contains(resp.Error.Message, "users:read") {
			t.Errorf("message %q does not name users:read", resp.Error.Message)
		}
		before := count(t, f.tenants["k001"], "classes")
		resp = f.call(t, "teacher1", "k001", "POST", "/api/app/classes", map[string]any{"name": "Teacher's", "grade": "small"})
		want(t, resp, 403, "permission_denied")
		if !strings.Contains(resp.Error.Message, "classes:write") {
			t.Errorf("message %q does not name classes:write", resp.Error.Message)
		}
		if after := count(t, f.tenants["k001"], "classes"); after != before {
			t.Errorf("a refused create changed classes: %d -> %d", before, after)
		}
		want(t, f.call(t, "teacher1", "k001", "GET", "/api/app/classes", nil), 200, "")
		want(t, f.call(t, "teacher1", "k001", "POST", "/api/app/students", map[string]any{"name": "By teacher"}), 201, "")

		users := httpapitest.Data[tenantapp.List[tenantapp.User]](t, f.call(t, "admin1", "k001", "GET", "/api/app/users", nil))
		if users.Total != 3 || len(users.Items) != 3 || !slices.Equal(users.Items[1].Roles, []string{"teacher"}) {
			t.Errorf("users = %+v", users)
		}
	})

	t.Run("Validation", func(t *testing.T) {
		db := f.tenants["k001"]
		classes, students := count(t, db, "classes"), count(t, db, "students")
		tests := []struct {
			name, method, path string
			body               any
			status             int
			code               string
			fields             []string
		}{
			{"ClassFields", "POST", "/api/app/classes", map[string]any{"name": " ", "grade": "huge", "capacity": 0, "schoolYear": "2025-2027"},
				400, "invalid_field", []string{"name", "grade", "capacity", "schoolYear"}},
			{"ClassRequired", "POST", "/api/app/classes", map[string]any{}, 400, "invalid_field", []string{"name", "grade"}},
			{"UnknownField", "POST", "/api/app/classes", map[string]any{"name": "A", "grade": "small", "teacher": "x"}, 400, "unknown_field", []string{"teacher"}},
			{"WrongType", "POST", "/api/app/classes", map[string]any{"name": "A", "grade": "small", "capacity": "30"}, 400, "invalid_field_type", []string{"capacity"}},
			{"NotJSON", "POST", "/api/app/classes", "{", 400, "invalid_json", nil},
			{"StudentFields", "POST", "/api/app/students", map[string]any{"name": "", "classId": -1, "birthDate": "2021-02-30", "gender": "x"},
				400, "invalid_field", []string{"name", "classId", "birthDate", "gender"}},
			{"StudentNoSuchClass", "POST", "/api/app/students", map[string]any{"name": "Kid", "classId": 999999}, 400, "invalid_field", []string{"classId"}},
			{"EmptyUpdate", "PUT", "/api/app/classes/1", map[string]any{}, 400, "empty_update", nil},
			{"PathNotANumber", "GET", "/api/app/classes/abc", nil, 400, "invalid_id", []string{"id"}},
			{"PathZero", "GET", "/api/app/students/0", nil, 400, "invalid_id", []string{"id"}},
			{"PathHuge", "DELETE", "/api/app/classes/99999999999999999999", nil, 400, "invalid_id", []string{"id"}},
			{"PathMissingRow", "GET", "/api/app/classes/999999", nil, 404, "not_found", nil},
			{"PageZero", "GET", "/api/app/classes?page=0", nil, 400, "invalid_query", []string{"page"}},
			{"PageSizeTooBig", "GET", "/api/app/students?pageSize=101", nil, 400, "invalid_query", []string{"pageSize"}},
			{"PageNotANumber", "GET", "/api/app/users?page=x&pageSize=0", nil, 400, "invalid_query", []string{"page", "pageSize"}},
			{"ClassIDFilter", "GET", "/api/app/students?classId=abc", nil, 400, "invalid_query", []string{"classId"}},
			{"WrongMethod", "PATCH", "/api/app/classes/1", nil, 405, "method_not_allowed", nil},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				resp := f.call(t, "admin1", "k001", tt.method, tt.path, tt.body)
				want(t, resp, tt.status, tt.code)
				for _, field := range tt.fields {
					if _, ok := resp.Error.Fields[field]; !ok {
						t.Errorf("error fields %v do not name %s", resp.Error.Fields, field)
					}
				}
			})
		}
		if c, s := count(t, db, "classes"), count(t, db, "students"); c != classes || s != students {
			t.Errorf("bad input changed the database: classes %d -> %d, students %d -> %d", classes, c, students, s)
		}
	})

	t.Run("Pagination", func(t *testing.T) {
		t.Parallel()
		class := httpapitest.Data[tenantapp.Class](t, f.call(t, "admin1", "k001", "POST", "/api/app/classes", map[string]any{"name": "Paged", "grade": "middle"}))
		for i := range 5 {
			want(t, f.call(t, "admin1", "k001", "POST", "/api/app/students", map[string]any{"name": fmt.Sprintf("Kid %d", i), "classId": class.ID}), 201, "")
		}
		list := func(query string) tenantapp.List[tenantapp.Student] {
			t.Helper()
			resp := f.call(t, "admin1", "k001", "GET", fmt.Sprintf("/api/app/students?classId=%d%s", class.ID, query), nil)
			want(t, resp, 200, "")
			return httpapitest.Data[tenantapp.List[tenantapp.Student]](t, resp)
		}
		if l := list(""); l.Total != 5 || len(l.Items) != 5 || l.Page != 1 || l.PageSize != 20 {
			t.Errorf("default page: total %d items %d page %d size %d", l.Total, len(l.Items), l.Page, l.PageSize)
		}
		var names []string
		for page := 1; page <= 3; page++ {
			l := list(fmt.Sprintf("&page=%d&pageSize=2", page))
			if l.Total != 5 || l.Page != page || l.PageSize != 2 || len(l.Items) != min(2, 5-2*(page-1)) {
				t.Errorf("page %d: total %d items %d", page, l.Total, len(l.Items))
			}
			for _, s := range l.Items {
				names = append(names, s.Name)
			}
		}
		if !slices.Equal(names, []string{"Kid 0", "Kid 1", "Kid 2", "Kid 3", "Kid 4"}) {
			t.Errorf("pages hold %v", names)
		}
		if l := list("&page=4&pageSize=2"); l.Total != 5 || len(l.Items) != 0 || l.Items == nil {
			t.Errorf("past the end: %+v", l)
		}
		got := httpapitest.Data[tenantapp.Class](t, f.call(t, "admin1", "k001", "GET", fmt.Sprintf("/api/app/classes/%d", class.ID), nil))
		if got.CurrentCount != 5 {
			t.Errorf("currentCount = %d, want 5", got.CurrentCount)
		}
	})

	t.Run("CRUD", func(t *testing.T) {
		t.Parallel()
		resp := f.call(t, "admin1", "k001", "POST", "/api/app/classes", map[string]any{"name": "  小一班 ", "grade": "small", "classroom": "A101"})
		want(t, resp, 201, "")
		c := httpapitest.Data[tenantapp.Class](t, resp)
		if c.Name != "小一班" || c.SchoolYear != "2025-2026" || c.Capacity != 30 || c.Status != "active" || c.KindergartenID == 0 {
			t.Errorf("created %+v", c)
		}
		want(t, f.call(t, "admin1", "k001", "POST", "/api/app/classes", map[string]any{"name": "小一班", "grade": "middle"}), 409, "class_name_taken")
		path := fmt.Sprintf("/api/app/classes/%d", c.ID)
		resp = f.call(t, "admin1", "k001", "PUT", path, map[string]any{"capacity": 25, "status": "closed"})
		want(t, resp, 200, "")
		if u := httpapitest.Data[tenantapp.Class](t, resp); u.Capacity != 25 || u.Status != "closed" || u.Name != "小一班" || u.Classroom != "A101" {
			t.Errorf("updated %+v", u)
		}

		resp = f.call(t, "admin1", "k001", "POST", "/api/app/students",
			map[string]any{"name": "Mia", "classId": c.ID, "gender": "female", "birthDate": "2021-03-04", "studentNo": "S-001"})
		want(t, resp, 201, "")
		s := httpapitest.Data[tenantapp.Student](t, resp)
		if s.ClassID == nil || *s.ClassID != c.ID || s.BirthDate == nil || *s.BirthDate != "2021-03-04" || s.KindergartenID != c.KindergartenID {
			t.Errorf("created %+v", s)
		}
		want(t, f.call(t, "admin1", "k001", "POST", "/api/app/students", map[string]any{"name": "Dup", "studentNo": "S-001"}), 409, "student_no_taken")
		spath := fmt.Sprintf("/api/app/students/%d", s.ID)
		resp = f.call(t, "admin1", "k001", "PUT", spath, map[string]any{"classId": nil, "birthDate": nil, "remark": "moved"})
		want(t, resp, 200, "")
		if u := httpapitest.Data[tenantapp.Student](t, resp); u.ClassID != nil || u.BirthDate != nil || u.Remark != "moved" || u.Name != "Mia" {
			t.Errorf("updated %+v", u)
		}
		want(t, f.call(t, "admin1", "k001", "DELETE", spath, nil), 200, "")
		want(t, f.call(t, "admin1", "k001", "GET", spath, nil), 404, "not_found")
		want(t, f.call(t, "admin1", "k001", "DELETE", spath, nil), 404, "not_found")
		want(t, f.call(t, "admin1", "k001", "DELETE", path, nil), 200, "")
		want(t, f.call(t, "admin1", "k001", "GET", path, nil), 404, "not_found")
		want(t, f.call(t, "admin1", "k001", "PUT", path, map[string]any{"name": "Gone"}), 404, "not_found")
	})

	t.Run("CrossTenant", func(t *testing.T) {
		t.Parallel()
		c := httpapitest.Data[tenantapp.Class](t, f.call(t, "admin1", "k001", "POST", "/api/app/classes", map[string]any{"name": "Secret", "grade": "large"}))
		s := httpapitest.Data[tenantapp.Student](t, f.call(t, "admin1", "k001", "POST", "/api/app/students", map[string]any{"name": "Hidden", "classId": c.ID}))
		cpath, spath := fmt.Sprintf("/api/app/classes/%d", c.ID), fmt.Sprintf("/api/app/students/%d", s.ID)
		for _, r := range []struct {
			method, path string
			body         any
		}{
			{"GET", cpath, nil}, {"PUT", cpath, map[string]any{"name": "Stolen"}}, {"DELETE", cpath, nil},
			{"GET", spath, nil}, {"PUT", spath, map[string]any{"name": "Stolen"}}, {"DELETE", spath, nil},
		} {
			want(t, f.call(t, "admin2", "k002", r.method, r.path, r.body), 404, "not_found")
		}
		// The student may not be attached to k001's class id in k002 either.
		want(t, f.call(t, "admin2", "k002", "POST", "/api/app/students", map[string]any{"name": "X", "classId": c.ID}), 400, "invalid_field")
		// k002's own data works, and k001's stays invisible in its lists.
		own := httpapitest.Data[tenantapp.Class](t, f.call(t, "admin2", "k002", "POST", "/api/app/classes", map[string]any{"name": "Own", "grade": "small"}))
		classes := httpapitest.Data[tenantapp.List[tenantapp.Class]](t, f.call(t, "admin2", "k002", "GET", "/api/app/classes", nil))
		if classes.Total != 1 || classes.Items[0].ID != own.ID || classes.Items[0].Name != "Own" {
			t.Errorf("k002 classes = %+v", classes)
		}
		students := httpapitest.Data[tenantapp.List[tenantapp.Student]](t, f.call(t, "admin2", "k002", "GET", "/api/app/students", nil))
		if students.Total != 0 {
			t.Errorf("k002 students = %+v", students)
		}
		// And k001's rows are untouched.
		if got := httpapitest.Data[tenantapp.Class](t, f.call(t, "admin1", "k001", "GET", cpath, nil)); got.Name != "Secret" {
			t.Errorf("k001 class became %+v", got)
		}
		want(t, f.call(t, "admin1", "k001", "GET", spath, nil), 200, "")
	})
}
