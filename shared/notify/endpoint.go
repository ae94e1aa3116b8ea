package notify

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/unitenant/unitenant/shared/fault"
	"github.com/unitenant/unitenant/shared/secretbox"
	"github.com/unitenant/unitenant/shared/sqldb"
)

// EventTypes lists every event type an endpoint can subscribe to: the
// lifecycle events in lifecycle order, then the webhooks' own. Every type
// Emit is given belongs here, or no endpoint could ask for it alone.
var EventTypes = []string{
	TenantCreated, TenantSuspended, TenantResumed, TenantDeletionRequested,
	TenantDeleted, TenantRestored, TenantPurged, TenantCleanupFailed,
	WebhookDisabled,
}

// Endpoint statuses.
const (
	EndpointActive   = "active"
	EndpointDisabled = "disabled"
)

// Endpoint is a webhook receiver. Secret is only read by AddEndpoint: it is
// stored sealed and never returned.
//
// URL is kept and returned as the admin entered it, query string included:
// the admin API shows it to the platform admins who manage endpoints, as
// GitHub and Stripe show a hook's URL to its owners (they must see where
// events go, and a URL cannot be edited, only deleted and added again).
// Everything written for anyone else, or kept as history — audit rows,
// notification_logs, log lines, event payloads (webhook.endpoint_disabled
// reaches other receivers) — holds RedactURL's form instead: a query string
// often carries the receiver's token.
type Endpoint struct {
	ID                  int64      `json:"id"`
	TenantID            int64      `json:"tenantId,omitempty"`   // 0: every tenant's events (platform-wide)
	TenantCode          string     `json:"tenantCode,omitempty"` // of TenantID; read only (AddEndpoint takes TenantID)
	Name                string     `json:"name,omitempty"`
	URL                 string     `json:"url"`
	Events              []string   `json:"events,omitempty"` // empty: every event type
	Secret              string     `json:"-"`
	Status              string     `json:"status"`
	ConsecutiveFailures int        `json:"consecutiveFailures"`
	LastSuccessAt       *time.Time `json:"lastSuccessAt,omitempty"`
	LastFailureAt       *time.Time `json:"lastFailureAt,omitempty"`
	CreatedBy           int64      `json:"createdBy,omitempty"` // admin_users.id, 0 when unknown
	CreatedAt           time.Time  `json:"createdAt"`
}

// MinSecretLen is the shortest HMAC secret AddEndpoint accepts.
const MinSecretLen = 16

// NewSecret returns a random endpoint secret (32 random bytes, base64url),
// for callers that let the platform choose one and show it to the integrator
// once.
func NewSecret() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	return "whsec_" + base64.RawURLEncoding.EncodeToString(b)
}

// secretAAD binds an endpoint's sealed secret to its row.
func secretAAD(id int64) string { return "webhook_endpoints:" + strconv.FormatInt(id, 10) + ":secret" }

// DBTX is a *sql.DB or a *sql.Tx: the endpoint functions that take one join
// the caller's transaction (an admin API audits a change in the change's).
type DBTX interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// MaxEndpointsPerTenant is how many endpoints a tenant may have, disabled
// ones included (one PATCH enables them again); the platform-wide endpoints
// have as many places of their own. Every endpoint multiplies each event's
// deliveries, so the count is bounded where endpoints are added.
const MaxEndpointsPerTenant = 20

// AddEndpoint validates ep (see ValidateEndpoint), stores it active with its
// secret sealed by box, and returns its id. Invalid input is a *fault.Error
// naming every bad field, and stores nothing; so is an endpoint past
// MaxEndpointsPerTenant (see AddEndpointTx).
func AddEndpoint(ctx context.Context, db *sql.DB, box *secretbox.Box, ep Endpoint) (int64, error) {
	var id int64
	err := sqldb.InTxRetry(ctx, db, func(tx *sql.Tx) (err error) {
		id, err = AddEndpointTx(ctx, tx, box, ep)
		return err
	})
	return id, err
}

