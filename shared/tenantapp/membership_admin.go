package tenantapp

import (
	"context"
	"database/sql"
	"fmt"

	"github.com/unitenant/unitenant/shared/fault"
)

// SetRole makes role the member's only role: Bind (the user exists, is
// active, holds role, the relation says role) and then every other role
// taken away, in the tenant database.
func SetRole(ctx context.Context, sys *sql.DB, tenant TxDB, b Binding) (BindResult, error) {
	res, err := Bind(ctx, sys, tenant, b)
	if err != nil {
		return res, err
	}
	if _, err := tenant.ExecContext(ctx, `DELETE ur FROM user_roles ur JOIN roles r ON r.id = ur.role_id
		WHERE ur.user_id = ? AND r.code <> ?`, res.TenantUserID, b.Role); err != nil {
		return res, fmt.Errorf("set role of user %d: %w", res.TenantUserID, err)
	}
	return res, nil
}

// Unbind ends a membership: the relation is marked removed in the system
// database first (so the user can no longer switch in), then the tenant user
// is made inactive. Rerunning it is harmless.
func Unbind(ctx context.Context, sys *sql.DB, tenant DB, tenantID, globalUserID int64) error {
	res, err := sys.ExecContext(ctx, `UPDATE global_user_tenant_relations SET status = 'removed'
		WHERE tenant_id = ? AND global_user_id = ?`, tenantID, globalUserID)
	if err != nil {
		return fmt.Errorf("unbind user %d: %w", globalUserID, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		var exists int
		_ = sys.QueryRowContext(ctx, "SELECT COUNT(*) FROM global_user_tenant_relations WHERE tenant_id = ? AND global_user_id = ?", tenantID, globalUserID).Scan(&exists)
		if exists == 0 {
			return fault.New(fault.NotFound, "not_a_member", "user %d is not a member of this tenant", globalUserID)
		}
	}
	if _, err := tenant.ExecContext(ctx, "UPDATE users SET status = 'inactive' WHERE global_user_id = ?", globalUserID); err != nil {
		return fmt.Errorf("disable tenant user of %d: %w", globalUserID, err)
	}
	return nil
}
