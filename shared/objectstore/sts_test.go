package objectstore_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/unitenant/unitenant/shared/objectstore"
)

// decodePolicy reads a policy document, failing on anything but the
// documented shape.
func decodePolicy(t *testing.T, doc string) objectstore.Policy {
	t.Helper()
	var p objectstore.Policy
	dec := json.NewDecoder(strings.NewReader(doc))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&p); err != nil {
		t.Fatalf("policy is not the documented shape: %v\n%s", err, doc)
	}
	return p
}

// allows reports whether p allows action on resource, matching Resource
// patterns as RAM does: * is any run of characters ("/" included), every
// other character itself, case included. Statements with a condition are
// left out: the only one is ListObjects', on the bucket.
func allows(p objectstore.Policy, action, resource string) bool {
	for _, s := range p.Statement {
		if s.Effect != "Allow" || s.Condition != nil || !slices.Contains(s.Action, action) {
			continue
		}
		for _, r := range s.Resource {
			re := "^" + strings.ReplaceAll(regexp.QuoteMeta(r), `\*`, ".*") + "$"
			if regexp.MustCompile(re).MatchString(resource) {
				return true
			}
		}
	}
	return false
}

func TestPrefixPolicy(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name          string
		access        objectstore.Access
		objectActions string
	}{
		{"Upload", objectstore.AccessUpload, "oss:GetObject"},
		{"Manage", objectstore.AccessManage, "oss:GetObject,oss:DeleteObject"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			doc, err := objectstore.PrefixPolicy("tenant-storage", "tenants/k001/", tc.access)
			if err != nil {
				t.Fatal(err)
			}
			p := decodePolicy(t, doc)
			if p.Version != "1" || len(p.Statement) != 3 {
				t.Fatalf("policy %s", doc)
			}
			objects, put, list := p.Statement[0], p.Statement[1], p.Statement[2]
			if objects.Effect != "Allow" || strings.Join(objects.Action, ",") != tc.objectActions ||
				strings.Join(objects.Resource, ",") != "acs:oss:*:*:tenant-storage/tenants/k001/*" || objects.Condition != nil {
				t.Errorf("object statement %+v", objects)
			}
			// Uploads: one resource per extension, nothing else.
			var wantPut []string
			for _, ext := range objectstore.UploadExtensions {
				wantPut = append(wantPut, "acs:oss:*:*:tenant-storage/tenants/k001/*"+ext)
			}
			if put.Effect != "Allow" || strings.Join(put.Action, ",") != "oss:PutObject" ||
				strings.Join(put.Resource, ",") != strings.Join(wantPut, ",") || put.Condition != nil {
				t.Errorf("upload statement %+v, want PutObject on %v", put, wantPut)
			}
			if list.Effect != "Allow" || strings.Join(list.Action, ",") != "oss:ListObjects" ||
				strings.Join(list.Resource, ",") != "acs:oss:*:*:tenant-storage" {
				t.Errorf("list statement %+v", list)
			}
			if got := list.Condition["StringLike"]["oss:Prefix"]; len(got) != 1 || got[0] != "tenants/k001/*" || len(list.Condition) != 1 {
				t.Errorf("list condition %+v, want StringLike oss:Prefix tenants/k001/*", list.Condition)
			}
			// Nothing else is granted: no bucket-wide object access, no other action.
			for _, s := range p.Statement {
				for _, r := range s.Resource {
					if r == "acs:oss:*:*:tenant-storage/*" || r == "acs:oss:*:*:*" {
						t.Errorf("policy grants %s", r)
					}
				}
				for _, a := range s.Action {
					if strings.Contains(a, "*") {
						t.Errorf("policy grants wildcard action %s", a)
					}
				}
			}
			if len(doc) > objectstore.MaxPolicyLen {
				t.Errorf("policy is %d characters, STS takes %d", len(doc), objectstore.MaxPolicyLen)
			}
		})
	}

	for _, tc := range []struct {
		bucket, prefix string
		access         objectstore.Access
	}{
		{"tenant-storage", "", objectstore.AccessManage},              // the whole bucket
		{"tenant-storage", "tenants/k001", objectstore.AccessManage},  // would match k0011
		{"tenant-storage", "tenants/*/", objectstore.AccessManage},    // wildcard
		{"tenant-storage", "tenants/${x}/", objectstore.AccessManage}, // policy variable
		{"tenant-storage", "../k002/", objectstore.AccessManage},      // climbing
		{"tenant-storage", "/tenants/k001/", objectstore.AccessManage},
		{"Tenant_Storage", "tenants/k001/", objectstore.AccessManage}, // not a bucket name
		{"b/c", "tenants/k001/", objectstore.AccessManage},
		{"tenant-storage", "tenants/k001/", 0},  // no access chosen
		{"tenant-storage", "tenants/k001/", 99}, // unknown access
	} {
		if doc, err := objectstore.PrefixPolicy(tc.bucket, tc.prefix, tc.access); err == nil {
			t.Errorf("PrefixPolicy(%q, %q, %d) = %s, want an error", tc.bucket, tc.prefix, tc.access, doc)
		}
	}
}