// AddEndpointTx is AddEndpoint in the caller's transaction: the endpoint
// exists if and only if tx commits. A tenant that already has
// MaxEndpointsPerTenant endpoints (or the platform-wide endpoints, when
// ep.TenantID is 0) gets a Conflict "too_many_webhooks" instead. The count
// holds locks until tx ends, so that concurrent adds are counted one after
// another; for it to see them, AddEndpointTx must be tx's first read. Run tx
// with sqldb.InTxRetry: the first platform-wide endpoints added at once may
// deadlock (one is rolled back, and counts again).
func AddEndpointTx(ctx context.Context, tx *sql.Tx, box *secretbox.Box, ep Endpoint) (int64, error) {
	if err := ValidateEndpoint(&ep); err != nil {
		return 0, err
	}
	if err := checkRoom(ctx, tx, ep.TenantID); err != nil {
		return 0, err
	}
	var events any
	if len(ep.Events) > 0 {
		b, err := json.Marshal(ep.Events)
		if err != nil {
			return 0, fmt.Errorf("encode endpoint events: %w", err)
		}
		events = string(b)
	}
	// The secret is sealed for the row's id, known only after the insert:
	// one transaction, so no endpoint is ever visible without its secret.
	res, err := tx.ExecContext(ctx, `INSERT INTO webhook_endpoints (tenant_id, name, url, secret_encrypted, events, status, created_by)
		VALUES (?, ?, ?, '', ?, 'active', ?)`, nullID(ep.TenantID), nullString(ep.Name), ep.URL, events, nullID(ep.CreatedBy))
	if err != nil {
		return 0, fmt.Errorf("add webhook endpoint: %w", err)
	}
	id, err := res.LastInsertId()
	if err != nil {
		return 0, fmt.Errorf("add webhook endpoint: %w", err)
	}
	if _, err := tx.ExecContext(ctx, "UPDATE webhook_endpoints SET secret_encrypted = ? WHERE id = ?",
		box.Seal([]byte(ep.Secret), secretAAD(id)), id); err != nil {
		return 0, fmt.Errorf("add webhook endpoint: %w", err)
	}
	return id, nil
}

// checkRoom refuses an endpoint past MaxEndpointsPerTenant for tenantID (0:
// the platform-wide ones).
//
// A tenant's adds are serialised on the tenant's row, as lifecycle changes
// and API keys are, and then counted with a plain read: the transaction's
// snapshot is taken at its first plain read, after the lock, so it sees every
// endpoint an add that held the lock before committed. (A locking count
// would lock the tenant's endpoint rows after its tenant's, the reverse of
// the dispatcher's disabling, which locks an endpoint and then its tenant.)
// Platform-wide endpoints have no such row: their count is a locking read of
// the tenant_id IS NULL range, whose next-key locks an insert of another
// platform-wide endpoint must wait for.
func checkRoom(ctx context.Context, tx *sql.Tx, tenantID int64) error {
	q, args := "SELECT COUNT(*) FROM webhook_endpoints WHERE tenant_id IS NULL FOR UPDATE", []any(nil)
	if tenantID != 0 {
		var id int64
		err := tx.QueryRowContext(ctx, "SELECT id FROM tenants WHERE id = ? FOR UPDATE", tenantID).Scan(&id)
		if errors.Is(err, sql.ErrNoRows) {
			return fault.New(fault.NotFound, "tenant_not_found", "no tenant %d", tenantID)
		}
		if err != nil {
			return fmt.Errorf("lock tenant %d: %w", tenantID, err)
		}
		q, args = "SELECT COUNT(*) FROM webhook_endpoints WHERE tenant_id = ?", []any{tenantID}
	}
	var n int
	if err := tx.QueryRowContext(ctx, q, args...).Scan(&n); err != nil {
		return fmt.Errorf("count webhook endpoints: %w", err)
	}
	if n < MaxEndpointsPerTenant {
		return nil
	}
	if tenantID == 0 {
		return fault.New(fault.Conflict, "too_many_webhooks",
			"there are at most %d platform-wide webhook endpoints; delete one first", MaxEndpointsPerTenant)
	}
	return fault.New(fault.Conflict, "too_many_webhooks",
		"a tenant has at most %d webhook endpoints; delete one first", MaxEndpointsPerTenant)
}

// maxNameLen is the name column's size, in characters.
const maxNameLen = 100

// ValidateEndpoint checks ep as AddEndpoint will — an http or https URL
// without credentials (see ValidateURL), a name of at most 100 characters,
// known event types, a secret of at least MinSecretLen bytes — and
// normalizes it (URL trimmed, each event type once). The error is a
// *fault.Error naming every bad field, so that a caller can check an input
// before looking anything up and report all its mistakes at once.
func ValidateEndpoint(ep *Endpoint) error { return validateEndpoint(ep, true) }

