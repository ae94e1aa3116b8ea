// Package notify tells the outside world what happened to tenants: every
// lifecycle event is written to an outbox (webhook_events) in the same
// transaction as the change it reports, so an event is never lost nor sent
// for a change that was rolled back; a dispatcher then POSTs it, signed with
// HMAC-SHA256, to every subscribed webhook endpoint, retrying with backoff
// and logging every attempt in notification_logs. People get direct messages
// (a deletion confirmation token) by e-mail, or in development through the
// outbox file.
//
// Receivers check each delivery with VerifySignature (see its comment for
// other languages) and dedupe on the id in the verified body, never on the
// unsigned Unitenant-Event-Id header (a delivery replayed within the
// timestamp tolerance with another header would pass): delivery is at least
// once. This package never logs or stores an endpoint secret in clear, nor
// an endpoint URL's query string outside webhook_endpoints (see RedactURL),
// nor the body of a direct message (they may hold tokens).
package notify

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"time"
)

// Event types.
const (
	TenantCreated           = "tenant.created"
	TenantSuspended         = "tenant.suspended"
	TenantResumed           = "tenant.resumed"
	TenantDeletionRequested = "tenant.deletion_requested"
	TenantDeleted           = "tenant.deleted"
	TenantRestored          = "tenant.restored"
	TenantPurged            = "tenant.purged"
	TenantCleanupFailed     = "tenant.cleanup_failed"
	// WebhookDisabled: a webhook endpoint failed Dispatcher.DisableAfter
	// deliveries in a row and was disabled (data: endpointId, url,
	// consecutiveFailures, lastError); its tenant's, if any.
	WebhookDisabled = "webhook.endpoint_disabled"
)

// Event is one thing that happened.
type Event struct {
	Type       string
	TenantID   int64
	TenantCode string
	Data       any // event-specific fields, JSON-encoded into the payload
}

// Execer is a *sql.DB or a *sql.Tx: Emit joins the caller's transaction.
type Execer interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
}

// Payload is what a webhook receives as its body.
type Payload struct {
	ID         string    `json:"id"`
	Type       string    `json:"type"`
	TenantCode string    `json:"tenantCode,omitempty"`
	OccurredAt time.Time `json:"occurredAt"`
	Data       any       `json:"data,omitempty"`
}

// Emit writes ev to the outbox through ex (pass the transaction of the change
// it reports) and returns its id.
func Emit(ctx context.Context, ex Execer, ev Event) (string, error) {
	id := newID()
	body, err := json.Marshal(Payload{ID: id, Type: ev.Type, TenantCode: ev.TenantCode, OccurredAt: time.Now().UTC().Truncate(time.Millisecond), Data: ev.Data})
	if err != nil {
		return "", fmt.Errorf("encode event %s: %w", ev.Type, err)
	}
	var tenantID any
	if ev.TenantID != 0 {
		tenantID = ev.TenantID
	}
	if _, err := ex.ExecContext(ctx, `INSERT INTO webhook_events (event_id, event_type, tenant_id, tenant_code, payload, status)
		VALUES (?, ?, ?, ?, ?, 'pending')`, id, ev.Type, tenantID, ev.TenantCode, string(body)); err != nil {
		return "", fmt.Errorf("emit %s: %w", ev.Type, err)
	}
	return id, nil
}

func newID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40 // a version 4 UUID
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b[:])
	return h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}
