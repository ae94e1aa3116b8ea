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

	"github.com/unitenant/unitenant/shared/fault"
	"github.com/unitenant/unitenant/shared/secretbox"
	"github.com/unitenant/unitenant/shared/sqldb"
)

// EventTypes lists every event type, in lifecycle order.
var EventTypes = []string{
	TenantCreated, TenantSuspended, TenantResumed, TenantDeletionRequested,
	TenantDeleted, TenantRestored, TenantPurged, TenantCleanupFailed,
}

// Endpoint statuses.
const (
	EndpointActive   = "active"
	EndpointDisabled = "disabled"
)

// Endpoint is a webhook receiver. Secret is only read by AddEndpoint: it is
// stored sealed and never returned.
type Endpoint struct {
	ID                  int64      `json:"id"`
	TenantID            int64      `json:"tenantId,omitempty"` // 0: every tenant's events (platform-wide)
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

// AddEndpoint validates ep (an http or https URL without credentials, known
// event types, a secret of at least MinSecretLen bytes), stores it active
// with its secret sealed by box, and returns its id. Invalid input is a
// *fault.Error naming the field.
func AddEndpoint(ctx context.Context, db *sql.DB, box *secretbox.Box, ep Endpoint) (int64, error) {
	if err := validateEndpoint(&ep); err != nil {
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
	var id int64
	// The secret is sealed for the row's id, known only after the insert:
	// one transaction, so no endpoint is ever visible without its secret.
	err := sqldb.InTx(ctx, db, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `INSERT INTO webhook_endpoints (tenant_id, name, url, secret_encrypted, events, status, created_by)
			VALUES (?, ?, ?, '', ?, 'active', ?)`, nullID(ep.TenantID), nullString(ep.Name), ep.URL, events, nullID(ep.CreatedBy))
		if err != nil {
			return err
		}
		if id, err = res.LastInsertId(); err != nil {
			return err
		}
		_, err = tx.ExecContext(ctx, "UPDATE webhook_endpoints SET secret_encrypted = ? WHERE id = ?",
			box.Seal([]byte(ep.Secret), secretAAD(id)), id)
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("add webhook endpoint: %w", err)
	}
	return id, nil
}

func validateEndpoint(ep *Endpoint) error {
	ep.URL = strings.TrimSpace(ep.URL)
	if err := ValidateURL(ep.URL); err != nil {
		return err
	}
	if len(ep.Name) > 100 {
		return fault.Field("invalid_field", "name", "must be at most 100 characters")
	}
	if len(ep.Secret) < MinSecretLen {
		return fault.Field("invalid_field", "secret", fmt.Sprintf("must be at least %d characters", MinSecretLen))
	}
	for _, t := range ep.Events {
		if !slices.Contains(EventTypes, t) {
			return fault.Field("invalid_field", "events", fmt.Sprintf("unknown event type %q (known: %s)", t, strings.Join(EventTypes, ", ")))
		}
	}
	return nil
}

// ValidateURL accepts an absolute http or https URL with a host and no user
// credentials (a password in a URL would be stored and shown in clear).
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
	case u.Fragment != "":
		return fault.Field("invalid_field", "url", "must not have a fragment")
	}
	return nil
}

const endpointColumns = `id, COALESCE(tenant_id, 0), COALESCE(name, ''), url, events, status, consecutive_failures,
	last_success_at, last_failure_at, COALESCE(created_by, 0), created_at`

func scanEndpoint(s interface{ Scan(...any) error }) (Endpoint, error) {
	var ep Endpoint
	var events sql.NullString
	var ok, failed sql.NullTime
	if err := s.Scan(&ep.ID, &ep.TenantID, &ep.Name, &ep.URL, &events, &ep.Status, &ep.ConsecutiveFailures,
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
// platform-wide ones (0) or all of them (AllTenants), oldest first, without
// their secrets.
func ListEndpoints(ctx context.Context, db *sql.DB, tenantID int64) ([]Endpoint, error) {
	q, args := "SELECT "+endpointColumns+" FROM webhook_endpoints", []any{}
	switch {
	case tenantID > 0:
		q, args = q+" WHERE tenant_id = ?", append(args, tenantID)
	case tenantID == 0:
		q += " WHERE tenant_id IS NULL"
	}
	rows, err := db.QueryContext(ctx, q+" ORDER BY id", args...)
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
func GetEndpoint(ctx context.Context, db *sql.DB, id int64) (Endpoint, error) {
	ep, err := scanEndpoint(db.QueryRowContext(ctx, "SELECT "+endpointColumns+" FROM webhook_endpoints WHERE id = ?", id))
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
func SetEndpointStatus(ctx context.Context, db *sql.DB, id int64, status string) error {
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
func DeleteEndpoint(ctx context.Context, db *sql.DB, id int64) error {
	res, err := db.ExecContext(ctx, "DELETE FROM webhook_endpoints WHERE id = ?", id)
	if err != nil {
		return fmt.Errorf("delete webhook endpoint %d: %w", id, err)
	}
	return requireRow(ctx, db, res, id)
}

// requireRow turns "no row changed" into not-found when endpoint id does not
// exist (MySQL also reports 0 rows for an update that changed nothing).
func requireRow(ctx context.Context, db *sql.DB, res sql.Result, id int64) error {
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
