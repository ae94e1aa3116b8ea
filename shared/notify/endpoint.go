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

// AddEndpoint validates ep (see ValidateEndpoint), stores it active with its
// secret sealed by box, and returns its id. Invalid input is a *fault.Error
// naming every bad field, and stores nothing.
func AddEndpoint(ctx context.Context, db *sql.DB, box *secretbox.Box, ep Endpoint) (int64, error) {
	var id int64
	err := sqldb.InTx(ctx, db, func(tx *sql.Tx) (err error) {
		id, err = AddEndpointTx(ctx, tx, box, ep)
		return err
	})
	return id, err
}

// AddEndpointTx is AddEndpoint in the caller's transaction: the endpoint
// exists if and only if tx commits.
func AddEndpointTx(ctx context.Context, tx *sql.Tx, box *secretbox.Box, ep Endpoint) (int64, error) {
	if err := ValidateEndpoint(&ep); err != nil {
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
// rows, notification_logs, logs, event payloads): scheme, host and path, and
// "?…" where a query string was, since that often carries a token.
func RedactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(invalid url)"
	}
	out := u.Scheme + "://" + u.Host + u.EscapedPath()
	if u.RawQuery != "" {
		out += "?…"
	}
	return out
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
	q, args := selectEndpoints, []any{}
	switch {
	case tenantID > 0:
		q, args = q+" WHERE e.tenant_id = ?", append(args, tenantID)
	case tenantID == 0:
		q += " WHERE e.tenant_id IS NULL"
	case tenantID != AllTenants:
		return nil, fmt.Errorf("list webhook endpoints: tenant id %d: want > 0, 0 (platform-wide) or AllTenants", tenantID)
	}
	rows, err := db.QueryContext(ctx, q+" ORDER BY e.id", args...)
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