// ValidateNewEndpoint is ValidateEndpoint for an endpoint someone is adding:
// unless allowPrivate (Config.AllowPrivate, which the dispatcher's client
// follows too), its URL must also pass CheckPublicURL, so that an address
// every delivery would be refused is refused when it is entered.
func ValidateNewEndpoint(ep *Endpoint, allowPrivate bool) error {
	return validateEndpoint(ep, allowPrivate)
}

func validateEndpoint(ep *Endpoint, allowPrivate bool) error {
	problems := map[string]*fault.Error{}
	ep.URL = strings.TrimSpace(ep.URL)
	err := ValidateURL(ep.URL)
	if err == nil && !allowPrivate {
		err = CheckPublicURL(ep.URL)
	}
	if err != nil {
		fe, _ := fault.As(err)
		problems["url"] = fe
	}
	if utf8.RuneCountInString(ep.Name) > maxNameLen {
		problems["name"] = fault.Field("invalid_field", "name", fmt.Sprintf("must be at most %d characters", maxNameLen))
	}
	if len(ep.Secret) < MinSecretLen {
		problems["secret"] = fault.Field("invalid_field", "secret", fmt.Sprintf("must be at least %d characters", MinSecretLen))
	}
	var events []string
	for _, t := range ep.Events {
		if !slices.Contains(EventTypes, t) {
			problems["events"] = fault.Field("invalid_field", "events", fmt.Sprintf("unknown event type %q (known: %s)", t, strings.Join(EventTypes, ", ")))
			break
		}
		if !slices.Contains(events, t) {
			events = append(events, t)
		}
	}
	ep.Events = events
	switch len(problems) {
	case 0:
		return nil
	case 1:
		for _, fe := range problems {
			return fe // keeps its own code (missing_field, say)
		}
	}
	all := map[string]string{}
	for field, fe := range problems {
		all[field] = fe.Fields[field]
	}
	return fault.Fields("invalid_field", all)
}

// ValidateURL accepts an absolute http or https URL with a host, a port (if
// any) a TCP port can be, and no user credentials (a password in a URL would
// be stored and shown in clear). Whether the host is a public address is
// checked on every delivery, on the address dialled (see NewHTTPClient), and
// by ValidateNewEndpoint when the host is an address (CheckPublicURL).
func ValidateURL(raw string) error {
	u, err := url.Parse(raw)
	switch {
	case raw == "":
		return fault.Field("missing_field", "url", "is required")
	case len(raw) > 1000:
		return fault.Field("invalid_field", "url", "must be at most 1000 characters")
	case err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.Hostname() == "":
		return fault.Field("invalid_field", "url", "must be an http or https URL with a host")
	case u.User != nil:
		return fault.Field("invalid_field", "url", "must not carry credentials; the signature authenticates deliveries")
	case u.Fragment != "" || strings.Contains(raw, "#"):
		return fault.Field("invalid_field", "url", "must not have a fragment")
	}
	if p := u.Port(); p != "" {
		if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
			return fault.Field("invalid_field", "url", "port must be between 1 and 65535")
		}
	}
	return nil
}

// RedactURL is raw as it may be written anywhere but the admin API (audit
// rows, notification_logs, logs, event payloads): scheme and host, the path
// up to its first segment that may be a token, "/…" for the rest, and "?…"
// where a query string was. Receivers take tokens in the query (DingTalk,
// WeCom) or in the path (Feishu's …/hook/<uuid>, Slack's
// …/services/T…/B…/<secret>, Discord's …/webhooks/<id>/<token>).
func RedactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(invalid url)"
	}
	out := u.Scheme + "://" + u.Host
	segs := strings.Split(strings.TrimPrefix(u.EscapedPath(), "/"), "/")
	for i, seg := range segs {
		if mayBeToken(seg) {
			out += "/…"
			break
		}
		if i < len(segs)-1 || seg != "" {
			out += "/" + seg
		}
	}
	if u.RawQuery != "" {
		out += "?…"
	}
	return out
}

// mayBeToken tells a path segment that may be a credential or an id a
// receiver gives out with one: any with a digit, an escape, or over 20
// characters. Plain words ("hooks", "open-apis", "unitenant") are kept.
func mayBeToken(seg string) bool {
	return len(seg) > 20 || strings.ContainsAny(seg, "0123456789%")
}

