package sms

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"database/sql"
	"database/sql/driver"
	"encoding/hex"
	"errors"
	"fmt"
	"math/big"
	"regexp"
	"time"

	"github.com/unitenant/unitenant/shared/fault"
	"github.com/unitenant/unitenant/shared/ratelimit"
)

// Policy is how long codes live and how often they may be sent.
type Policy struct {
	TTL         time.Duration // a code expires this long after it was sent
	MaxAttempts int           // wrong guesses that burn a code
	MinInterval time.Duration // between two codes to one phone
	DailyLimit  int           // codes to one phone in any 24 hours
	// IPHourlyLimit is the codes one client address may have sent per
	// clock hour, to any phones: per-phone limits alone let one client
	// spray codes over many numbers at the platform's cost (an IPv6
	// address counts with its /64). 0: DefaultIPHourlyLimit; negative: none.
	IPHourlyLimit int
}

// DefaultIPHourlyLimit is Policy.IPHourlyLimit's default.
const DefaultIPHourlyLimit = 20

// DefaultPolicy is 5 minutes, 5 attempts, 1 per minute and 10 per day to
// a phone, 20 an hour from an address.
var DefaultPolicy = Policy{TTL: 5 * time.Minute, MaxAttempts: 5, MinInterval: time.Minute, DailyLimit: 10, IPHourlyLimit: DefaultIPHourlyLimit}

// Codes issues codes (stored hashed in sms_codes) and redeems them.
type Codes struct {
	db     *sql.DB
	sender Sender
	key    []byte
	policy Policy
	now    func() time.Time
}

// Options adjust Codes; the zero value is the default policy and real time.
type Options struct {
	Policy Policy           // zero = DefaultPolicy
	Now    func() time.Time // nil = time.Now; tests inject a clock
}

// NewCodes returns the code service on the system database db, delivering
// with sender and hashing with key (see Config.CodeKey).
func NewCodes(db *sql.DB, sender Sender, key []byte, opts Options) *Codes {
	c := &Codes{db: db, sender: sender, key: key, policy: opts.Policy, now: opts.Now}
	if c.policy == (Policy{}) {
		c.policy = DefaultPolicy
	}
	if c.policy.IPHourlyLimit == 0 {
		c.policy.IPHourlyLimit = DefaultIPHourlyLimit
	}
	if c.now == nil {
		c.now = time.Now
	}
	return c
}

// Policy returns the limits in force.
func (c *Codes) Policy() Policy { return c.policy }

// codePattern is the shape of every code: six digits.
var codePattern = regexp.MustCompile(`^[0-9]{6}$`)

// invalidCode is the one error every failed redemption returns; the message
// says why, the code stays the same so clients branch on one thing.
func invalidCode(why string) error {
	return fault.Field("invalid_sms_code", "smsCode", why)
}

// lockTimeout bounds the wait for the per-phone lock: requests for one phone
// queue behind each other only for the length of a send.
const lockTimeout = 10

