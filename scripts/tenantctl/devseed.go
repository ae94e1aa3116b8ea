package main

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/crypto/bcrypt"

	"github.com/unitenant/unitenant/shared/aibridge"
	"github.com/unitenant/unitenant/shared/identity"
	"github.com/unitenant/unitenant/shared/logging"
	"github.com/unitenant/unitenant/shared/provisioning"
	"github.com/unitenant/unitenant/shared/sqldb"
)

// The demo data of `make dev`.
var (
	devTenants = []struct{ code, name string }{
		{"k001", "阳光幼儿园 (demo k001)"},
		{"k002", "星星幼儿园 (demo k002)"},
	}
	devAdminUsername = "admin"
	devUserPhone     = "13800000000"
	devUserName      = "Demo User"
	// The demo AI model, served by the local fake provider make dev runs
	// (scripts/fakeai), enabled for the demo tenants.
	devAIModel    = "dev-fake"
	devAIEndpoint = "http://127.0.0.1:8090/v1"
	devAIKey      = "dev-fake-key"
	devAICredit   = "100"
)

// devCredentials is .dev/credentials.json: the passwords dev-seed generated,
// kept so later runs can show them again. Passwords given through the
// environment are never written here.
type devCredentials struct {
	Admin *devAccount `json:"admin,omitempty"`
	User  *devAccount `json:"user,omitempty"`
}

// devAccount is one seeded login. Password is empty when dev-seed does not
// know it (set through the environment, or made before dev-seed).
type devAccount struct {
	Login        string `json:"login"`
	Password     string `json:"password,omitempty"`
	PasswordFrom string `json:"passwordFrom,omitempty"` // generated | DEV_..._PASSWORD | unknown
}

// seedResult is what dev-seed prints.
type seedResult struct {
	AlreadySeeded   bool         `json:"alreadySeeded"`
	CredentialsFile string       `json:"credentialsFile"`
	Admin           devAccount   `json:"admin"`
	User            devAccount   `json:"user"`
	Tenants         []seedTenant `json:"tenants"`
	AIModel         string       `json:"aiModel"`
	Changes         []string     `json:"changes"`
}

type seedTenant struct {
	Code    string `json:"code"`
	Name    string `json:"name"`
	Created bool   `json:"created"`
}

// devSeed makes what `make dev` needs: the super admin, the demo tenants, a
// demo user who is admin in both, and an AI model they may call. Rerunning changes nothing and prints the
// same credentials.
func (c *cli) devSeed(ctx context.Context, args []string) error {
	var credPath string
	var port int
	if err := c.flags("dev-seed", args, func(fs *flag.FlagSet) {
		fs.StringVar(&credPath, "credentials", filepath.Join(".dev", "credentials.json"), "where generated passwords are kept")
		fs.IntVar(&port, "port", 8080, "port of the local gateway, for the example commands")
	}); err != nil {
		return err
	}
	creds, err := loadCredentials(credPath)
	if err != nil {
		return err
	}
	if _, err := c.devAIEndpoint(); err != nil {
		return err // before anything is made
	}
	// The summary is for people: keep per-migration progress out of it.
	if c.base.LogLevel < slog.LevelWarn {
		c.log = logging.New(c.diag, "tenantctl", slog.LevelWarn)
	}
	res := seedResult{CredentialsFile: credPath, Changes: []string{}}

	// Accounts first, so that a crash leaves the generated passwords on disk
	// before the rows that need them exist.
	res.Admin, err = c.seedAdmin(ctx, creds, credPath, &res.Changes)
	if err != nil {
		return err
	}
	u, err := c.seedUser(ctx, creds, credPath, &res)
	if err != nil {
		return err
	}
	for _, dt := range devTenants {
		created, err := c.seedTenant(ctx, dt.code, dt.name, u)
		if err != nil {
			return err
		}
		if created {
			res.Changes = append(res.Changes, "created tenant "+dt.code)
		}
		m, err := c.bind(ctx, dt.code, u, "admin")
		if err != nil {
			return err
		}
		if m.UserCreated || m.UserActivated || m.RoleGranted || m.RelationChanged {
			res.Changes = append(res.Changes, fmt.Sprintf("made %s admin of %s", u.Phone, dt.code))
		}
		res.Tenants = append(res.Tenants, seedTenant{Code: dt.code, Name: dt.name, Created: created})
	}
	if err := c.seedAI(ctx, &res); err != nil {
		return err
	}
	res.AlreadySeeded = len(res.Changes) == 0
	if res.AlreadySeeded {
		fmt.Fprintf(c.diag, "dev-seed: already seeded, see %s\n", credPath)
	}
	writeSummary(c.diag, res, port)
	return c.print(res)
}

