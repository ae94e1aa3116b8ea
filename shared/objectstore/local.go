package objectstore

import (
	"context"
	"crypto/hmac"
	"crypto/md5"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"mime"
	"net/http"
	"net/url"
	"os"
	"path"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/unitenant/unitenant/shared/fault"
	"github.com/unitenant/unitenant/shared/httpapi"
)

// DefaultLocalDir is where the local store keeps objects in development.
const DefaultLocalDir = ".dev/objects"

// LocalURLPath is where the storage function serves the local store's
// presigned URLs: <LocalURLPath>/put and <LocalURLPath>/get.
const LocalURLPath = "/api/v1/oss/local"

// LocalConfig configures a Local store.
type LocalConfig struct {
	Dir string // default DefaultLocalDir; created on first use
	// Secret returns the HMAC key of presigned URLs (32 bytes or more). It is
	// called once, when a URL is first signed or verified, so a function
	// that never presigns never reads or generates it.
	Secret  func() ([]byte, error)
	URLPath string           // default LocalURLPath
	Now     func() time.Time // default time.Now
}

// Local is a Store on the local filesystem, for development. Objects live
// in <dir>/data/<key>, their content type and ETag in <dir>/meta/<key>.json;
// every file operation goes through an os.Root on dir, so no key (nor a
// symbolic link planted under dir) reaches a file outside it.
//
// Presigned URLs are relative (<URLPath>/put?key=...&expires=...&sig=...):
// the storage function serves them and makes them absolute for its caller.
// Unlike OSS, a filesystem cannot hold both "a" and "a/b" (nor "a" and
// "a.json/b", as a's metadata is meta/a.json): the second Put is 409
// key_conflict; nor can it name a segment longer than 250 bytes: 400
// invalid_key. A refused Put stores nothing.
type Local struct {
	dir     string
	secret  func() ([]byte, error)
	urlPath string
	now     func() time.Time
}

// NewLocal returns a local store. It touches no file until used.
func NewLocal(cfg LocalConfig) (*Local, error) {
	if cfg.Dir == "" {
		cfg.Dir = DefaultLocalDir
	}
	if cfg.Secret == nil {
		return nil, errors.New("local object store: a URL signing secret is required")
	}
	if cfg.URLPath == "" {
		cfg.URLPath = LocalURLPath
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	secret := sync.OnceValues(func() ([]byte, error) {
		b, err := cfg.Secret()
		if err != nil {
			return nil, fmt.Errorf("local object store secret: %w", err)
		}
		if len(b) < 32 {
			return nil, errors.New("local object store secret: want 32 bytes or more")
		}
		return b, nil
	})
	return &Local{dir: cfg.Dir, secret: secret, urlPath: strings.TrimSuffix(cfg.URLPath, "/"), now: cfg.Now}, nil
}

// localMeta is what <dir>/meta/<key>.json holds.
type localMeta struct {
	ContentType string `json:"contentType"`
	ETag        string `json:"etag"`
}

func dataPath(key string) string { return "data/" + key }
func metaPath(key string) string { return "meta/" + key + ".json" }

// maxLocalSegment is the longest key segment the local store holds: a file
// name takes 255 bytes, and a metadata file adds ".json".
const maxLocalSegment = 255 - len(".json")

// checkLocalKey is CheckKey and the local store's own limit: a segment the
// filesystem cannot name is refused before anything is written.
func checkLocalKey(key string) error {
	if err := CheckKey(key); err != nil {
		return err
	}
	for s := range strings.SplitSeq(key, "/") {
		if len(s) > maxLocalSegment {
			return fault.Field("invalid_key", "key", fmt.Sprintf("has a segment longer than %d bytes, more than the local store's filesystem can name (OSS takes it)", maxLocalSegment))
		}
	}
	return nil
}

// openKey checks key and opens the store's directory.
func (l *Local) openKey(ctx context.Context, key string) (*os.Root, error) {
	if err := checkLocalKey(key); err != nil {
		return nil, err
	}
	return l.open(ctx)
}

// open opens the store's directory as a root, creating it on first use.
func (l *Local) open(ctx context.Context) (*os.Root, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(l.dir, 0o700); err != nil {
		return nil, fmt.Errorf("local object store: %w", err)
	}
	root, err := os.OpenRoot(l.dir)
	if err != nil {
		return nil, fmt.Errorf("local object store: %w", err)
	}
	return root, nil
}

// Put implements Store. The object appears whole or not at all: it is
// written to a temporary file and renamed into place.
func (l *Local) Put(ctx context.Context, key string, r io.Reader, size int64, contentType string) error {
	root, err := l.openKey(ctx, key)
	if err != nil {
		return err
	}
	defer root.Close()
	if err := l.fits(root, key); err != nil {
		return err
	}
	if err := root.MkdirAll("tmp", 0o700); err != nil {
		return fmt.Errorf("local put %s: %w", key, err)
	}
	tmp := "tmp/" + randomName()
	defer root.Remove(tmp) // a no-op once renamed
	f, err := root.OpenFile(tmp, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return fmt.Errorf("local put %s: %w", key, err)
	}
	sum := md5.New()
	src := r
	if size >= 0 {
		src = io.LimitReader(r, size+1)
	}
	n, err := io.Copy(io.MultiWriter(f, sum), src)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("local put %s: %w", key, err)
	}
	if size >= 0 && n != size {
		return fault.New(fault.Invalid, "size_mismatch", "the body has %d bytes, %d were announced", n, size)
	}
	if contentType == "" {
		contentType = mime.TypeByExtension(path.Ext(key))
	}
	meta, _ := json.Marshal(localMeta{ContentType: contentType, ETag: `"` + strings.ToUpper(hex.EncodeToString(sum.Sum(nil))) + `"`})
	if err := l.place(root, tmp, key); err != nil {
		return err
	}
	if err := root.MkdirAll(path.Dir(metaPath(key)), 0o700); err != nil {
		return fmt.Errorf("local put %s: %w", key, err)
	}
	if err := root.WriteFile(metaPath(key), meta, 0o600); err != nil {
		return fmt.Errorf("local put %s: %w", key, err)
	}
	return nil
}

