package main

import (
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"mime"
	"net"
	"net/http"
	"net/url"
	"path"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/unitenant/unitenant/shared/auth"
	"github.com/unitenant/unitenant/shared/fault"
	"github.com/unitenant/unitenant/shared/httpapi"
	"github.com/unitenant/unitenant/shared/identity"
	"github.com/unitenant/unitenant/shared/objectstore"
	"github.com/unitenant/unitenant/shared/serverless"
	"github.com/unitenant/unitenant/shared/storageusage"
	"github.com/unitenant/unitenant/shared/tenancy"
)

// Routes. The first four need a tenant-scoped token for the tenant the
// request is for (shared/tenancy: another tenant's token or a platform token
// is 403 tenant_forbidden) and work only inside that tenant's prefix; keys
// are relative to it or full keys inside it, anything else is 403
// key_forbidden. A tenant whose storage, as usage-cron last measured it
// (shared/storageusage), reached its max_storage gets no upload URL and no
// credentials (403 storage_quota_exceeded); it still reads, lists and
// deletes. Each reads the caller's membership as it is now
// (global_user_tenant_relations, not the token's claims): a user removed or
// disabled since the token was issued is 403 not_a_member. Deleting needs
// the tenant's owner or admin role there: a member is 403
// permission_denied. The local routes take no token: the URL's signature
// and expiry are the authorization.
//
//	POST   /api/v1/oss/presign    {op, key, contentType?, expiresIn?, maxSize?} -> {url, method, key, expiresAt, headers?, fields?, maxSize?}
//	                              op "get" downloads, "put" uploads (any size), "post" is a form upload
//	                              (OSS PostObject) the store refuses past maxSize bytes: see presignPost
//	POST   /api/v1/oss/sts-token  temporary OSS credentials limited to the prefix: read and list it, upload
//	                              keys ending in objectstore.UploadExtensions, delete only for owners and
//	                              admins (501 sts_not_configured, 501 sts_policy_too_long, 403 not_a_member)
//	GET    /api/v1/oss/files      ?prefix=&marker=&max= -> {prefix, objects, truncated, nextMarker}
//	DELETE /api/v1/oss/files      ?key= -> {key, deleted}; owners and admins only
//	PUT    /api/v1/oss/local/put  presigned upload (local backend only)
//	GET    /api/v1/oss/local/get  presigned download (local backend only)
//	POST   /api/v1/oss/local/post form upload (local backend only)
func newHandler(v *auth.Verifier, ten *tenancy.Service, db *sql.DB, objects *objectstore.Service, opts options, log *slog.Logger) http.Handler {
	if opts.maxUpload <= 0 {
		opts.maxUpload = defaultMaxUpload
	}
	h := &handler{db: db, objects: objects, opts: opts, log: log}
	scoped := func(fn endpoint) http.Handler {
		return httpapi.Chain(h.tenant(fn), auth.Require(v, log, auth.AudienceTenant, auth.AudiencePlatform), ten.Middleware)
	}
	rt := httpapi.NewRouter()
	rt.Handle("POST /api/v1/oss/presign", scoped(h.presign))
	rt.Handle("POST /api/v1/oss/sts-token", scoped(h.stsToken))
	rt.Handle("GET /api/v1/oss/files", scoped(h.list))
	rt.Handle("DELETE /api/v1/oss/files", scoped(h.remove))
	local := http.Handler(http.HandlerFunc(h.localDisabled))
	if objects.Local != nil {
		local = objects.Local.Handler(log)
	}
	rt.Handle("PUT "+objectstore.LocalURLPath+"/put", local)
	rt.Handle("POST "+objectstore.LocalURLPath+"/post", local)
	rt.Handle("GET "+objectstore.LocalURLPath+"/get", local)
	return rt
}

// options are the handler's settings besides its dependencies.
type options struct {
	// publicURL, when set, is the base of the local store's presigned URLs;
	// otherwise they are made absolute against the request's own scheme,
	// host and port (what the local gateway was called at).
	publicURL *url.URL
	now       func() time.Time
	// maxUpload is the biggest file a form upload is granted
	// (STORAGE_MAX_UPLOAD_MB), and its default size.
	maxUpload int64
}

