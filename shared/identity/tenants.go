package identity

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/unitenant/unitenant/shared/auth"
	"github.com/unitenant/unitenant/shared/fault"
	"github.com/unitenant/unitenant/shared/sqldb"
	"github.com/unitenant/unitenant/shared/tenancy"
)

// ErrNotAMember refuses a tenant the user has no active membership of. It is
// also the answer for a tenant that does not exist, so non-members learn
// nothing about which tenants exist.
var ErrNotAMember = fault.New(fault.Forbidden, "not_a_member", "you are not a member of this tenant")

// Membership is one tenant a user belongs to, as the login response lists it.
type Membership struct {
	TenantCode  string     `json:"tenantCode"`
	TenantName  string     `json:"tenantName"`
	Domain      string     `json:"domain"`
	Role        string     `json:"role"`
	LastLoginAt *time.Time `json:"lastLoginAt"`
	LoginCount  int        `json:"loginCount"`
	Status      string     `json:"status"`
}

// Tenants lists the active memberships of user in active tenants, the most
// recently entered first (seed 000 §3.2 findUserTenants). A tenant's domain
// is its primary custom domain, else its subdomain of the base domain.
func (s *Service) Tenants(ctx context.Context, user int64) ([]Membership, error) {
	rows, err := s.db.QueryContext(ctx, `
		SELECT t.tenant_code, t.tenant_name, t.subdomain, t.status, r.role_in_tenant, r.last_login_at, r.login_count,
		       (SELECT d.domain FROM tenant_domains d
		         WHERE d.tenant_id = t.id AND d.domain_type = 'custom' AND d.is_primary = 1
		         ORDER BY d.id LIMIT 1)
		FROM global_user_tenant_relations r
		JOIN tenants t ON t.id = r.tenant_id
		WHERE r.global_user_id = ? AND r.status = 'active' AND t.status = 'active' AND t.deleted_at IS NULL
		ORDER BY r.last_login_at IS NULL, r.last_login_at DESC, t.tenant_code`, user)
	if err != nil {
		return nil, fmt.Errorf("list memberships: %w", err)
	}
	defer rows.Close()
	out := []Membership{}
	for rows.Next() {
		var (
			m         Membership
			subdomain string
			last      sql.NullTime
			custom    sql.NullString
		)
		if err := rows.Scan(&m.TenantCode, &m.TenantName, &subdomain, &m.Status, &m.Role, &last, &m.LoginCount, &custom); err != nil {
			return nil, fmt.Errorf("scan membership: %w", err)
		}
		m.Domain = subdomain + "." + s.cfg.BaseDomain
		if custom.Valid && custom.String != "" {
			m.Domain = custom.String
		}
		if last.Valid {
			m.LastLoginAt = &last.Time
		}
		out = append(out, m)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list memberships: %w", err)
	}
	return out, nil
}

// member is a membership joined with its tenant.
type member struct {
	relationID int64
	tenantID   int64
	code       string
	role       string
}

// Which column identifies the tenant in membership lookups (constants,
// never input).
const (
	byTenantCode = "t.tenant_code"
	byTenantID   = "t.id"
)

type querier interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// membership returns user's active membership of the tenant whose column
// (byTenantCode or byTenantID) equals key, refusing a non-member with
// ErrNotAMember and a member of a tenant that is not active with the
// tenancy gate's answer (suspended 403, deleted 410, provisioning 503).
// With a *sql.Tx it locks the membership row.
func (s *Service) membership(ctx context.Context, q querier, user int64, column string, key any) (member, error) {
	var (
		m                    member
		relStatus, tenStatus string
		deleted              sql.NullTime
	)
	query := `SELECT r.id, t.id, t.tenant_code, r.role_in_tenant, r.status, t.status, t.deleted_at
		FROM global_user_tenant_relations r JOIN tenants t ON t.id = r.tenant_id
		WHERE r.global_user_id = ? AND ` + column + ` = ?`
	if _, ok := q.(*sql.Tx); ok {
		query += ` FOR UPDATE`
	}
	err := q.QueryRowContext(ctx, query, user, key).Scan(&m.relationID, &m.tenantID, &m.code, &m.role, &relStatus, &tenStatus, &deleted)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return m, ErrNotAMember
	case err != nil:
		return m, fmt.Errorf("read membership: %w", err)
	case relStatus != "active":
		return m, ErrNotAMember
	case deleted.Valid && tenStatus == tenancy.StatusActive:
		tenStatus = tenancy.StatusDeleted
	}
	if tenStatus != tenancy.StatusActive {
		return m, tenancy.Gate(&tenancy.Tenant{Code: m.code, Status: tenStatus})
	}
	return m, nil
}

// Switched is a tenant-scoped session.
type Switched struct {
	Session
	TenantCode string `json:"tenantCode"`
	Role       string `json:"role"`
}

