// Package lifecycle moves tenants through their states, in one place:
//
//	provisioning → active ⇄ suspended → deleted → purged
//
// Every transition runs in a transaction with the tenant row locked, writes
// an audit_logs row (actor, action, before, after, reason, request id) and
// emits its event to the outbox in that same transaction. Deleting needs a
// confirmation token (valid 7 days); it soft-deletes at once (routing refuses
// the tenant), schedules every resource for purge after the grace period, and
// can be restored until the purge starts. It never drops anything itself:
// cleanup-cron does, with an archive first.
package lifecycle

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"database/sql"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/unitenant/unitenant/shared/fault"
	"github.com/unitenant/unitenant/shared/notify"
	"github.com/unitenant/unitenant/shared/sqldb"
)

// Actions an operator can take.
const (
	ActionSuspend         = "suspend"
	ActionResume          = "resume"
	ActionRequestDeletion = "delete"
	ActionConfirmDeletion = "confirm_delete"
	ActionRestore         = "restore"
	ActionPurge           = "purge"
)

// auditAs names, where it differs, the audit action of an operator's action.
// An operator's purge only makes the purge due: it is audited as
// tenant.purge_requested, by the operator, and tenant.purge is the purge
// itself, by the system, when cleanup-cron has done it (purgeTenant). So
// the log has one row per event, and tenant.purge rows count purged tenants.
var auditAs = map[string]string{
	ActionPurge: "purge_requested",
}

// allowed lists, for each status, the actions that may be taken from it.
var allowed = map[string][]string{
	"provisioning": {},
	"active":       {ActionSuspend, ActionRequestDeletion, ActionConfirmDeletion},
	"suspended":    {ActionResume, ActionRequestDeletion, ActionConfirmDeletion},
	"deleted":      {ActionRestore, ActionPurge},
	"purged":       {},
}

// Defaults of the deletion policy (seed 002).
const (
	DefaultGrace        = 30 * 24 * time.Hour
	DefaultConfirmation = 7 * 24 * time.Hour
)

// Actor is who takes an action, for the audit trail.
type Actor struct {
	Type      string // admin | user | system
	ID        int64
	Name      string
	IP        string
	UserAgent string
	RequestID string
}

// Tenant is the tenant as the lifecycle sees it.
type Tenant struct {
	ID                  int64      `json:"id"`
	Code                string     `json:"tenantCode"`
	Name                string     `json:"name"`
	Status              string     `json:"status"`
	PreviousStatus      *string    `json:"previousStatus,omitempty"`
	SuspendedReason     *string    `json:"suspendedReason,omitempty"`
	DeletedAt           *time.Time `json:"deletedAt,omitempty"`
	ScheduledDeletionAt *time.Time `json:"scheduledDeletionAt,omitempty"`
}

// Service runs the transitions on the system database.
type Service struct {
	DB           *sql.DB
	Grace        time.Duration // deleted → purge (default 30 days)
	Confirmation time.Duration // how long a deletion token is valid (default 7 days)
	Now          func() time.Time
}

func (s *Service) now() time.Time {
	if s.Now != nil {
		return s.Now().UTC()
	}
	return time.Now().UTC()
}

func (s *Service) grace() time.Duration {
	if s.Grace > 0 {
		return s.Grace
	}
	return DefaultGrace
}

// ErrInvalidTransition is the shape of a refused action.
func invalidTransition(t *Tenant, action string) error {
	ok := allowed[t.Status]
	list := "none"
	if len(ok) > 0 {
		list = strings.Join(ok, ", ")
	}
	e := fault.New(fault.Conflict, "invalid_transition", "tenant %s is %s: %s is not allowed (allowed: %s)", t.Code, t.Status, action, list)
	e.Fields = map[string]string{"status": t.Status, "allowed": list}
	return e
}

