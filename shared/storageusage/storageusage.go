// Package storageusage measures the object storage each tenant uses and
// holds a tenant to its max_storage.
//
// Uploads go from clients to the object store directly (presigned URLs, STS
// credentials), so nothing of ours sees their sizes: Measure (usage-cron)
// lists each tenant's prefix page by page and sums it into
// tenant_storage_usage. A scan cut short by its deadline, or by a killed
// process, keeps its place (the last key counted) and its partial sums; the
// next run goes on from there. The figures a reader sees change only when a
// scan completes, never to half a tenant.
//
// The quota is enforced where uploads are granted (Check): once the last
// measurement reaches max_storage, no upload URL or upload credential is
// issued until files are deleted and a measurement shows it, and a form
// upload is granted no more than what is Left. Between two measurements a
// tenant can still go over by what it uploads meanwhile (several grants at
// once, PUT URLs and STS credentials, whose sizes the store cannot bound):
// the figure is as fresh as usage-cron's schedule (hourly).
package storageusage

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/unitenant/unitenant/shared/fault"
	"github.com/unitenant/unitenant/shared/objectstore"
)

// Usage is a tenant's storage as last measured.
type Usage struct {
	UsedBytes  int64      `json:"usedBytes"`
	Objects    int64      `json:"objectCount"`
	MeasuredAt *time.Time `json:"measuredAt"` // nil: never measured (the figures are 0)
	MaxStorage *int64     `json:"maxStorage"` // bytes; nil: unlimited
}

// Get reads tenantID's usage and quota (never measured: zero figures,
// MeasuredAt nil).
func Get(ctx context.Context, db *sql.DB, tenantID int64) (Usage, error) {
	var (
		u        Usage
		measured sql.NullTime
		max      sql.NullInt64
	)
	err := db.QueryRowContext(ctx, `SELECT COALESCE(u.used_bytes, 0), COALESCE(u.object_count, 0), u.measured_at, t.max_storage
		FROM tenants t LEFT JOIN tenant_storage_usage u ON u.tenant_id = t.id AND u.measured_at IS NOT NULL WHERE t.id = ?`, tenantID).
		Scan(&u.UsedBytes, &u.Objects, &measured, &max)
	if errors.Is(err, sql.ErrNoRows) {
		return u, fault.New(fault.NotFound, "tenant_not_found", "no tenant with id %d", tenantID)
	}
	if err != nil {
		return u, fmt.Errorf("storage usage of tenant %d: %w", tenantID, err)
	}
	if measured.Valid {
		at := measured.Time.UTC()
		u.MeasuredAt = &at
	}
	if max.Valid {
		u.MaxStorage = &max.Int64
	}
	return u, nil
}

// Full reports whether the tenant may not upload more: it has a quota and
// its last measurement reached it.
func (u Usage) Full() bool { return u.MaxStorage != nil && u.UsedBytes >= *u.MaxStorage }

// Left is what the tenant may still store as last measured: bytes, and
// false when it has no quota.
func (u Usage) Left() (int64, bool) {
	if u.MaxStorage == nil {
		return 0, false
	}
	return max(*u.MaxStorage-u.UsedBytes, 0), true
}

// Check refuses an upload grant for tenantID when it is Full, with 403
// storage_quota_exceeded naming the figures.
func Check(ctx context.Context, db *sql.DB, tenantID int64) error {
	_, err := CheckedUsage(ctx, db, tenantID)
	return err
}

// CheckedUsage is Check, returning the usage it read.
func CheckedUsage(ctx context.Context, db *sql.DB, tenantID int64) (Usage, error) {
	u, err := Get(ctx, db, tenantID)
	if err != nil {
		return u, err
	}
	if !u.Full() {
		return u, nil
	}
	return u, fault.New(fault.Forbidden, "storage_quota_exceeded",
		"the tenant's files take %d bytes of its %d (%s): delete some, or ask for a larger quota",
		u.UsedBytes, *u.MaxStorage, u.When())
}

// When says when the figures were measured, for a message: "measured
// <RFC 3339 time>", or "not measured yet" (a quota of 0 is full before
// any measurement).
func (u Usage) When() string {
	if u.MeasuredAt == nil {
		return "not measured yet"
	}
	return "measured " + u.MeasuredAt.Format(time.RFC3339)
}

// Options are Measure's settings.
type Options struct {
	// Every is how old a measurement must be before a tenant is measured
	// again (default DefaultEvery).
	Every time.Duration
	// PageSize is the objects listed per request (default and most
	// objectstore.MaxList).
	PageSize int
}

// DefaultEvery lets an hourly run measure every tenant each hour.
const DefaultEvery = 50 * time.Minute

// Result is what one Measure run did.
type Result struct {
	Measured int   `json:"measured"` // tenants whose scan completed
	Partial  int   `json:"partial"`  // tenants whose scan stopped at the deadline, to go on next run
	Pages    int   `json:"pages"`    // listing requests made
	Bytes    int64 `json:"bytes"`    // the completed tenants' bytes, together
}