// selectEndpoints reads endpoints with their tenant's code.
const selectEndpoints = `SELECT e.id, COALESCE(e.tenant_id, 0), COALESCE(t.tenant_code, ''), COALESCE(e.name, ''), e.url, e.events,
	e.status, e.consecutive_failures, e.last_success_at, e.last_failure_at, COALESCE(e.created_by, 0), e.created_at
	FROM webhook_endpoints e LEFT JOIN tenants t ON t.id = e.tenant_id`

func scanEndpoint(s interface{ Scan(...any) error }) (Endpoint, error) {
	var ep Endpoint
	var events sql.NullString
	var ok, failed sql.NullTime
	if err := s.Scan(&ep.ID, &ep.TenantID, &ep.TenantCode, &ep.Name, &ep.URL, &events, &ep.Status, &ep.ConsecutiveFailures,
		&ok, &failed, &ep.CreatedBy, &ep.CreatedAt); err != nil {
		return ep, err
	}
	if events.Valid && events.String != "" && events.String != "null" {
		if err := json.Unmarshal([]byte(events.String), &ep.Events); err != nil {
			return ep, fmt.Errorf("endpoint %d events: %w", ep.ID, err)
		}
	}
	if ok.Valid {
		ep.LastSuccessAt = &ok.Time
	}
	if failed.Valid {
		ep.LastFailureAt = &failed.Time
	}
	return ep, nil
}

// AllTenants makes ListEndpoints return every endpoint.
const AllTenants int64 = -1

// ListEndpoints returns the endpoints of one tenant (tenantID > 0), the
// platform-wide ones (0) or all of them (AllTenants, and no other negative
// id: a bad conversion upstream must not read as "every tenant's"), oldest
// first, without their secrets.
func ListEndpoints(ctx context.Context, db DBTX, tenantID int64) ([]Endpoint, error) {
	where, args, err := endpointsOf(tenantID)
	if err != nil {
		return nil, fmt.Errorf("list webhook endpoints: %w", err)
	}
	return queryEndpoints(ctx, db, selectEndpoints+where+" ORDER BY e.id", args...)
}

// ListEndpointsPage is ListEndpoints from the offset-th endpoint (0 the
// first) on, at most limit (1 or more) of them, with how many ListEndpoints
// would return in all. Its filter is the whole of the query: a page of one
// tenant's endpoints holds none of another's, however far it lies.
func ListEndpointsPage(ctx context.Context, db DBTX, tenantID int64, offset, limit int) ([]Endpoint, int64, error) {
	if offset < 0 || limit < 1 {
		return nil, 0, fmt.Errorf("list webhook endpoints: offset %d, limit %d: want offset >= 0, limit >= 1", offset, limit)
	}
	where, args, err := endpointsOf(tenantID)
	if err != nil {
		return nil, 0, fmt.Errorf("list webhook endpoints: %w", err)
	}
	var total int64
	if err := db.QueryRowContext(ctx, "SELECT COUNT(*) FROM webhook_endpoints e"+where, args...).Scan(&total); err != nil {
		return nil, 0, fmt.Errorf("count webhook endpoints: %w", err)
	}
	eps, err := queryEndpoints(ctx, db, selectEndpoints+where+" ORDER BY e.id LIMIT ? OFFSET ?", append(args, limit, offset)...)
	return eps, total, err
}

// endpointsOf is the WHERE clause of tenantID's endpoints (see ListEndpoints).
func endpointsOf(tenantID int64) (string, []any, error) {
	switch {
	case tenantID > 0:
		return " WHERE e.tenant_id = ?", []any{tenantID}, nil
	case tenantID == 0:
		return " WHERE e.tenant_id IS NULL", nil, nil
	case tenantID == AllTenants:
		return "", nil, nil
	}
	return "", nil, fmt.Errorf("tenant id %d: want > 0, 0 (platform-wide) or AllTenants", tenantID)
}

func queryEndpoints(ctx context.Context, db DBTX, q string, args ...any) ([]Endpoint, error) {
	rows, err := db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("list webhook endpoints: %w", err)
	}
	defer rows.Close()
	out := []Endpoint{}
	for rows.Next() {
		ep, err := scanEndpoint(rows)
		if err != nil {
			return nil, fmt.Errorf("list webhook endpoints: %w", err)
		}
		out = append(out, ep)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list webhook endpoints: %w", err)
	}
	return out, nil
}