type handler struct {
	db      *sql.DB // the system database: memberships
	objects *objectstore.Service
	opts    options
	log     *slog.Logger
}

// endpoint is one tenant-scoped route's work: it gets the caller's store,
// already confined to its tenant's prefix, and the caller's role there now.
type endpoint func(r *http.Request, store *objectstore.Tenant, role string) (any, error)

// tenant runs fn for a current member of the request's tenant. A token is
// good for its lifetime, a membership only until it is removed or
// disabled: the role is read from the membership on every request, so a
// removed user gets no URL, listing or credential with the token they kept.
func (h *handler) tenant(fn endpoint) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		t, ok := tenancy.FromContext(r.Context())
		if !ok {
			httpapi.Fail(w, r, h.log, tenancy.ErrNoTenant)
			return
		}
		role, err := h.memberRole(r)
		if err != nil {
			httpapi.Fail(w, r, h.log, err)
			return
		}
		store, err := h.objects.Tenant(t.Code)
		if err != nil {
			httpapi.Fail(w, r, h.log, err)
			return
		}
		data, err := fn(r, store, role)
		if err != nil {
			httpapi.Fail(w, r, h.log, err)
			return
		}
		httpapi.OK(w, r, data)
	})
}

// defaultMaxUpload is STORAGE_MAX_UPLOAD_MB's default.
const defaultMaxUpload = 100 << 20

// Presigned URLs live between one second and an hour, five minutes unless
// asked otherwise.
const (
	defaultExpiresIn = 300
	maxExpiresIn     = 3600
)

type presignInput struct {
	Op          string `json:"op"`
	Key         string `json:"key"`
	ContentType string `json:"contentType"`
	ExpiresIn   *int   `json:"expiresIn"`
	MaxSize     *int64 `json:"maxSize"` // post only
}

type presignOutput struct {
	URL       string            `json:"url"`
	Method    string            `json:"method"`
	Key       string            `json:"key"`
	ExpiresAt time.Time         `json:"expiresAt"`
	Headers   map[string]string `json:"headers,omitempty"` // what the request must send: the signature covers it
	// A form upload's fields, to send before the file (the last field,
	// named "file"), and the most bytes the file may have.
	Fields  map[string]string `json:"fields,omitempty"`
	MaxSize int64             `json:"maxSize,omitempty"`
}

func (h *handler) presign(r *http.Request, store *objectstore.Tenant, _ string) (any, error) {
	var in presignInput
	if err := httpapi.Decode(r, &in); err != nil {
		return nil, err
	}
	if in.Op != "put" && in.Op != "get" && in.Op != "post" {
		return nil, fault.Field("invalid_op", "op", `must be "put", "post" or "get"`)
	}
	if in.MaxSize != nil && in.Op != "post" {
		return nil, fault.Field("invalid_max_size", "maxSize", `applies to op "post" only`)
	}
	key, err := store.Key(in.Key)
	if err != nil {
		return nil, err
	}
	if err := checkContentType(in.Op, key, in.ContentType); err != nil {
		return nil, err
	}
	secs := defaultExpiresIn
	if in.ExpiresIn != nil {
		secs = *in.ExpiresIn
	}
	if secs < 1 || secs > maxExpiresIn {
		return nil, fault.Field("invalid_expires_in", "expiresIn", fmt.Sprintf("must be between 1 and %d seconds", maxExpiresIn))
	}
	ttl := time.Duration(secs) * time.Second
	out := presignOutput{Key: key, ExpiresAt: h.opts.now().Add(ttl).UTC().Truncate(time.Second)}
	var raw string
	if in.Op == "post" {
		return h.presignPost(r, store, key, in, out, ttl)
	}
	if in.Op == "put" {
		if _, err := h.underQuota(r); err != nil {
			return nil, err
		}
		out.Method = http.MethodPut
		raw, err = store.PresignPut(r.Context(), key, in.ContentType, ttl)
		if in.ContentType != "" {
			out.Headers = map[string]string{"Content-Type": in.ContentType}
		}
	} else {
		out.Method = http.MethodGet
		raw, err = store.PresignGet(r.Context(), key, ttl)
	}
	if err != nil {
		return nil, err
	}
	if out.URL, err = h.absolute(r, raw); err != nil {
		return nil, err
	}
	return out, nil
}

