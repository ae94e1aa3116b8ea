package objectstore_test

import (
	"bytes"
	"context"
	"crypto/md5"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"maps"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"testing/iotest"
	"time"

	"github.com/unitenant/unitenant/shared/fault"
	"github.com/unitenant/unitenant/shared/logging"
	"github.com/unitenant/unitenant/shared/objectstore"
	"github.com/unitenant/unitenant/shared/objectstore/osstest"
)

// backend is a store under test and how to reach the URLs it presigns.
type backend struct {
	store objectstore.Store
	// resolve makes a presigned URL absolute (the local store's are relative
	// to the server that serves them).
	resolve func(string) string
}

var testSecret = bytes.Repeat([]byte("s"), 32)

// newLocal is a local store in a fresh directory, its presigned URLs served
// by its own handler as the storage function serves them.
func newLocal(t *testing.T, now func() time.Time) (*objectstore.Local, backend) {
	t.Helper()
	l, err := objectstore.NewLocal(objectstore.LocalConfig{
		Dir:    filepath.Join(t.TempDir(), "objects"),
		Secret: func() ([]byte, error) { return testSecret, nil },
		Now:    now,
	})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(l.Handler(logging.Discard()))
	t.Cleanup(srv.Close)
	return l, backend{store: l, resolve: func(u string) string { return srv.URL + u }}
}

// newOSS is the OSS store, the real aliyun-oss-go-sdk client, against a
// fake OSS that checks every signature.
func newOSS(t *testing.T) (*osstest.Server, backend) {
	t.Helper()
	fake := osstest.New(t, "unitenant-test", "LTAI5tFakeKeyId", "fake-secret-0123456789")
	s, err := objectstore.NewOSS(objectstore.OSSConfig{Endpoint: fake.Endpoint(), Bucket: fake.Bucket,
		AccessKeyID: fake.AccessKeyID, AccessKeySecret: fake.AccessKeySecret})
	if err != nil {
		t.Fatal(err)
	}
	return fake, backend{store: s, resolve: func(u string) string { return u }}
}

// backends makes each implementation under test.
var backends = map[string]func(*testing.T) backend{
	"Local": func(t *testing.T) backend { _, b := newLocal(t, nil); return b },
	"OSS":   func(t *testing.T) backend { _, b := newOSS(t); return b },
}

// TestStoreContract runs the same behaviour against both implementations.
func TestStoreContract(t *testing.T) {
	t.Parallel()
	eachBackend(t, func(t *testing.T, b backend) {
		t.Run("PutGet", func(t *testing.T) { testPutGet(t, b.store) })
		t.Run("UnknownLength", func(t *testing.T) { testUnknownLength(t, b.store) })
		t.Run("ListPaging", func(t *testing.T) { testListPaging(t, b.store) })
		t.Run("Delete", func(t *testing.T) { testDelete(t, b.store) })
		t.Run("PresignRoundTrip", func(t *testing.T) { testPresign(t, b) })
		t.Run("PresignPost", func(t *testing.T) { testPresignPost(t, b) })
		t.Run("BadKeys", func(t *testing.T) { testBadKeys(t, b.store) })
	})
}

// eachBackend runs test against every implementation, in parallel.
func eachBackend(t *testing.T, test func(*testing.T, backend)) {
	for name, mk := range backends {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			test(t, mk(t))
		})
	}
}

func put(t *testing.T, s objectstore.Store, key, body, ct string) {
	t.Helper()
	if err := s.Put(context.Background(), key, strings.NewReader(body), int64(len(body)), ct); err != nil {
		t.Fatalf("Put %s: %v", key, err)
	}
}

