package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"database/sql"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/unitenant/unitenant/shared/auth"
	"github.com/unitenant/unitenant/shared/config"
	"github.com/unitenant/unitenant/shared/httpapi/httpapitest"
	"github.com/unitenant/unitenant/shared/logging"
	"github.com/unitenant/unitenant/shared/objectstore"
	"github.com/unitenant/unitenant/shared/objectstore/osstest"
	"github.com/unitenant/unitenant/shared/provisioning"
	"github.com/unitenant/unitenant/shared/secretbox"
	"github.com/unitenant/unitenant/shared/serverless"
	"github.com/unitenant/unitenant/shared/sqldb/sqldbtest"
	"github.com/unitenant/unitenant/shared/tenancy"
)

// fixture is the storage function over HTTP in front of a real system
// database holding two active tenants, k001 and k002 (storage needs their
// rows and placements, not their databases), with real RS256 tokens. Its
// users are members of k001 as the consts below say; adminUser is also
// k002's admin.
type fixture struct {
	srv     *httptest.Server
	port    string
	signer  *auth.Signer
	objects *objectstore.Service
	handler http.Handler // the function's routes, without serverless.Handler around them
	sys     *sql.DB
	cluster int64
	tenants map[string]int64 // tenant code -> id
}

// The fixture's users (global_users.id) and their membership of k001.
const (
	adminUser   = 42 // admin of k001 and k002: the user of token
	ownerUser   = 43 // owner of k001
	memberUser  = 44 // member of k001
	removedUser = 45 // was an admin of k001, removed
	k002Admin   = 46 // admin of k002 only
)

// newFixture starts the function with the object storage of vars (the local
// backend in a fresh directory unless vars say otherwise).
func newFixture(t *testing.T, vars map[string]string) *fixture {
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
	cluster, err := provisioning.EnsureCluster(ctx, sys, box, "default", sqldbtest.ServerDSN(t), 0)
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{sys: sys, cluster: cluster, tenants: map[string]int64{}}
	for _, code := range []string{"k001", "k002"} {
		f.addTenant(t, code)
	}
	for _, m := range []struct {
		user         int64
		tenant, role string
		status       string
	}{
		{adminUser, "k001", "admin", "active"}, {adminUser, "k002", "admin", "active"},
		{ownerUser, "k001", "owner", "active"}, {memberUser, "k001", "member", "active"},
		{removedUser, "k001", "admin", "removed"}, {k002Admin, "k002", "admin", "active"},
	} {
		if _, err := sys.ExecContext(ctx, "INSERT IGNORE INTO global_users (id, phone, password_hash) VALUES (?, ?, 'x')",
			m.user, fmt.Sprintf("138%08d", m.user)); err != nil {
			t.Fatal(err)
		}
		if _, err := sys.ExecContext(ctx, `INSERT INTO global_user_tenant_relations (global_user_id, tenant_id, tenant_code, role_in_tenant, status)
			VALUES (?, ?, ?, ?, ?)`, m.user, f.tenants[m.tenant], m.tenant, m.role, m.status); err != nil {
			t.Fatal(err)
		}
	}

	env := map[string]string{
		"MASTER_KEY": base64.StdEncoding.EncodeToString(masterKey), "BASE_DOMAIN": "localhost",
		"LOCAL_STORAGE_DIR": t.TempDir(), "LOCAL_STORAGE_SECRET": strings.Repeat("k", 32),
	}
	maps.Copy(env, vars)
	e := config.FromMap(env)
	ten, err := tenancy.Load(e, false, sys, log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ten.Router.Close() })
	objects, err := objectstore.Load(e, true)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Err(); err != nil {
		t.Fatal(err)
	}
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	verifier := auth.NewVerifier([]*rsa.PublicKey{&key.PublicKey}, nil)
	h := newHandler(verifier, ten, sys, objects, options{now: time.Now}, log)
	srv := httptest.NewServer(serverless.Handler(h, log, 0)) // the stack every platform runs
	t.Cleanup(srv.Close)
	u, _ := url.Parse(srv.URL)
	f.srv, f.port, f.signer, f.objects, f.handler = srv, u.Port(), auth.NewSigner(key, nil), objects, h
	return f
}

