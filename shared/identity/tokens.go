package identity

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"database/sql"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/unitenant/unitenant/shared/fault"
	"github.com/unitenant/unitenant/shared/sqldb"
)

// Errors of refresh and logout (all 401: the client must log in again).
var (
	ErrInvalidRefresh = fault.New(fault.Unauthorized, "invalid_refresh_token", "the refresh token is not valid")
	ErrRefreshExpired = fault.New(fault.Unauthorized, "refresh_expired", "the refresh token has expired; log in again")
	ErrRefreshRevoked = fault.New(fault.Unauthorized, "refresh_revoked", "the refresh token was revoked; log in again")
	ErrRefreshReused  = fault.New(fault.Unauthorized, "refresh_reused", "the refresh token was already used; every session of this login has been revoked")
)

// randomToken returns 32 random bytes in base64url: an opaque refresh token.
func randomToken() string {
	var b [32]byte
	_, _ = rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// tokenHash is the stored form of a refresh token.
func tokenHash(raw string) string {
	sum := sha256.Sum256([]byte(raw))
	return hex.EncodeToString(sum[:])
}

// issue signs the access token of g and stores a new refresh token in its
// family (a new family when g.family is empty), inside tx.
func (s *Service) issue(ctx context.Context, tx *sql.Tx, c Client, g grant) (Session, error) {
	access, err := s.accessToken(g)
	if err != nil {
		return Session{}, err
	}
	if g.family == "" {
		var b [16]byte
		_, _ = rand.Read(b[:])
		g.family = hex.EncodeToString(b[:])
	}
	raw := randomToken()
	now := s.now().UTC()
	var role string
	if g.subject == subjectUser {
		role = g.role // an admin's role is read afresh on every refresh
	}
	_, err = tx.ExecContext(ctx, `
		INSERT INTO refresh_tokens (token_hash, family_id, parent_hash, subject_type, subject_id, tenant_id, role, issued_at, expires_at, ip_address, user_agent)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		tokenHash(raw), g.family, nullable(g.parent), g.subject, g.id, nullID(g.tenantID), nullable(role),
		now, now.Add(s.cfg.RefreshTTL), nullable(sqldb.Text(c.IP, 45)), nullable(sqldb.Text(c.UserAgent, 500)))
	if err != nil {
		return Session{}, fmt.Errorf("store refresh token: %w", err)
	}
	return Session{Token: access, RefreshToken: raw, ExpiresIn: int(s.cfg.AccessTTL / time.Second)}, nil
}

// refreshRow is a stored refresh token.
type refreshRow struct {
	id        int64
	hash      string
	family    string
	subject   string
	subjectID int64
	tenantID  sql.NullInt64
	expires   time.Time
	used      sql.NullTime
	revoked   sql.NullTime
}

// findRefresh looks raw up; an unknown or malformed token is
// ErrInvalidRefresh.
func (s *Service) findRefresh(ctx context.Context, raw string) (refreshRow, error) {
	var r refreshRow
	if raw == "" {
		return r, fault.Field("missing_field", "refreshToken", "is required")
	}
	if len(raw) > 256 {
		return r, ErrInvalidRefresh
	}
	r.hash = tokenHash(raw)
	err := s.db.QueryRowContext(ctx, `
		SELECT id, family_id, subject_type, subject_id, tenant_id, expires_at, used_at, revoked_at
		FROM refresh_tokens WHERE token_hash = ?`, r.hash).
		Scan(&r.id, &r.family, &r.subject, &r.subjectID, &r.tenantID, &r.expires, &r.used, &r.revoked)
	if errors.Is(err, sql.ErrNoRows) {
		return r, ErrInvalidRefresh
	}
	if err != nil {
		return r, fmt.Errorf("find refresh token: %w", err)
	}
	return r, nil
}

// Refreshed is a rotated session; tenant-scoped sessions say which tenant
// and role.
type Refreshed struct {
	Session
	TenantCode string `json:"tenantCode,omitempty"`
	Role       string `json:"role,omitempty"`
}

// Refresh spends a refresh token and returns a new pair in the same family.
// A token already spent is reuse, the sign of a stolen token: the whole
// family (the thief's tokens and the victim's) is revoked. The spend is one
// conditional UPDATE, so of two concurrent refreshes of one token exactly
// one wins and the other is reuse. The grant is checked afresh: the account
// must be active and, for a tenant session, the membership and the tenant.
func (s *Service) Refresh(ctx context.Context, c Client, raw string) (Refreshed, error) {
	r, err := s.findRefresh(ctx, raw)
	if err != nil {
		return Refreshed{}, err
	}
	ev := event{Type: "refresh", Subject: r.subject, SubjectID: r.subjectID, TenantID: r.tenantID.Int64,
		Identifier: "family:" + r.family, Method: "refresh"}
	if err := s.checkSpendable(ctx, c, r, ev); err != nil {
		return Refreshed{}, err
	}
	g, err := s.regrant(ctx, r)
	if err != nil {
		ev.Reason = fault.CodeOf(err)
		return Refreshed{}, errors.Join(err, s.record(ctx, c, ev))
	}
	g.family, g.parent = r.family, r.hash
	var sess Session
	spent := false
	err = sqldb.InTx(ctx, s.db, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE refresh_tokens SET used_at = ?
			WHERE id = ? AND used_at IS NULL AND revoked_at IS NULL`, s.now().UTC(), r.id)
		if err != nil {
			return fmt.Errorf("spend refresh token: %w", err)
		}
		if n, _ := res.RowsAffected(); n != 1 {
			spent = true
			return errSpent
		}
		sess, err = s.issue(ctx, tx, c, g)
		return err
	})
	if spent {
		// Another request spent or revoked it between the read and the
		// update: look again to tell which.
		if r, err = s.findRefresh(ctx, raw); err != nil {
			return Refreshed{}, err
		}
		if err := s.checkSpendable(ctx, c, r, ev); err != nil {
			return Refreshed{}, err
		}
		return Refreshed{}, ErrRefreshRevoked
	}
	if err != nil {
		return Refreshed{}, err
	}
	ev.TenantCode, ev.Success = g.tenantCode, true
	if err := s.record(ctx, c, ev); err != nil {
		return Refreshed{}, err
	}
	return Refreshed{Session: sess, TenantCode: g.tenantCode, Role: g.role}, nil
}