func read(t *testing.T, s objectstore.Store, key string) (string, objectstore.Info) {
	t.Helper()
	rc, info, err := s.Get(context.Background(), key)
	if err != nil {
		t.Fatalf("Get %s: %v", key, err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatal(err)
	}
	return string(b), info
}

func testPutGet(t *testing.T, s objectstore.Store) {
	put(t, s, "t/put/hello.txt", "hello, 世界", "text/plain; charset=utf-8")
	got, info := read(t, s, "t/put/hello.txt")
	if got != "hello, 世界" {
		t.Fatalf("Get = %q", got)
	}
	if info.Key != "t/put/hello.txt" || info.Size != int64(len("hello, 世界")) || info.ContentType != "text/plain; charset=utf-8" {
		t.Errorf("info = %+v", info)
	}
	// Both stores give OSS's ETag: the quoted upper-case MD5 of the bytes.
	if want := fmt.Sprintf(`"%X"`, md5.Sum([]byte("hello, 世界"))); info.ETag != want {
		t.Errorf("etag = %q", info.ETag)
	}
	if time.Since(info.LastModified) > time.Minute {
		t.Errorf("lastModified = %v", info.LastModified)
	}
	put(t, s, "t/put/hello.txt", "replaced", "text/plain")
	if got, _ := read(t, s, "t/put/hello.txt"); got != "replaced" {
		t.Errorf("after overwrite Get = %q", got)
	}
	if _, _, err := s.Get(context.Background(), "t/put/missing"); fault.CodeOf(err) != "object_not_found" {
		t.Errorf("Get missing = %v, want object_not_found", err)
	}
}

func testUnknownLength(t *testing.T, s objectstore.Store) {
	body := bytes.Repeat([]byte("0123456789"), 10_000)
	// OneByteReader hides the length: the body goes chunked.
	if err := s.Put(context.Background(), "t/chunked.bin", iotest.OneByteReader(bytes.NewReader(body)), -1, ""); err != nil {
		t.Fatalf("Put: %v", err)
	}
	if got, info := read(t, s, "t/chunked.bin"); got != string(body) || info.Size != int64(len(body)) {
		t.Fatalf("Get: %d bytes, info %+v", len(got), info)
	}
}

func testListPaging(t *testing.T, s objectstore.Store) {
	ctx := context.Background()
	want := []string{"t/list/a", "t/list/b/1", "t/list/b/2", "t/list/c.txt", "t/list/d"}
	for _, k := range append(slices.Clone(want), "t/lister", "t/other/x") {
		put(t, s, k, "x"+k, "")
	}
	var got []string
	marker, pages := "", 0
	for {
		page, err := s.List(ctx, "t/list/", marker, 2)
		if err != nil {
			t.Fatal(err)
		}
		pages++
		if len(page.Objects) > 2 {
			t.Fatalf("page of %d objects, max 2", len(page.Objects))
		}
		for _, o := range page.Objects {
			got = append(got, o.Key)
			if o.Size != int64(len("x"+o.Key)) {
				t.Errorf("%s: size %d", o.Key, o.Size)
			}
		}
		if !page.Truncated {
			break
		}
		if page.NextMarker == "" || pages > 5 {
			t.Fatalf("truncated page without a usable marker: %+v", page)
		}
		marker = page.NextMarker
	}
	if !slices.Equal(got, want) || pages != 3 {
		t.Fatalf("listed %v in %d pages, want %v in 3", got, pages, want)
	}
	// A partial last segment is a prefix too.
	page, err := s.List(ctx, "t/list/b", "", 1000)
	if err != nil || len(page.Objects) != 2 || page.Truncated {
		t.Fatalf("List t/list/b = %+v, %v", page, err)
	}
	if page, err := s.List(ctx, "t/nothing/", "", 10); err != nil || len(page.Objects) != 0 {
		t.Fatalf("List of an empty prefix = %+v, %v", page, err)
	}
	if _, err := s.List(ctx, "t/", "", 0); fault.CodeOf(err) != "invalid_max" {
		t.Errorf("max 0: %v", err)
	}
}

func testDelete(t *testing.T, s objectstore.Store) {
	ctx := context.Background()
	put(t, s, "t/del/x/y.txt", "y", "")
	put(t, s, "t/del/keep", "k", "")
	if err := s.Delete(ctx, "t/del/x/y.txt"); err != nil {
		t.Fatal(err)
	}
	if err := s.Delete(ctx, "t/del/x/y.txt"); err != nil {
		t.Fatalf("deleting twice: %v", err)
	}
	if _, _, err := s.Get(ctx, "t/del/x/y.txt"); fault.CodeOf(err) != "object_not_found" {
		t.Fatalf("Get after Delete = %v", err)
	}
	page, err := s.List(ctx, "t/del/", "", 10)
	if err != nil || len(page.Objects) != 1 || page.Objects[0].Key != "t/del/keep" {
		t.Fatalf("List after Delete = %+v, %v", page, err)
	}
	// The emptied folder is no obstacle to a key of its name.
	put(t, s, "t/del/x", "now a file", "")
}

// do sends one request and returns the status, body and Content-Type.
func do(t *testing.T, method, u, ct string, body []byte) (int, []byte, string) {
	t.Helper()
	req, err := http.NewRequest(method, u, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if ct != "" {
		req.Header.Set("Content-Type", ct)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b, resp.Header.Get("Content-Type")
}

func testPresign(t *testing.T, b backend) {
	ctx := context.Background()
	png := make([]byte, 4096)
	_, _ = rand.Read(png)
	key := "t/presign/图片 1+2.png" // spaces, plus and non-ASCII survive the URL
	putURL, err := b.store.PresignPut(ctx, key, "image/png", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if status, body, _ := do(t, "PUT", b.resolve(putURL), "image/png", png); status != 200 {
		t.Fatalf("presigned PUT: %d %s", status, body)
	}
	getURL, err := b.store.PresignGet(ctx, key, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	status, body, ct := do(t, "GET", b.resolve(getURL), "", nil)
	if status != 200 || !bytes.Equal(body, png) || ct != "image/png" {
		t.Fatalf("presigned GET: %d, %d bytes, %q", status, len(body), ct)
	}

	// The signature covers the Content-Type, the method and the key.
	if status, _, _ := do(t, "PUT", b.resolve(putURL), "text/html", []byte("<script>")); status != 403 {
		t.Errorf("PUT with another Content-Type: %d, want 403", status)
	}
	if status, _, _ := do(t, "PUT", b.resolve(getURL), "", []byte("x")); status != 403 && status != 405 {
		t.Errorf("PUT on a GET URL: %d, want 403 or 405", status)
	}
	other := strings.Replace(b.resolve(getURL), url.QueryEscape("presign"), url.QueryEscape("presigx"), 1)
	if other == b.resolve(getURL) {
		t.Fatalf("test bug: key not found in %s", getURL)
	}
	if status, _, _ := do(t, "GET", other, "", nil); status != 403 {
		t.Errorf("GET with a changed key: %d, want 403", status)
	}
	if got, _ := read(t, b.store, key); got != string(png) {
		t.Error("a refused request changed the object")
	}
	if _, err := b.store.PresignGet(ctx, key, 0); fault.CodeOf(err) != "invalid_expires_in" {
		t.Errorf("ttl 0: %v", err)
	}
}

// postForm sends a form upload: form's fields with change applied (an
// empty value drops the field), then the file, last, unless file is nil.
func postForm(t *testing.T, u string, form objectstore.PostForm, change map[string]string, file []byte) (int, []byte) {
	t.Helper()
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	fields := maps.Clone(form.Fields)
	for k, v := range change {
		if v == "" {
			delete(fields, k)
		} else {
			fields[k] = v
		}
	}
	for _, k := range slices.Sorted(maps.Keys(fields)) {
		_ = mw.WriteField(k, fields[k])
	}
	if file != nil {
		fw, _ := mw.CreateFormFile("file", "upload.bin")
		_, _ = fw.Write(file)
	}
	_ = mw.Close()
	status, b, _ := do(t, "POST", u, mw.FormDataContentType(), body.Bytes())
	return status, b
}

func testPresignPost(t *testing.T, b backend) {
	ctx := context.Background()
	png := make([]byte, 1000)
	_, _ = rand.Read(png)
	key := "t/post/图片 1.png"
	form, err := b.store.PresignPost(ctx, key, "image/png", int64(len(png)), time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	u := b.resolve(form.URL)
	// A form that strays from the grant stores nothing.
	for name, change := range map[string]map[string]string{
		"another key":          {"key": "t/post/other.png"},
		"another tenant's key": {"key": "tenants/k002/x.png"},
		"another type":         {"Content-Type": "text/html"},
		"no type":              {"Content-Type": ""},
	} {
		if status, body := postForm(t, u, form, change, png); status != 403 {
			t.Errorf("form with %s: %d %s, want 403", name, status, body)
		}
	}
	if status, body := postForm(t, u, form, nil, nil); status != 400 {
		t.Errorf("form without a file: %d %s, want 400", status, body)
	}
	if status, body := postForm(t, u, form, nil, append(slices.Clone(png), 'x')); status != 400 && status != 413 {
		t.Errorf("a byte over the limit: %d %s, want 400 or 413", status, body)
	}
	if keys := listKeys(t, b.store, "t/post/"); len(keys) != 0 {
		t.Fatalf("refused forms stored %v", keys)
	}
	if status, body := postForm(t, u, form, nil, png); status/100 != 2 {
		t.Fatalf("form upload at the limit: %d %s", status, body)
	}
	got, info := read(t, b.store, key)
	if got != string(png) || info.ContentType != "image/png" {
		t.Fatalf("stored %d bytes as %q, want %d as image/png", len(got), info.ContentType, len(png))
	}
	for _, bad := range []struct {
		ct   string
		max  int64
		code string
	}{{"", 10, "invalid_content_type"}, {"image/png", 0, "invalid_max_size"}, {"image/png", objectstore.MaxPostSize + 1, "invalid_max_size"}} {
		if _, err := b.store.PresignPost(ctx, key, bad.ct, bad.max, time.Minute); fault.CodeOf(err) != bad.code {
			t.Errorf("PresignPost(%q, %d): %v, want %s", bad.ct, bad.max, err, bad.code)
		}
	}
	if _, err := b.store.PresignPost(ctx, "../x.png", "image/png", 10, time.Minute); fault.CodeOf(err) != "key_forbidden" {
		t.Errorf("PresignPost outside: %v", err)
	}
}

// listKeys is every key under prefix.
func listKeys(t *testing.T, s objectstore.Store, prefix string) []string {
	t.Helper()
	page, err := s.List(context.Background(), prefix, "", objectstore.MaxList)
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	for _, o := range page.Objects {
		keys = append(keys, o.Key)
	}
	return keys
}

// TestPostGrantExpires: a form upload is refused once its grant expired.
func TestPostGrantExpires(t *testing.T) {
	t.Parallel()
	clock := time.Now()
	now := func() time.Time { return clock }
	_, local := newLocal(t, now)
	fake, oss := newOSS(t)
	for name, b := range map[string]backend{"Local": local, "OSS": oss} {
		form, err := b.store.PresignPost(context.Background(), "t/late.png", "image/png", 10, time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		fake.SetNow(func() time.Time { return time.Now().Add(2 * time.Minute) })
		clock = clock.Add(2 * time.Minute)
		if status, body := postForm(t, b.resolve(form.URL), form, nil, []byte("late")); status != 403 {
			t.Errorf("%s: expired form: %d %s, want 403", name, status, body)
		}
		if keys := listKeys(t, b.store, "t/"); len(keys) != 0 {
			t.Errorf("%s: an expired form stored %v", name, keys)
		}
	}
}

func testBadKeys(t *testing.T, s objectstore.Store) {
	ctx := context.Background()
	for key, code := range map[string]string{
		"":          "invalid_key",
		"../x":      "key_forbidden",
		"a/../../x": "key_forbidden",
		"/etc/x":    "key_forbidden",
		"a/./b":     "key_forbidden",
		"a//b":      "invalid_key",
		"a/":        "invalid_key",
		`a\..\b`:    "invalid_key",
		"a\x00b":    "invalid_key",
		"a\nb":      "invalid_key",
		"\xff\xfe":  "invalid_key",
		strings.Repeat("k", objectstore.MaxKeyLen+1): "invalid_key",
	} {
		if err := s.Put(ctx, key, strings.NewReader("x"), 1, ""); fault.CodeOf(err) != code {
			t.Errorf("Put %q = %v, want %s", key, err, code)
		}
		if _, err := s.PresignGet(ctx, key, time.Minute); fault.CodeOf(err) != code {
			t.Errorf("PresignGet %q = %v, want %s", key, err, code)
		}
	}
	long := strings.Repeat("k", objectstore.MaxKeyLen)
	if err := objectstore.CheckKey(long); err != nil {
		t.Errorf("a key of exactly %d bytes: %v", objectstore.MaxKeyLen, err)
	}
}

func TestOSSWrongSecretIsRejected(t *testing.T) {
	t.Parallel()
	fake, good := newOSS(t)
	bad, err := objectstore.NewOSS(objectstore.OSSConfig{Endpoint: fake.Endpoint(), Bucket: fake.Bucket,
		AccessKeyID: fake.AccessKeyID, AccessKeySecret: "not-the-secret"})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	err = bad.Put(ctx, "t/x", strings.NewReader("x"), 1, "")
	if err == nil || !strings.Contains(err.Error(), "SignatureDoesNotMatch") || !strings.Contains(err.Error(), "StatusCode=403") {
		t.Fatalf("Put with a wrong secret = %v, want 403 SignatureDoesNotMatch", err)
	}
	if strings.Contains(err.Error(), "not-the-secret") {
		t.Fatalf("error leaks the secret: %v", err)
	}
	if len(fake.Keys()) != 0 {
		t.Fatalf("the fake stored %v from a badly signed request", fake.Keys())
	}
	if _, err := bad.List(ctx, "", "", 10); err == nil || !strings.Contains(err.Error(), "SignatureDoesNotMatch") {
		t.Fatalf("List with a wrong secret = %v", err)
	}

	put(t, good.store, "t/x", "secret data", "text/plain")
	u, err := bad.PresignGet(ctx, "t/x", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	status, body, _ := do(t, "GET", u, "", nil)
	if status != 403 || !strings.Contains(string(body), "<Code>SignatureDoesNotMatch</Code>") {
		t.Fatalf("URL signed with a wrong secret: %d %s", status, body)
	}
	// Unsigned and expired requests are refused too.
	plain := strings.Split(u, "?")[0]
	if status, body, _ := do(t, "GET", plain, "", nil); status != 403 || !strings.Contains(string(body), "AccessDenied") {
		t.Fatalf("unsigned GET: %d %s", status, body)
	}
	good2, _ := good.store.PresignGet(ctx, "t/x", time.Minute)
	q, _ := url.Parse(good2)
	v := q.Query()
	v.Set("Expires", fmt.Sprint(time.Now().Add(-time.Minute).Unix()))
	q.RawQuery = v.Encode()
	if status, body, _ := do(t, "GET", q.String(), "", nil); status != 403 || !strings.Contains(string(body), "expired") {
		t.Fatalf("expired URL: %d %s", status, body)
	}
}

func TestOSSSendsWhatTheFakeStores(t *testing.T) {
	t.Parallel()
	fake, b := newOSS(t)
	put(t, b.store, "tenants/k001/a b.txt", "bytes", "text/plain")
	data, ct, ok := fake.Object("tenants/k001/a b.txt")
	if !ok || string(data) != "bytes" || ct != "text/plain" {
		t.Fatalf("fake holds %q %q %v", data, ct, ok)
	}
	if fake.Requests() != 1 {
		t.Fatalf("%d requests served, want 1", fake.Requests())
	}
}

func TestLocalURLs(t *testing.T) {
	t.Parallel()
	now := time.Date(2025, 10, 1, 8, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	l, b := newLocal(t, clock)
	ctx := context.Background()
	put(t, l, "t/a.txt", "a", "text/plain")
	put(t, l, "t/b.txt", "b", "text/plain")
	u, err := l.PresignGet(ctx, "t/a.txt", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(u, objectstore.LocalURLPath+"/get?") {
		t.Fatalf("url %s", u)
	}
	tamper := func(name, value string) string {
		p, _ := url.Parse(u)
		q := p.Query()
		q.Set(name, value)
		p.RawQuery = q.Encode()
		return p.String()
	}
	for name, u := range map[string]string{
		"Key":       tamper("key", "t/b.txt"),
		"Expiry":    tamper("expires", fmt.Sprint(now.Add(time.Hour).Unix())),
		"Signature": tamper("sig", "AAAA"),
		"NoSig":     tamper("sig", ""),
		"Traversal": tamper("key", "../../etc/passwd"),
	} {
		status, body, _ := do(t, "GET", b.resolve(u), "", nil)
		if status != 403 || !strings.Contains(string(body), "signature_invalid") {
			t.Errorf("%s tampered: %d %s", name, status, body)
		}
	}
	if status, body, _ := do(t, "GET", b.resolve(u), "", nil); status != 200 || string(body) != "a" {
		t.Fatalf("untampered: %d %s", status, body)
	}
	now = now.Add(time.Minute)
	if status, body, _ := do(t, "GET", b.resolve(u), "", nil); status != 403 || !strings.Contains(string(body), "url_expired") {
		t.Fatalf("expired: %d %s", status, body)
	}
}

func TestLocalStaysInsideItsRoot(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	outside := t.TempDir()
	l, err := objectstore.NewLocal(objectstore.LocalConfig{Dir: dir, Secret: func() ([]byte, error) { return testSecret, nil }})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	put(t, l, "t/ok", "ok", "")
	// A symbolic link planted inside the store must not lead out of it.
	if err := os.Symlink(outside, filepath.Join(dir, "data", "t", "escape")); err != nil {
		t.Fatal(err)
	}
	err = l.Put(ctx, "t/escape/owned", strings.NewReader("x"), 1, "")
	if err == nil {
		t.Fatal("Put through a symbolic link out of the root succeeded")
	}
	if entries, _ := os.ReadDir(outside); len(entries) != 0 {
		t.Fatalf("wrote outside the root: %v", entries)
	}
	if err := os.WriteFile(filepath.Join(outside, "secret"), []byte("s"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, _, err := l.Get(ctx, "t/escape/secret"); err == nil {
		t.Fatal("Get through a symbolic link out of the root succeeded")
	}
	if page, err := l.List(ctx, "t/", "", 10); err != nil || len(page.Objects) != 1 {
		t.Fatalf("List followed the link: %+v %v", page, err)
	}
}

func TestLocalKeyConflict(t *testing.T) {
	t.Parallel()
	l, _ := newLocal(t, nil)
	put(t, l, "t/a", "file", "")
	err := l.Put(context.Background(), "t/a/b", strings.NewReader("x"), 1, "")
	if fault.CodeOf(err) != "key_conflict" {
		t.Fatalf("Put under a file = %v, want key_conflict", err)
	}
	put(t, l, "t/c/d", "x", "")
	if err := l.Put(context.Background(), "t/c", strings.NewReader("x"), 1, ""); fault.CodeOf(err) != "key_conflict" {
		t.Fatalf("Put over a folder = %v, want key_conflict", err)
	}
}

func TestLocalSizeMismatch(t *testing.T) {
	t.Parallel()
	l, _ := newLocal(t, nil)
	err := l.Put(context.Background(), "t/short", strings.NewReader("abc"), 5, "")
	if fault.CodeOf(err) != "size_mismatch" {
		t.Fatalf("Put of 3 bytes announced as 5 = %v", err)
	}
	if _, _, err := l.Get(context.Background(), "t/short"); !errors.Is(err, objectstore.ErrNotFound) {
		t.Fatalf("a failed Put left an object: %v", err)
	}
}

// TestLocalRefusalsChangeNothing sends keys OSS takes but the filesystem
// cannot hold as the local store lays it out (a segment longer than a file
// name may be; a key whose metadata file would be another key's folder):
// each is a clear client error, and the refused object is not stored.
func TestLocalRefusalsChangeNothing(t *testing.T) {
	t.Parallel()
	l, _ := newLocal(t, nil)
	ctx := context.Background()
	put(t, l, "t/a", "a", "text/plain")
	put(t, l, "t/c.json/d", "d", "text/plain")
	for key, code := range map[string]string{
		"t/a.json/b":                    "key_conflict", // a's metadata is meta/t/a.json
		"t/c":                           "key_conflict", // meta/t/c.json is a folder
		"t/" + strings.Repeat("x", 251): "invalid_key",
		"t/" + strings.Repeat("y", 255): "invalid_key",
		strings.Repeat("z", 300) + "/f": "invalid_key",
	} {
		if err := l.Put(ctx, key, strings.NewReader("x"), 1, ""); fault.CodeOf(err) != code {
			t.Errorf("Put %.20s... = %v, want %s", key, err, code)
		}
		if rc, _, err := l.Get(ctx, key); err == nil {
			rc.Close()
			t.Errorf("the refused %.20s... was stored", key)
		} else if c := fault.CodeOf(err); c != "object_not_found" && c != "invalid_key" {
			t.Errorf("Get %.20s... = %v", key, err)
		}
	}
	if _, err := l.PresignPut(ctx, "t/"+strings.Repeat("x", 251), "", time.Minute); fault.CodeOf(err) != "invalid_key" {
		t.Errorf("PresignPut of an over-long segment = %v, want invalid_key", err)
	}
	page, err := l.List(ctx, "t/", "", 10)
	if err != nil || len(page.Objects) != 2 || page.Objects[0].Key != "t/a" || page.Objects[1].Key != "t/c.json/d" {
		t.Fatalf("List after refusals = %+v, %v", page, err)
	}
	if _, info := read(t, l, "t/a"); info.ContentType != "text/plain" {
		t.Errorf("t/a lost its metadata: %+v", info)
	}
	long := "t/" + strings.Repeat("w", 250) // the longest segment that fits
	put(t, l, long, "w", "text/plain")
	if got, info := read(t, l, long); got != "w" || info.ContentType != "text/plain" {
		t.Errorf("a 250-byte segment: %q %+v", got, info)
	}
}

// TestOSSPostURLIsTheBucketsAddress: a form goes where the SDK sends the
// bucket's other requests — virtual-hosted on a domain endpoint,
// path-style on an IP one.
func TestOSSPostURLIsTheBucketsAddress(t *testing.T) {
	t.Parallel()
	for endpoint, want := range map[string]string{
		"https://oss-cn-hangzhou.aliyuncs.com": "https://unitenant-test.oss-cn-hangzhou.aliyuncs.com/",
		"http://127.0.0.1:9000":                "http://127.0.0.1:9000/unitenant-test/",
	} {
		s, err := objectstore.NewOSS(objectstore.OSSConfig{Endpoint: endpoint, Bucket: "unitenant-test", AccessKeyID: "id", AccessKeySecret: "secret"})
		if err != nil {
			t.Fatal(err)
		}
		form, err := s.PresignPost(context.Background(), "b.png", "image/png", 10, time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		signed, err := s.PresignGet(context.Background(), "b.png", time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		if form.URL != want || !strings.HasPrefix(signed, want+"b.png?") {
			t.Errorf("%s: form to %s, the SDK signs %s; want both at %s", endpoint, form.URL, signed, want)
		}
	}
}