// absolute is a presigned URL as the client uses it: the local store's
// are relative to this function (see base); OSS URLs are absolute already.
func (h *handler) absolute(r *http.Request, raw string) (string, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return "", fmt.Errorf("presigned url: %w", err)
	}
	return h.base(r).ResolveReference(u).String(), nil
}

// presignPost grants a form upload of key: the store itself refuses a
// file over the grant's size, which is what the client asked for (maxSize;
// the most allowed, STORAGE_MAX_UPLOAD_MB, by default) and never more than
// the tenant has left of its max_storage as last measured. The
// Content-Type is pinned: the one asked for, else the key's extension's,
// else application/octet-stream.
func (h *handler) presignPost(r *http.Request, store *objectstore.Tenant, key string, in presignInput, out presignOutput, ttl time.Duration) (any, error) {
	size := h.opts.maxUpload
	if in.MaxSize != nil {
		if *in.MaxSize < 1 || *in.MaxSize > h.opts.maxUpload {
			return nil, fault.Field("invalid_max_size", "maxSize", fmt.Sprintf("must be between 1 and %d bytes", h.opts.maxUpload))
		}
		size = *in.MaxSize
	}
	usage, err := h.underQuota(r)
	if err != nil {
		return nil, err
	}
	if left, limited := usage.Left(); limited && left < size {
		if in.MaxSize != nil {
			return nil, fault.New(fault.Forbidden, "storage_quota_exceeded",
				"a file of %d bytes does not fit: the tenant has %d bytes left of its %d (%s)",
				size, left, *usage.MaxStorage, usage.When())
		}
		size = left
	}
	ct := in.ContentType
	if ct == "" {
		if ct = mime.TypeByExtension(path.Ext(key)); ct == "" {
			ct = "application/octet-stream"
		}
	}
	form, err := store.PresignPost(r.Context(), key, ct, size, ttl)
	if err != nil {
		return nil, err
	}
	if out.URL, err = h.absolute(r, form.URL); err != nil {
		return nil, err
	}
	out.Method, out.Fields, out.MaxSize = http.MethodPost, form.Fields, size
	return out, nil
}

// checkContentType accepts a media type for uploads ("" lets the store
// choose one) that a browser will not run as a page: see activeType. key is
// the full key: an upload without a type whose key ends like a page
// (.html, .svg, ...) must declare a type, since a store may choose the type
// from the extension: OSS from its table (see activeExtensions), the local
// store and presignPost from Go's, which reads the system's mime.types.
func checkContentType(op, key, ct string) error {
	if ct == "" {
		ext := path.Ext(key)
		byExt, _, _ := mime.ParseMediaType(mime.TypeByExtension(ext))
		if op != "get" && (activeExtensions[strings.ToLower(ext)] || activeType(byExt)) {
			return fault.Field("invalid_content_type", "contentType", fmt.Sprintf(
				"is required for a key ending in %s: pages and scripts are not stored as such; "+
					"application/octet-stream stores the file as a download", ext))
		}
		return nil
	}
	if op == "get" {
		return fault.Field("invalid_content_type", "contentType", "applies to uploads (put, post) only")
	}
	// ParseMediaType also takes a bare token ("foo", "html"), which is
	// Content-Disposition's form, not a media type: a browser ignores it
	// and sniffs the body.
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil || !strings.Contains(mt, "/") || len(ct) > 255 || strings.ContainsFunc(ct, func(c rune) bool { return c < 0x20 || c == 0x7f }) {
		return fault.Field("invalid_content_type", "contentType", "must be a media type such as image/png")
	}
	if activeType(mt) {
		return fault.Field("invalid_content_type", "contentType", fmt.Sprintf(
			"%s is a type browsers run as a page or script, which uploads must not be; "+
				"application/octet-stream stores the file as a download", mt))
	}
	return nil
}

