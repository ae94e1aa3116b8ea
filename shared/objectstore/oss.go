package objectstore

import (
	"context"
	"crypto/hmac"
	"crypto/sha1"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/aliyun/aliyun-oss-go-sdk/oss"
)

// OSSConfig is what the OSS store needs.
type OSSConfig struct {
	// Endpoint is the region's endpoint, e.g. https://oss-cn-hangzhou.aliyuncs.com
	// (the bucket goes in front of it), or an IP endpoint (path-style).
	Endpoint        string
	Bucket          string
	AccessKeyID     string
	AccessKeySecret string
	Timeout         time.Duration // connect and read/write timeout, default 30s
}

// bucketPattern is OSS's bucket naming rule.
var bucketPattern = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{1,61}[a-z0-9]$`)

// OSS is a Store on an Aliyun OSS bucket (aliyun-oss-go-sdk, V1 signatures).
type OSS struct {
	bucket *oss.Bucket
	cfg    OSSConfig
}

// NewOSS returns an OSS store. It makes no request.
func NewOSS(cfg OSSConfig) (*OSS, error) {
	var missing []string
	for _, f := range []struct{ name, v string }{
		{"OSS_ENDPOINT", cfg.Endpoint}, {"OSS_BUCKET", cfg.Bucket},
		{"OSS_ACCESS_KEY_ID", cfg.AccessKeyID}, {"OSS_ACCESS_KEY_SECRET", cfg.AccessKeySecret},
	} {
		if f.v == "" {
			missing = append(missing, f.name)
		}
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("oss: %s must be set", strings.Join(missing, ", "))
	}
	if !bucketPattern.MatchString(cfg.Bucket) {
		return nil, fmt.Errorf("oss: bucket %q: want 3-63 lower-case letters, digits and hyphens", cfg.Bucket)
	}
	if _, _, err := parseEndpoint(cfg.Endpoint); err != nil {
		return nil, fmt.Errorf("oss: %w", err)
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 30 * time.Second
	}
	secs := int64(cfg.Timeout / time.Second)
	client, err := oss.New(cfg.Endpoint, cfg.AccessKeyID, cfg.AccessKeySecret, oss.Timeout(secs, secs))
	if err != nil {
		return nil, fmt.Errorf("oss client: %w", err)
	}
	b, err := client.Bucket(cfg.Bucket)
	if err != nil {
		return nil, fmt.Errorf("oss bucket %s: %w", cfg.Bucket, err)
	}
	return &OSS{bucket: b, cfg: cfg}, nil
}

// parseEndpoint splits an endpoint URL, which must be http(s)://host[:port].
func parseEndpoint(endpoint string) (scheme, host string, err error) {
	u, err := url.Parse(endpoint)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || (u.Path != "" && u.Path != "/") || u.RawQuery != "" {
		return "", "", fmt.Errorf("endpoint %q: want https://host[:port]", endpoint)
	}
	return u.Scheme, u.Host, nil
}

// Bucket returns the bucket's name.
func (s *OSS) Bucket() string { return s.cfg.Bucket }

// Endpoint returns the configured endpoint.
func (s *OSS) Endpoint() string { return s.cfg.Endpoint }

// Put implements Store.
func (s *OSS) Put(ctx context.Context, key string, r io.Reader, size int64, contentType string) error {
	if err := CheckKey(key); err != nil {
		return err
	}
	opts := []oss.Option{oss.WithContext(ctx)}
	if contentType != "" {
		opts = append(opts, oss.ContentType(contentType))
	}
	if size >= 0 {
		// The SDK sets Content-Length from readers it knows the length of;
		// any other body would go chunked.
		r = &io.LimitedReader{R: r, N: size}
	}
	if err := s.bucket.PutObject(key, r, opts...); err != nil {
		return fmt.Errorf("oss put %s: %w", key, err)
	}
	return nil
}

// Get implements Store.
func (s *OSS) Get(ctx context.Context, key string) (io.ReadCloser, Info, error) {
	if err := CheckKey(key); err != nil {
		return nil, Info{}, err
	}
	res, err := s.bucket.DoGetObject(&oss.GetObjectRequest{ObjectKey: key}, []oss.Option{oss.WithContext(ctx)})
	if err != nil {
		if isNotFound(err) {
			return nil, Info{}, ErrNotFound
		}
		return nil, Info{}, fmt.Errorf("oss get %s: %w", key, err)
	}
	h := res.Response.Headers
	in := Info{Key: key, ContentType: h.Get("Content-Type"), ETag: h.Get("ETag")}
	in.Size, _ = strconv.ParseInt(h.Get("Content-Length"), 10, 64)
	in.LastModified, _ = http.ParseTime(h.Get("Last-Modified"))
	return res.Response.Body, in, nil
}

func isNotFound(err error) bool {
	var se oss.ServiceError
	return errors.As(err, &se) && se.StatusCode == http.StatusNotFound && se.Code == "NoSuchKey"
}

// Delete implements Store.
func (s *OSS) Delete(ctx context.Context, key string) error {
	if err := CheckKey(key); err != nil {
		return err
	}
	if err := s.bucket.DeleteObject(key, oss.WithContext(ctx)); err != nil {
		return fmt.Errorf("oss delete %s: %w", key, err)
	}
	return nil
}

// deleteListed deletes a key this store listed, without CheckKey: OSS holds
// keys it refuses (a client with STS credentials uploads "a//b.jpg" under
// its prefix), and RemoveAll must empty a prefix of them too.
func (s *OSS) deleteListed(ctx context.Context, key string) error {
	if err := s.bucket.DeleteObject(key, oss.WithContext(ctx)); err != nil {
		return fmt.Errorf("oss delete %s: %w", key, err)
	}
	return nil
}

// List implements Store with ListObjects (V1: prefix, marker, max-keys).
func (s *OSS) List(ctx context.Context, prefix, marker string, max int) (Page, error) {
	if err := checkList(prefix, marker, max); err != nil {
		return Page{}, err
	}
	res, err := s.bucket.ListObjects(oss.Prefix(prefix), oss.Marker(marker), oss.MaxKeys(max), oss.WithContext(ctx))
	if err != nil {
		return Page{}, fmt.Errorf("oss list %q: %w", prefix, err)
	}
	page := Page{Objects: make([]Info, 0, len(res.Objects)), Truncated: res.IsTruncated}
	for _, o := range res.Objects {
		page.Objects = append(page.Objects, Info{Key: o.Key, Size: o.Size, ETag: o.ETag, LastModified: o.LastModified.UTC()})
	}
	if res.IsTruncated {
		page.NextMarker = res.NextMarker
		if page.NextMarker == "" && len(res.Objects) > 0 { // OSS sends it; be safe if it does not
			page.NextMarker = res.Objects[len(res.Objects)-1].Key
		}
	}
	return page, nil
}

// PresignPut implements Store with a V1 signed URL; the upload must send
// contentType as its Content-Type, which the signature covers.
func (s *OSS) PresignPut(_ context.Context, key, contentType string, ttl time.Duration) (string, error) {
	var opts []oss.Option
	if contentType != "" {
		opts = append(opts, oss.ContentType(contentType))
	}
	return s.sign(key, oss.HTTPPut, ttl, opts...)
}

// PresignGet implements Store with a V1 signed URL.
func (s *OSS) PresignGet(_ context.Context, key string, ttl time.Duration) (string, error) {
	return s.sign(key, oss.HTTPGet, ttl)
}

// PresignPost implements Store with a PostObject policy (V1 signature:
// base64 of HMAC-SHA1 over the base64 policy): the form must name key, send
// contentType and ask for a 200 answer, and OSS refuses a file over
// maxSize (EntityTooLarge) or a form that strays from the policy
// (AccessDenied) before storing anything.
func (s *OSS) PresignPost(_ context.Context, key, contentType string, maxSize int64, ttl time.Duration) (PostForm, error) {
	if err := checkPost(key, contentType, maxSize, ttl); err != nil {
		return PostForm{}, err
	}
	policy, err := json.Marshal(map[string]any{
		"expiration": time.Now().Add(ttl).UTC().Format("2006-01-02T15:04:05.000Z"),
		"conditions": []any{
			map[string]string{"bucket": s.cfg.Bucket},
			[]any{"eq", "$key", key},
			[]any{"eq", "$Content-Type", contentType},
			[]any{"eq", "$success_action_status", "200"},
			[]any{"content-length-range", 0, maxSize},
		},
	})
	if err != nil {
		return PostForm{}, fmt.Errorf("oss post policy: %w", err)
	}
	encoded := base64.StdEncoding.EncodeToString(policy)
	mac := hmac.New(sha1.New, []byte(s.cfg.AccessKeySecret))
	mac.Write([]byte(encoded))
	return PostForm{URL: s.bucketURL(), Fields: map[string]string{
		"key":                   key,
		"Content-Type":          contentType,
		"success_action_status": "200",
		"OSSAccessKeyId":        s.cfg.AccessKeyID,
		"policy":                encoded,
		"Signature":             base64.StdEncoding.EncodeToString(mac.Sum(nil)),
	}}, nil
}

// bucketURL is where the bucket takes form uploads: https://bucket.host/,
// or path-style https://host/bucket/ for an IP endpoint, as the SDK
// addresses it.
func (s *OSS) bucketURL() string {
	scheme, host, _ := parseEndpoint(s.cfg.Endpoint) // checked by NewOSS
	hostname := host
	if h, _, err := net.SplitHostPort(host); err == nil {
		hostname = h
	}
	if net.ParseIP(strings.Trim(hostname, "[]")) != nil {
		return scheme + "://" + host + "/" + s.cfg.Bucket + "/"
	}
	return scheme + "://" + s.cfg.Bucket + "." + host + "/"
}

func (s *OSS) sign(key string, method oss.HTTPMethod, ttl time.Duration, opts ...oss.Option) (string, error) {
	if err := CheckKey(key); err != nil {
		return "", err
	}
	if err := checkTTL(ttl); err != nil {
		return "", err
	}
	u, err := s.bucket.SignURL(key, method, int64(ttl/time.Second), opts...)
	if err != nil {
		return "", fmt.Errorf("oss sign %s %s: %w", method, key, err)
	}
	return u, nil
}