// seedAI makes the demo AI model (DEV_AI_ENDPOINT / DEV_AI_KEY, else the
// local fake provider) unless a model of its name exists, and enables it
// for each demo tenant that has no setting for it yet, crediting an empty
// account in the same transaction so the first calls are paid for. What a
// person changed afterwards is left alone.
func (c *cli) seedAI(ctx context.Context, res *seedResult) error {
	endpoint, err := c.devAIEndpoint()
	if err != nil {
		return err
	}
	key := c.env.Secret("DEV_AI_KEY", devAIKey)
	res.AIModel = devAIModel
	var id int64
	err = c.db.QueryRowContext(ctx, "SELECT id FROM ai_model_config WHERE model_name = ?", devAIModel).Scan(&id)
	if errors.Is(err, sql.ErrNoRows) {
		box, berr := c.secretBox()
		if berr != nil {
			return berr
		}
		r, ierr := c.db.ExecContext(ctx, `INSERT INTO ai_model_config (model_name, display_name, model_type, provider, endpoint_url,
			api_key_encrypted, input_price_per_1k, output_price_per_1k) VALUES (?, ?, 'text', 'openai', ?, ?, 0.001, 0.002)`,
			devAIModel, "Local fake provider (make dev)", endpoint, box.Seal([]byte(key), aibridge.ModelKeyAAD(devAIModel)))
		if ierr != nil {
			return fmt.Errorf("create AI model %s: %w", devAIModel, ierr)
		}
		id, err = r.LastInsertId()
		res.Changes = append(res.Changes, "created AI model "+devAIModel+" at "+endpoint)
	}
	if err != nil {
		return fmt.Errorf("find AI model %s: %w", devAIModel, err)
	}
	for _, t := range res.Tenants {
		var enabled, credited bool
		err := sqldb.InTxRetry(ctx, c.db, func(tx *sql.Tx) error {
			enabled, credited = false, false
			r, err := tx.ExecContext(ctx, `INSERT IGNORE INTO tenant_ai_model_configs (tenant_id, model_id, is_enabled, priority)
				SELECT id, ?, 1, 1 FROM tenants WHERE tenant_code = ?`, id, t.Code)
			if err != nil {
				return err
			}
			if n, err := r.RowsAffected(); err != nil || n == 0 {
				return err
			}
			enabled = true
			r, err = tx.ExecContext(ctx, `UPDATE tenant_accounts a JOIN tenants t ON t.id = a.tenant_id SET a.balance = ?
				WHERE t.tenant_code = ? AND a.balance = 0 AND a.reserved_amount = 0`, devAICredit, t.Code)
			if err != nil {
				return err
			}
			n, err := r.RowsAffected()
			credited = n > 0
			return err
		})
		if err != nil {
			return fmt.Errorf("enable AI model %s for %s: %w", devAIModel, t.Code, err)
		}
		if enabled {
			res.Changes = append(res.Changes, "enabled AI model "+devAIModel+" for "+t.Code)
		}
		if credited {
			res.Changes = append(res.Changes, "credited "+t.Code+" with "+devAICredit+" for AI calls")
		}
	}
	return nil
}

// devAIEndpoint is DEV_AI_ENDPOINT, checked, else the local fake's.
func (c *cli) devAIEndpoint() (string, error) {
	endpoint := c.env.String("DEV_AI_ENDPOINT", devAIEndpoint)
	if u, err := url.Parse(endpoint); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return "", fmt.Errorf("DEV_AI_ENDPOINT %q: want an http(s) URL such as %s", endpoint, devAIEndpoint)
	}
	return endpoint, nil
}

