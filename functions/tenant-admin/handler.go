package main

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/unitenant/unitenant/shared/auth"
	"github.com/unitenant/unitenant/shared/budget"
	"github.com/unitenant/unitenant/shared/fault"
	"github.com/unitenant/unitenant/shared/httpapi"
	"github.com/unitenant/unitenant/shared/idempotency"
	"github.com/unitenant/unitenant/shared/identity"
	"github.com/unitenant/unitenant/shared/lifecycle"
	"github.com/unitenant/unitenant/shared/logging"
	"github.com/unitenant/unitenant/shared/provisioning"
	"github.com/unitenant/unitenant/shared/secretbox"
	"github.com/unitenant/unitenant/shared/serverless"
	"github.com/unitenant/unitenant/shared/sqldb"
	"github.com/unitenant/unitenant/shared/storageusage"
	"github.com/unitenant/unitenant/shared/tenancy"
	"github.com/unitenant/unitenant/shared/tenantapp"
)

// Routes (admin tokens; operator reads, admin manages, super_admin deletes and purges):
//
//	GET    /api/admin/tenants                             list: ?status=&plan=&q=&page=&pageSize=
//	GET    /api/admin/tenants/{code}                      one: placement, tier, schema version, members, AI usage
//	PATCH  /api/admin/tenants/{code}                      update name, plan, limits, contact
//	POST   /api/admin/tenants/{code}/domains              add a custom domain {domain}
//	DELETE /api/admin/tenants/{code}/domains/{domain}     remove it
//	GET    /api/admin/tenants/{code}/members              members
//	GET    /api/admin/tenants/{code}/statistics           daily statistics: ?from=&to= (UTC days, default the last 30)
//	POST   /api/admin/tenants/{code}/members              bind a global user {phone, role}
//	PATCH  /api/admin/tenants/{code}/members/{userId}     change role {role}
//	DELETE /api/admin/tenants/{code}/members/{userId}     unbind
//	POST   /api/admin/tenants/{code}/suspend              {reason}
//	POST   /api/admin/tenants/{code}/resume
//	POST   /api/admin/tenants/{code}/delete               {reason}: a confirmation token is sent to the admin (super_admin)
//	POST   /api/admin/tenants/{code}/delete/confirm       {token}: soft delete, purge scheduled after the grace period (super_admin)
//	POST   /api/admin/tenants/{code}/restore              before the purge starts
//	POST   /api/admin/tenants/{code}/purge                make the purge due now (super_admin)
//	GET/POST /api/admin/webhooks, PATCH/DELETE /api/admin/webhooks/{id}   webhook endpoints (webhooks.go)
func newHandler(h *handler) http.Handler {
	rt := httpapi.NewRouter()
	read, manage, destroy := h.role("operator"), h.role("admin"), h.role("super_admin")
	rt.Handle("GET /api/admin/tenants", read(h.list))
	rt.Handle("GET /api/admin/tenants/{code}", read(h.get))
	rt.Handle("PATCH /api/admin/tenants/{code}", manage(h.update))
	rt.Handle("POST /api/admin/tenants/{code}/domains", manage(h.addDomain))
	rt.Handle("DELETE /api/admin/tenants/{code}/domains/{domain}", manage(h.removeDomain))
	rt.Handle("GET /api/admin/tenants/{code}/members", read(h.members))
	rt.Handle("GET /api/admin/tenants/{code}/statistics", read(h.statistics))
	rt.Handle("POST /api/admin/tenants/{code}/members", manage(h.bind))
	rt.Handle("PATCH /api/admin/tenants/{code}/members/{userId}", manage(h.setRole))
	rt.Handle("DELETE /api/admin/tenants/{code}/members/{userId}", manage(h.unbind))
	rt.Handle("POST /api/admin/tenants/{code}/suspend", manage(h.suspend))
	rt.Handle("POST /api/admin/tenants/{code}/resume", manage(h.resume))
	rt.Handle("POST /api/admin/tenants/{code}/delete", destroy(h.requestDeletion))
	rt.Handle("POST /api/admin/tenants/{code}/delete/confirm", destroy(h.confirmDeletion))
	rt.Handle("POST /api/admin/tenants/{code}/restore", manage(h.restore))
	rt.Handle("POST /api/admin/tenants/{code}/purge", destroy(h.purge))
	rt.Handle("GET /api/admin/webhooks", read(h.listWebhooks))
	rt.Handle("POST /api/admin/webhooks", manage(h.addWebhook))
	rt.Handle("PATCH /api/admin/webhooks/{id}", manage(h.setWebhookStatus))
	rt.Handle("DELETE /api/admin/webhooks/{id}", manage(h.deleteWebhook))
	return httpapi.Chain(withErrors(rt, h.log), auth.Require(h.verifier, h.log, auth.AudienceAdmin))
}

// Notifier delivers a message to an admin (e-mail, or the development
// outbox): deletion confirmation tokens go this way, never in a response.
type Notifier interface {
	SendToAdmin(ctx context.Context, adminID int64, subject, body string) (where string, err error)
	// AdminChannel says where SendToAdmin would deliver, sending nothing.
	AdminChannel(ctx context.Context, adminID int64) (where string, err error)
}