// activeType reports whether browsers run content of media type mt (lower
// case, no parameters) as a document or script of the origin serving it:
// HTML, SVG, XML (which XSLT turns into HTML), JavaScript (every name the
// WHATWG MIME Sniffing standard gives it) and legacy page types, or sniff
// what it is, which without nosniff (OSS sends none) may be HTML: the
// "unknown" types and */*. OSS serves an object with the type it was
// uploaded with, from the bucket's origin, which every tenant's URLs share:
// an uploaded page would run there for whoever opens its link.
func activeType(mt string) bool {
	switch mt {
	case "text/html", "application/xhtml+xml", "image/svg+xml", "text/xml", "application/xml", "text/xsl",
		"text/javascript", "application/javascript", "application/x-javascript", "application/ecmascript",
		"application/x-ecmascript", "text/ecmascript", "text/x-ecmascript", "text/x-javascript", "text/jscript",
		"text/livescript", "text/vbscript", "application/x-shockwave-flash", "multipart/x-mixed-replace",
		"application/hta", "text/x-component", "text/scriptlet", "text/webviewhtml",
		"unknown/unknown", "application/unknown", "*/*":
		return true
	}
	return strings.HasSuffix(mt, "+xml") || strings.HasPrefix(mt, "text/javascript1.")
}

// activeExtensions are the extensions that make a store choosing a type by
// extension (mime.TypeByExtension, a browser's file picker, OSS's table:
// aliyun-oss-go-sdk's oss.TypeByExtension) pick an active one.
var activeExtensions = map[string]bool{
	".html": true, ".htm": true, ".shtml": true, ".xhtml": true, ".xht": true, ".svg": true, ".svgz": true,
	".xml": true, ".xsl": true, ".xslt": true, ".js": true, ".mjs": true, ".swf": true,
	// OSS's own: pages and XML besides the above.
	".dhtml": true, ".hts": true, ".shtm": true, ".stm": true, ".xhtm": true, ".htt": true, ".hta": true, ".htc": true,
	".sct": true, ".swfl": true, ".atom": true, ".rdf": true, ".mathml": true, ".xul": true, ".vxml": true,
	".grxml": true, ".xsit": true,
}

// base is where the local store's relative URLs are served: the configured
// public URL, else the scheme the client called and the host and port the
// request was served for. serverless.Handler makes r.Host that authority on
// every platform (requestContext.domainName under Lambda, the Host line or
// :authority elsewhere) and drops any Host header a client added beside it,
// so host and port come from the one place routing trusts too.
func (h *handler) base(r *http.Request) *url.URL {
	if h.opts.publicURL != nil {
		return h.opts.publicURL
	}
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	if p := r.Header.Get("X-Forwarded-Proto"); p == "http" || p == "https" {
		scheme = p
	}
	host := serverless.Host(r)
	if _, port, err := net.SplitHostPort(r.Host); err == nil && port != "" {
		host = net.JoinHostPort(host, port)
	}
	return &url.URL{Scheme: scheme, Host: host}
}

// stsOutput is what a client needs to use OSS directly.
type stsOutput struct {
	objectstore.Credentials
	Bucket      string `json:"bucket"`
	Endpoint    string `json:"endpoint"`
	Prefix      string `json:"prefix"`
	AllowedPath string `json:"allowedPath"`
	// UploadExtensions are the (lower-case) key endings the credentials
	// upload; anything else is OSS's 403 AccessDenied.
	UploadExtensions []string `json:"uploadExtensions"`
}

func (h *handler) stsToken(r *http.Request, store *objectstore.Tenant, role string) (any, error) {
	if r.ContentLength != 0 { // the body is optional; when sent it must be an empty object
		if err := httpapi.Decode(r, &struct{}{}); err != nil {
			return nil, err
		}
	}
	if h.objects.STS == nil {
		return nil, fault.New(fault.NotImplemented, "sts_not_configured",
			"temporary credentials are not configured here (STS_ROLE_ARN with the oss backend); use presigned URLs")
	}
	// The credentials upload: none for a tenant at its quota (presigned
	// GETs and deletes stay open to it).
	if _, err := h.underQuota(r); err != nil {
		return nil, err
	}
	access := objectstore.AccessUpload
	if identity.ManagesTenant(role) {
		access = objectstore.AccessManage
	}
	claims, _ := auth.FromContext(r.Context())
	session := fmt.Sprintf("%s-u%d", store.Code(), claims.SubjectID())
	if len(session) > 64 {
		session = session[:64]
	}
	c, err := h.objects.STS.AssumeRole(r.Context(), session, store.Prefix(), access)
	if errors.Is(err, objectstore.ErrPolicyTooLong) {
		// Configuration, not the client: say so to operators, and answer
		// like no STS at all so the client falls back to presigned URLs.
		h.log.WarnContext(r.Context(), "sts token: the tenant's policy does not fit STS", "tenant", store.Code(), "err", err)
		return nil, fault.New(fault.NotImplemented, "sts_policy_too_long",
			"temporary credentials cannot be limited to this tenant's storage (its prefix is too long); use presigned URLs")
	}
	if err != nil {
		return nil, fmt.Errorf("sts token for %s: %w", store.Code(), err)
	}
	return stsOutput{Credentials: c, Bucket: h.objects.OSS.Bucket(), Endpoint: h.objects.OSS.Endpoint(),
		Prefix: store.Prefix(), AllowedPath: store.Prefix() + "*", UploadExtensions: objectstore.UploadExtensions}, nil
}