// Issue sends a new code for purpose to phone (already validated by the
// caller) and returns how long it is valid. At most one code per
// MinInterval and DailyLimit per 24 hours go to one phone, whatever the
// purpose: the check and the insert run under a per-phone lock, so
// concurrent requests cannot both pass; and IPHourlyLimit an hour are sent
// for one client address ip (none counted when ip is empty), each count
// one atomic statement shared by every instance. A failed send is not
// counted.
func (c *Codes) Issue(ctx context.Context, phone string, purpose Purpose, ip string) (time.Duration, error) {
	conn, err := c.db.Conn(ctx)
	if err != nil {
		return 0, fmt.Errorf("sms: connection: %w", err)
	}
	defer conn.Close()
	release, err := lockPhone(ctx, conn, phone)
	if err != nil {
		return 0, err
	}
	defer release()

	now := c.now().UTC()
	var (
		count          int
		oldest, latest sql.NullTime
	)
	err = conn.QueryRowContext(ctx,
		`SELECT COUNT(*), MIN(created_at), MAX(created_at) FROM sms_codes WHERE phone = ? AND created_at > ?`,
		phone, now.Add(-24*time.Hour)).Scan(&count, &oldest, &latest)
	if err != nil {
		return 0, fmt.Errorf("sms: count recent codes: %w", err)
	}
	if latest.Valid && now.Sub(latest.Time) < c.policy.MinInterval {
		e := fault.New(fault.TooManyRequests, "sms_rate_limited", "a code was sent to this phone less than %s ago", c.policy.MinInterval)
		e.RetryAfter = c.policy.MinInterval - now.Sub(latest.Time)
		return 0, e
	}
	if count >= c.policy.DailyLimit {
		e := fault.New(fault.TooManyRequests, "sms_daily_limit", "at most %d codes per phone in 24 hours", c.policy.DailyLimit)
		e.RetryAfter = oldest.Time.Add(24 * time.Hour).Sub(now)
		return 0, e
	}

	fromIP, err := c.countIP(ctx, ip, now)
	if err != nil {
		return 0, err
	}
	code, err := newCode()
	if err != nil {
		fromIP.giveBack(ctx)
		return 0, err
	}
	res, err := conn.ExecContext(ctx,
		`INSERT INTO sms_codes (phone, purpose, code_hash, max_attempts, expires_at, ip_address, created_at)
		 VALUES (?, ?, ?, ?, ?, ?, ?)`,
		phone, string(purpose), c.hash(phone, purpose, code), c.policy.MaxAttempts,
		now.Add(c.policy.TTL), nullIfEmpty(ip), now)
	if err != nil {
		fromIP.giveBack(ctx)
		return 0, fmt.Errorf("sms: store code: %w", err)
	}
	if err := c.sender.Send(ctx, phone, purpose, code); err != nil {
		fromIP.giveBack(ctx)
		id, _ := res.LastInsertId()
		if _, derr := conn.ExecContext(context.WithoutCancel(ctx), `DELETE FROM sms_codes WHERE id = ?`, id); derr != nil {
			err = errors.Join(err, fmt.Errorf("forget unsent code: %w", derr))
		}
		return 0, &fault.Error{Kind: fault.Unavailable, Code: "sms_send_failed",
			Message: "the text message could not be sent; try again shortly", Err: err}
	}
	return c.policy.TTL, nil
}

// ipCount is a code counted against a client address, to give back when
// it is not sent.
type ipCount struct {
	c      *Codes
	key    string
	window time.Time
}

// countIP counts a code against ip's hour, refusing one over the limit
// (a refused request is not counted).
func (c *Codes) countIP(ctx context.Context, ip string, now time.Time) (*ipCount, error) {
	key := ratelimit.AddressKey("sms:ip:", ip)
	if key == "" || c.policy.IPHourlyLimit < 0 {
		return nil, nil
	}
	d, err := ratelimit.Consume(ctx, c.db, key, 1, c.policy.IPHourlyLimit, time.Hour, now)
	if d.Allowed && err == nil {
		return &ipCount{c: c, key: key, window: d.WindowStart}, nil
	}
	if fe, ok := fault.As(err); ok && fe.Kind == fault.TooManyRequests {
		e := fault.New(fault.TooManyRequests, "sms_ip_limit", "at most %d codes an hour from one address", c.policy.IPHourlyLimit)
		e.RetryAfter = fe.RetryAfter
		return nil, e
	}
	return nil, fmt.Errorf("sms: count codes from %s: %w", ip, err)
}

// giveBack uncounts a code that was not sent.
func (n *ipCount) giveBack(ctx context.Context) {
	if n == nil {
		return
	}
	// Best effort: a code counted and not sent only brings the address's
	// limit a little nearer, never lets one more through.
	_ = ratelimit.Adjust(context.WithoutCancel(ctx), n.c.db, n.key, n.window, -1)
}