type handler struct {
	db       *sql.DB
	life     *lifecycle.Service
	tenants  *tenancy.Service // reaches tenant databases for membership changes
	notifier Notifier
	box      *secretbox.Box // seals webhook secrets
	idem     *idempotency.Store
	verifier *auth.Verifier
	log      *slog.Logger
	now      func() time.Time
	// allowPrivateURLs lets webhook URLs name private and loopback
	// addresses: NOTIFY_ALLOW_PRIVATE_URLS, the setting the dispatcher
	// delivers by (on in development only, by default).
	allowPrivateURLs bool
	// phones is PHONE_PATTERN, which tenant creation checks contact phones
	// by (nil: identity.DefaultPhonePattern).
	phones *regexp.Regexp
}

var defaultPhones = regexp.MustCompile(identity.DefaultPhonePattern)

func (h *handler) phonePattern() *regexp.Regexp {
	if h.phones != nil {
		return h.phones
	}
	return defaultPhones
}

// endpoint is a route's logic: its result, or an error for the envelope.
type endpoint func(r *http.Request, c *auth.Claims) (int, any, error)

// role lets through admins whose token and account, as it is now, give at
// least the role least: an admin deleted, disabled or demoted since the
// token was issued acts as they are now, not until the token expires.
func (h *handler) role(least string) func(endpoint) http.Handler {
	return func(fn endpoint) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			c, _ := auth.FromContext(r.Context())
			if err := identity.RequireAdmin(r.Context(), h.db, c, least); err != nil {
				fail(w, r, err)
				return
			}
			// A tenant code is matched by the column's collation, which folds
			// case, width and trailing spaces: only a well-formed code may
			// reach a query, so "K001" or "k001 " never acts on k001.
			if code := r.PathValue("code"); code != "" && !tenancy.ValidCode(code) {
				fail(w, r, errNoTenant(code))
				return
			}
			status, data, err := fn(r, c)
			if err != nil {
				fail(w, r, err)
				return
			}
			if rp, ok := data.(replayed); ok {
				rp.write(w)
				return
			}
			httpapi.JSON(w, r, status, data)
		})
	}
}

func errNoTenant(code string) error {
	return fault.New(fault.NotFound, "tenant_not_found", "no tenant %q", code)
}

// replayed is an answer given before to a request with the same
// Idempotency-Key, which an endpoint returns as its data to have it written
// again as it was.
type replayed struct {
	status int
	body   []byte // a whole envelope
}

func (rp replayed) write(w http.ResponseWriter) {
	h := w.Header()
	h.Set("Content-Type", "application/json; charset=utf-8")
	h.Set("Cache-Control", "no-store") // as httpapi's answers: it may hold a secret
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Idempotent-Replayed", "true")
	w.WriteHeader(rp.status)
	_, _ = w.Write(append(rp.body, '\n'))
}

type errKey struct{}

// withErrors lets the route functions share one logger for failures.
func withErrors(next http.Handler, log *slog.Logger) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), errKey{}, log)))
	})
}

func fail(w http.ResponseWriter, r *http.Request, err error) {
	log, _ := r.Context().Value(errKey{}).(*slog.Logger)
	httpapi.Fail(w, r, log, err)
}

func actor(r *http.Request, c *auth.Claims) lifecycle.Actor {
	return lifecycle.Actor{Type: "admin", ID: c.SubjectID(), Name: c.Role, IP: serverless.ClientIP(r),
		UserAgent: r.UserAgent(), RequestID: logging.RequestID(r.Context())}
}

// TenantView is a tenant as the admin API shows it.
type TenantView struct {
	ID            int64      `json:"id"`
	Code          string     `json:"tenantCode"`
	Name          string     `json:"name"`
	Subdomain     string     `json:"subdomain"`
	Status        string     `json:"status"`
	PlanType      string     `json:"planType"`
	MaxUsers      *int64     `json:"maxUsers"`
	MaxStorage    *int64     `json:"maxStorage"`
	ContactName   *string    `json:"contactName"`
	ContactPhone  *string    `json:"contactPhone"`
	ContactEmail  *string    `json:"contactEmail"`
	StoragePrefix *string    `json:"storagePrefix"`
	CreatedAt     time.Time  `json:"createdAt"`
	DeletedAt     *time.Time `json:"deletedAt,omitempty"`
	PurgeAt       *time.Time `json:"scheduledDeletionAt,omitempty"`
}

const tenantColumns = `t.id, t.tenant_code, t.tenant_name, t.subdomain, t.status, t.plan_type, t.max_users, t.max_storage,
	t.contact_name, t.contact_phone, t.contact_email, t.storage_prefix, t.created_at, t.deleted_at, t.scheduled_deletion_at`

