// Package osstest is a fake Aliyun OSS server for tests: one bucket in
// memory behind httptest, speaking OSS's REST wire protocol path-style
// (http://127.0.0.1:port/<bucket>/<key>, which the SDK uses for IP
// endpoints) — PutObject, GetObject, HeadObject, DeleteObject, ListObjects
// (V1) and PostObject (form uploads) — and checking every request's V1
// signature, in the Authorization header, in a presigned URL's query or,
// for a form, over its policy, whose conditions it enforces, as OSS does.
//
// It never accepts a request it cannot verify: a wrong secret is 403
// SignatureDoesNotMatch, an unsigned request 403 AccessDenied.
package osstest

import (
	"bytes"
	"crypto/hmac"
	"crypto/md5"
	"crypto/sha1"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/xml"
	"fmt"
	"hash/crc64"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aliyun/aliyun-oss-go-sdk/oss"
)

// Server is a fake OSS holding one bucket.
type Server struct {
	*httptest.Server
	Bucket          string
	AccessKeyID     string
	AccessKeySecret string

	mu      sync.Mutex
	objects map[string]object
	reqs    atomic.Int64
	now     func() time.Time
}

type object struct {
	data        []byte
	contentType string
	modified    time.Time
}

// New starts a fake OSS with bucket, trusting one access key; it stops when
// the test ends.
func New(tb testing.TB, bucket, accessKeyID, accessKeySecret string) *Server {
	tb.Helper()
	s := &Server{Bucket: bucket, AccessKeyID: accessKeyID, AccessKeySecret: accessKeySecret,
		objects: map[string]object{}, now: time.Now}
	s.Server = httptest.NewServer(http.HandlerFunc(s.serve))
	tb.Cleanup(s.Close)
	return s
}

// Endpoint is the endpoint to configure the SDK with.
func (s *Server) Endpoint() string { return s.URL }