// fits refuses, before anything is written, a key the filesystem cannot
// hold beside the stored ones: a file (or anything but a folder) where its
// data or metadata needs a folder, or anything but a file where they go.
func (l *Local) fits(root *os.Root, key string) error {
	for _, p := range []string{dataPath(key), metaPath(key)} {
		segs := strings.Split(p, "/")
		for i := 1; i < len(segs); i++ {
			st, err := root.Lstat(strings.Join(segs[:i], "/"))
			if errors.Is(err, fs.ErrNotExist) {
				break // nor is anything below it
			}
			if err != nil {
				return fmt.Errorf("local put %s: %w", key, err)
			}
			if !st.IsDir() {
				return errConflict(key)
			}
		}
		if st, err := root.Lstat(p); err == nil && !st.Mode().IsRegular() {
			return errConflict(key)
		}
	}
	return nil
}

// place renames the written file tmp to key's data path.
func (l *Local) place(root *os.Root, tmp, key string) error {
	p := dataPath(key)
	if err := root.MkdirAll(path.Dir(p), 0o700); err != nil {
		if errors.Is(err, syscall.ENOTDIR) || errors.Is(err, fs.ErrExist) {
			return errConflict(key)
		}
		return fmt.Errorf("local put %s: %w", key, err)
	}
	if st, err := root.Lstat(p); err == nil && !st.Mode().IsRegular() {
		return errConflict(key)
	}
	if err := root.Rename(tmp, p); err != nil {
		return fmt.Errorf("local put %s: %w", key, err)
	}
	return nil
}

func errConflict(key string) error {
	return fault.New(fault.Conflict, "key_conflict",
		"the local store cannot hold %s beside the stored keys: it keeps each object and its metadata (<key>.json) as files, "+
			"and a key cannot be both a file and a folder of keys; OSS can, the filesystem cannot", key)
}

func randomName() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// Get implements Store.
func (l *Local) Get(ctx context.Context, key string) (io.ReadCloser, Info, error) {
	root, err := l.openKey(ctx, key)
	if err != nil {
		return nil, Info{}, err
	}
	defer root.Close() // files opened from a root outlive it
	f, err := root.Open(dataPath(key))
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) {
			return nil, Info{}, ErrNotFound
		}
		return nil, Info{}, fmt.Errorf("local get %s: %w", key, err)
	}
	st, err := f.Stat()
	if err != nil || !st.Mode().IsRegular() {
		f.Close()
		if err != nil {
			return nil, Info{}, fmt.Errorf("local get %s: %w", key, err)
		}
		return nil, Info{}, ErrNotFound
	}
	return f, l.info(root, key, st), nil
}

// info describes key from its data file's stat and its metadata.
func (l *Local) info(root *os.Root, key string, st fs.FileInfo) Info {
	in := Info{Key: key, Size: st.Size(), LastModified: st.ModTime().UTC()}
	var m localMeta
	if b, err := root.ReadFile(metaPath(key)); err == nil && json.Unmarshal(b, &m) == nil {
		in.ContentType, in.ETag = m.ContentType, m.ETag
	}
	return in
}