// seedAdmin makes the super admin: DEV_ADMIN_USERNAME / DEV_ADMIN_PASSWORD,
// else admin with a generated password.
func (c *cli) seedAdmin(ctx context.Context, creds *devCredentials, credPath string, changes *[]string) (devAccount, error) {
	username := c.env.String("DEV_ADMIN_USERNAME", devAdminUsername)
	envPassword := c.env.Secret("DEV_ADMIN_PASSWORD", "")
	_, hash, exists, err := c.findAdmin(ctx, username)
	if err != nil {
		return devAccount{}, err
	}
	acct, err := c.seedPassword(creds, &creds.Admin, credPath, username, envPassword, "DEV_ADMIN_PASSWORD", exists)
	if err != nil {
		return devAccount{}, err
	}
	switch {
	case !exists:
		if _, err := c.createAdmin(ctx, username, acct.Password, "super_admin"); err != nil {
			return devAccount{}, err
		}
		*changes = append(*changes, "created super admin "+username)
	case envPassword != "" && !matches(hash, envPassword):
		if err := c.resetPassword(ctx, "admin_users", "username", username, envPassword); err != nil {
			return devAccount{}, err
		}
		*changes = append(*changes, "set the password of admin "+username+" from DEV_ADMIN_PASSWORD")
	}
	return acct, nil
}

// seedUser makes the demo global user: DEV_USER_PHONE / DEV_USER_PASSWORD,
// else 13800000000 with a generated password.
func (c *cli) seedUser(ctx context.Context, creds *devCredentials, credPath string, res *seedResult) (globalUser, error) {
	phone := c.env.String("DEV_USER_PHONE", devUserPhone)
	envPassword := c.env.Secret("DEV_USER_PASSWORD", "")
	if err := c.checkPhone(phone); err != nil {
		return globalUser{}, fmt.Errorf("DEV_USER_PHONE: %w", err)
	}
	u, exists, err := c.findGlobalUser(ctx, phone)
	if err != nil {
		return globalUser{}, err
	}
	if res.User, err = c.seedPassword(creds, &creds.User, credPath, phone, envPassword, "DEV_USER_PASSWORD", exists); err != nil {
		return globalUser{}, err
	}
	switch {
	case !exists:
		if u, err = c.createGlobalUser(ctx, phone, res.User.Password, devUserName); err != nil {
			return globalUser{}, err
		}
		res.Changes = append(res.Changes, "created demo user "+phone)
	case envPassword != "":
		var hash string
		if err := c.db.QueryRowContext(ctx, "SELECT password_hash FROM global_users WHERE id = ?", u.ID).Scan(&hash); err != nil {
			return globalUser{}, fmt.Errorf("read demo user: %w", err)
		}
		if !matches(hash, envPassword) {
			if err := c.resetPassword(ctx, "global_users", "phone", phone, envPassword); err != nil {
				return globalUser{}, err
			}
			res.Changes = append(res.Changes, "set the password of "+phone+" from DEV_USER_PASSWORD")
		}
	}
	return u, nil
}

// seedPassword decides the password of a seeded account: the environment's,
// else the one generated earlier for the same login, else (for an account
// that does not exist yet) a new one, saved before it is used.
func (c *cli) seedPassword(creds *devCredentials, slot **devAccount, credPath, login, envPassword, envName string, exists bool) (devAccount, error) {
	switch {
	case envPassword != "":
		if err := identity.ValidatePassword(envPassword); err != nil {
			return devAccount{}, fmt.Errorf("%s: %w", envName, err)
		}
		return devAccount{Login: login, Password: envPassword, PasswordFrom: envName}, nil
	case *slot != nil && (*slot).Login == login:
		return **slot, nil
	case exists:
		return devAccount{Login: login, PasswordFrom: "unknown"}, nil
	}
	pw, err := generatePassword()
	if err != nil {
		return devAccount{}, err
	}
	*slot = &devAccount{Login: login, Password: pw, PasswordFrom: "generated"}
	if err := saveCredentials(credPath, creds); err != nil {
		return devAccount{}, err
	}
	return **slot, nil
}

// resetPassword sets the password of one account row.
func (c *cli) resetPassword(ctx context.Context, table, keyColumn, key, password string) error {
	hash, err := identity.HashPassword(password, c.bcryptCost)
	if err != nil {
		return err
	}
	// table and keyColumn are constants of this file, never input.
	if _, err := c.db.ExecContext(ctx, "UPDATE "+table+" SET password_hash = ?, password_changed_at = CURRENT_TIMESTAMP(3) WHERE "+keyColumn+" = ?", hash, key); err != nil {
		return fmt.Errorf("reset password of %s: %w", key, err)
	}
	return nil
}

func matches(hash, password string) bool {
	return bcrypt.CompareHashAndPassword([]byte(hash), []byte(password)) == nil
}

