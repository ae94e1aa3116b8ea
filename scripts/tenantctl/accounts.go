package main

import (
	"context"
	"database/sql"
	"errors"
	"flag"
	"fmt"
	"regexp"
	"strings"
	"unicode/utf8"

	"github.com/unitenant/unitenant/shared/identity"
)

// globalUser is the part of a global_users row tenantctl needs.
type globalUser struct {
	ID       int64  `json:"globalUserId"`
	Phone    string `json:"phone"`
	RealName string `json:"realName"`
}

// findGlobalUser returns the global user with phone, if any.
func (c *cli) findGlobalUser(ctx context.Context, phone string) (globalUser, bool, error) {
	u := globalUser{Phone: phone}
	var name sql.NullString
	err := c.db.QueryRowContext(ctx, "SELECT id, real_name FROM global_users WHERE phone = ? AND deleted_at IS NULL", phone).Scan(&u.ID, &name)
	if errors.Is(err, sql.ErrNoRows) {
		return u, false, nil
	}
	if err != nil {
		return u, false, fmt.Errorf("find global user %s: %w", phone, err)
	}
	u.RealName = name.String
	return u, true, nil
}

// mustFindGlobalUser is findGlobalUser for commands that need the user.
func (c *cli) mustFindGlobalUser(ctx context.Context, phone string) (globalUser, error) {
	if err := c.checkPhone(phone); err != nil {
		return globalUser{}, err
	}
	u, ok, err := c.findGlobalUser(ctx, phone)
	if err == nil && !ok {
		err = fmt.Errorf("no global user has phone %s (create one: tenantctl user add --phone %s --password ... --name ...)", phone, phone)
	}
	return u, err
}

func (c *cli) checkPhone(phone string) error {
	if !c.phone.MatchString(phone) {
		return fmt.Errorf("phone %q is not a valid mobile number (PHONE_PATTERN %s)", phone, c.phone)
	}
	return nil
}

// checkName refuses an empty or over-long name.
func checkName(field, v string, max int) error {
	switch {
	case strings.TrimSpace(v) == "":
		return fmt.Errorf("%s is required", field)
	case utf8.RuneCountInString(v) > max:
		return fmt.Errorf("%s must be at most %d characters", field, max)
	}
	return nil
}

// createGlobalUser checks and inserts a global user; an existing phone is
// refused.
func (c *cli) createGlobalUser(ctx context.Context, phone, password, name string) (globalUser, error) {
	name = strings.TrimSpace(name)
	if err := errors.Join(c.checkPhone(phone), identity.ValidatePassword(password), checkName("--name", name, 50)); err != nil {
		return globalUser{}, err
	}
	if u, ok, err := c.findGlobalUser(ctx, phone); err != nil || ok {
		if err == nil {
			err = fmt.Errorf("phone %s is taken by global user %d", phone, u.ID)
		}
		return globalUser{}, err
	}
	id, err := c.insertAccount(ctx, "global user "+phone, password, `INSERT INTO global_users
		(password_hash, phone, real_name, registration_source, password_changed_at)
		VALUES (?, ?, ?, 'tenantctl', CURRENT_TIMESTAMP(3))`, phone, name)
	return globalUser{ID: id, Phone: phone, RealName: name}, err
}

func (c *cli) userAdd(ctx context.Context, args []string) error {
	var phone, password, name string
	if err := c.flags("user add", args, func(fs *flag.FlagSet) {
		fs.StringVar(&phone, "phone", "", "mobile number, the login")
		fs.StringVar(&password, "password", "", "password (8+ characters, letters and digits)")
		fs.StringVar(&name, "name", "", "real name")
	}, "phone", "password", "name"); err != nil {
		return err
	}
	u, err := c.createGlobalUser(ctx, phone, password, name)
	if err != nil {
		return err
	}
	return c.print(u)
}

// Admin roles, as admin_users.role allows them.
var adminRoles = []string{"super_admin", "admin", "operator"}

var usernamePattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{2,49}$`)

// admin is the part of an admin_users row tenantctl shows.
type admin struct {
	ID       int64  `json:"adminId"`
	Username string `json:"username"`
	Role     string `json:"role"`
}

// findAdmin returns the administrator username and its password hash, if any.
func (c *cli) findAdmin(ctx context.Context, username string) (admin, string, bool, error) {
	a := admin{Username: username}
	var hash string
	err := c.db.QueryRowContext(ctx, "SELECT id, role, password_hash FROM admin_users WHERE username = ?", username).Scan(&a.ID, &a.Role, &hash)
	if errors.Is(err, sql.ErrNoRows) {
		return a, "", false, nil
	}
	if err != nil {
		return a, "", false, fmt.Errorf("find admin %s: %w", username, err)
	}
	return a, hash, true, nil
}

func (c *cli) checkAdmin(username, password, role string) error {
	var errs []error
	if !usernamePattern.MatchString(username) {
		errs = append(errs, fmt.Errorf("username %q: want 3 to 50 letters, digits, '.', '_' or '-'", username))
	}
	if !contains(adminRoles, role) {
		errs = append(errs, fmt.Errorf("role %q: want one of %s", role, strings.Join(adminRoles, ", ")))
	}
	return errors.Join(append(errs, identity.ValidatePassword(password))...)
}

// createAdmin checks and inserts an administrator; a taken username is refused.
func (c *cli) createAdmin(ctx context.Context, username, password, role string) (admin, error) {
	if err := c.checkAdmin(username, password, role); err != nil {
		return admin{}, err
	}
	if a, _, ok, err := c.findAdmin(ctx, username); err != nil || ok {
		if err == nil {
			err = fmt.Errorf("admin username %s is taken (id %d)", username, a.ID)
		}
		return admin{}, err
	}
	id, err := c.insertAccount(ctx, "admin "+username, password, `INSERT INTO admin_users
		(password_hash, username, role, status, password_changed_at)
		VALUES (?, ?, ?, 'active', CURRENT_TIMESTAMP(3))`, username, role)
	return admin{ID: id, Username: username, Role: role}, err
}

// insertAccount runs insert with the bcrypt hash of password as its first
// argument and returns the new row's id.
func (c *cli) insertAccount(ctx context.Context, what, password, insert string, args ...any) (int64, error) {
	hash, err := identity.HashPassword(password, c.bcryptCost)
	if err != nil {
		return 0, err
	}
	res, err := c.db.ExecContext(ctx, insert, append([]any{hash}, args...)...)
	if err != nil {
		return 0, fmt.Errorf("create %s: %w", what, err)
	}
	id, err := res.LastInsertId()
	if err != nil {
		return 0, fmt.Errorf("create %s: %w", what, err)
	}
	return id, nil
}

func (c *cli) adminAdd(ctx context.Context, args []string) error {
	var username, password, role string
	if err := c.flags("admin add", args, func(fs *flag.FlagSet) {
		fs.StringVar(&username, "username", "", "login name")
		fs.StringVar(&password, "password", "", "password (8+ characters, letters and digits)")
		fs.StringVar(&role, "role", "super_admin", "super_admin, admin or operator")
	}, "username", "password"); err != nil {
		return err
	}
	a, err := c.createAdmin(ctx, username, password, role)
	if err != nil {
		return err
	}
	return c.print(a)
}

func contains(list []string, v string) bool {
	for _, s := range list {
		if s == v {
			return true
		}
	}
	return false
}
