package tenantapp

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/unitenant/unitenant/shared/fault"
)

// ErrNotMember is the answer for a global user with no active user in the
// tenant.
var ErrNotMember = fault.New(fault.Forbidden, "not_a_member", "you are not an active member of this tenant")

// User is a tenant user as the API shows it.
type User struct {
	ID           int64      `json:"id"`
	GlobalUserID *int64     `json:"globalUserId"`
	Phone        string     `json:"phone"`
	RealName     string     `json:"realName"`
	Nickname     string     `json:"nickname"`
	UserType     string     `json:"userType"`
	Status       string     `json:"status"`
	Roles        []string   `json:"roles"`
	LastLoginAt  *time.Time `json:"lastLoginAt"`
	CreatedAt    time.Time  `json:"createdAt"`
}

// Member is the caller inside the tenant: its user, the codes of its active
// roles and the permissions they grant (resource:action), both sorted.
type Member struct {
	User        User     `json:"user"`
	Roles       []string `json:"roles"`
	Permissions []string `json:"permissions"`
}

// Can reports whether the member holds permission.
func (m *Member) Can(permission string) bool {
	_, ok := slices.BinarySearch(m.Permissions, permission)
	return ok
}

// Require returns permission_denied, naming permission, unless the member
// holds it.
func (m *Member) Require(permission string) error {
	if m.Can(permission) {
		return nil
	}
	return fault.New(fault.Forbidden, "permission_denied", "permission %s is required", permission)
}

const userColumns = `u.id, u.global_user_id, COALESCE(u.phone, ''), u.real_name, u.nickname, u.user_type, u.status, u.last_login_at, u.created_at`

func scanUser(s scanner) (User, error) {
	var u User
	var gid sql.NullInt64
	var last sql.NullTime
	if err := s.Scan(&u.ID, &gid, &u.Phone, &u.RealName, &u.Nickname, &u.UserType, &u.Status, &last, &u.CreatedAt); err != nil {
		return User{}, err
	}
	if gid.Valid {
		u.GlobalUserID = &gid.Int64
	}
	if last.Valid {
		u.LastLoginAt = &last.Time
	}
	u.Roles = []string{}
	return u, nil
}

// activeRoles are the roles of a user that count: the role is active and
// the grant has not expired.
const activeRoles = `
	FROM user_roles ur JOIN roles r ON r.id = ur.role_id
	WHERE r.status = 'active' AND (ur.expires_at IS NULL OR ur.expires_at > CURRENT_TIMESTAMP(3))`

// LoadMember finds the active, not deleted tenant user bound to global user
// globalUserID and loads its roles and permissions. Anyone else gets
// ErrNotMember.
func LoadMember(ctx context.Context, db DB, globalUserID int64) (*Member, error) {
	if globalUserID <= 0 {
		return nil, ErrNotMember
	}
	u, err := scanUser(db.QueryRowContext(ctx, `SELECT `+userColumns+` FROM users u
		WHERE u.global_user_id = ? AND u.status = 'active' AND u.deleted_at IS NULL`, globalUserID))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, ErrNotMember
	}
	if err != nil {
		return nil, fmt.Errorf("load member %d: %w", globalUserID, err)
	}
	m := &Member{User: u}
	if m.Roles, err = queryStrings(ctx, db, `SELECT r.code`+activeRoles+` AND ur.user_id = ? ORDER BY r.code`, u.ID); err != nil {
		return nil, fmt.Errorf("load roles of user %d: %w", u.ID, err)
	}
	m.User.Roles = m.Roles
	if m.Permissions, err = queryStrings(ctx, db, `SELECT DISTINCT p.code FROM permissions p
		JOIN role_permissions rp ON rp.permission_id = p.id
		WHERE p.status = 'active' AND rp.role_id IN (SELECT r.id`+activeRoles+` AND ur.user_id = ?)
		ORDER BY p.code`, u.ID); err != nil {
		return nil, fmt.Errorf("load permissions of user %d: %w", u.ID, err)
	}
	// BinarySearch in Can needs byte order, whatever the collation sorted by.
	slices.Sort(m.Permissions)
	return m, nil
}

// queryStrings returns the single string column of a query's rows.
func queryStrings(ctx context.Context, db DB, query string, args ...any) ([]string, error) {
	rows, err := db.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := []string{}
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, rows.Err()
}

// ListUsers returns a page of the tenant's users (deleted ones excluded),
// oldest first, each with its active roles.
func ListUsers(ctx context.Context, db DB, p Page) (List[User], error) {
	l, err := listRows(ctx, db, p, "users", userColumns, "users u", "u.deleted_at IS NULL", "u.id", scanUser)
	if err != nil {
		return List[User]{}, err
	}
	users := l.Items
	byID := map[int64]int{}
	for i, u := range users {
		byID[u.ID] = i
	}
	if len(users) > 0 {
		ids := make([]any, 0, len(users))
		for _, u := range users {
			ids = append(ids, u.ID)
		}
		rows, err := db.QueryContext(ctx, `SELECT ur.user_id, r.code`+activeRoles+
			` AND ur.user_id IN (?`+strings.Repeat(",?", len(ids)-1)+`) ORDER BY ur.user_id, r.code`, ids...)
		if err != nil {
			return List[User]{}, fmt.Errorf("list user roles: %w", err)
		}
		defer rows.Close()
		for rows.Next() {
			var id int64
			var code string
			if err := rows.Scan(&id, &code); err != nil {
				return List[User]{}, fmt.Errorf("list user roles: %w", err)
			}
			u := &users[byID[id]]
			u.Roles = append(u.Roles, code)
		}
		if err := rows.Err(); err != nil {
			return List[User]{}, fmt.Errorf("list user roles: %w", err)
		}
	}
	return l, nil
}