// seedTenant creates demo tenant code unless it exists and is active.
func (c *cli) seedTenant(ctx context.Context, code, name string, owner globalUser) (bool, error) {
	var status string
	err := c.db.QueryRowContext(ctx, "SELECT status FROM tenants WHERE tenant_code = ?", code).Scan(&status)
	switch {
	case err == nil && status == "active":
		return false, nil
	case err == nil:
		return false, fmt.Errorf("demo tenant %s exists with status %s; resume or remove it, then rerun dev-seed", code, status)
	case !errors.Is(err, sql.ErrNoRows):
		return false, fmt.Errorf("find tenant %s: %w", code, err)
	}
	if _, err := c.createTenant(ctx, provisioning.Request{Code: code, Name: name, ContactName: owner.RealName,
		ContactPhone: owner.Phone, AdminUserID: owner.ID}); err != nil {
		return false, err
	}
	return true, nil
}

// generatePassword returns 16 random letters and digits, with at least one
// of each (the password rule).
func generatePassword() (string, error) {
	const alphabet = "abcdefghijkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789"
	for {
		b := make([]byte, 16)
		for i := range b {
			n, err := rand.Int(rand.Reader, big.NewInt(int64(len(alphabet))))
			if err != nil {
				return "", fmt.Errorf("generate password: %w", err)
			}
			b[i] = alphabet[n.Int64()]
		}
		if identity.ValidatePassword(string(b)) == nil {
			return string(b), nil
		}
	}
}

func loadCredentials(path string) (*devCredentials, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return &devCredentials{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	var creds devCredentials
	if err := json.Unmarshal(b, &creds); err != nil {
		return nil, fmt.Errorf("read %s: %w (remove it to start over)", path, err)
	}
	return &creds, nil
}

// saveCredentials writes the file readable by its owner only, atomically.
func saveCredentials(path string, creds *devCredentials) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("save credentials: %w", err)
	}
	b, _ := json.MarshalIndent(creds, "", "  ")
	tmp, err := os.CreateTemp(filepath.Dir(path), filepath.Base(path)+".*.tmp")
	if err != nil {
		return fmt.Errorf("save credentials: %w", err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(append(b, '\n')); err != nil {
		tmp.Close()
		return fmt.Errorf("save credentials: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("save credentials: %w", err)
	}
	if err := os.Chmod(tmp.Name(), 0o600); err != nil {
		return fmt.Errorf("save credentials: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("save credentials: %w", err)
	}
	return nil
}

// writeSummary prints the logins and commands to try them, for people.
func writeSummary(w io.Writer, res seedResult, port int) {
	pw := func(a devAccount, env string) string {
		switch {
		case a.PasswordFrom == "unknown":
			// The account predates this checkout's credentials file
			// (another checkout seeded this database): say how to set it.
			return "(set before dev-seed; not known to it: rerun with " + env + "=<password> to set it)"
		case strings.HasPrefix(a.PasswordFrom, "DEV_"):
			return "(from " + a.PasswordFrom + ")"
		}
		return a.Password
	}
	// The commands carry the password when dev-seed made it.
	known := func(a devAccount) string {
		if a.PasswordFrom == "generated" {
			return a.Password
		}
		return "<password>"
	}
	base := fmt.Sprintf("http://localhost:%d", port)
	fmt.Fprintf(w, `
dev: super admin   %s / %s
dev: demo user     %s / %s  (admin of k001 and k002)
dev: try it:
  TOKEN=$(curl -s %s/api/auth/login -H 'Content-Type: application/json' \
    -d '{"phone":"%s","password":"%s"}' | sed -E 's/.*"token":"([^"]+)".*/\1/')
  TENANT_TOKEN=$(curl -s %s/api/auth/switch-tenant -H "Authorization: Bearer $TOKEN" \
    -H 'Content-Type: application/json' -d '{"tenantCode":"k001"}' | sed -E 's/.*"token":"([^"]+)".*/\1/')
  curl -s %s/api/app/me -H 'Host: k001.localhost' -H "Authorization: Bearer $TENANT_TOKEN"
  curl -s %s/v1/chat/completions -H 'Host: k001.localhost' -H "Authorization: Bearer $TENANT_TOKEN" \
    -H 'Content-Type: application/json' -d '{"model":"%s","messages":[{"role":"user","content":"hello"}]}'
  curl -s %s/api/admin/auth/login -H 'Content-Type: application/json' \
    -d '{"username":"%s","password":"%s"}'

`, res.Admin.Login, pw(res.Admin, "DEV_ADMIN_PASSWORD"), res.User.Login, pw(res.User, "DEV_USER_PASSWORD"),
		base, res.User.Login, known(res.User), base, base, base, res.AIModel, base, res.Admin.Login, known(res.Admin))
}