var errSpent = errors.New("refresh token spent concurrently")

// checkSpendable refuses a spent (revoking its family), revoked or expired
// token, and records the refusal.
func (s *Service) checkSpendable(ctx context.Context, c Client, r refreshRow, ev event) error {
	var err error
	switch {
	case r.used.Valid:
		if rerr := s.revokeFamily(ctx, r.family, "reuse_detected"); rerr != nil {
			return rerr
		}
		ev.Type, err = "refresh_reuse", ErrRefreshReused
	case r.revoked.Valid:
		err = ErrRefreshRevoked
	case !s.now().Before(r.expires):
		err = ErrRefreshExpired
	default:
		return nil
	}
	ev.Reason = fault.CodeOf(err)
	if rerr := s.record(ctx, c, ev); rerr != nil {
		return rerr
	}
	return err
}

// regrant rebuilds what a refresh token grants from the current state: the
// account must still be active, a tenant session still a member of a tenant
// still active, with the role it has now.
func (s *Service) regrant(ctx context.Context, r refreshRow) (grant, error) {
	g := grant{subject: r.subject, id: r.subjectID}
	if r.subject == subjectAdmin {
		var err error
		g.role, err = AdminRole(ctx, s.db, r.subjectID)
		return g, err
	}
	if err := s.activeUser(ctx, r.subjectID); err != nil {
		return g, err
	}
	if r.tenantID.Valid {
		m, err := s.membership(ctx, s.db, r.subjectID, byTenantID, r.tenantID.Int64)
		if err != nil {
			return g, err
		}
		g.tenantID, g.tenantCode, g.role = m.tenantID, m.code, m.role
	}
	return g, nil
}

// activeUser refuses a global user that no longer exists or is not active.
func (s *Service) activeUser(ctx context.Context, id int64) error {
	var status string
	err := s.db.QueryRowContext(ctx, `SELECT status FROM global_users WHERE id = ?`, id).Scan(&status)
	if errors.Is(err, sql.ErrNoRows) || err == nil && status != "active" {
		return ErrAccountDisabled
	}
	if err != nil {
		return fmt.Errorf("read user: %w", err)
	}
	return nil
}

// revokeFamily revokes every live token of family.
func (s *Service) revokeFamily(ctx context.Context, family, reason string) error {
	_, err := s.db.ExecContext(context.WithoutCancel(ctx), `UPDATE refresh_tokens SET revoked_at = ?, revoked_reason = ?
		WHERE family_id = ? AND revoked_at IS NULL`, s.now().UTC(), reason, family)
	if err != nil {
		return fmt.Errorf("revoke token family: %w", err)
	}
	return nil
}

// Logout revokes the whole family of a refresh token: the session it
// belongs to ends on every device that shares it. Logging out twice is not
// an error.
func (s *Service) Logout(ctx context.Context, c Client, raw string) error {
	r, err := s.findRefresh(ctx, raw)
	if err != nil {
		return err
	}
	if err := s.revokeFamily(ctx, r.family, "logout"); err != nil {
		return err
	}
	return s.record(ctx, c, event{Type: "logout", Subject: r.subject, SubjectID: r.subjectID, TenantID: r.tenantID.Int64, Success: true})
}
