package objectstore_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/unitenant/unitenant/shared/objectstore"
)

func TestPrefixPolicy(t *testing.T) {
	t.Parallel()
	doc, err := objectstore.PrefixPolicy("tenant-storage", "tenants/k001/")
	if err != nil {
		t.Fatal(err)
	}
	var p objectstore.Policy
	dec := json.NewDecoder(strings.NewReader(doc))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&p); err != nil {
		t.Fatalf("policy is not the documented shape: %v\n%s", err, doc)
	}
	if p.Version != "1" || len(p.Statement) != 2 {
		t.Fatalf("policy %s", doc)
	}
	objects, list := p.Statement[0], p.Statement[1]
	if objects.Effect != "Allow" || strings.Join(objects.Action, ",") != "oss:GetObject,oss:PutObject,oss:DeleteObject" ||
		strings.Join(objects.Resource, ",") != "acs:oss:*:*:tenant-storage/tenants/k001/*" || objects.Condition != nil {
		t.Errorf("object statement %+v", objects)
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

	for _, tc := range []struct{ bucket, prefix string }{
		{"tenant-storage", ""},              // the whole bucket
		{"tenant-storage", "tenants/k001"},  // would match k0011
		{"tenant-storage", "tenants/*/"},    // wildcard
		{"tenant-storage", "tenants/${x}/"}, // policy variable
		{"tenant-storage", "../k002/"},      // climbing
		{"tenant-storage", "/tenants/k001/"},
		{"Tenant_Storage", "tenants/k001/"}, // not a bucket name
		{"b/c", "tenants/k001/"},
	} {
		if doc, err := objectstore.PrefixPolicy(tc.bucket, tc.prefix); err == nil {
			t.Errorf("PrefixPolicy(%q, %q) = %s, want an error", tc.bucket, tc.prefix, doc)
		}
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
	srv, got := fakeSTS(t, false)
	c, err := newSTS(t, srv.URL).AssumeRole(context.Background(), "k001-u42", "tenants/k001/")
	if err != nil {
		t.Fatal(err)
	}
	want := objectstore.Credentials{AccessKeyID: "STS.NUgYrLnoC37mZZCNnAbez2EEp", AccessKeySecret: "tmp-secret",
		SecurityToken: "CAESrAIIARKAA...", Expiration: time.Date(2025, 10, 1, 9, 0, 0, 0, time.UTC)}
	if c != want {
		t.Fatalf("credentials %+v, want %+v", c, want)
	}
	p := <-got
	policy, _ := objectstore.PrefixPolicy("tenant-storage", "tenants/k001/")
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
}

func TestSTSErrorKeepsCodeNotSecrets(t *testing.T) {
	t.Parallel()
	srv, got := fakeSTS(t, true)
	_, err := newSTS(t, srv.URL).AssumeRole(context.Background(), "k001-u42", "tenants/k001/")
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
	if _, err := s.AssumeRole(context.Background(), "bad name!", "tenants/k001/"); err == nil {
		t.Error("a malformed session name was accepted")
	}
}
