package objectstore

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/unitenant/unitenant/shared/fault"
	"github.com/unitenant/unitenant/shared/tenancy"
)

// DefaultPrefixPattern is where a tenant's objects live unless
// TENANT_STORAGE_PREFIX says otherwise. The seed used the contact's phone;
// a phone changes and leaks into URLs, the tenant code does neither.
const DefaultPrefixPattern = "tenants/{code}/"

// codePlaceholder is what a prefix pattern holds where the code goes.
const codePlaceholder = "{code}"

// ArchivesPrefix is the part of the bucket the platform keeps for itself:
// the database archives of purged tenants (lifecycle.ArchiveKey). No
// tenant's prefix lies inside or over it, or that tenant could read and
// delete other tenants' database dumps, and purging it would delete them.
const ArchivesPrefix = "archives/"

// overlapsArchives reports whether a tenant prefix lies inside or over
// ArchivesPrefix.
func overlapsArchives(prefix string) bool {
	return strings.HasPrefix(prefix, ArchivesPrefix) || strings.HasPrefix(ArchivesPrefix, prefix)
}

// Layout maps tenant codes to their prefixes.
type Layout struct {
	before, after string // the pattern's text around {code}
}

// ParseLayout reads a prefix pattern such as "tenants/{code}/". It must hold
// {code} once as a whole segment (at the start or after "/", directly
// followed by "/") and end with "/": then no tenant's prefix is the start of
// another's (k001/ never matches k0011/...), and no relative key looks like
// another tenant's full key (with "t{code}/", the relative "temp/x" would be
// tenant emp's). It must not lie inside ArchivesPrefix.
func ParseLayout(pattern string) (Layout, error) {
	before, after, ok := strings.Cut(pattern, codePlaceholder)
	if !ok || strings.Contains(after, codePlaceholder) {
		return Layout{}, fmt.Errorf("prefix pattern %q: must hold %s exactly once", pattern, codePlaceholder)
	}
	if (before != "" && !strings.HasSuffix(before, "/")) || !strings.HasPrefix(after, "/") || !strings.HasSuffix(after, "/") {
		return Layout{}, fmt.Errorf("prefix pattern %q: %s must be a whole segment (at the start or after /, followed by /) and the pattern must end with /",
			pattern, codePlaceholder)
	}
	if err := checkKey("prefix", before+"x"+after, true); err != nil {
		return Layout{}, fmt.Errorf("prefix pattern %q: %w", pattern, err)
	}
	if strings.HasPrefix(before, ArchivesPrefix) {
		return Layout{}, fmt.Errorf("prefix pattern %q: %s is kept for database archives", pattern, ArchivesPrefix)
	}
	return Layout{before: before, after: after}, nil
}

// DefaultLayout is the layout of DefaultPrefixPattern.
func DefaultLayout() Layout { return Layout{before: "tenants/", after: "/"} }

// String returns the pattern.
func (l Layout) String() string { return l.before + codePlaceholder + l.after }

// Prefix returns the prefix of tenant code, e.g. "tenants/k001/". A code
// whose prefix would overlap ArchivesPrefix (the code "archives" in the
// layout "{code}/") has none.
func (l Layout) Prefix(code string) (string, error) {
	if !tenancy.ValidCode(code) {
		return "", fmt.Errorf("storage prefix: %q is not a tenant code", code)
	}
	prefix := l.before + code + l.after
	if overlapsArchives(prefix) {
		return "", fmt.Errorf("storage prefix of %s: %s would overlap %s, which is kept for database archives", code, prefix, ArchivesPrefix)
	}
	return prefix, nil
}

// Tenant returns store scoped to tenant code's prefix.
func (l Layout) Tenant(store Store, code string) (*Tenant, error) {
	prefix, err := l.Prefix(code)
	if err != nil {
		return nil, err
	}
	return &Tenant{store: store, code: code, prefix: prefix, root: l.before}, nil
}

// Tenant is a Store confined to one tenant's prefix. It takes keys relative
// to the prefix ("uploads/a.png") or full keys inside it
// ("tenants/k001/uploads/a.png", what List and presign answer) and returns
// full keys. A key that starts like another tenant's full key (the layout's
// root, "tenants/"), one that climbs ("..", ".", a leading "/"), or that
// would end up outside the prefix is 403 key_forbidden.
type Tenant struct {
	store  Store
	code   string
	prefix string
	root   string // the layout's text before the code: full keys of every tenant start with it
}

// Code returns the tenant's code.
func (t *Tenant) Code() string { return t.code }

// Prefix returns the tenant's prefix, ending in "/".
func (t *Tenant) Prefix() string { return t.prefix }

// Key returns the full key of key, or why the tenant may not use it. Errors
// name the field "key".
func (t *Tenant) Key(key string) (string, error) { return t.resolve("key", key, false) }

// ListPrefix returns the full listing prefix of prefix (relative or full;
// "" is the whole tenant). Errors name the field "prefix".
func (t *Tenant) ListPrefix(prefix string) (string, error) { return t.resolve("prefix", prefix, true) }

// Marker returns the full key of a listing marker ("" stays ""). Errors
// name the field "marker". A marker may be any key the store holds under
// the prefix (see checkMarker), not only one CheckKey takes: it reaches no
// object, the listing's prefix bounds what is listed.
func (t *Tenant) Marker(marker string) (string, error) {
	if marker == "" {
		return "", nil
	}
	if err := checkMarker(marker); err != nil {
		return "", err
	}
	return t.join("marker", marker)
}

func (t *Tenant) resolve(field, key string, prefix bool) (string, error) {
	if err := checkKey(field, key, prefix); err != nil {
		return "", err
	}
	return t.join(field, key)
}