// lockPhone takes a named lock for phone on conn (GET_LOCK is scoped to the
// server, so the name includes the database) and returns its release.
func lockPhone(ctx context.Context, conn *sql.Conn, phone string) (func(), error) {
	const name = `SHA1(CONCAT(DATABASE(), '/sms_codes/', ?))`
	var got sql.NullInt64
	if err := conn.QueryRowContext(ctx, `SELECT GET_LOCK(`+name+`, ?)`, phone, lockTimeout).Scan(&got); err != nil {
		return nil, fmt.Errorf("sms: lock phone: %w", err)
	}
	if got.Int64 != 1 {
		e := fault.New(fault.TooManyRequests, "sms_rate_limited", "another code is being sent to this phone")
		e.RetryAfter = time.Second
		return nil, e
	}
	return func() {
		if _, err := conn.ExecContext(context.Background(), `DO RELEASE_LOCK(`+name+`)`, phone); err != nil {
			// Closing the session is what releases the lock now.
			_ = conn.Raw(func(any) error { return driver.ErrBadConn })
		}
	}, nil
}

// Redeem checks code for phone and purpose against the latest code sent and,
// when it matches, consumes it and runs then in the same transaction: if then
// fails, the code is not consumed (and nothing then did is kept). A wrong
// code counts an attempt even so; MaxAttempts wrong codes burn it.
func (c *Codes) Redeem(ctx context.Context, phone string, purpose Purpose, code string, then func(*sql.Tx) error) error {
	if !codePattern.MatchString(code) {
		return invalidCode("must be the 6 digits sent by text message")
	}
	tx, err := c.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("sms: begin: %w", err)
	}
	defer tx.Rollback() //nolint:errcheck // no-op after commit

	var (
		id            int64
		hash          string
		attempts, max int
		expires       time.Time
		consumed      sql.NullTime
	)
	err = tx.QueryRowContext(ctx,
		`SELECT id, code_hash, attempts, max_attempts, expires_at, consumed_at FROM sms_codes
		 WHERE phone = ? AND purpose = ? ORDER BY id DESC LIMIT 1 FOR UPDATE`,
		phone, string(purpose)).Scan(&id, &hash, &attempts, &max, &expires, &consumed)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return invalidCode("no code was sent to this phone for this purpose")
	case err != nil:
		return fmt.Errorf("sms: find code: %w", err)
	case consumed.Valid:
		return invalidCode("the code was already used; request a new one")
	case !c.now().Before(expires):
		return invalidCode("the code has expired; request a new one")
	case attempts >= max:
		return invalidCode("too many wrong attempts; request a new code")
	}
	if !hmac.Equal([]byte(hash), []byte(c.hash(phone, purpose, code))) {
		if _, err := tx.ExecContext(ctx, `UPDATE sms_codes SET attempts = attempts + 1 WHERE id = ?`, id); err != nil {
			return fmt.Errorf("sms: count attempt: %w", err)
		}
		if err := tx.Commit(); err != nil {
			return fmt.Errorf("sms: commit attempt: %w", err)
		}
		if attempts+1 >= max {
			return invalidCode("wrong code; too many wrong attempts, request a new code")
		}
		return invalidCode("wrong code")
	}
	if _, err := tx.ExecContext(ctx, `UPDATE sms_codes SET consumed_at = ? WHERE id = ?`, c.now().UTC(), id); err != nil {
		return fmt.Errorf("sms: consume code: %w", err)
	}
	if then != nil {
		if err := then(tx); err != nil {
			return err
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("sms: commit: %w", err)
	}
	return nil
}

// hash is the stored form of a code: HMAC-SHA256 over phone, purpose and
// code, so a leaked table cannot be brute-forced without the key.
func (c *Codes) hash(phone string, purpose Purpose, code string) string {
	m := hmac.New(sha256.New, c.key)
	m.Write([]byte(phone + "\x00" + string(purpose) + "\x00" + code))
	return hex.EncodeToString(m.Sum(nil))
}

// newCode returns six uniformly random digits.
func newCode() (string, error) {
	n, err := rand.Int(rand.Reader, big.NewInt(1_000_000))
	if err != nil {
		return "", fmt.Errorf("sms: random code: %w", err)
	}
	return fmt.Sprintf("%06d", n.Int64()), nil
}

func nullIfEmpty(s string) any {
	if s == "" {
		return nil
	}
	return s
}