// TestPrefixPolicyUploadTypes: STS credentials upload only keys ending in a
// harmless extension (lower case), inside the prefix: never a page or
// script the bucket's origin would serve to whoever opens its link, never a
// key without an extension (a store chooses its type by the extension).
// Reading stays open to every key of the prefix, deleting to AccessManage.
func TestPrefixPolicyUploadTypes(t *testing.T) {
	t.Parallel()
	obj := func(key string) string { return "acs:oss:*:*:tenant-storage/" + key }
	for _, access := range []objectstore.Access{objectstore.AccessUpload, objectstore.AccessManage} {
		doc, err := objectstore.PrefixPolicy("tenant-storage", "tenants/k001/", access)
		if err != nil {
			t.Fatal(err)
		}
		p := decodePolicy(t, doc)
		for _, key := range []string{
			"tenants/k001/a.png", "tenants/k001/uploads/images/IMG_0001.jpg", "tenants/k001/uploads/videos/v.mp4",
			"tenants/k001/documents/report.final.pdf", "tenants/k001/a.html.png", "tenants/k001/x.docx",
		} {
			if !allows(p, "oss:PutObject", obj(key)) {
				t.Errorf("access %d: upload of %s refused", access, key)
			}
		}
		for _, key := range []string{
			"tenants/k001/a.html", "tenants/k001/a.htm", "tenants/k001/a.svg", "tenants/k001/a.xml", "tenants/k001/a.js",
			"tenants/k001/a.xhtml", "tenants/k001/a.png.html", "tenants/k001/a.png/", "tenants/k001/a", "tenants/k001/png",
			"tenants/k001/a.PNG", "tenants/k001/a.Html", // lower-case extensions only
			"tenants/k002/a.png", "tenants/k0011/a.png", "archives/a.png", "a.png",
		} {
			if allows(p, "oss:PutObject", obj(key)) {
				t.Errorf("access %d: upload of %s allowed", access, key)
			}
		}
		if !allows(p, "oss:GetObject", obj("tenants/k001/old.html")) || allows(p, "oss:GetObject", obj("tenants/k002/a.png")) {
			t.Errorf("access %d: reads are not the whole prefix and only it", access)
		}
		if got := allows(p, "oss:DeleteObject", obj("tenants/k001/a.png")); got != (access == objectstore.AccessManage) {
			t.Errorf("access %d: delete allowed = %v", access, got)
		}
		if allows(p, "oss:DeleteObject", obj("tenants/k002/a.png")) {
			t.Errorf("access %d: deletes outside the prefix", access)
		}
	}
	for _, ext := range objectstore.UploadExtensions {
		if ext != strings.ToLower(ext) || !strings.HasPrefix(ext, ".") || strings.ContainsAny(ext[1:], ".*?$/") {
			t.Errorf("upload extension %q: want a dot and lower-case letters or digits", ext)
		}
	}
}