// Delete implements Store. Emptied folders are removed too, so that a
// later key may take their name.
func (l *Local) Delete(ctx context.Context, key string) error {
	root, err := l.openKey(ctx, key)
	if err != nil {
		return err
	}
	defer root.Close()
	if st, err := root.Lstat(dataPath(key)); err != nil || !st.Mode().IsRegular() {
		return nil // nothing there: deleting is idempotent, as on OSS
	}
	for _, p := range []string{dataPath(key), metaPath(key)} {
		if err := root.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("local delete %s: %w", key, err)
		}
		for dir := path.Dir(p); strings.Contains(dir, "/"); dir = path.Dir(dir) {
			if root.Remove(dir) != nil { // not empty (or gone): stop climbing
				break
			}
		}
	}
	return nil
}

// List implements Store. It walks only the folder the prefix names, and
// skips sub-folders that cannot match it.
func (l *Local) List(ctx context.Context, prefix, marker string, max int) (Page, error) {
	if err := checkList(prefix, marker, max); err != nil {
		return Page{}, err
	}
	root, err := l.open(ctx)
	if err != nil {
		return Page{}, err
	}
	defer root.Close()
	start := "data"
	if i := strings.LastIndexByte(prefix, '/'); i >= 0 {
		start = dataPath(prefix[:i])
	}
	var keys []string
	err = fs.WalkDir(root.FS(), start, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if p == start && (errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) || errors.Is(err, syscall.ENAMETOOLONG)) {
				return fs.SkipAll // nothing stored under the prefix yet (or ever: a folder name too long to hold)
			}
			return err
		}
		key := strings.TrimPrefix(p, "data/")
		if d.IsDir() {
			if p != start && !strings.HasPrefix(key+"/", prefix) && !strings.HasPrefix(prefix, key+"/") {
				return fs.SkipDir
			}
			return nil
		}
		if d.Type().IsRegular() && strings.HasPrefix(key, prefix) && key > marker {
			keys = append(keys, key)
		}
		return nil
	})
	if err != nil {
		return Page{}, fmt.Errorf("local list %q: %w", prefix, err)
	}
	slices.Sort(keys) // the walk's order is per folder, not the keys' order
	page := Page{Objects: []Info{}}
	if len(keys) > max {
		keys, page.Truncated = keys[:max], true
		page.NextMarker = keys[max-1]
	}
	for _, k := range keys {
		st, err := root.Stat(dataPath(k))
		if err != nil {
			continue // deleted meanwhile
		}
		page.Objects = append(page.Objects, l.info(root, k, st))
	}
	return page, nil
}

// PresignPut implements Store: a relative URL the storage function serves.
func (l *Local) PresignPut(_ context.Context, key, contentType string, ttl time.Duration) (string, error) {
	return l.sign("put", key, contentType, ttl)
}

// PresignGet implements Store: a relative URL the storage function serves.
func (l *Local) PresignGet(_ context.Context, key string, ttl time.Duration) (string, error) {
	return l.sign("get", key, "", ttl)
}

// PresignPost implements Store: a form upload to <URLPath>/post, which
// the storage function serves. The grant's fields — key, Content-Type,
// size limit, expiry — are signed together; the file streams to disk and
// is dropped the moment it passes the limit.
func (l *Local) PresignPost(_ context.Context, key, contentType string, maxSize int64, ttl time.Duration) (PostForm, error) {
	if err := checkPost(key, contentType, maxSize, ttl); err != nil {
		return PostForm{}, err
	}
	if err := checkLocalKey(key); err != nil {
		return PostForm{}, err
	}
	expires := l.now().Add(ttl).Unix()
	sig, err := l.postMAC(key, contentType, maxSize, expires)
	if err != nil {
		return PostForm{}, err
	}
	return PostForm{URL: l.urlPath + "/post", Fields: map[string]string{
		"key": key, "Content-Type": contentType, "maxSize": strconv.FormatInt(maxSize, 10),
		"expires": strconv.FormatInt(expires, 10), "sig": sig,
	}}, nil
}

// postMAC is the signature of a form upload grant.
func (l *Local) postMAC(key, contentType string, maxSize, expires int64) (string, error) {
	secret, err := l.secret()
	if err != nil {
		return "", err
	}
	h := hmac.New(sha256.New, secret)
	fmt.Fprintf(h, "unitenant-local-post-v1\n%s\n%s\n%d\n%d", key, contentType, maxSize, expires)
	return base64.RawURLEncoding.EncodeToString(h.Sum(nil)), nil
}