// Keys returns the stored keys in order.
func (s *Server) Keys() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	keys := make([]string, 0, len(s.objects))
	for k := range s.objects {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// Object returns a stored object's bytes and content type.
func (s *Server) Object(key string) ([]byte, string, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	o, ok := s.objects[key]
	return o.data, o.contentType, ok
}

// SetNow sets the server's clock, which judges expiries.
func (s *Server) SetNow(now func() time.Time) { s.now = now }

// Requests returns how many requests the server has verified and served.
func (s *Server) Requests() int64 { return s.reqs.Load() }

// subresources are the query parameters V1 signatures cover (the SDK's
// signKeyList, the ones a bucket of objects can meet).
var subresources = []string{"acl", "append", "callback", "callback-var", "cors", "delete", "lifecycle", "location",
	"logging", "objectMeta", "partNumber", "position", "referer", "response-cache-control",
	"response-content-disposition", "response-content-encoding", "response-content-language",
	"response-content-type", "response-expires", "restore", "security-token", "symlink", "tagging",
	"uploadId", "uploads", "website", "x-oss-process"}

// fail answers an OSS error document.
func fail(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Content-Type", "application/xml")
	w.Header().Set("X-Oss-Request-Id", "fake-request-id")
	w.WriteHeader(status)
	fmt.Fprintf(w, `<?xml version="1.0" encoding="UTF-8"?>
<Error><Code>%s</Code><Message>%s</Message><RequestId>fake-request-id</RequestId><HostId>127.0.0.1</HostId></Error>`,
		code, xmlEscape(msg))
}

func xmlEscape(s string) string {
	var b bytes.Buffer
	_ = xml.EscapeText(&b, []byte(s))
	return b.String()
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	bucket, key, _ := strings.Cut(strings.TrimPrefix(r.URL.Path, "/"), "/")
	if bucket != s.Bucket {
		fail(w, http.StatusNotFound, "NoSuchBucket", "The specified bucket does not exist.")
		return
	}
	if key == "" && r.Method == http.MethodPost {
		s.post(w, r) // a form upload: the form carries its own signature
		return
	}
	if code, msg := s.verify(r, bucket, key); code != "" {
		fail(w, http.StatusForbidden, code, msg)
		return
	}
	s.reqs.Add(1)
	switch {
	case key == "" && r.Method == http.MethodGet:
		s.list(w, r)
	case key == "":
		fail(w, http.StatusMethodNotAllowed, "MethodNotAllowed", "The specified method is not allowed against this resource.")
	case r.Method == http.MethodPut:
		s.put(w, r, key)
	case r.Method == http.MethodGet || r.Method == http.MethodHead:
		s.get(w, r, key)
	case r.Method == http.MethodDelete:
		s.mu.Lock()
		delete(s.objects, key)
		s.mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	default:
		fail(w, http.StatusMethodNotAllowed, "MethodNotAllowed", "The specified method is not allowed against this resource.")
	}
}

// verify checks r's V1 signature and returns an OSS error code and message
// when it does not hold.
func (s *Server) verify(r *http.Request, bucket, key string) (string, string) {
	q := r.URL.Query()
	var id, sig, date string
	if q.Has("Signature") {
		id, sig, date = q.Get("OSSAccessKeyId"), q.Get("Signature"), q.Get("Expires")
		exp, err := strconv.ParseInt(date, 10, 64)
		if err != nil {
			return "AccessDenied", "Expires is not a number."
		}
		if s.now().Unix() > exp {
			return "AccessDenied", "Request has expired."
		}
	} else {
		auth := r.Header.Get("Authorization")
		rest, ok := strings.CutPrefix(auth, "OSS ")
		if !ok {
			return "AccessDenied", "AccessDenied: no V1 signature."
		}
		id, sig, _ = strings.Cut(rest, ":")
		date = r.Header.Get("Date")
		t, err := http.ParseTime(date)
		if err != nil || s.now().Sub(t).Abs() > 15*time.Minute {
			return "RequestTimeTooSkewed", "The difference between the request time and the current time is too large."
		}
	}
	if id != s.AccessKeyID {
		return "InvalidAccessKeyId", "The OSS Access Key Id you provided does not exist in our records."
	}
	want := Sign(s.AccessKeySecret, r.Method, r.Header, date, Resource(bucket, key, q))
	if !hmac.Equal([]byte(sig), []byte(want)) {
		return "SignatureDoesNotMatch", "The request signature we calculated does not match the signature you provided."
	}
	return "", ""
}

// Resource is the V1 canonicalized resource: /bucket/key and the signed
// sub-resources of the query, sorted.
func Resource(bucket, key string, q url.Values) string {
	var subs []string
	for k, vs := range q {
		if !slices.Contains(subresources, k) {
			continue
		}
		if len(vs) == 0 || vs[0] == "" {
			subs = append(subs, k)
		} else {
			subs = append(subs, k+"="+vs[0])
		}
	}
	sort.Strings(subs)
	res := "/" + bucket + "/" + key
	if len(subs) > 0 {
		res += "?" + strings.Join(subs, "&")
	}
	return res
}

// Sign is the V1 signature: base64(HMAC-SHA1(secret, VERB\nContent-MD5\n
// Content-Type\nDate\nCanonicalizedOSSHeaders+CanonicalizedResource)),
// where Date is the Expires of a presigned URL.
func Sign(secret, method string, h http.Header, date, resource string) string {
	var ossHeaders []string
	for k, vs := range h {
		if lk := strings.ToLower(k); strings.HasPrefix(lk, "x-oss-") {
			ossHeaders = append(ossHeaders, lk+":"+vs[0]+"\n")
		}
	}
	sort.Strings(ossHeaders)
	mac := hmac.New(sha1.New, []byte(secret))
	fmt.Fprintf(mac, "%s\n%s\n%s\n%s\n%s%s", method, h.Get("Content-MD5"), h.Get("Content-Type"), date,
		strings.Join(ossHeaders, ""), resource)
	return base64.StdEncoding.EncodeToString(mac.Sum(nil))
}

var crcTable = crc64.MakeTable(crc64.ECMA)

func etag(data []byte) string {
	sum := md5.Sum(data)
	return `"` + strings.ToUpper(hex.EncodeToString(sum[:])) + `"`
}

func (s *Server) put(w http.ResponseWriter, r *http.Request, key string) {
	data, err := io.ReadAll(r.Body)
	if err != nil {
		fail(w, http.StatusBadRequest, "IncompleteBody", "The request body is incomplete.")
		return
	}
	if want := r.Header.Get("Content-MD5"); want != "" {
		sum := md5.Sum(data)
		if base64.StdEncoding.EncodeToString(sum[:]) != want {
			fail(w, http.StatusBadRequest, "InvalidDigest", "The Content-MD5 you specified is not valid.")
			return
		}
	}
	ct := r.Header.Get("Content-Type")
	if ct == "" {
		ct = "application/octet-stream"
	}
	s.mu.Lock()
	s.objects[key] = object{data: data, contentType: ct, modified: s.now().UTC().Truncate(time.Second)}
	s.mu.Unlock()
	w.Header().Set("ETag", etag(data))
	w.Header().Set("X-Oss-Hash-Crc64ecma", strconv.FormatUint(crc64.Checksum(data, crcTable), 10))
	w.Header().Set("X-Oss-Request-Id", "fake-request-id")
	w.WriteHeader(http.StatusOK)
}

func (s *Server) get(w http.ResponseWriter, r *http.Request, key string) {
	s.mu.Lock()
	o, ok := s.objects[key]
	s.mu.Unlock()
	if !ok {
		fail(w, http.StatusNotFound, "NoSuchKey", "The specified key does not exist.")
		return
	}
	h := w.Header()
	h.Set("Content-Type", o.contentType)
	h.Set("Content-Length", strconv.Itoa(len(o.data)))
	h.Set("ETag", etag(o.data))
	h.Set("Last-Modified", o.modified.Format(http.TimeFormat))
	h.Set("X-Oss-Hash-Crc64ecma", strconv.FormatUint(crc64.Checksum(o.data, crcTable), 10))
	h.Set("X-Oss-Request-Id", "fake-request-id")
	w.WriteHeader(http.StatusOK)
	if r.Method == http.MethodGet {
		_, _ = w.Write(o.data)
	}
}

// listResult is ListObjects' (V1) answer.
type listResult struct {
	XMLName     xml.Name      `xml:"ListBucketResult"`
	Name        string        `xml:"Name"`
	Prefix      string        `xml:"Prefix"`
	Marker      string        `xml:"Marker"`
	MaxKeys     int           `xml:"MaxKeys"`
	Delimiter   string        `xml:"Delimiter"`
	EncodingURL string        `xml:"EncodingType,omitempty"`
	IsTruncated bool          `xml:"IsTruncated"`
	NextMarker  string        `xml:"NextMarker,omitempty"`
	Contents    []listContent `xml:"Contents"`
}

type listContent struct {
	Key          string `xml:"Key"`
	LastModified string `xml:"LastModified"`
	ETag         string `xml:"ETag"`
	Type         string `xml:"Type"`
	Size         int    `xml:"Size"`
	StorageClass string `xml:"StorageClass"`
}

func (s *Server) list(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	prefix, marker := q.Get("prefix"), q.Get("marker")
	max := 100
	if v := q.Get("max-keys"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 1000 {
			fail(w, http.StatusBadRequest, "InvalidArgument", "max-keys must be between 1 and 1000.")
			return
		}
		max = n
	}
	encode := func(v string) string { return v }
	if q.Get("encoding-type") == "url" {
		encode = url.QueryEscape
	}
	res := listResult{Name: s.Bucket, Prefix: encode(prefix), Marker: encode(marker), MaxKeys: max}
	if q.Get("encoding-type") == "url" {
		res.EncodingURL = "url"
	}
	last := ""
	for _, k := range s.Keys() {
		if !strings.HasPrefix(k, prefix) || k <= marker {
			continue
		}
		if len(res.Contents) == max {
			res.IsTruncated = true
			break
		}
		s.mu.Lock()
		o := s.objects[k]
		s.mu.Unlock()
		res.Contents = append(res.Contents, listContent{Key: encode(k), LastModified: o.modified.Format("2006-01-02T15:04:05.000Z"),
			ETag: etag(o.data), Type: "Normal", Size: len(o.data), StorageClass: "Standard"})
		last = k
	}
	if res.IsTruncated {
		res.NextMarker = encode(last)
	}
	w.Header().Set("Content-Type", "application/xml")
	w.Header().Set("X-Oss-Request-Id", "fake-request-id")
	_, _ = io.WriteString(w, xml.Header)
	_ = xml.NewEncoder(w).Encode(res)
}

// post is PostObject: a multipart/form-data body of fields, the file last.
// With a policy, the form is signed over it (OSSAccessKeyId, Signature) and
// must meet each of its conditions; without one, the bucket would have to
// be public-write, which this one is not.
func (s *Server) post(w http.ResponseWriter, r *http.Request) {
	mr, err := r.MultipartReader()
	if err != nil {
		fail(w, http.StatusBadRequest, "MalformedPOSTRequest", "The body of your POST request is not well-formed multipart/form-data.")
		return
	}
	fields := map[string]string{} // by lower-case name, as OSS matches them
	var (
		data     []byte
		filename string
		gotFile  bool
	)
	for {
		part, err := mr.NextPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			fail(w, http.StatusBadRequest, "MalformedPOSTRequest", "The body of your POST request is not well-formed multipart/form-data.")
			return
		}
		if part.FormName() == "file" {
			data, err = io.ReadAll(part)
			if err != nil {
				fail(w, http.StatusBadRequest, "IncompleteBody", "The request body is incomplete.")
				return
			}
			filename, gotFile = part.FileName(), true
			break // the file is the last field: anything after it is ignored
		}
		v, err := io.ReadAll(io.LimitReader(part, 64<<10))
		if err != nil {
			fail(w, http.StatusBadRequest, "MalformedPOSTRequest", "The body of your POST request is not well-formed multipart/form-data.")
			return
		}
		fields[strings.ToLower(part.FormName())] = string(v)
	}
	if !gotFile {
		fail(w, http.StatusBadRequest, "InvalidArgument", "Bucket POST must contain a field named 'file', and it must be the last field.")
		return
	}
	key, ok := fields["key"]
	if !ok || key == "" {
		fail(w, http.StatusBadRequest, "InvalidArgument", "Bucket POST must contain a field named 'key'.")
		return
	}
	key = strings.ReplaceAll(key, "${filename}", filename)
	fields["key"] = key
	policy, ok := fields["policy"]
	if !ok {
		fail(w, http.StatusForbidden, "AccessDenied", "You have no right to access this object because of bucket acl.")
		return
	}
	if fields["ossaccesskeyid"] != s.AccessKeyID {
		fail(w, http.StatusForbidden, "InvalidAccessKeyId", "The OSS Access Key Id you provided does not exist in our records.")
		return
	}
	mac := hmac.New(sha1.New, []byte(s.AccessKeySecret))
	mac.Write([]byte(policy))
	if !hmac.Equal([]byte(fields["signature"]), []byte(base64.StdEncoding.EncodeToString(mac.Sum(nil)))) {
		fail(w, http.StatusForbidden, "SignatureDoesNotMatch", "The request signature we calculated does not match the signature you provided.")
		return
	}
	if status, code, msg := s.checkPolicy(policy, fields, int64(len(data))); code != "" {
		fail(w, status, code, msg)
		return
	}
	ct := fields["content-type"]
	if ct == "" {
		ct = "application/octet-stream"
	}
	s.mu.Lock()
	s.objects[key] = object{data: data, contentType: ct, modified: s.now().UTC().Truncate(time.Second)}
	s.mu.Unlock()
	s.reqs.Add(1)
	w.Header().Set("ETag", etag(data))
	w.Header().Set("X-Oss-Request-Id", "fake-request-id")
	switch fields["success_action_status"] {
	case "200":
		w.WriteHeader(http.StatusOK)
	case "201":
		w.Header().Set("Content-Type", "application/xml")
		w.WriteHeader(http.StatusCreated)
		fmt.Fprintf(w, `<?xml version="1.0" encoding="UTF-8"?>
<PostResponse><Bucket>%s</Bucket><ETag>%s</ETag><Key>%s</Key><Location>%s/%s/%s</Location></PostResponse>`,
			s.Bucket, xmlEscape(etag(data)), xmlEscape(key), s.URL, s.Bucket, xmlEscape(key))
	default:
		w.WriteHeader(http.StatusNoContent)
	}
}