// TestPrefixPolicyLength: STS takes a policy of at most MaxPolicyLen
// characters; a longer one is refused here, naming the limit, instead of by
// STS on every request.
func TestPrefixPolicyLength(t *testing.T) {
	t.Parallel()
	// A usual bucket name and a long tenant code fit.
	code := strings.Repeat("k", 24)
	doc, err := objectstore.PrefixPolicy("unitenant-prod-storage", "tenants/"+code+"/", objectstore.AccessManage)
	if err != nil || len(doc) > objectstore.MaxPolicyLen {
		t.Fatalf("a %d-character code: %d characters, %v", len(code), len(doc), err)
	}
	// The longest bucket name with the longest code does not.
	doc, err = objectstore.PrefixPolicy(strings.Repeat("b", 63), "tenants/"+strings.Repeat("c", 50)+"/", objectstore.AccessManage)
	if err == nil || !errors.Is(err, objectstore.ErrPolicyTooLong) || !strings.Contains(err.Error(), "2048") {
		t.Fatalf("long policy = %d characters, %v; want ErrPolicyTooLong naming the limit", len(doc), err)
	}
}

// fakeSTS speaks STS's RPC wire format: form/query parameters in, JSON out.
func fakeSTS(t *testing.T, fail bool) (*httptest.Server, chan map[string]string) {
	t.Helper()
	got := make(chan map[string]string, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := r.ParseForm(); err != nil {
			t.Errorf("parse form: %v", err)
		}
		p := map[string]string{}
		for k := range r.Form {
			p[k] = r.Form.Get(k)
		}
		got <- p
		w.Header().Set("Content-Type", "application/json")
		if fail {
			w.WriteHeader(http.StatusForbidden)
			fmt.Fprint(w, `{"RequestId":"R2","HostId":"sts.aliyuncs.com","Code":"NoPermission","Message":"You are not authorized to do this action."}`)
			return
		}
		fmt.Fprint(w, `{"RequestId":"R1","AssumedRoleUser":{"Arn":"acs:ram::1234567890123456:role/oss-tenant/k001-u42","AssumedRoleId":"3440:k001-u42"},
			"Credentials":{"AccessKeyId":"STS.NUgYrLnoC37mZZCNnAbez2EEp","AccessKeySecret":"tmp-secret","SecurityToken":"CAESrAIIARKAA...","Expiration":"2025-10-01T09:00:00Z"}}`)
	}))
	t.Cleanup(srv.Close)
	return srv, got
}

