// Package identity is who may use unitenant and as what: global users (who
// log in by phone and password and belong to tenants), platform
// administrators (who log in by username), their passwords, lockouts,
// refresh-token families and tenant memberships, and the flows that turn
// credentials into access tokens: register, login, refresh, logout,
// switch-tenant, admin login.
//
// It never tells an unknown account from a wrong password, neither by answer
// nor by time; never stores a password or refresh token in a recoverable
// form; never lets a spent refresh token be used twice; and never issues a
// tenant-scoped token without an active membership of an active tenant.
// Every login attempt leaves a row in login_history and unified_auth_logs.
package identity

import (
	"database/sql"
	"errors"
	"fmt"
	"regexp"
	"sync"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/unitenant/unitenant/shared/auth"
	"github.com/unitenant/unitenant/shared/config"
	"github.com/unitenant/unitenant/shared/sms"
)

// DefaultPhonePattern accepts mainland China mobile numbers.
const DefaultPhonePattern = `^1[3-9]\d{9}$`

// Lockout is how many failed logins lock an account, and for how long.
type Lockout struct {
	MaxFailures int           // failures within Window that lock the account
	Window      time.Duration // failures older than this are forgotten
	Duration    time.Duration // how long the account stays locked
}

// DefaultLockout locks for 15 minutes after 5 failures within 15 minutes.
var DefaultLockout = Lockout{MaxFailures: 5, Window: 15 * time.Minute, Duration: 15 * time.Minute}

// DefaultLoginIPHourlyLimit bounds the failed logins of one client address
// an hour: far above a school office's typing mistakes behind one NAT,
// far below what guessing passwords across accounts (which no account's
// lockout sees) needs.
const DefaultLoginIPHourlyLimit = 100

// Config is the identity part of the login function's configuration.
type Config struct {
	BcryptCost   int
	PhonePattern *regexp.Regexp
	AccessTTL    time.Duration
	RefreshTTL   time.Duration
	BaseDomain   string  // tenants without a custom domain live at <subdomain>.<BaseDomain>
	Lockout      Lockout // zero = DefaultLockout
	// LoginIPHourlyLimit is how many failed logins (users' and admins')
	// one client address (an IPv6 one with its /64) may make an hour,
	// across every account and name; 0: no limit.
	LoginIPHourlyLimit int
	Now                func() time.Time // nil = time.Now; tests inject a clock
}

// LoadConfig reads BCRYPT_COST (12), PHONE_PATTERN (DefaultPhonePattern),
// ACCESS_TOKEN_TTL (15m), REFRESH_TOKEN_TTL (720h), BASE_DOMAIN
// (localhost) and LOGIN_IP_HOURLY_LIMIT (DefaultLoginIPHourlyLimit; 0: none). Bad values are recorded in e; a pattern that does not compile
// is returned as an error.
func LoadConfig(e *config.Env) (Config, error) {
	c := Config{
		BcryptCost:         e.Int("BCRYPT_COST", 12, bcrypt.MinCost, bcrypt.MaxCost),
		AccessTTL:          e.Duration("ACCESS_TOKEN_TTL", 15*time.Minute),
		RefreshTTL:         e.Duration("REFRESH_TOKEN_TTL", 720*time.Hour),
		BaseDomain:         e.String("BASE_DOMAIN", "localhost"),
		LoginIPHourlyLimit: e.Int("LOGIN_IP_HOURLY_LIMIT", DefaultLoginIPHourlyLimit, 0, 1_000_000),
	}
	p, err := regexp.Compile(e.String("PHONE_PATTERN", DefaultPhonePattern))
	if err != nil {
		return c, fmt.Errorf("PHONE_PATTERN: %w", err)
	}
	c.PhonePattern = p
	return c, nil
}

// Service runs the identity flows on the system database.
type Service struct {
	db      *sql.DB
	signer  *auth.Signer
	codes   *sms.Codes
	cfg     Config
	now     func() time.Time
	dummy   func() []byte // bcrypt hash at the configured cost, compared for unknown accounts
	lockout Lockout
}

// New returns the service. It hashes a random dummy password at the
// configured cost, so unknown accounts cost the same bcrypt time as real
// ones; the hash is made in the background so it does not add a bcrypt to
// the function's cold start (a first unknown-account login waits for it).
func New(db *sql.DB, signer *auth.Signer, codes *sms.Codes, cfg Config) (*Service, error) {
	if signer == nil {
		return nil, errors.New("identity: a signing key is required (JWT_PRIVATE_KEY)")
	}
	if cfg.PhonePattern == nil {
		cfg.PhonePattern = regexp.MustCompile(DefaultPhonePattern)
	}
	if cfg.BcryptCost == 0 {
		cfg.BcryptCost = 12
	}
	s := &Service{db: db, signer: signer, codes: codes, cfg: cfg, now: cfg.Now, lockout: cfg.Lockout}
	if s.now == nil {
		s.now = time.Now
	}
	if s.lockout == (Lockout{}) {
		s.lockout = DefaultLockout
	}
	if cfg.BcryptCost < bcrypt.MinCost || cfg.BcryptCost > bcrypt.MaxCost {
		return nil, fmt.Errorf("identity: bcrypt cost %d out of range %d..%d", cfg.BcryptCost, bcrypt.MinCost, bcrypt.MaxCost)
	}
	s.dummy = sync.OnceValue(func() []byte {
		h, err := bcrypt.GenerateFromPassword([]byte(randomToken()), cfg.BcryptCost)
		if err != nil { // only for an invalid cost, refused above
			panic(fmt.Sprintf("identity: dummy hash: %v", err))
		}
		return h
	})
	go s.dummy()
	return s, nil
}

// Client is who is calling, for the audit rows: the caller's address, its
// user agent and the request id.
type Client struct {
	IP        string
	UserAgent string
	RequestID string
}
