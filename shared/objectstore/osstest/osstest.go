// Package osstest is a fake Aliyun OSS server for tests: one bucket in
// memory behind httptest, speaking OSS's REST wire protocol path-style
// (http://127.0.0.1:port/<bucket>/<key>, which the SDK uses for IP
// endpoints) — PutObject, GetObject, HeadObject, DeleteObject and
// ListObjects (V1) — and checking every request's V1 signature, in the
// Authorization header or in a presigned URL's query, as OSS does.
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