// SwitchTenant opens a session scoped to tenant code for user: an access
// token for the tenant audience with tid and role, and a refresh token of a
// new family carrying the scope. It counts the entry on the membership
// (first and last login, login count).
func (s *Service) SwitchTenant(ctx context.Context, c Client, user int64, code string) (Switched, error) {
	if code == "" {
		return Switched{}, fault.Field("missing_field", "tenantCode", "is required")
	}
	if !tenancy.ValidCode(code) {
		return Switched{}, fault.Field("invalid_tenant_code", "tenantCode", "is not a valid tenant code")
	}
	ev := event{Type: "switch_tenant", Subject: subjectUser, SubjectID: user, Identifier: code, Method: "tenant_switch"}
	if err := s.activeUser(ctx, user); err != nil {
		ev.Reason = fault.CodeOf(err)
		return Switched{}, errors.Join(err, s.record(ctx, c, ev))
	}
	var out Switched
	err := sqldb.InTx(ctx, s.db, func(tx *sql.Tx) error {
		m, err := s.membership(ctx, tx, user, byTenantCode, code)
		if err != nil {
			return err
		}
		now := s.now().UTC()
		if _, err := tx.ExecContext(ctx, `UPDATE global_user_tenant_relations
			SET first_login_at = COALESCE(first_login_at, ?), last_login_at = ?, login_count = login_count + 1
			WHERE id = ?`, now, now, m.relationID); err != nil {
			return fmt.Errorf("count tenant login: %w", err)
		}
		ev.TenantID, ev.TenantCode = m.tenantID, m.code
		sess, err := s.issue(ctx, tx, c, grant{subject: subjectUser, id: user, tenantID: m.tenantID, tenantCode: m.code, role: m.role})
		out = Switched{Session: sess, TenantCode: m.code, Role: m.role}
		return err
	})
	if err != nil {
		if _, ok := fault.As(err); ok {
			ev.Reason = fault.CodeOf(err)
			return Switched{}, errors.Join(err, s.record(ctx, c, ev))
		}
		return Switched{}, err
	}
	ev.Success = true
	return out, s.record(ctx, c, ev)
}

// Me is the caller as GET /api/auth/me shows it: the user and, for a
// tenant-scoped token, the tenant and role.
type Me struct {
	User
	TenantCode string `json:"tenantCode,omitempty"`
	Role       string `json:"role,omitempty"`
}

// Me is user as GET /api/auth/me shows it. For a token scoped to tenant
// code it checks the membership as it is now, not as the token says: a
// member removed (or a tenant suspended or deleted) since the token was
// issued is refused as a tenant route would refuse them, and a changed
// role shows as it is.
func (s *Service) Me(ctx context.Context, user int64, code string) (Me, error) {
	u, err := s.User(ctx, user)
	if err != nil || code == "" {
		return Me{User: u}, err
	}
	m, err := s.membership(ctx, s.db, user, byTenantCode, code)
	if err != nil {
		return Me{}, err
	}
	return Me{User: u, TenantCode: m.code, Role: m.role}, nil
}

// User returns global user id, refusing one that is gone or disabled.
func (s *Service) User(ctx context.Context, id int64) (User, error) {
	var (
		u                       User
		realName, email, avatar sql.NullString
		created                 time.Time
		last                    sql.NullTime
	)
	err := s.db.QueryRowContext(ctx, `SELECT id, phone, real_name, email, avatar, status, created_at, last_login_at
		FROM global_users WHERE id = ?`, id).Scan(&u.GlobalUserID, &u.Phone, &realName, &email, &avatar, &u.Status, &created, &last)
	if errors.Is(err, sql.ErrNoRows) {
		return u, ErrAccountDisabled
	}
	if err != nil {
		return u, fmt.Errorf("read user: %w", err)
	}
	if u.Status != "active" {
		return u, ErrAccountDisabled
	}
	u.RealName, u.Email, u.Avatar, u.CreatedAt = realName.String, email.String, avatar.String, &created
	if last.Valid {
		u.LastLoginAt = &last.Time
	}
	return u, nil
}

// MemberRole is the user's role in the tenant now, from the active
// membership: a token's role claim outlives a demotion or a removal made
// after it was issued, the membership does not. No active membership is
// ErrNotAMember.
func MemberRole(ctx context.Context, db *sql.DB, userID, tenantID int64) (string, error) {
	var role string
	err := db.QueryRowContext(ctx, "SELECT role_in_tenant FROM global_user_tenant_relations WHERE global_user_id = ? AND tenant_id = ? AND status = 'active'",
		userID, tenantID).Scan(&role)
	if errors.Is(err, sql.ErrNoRows) {
		return "", ErrNotAMember
	}
	if err != nil {
		return "", fmt.Errorf("membership of user %d in tenant %d: %w", userID, tenantID, err)
	}
	return role, nil
}

// adminRanks orders the admin roles (admin_users.role).
var adminRanks = map[string]int{"operator": 1, "admin": 2, "super_admin": 3}

// AdminRole is the admin's role now: a deleted or disabled account is
// ErrAccountDisabled. A token's role claim outlives a demotion or a
// removal made after it was issued; the account does not.
func AdminRole(ctx context.Context, db *sql.DB, adminID int64) (string, error) {
	var role, status string
	err := db.QueryRowContext(ctx, "SELECT role, status FROM admin_users WHERE id = ?", adminID).Scan(&role, &status)
	if errors.Is(err, sql.ErrNoRows) || err == nil && status != "active" {
		return "", ErrAccountDisabled
	}
	if err != nil {
		return "", fmt.Errorf("read admin %d: %w", adminID, err)
	}
	return role, nil
}

// RequireAdmin lets the admin of c through when both the token and the
// account as it is now give at least the role least: 403
// permission_denied otherwise, or ErrAccountDisabled for an account
// deleted or disabled since the token was issued.
func RequireAdmin(ctx context.Context, db *sql.DB, c *auth.Claims, least string) error {
	denied := fault.New(fault.Forbidden, "permission_denied", "this needs the %s role", least)
	if c == nil || c.Kind != auth.KindAdmin || adminRanks[c.Role] < adminRanks[least] {
		return denied
	}
	role, err := AdminRole(ctx, db, c.SubjectID())
	if err != nil {
		return err
	}
	if adminRanks[role] < adminRanks[least] {
		return denied
	}
	return nil
}

// ManagesTenant reports whether role runs the tenant — its owner and
// admins: its API keys, deleting its files.
func ManagesTenant(role string) bool { return role == "owner" || role == "admin" }