// EndpointSecret opens the secret of endpoint id, to show it again to the
// admin who added the endpoint and lost the answer (a create retried with its
// Idempotency-Key after the first request died). Nothing else hands a secret
// out; the dispatcher opens it only to sign.
func EndpointSecret(ctx context.Context, db DBTX, box *secretbox.Box, id int64) (string, error) {
	var sealed []byte
	err := db.QueryRowContext(ctx, "SELECT secret_encrypted FROM webhook_endpoints WHERE id = ?", id).Scan(&sealed)
	if errors.Is(err, sql.ErrNoRows) {
		return "", errEndpointNotFound(id)
	}
	if err != nil {
		return "", fmt.Errorf("webhook endpoint %d secret: %w", id, err)
	}
	secret, err := box.Open(sealed, secretAAD(id))
	if err != nil {
		return "", fmt.Errorf("webhook endpoint %d secret: %w", id, err)
	}
	return string(secret), nil
}

// GetEndpoint returns endpoint id without its secret, or a not-found
// *fault.Error.
func GetEndpoint(ctx context.Context, db DBTX, id int64) (Endpoint, error) {
	return getEndpoint(ctx, db, id)
}

// LockEndpoint is GetEndpoint holding the endpoint's row until tx ends: what
// it returns is what a change made in tx changes (and audits).
func LockEndpoint(ctx context.Context, tx *sql.Tx, id int64) (Endpoint, error) {
	// The endpoint's row only (not its tenant's, which lifecycle changes
	// lock); the read after the lock sees the latest version.
	var one int
	err := tx.QueryRowContext(ctx, "SELECT 1 FROM webhook_endpoints WHERE id = ? FOR UPDATE", id).Scan(&one)
	if errors.Is(err, sql.ErrNoRows) {
		return Endpoint{}, errEndpointNotFound(id)
	}
	if err != nil {
		return Endpoint{}, fmt.Errorf("lock webhook endpoint %d: %w", id, err)
	}
	return GetEndpoint(ctx, tx, id)
}

func getEndpoint(ctx context.Context, db DBTX, id int64) (Endpoint, error) {
	ep, err := scanEndpoint(db.QueryRowContext(ctx, selectEndpoints+" WHERE e.id = ?", id))
	if errors.Is(err, sql.ErrNoRows) {
		return ep, errEndpointNotFound(id)
	}
	if err != nil {
		return ep, fmt.Errorf("get webhook endpoint %d: %w", id, err)
	}
	return ep, nil
}

func errEndpointNotFound(id int64) error {
	return fault.New(fault.NotFound, "webhook_endpoint_not_found", "webhook endpoint %d does not exist", id)
}

// SetEndpointStatus disables an endpoint (EndpointDisabled: it gets nothing
// more, and events no longer wait for it) or enables it again (EndpointActive,
// which also resets its failure count).
func SetEndpointStatus(ctx context.Context, db DBTX, id int64, status string) error {
	if status != EndpointActive && status != EndpointDisabled {
		return fault.Field("invalid_field", "status", "must be active or disabled")
	}
	res, err := db.ExecContext(ctx, `UPDATE webhook_endpoints SET status = ?,
		consecutive_failures = IF(? = 'active', 0, consecutive_failures) WHERE id = ?`, status, status, id)
	if err != nil {
		return fmt.Errorf("set webhook endpoint %d %s: %w", id, status, err)
	}
	return requireRow(ctx, db, res, id)
}

// DeleteEndpoint removes an endpoint. Its delivery log stays.
func DeleteEndpoint(ctx context.Context, db DBTX, id int64) error {
	res, err := db.ExecContext(ctx, "DELETE FROM webhook_endpoints WHERE id = ?", id)
	if err != nil {
		return fmt.Errorf("delete webhook endpoint %d: %w", id, err)
	}
	return requireRow(ctx, db, res, id)
}

// requireRow turns "no row changed" into not-found when endpoint id does not
// exist (MySQL also reports 0 rows for an update that changed nothing).
func requireRow(ctx context.Context, db DBTX, res sql.Result, id int64) error {
	if n, err := res.RowsAffected(); err != nil || n > 0 {
		return err
	}
	var one int
	err := db.QueryRowContext(ctx, "SELECT 1 FROM webhook_endpoints WHERE id = ?", id).Scan(&one)
	if errors.Is(err, sql.ErrNoRows) {
		return errEndpointNotFound(id)
	}
	if err != nil {
		return fmt.Errorf("webhook endpoint %d: %w", id, err)
	}
	return nil
}

func nullID(id int64) any {
	if id == 0 {
		return nil
	}
	return id
}

func nullString(s string) any {
	if s == "" {
		return nil
	}
	return s
}