func scanTenant(s interface{ Scan(...any) error }) (TenantView, error) {
	var v TenantView
	var maxUsers, maxStorage sql.NullInt64
	var cn, cp, ce, sp sql.NullString
	var del, purge sql.NullTime
	err := s.Scan(&v.ID, &v.Code, &v.Name, &v.Subdomain, &v.Status, &v.PlanType, &maxUsers, &maxStorage, &cn, &cp, &ce, &sp, &v.CreatedAt, &del, &purge)
	if maxUsers.Valid {
		v.MaxUsers = &maxUsers.Int64
	}
	if maxStorage.Valid {
		v.MaxStorage = &maxStorage.Int64
	}
	v.ContactName, v.ContactPhone, v.ContactEmail, v.StoragePrefix = str(cn), str(cp), str(ce), str(sp)
	if del.Valid {
		v.DeletedAt = &del.Time
	}
	if purge.Valid {
		v.PurgeAt = &purge.Time
	}
	return v, err
}

func str(s sql.NullString) *string {
	if !s.Valid {
		return nil
	}
	return &s.String
}

func (h *handler) list(r *http.Request, _ *auth.Claims) (int, any, error) {
	q := r.URL.Query()
	page, err := tenantapp.ParsePage(q)
	if err != nil {
		return 0, nil, err
	}
	where, args := []string{"1 = 1"}, []any{}
	if s := q.Get("status"); s != "" {
		where, args = append(where, "t.status = ?"), append(args, s)
	}
	if p := q.Get("plan"); p != "" {
		where, args = append(where, "t.plan_type = ?"), append(args, p)
	}
	if s := strings.TrimSpace(q.Get("q")); s != "" {
		like := "%" + strings.NewReplacer(`\`, `\\`, "%", `\%`, "_", `\_`).Replace(s) + "%"
		where = append(where, "(t.tenant_code LIKE ? OR t.tenant_name LIKE ? OR t.contact_name LIKE ? OR t.contact_phone LIKE ? OR t.contact_email LIKE ?)")
		args = append(args, like, like, like, like, like)
	}
	cond := strings.Join(where, " AND ")
	var total int64
	if err := h.db.QueryRowContext(r.Context(), "SELECT COUNT(*) FROM tenants t WHERE "+cond, args...).Scan(&total); err != nil {
		return 0, nil, fmt.Errorf("count tenants: %w", err)
	}
	rows, err := h.db.QueryContext(r.Context(), "SELECT "+tenantColumns+" FROM tenants t WHERE "+cond+" ORDER BY t.id LIMIT ? OFFSET ?",
		append(args, page.Size, (page.Number-1)*page.Size)...)
	if err != nil {
		return 0, nil, fmt.Errorf("list tenants: %w", err)
	}
	defer rows.Close()
	items := []TenantView{}
	for rows.Next() {
		v, err := scanTenant(rows)
		if err != nil {
			return 0, nil, err
		}
		items = append(items, v)
	}
	return http.StatusOK, map[string]any{"items": items, "page": page.Number, "pageSize": page.Size, "total": total}, rows.Err()
}

// TenantDetail adds placement and usage to the view.
type TenantDetail struct {
	TenantView
	Placement *struct {
		Cluster       string `json:"cluster"`
		Database      string `json:"database"`
		Tier          string `json:"tier"`
		SchemaVersion int    `json:"schemaVersion"`
	} `json:"placement"`
	Domains      []string `json:"domains"`
	MembersCount int      `json:"membersCount"`
	AIUsage      struct {
		Month  string `json:"month"`
		Calls  int64  `json:"calls"`
		Tokens int64  `json:"tokens"`
		// Cost is the exact decimal (budget.Total's six places), as a JSON
		// number: a float64 would lose micro-units of a large sum.
		Cost json.Number `json:"cost"`
	} `json:"aiUsageThisMonth"`
	// Storage is the tenant's object storage as usage-cron last measured it
	// (measuredAt null: not yet), beside its maxStorage.
	Storage storageusage.Usage `json:"storage"`
}

func (h *handler) tenant(ctx context.Context, code string) (TenantView, error) {
	if !tenancy.ValidCode(code) { // the collation would match "K001" or "k001 " to k001
		return TenantView{}, errNoTenant(code)
	}
	v, err := scanTenant(h.db.QueryRowContext(ctx, "SELECT "+tenantColumns+" FROM tenants t WHERE t.tenant_code = ?", code))
	if errors.Is(err, sql.ErrNoRows) {
		return v, errNoTenant(code)
	}
	return v, err
}

// lockChangeable reads tenant code FOR UPDATE in tx, for a change to its
// settings or domains, and refuses one that is not running: a tenant being
// set up (its placement follows the plan it was created with), one deleted
// (it is restored first; a domain added meanwhile would route to it once
// restored) or purged. Lifecycle transitions lock the row too, so a
// deletion waits for the change, or the change sees the deletion.
func (h *handler) lockChangeable(ctx context.Context, tx *sql.Tx, code string) (TenantView, error) {
	if !tenancy.ValidCode(code) {
		return TenantView{}, errNoTenant(code)
	}
	v, err := scanTenant(tx.QueryRowContext(ctx, "SELECT "+tenantColumns+" FROM tenants t WHERE t.tenant_code = ? FOR UPDATE", code))
	if errors.Is(err, sql.ErrNoRows) {
		return v, errNoTenant(code)
	}
	if err != nil {
		return v, fmt.Errorf("lock tenant %s: %w", code, err)
	}
	switch v.Status {
	case tenancy.StatusActive, tenancy.StatusSuspended:
		return v, nil
	case tenancy.StatusDeleted, tenancy.StatusPurged:
		// tenancy.ErrDeleted, as member changes refuse it, saying what to do.
		e := *tenancy.ErrDeleted
		e.Message = fmt.Sprintf("tenant %s is deleted: restore it before changing it", v.Code)
		if v.Status == tenancy.StatusPurged {
			e.Message = fmt.Sprintf("tenant %s is purged: it can no longer be changed", v.Code)
		}
		e.Fields = map[string]string{"status": v.Status}
		return v, &e
	}
	return v, tenancy.Gate(&tenancy.Tenant{Code: v.Code, Status: v.Status}) // provisioning: 503, retry
}

func (h *handler) get(r *http.Request, _ *auth.Claims) (int, any, error) {
	ctx := r.Context()
	v, err := h.tenant(ctx, r.PathValue("code"))
	if err != nil {
		return 0, nil, err
	}
	d := TenantDetail{TenantView: v, Domains: []string{}}
	var cluster, dbName, tier sql.NullString
	var version sql.NullInt64
	err = h.db.QueryRowContext(ctx, `SELECT c.name, d.database_name, d.tier, d.schema_version FROM tenant_databases d
		JOIN db_clusters c ON c.id = d.cluster_id WHERE d.tenant_id = ?`, v.ID).Scan(&cluster, &dbName, &tier, &version)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return 0, nil, fmt.Errorf("placement: %w", err)
	}
	if dbName.Valid {
		d.Placement = &struct {
			Cluster       string `json:"cluster"`
			Database      string `json:"database"`
			Tier          string `json:"tier"`
			SchemaVersion int    `json:"schemaVersion"`
		}{cluster.String, dbName.String, tier.String, int(version.Int64)}
	}
	rows, err := h.db.QueryContext(ctx, "SELECT domain FROM tenant_domains WHERE tenant_id = ? ORDER BY domain", v.ID)
	if err != nil {
		return 0, nil, err
	}
	for rows.Next() {
		var dom string
		if rows.Scan(&dom) == nil {
			d.Domains = append(d.Domains, dom)
		}
	}
	rows.Close()
	if err := h.db.QueryRowContext(ctx, "SELECT COUNT(*) FROM global_user_tenant_relations WHERE tenant_id = ? AND status = 'active'", v.ID).
		Scan(&d.MembersCount); err != nil {
		return 0, nil, err
	}
	now := h.now().UTC()
	first := time.Date(now.Year(), now.Month(), 1, 0, 0, 0, 0, time.UTC)
	d.AIUsage.Month = first.Format("2006-01")
	var cost string
	if err := h.db.QueryRowContext(ctx, `SELECT COALESCE(SUM(total_calls), 0), COALESCE(SUM(total_tokens), 0), COALESCE(SUM(total_cost), 0)
		FROM tenant_ai_usage_summary WHERE tenant_id = ? AND `+"`date`"+` >= ? AND `+"`date`"+` < ?`,
		v.ID, first.Format(time.DateOnly), first.AddDate(0, 1, 0).Format(time.DateOnly)).
		Scan(&d.AIUsage.Calls, &d.AIUsage.Tokens, &cost); err != nil {
		return 0, nil, fmt.Errorf("AI usage: %w", err)
	}
	total, err := budget.ParseTotal(cost)
	if err != nil {
		return 0, nil, fmt.Errorf("AI usage cost: %w", err)
	}
	d.AIUsage.Cost = json.Number(total.String())
	if d.Storage, err = storageusage.Get(ctx, h.db, v.ID); err != nil {
		return 0, nil, err
	}
	return http.StatusOK, d, nil
}

type updateInput struct {
	Name         *string  `json:"name"`
	PlanType     *string  `json:"planType"`
	MaxUsers     optLimit `json:"maxUsers"`
	MaxStorage   optLimit `json:"maxStorage"`
	ContactName  *string  `json:"contactName"`
	ContactPhone *string  `json:"contactPhone"`
	ContactEmail *string  `json:"contactEmail"`
}

// optLimit is a limit an update may name: absent leaves it, null lifts it
// (unlimited), a number sets it.
type optLimit struct {
	named bool
	v     *int64
}

func (o *optLimit) UnmarshalJSON(b []byte) error {
	o.named = true
	return json.Unmarshal(b, &o.v)
}

var plans = map[string]bool{"basic": true, "standard": true, "premium": true, "enterprise": true}

func (h *handler) update(r *http.Request, c *auth.Claims) (int, any, error) {
	var in updateInput
	if err := httpapi.Decode(r, &in); err != nil {
		return 0, nil, err
	}
	bad := map[string]string{}
	set, args := []string{}, []any{}
	text := func(field, col string, v *string, max int) {
		if v == nil {
			return
		}
		if s := strings.TrimSpace(*v); s == "" || len([]rune(s)) > max {
			bad[field] = fmt.Sprintf("must be 1 to %d characters", max)
			return
		}
		set, args = append(set, col+" = ?"), append(args, strings.TrimSpace(*v))
	}
	// A contact is checked as tenant creation checks it, as written: it is
	// required there, so it cannot be cleared here either.
	contact := func(field, col string, v *string, problem func(string) string) {
		if v == nil {
			return
		}
		if p := problem(*v); p != "" {
			bad[field] = p
			return
		}
		set, args = append(set, col+" = ?"), append(args, *v)
	}
	text("name", "tenant_name", in.Name, 255)
	text("contactName", "contact_name", in.ContactName, 100)
	contact("contactPhone", "contact_phone", in.ContactPhone, func(s string) string {
		return provisioning.ContactPhoneProblem(h.phonePattern(), s)
	})
	contact("contactEmail", "contact_email", in.ContactEmail, provisioning.ContactEmailProblem)
	if in.PlanType != nil {
		if !plans[*in.PlanType] {
			bad["planType"] = "must be basic, standard, premium or enterprise"
		} else {
			set, args = append(set, "plan_type = ?"), append(args, *in.PlanType)
		}
	}
	limit := func(field, col string, o optLimit, max int64) {
		switch {
		case !o.named:
		case o.v == nil:
			set = append(set, col+" = NULL")
		case *o.v < 0 || *o.v > max:
			bad[field] = fmt.Sprintf("must be 0 to %d, or null for no limit", max)
		default:
			set, args = append(set, col+" = ?"), append(args, *o.v)
		}
	}
	limit("maxUsers", "max_users", in.MaxUsers, math.MaxUint32) // INT UNSIGNED
	limit("maxStorage", "max_storage", in.MaxStorage, math.MaxInt64)
	if len(bad) > 0 {
		return 0, nil, &fault.Error{Kind: fault.Invalid, Code: "invalid_input", Message: "invalid fields", Fields: bad}
	}
	if len(set) == 0 {
		return 0, nil, fault.New(fault.Invalid, "invalid_input", "nothing to update")
	}
	ctx := r.Context()
	var after TenantView
	err := sqldb.InTxRetry(ctx, h.db, func(tx *sql.Tx) error {
		before, err := h.lockChangeable(ctx, tx, r.PathValue("code"))
		if err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, "UPDATE tenants SET "+strings.Join(set, ", ")+" WHERE id = ?",
			append(slices.Clip(args), before.ID)...); err != nil {
			return fmt.Errorf("update tenant: %w", err)
		}
		if after, err = scanTenant(tx.QueryRowContext(ctx, "SELECT "+tenantColumns+" FROM tenants t WHERE t.id = ?", before.ID)); err != nil {
			return fmt.Errorf("read tenant %s: %w", before.Code, err)
		}
		return lifecycle.Audit(ctx, tx, actor(r, c), "update", before.ID, before.Code, before, after, "")
	})
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, after, nil
}

type reasonInput struct {
	Reason string `json:"reason"`
}

// maxReason is the length of the reason columns (VARCHAR(500)).
const maxReason = 500

// decodeReason reads a {reason} body, refusing a reason longer than the
// columns that keep it.
func decodeReason(r *http.Request) (reasonInput, error) {
	var in reasonInput
	if err := httpapi.Decode(r, &in); err != nil {
		return in, err
	}
	if utf8.RuneCountInString(in.Reason) > maxReason {
		return in, fault.Field("invalid_input", "reason", fmt.Sprintf("must be at most %d characters", maxReason))
	}
	return in, nil
}

func (h *handler) suspend(r *http.Request, c *auth.Claims) (int, any, error) {
	in, err := decodeReason(r)
	if err != nil {
		return 0, nil, err
	}
	t, err := h.life.Suspend(r.Context(), r.PathValue("code"), actor(r, c), in.Reason)
	return http.StatusOK, t, err
}

func (h *handler) resume(r *http.Request, c *auth.Claims) (int, any, error) {
	t, err := h.life.Resume(r.Context(), r.PathValue("code"), actor(r, c))
	return http.StatusOK, t, err
}

func (h *handler) requestDeletion(r *http.Request, c *auth.Claims) (int, any, error) {
	in, err := decodeReason(r)
	if err != nil {
		return 0, nil, err
	}
	code := r.PathValue("code")
	// The token reaches the admin only through the notification: when it
	// cannot be delivered, refuse before the request is recorded and
	// announced (a pending request nobody can confirm, a tenant.deletion_requested
	// event for it).
	if _, err := h.notifier.AdminChannel(r.Context(), c.SubjectID()); err != nil {
		return 0, nil, fmt.Errorf("deliver the confirmation token: %w", err)
	}
	token, expires, err := h.life.RequestDeletion(r.Context(), code, actor(r, c), in.Reason)
	if err != nil {
		return 0, nil, err
	}
	body := fmt.Sprintf("Tenant %s will be deleted once you confirm.\n\nConfirmation token: %s\n\n"+
		"POST /api/admin/tenants/%s/delete/confirm {\"token\": \"...\"} before %s. After confirmation the tenant is kept %s and can be restored until it is purged.",
		code, token, code, expires.Format(time.RFC3339), lifecycle.DefaultGrace)
	where, err := h.notifier.SendToAdmin(r.Context(), c.SubjectID(), "Confirm the deletion of tenant "+code, body)
	if err != nil {
		return 0, nil, fmt.Errorf("deliver the confirmation token: %w", err)
	}
	return http.StatusAccepted, map[string]any{"tenantCode": code, "confirmationSentTo": where, "expiresAt": expires,
		"message": "a confirmation token was sent to you; confirm with POST .../delete/confirm"}, nil
}

type tokenInput struct {
	Token string `json:"token"`
}

func (h *handler) confirmDeletion(r *http.Request, c *auth.Claims) (int, any, error) {
	var in tokenInput
	if err := httpapi.Decode(r, &in); err != nil {
		return 0, nil, err
	}
	t, err := h.life.ConfirmDeletion(r.Context(), r.PathValue("code"), in.Token, actor(r, c))
	return http.StatusOK, t, err
}

func (h *handler) restore(r *http.Request, c *auth.Claims) (int, any, error) {
	t, err := h.life.Restore(r.Context(), r.PathValue("code"), actor(r, c))
	return http.StatusOK, t, err
}

func (h *handler) purge(r *http.Request, c *auth.Claims) (int, any, error) {
	t, err := h.life.Purge(r.Context(), r.PathValue("code"), actor(r, c))
	return http.StatusOK, t, err
}

type domainInput struct {
	Domain string `json:"domain"`
}

func (h *handler) addDomain(r *http.Request, c *auth.Claims) (int, any, error) {
	var in domainInput
	if err := httpapi.Decode(r, &in); err != nil {
		return 0, nil, err
	}
	ctx := r.Context()
	dom := strings.ToLower(strings.TrimSuffix(strings.TrimSpace(in.Domain), "."))
	var t TenantView
	err := sqldb.InTxRetry(ctx, h.db, func(tx *sql.Tx) error {
		var err error
		if t, err = h.lockChangeable(ctx, tx, r.PathValue("code")); err != nil {
			return err
		}
		if !tenancy.ValidHostname(dom) || strings.HasSuffix(dom, "."+h.tenants.Hosts.BaseDomain) || dom == h.tenants.Hosts.BaseDomain ||
			!h.routable(dom) {
			return fault.Field("invalid_input", "domain", "must be a host name outside the base domain and the platform's hosts, e.g. school.example.com")
		}
		_, err = tx.ExecContext(ctx, "INSERT INTO tenant_domains (tenant_id, domain, domain_type) VALUES (?, ?, 'custom')", t.ID, dom)
		if sqldb.IsDuplicate(err) {
			return fault.New(fault.Conflict, "domain_taken", "domain %s is registered already", dom)
		}
		if err != nil {
			return fmt.Errorf("add domain: %w", err)
		}
		return lifecycle.Audit(ctx, tx, actor(r, c), "domain.add", t.ID, t.Code, nil, map[string]string{"domain": dom}, "")
	})
	if err != nil {
		return 0, nil, err
	}
	return http.StatusCreated, map[string]string{"tenantCode": t.Code, "domain": dom}, nil
}

// routable reports whether tenancy would look dom up as a custom domain:
// an IP address or a platform host (a gateway's own domain) never is, so
// registering one would reserve a name that routes nowhere.
func (h *handler) routable(dom string) bool {
	if net.ParseIP(dom) != nil {
		return false
	}
	for _, p := range h.tenants.Hosts.Platform {
		if dom == p || strings.HasPrefix(p, ".") && strings.HasSuffix(dom, p) {
			return false
		}
	}
	return true
}

func (h *handler) removeDomain(r *http.Request, c *auth.Claims) (int, any, error) {
	ctx := r.Context()
	t, err := h.tenant(ctx, r.PathValue("code"))
	if err != nil {
		return 0, nil, err
	}
	dom := strings.ToLower(r.PathValue("domain"))
	if !tenancy.ValidHostname(dom) { // the collation would match "a.example.com " to a.example.com
		return 0, nil, fault.New(fault.NotFound, "domain_not_found", "tenant %s has no domain %q", t.Code, dom)
	}
	res, err := h.db.ExecContext(ctx, "DELETE FROM tenant_domains WHERE tenant_id = ? AND domain = ?", t.ID, dom)
	if err != nil {
		return 0, nil, fmt.Errorf("remove domain: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return 0, nil, fault.New(fault.NotFound, "domain_not_found", "tenant %s has no domain %s", t.Code, dom)
	}
	if err := lifecycle.Audit(ctx, h.db, actor(r, c), "domain.remove", t.ID, t.Code, map[string]string{"domain": dom}, nil, ""); err != nil {
		return 0, nil, err
	}
	return http.StatusOK, map[string]string{"tenantCode": t.Code, "domain": dom, "removed": "true"}, nil
}

// Member is one membership as the admin API shows it.
type Member struct {
	GlobalUserID int64      `json:"globalUserId"`
	Phone        string     `json:"phone"`
	RealName     *string    `json:"realName"`
	Role         string     `json:"role"`
	Status       string     `json:"status"`
	LastLoginAt  *time.Time `json:"lastLoginAt"`
	LoginCount   int        `json:"loginCount"`
}

func (h *handler) members(r *http.Request, _ *auth.Claims) (int, any, error) {
	ctx := r.Context()
	t, err := h.tenant(ctx, r.PathValue("code"))
	if err != nil {
		return 0, nil, err
	}
	rows, err := h.db.QueryContext(ctx, `SELECT g.id, g.phone, g.real_name, r.role_in_tenant, r.status, r.last_login_at, r.login_count
		FROM global_user_tenant_relations r JOIN global_users g ON g.id = r.global_user_id WHERE r.tenant_id = ? ORDER BY g.id`, t.ID)
	if err != nil {
		return 0, nil, fmt.Errorf("members: %w", err)
	}
	defer rows.Close()
	out := []Member{}
	for rows.Next() {
		var m Member
		var name sql.NullString
		var last sql.NullTime
		if err := rows.Scan(&m.GlobalUserID, &m.Phone, &name, &m.Role, &m.Status, &last, &m.LoginCount); err != nil {
			return 0, nil, err
		}
		m.RealName = str(name)
		if last.Valid {
			m.LastLoginAt = &last.Time
		}
		out = append(out, m)
	}
	return http.StatusOK, map[string]any{"items": out}, rows.Err()
}

// DayStatistics is one day of a tenant's tenant_statistics, as usage-cron
// rolls it up (a day it has not rolled up yet is absent).
type DayStatistics struct {
	Date        string `json:"date"`
	UserCount   int    `json:"userCount"`   // active memberships (at the day's end once it is over)
	ActiveUsers int    `json:"activeUsers"` // members who entered the tenant or kept a session in it that day
	LoginCount  int    `json:"loginCount"`  // entries into the tenant
	AICalls     int64  `json:"aiCalls"`
	AITokens    int64  `json:"aiTokens"`
	AICost      string `json:"aiCost"`
}

// maxStatisticsDays bounds one statistics request.
const maxStatisticsDays = 366

func (h *handler) statistics(r *http.Request, _ *auth.Claims) (int, any, error) {
	ctx := r.Context()
	q := r.URL.Query()
	to := h.now().UTC()
	day := func(field string, def time.Time) (time.Time, error) {
		v := q.Get(field)
		if v == "" {
			return def, nil
		}
		d, err := time.Parse(time.DateOnly, v)
		if err != nil {
			return d, fault.Field("invalid_date", field, "must be a date as 2006-01-02")
		}
		return d, nil
	}
	to, err := day("to", time.Date(to.Year(), to.Month(), to.Day(), 0, 0, 0, 0, time.UTC))
	if err != nil {
		return 0, nil, err
	}
	from, err := day("from", to.AddDate(0, 0, -29))
	if err != nil {
		return 0, nil, err
	}
	switch {
	case from.After(to):
		return 0, nil, fault.Field("invalid_range", "from", "must not be after to")
	case to.Sub(from) >= maxStatisticsDays*24*time.Hour:
		return 0, nil, fault.Field("invalid_range", "from", fmt.Sprintf("at most %d days at a time", maxStatisticsDays))
	}
	t, err := h.tenant(ctx, r.PathValue("code"))
	if err != nil {
		return 0, nil, err
	}
	rows, err := h.db.QueryContext(ctx, `SELECT DATE_FORMAT(stat_date, '%Y-%m-%d'), user_count, active_users, login_count, ai_calls, ai_tokens, ai_cost
		FROM tenant_statistics WHERE tenant_id = ? AND stat_date BETWEEN ? AND ? ORDER BY stat_date`,
		t.ID, from.Format(time.DateOnly), to.Format(time.DateOnly))
	if err != nil {
		return 0, nil, fmt.Errorf("statistics: %w", err)
	}
	defer rows.Close()
	out := []DayStatistics{}
	for rows.Next() {
		var d DayStatistics
		if err := rows.Scan(&d.Date, &d.UserCount, &d.ActiveUsers, &d.LoginCount, &d.AICalls, &d.AITokens, &d.AICost); err != nil {
			return 0, nil, err
		}
		out = append(out, d)
	}
	return http.StatusOK, map[string]any{"from": from.Format(time.DateOnly), "to": to.Format(time.DateOnly), "days": out}, rows.Err()
}

type memberInput struct {
	Phone        string `json:"phone"`
	GlobalUserID int64  `json:"globalUserId"`
	Role         string `json:"role"`
}

// withTenantDB runs fn on a connection to the tenant's database.
func (h *handler) withTenantDB(ctx context.Context, code string, fn func(t *tenancy.Tenant, conn *sql.Conn) error) error {
	h.tenants.Registry.Invalidate(code) // membership changes must see the current placement
	t, err := h.tenants.Registry.ByCode(ctx, code)
	if err != nil {
		return err
	}
	// Members change in a tenant that runs (active or suspended), not in
	// one being set up (no database yet) nor in one deleted (its database
	// awaits its purge, or is gone).
	if t.Status != tenancy.StatusActive && t.Status != tenancy.StatusSuspended {
		return tenancy.Gate(t)
	}
	conn, err := h.tenants.Router.Conn(ctx, t)
	if err != nil {
		return err
	}
	defer conn.Close()
	return fn(t, conn)
}

// connTx adapts a pinned connection to tenantapp.TxDB.
type connTx struct{ *sql.Conn }

func (c connTx) BeginTx(ctx context.Context, o *sql.TxOptions) (*sql.Tx, error) {
	return c.Conn.BeginTx(ctx, o)
}

func (h *handler) memberChange(r *http.Request, c *auth.Claims, gid int64, phone, role string, set bool) (int, any, error) {
	ctx := r.Context()
	code := r.PathValue("code")
	if role == "" {
		return 0, nil, fault.Field("invalid_input", "role", "is required")
	}
	var realName sql.NullString
	q, arg := "SELECT id, phone, real_name FROM global_users WHERE id = ?", any(gid)
	if gid == 0 {
		q, arg = "SELECT id, phone, real_name FROM global_users WHERE phone = ?", phone
	}
	var found string
	if err := h.db.QueryRowContext(ctx, q, arg).Scan(&gid, &found, &realName); errors.Is(err, sql.ErrNoRows) ||
		err == nil && phone != "" && found != phone { // the collation matches "13722223333 " to 13722223333
		return 0, nil, fault.New(fault.NotFound, "user_not_found", "no global user %v", arg)
	} else if err != nil {
		return 0, nil, err
	}
	phone = found
	var res tenantapp.BindResult
	var previous string // the member's role before a change
	err := h.withTenantDB(ctx, code, func(t *tenancy.Tenant, conn *sql.Conn) error {
		b := tenantapp.Binding{GlobalUserID: gid, Phone: phone, RealName: realName.String, TenantID: t.ID, TenantCode: t.Code, Role: role}
		var err error
		if set {
			// A role is changed for a member; PATCH never makes one (POST does).
			var status string
			err = h.db.QueryRowContext(ctx, "SELECT status, role_in_tenant FROM global_user_tenant_relations WHERE tenant_id = ? AND global_user_id = ?",
				t.ID, gid).Scan(&status, &previous)
			if errors.Is(err, sql.ErrNoRows) || err == nil && status != "active" {
				return fault.New(fault.NotFound, "not_a_member", "user %d is not a member of tenant %s", gid, t.Code)
			}
			if err != nil {
				return fmt.Errorf("membership of user %d: %w", gid, err)
			}
			res, err = tenantapp.SetRole(ctx, h.db, connTx{conn}, b)
		} else {
			res, err = tenantapp.Bind(ctx, h.db, connTx{conn}, b)
		}
		if err != nil {
			return err
		}
		after := map[string]any{"globalUserId": gid, "role": role}
		if set {
			// A role change is its own action, from the role the member had.
			return lifecycle.Audit(ctx, h.db, actor(r, c), "member.role", t.ID, t.Code,
				map[string]any{"globalUserId": gid, "role": previous}, after, "")
		}
		return lifecycle.Audit(ctx, h.db, actor(r, c), "member.bind", t.ID, t.Code, nil, after, "")
	})
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, map[string]any{"globalUserId": gid, "role": role, "result": res}, nil
}

func (h *handler) bind(r *http.Request, c *auth.Claims) (int, any, error) {
	var in memberInput
	if err := httpapi.Decode(r, &in); err != nil {
		return 0, nil, err
	}
	if in.Phone == "" && in.GlobalUserID == 0 {
		return 0, nil, fault.Field("invalid_input", "phone", "phone or globalUserId is required")
	}
	return h.memberChange(r, c, in.GlobalUserID, in.Phone, in.Role, false)
}

func userID(r *http.Request) (int64, error) {
	id, err := strconv.ParseInt(r.PathValue("userId"), 10, 64)
	if err != nil || id <= 0 {
		return 0, fault.Field("invalid_id", "userId", "must be a positive integer")
	}
	return id, nil
}

func (h *handler) setRole(r *http.Request, c *auth.Claims) (int, any, error) {
	id, err := userID(r)
	if err != nil {
		return 0, nil, err
	}
	var in struct {
		Role string `json:"role"`
	}
	if err := httpapi.Decode(r, &in); err != nil {
		return 0, nil, err
	}
	return h.memberChange(r, c, id, "", in.Role, true)
}

func (h *handler) unbind(r *http.Request, c *auth.Claims) (int, any, error) {
	id, err := userID(r)
	if err != nil {
		return 0, nil, err
	}
	ctx := r.Context()
	err = h.withTenantDB(ctx, r.PathValue("code"), func(t *tenancy.Tenant, conn *sql.Conn) error {
		if err := tenantapp.Unbind(ctx, h.db, conn, t.ID, id); err != nil {
			return err
		}
		return lifecycle.Audit(ctx, h.db, actor(r, c), "member.unbind", t.ID, t.Code, map[string]int64{"globalUserId": id}, nil, "")
	})
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, map[string]any{"globalUserId": id, "removed": true}, nil
}