type listOutput struct {
	Prefix string `json:"prefix"`
	objectstore.Page
}

// defaultListMax is the page size unless max says otherwise.
const defaultListMax = 100

func (h *handler) list(r *http.Request, store *objectstore.Tenant, _ string) (any, error) {
	q, err := query(r, "prefix", "marker", "max")
	if err != nil {
		return nil, err
	}
	max := defaultListMax
	if v := q.Get("max"); v != "" {
		if max, err = strconv.Atoi(v); err != nil || max < 1 || max > objectstore.MaxList {
			return nil, fault.Field("invalid_max", "max", fmt.Sprintf("must be a number between 1 and %d", objectstore.MaxList))
		}
	}
	prefix, err := store.ListPrefix(q.Get("prefix"))
	if err != nil {
		return nil, err
	}
	page, err := store.List(r.Context(), prefix, q.Get("marker"), max)
	if err != nil {
		return nil, err
	}
	return listOutput{Prefix: prefix, Page: page}, nil
}

func (h *handler) remove(r *http.Request, store *objectstore.Tenant, role string) (any, error) {
	if !identity.ManagesTenant(role) {
		return nil, errDeleteRole
	}
	q, err := query(r, "key")
	if err != nil {
		return nil, err
	}
	key, err := store.Key(q.Get("key"))
	if err != nil {
		return nil, err
	}
	if err := store.Delete(r.Context(), key); err != nil {
		return nil, err
	}
	return map[string]any{"key": key, "deleted": true}, nil
}

var errDeleteRole = fault.New(fault.Forbidden, "permission_denied", "deleting files needs the tenant's owner or admin role")

// underQuota refuses an upload grant to a tenant whose last measured
// storage reached its max_storage (403 storage_quota_exceeded), and
// returns the usage it read.
func (h *handler) underQuota(r *http.Request) (storageusage.Usage, error) {
	t, ok := tenancy.FromContext(r.Context())
	if !ok {
		return storageusage.Usage{}, tenancy.ErrNoTenant
	}
	return storageusage.CheckedUsage(r.Context(), h.db, t.ID)
}

// memberRole is the caller's role in the request's tenant now (see
// identity.MemberRole): ai-chat's key management reads it the same way.
func (h *handler) memberRole(r *http.Request) (string, error) {
	c, ok := auth.FromContext(r.Context())
	t, tok := tenancy.FromContext(r.Context())
	if !ok || !tok || c.Kind != auth.KindUser {
		return "", identity.ErrNotAMember
	}
	return identity.MemberRole(r.Context(), h.db, c.SubjectID(), t.ID)
}

// query returns the request's query, refusing parameters other than known
// and repeated ones (which one would count is a guess).
func query(r *http.Request, known ...string) (url.Values, error) {
	q, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		return nil, fault.New(fault.Invalid, "invalid_query", "malformed query string")
	}
	for name, vs := range q {
		if !slices.Contains(known, name) {
			return nil, fault.Field("unknown_parameter", name, "is not a known parameter (known: "+strings.Join(known, ", ")+")")
		}
		if len(vs) > 1 {
			return nil, fault.Field("repeated_parameter", name, "is given more than once")
		}
	}
	return q, nil
}

func (h *handler) localDisabled(w http.ResponseWriter, r *http.Request) {
	httpapi.Fail(w, r, h.log, fault.New(fault.NotFound, "local_storage_disabled",
		"objects are stored in OSS here; presigned URLs point there"))
}
