package tenantapp

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/unitenant/unitenant/shared/fault"
)

// Binding makes a global user a member of a tenant with a role.
type Binding struct {
	GlobalUserID int64
	Phone        string
	RealName     string
	TenantID     int64
	TenantCode   string
	Role         string // a role code of the tenant's roles table
}

// BindResult says what Bind changed; all false when it changed nothing.
type BindResult struct {
	TenantUserID    int64 `json:"tenantUserId"`
	UserCreated     bool  `json:"userCreated"`
	UserActivated   bool  `json:"userActivated"`
	RoleGranted     bool  `json:"roleGranted"`
	RelationChanged bool  `json:"relationChanged"`
}

// Bind makes b's global user an active member of b's tenant: a user row
// bound by global_user_id in the tenant database (an unbound row with the
// same phone is adopted) holding the role, then the active relation in the
// system database pointing at that row.
//
// It is idempotent, and ordered so that a crash between the two databases
// leaves a tenant user nobody can switch into yet (harmless), which running
// Bind again completes. A role the tenant does not define is refused before
// anything is written.
func Bind(ctx context.Context, sys *sql.DB, tenant TxDB, b Binding) (BindResult, error) {
	tx, err := tenant.BeginTx(ctx, nil)
	if err != nil {
		return BindResult{}, fmt.Errorf("bind user %d to tenant %s: begin: %w", b.GlobalUserID, b.TenantCode, err)
	}
	defer tx.Rollback() // a no-op once committed
	res, err := bindTenantUser(ctx, tx, b)
	if err != nil {
		return BindResult{}, err
	}
	if err := tx.Commit(); err != nil {
		return BindResult{}, fmt.Errorf("bind user %d to tenant %s: commit: %w", b.GlobalUserID, b.TenantCode, err)
	}
	r, err := sys.ExecContext(ctx, `
		INSERT INTO global_user_tenant_relations (global_user_id, tenant_id, tenant_code, tenant_user_id, role_in_tenant, status)
		VALUES (?, ?, ?, ?, ?, 'active')
		ON DUPLICATE KEY UPDATE tenant_code = VALUES(tenant_code), tenant_user_id = VALUES(tenant_user_id),
		  role_in_tenant = VALUES(role_in_tenant), status = VALUES(status)`,
		b.GlobalUserID, b.TenantID, b.TenantCode, strconv.FormatInt(res.TenantUserID, 10), b.Role)
	if err != nil {
		return BindResult{}, fmt.Errorf("bind user %d to tenant %s: relation: %w", b.GlobalUserID, b.TenantCode, err)
	}
	// 1 = inserted, 2 = updated, 0 = the row already said all this.
	n, _ := r.RowsAffected()
	res.RelationChanged = n > 0
	return res, nil
}

func bindTenantUser(ctx context.Context, tx *sql.Tx, b Binding) (BindResult, error) {
	var res BindResult
	var roleID int64
	err := tx.QueryRowContext(ctx, "SELECT id FROM roles WHERE code = ? AND status = 'active'", b.Role).Scan(&roleID)
	if errors.Is(err, sql.ErrNoRows) {
		codes, _ := queryStrings(ctx, tx, "SELECT code FROM roles WHERE status = 'active' ORDER BY sort_order, code")
		return res, fault.New(fault.Invalid, "unknown_role", "tenant %s has no role %q (its roles: %s)", b.TenantCode, b.Role, strings.Join(codes, ", "))
	}
	if err != nil {
		return res, fmt.Errorf("find role %s: %w", b.Role, err)
	}

	var id int64
	var gid sql.NullInt64
	var status string
	var deleted sql.NullTime
	err = tx.QueryRowContext(ctx, `SELECT id, global_user_id, status, deleted_at FROM users
		WHERE global_user_id = ? OR (phone = ? AND phone <> '') ORDER BY global_user_id = ? DESC LIMIT 1 FOR UPDATE`,
		b.GlobalUserID, b.Phone, b.GlobalUserID).Scan(&id, &gid, &status, &deleted)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		r, err := tx.ExecContext(ctx, `INSERT INTO users (global_user_id, phone, real_name, user_type, status) VALUES (?, ?, ?, ?, 'active')`,
			b.GlobalUserID, nullIfEmpty(b.Phone), b.RealName, userTypeFor(b.Role))
		if err != nil {
			return res, fmt.Errorf("create tenant user: %w", err)
		}
		if id, err = r.LastInsertId(); err != nil {
			return res, fmt.Errorf("create tenant user: %w", err)
		}
		res.UserCreated = true
	case err != nil:
		return res, fmt.Errorf("find tenant user: %w", err)
	case gid.Valid && gid.Int64 != b.GlobalUserID:
		return res, fault.New(fault.Conflict, "phone_bound_elsewhere",
			"tenant %s already has user %d with phone %s bound to another global user (%d)", b.TenantCode, id, b.Phone, gid.Int64)
	case !gid.Valid || status != "active" || deleted.Valid:
		if _, err := tx.ExecContext(ctx, "UPDATE users SET global_user_id = ?, status = 'active', deleted_at = NULL WHERE id = ?", b.GlobalUserID, id); err != nil {
			return res, fmt.Errorf("activate tenant user %d: %w", id, err)
		}
		res.UserActivated = true
	}
	res.TenantUserID = id

	var granted int
	if err := tx.QueryRowContext(ctx, "SELECT COUNT(*) FROM user_roles WHERE user_id = ? AND role_id = ?", id, roleID).Scan(&granted); err != nil {
		return res, fmt.Errorf("find role grant: %w", err)
	}
	if granted == 0 {
		if _, err := tx.ExecContext(ctx, "INSERT INTO user_roles (user_id, role_id) VALUES (?, ?)", id, roleID); err != nil {
			return res, fmt.Errorf("grant role %s to user %d: %w", b.Role, id, err)
		}
		res.RoleGranted = true
	}
	return res, nil
}

// userTypeFor is the users.user_type a new member gets from its role.
func userTypeFor(role string) string {
	switch role {
	case "teacher", "parent":
		return role
	}
	return "staff"
}

func nullIfEmpty(s string) any {
	if s == "" {
		return nil
	}
	return s
}