// lock reads tenant code FOR UPDATE inside tx and checks that action is
// allowed from its status.
func lock(ctx context.Context, tx *sql.Tx, code, action string) (*Tenant, error) {
	t := &Tenant{}
	var prev, reason sql.NullString
	var deleted, scheduled sql.NullTime
	err := tx.QueryRowContext(ctx, `SELECT id, tenant_code, tenant_name, status, previous_status, suspended_reason, deleted_at, scheduled_deletion_at
		FROM tenants WHERE tenant_code = ? FOR UPDATE`, code).
		Scan(&t.ID, &t.Code, &t.Name, &t.Status, &prev, &reason, &deleted, &scheduled)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fault.New(fault.NotFound, "tenant_not_found", "no tenant %q", code)
	}
	if err != nil {
		return nil, fmt.Errorf("lock tenant %s: %w", code, err)
	}
	t.PreviousStatus, t.SuspendedReason = nullStr(prev), nullStr(reason)
	t.DeletedAt, t.ScheduledDeletionAt = nullTime(deleted), nullTime(scheduled)
	if !slices.Contains(allowed[t.Status], action) {
		return t, invalidTransition(t, action)
	}
	return t, nil
}

// Audit writes the audit_logs row of an action on tenant code (id) by a,
// with its state before and after, through ex (a *sql.DB, or the
// transaction of the change so both land together).
func Audit(ctx context.Context, ex notify.Execer, a Actor, action string, tenantID int64, code string, before, after any, reason string) error {
	b, _ := json.Marshal(before)
	af, _ := json.Marshal(after)
	_, err := ex.ExecContext(ctx, `INSERT INTO audit_logs (actor_type, actor_id, actor_name, action, target_type, target_id, tenant_id,
		before_state, after_state, reason, request_id, ip_address, user_agent)
		VALUES (?, ?, ?, ?, 'tenant', ?, ?, ?, ?, ?, ?, ?, ?)`,
		a.Type, nullID(a.ID), nullS(a.Name), "tenant."+action, code, tenantID, string(b), string(af), nullS(reason),
		nullS(a.RequestID), nullS(a.IP), nullS(sqldb.Text(a.UserAgent, 500)))
	if err != nil {
		return fmt.Errorf("audit %s: %w", action, err)
	}
	return nil
}

// transition runs one action: lock, change, audit, event — one transaction.
func (s *Service) transition(ctx context.Context, code, action string, a Actor, reason string,
	change func(tx *sql.Tx, t *Tenant) (event string, data any, err error)) (*Tenant, error) {
	var after *Tenant
	err := sqldb.InTxRetry(ctx, s.DB, func(tx *sql.Tx) error {
		t, err := lock(ctx, tx, code, action)
		if err != nil {
			return err
		}
		before := *t
		ev, data, err := change(tx, t)
		if err != nil {
			return err
		}
		audited := action
		if as, ok := auditAs[action]; ok {
			audited = as
		}
		if err := Audit(ctx, tx, a, audited, t.ID, t.Code, before, t, reason); err != nil {
			return err
		}
		if ev != "" {
			if _, err := notify.Emit(ctx, tx, notify.Event{Type: ev, TenantID: t.ID, TenantCode: t.Code, Data: data}); err != nil {
				return err
			}
		}
		after = t
		return nil
	})
	return after, err
}

// Suspend refuses the tenant's requests from now on (within the routing
// cache's TTL); its data and resources stay.
func (s *Service) Suspend(ctx context.Context, code string, a Actor, reason string) (*Tenant, error) {
	if strings.TrimSpace(reason) == "" {
		return nil, fault.Field("invalid_input", "reason", "a reason is required to suspend a tenant")
	}
	return s.transition(ctx, code, ActionSuspend, a, reason, func(tx *sql.Tx, t *Tenant) (string, any, error) {
		now := s.now()
		if _, err := tx.ExecContext(ctx, `UPDATE tenants SET previous_status = status, status = 'suspended', suspended_at = ?, suspended_reason = ?
			WHERE id = ?`, now, reason, t.ID); err != nil {
			return "", nil, err
		}
		prev := t.Status
		t.Status, t.PreviousStatus, t.SuspendedReason = "suspended", &prev, &reason
		return notify.TenantSuspended, map[string]string{"reason": reason}, nil
	})
}