// checkPolicy decodes a form's policy and checks the form against it:
// its expiration, then each condition — {"field": value} and ["eq",
// "$field", value], ["starts-with", "$field", prefix], ["in" | "not-in",
// "$field", [values]], ["content-length-range", min, max] — answering as
// OSS does when one fails.
func (s *Server) checkPolicy(encoded string, fields map[string]string, size int64) (int, string, string) {
	raw, err := base64.StdEncoding.DecodeString(encoded)
	var p struct {
		Expiration string            `json:"expiration"`
		Conditions []json.RawMessage `json:"conditions"`
	}
	if err != nil || json.Unmarshal(raw, &p) != nil {
		return http.StatusBadRequest, "InvalidPolicyDocument", "Invalid Policy: Invalid JSON."
	}
	exp, err := time.Parse("2006-01-02T15:04:05.000Z", p.Expiration)
	if err != nil {
		return http.StatusBadRequest, "InvalidPolicyDocument", "Invalid Policy: Invalid 'expiration' value: '" + p.Expiration + "'."
	}
	if !s.now().Before(exp) {
		return http.StatusForbidden, "AccessDenied", "Invalid according to Policy: Policy expired."
	}
	value := func(field string) string {
		field = strings.ToLower(strings.TrimPrefix(field, "$"))
		if field == "bucket" {
			return s.Bucket
		}
		return fields[field]
	}
	failed := func(c []byte) (int, string, string) {
		return http.StatusForbidden, "AccessDenied", "Invalid according to Policy: Policy Condition failed: " + string(c)
	}
	for _, c := range p.Conditions {
		var eq map[string]string
		if json.Unmarshal(c, &eq) == nil {
			for f, v := range eq {
				if value(f) != v {
					return failed(c)
				}
			}
			continue
		}
		var cond []json.RawMessage
		if json.Unmarshal(c, &cond) != nil || len(cond) != 3 {
			return http.StatusBadRequest, "InvalidPolicyDocument", "Invalid Policy: Invalid Simple-Condition: " + string(c)
		}
		var op string
		_ = json.Unmarshal(cond[0], &op)
		op = strings.ToLower(op)
		if op == "content-length-range" {
			var lo, hi int64
			if json.Unmarshal(cond[1], &lo) != nil || json.Unmarshal(cond[2], &hi) != nil || lo < 0 || hi < lo {
				return http.StatusBadRequest, "InvalidPolicyDocument", "Invalid Policy: Invalid content-length-range: " + string(c)
			}
			if size > hi {
				return http.StatusBadRequest, "EntityTooLarge", "Your proposed upload exceeds the maximum allowed size."
			}
			if size < lo {
				return http.StatusBadRequest, "EntityTooSmall", "Your proposed upload is smaller than the minimum allowed size."
			}
			continue
		}
		var field string
		if json.Unmarshal(cond[1], &field) != nil {
			return http.StatusBadRequest, "InvalidPolicyDocument", "Invalid Policy: Invalid Simple-Condition: " + string(c)
		}
		got := value(field)
		switch op {
		case "eq", "starts-with":
			var want string
			if json.Unmarshal(cond[2], &want) != nil {
				return http.StatusBadRequest, "InvalidPolicyDocument", "Invalid Policy: Invalid Simple-Condition: " + string(c)
			}
			if (op == "eq" && got != want) || (op != "eq" && !strings.HasPrefix(got, want)) {
				return failed(c)
			}
		case "in", "not-in":
			var set []string
			if json.Unmarshal(cond[2], &set) != nil {
				return http.StatusBadRequest, "InvalidPolicyDocument", "Invalid Policy: Invalid Simple-Condition: " + string(c)
			}
			if slices.Contains(set, got) != (op == "in") {
				return failed(c)
			}
		default:
			return http.StatusBadRequest, "InvalidPolicyDocument", "Invalid Policy: Unknown condition: " + op
		}
	}
	return 0, "", ""
}

// Plant stores key as a client holding a tenant's STS credentials (or an
// operator in the OSS console) can: through the OSS SDK, with no CheckKey
// in front. OSS holds what the project's API never makes ("a//b.jpg", a
// console folder "photos/"); tests plant such keys to see them handled.
func (s *Server) Plant(tb testing.TB, key string) {
	tb.Helper()
	c, err := oss.New(s.Endpoint(), s.AccessKeyID, s.AccessKeySecret)
	if err != nil {
		tb.Fatal(err)
	}
	b, err := c.Bucket(s.Bucket)
	if err != nil {
		tb.Fatal(err)
	}
	if err := b.PutObject(key, strings.NewReader("x")); err != nil {
		tb.Fatalf("plant %q: %v", key, err)
	}
	if _, _, ok := s.Object(key); !ok {
		tb.Fatalf("plant %q: the fake holds %q", key, s.Keys())
	}
}