func newSTS(t *testing.T, endpoint string) *objectstore.STS {
	t.Helper()
	s, err := objectstore.NewSTS(objectstore.STSConfig{RoleARN: "acs:ram::1234567890123456:role/oss-tenant",
		Endpoint: endpoint, AccessKeyID: "LTAI5tRamUser", AccessKeySecret: "ram-user-secret", Bucket: "tenant-storage",
		Duration: 30 * time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestSTSAssumeRole(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		access objectstore.Access
	}{{"Upload", objectstore.AccessUpload}, {"Manage", objectstore.AccessManage}} {
		t.Run(tc.name, func(t *testing.T) {
			srv, got := fakeSTS(t, false)
			c, err := newSTS(t, srv.URL).AssumeRole(context.Background(), "k001-u42", "tenants/k001/", tc.access)
			if err != nil {
				t.Fatal(err)
			}
			want := objectstore.Credentials{AccessKeyID: "STS.NUgYrLnoC37mZZCNnAbez2EEp", AccessKeySecret: "tmp-secret",
				SecurityToken: "CAESrAIIARKAA...", Expiration: time.Date(2025, 10, 1, 9, 0, 0, 0, time.UTC)}
			if c != want {
				t.Fatalf("credentials %+v, want %+v", c, want)
			}
			p := <-got
			policy, err := objectstore.PrefixPolicy("tenant-storage", "tenants/k001/", tc.access)
			if err != nil {
				t.Fatal(err)
			}
			for k, v := range map[string]string{
				"Action": "AssumeRole", "Version": "2015-04-01", "RoleArn": "acs:ram::1234567890123456:role/oss-tenant",
				"RoleSessionName": "k001-u42", "Policy": policy, "DurationSeconds": "1800", "AccessKeyId": "LTAI5tRamUser",
			} {
				if p[k] != v {
					t.Errorf("%s = %q, want %q", k, p[k], v)
				}
			}
			if p["Signature"] == "" {
				t.Error("request is not signed")
			}
			// What STS received, read on its own.
			sent := decodePolicy(t, p["Policy"])
			obj := "acs:oss:*:*:tenant-storage/tenants/k001/"
			if allows(sent, "oss:PutObject", obj+"a.html") || allows(sent, "oss:PutObject", obj+"a.svg") || !allows(sent, "oss:PutObject", obj+"a.png") {
				t.Errorf("the session uploads pages, or not pictures: %s", p["Policy"])
			}
			if got := allows(sent, "oss:DeleteObject", obj+"a.png"); got != (tc.access == objectstore.AccessManage) {
				t.Errorf("the session deletes = %v: %s", got, p["Policy"])
			}
		})
	}
}

func TestSTSAssumeRoleRefusesUnknownAccess(t *testing.T) {
	t.Parallel()
	srv, got := fakeSTS(t, false)
	if _, err := newSTS(t, srv.URL).AssumeRole(context.Background(), "k001-u42", "tenants/k001/", 0); err == nil {
		t.Fatal("AssumeRole without an access level succeeded")
	}
	select {
	case p := <-got:
		t.Fatalf("STS was asked anyway: %v", p)
	default:
	}
}

func TestSTSErrorKeepsCodeNotSecrets(t *testing.T) {
	t.Parallel()
	srv, got := fakeSTS(t, true)
	_, err := newSTS(t, srv.URL).AssumeRole(context.Background(), "k001-u42", "tenants/k001/", objectstore.AccessUpload)
	<-got
	if err == nil || !strings.Contains(err.Error(), "NoPermission") {
		t.Fatalf("AssumeRole = %v, want the STS error code", err)
	}
	if strings.Contains(err.Error(), "ram-user-secret") || strings.Contains(err.Error(), "Signature") {
		t.Fatalf("error leaks request details: %v", err)
	}
}

func TestNewSTSValidates(t *testing.T) {
	t.Parallel()
	base := objectstore.STSConfig{RoleARN: "acs:ram::1234567890123456:role/oss-tenant", AccessKeyID: "a", AccessKeySecret: "b", Bucket: "tenant-storage"}
	for name, mod := range map[string]func(*objectstore.STSConfig){
		"RoleARN":   func(c *objectstore.STSConfig) { c.RoleARN = "oss-tenant" },
		"NoKey":     func(c *objectstore.STSConfig) { c.AccessKeySecret = "" },
		"Bucket":    func(c *objectstore.STSConfig) { c.Bucket = "" },
		"TooShort":  func(c *objectstore.STSConfig) { c.Duration = time.Minute },
		"TooLong":   func(c *objectstore.STSConfig) { c.Duration = 13 * time.Hour },
		"Endpoint":  func(c *objectstore.STSConfig) { c.Endpoint = "sts.aliyuncs.com/path" },
		"BadScheme": func(c *objectstore.STSConfig) { c.Endpoint = "ftp://sts.aliyuncs.com" },
	} {
		c := base
		mod(&c)
		if _, err := objectstore.NewSTS(c); err == nil {
			t.Errorf("%s: NewSTS accepted %+v", name, c)
		}
	}
	if _, err := objectstore.NewSTS(base); err != nil {
		t.Fatalf("defaults: %v", err)
	}
	s := newSTS(t, "http://127.0.0.1:1")
	if _, err := s.AssumeRole(context.Background(), "bad name!", "tenants/k001/", objectstore.AccessUpload); err == nil {
		t.Error("a malformed session name was accepted")
	}
}