// join returns the full key of a checked key, relative or full.
func (t *Tenant) join(field, key string) (string, error) {
	full := key
	switch {
	case strings.HasPrefix(key, t.prefix):
	case t.root != "" && strings.HasPrefix(key, t.root):
		return "", forbidden(field, "is outside this tenant's storage ("+t.prefix+")")
	default:
		full = t.prefix + key
	}
	if len(full) > MaxKeyLen {
		return "", fault.Field("invalid_key", field, fmt.Sprintf("with the tenant's prefix it is longer than %d bytes", MaxKeyLen))
	}
	return full, nil
}

// Put stores an object under the tenant's key.
func (t *Tenant) Put(ctx context.Context, key string, r io.Reader, size int64, contentType string) error {
	full, err := t.Key(key)
	if err != nil {
		return err
	}
	return t.store.Put(ctx, full, r, size, contentType)
}

// Get opens the tenant's object.
func (t *Tenant) Get(ctx context.Context, key string) (io.ReadCloser, Info, error) {
	full, err := t.Key(key)
	if err != nil {
		return nil, Info{}, err
	}
	return t.store.Get(ctx, full)
}

// Delete removes the tenant's object.
func (t *Tenant) Delete(ctx context.Context, key string) error {
	full, err := t.Key(key)
	if err != nil {
		return err
	}
	return t.store.Delete(ctx, full)
}

// List lists the tenant's objects under prefix (relative or full) after
// marker. Keys come back full.
func (t *Tenant) List(ctx context.Context, prefix, marker string, max int) (Page, error) {
	p, err := t.ListPrefix(prefix)
	if err != nil {
		return Page{}, err
	}
	m, err := t.Marker(marker)
	if err != nil {
		return Page{}, err
	}
	return t.store.List(ctx, p, m, max)
}

// PresignPut returns an upload URL for the tenant's key.
func (t *Tenant) PresignPut(ctx context.Context, key, contentType string, ttl time.Duration) (string, error) {
	full, err := t.Key(key)
	if err != nil {
		return "", err
	}
	return t.store.PresignPut(ctx, full, contentType, ttl)
}

// PresignPost returns a form upload of the tenant's key (see Store).
func (t *Tenant) PresignPost(ctx context.Context, key, contentType string, maxSize int64, ttl time.Duration) (PostForm, error) {
	full, err := t.Key(key)
	if err != nil {
		return PostForm{}, err
	}
	return t.store.PresignPost(ctx, full, contentType, maxSize, ttl)
}

// PresignGet returns a download URL for the tenant's key.
func (t *Tenant) PresignGet(ctx context.Context, key string, ttl time.Duration) (string, error) {
	full, err := t.Key(key)
	if err != nil {
		return "", err
	}
	return t.store.PresignGet(ctx, full, ttl)
}

// Folders is the folder layout of a new tenant (seed 000 §5.2), relative to
// its prefix.
var Folders = []string{
	"uploads/images", "uploads/videos", "uploads/files",
	"generated/posters", "generated/documents",
	"posters/templates", "posters/user_created",
	"documents/enrollment", "documents/activities",
	"temp",
}

// KeepObject is the zero-byte object that makes a folder exist: object
// stores have no directories, and consoles and listings show a folder only
// when some key lies under it.
const KeepObject = ".keep"

// AllocatePrefix creates t's folder layout (Folders) as zero-byte .keep
// objects. It is idempotent: running it again rewrites the same empty
// objects, so a resumed provisioning step simply runs it again.
func AllocatePrefix(ctx context.Context, t *Tenant) error {
	g, ctx := errgroup.WithContext(ctx)
	g.SetLimit(len(Folders)) // a few small requests: all at once keeps provisioning fast
	for _, f := range Folders {
		g.Go(func() error {
			if err := t.Put(ctx, f+"/"+KeepObject, bytes.NewReader(nil), 0, "application/x-directory"); err != nil {
				return fmt.Errorf("allocate %s%s: %w", t.prefix, f, err)
			}
			return nil
		})
	}
	return g.Wait()
}

// Code returns the tenant code whose prefix is prefix, if it is one.
func (l Layout) Code(prefix string) (string, bool) {
	rest, ok := strings.CutPrefix(prefix, l.before)
	if !ok {
		return "", false
	}
	code, ok := strings.CutSuffix(rest, l.after)
	if !ok || !tenancy.ValidCode(code) {
		return "", false
	}
	return code, true
}

// RemoveAll deletes every object of t, a few at a time. Objects written
// while it runs may survive; callers remove a tenant's objects once the
// tenant can no longer write (deleted, or never activated).
func RemoveAll(ctx context.Context, t *Tenant) error {
	// Keys the store listed under the prefix are deleted as listed, even
	// those CheckKey refuses (see OSS.deleteListed).
	del := t.store.Delete
	if s, ok := t.store.(interface {
		deleteListed(context.Context, string) error
	}); ok {
		del = s.deleteListed
	}
	marker := ""
	for {
		page, err := t.store.List(ctx, t.prefix, marker, MaxList)
		if err != nil {
			return fmt.Errorf("remove %s: %w", t.prefix, err)
		}
		g, gctx := errgroup.WithContext(ctx)
		g.SetLimit(16)
		for _, o := range page.Objects {
			g.Go(func() error {
				if !strings.HasPrefix(o.Key, t.prefix) { // never, as listed: but nothing else is deleted
					return fmt.Errorf("the listing returned %q", o.Key)
				}
				return del(gctx, o.Key)
			})
		}
		if err := g.Wait(); err != nil {
			return fmt.Errorf("remove %s: %w", t.prefix, err)
		}
		if !page.Truncated {
			return nil
		}
		marker = page.NextMarker
	}
}