// Resume serves a suspended tenant again.
func (s *Service) Resume(ctx context.Context, code string, a Actor) (*Tenant, error) {
	return s.transition(ctx, code, ActionResume, a, "", func(tx *sql.Tx, t *Tenant) (string, any, error) {
		if _, err := tx.ExecContext(ctx, `UPDATE tenants SET status = 'active', previous_status = 'suspended', suspended_at = NULL, suspended_reason = NULL
			WHERE id = ?`, t.ID); err != nil {
			return "", nil, err
		}
		prev := t.Status
		t.Status, t.PreviousStatus, t.SuspendedReason = "active", &prev, nil
		return notify.TenantResumed, nil, nil
	})
}

// RequestDeletion records a deletion request and returns its confirmation
// token, which the caller delivers by notification: only its hash is kept.
func (s *Service) RequestDeletion(ctx context.Context, code string, a Actor, reason string) (token string, expires time.Time, err error) {
	raw := make([]byte, 24)
	_, _ = rand.Read(raw)
	token = base64.RawURLEncoding.EncodeToString(raw)
	valid := s.Confirmation
	if valid <= 0 {
		valid = DefaultConfirmation
	}
	expires = s.now().Add(valid)
	_, err = s.transition(ctx, code, ActionRequestDeletion, a, reason, func(tx *sql.Tx, t *Tenant) (string, any, error) {
		if _, err := tx.ExecContext(ctx, `INSERT INTO tenant_deletion_requests (tenant_id, tenant_code, requested_by, requested_by_type, token_hash, status, reason, expires_at)
			VALUES (?, ?, ?, ?, ?, 'pending', ?, ?)`, t.ID, t.Code, nullID(a.ID), a.Type, hashToken(token), nullS(reason), expires); err != nil {
			return "", nil, fmt.Errorf("record deletion request: %w", err)
		}
		return notify.TenantDeletionRequested, map[string]any{"expiresAt": expires, "reason": reason}, nil
	})
	if err != nil {
		return "", time.Time{}, err
	}
	return token, expires, nil
}

func hashToken(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:])
}

// ErrBadToken answers a confirmation token that is wrong, spent or expired.
var ErrBadToken = fault.New(fault.Invalid, "invalid_confirmation_token", "the confirmation token is wrong, already used, or expired; request the deletion again")

// ConfirmDeletion soft-deletes the tenant with a valid token: status
// deleted, the grace period starts, every resource is scheduled for purge.
func (s *Service) ConfirmDeletion(ctx context.Context, code, token string, a Actor) (*Tenant, error) {
	if token == "" {
		return nil, fault.Field("invalid_input", "token", "is required")
	}
	return s.transition(ctx, code, ActionConfirmDeletion, a, "", func(tx *sql.Tx, t *Tenant) (string, any, error) {
		now := s.now()
		var reqID int64
		err := tx.QueryRowContext(ctx, `SELECT id FROM tenant_deletion_requests
			WHERE tenant_id = ? AND token_hash = ? AND status = 'pending' AND expires_at > ? FOR UPDATE`, t.ID, hashToken(token), now).Scan(&reqID)
		if errors.Is(err, sql.ErrNoRows) {
			return "", nil, ErrBadToken
		}
		if err != nil {
			return "", nil, fmt.Errorf("deletion request: %w", err)
		}
		due := now.Add(s.grace())
		if _, err := tx.ExecContext(ctx, `UPDATE tenant_deletion_requests SET status = 'confirmed', confirmed_at = ?, confirmed_by = ? WHERE id = ?`,
			now, nullID(a.ID), reqID); err != nil {
			return "", nil, err
		}
		// The deletion is confirmed: the other tokens sent for it are spent
		// too, or one could delete the tenant again after a restore.
		if _, err := tx.ExecContext(ctx, `UPDATE tenant_deletion_requests SET status = 'cancelled', cancelled_at = ?, cancelled_by = ?
			WHERE tenant_id = ? AND status = 'pending' AND id <> ?`, now, nullID(a.ID), t.ID, reqID); err != nil {
			return "", nil, fmt.Errorf("cancel other deletion requests: %w", err)
		}
		if _, err := tx.ExecContext(ctx, `UPDATE tenants SET previous_status = status, status = 'deleted', deleted_at = ?, scheduled_deletion_at = ?
			WHERE id = ?`, now, due, t.ID); err != nil {
			return "", nil, err
		}
		if err := Schedule(ctx, tx, t.ID, reqID, due); err != nil {
			return "", nil, fmt.Errorf("schedule purge: %w", err)
		}
		// Sessions scoped to the tenant end now, not when they expire.
		if _, err := tx.ExecContext(ctx, `UPDATE refresh_tokens SET revoked_at = ?, revoked_reason = 'tenant_deleted'
			WHERE tenant_id = ? AND revoked_at IS NULL`, now, t.ID); err != nil {
			return "", nil, err
		}
		prev := t.Status
		t.Status, t.PreviousStatus, t.DeletedAt, t.ScheduledDeletionAt = "deleted", &prev, &now, &due
		return notify.TenantDeleted, map[string]any{"scheduledDeletionAt": due}, nil
	})
}