// addTenant adds an active tenant with its placement (its database need not
// exist: storage never opens it).
func (f *fixture) addTenant(t *testing.T, code string) int64 {
	t.Helper()
	ctx := context.Background()
	res, err := f.sys.ExecContext(ctx, "INSERT INTO tenants (tenant_code, tenant_name, subdomain, status, storage_prefix) VALUES (?, ?, ?, 'active', ?)",
		code, "Kindergarten "+code, code, "tenants/"+code+"/")
	if err != nil {
		t.Fatal(err)
	}
	id, _ := res.LastInsertId()
	if _, err := f.sys.ExecContext(ctx, "INSERT INTO tenant_databases (tenant_id, cluster_id, database_name, status) VALUES (?, ?, ?, 'ready')",
		id, f.cluster, fmt.Sprintf("%s_t%d", sqldbtest.Name(t), id)); err != nil {
		t.Fatal(err)
	}
	f.tenants[code] = id
	return id
}

// token is adminUser's tenant-scoped token for tenant ("" = a platform
// token).
func (f *fixture) token(t *testing.T, tenant string) string {
	t.Helper()
	if tenant == "" {
		return f.tokenAs(t, auth.AudiencePlatform, "", adminUser, "")
	}
	return f.tokenAs(t, auth.AudienceTenant, tenant, adminUser, "admin")
}