// Measure scans the prefixes of the tenants that have objects (every status
// but purged) whose measurement is older than opts.Every, scans in progress
// first, then the never measured, then the oldest, until deadline. Two runs
// at once never mix their sums: each step is conditional on the place the
// run read, and a run that finds another moved it leaves that tenant.
func Measure(ctx context.Context, db *sql.DB, store *objectstore.Service, now time.Time, deadline time.Time, opts Options) (Result, error) {
	if opts.Every <= 0 {
		opts.Every = DefaultEvery
	}
	if opts.PageSize <= 0 || opts.PageSize > objectstore.MaxList {
		opts.PageSize = objectstore.MaxList
	}
	var res Result
	rows, err := db.QueryContext(ctx, `SELECT t.id, t.tenant_code FROM tenants t LEFT JOIN tenant_storage_usage u ON u.tenant_id = t.id
		WHERE t.status <> 'purged' AND (u.scan_marker IS NOT NULL OR u.measured_at IS NULL OR u.measured_at < ?)
		ORDER BY u.scan_marker IS NULL, u.measured_at IS NOT NULL, u.measured_at, t.id`, now.UTC().Add(-opts.Every))
	if err != nil {
		return res, fmt.Errorf("tenants to measure: %w", err)
	}
	type tenant struct {
		id   int64
		code string
	}
	var due []tenant
	for rows.Next() {
		var t tenant
		if err := rows.Scan(&t.id, &t.code); err != nil {
			rows.Close()
			return res, err
		}
		due = append(due, t)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return res, err
	}
	for _, t := range due {
		if !time.Now().Before(deadline) || ctx.Err() != nil {
			break
		}
		done, err := measure(ctx, db, store, t.id, t.code, deadline, opts.PageSize, &res)
		if err != nil {
			return res, fmt.Errorf("measure tenant %s: %w", t.code, err)
		}
		if !done {
			res.Partial++
		}
	}
	return res, nil
}

// scan is a scan's place: the last key counted ("" none yet) and the sums.
type scan struct {
	marker         sql.NullString
	bytes, objects int64
}

// measure goes on with tenant id's scan until it completes (true) or the
// deadline comes (false, its place saved).
func measure(ctx context.Context, db *sql.DB, store *objectstore.Service, id int64, code string, deadline time.Time, pageSize int, res *Result) (bool, error) {
	tenant, err := store.Tenant(code)
	if err != nil {
		return false, err
	}
	if _, err := db.ExecContext(ctx, "INSERT IGNORE INTO tenant_storage_usage (tenant_id) VALUES (?)", id); err != nil {
		return false, err
	}
	var s scan
	if err := db.QueryRowContext(ctx, "SELECT scan_marker, scan_bytes, scan_objects FROM tenant_storage_usage WHERE tenant_id = ?", id).
		Scan(&s.marker, &s.bytes, &s.objects); err != nil {
		return false, err
	}
	if !s.marker.Valid { // a new scan
		s.bytes, s.objects = 0, 0
	}
	for {
		if !time.Now().Before(deadline) || ctx.Err() != nil {
			return false, nil // the place is saved after every page
		}
		page, err := tenant.List(ctx, "", s.marker.String, pageSize)
		if err != nil {
			return false, err
		}
		res.Pages++
		next := s
		for _, o := range page.Objects {
			next.bytes += o.Size
			next.objects++
			next.marker = sql.NullString{String: o.Key, Valid: true}
		}
		if !page.Truncated {
			moved, err := step(ctx, db, id, s, `used_bytes = ?, object_count = ?, measured_at = NOW(3),
				scan_marker = NULL, scan_bytes = 0, scan_objects = 0, scan_started_at = NULL`, next.bytes, next.objects)
			if err != nil || !moved {
				return false, err
			}
			res.Measured++
			res.Bytes += next.bytes
			return true, nil
		}
		if page.NextMarker != "" {
			next.marker = sql.NullString{String: page.NextMarker, Valid: true}
		}
		if next.marker == s.marker {
			return false, fmt.Errorf("listing %s: a truncated page without a next marker", tenant.Prefix())
		}
		moved, err := step(ctx, db, id, s, `scan_marker = ?, scan_bytes = ?, scan_objects = ?, scan_started_at = COALESCE(scan_started_at, NOW(3))`,
			next.marker.String, next.bytes, next.objects)
		if err != nil || !moved {
			return false, err
		}
		s = next
	}
}

// step moves tenant id's scan from the place from to what set says, if it
// is still at from; false when another run moved it first. A page counted
// is saved even as the run is being stopped (ctx cancelled).
func step(ctx context.Context, db *sql.DB, id int64, from scan, set string, args ...any) (bool, error) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	args = append(args, id, from.marker, from.bytes, from.objects)
	r, err := db.ExecContext(ctx, "UPDATE tenant_storage_usage SET "+set+
		" WHERE tenant_id = ? AND scan_marker <=> ? AND scan_bytes = ? AND scan_objects = ?", args...)
	if err != nil {
		return false, err
	}
	n, err := r.RowsAffected()
	return n == 1, err
}