func (l *Local) sign(op, key, contentType string, ttl time.Duration) (string, error) {
	if err := checkLocalKey(key); err != nil {
		return "", err
	}
	if err := checkTTL(ttl); err != nil {
		return "", err
	}
	expires := l.now().Add(ttl).Unix()
	sig, err := l.mac(op, key, expires, contentType)
	if err != nil {
		return "", err
	}
	q := url.Values{"key": {key}, "expires": {strconv.FormatInt(expires, 10)}, "sig": {sig}}
	if contentType != "" {
		q.Set("contentType", contentType)
	}
	return l.urlPath + "/" + op + "?" + q.Encode(), nil
}

// mac is the signature of one presigned operation: HMAC-SHA256 over the
// operation, key, expiry and content type, which hold no newline.
func (l *Local) mac(op, key string, expires int64, contentType string) (string, error) {
	secret, err := l.secret()
	if err != nil {
		return "", err
	}
	h := hmac.New(sha256.New, secret)
	fmt.Fprintf(h, "unitenant-local-url-v1\n%s\n%s\n%d\n%s", op, key, expires, contentType)
	return base64.RawURLEncoding.EncodeToString(h.Sum(nil)), nil
}

// Errors of presigned local URLs.
var (
	ErrURLSignature = fault.New(fault.Forbidden, "signature_invalid", "the URL's signature does not match; request a new one")
	ErrURLExpired   = fault.New(fault.Forbidden, "url_expired", "the URL has expired; request a new one")
)

// Verify checks a presigned URL's query for op ("put" or "get") and returns
// the key and content type it was signed for. Any change to the key, the
// expiry, the content type or the signature is ErrURLSignature.
func (l *Local) Verify(op string, q url.Values) (key, contentType string, err error) {
	key, contentType = q.Get("key"), q.Get("contentType")
	expires, perr := strconv.ParseInt(q.Get("expires"), 10, 64)
	sig, derr := base64.RawURLEncoding.DecodeString(q.Get("sig"))
	if perr != nil || derr != nil || CheckKey(key) != nil {
		return "", "", ErrURLSignature
	}
	want, err := l.mac(op, key, expires, contentType)
	if err != nil {
		return "", "", err
	}
	if err := l.valid(sig, want, expires); err != nil {
		return "", "", err
	}
	return key, contentType, nil
}

// valid checks a signature sent against the one wanted (as the mac
// functions encode it), then the expiry it covers.
func (l *Local) valid(sig []byte, want string, expires int64) error {
	wantRaw, _ := base64.RawURLEncoding.DecodeString(want)
	if !hmac.Equal(sig, wantRaw) {
		return ErrURLSignature
	}
	if l.now().Unix() >= expires {
		return ErrURLExpired
	}
	return nil
}

// Handler serves the presigned URLs: PUT <URLPath>/put stores the body,
// GET <URLPath>/get returns the object. The URL's signature is the whole
// authorization; no token is involved.
func (l *Local) Handler(log *slog.Logger) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		put, get := r.Method == http.MethodPut, r.Method == http.MethodGet || r.Method == http.MethodHead
		switch r.URL.Path {
		case l.urlPath + "/post":
			if r.Method == http.MethodPost {
				l.servePost(w, r, log)
				return
			}
		case l.urlPath + "/put":
			if put {
				l.servePut(w, r, log)
				return
			}
		case l.urlPath + "/get":
			if get {
				l.serveGet(w, r, log)
				return
			}
		default:
			httpapi.Fail(w, r, log, fault.New(fault.NotFound, "route_not_found", "no route for %s %s", r.Method, r.URL.Path))
			return
		}
		httpapi.Fail(w, r, log, fault.New(fault.MethodNotAllowed, "method_not_allowed", "%s is not allowed on %s", r.Method, r.URL.Path))
	})
}

func (l *Local) servePut(w http.ResponseWriter, r *http.Request, log *slog.Logger) {
	key, ct, err := l.Verify("put", r.URL.Query())
	if err != nil {
		httpapi.Fail(w, r, log, err)
		return
	}
	// As on OSS, the Content-Type is part of what was signed.
	if got := r.Header.Get("Content-Type"); got != ct {
		httpapi.Fail(w, r, log, fault.New(fault.Forbidden, "signature_invalid",
			"the URL was signed for Content-Type %q, the request sends %q", ct, got))
		return
	}
	l.store(w, r, log, key, r.Body, r.ContentLength, ct)
}