// tokenAs is user's token for audience and tenant, claiming role.
func (f *fixture) tokenAs(t *testing.T, audience, tenant string, user int64, role string) string {
	t.Helper()
	tok, _, err := f.signer.Issue(auth.KindUser, user, audience, tenant, role, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

type response = httpapitest.Reply

// want fails unless resp has status and (for errors) code.
var want = httpapitest.Want

// call sends a request to host <hostTenant>.localhost with a token for
// tokenTenant ("-" = no token).
func (f *fixture) call(t *testing.T, hostTenant, tokenTenant, method, path string, body any) response {
	t.Helper()
	tok := ""
	if tokenTenant != "-" {
		tok = f.token(t, tokenTenant)
	}
	return f.callWith(t, hostTenant, tok, method, path, body)
}

// callWith sends a request to host <hostTenant>.localhost with token tok
// ("" = none).
func (f *fixture) callWith(t *testing.T, hostTenant, tok, method, path string, body any) response {
	t.Helper()
	req, err := http.NewRequest(method, f.srv.URL+path, httpapitest.Body(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Host = hostTenant + ".localhost:" + f.port
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	return httpapitest.Parse(t, resp.StatusCode, resp.Header, raw)
}

// presign asks k001's storage for a URL and checks it names the full key.
func (f *fixture) presign(t *testing.T, in map[string]any) presignOutput {
	t.Helper()
	resp := f.call(t, "k001", "k001", "POST", "/api/v1/oss/presign", in)
	want(t, resp, 200, "")
	return httpapitest.Data[presignOutput](t, resp)
}

// fetch follows a presigned URL. URLs on the function's own host (local
// backend) are sent to the test server with that Host header.
func (f *fixture) fetch(t *testing.T, method, raw, ct string, body []byte) (int, []byte, http.Header) {
	t.Helper()
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	target := raw
	if strings.HasSuffix(u.Host, ".localhost:"+f.port) {
		target = f.srv.URL + u.RequestURI()
	}
	req, err := http.NewRequest(method, target, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Host = u.Host
	if ct != "" {
		req.Header.Set("Content-Type", ct)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b, resp.Header
}

// roundTrip uploads and downloads one file through presigned URLs.
func (f *fixture) roundTrip(t *testing.T, key string, data []byte) presignOutput {
	t.Helper()
	up := f.presign(t, map[string]any{"op": "put", "key": key, "contentType": "image/png", "expiresIn": 60})
	if up.Method != "PUT" || up.Headers["Content-Type"] != "image/png" || time.Until(up.ExpiresAt) > time.Minute+time.Second {
		t.Fatalf("presign put = %+v", up)
	}
	if status, body, _ := f.fetch(t, up.Method, up.URL, "image/png", data); status != 200 {
		t.Fatalf("upload: %d %s", status, body)
	}
	asked := time.Now()
	down := f.presign(t, map[string]any{"op": "get", "key": up.Key})
	// Expiry is in whole seconds: at least the asking time + 300 s, truncated.
	if down.Method != "GET" || down.Key != up.Key || down.ExpiresAt.Before(asked.Add(300*time.Second).Truncate(time.Second)) ||
		time.Until(down.ExpiresAt) > 301*time.Second {
		t.Fatalf("presign get = %+v (default expiry is 300s)", down)
	}
	status, body, h := f.fetch(t, down.Method, down.URL, "", nil)
	if status != 200 || !bytes.Equal(body, data) || h.Get("Content-Type") != "image/png" {
		t.Fatalf("download: %d, %d bytes, %q", status, len(body), h.Get("Content-Type"))
	}
	return up
}

func TestStorageLocal(t *testing.T) {
	t.Parallel()
	f := newFixture(t, nil)
	png := make([]byte, 64<<10)
	_, _ = rand.Read(png)

	t.Run("PresignRoundTrip", func(t *testing.T) {
		up := f.roundTrip(t, "uploads/images/logo.png", png)
		if up.Key != "tenants/k001/uploads/images/logo.png" {
			t.Fatalf("key %q", up.Key)
		}
		// The URL is on the host and port the client called: through the
		// local gateway it comes back to this function.
		u, _ := url.Parse(up.URL)
		if u.Scheme != "http" || u.Host != "k001.localhost:"+f.port || u.Path != objectstore.LocalURLPath+"/put" {
			t.Fatalf("url %s", up.URL)
		}
		// A full key inside the prefix is the same key.
		if full := f.presign(t, map[string]any{"op": "get", "key": up.Key}); full.Key != up.Key {
			t.Fatalf("full key became %q", full.Key)
		}
	})

	t.Run("TamperedURLs", func(t *testing.T) {
		up := f.presign(t, map[string]any{"op": "put", "key": "uploads/files/t.txt", "contentType": "text/plain"})
		tamper := func(name, value string) string {
			u, _ := url.Parse(up.URL)
			q := u.Query()
			q.Set(name, value)
			u.RawQuery = q.Encode()
			return u.String()
		}
		for name, u := range map[string]string{
			"OtherTenantsKey": tamper("key", "tenants/k002/uploads/files/t.txt"),
			"LaterExpiry":     tamper("expires", fmt.Sprint(time.Now().Add(24*time.Hour).Unix())),
			"Signature":       tamper("sig", "bm90LWEtc2lnbmF0dXJl"),
			"ContentType":     tamper("contentType", "text/html"),
		} {
			status, body, _ := f.fetch(t, "PUT", u, "text/plain", []byte("x"))
			if status != 403 {
				t.Errorf("%s: %d %s, want 403", name, status, body)
			}
		}
		if status, _, _ := f.fetch(t, "PUT", tamper("expires", fmt.Sprint(time.Now().Add(-time.Second).Unix())), "text/plain", nil); status != 403 {
			t.Errorf("expired: %d", status)
		}
		if status, _, _ := f.fetch(t, "PUT", up.URL, "text/html", []byte("<script>")); status != 403 {
			t.Errorf("another Content-Type than signed: %d", status)
		}
		if _, _, err := f.objects.Store.Get(context.Background(), "tenants/k002/uploads/files/t.txt"); err == nil {
			t.Fatal("a tampered URL wrote k002's key")
		}
	})

	t.Run("KeysOutsideThePrefix", func(t *testing.T) {
		for _, key := range []string{"tenants/k002/x", "../k002/x", "uploads/../../k002/x", "tenants/k001/../k002/x", "/tenants/k002/x", "./x"} {
			for _, op := range []string{"put", "get"} {
				resp := f.call(t, "k001", "k001", "POST", "/api/v1/oss/presign", map[string]any{"op": op, "key": key})
				want(t, resp, 403, "key_forbidden")
				if _, ok := resp.Error.Fields["key"]; !ok {
					t.Errorf("%q: error does not name the key field", key)
				}
			}
			want(t, f.call(t, "k001", "k001", "DELETE", "/api/v1/oss/files?key="+url.QueryEscape(key), nil), 403, "key_forbidden")
		}
		want(t, f.call(t, "k001", "k001", "GET", "/api/v1/oss/files?prefix="+url.QueryEscape("../k002/"), nil), 403, "key_forbidden")
		want(t, f.call(t, "k001", "k001", "GET", "/api/v1/oss/files?prefix=tenants/k002/", nil), 403, "key_forbidden")
	})

	t.Run("OtherTenantsToken", func(t *testing.T) {
		for _, path := range []string{"/api/v1/oss/presign", "/api/v1/oss/sts-token"} {
			want(t, f.call(t, "k001", "k002", "POST", path, map[string]any{"op": "get", "key": "uploads/images/logo.png"}), 403, "tenant_forbidden")
			want(t, f.call(t, "k001", "", "POST", path, map[string]any{"op": "get", "key": "x"}), 403, "tenant_forbidden")
			want(t, f.call(t, "k001", "-", "POST", path, map[string]any{"op": "get", "key": "x"}), 401, "missing_token")
		}
		want(t, f.call(t, "k001", "k002", "GET", "/api/v1/oss/files", nil), 403, "tenant_forbidden")
		want(t, f.call(t, "k001", "k002", "DELETE", "/api/v1/oss/files?key=x", nil), 403, "tenant_forbidden")
		want(t, f.call(t, "k404", "k404", "GET", "/api/v1/oss/files", nil), 404, "tenant_not_found")
	})

	t.Run("ListPagingAndDelete", func(t *testing.T) {
		keys := []string{"docs/a.txt", "docs/b.txt", "docs/c/d.txt", "docs/e.txt", "docs/f.txt"}
		for _, k := range keys {
			if err := f.objects.Store.Put(context.Background(), "tenants/k001/"+k, strings.NewReader(k), int64(len(k)), "text/plain"); err != nil {
				t.Fatal(err)
			}
		}
		// k002 has a docs/ folder too; k001 never sees it.
		if err := f.objects.Store.Put(context.Background(), "tenants/k002/docs/z.txt", strings.NewReader("z"), 1, ""); err != nil {
			t.Fatal(err)
		}
		type page struct {
			Prefix  string `json:"prefix"`
			Objects []struct {
				Key  string `json:"key"`
				Size int64  `json:"size"`
			} `json:"objects"`
			Truncated  bool   `json:"truncated"`
			NextMarker string `json:"nextMarker"`
		}
		var got []string
		marker := ""
		for range 3 {
			resp := f.call(t, "k001", "k001", "GET", "/api/v1/oss/files?prefix=docs/&max=2&marker="+url.QueryEscape(marker), nil)
			want(t, resp, 200, "")
			p := httpapitest.Data[page](t, resp)
			if p.Prefix != "tenants/k001/docs/" || len(p.Objects) > 2 {
				t.Fatalf("page %+v", p)
			}
			for _, o := range p.Objects {
				got = append(got, strings.TrimPrefix(o.Key, "tenants/k001/"))
			}
			if !p.Truncated {
				break
			}
			marker = p.NextMarker
		}
		if strings.Join(got, ",") != strings.Join(keys, ",") {
			t.Fatalf("listed %v, want %v", got, keys)
		}

		resp := f.call(t, "k001", "k001", "DELETE", "/api/v1/oss/files?key=docs/b.txt", nil)
		want(t, resp, 200, "")
		if d := httpapitest.Data[map[string]any](t, resp); d["key"] != "tenants/k001/docs/b.txt" || d["deleted"] != true {
			t.Fatalf("delete = %v", d)
		}
		p := httpapitest.Data[page](t, f.call(t, "k001", "k001", "GET", "/api/v1/oss/files?prefix=docs/", nil))
		if len(p.Objects) != 4 || p.Truncated {
			t.Fatalf("after delete %+v", p)
		}
		down := f.presign(t, map[string]any{"op": "get", "key": "docs/b.txt"})
		if status, _, _ := f.fetch(t, "GET", down.URL, "", nil); status != 404 {
			t.Fatalf("deleted object: %d", status)
		}
		if _, _, err := f.objects.Store.Get(context.Background(), "tenants/k002/docs/z.txt"); err != nil {
			t.Fatalf("k002's object: %v", err)
		}
	})

	t.Run("Validation", func(t *testing.T) {
		for name, tc := range map[string]struct {
			body        any
			code, field string
		}{
			"Op":               {map[string]any{"op": "delete", "key": "a"}, "invalid_op", "op"},
			"NoKey":            {map[string]any{"op": "get"}, "invalid_key", "key"},
			"Expires0":         {map[string]any{"op": "get", "key": "a", "expiresIn": 0}, "invalid_expires_in", "expiresIn"},
			"Expires3601":      {map[string]any{"op": "get", "key": "a", "expiresIn": 3601}, "invalid_expires_in", "expiresIn"},
			"ContentTypeOnGet": {map[string]any{"op": "get", "key": "a", "contentType": "image/png"}, "invalid_content_type", "contentType"},
			"BadContentType":   {map[string]any{"op": "put", "key": "a", "contentType": "not a type"}, "invalid_content_type", "contentType"},
			"UnknownField":     {map[string]any{"op": "get", "key": "a", "bucket": "other"}, "unknown_field", "bucket"},
			"WrongType":        {map[string]any{"op": "get", "key": "a", "expiresIn": "60"}, "invalid_field_type", "expiresIn"},
			"ControlChar":      {map[string]any{"op": "get", "key": "a\u0000b"}, "invalid_key", "key"},
			"TooLong":          {map[string]any{"op": "get", "key": strings.Repeat("x", 1020)}, "invalid_key", "key"},
		} {
			t.Run(name, func(t *testing.T) {
				resp := f.call(t, "k001", "k001", "POST", "/api/v1/oss/presign", tc.body)
				want(t, resp, 400, tc.code)
				if _, ok := resp.Error.Fields[tc.field]; !ok {
					t.Errorf("error does not name %s: %+v", tc.field, resp.Error)
				}
			})
		}
		want(t, f.call(t, "k001", "k001", "GET", "/api/v1/oss/files?max=0", nil), 400, "invalid_max")
		want(t, f.call(t, "k001", "k001", "GET", "/api/v1/oss/files?max=1001", nil), 400, "invalid_max")
		want(t, f.call(t, "k001", "k001", "GET", "/api/v1/oss/files?bucket=x", nil), 400, "unknown_parameter")
		want(t, f.call(t, "k001", "k001", "DELETE", "/api/v1/oss/files?key=a&key=b", nil), 400, "repeated_parameter")
		want(t, f.call(t, "k001", "k001", "DELETE", "/api/v1/oss/files", nil), 400, "invalid_key")
	})

	t.Run("STSNotConfigured", func(t *testing.T) {
		want(t, f.call(t, "k001", "k001", "POST", "/api/v1/oss/sts-token", nil), 501, "sts_not_configured")
		want(t, f.call(t, "k001", "k001", "POST", "/api/v1/oss/sts-token", "{}"), 501, "sts_not_configured")
		want(t, f.call(t, "k001", "k001", "POST", "/api/v1/oss/sts-token", `{"durationSeconds":1}`), 400, "unknown_field")
	})
}

// stsRecorder is a fake Aliyun STS: it records each AssumeRole's form and
// answers with fixed credentials.
type stsRecorder struct{ calls []url.Values }

// newOSSFixture is the function on the fake OSS, with STS configured to
// the recorder it returns.
func newOSSFixture(t *testing.T) (*fixture, *osstest.Server, *stsRecorder) {
	t.Helper()
	fake := osstest.New(t, "unitenant-test", "LTAI5tFakeKeyId", "fake-secret-0123456789")
	rec := &stsRecorder{}
	sts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_ = r.ParseForm()
		rec.calls = append(rec.calls, r.Form)
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"RequestId":"R1","Credentials":{"AccessKeyId":"STS.tmp","AccessKeySecret":"tmp-secret","SecurityToken":"tok","Expiration":"2030-01-01T00:00:00Z"}}`)
	}))
	t.Cleanup(sts.Close)
	f := newFixture(t, map[string]string{
		"STORAGE_BACKEND": "oss", "OSS_ENDPOINT": fake.Endpoint(), "OSS_BUCKET": fake.Bucket,
		"OSS_ACCESS_KEY_ID": fake.AccessKeyID, "OSS_ACCESS_KEY_SECRET": fake.AccessKeySecret,
		"STS_ROLE_ARN": "acs:ram::1234567890123456:role/oss-tenant", "STS_ENDPOINT": sts.URL,
	})
	return f, fake, rec
}

func TestStorageOSS(t *testing.T) {
	t.Parallel()
	f, fake, rec := newOSSFixture(t)

	data := []byte("a picture")
	up := f.roundTrip(t, "uploads/images/p.png", data)
	if !strings.HasPrefix(up.URL, fake.Endpoint()+"/unitenant-test/tenants%2Fk001%2Fuploads") || !strings.Contains(up.URL, "Signature=") {
		t.Fatalf("url %s", up.URL)
	}
	if got, ct, ok := fake.Object("tenants/k001/uploads/images/p.png"); !ok || !bytes.Equal(got, data) || ct != "image/png" {
		t.Fatalf("OSS holds %q %q %v", got, ct, ok)
	}
	want(t, f.call(t, "k001", "k001", "POST", "/api/v1/oss/presign", map[string]any{"op": "put", "key": "tenants/k002/x"}), 403, "key_forbidden")
	// The local routes are not served when objects live in OSS.
	if status, body, _ := f.fetch(t, "GET", "http://k001.localhost:"+f.port+objectstore.LocalURLPath+"/get?key=x", "", nil); status != 404 || !strings.Contains(string(body), "local_storage_disabled") {
		t.Fatalf("local route: %d %s", status, body)
	}

	// Temporary credentials: an admin's session may delete, a member's may
	// not; both upload only the harmless extensions, which the answer lists.
	for i, tc := range []struct {
		name   string
		tok    string
		user   int64
		access objectstore.Access
	}{
		{"Admin", f.token(t, "k001"), adminUser, objectstore.AccessManage},
		{"Member", f.tokenAs(t, auth.AudienceTenant, "k001", memberUser, "member"), memberUser, objectstore.AccessUpload},
		// The membership decides, not the role the token claims.
		{"MemberClaimingAdmin", f.tokenAs(t, auth.AudienceTenant, "k001", memberUser, "admin"), memberUser, objectstore.AccessUpload},
		{"Owner", f.tokenAs(t, auth.AudienceTenant, "k001", ownerUser, "owner"), ownerUser, objectstore.AccessManage},
	} {
		resp := f.callWith(t, "k001", tc.tok, "POST", "/api/v1/oss/sts-token", nil)
		want(t, resp, 200, "")
		out := httpapitest.Data[map[string]any](t, resp)
		if out["accessKeyId"] != "STS.tmp" || out["securityToken"] != "tok" || out["bucket"] != "unitenant-test" ||
			out["prefix"] != "tenants/k001/" || out["allowedPath"] != "tenants/k001/*" || out["endpoint"] != fake.Endpoint() {
			t.Fatalf("%s: sts-token = %v", tc.name, out)
		}
		if got := fmt.Sprint(out["uploadExtensions"]); got != fmt.Sprint(objectstore.UploadExtensions) {
			t.Errorf("%s: uploadExtensions %s, want %v", tc.name, got, objectstore.UploadExtensions)
		}
		policy, err := objectstore.PrefixPolicy("unitenant-test", "tenants/k001/", tc.access)
		if err != nil {
			t.Fatal(err)
		}
		if len(rec.calls) != i+1 || rec.calls[i].Get("Policy") != policy || rec.calls[i].Get("RoleSessionName") != fmt.Sprintf("k001-u%d", tc.user) {
			t.Fatalf("%s: AssumeRole calls %v, want the policy %s", tc.name, rec.calls, policy)
		}
		if got := strings.Contains(rec.calls[i].Get("Policy"), `"oss:DeleteObject"`); got != (tc.access == objectstore.AccessManage) {
			t.Errorf("%s: the policy STS received grants delete = %v: %s", tc.name, got, rec.calls[i].Get("Policy"))
		}
		var sent objectstore.Policy
		if err := json.Unmarshal([]byte(rec.calls[i].Get("Policy")), &sent); err != nil {
			t.Fatal(err)
		}
		for _, st := range sent.Statement {
			if !slices.Contains(st.Action, "oss:PutObject") {
				continue
			}
			for _, res := range st.Resource {
				if !strings.HasPrefix(res, "acs:oss:*:*:unitenant-test/tenants/k001/*.") {
					t.Errorf("%s: uploads are not limited by extension: %s", tc.name, res)
				}
			}
		}
	}
	// Someone no longer a member gets no credentials, and STS is not asked.
	n := len(rec.calls)
	want(t, f.callWith(t, "k001", f.tokenAs(t, auth.AudienceTenant, "k001", removedUser, "admin"), "POST", "/api/v1/oss/sts-token", nil), 403, "not_a_member")
	if len(rec.calls) != n {
		t.Fatalf("STS asked for a removed member: %v", rec.calls[n:])
	}
	// A tenant whose prefix makes the policy longer than STS takes: 501,
	// like no STS at all (clients fall back to presigned URLs), and STS is
	// not asked.
	long := strings.Repeat("k", 50)
	f.addTenant(t, long)
	longTok := f.tokenAs(t, auth.AudienceTenant, long, k002Admin, "admin")
	if _, err := f.sys.Exec(`INSERT INTO global_user_tenant_relations (global_user_id, tenant_id, tenant_code, role_in_tenant) VALUES (?, ?, ?, 'admin')`,
		k002Admin, f.tenants[long], long); err != nil {
		t.Fatal(err)
	}
	want(t, f.callWith(t, long, longTok, "POST", "/api/v1/oss/sts-token", nil), 501, "sts_policy_too_long")
	if len(rec.calls) != n {
		t.Fatalf("STS asked with a policy it refuses: %v", rec.calls[n:])
	}
}