// ErrPurgeStarted refuses a restore once cleanup-cron has begun the purge.
var ErrPurgeStarted = fault.New(fault.Conflict, "purge_started", "the purge has started; the tenant can only be restored from its archive")

// Restore brings a deleted tenant back, before its purge starts, to the
// status it had; its scheduled cleanup is cancelled.
func (s *Service) Restore(ctx context.Context, code string, a Actor) (*Tenant, error) {
	return s.transition(ctx, code, ActionRestore, a, "", func(tx *sql.Tx, t *Tenant) (string, any, error) {
		// A row back to pending after a failed attempt counts: the attempt
		// may have dropped or deleted part of it before its error.
		var started int
		if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM tenant_resource_cleanup
			WHERE tenant_id = ? AND (status IN ('in_progress', 'completed', 'failed') OR (status = 'pending' AND retry_count > 0))`,
			t.ID).Scan(&started); err != nil {
			return "", nil, err
		}
		if started > 0 {
			return "", nil, ErrPurgeStarted
		}
		back := "active"
		if t.PreviousStatus != nil && *t.PreviousStatus == "suspended" {
			back = "suspended"
		}
		if _, err := tx.ExecContext(ctx, `UPDATE tenant_resource_cleanup SET status = 'cancelled' WHERE tenant_id = ? AND status = 'pending'`, t.ID); err != nil {
			return "", nil, err
		}
		if _, err := tx.ExecContext(ctx, `UPDATE tenants SET status = ?, previous_status = 'deleted', deleted_at = NULL, scheduled_deletion_at = NULL
			WHERE id = ?`, back, t.ID); err != nil {
			return "", nil, err
		}
		prev := t.Status
		t.Status, t.PreviousStatus, t.DeletedAt, t.ScheduledDeletionAt = back, &prev, nil, nil
		return notify.TenantRestored, map[string]string{"status": back}, nil
	})
}

// Purge makes a deleted tenant's resources due now: cleanup-cron purges them
// on its next run (archive first). The tenant stays deleted until then. It
// is audited as tenant.purge_requested; tenant.purge is cleanup-cron's.
func (s *Service) Purge(ctx context.Context, code string, a Actor) (*Tenant, error) {
	return s.transition(ctx, code, ActionPurge, a, "", func(tx *sql.Tx, t *Tenant) (string, any, error) {
		now := s.now()
		if _, err := tx.ExecContext(ctx, `UPDATE tenant_resource_cleanup SET scheduled_deletion_at = ?, next_attempt_at = NULL
			WHERE tenant_id = ? AND status = 'pending'`, now, t.ID); err != nil {
			return "", nil, err
		}
		if _, err := tx.ExecContext(ctx, "UPDATE tenants SET scheduled_deletion_at = ? WHERE id = ?", now, t.ID); err != nil {
			return "", nil, err
		}
		t.ScheduledDeletionAt = &now
		return "", nil, nil // tenant.purged comes when cleanup-cron has finished
	})
}

func nullStr(s sql.NullString) *string {
	if !s.Valid {
		return nil
	}
	return &s.String
}

func nullTime(t sql.NullTime) *time.Time {
	if !t.Valid {
		return nil
	}
	return &t.Time
}

func nullID(id int64) any {
	if id == 0 {
		return nil
	}
	return id
}

func nullS(s string) any {
	if s == "" {
		return nil
	}
	return s
}