// store puts an upload's body and answers its client.
func (l *Local) store(w http.ResponseWriter, r *http.Request, log *slog.Logger, key string, body io.Reader, size int64, ct string) {
	if err := l.Put(r.Context(), key, body, size, ct); err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			err = fault.New(fault.TooLarge, "body_too_large", "the local store takes at most %d bytes per upload", tooBig.Limit)
		}
		httpapi.Fail(w, r, log, err)
		return
	}
	httpapi.OK(w, r, map[string]any{"key": key})
}

// Errors of local form uploads.
var (
	ErrFormMalformed = fault.New(fault.Invalid, "malformed_form", "the body is not a multipart/form-data form with the grant's fields and then a field named file")
	ErrFormTooLarge  = fault.New(fault.TooLarge, "entity_too_large", "the file is bigger than the upload grant allows")
)

// maxFormField bounds each field before the file.
const maxFormField = 8 << 10

// servePost stores the file of a form upload (see PresignPost), as OSS's
// PostObject does: the fields come first, the file last; the signed
// fields must be sent unchanged.
func (l *Local) servePost(w http.ResponseWriter, r *http.Request, log *slog.Logger) {
	mr, err := r.MultipartReader()
	if err != nil {
		httpapi.Fail(w, r, log, ErrFormMalformed)
		return
	}
	fields := map[string]string{}
	for {
		part, err := mr.NextPart()
		if err != nil {
			httpapi.Fail(w, r, log, ErrFormMalformed) // io.EOF too: no file
			return
		}
		name := part.FormName()
		if name != "file" {
			v, err := io.ReadAll(io.LimitReader(part, maxFormField+1))
			if err != nil || len(v) > maxFormField || name == "" {
				httpapi.Fail(w, r, log, ErrFormMalformed)
				return
			}
			fields[strings.ToLower(name)] = string(v)
			continue
		}
		key, ct, max, err := l.verifyPost(fields)
		if err != nil {
			httpapi.Fail(w, r, log, err)
			return
		}
		l.store(w, r, log, key, &capped{r: part, left: max}, -1, ct)
		return
	}
}

// verifyPost checks a form upload's fields against their signature and
// returns what they grant.
func (l *Local) verifyPost(f map[string]string) (key, contentType string, maxSize int64, err error) {
	key, contentType = f["key"], f["content-type"]
	maxSize, merr := strconv.ParseInt(f["maxsize"], 10, 64)
	expires, perr := strconv.ParseInt(f["expires"], 10, 64)
	sig, derr := base64.RawURLEncoding.DecodeString(f["sig"])
	if merr != nil || perr != nil || derr != nil || CheckKey(key) != nil {
		return "", "", 0, ErrURLSignature
	}
	want, err := l.postMAC(key, contentType, maxSize, expires)
	if err != nil {
		return "", "", 0, err
	}
	if err := l.valid(sig, want, expires); err != nil {
		return "", "", 0, err
	}
	return key, contentType, maxSize, nil
}

// capped reads r and fails with ErrFormTooLarge once it has given more
// than left bytes.
type capped struct {
	r    io.Reader
	left int64
}

func (c *capped) Read(p []byte) (int, error) {
	if int64(len(p)) > c.left+1 {
		p = p[:c.left+1]
	}
	n, err := c.r.Read(p)
	c.left -= int64(n)
	if c.left < 0 {
		return 0, ErrFormTooLarge
	}
	return n, err
}

func (l *Local) serveGet(w http.ResponseWriter, r *http.Request, log *slog.Logger) {
	key, _, err := l.Verify("get", r.URL.Query())
	if err != nil {
		httpapi.Fail(w, r, log, err)
		return
	}
	body, info, err := l.Get(r.Context(), key)
	if err != nil {
		httpapi.Fail(w, r, log, err)
		return
	}
	defer body.Close()
	h := w.Header()
	ct := info.ContentType
	if ct == "" {
		ct = "application/octet-stream"
	}
	h.Set("Content-Type", ct)
	h.Set("Content-Length", strconv.FormatInt(info.Size, 10))
	h.Set("Last-Modified", info.LastModified.Format(http.TimeFormat))
	if info.ETag != "" {
		h.Set("ETag", info.ETag)
	}
	// Uploaded content is served from the API's own origin here (OSS serves
	// it from its own): never let it run as a page of that origin.
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Content-Security-Policy", "sandbox")
	h.Set("Cache-Control", "private, no-cache")
	w.WriteHeader(http.StatusOK)
	if r.Method != http.MethodHead {
		if _, err := io.Copy(w, body); err != nil {
			log.WarnContext(r.Context(), "local get: copy interrupted", "key", key, "err", err)
		}
	}
}
