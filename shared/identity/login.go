package identity

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/unitenant/unitenant/shared/auth"
	"github.com/unitenant/unitenant/shared/fault"
	"github.com/unitenant/unitenant/shared/ratelimit"
	"github.com/unitenant/unitenant/shared/sms"
	"github.com/unitenant/unitenant/shared/sqldb"
)

// Errors of the login flows.
var (
	// ErrInvalidCredentials is the one answer to an unknown account and a
	// wrong password alike.
	ErrInvalidCredentials = fault.New(fault.Unauthorized, "invalid_credentials", "the phone number or password is wrong")
	// ErrAdminInvalidCredentials is ErrInvalidCredentials for admins.
	ErrAdminInvalidCredentials = fault.New(fault.Unauthorized, "invalid_credentials", "the username or password is wrong")
	// ErrAccountDisabled answers a right password of a suspended or deleted account.
	ErrAccountDisabled = fault.New(fault.Forbidden, "account_disabled", "this account is disabled")
)

func accountLocked(retry time.Duration) error {
	e := fault.New(fault.Locked, "account_locked", "too many failed logins; try again in %d minutes", int(retry.Minutes())+1)
	e.RetryAfter = retry
	return e
}

// Session is an issued pair of tokens.
type Session struct {
	Token        string `json:"token"`
	RefreshToken string `json:"refreshToken"`
	ExpiresIn    int    `json:"expiresIn"` // seconds the access token is valid
}

// SendCode sends a verification code for purpose to phone and returns how
// long it is valid.
func (s *Service) SendCode(ctx context.Context, c Client, phone, purpose string) (time.Duration, error) {
	if err := s.validatePhone(phone); err != nil {
		return 0, err
	}
	p, err := sms.ParsePurpose(purpose)
	if err != nil {
		return 0, err
	}
	ttl, err := s.codes.Issue(ctx, phone, p, c.IP)
	if err != nil {
		return 0, err
	}
	return ttl, s.record(ctx, c, event{Type: "sms_sent", Identifier: phone, Success: true, Reason: string(p)})
}

// Registration is what Register needs.
type Registration struct {
	Phone    string
	Password string
	RealName string
	Email    string // optional
	SMSCode  string
}

// User is a global user as the API shows it.
type User struct {
	GlobalUserID int64      `json:"globalUserId"`
	Phone        string     `json:"phone"`
	RealName     string     `json:"realName"`
	Email        string     `json:"email,omitempty"`
	Avatar       string     `json:"avatar,omitempty"`
	Status       string     `json:"status,omitempty"`
	CreatedAt    *time.Time `json:"createdAt,omitempty"`
	LastLoginAt  *time.Time `json:"lastLoginAt,omitempty"`
}

// Register creates a global user after checking the register code sent to
// the phone. Every field is checked before anything changes; the code is
// consumed only when the user is created. That the phone is already
// registered is told only to whoever holds its code: before the code is
// checked, a registered phone is answered as any other, or register would
// enumerate the accounts login keeps secret.
func (s *Service) Register(ctx context.Context, c Client, in Registration) (User, error) {
	if err := firstError(
		s.validatePhone(in.Phone),
		ValidatePassword(in.Password),
		required("realName", in.RealName, 50),
		validateEmail(in.Email),
	); err != nil {
		return User{}, err
	}
	hash, err := HashPassword(in.Password, s.cfg.BcryptCost)
	if err != nil {
		return User{}, err
	}
	u := User{Phone: in.Phone, RealName: in.RealName}
	err = s.codes.Redeem(ctx, in.Phone, sms.PurposeRegister, in.SMSCode, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `
			INSERT INTO global_users (phone, password_hash, real_name, email, registration_source, password_changed_at)
			VALUES (?, ?, ?, ?, 'web', ?)`, in.Phone, hash, in.RealName, nullable(in.Email), s.now().UTC())
		if sqldb.IsDuplicate(err) {
			return errPhoneTaken // the code is right: its owner may know; keep it unspent
		}
		if err != nil {
			return fmt.Errorf("insert global user: %w", err)
		}
		u.GlobalUserID, err = res.LastInsertId()
		return err
	})
	if err != nil {
		return User{}, err
	}
	return u, s.record(ctx, c, event{Type: "register", Subject: subjectUser, SubjectID: u.GlobalUserID, Identifier: in.Phone, Success: true})
}

var errPhoneTaken = fault.New(fault.Conflict, "phone_taken", "this phone number is already registered")

// firstError returns the first non-nil error, with the fields of every
// other invalid field added, so a client sees all its mistakes at once.
func firstError(errs ...error) error {
	var first *fault.Error
	for _, err := range errs {
		fe, ok := fault.As(err)
		if !ok {
			continue
		}
		if first == nil {
			cp := *fe
			cp.Fields = map[string]string{}
			first = &cp
		}
		for k, v := range fe.Fields {
			first.Fields[k] = v
		}
	}
	if first == nil {
		return nil
	}
	return first
}

// LoginResult is what a global user's login returns.
type LoginResult struct {
	GlobalUserID int64  `json:"globalUserId"`
	Phone        string `json:"phone"`
	RealName     string `json:"realName"`
	Session
	Tenants []Membership `json:"tenants"`
}

// account is the part of a global user or admin a login reads.
type account struct {
	id          int64
	name        string // real_name, or the admin's role
	hash        []byte
	status      string
	lockedUntil sql.NullTime
}

// Login checks a global user's phone and password and opens a platform
// session: an access token for the platform audience, a refresh token of a
// new family, and the tenants the user may switch to.
func (s *Service) Login(ctx context.Context, c Client, phone, password string) (LoginResult, error) {
	if err := firstError(s.validatePhone(phone), loginPassword(password)); err != nil {
		return LoginResult{}, err
	}
	ev := event{Type: "login", Subject: subjectUser, Identifier: phone, Method: "password"}
	a, sess, err := s.passwordLogin(ctx, c, usersTable, phone, password, ev, ErrInvalidCredentials)
	if err != nil {
		return LoginResult{}, err
	}
	tenants, err := s.Tenants(ctx, a.id)
	if err != nil {
		return LoginResult{}, err
	}
	return LoginResult{GlobalUserID: a.id, Phone: phone, RealName: a.name, Session: sess, Tenants: tenants}, nil
}

// AdminSession is what an admin's login returns.
type AdminSession struct {
	Session
	Role string `json:"role"`
}

// AdminLogin checks an administrator's username and password and opens an
// admin session (audience admin, role = admin_users.role).
func (s *Service) AdminLogin(ctx context.Context, c Client, username, password string) (AdminSession, error) {
	if err := firstError(required("username", username, 50), loginPassword(password)); err != nil {
		return AdminSession{}, err
	}
	ev := event{Type: "admin_login", Subject: subjectAdmin, Identifier: username, Method: "password"}
	a, sess, err := s.passwordLogin(ctx, c, adminsTable, username, password, ev, ErrAdminInvalidCredentials)
	if err != nil {
		return AdminSession{}, err
	}
	return AdminSession{Session: sess, Role: a.name}, nil
}

// passwordLogin finds the account of identifier in t, authenticates it and
// opens a session of a new family, recording the attempt either way.
func (s *Service) passwordLogin(ctx context.Context, c Client, t table, identifier, password string, ev event, invalid error) (account, Session, error) {
	release, err := s.holdAddress(ctx, c)
	if err != nil {
		return account{}, Session{}, err
	}
	a, sess, err := s.passwordLoginFrom(ctx, c, t, identifier, password, ev, invalid)
	if err == nil {
		release()
	}
	return a, sess, err
}

// holdAddress counts a login attempt against its client address's hourly
// limit of failed logins, or refuses it (429 login_ip_limit) when the
// address has used it up; release gives the attempt back once it
// succeeded. Refused attempts count too: a client hammering stays out.
func (s *Service) holdAddress(ctx context.Context, c Client) (release func(), err error) {
	key, limit := ratelimit.AddressKey("login:ip:", c.IP), s.cfg.LoginIPHourlyLimit
	if key == "" || limit <= 0 {
		return func() {}, nil
	}
	d, err := ratelimit.Allow(ctx, s.db, key, limit, time.Hour, s.now())
	if fe, ok := fault.As(err); ok && fe.Code == "rate_limited" {
		e := fault.New(fault.TooManyRequests, "login_ip_limit", "too many failed logins from this address; retry in %s", fe.RetryAfter)
		e.RetryAfter = fe.RetryAfter
		return nil, e
	}
	if err != nil {
		return nil, err
	}
	return func() { _ = ratelimit.Adjust(context.WithoutCancel(ctx), s.db, key, d.WindowStart, -1) }, nil
}

// passwordLoginFrom is passwordLogin once the client's address may try.
func (s *Service) passwordLoginFrom(ctx context.Context, c Client, t table, identifier, password string, ev event, invalid error) (account, Session, error) {
	var (
		a    account
		name sql.NullString
	)
	err := s.db.QueryRowContext(ctx, `SELECT id, `+t.name+`, password_hash, status, locked_until FROM `+t.table+` WHERE `+t.key+` = ?`, identifier).
		Scan(&a.id, &name, &a.hash, &a.status, &a.lockedUntil)
	found := err == nil
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return a, Session{}, fmt.Errorf("find %s: %w", ev.Subject, err)
	}
	if !found {
		// A name no account has locks like one (login_lockouts).
		err := s.db.QueryRowContext(ctx, `SELECT locked_until FROM login_lockouts WHERE subject_type = ? AND identifier = ?`, ev.Subject, identifier).
			Scan(&a.lockedUntil)
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			return a, Session{}, fmt.Errorf("find lockout of %s: %w", ev.Subject, err)
		}
	}
	a.name = name.String
	if err := s.authenticate(ctx, c, t, &a, found, password, ev, invalid); err != nil {
		return a, Session{}, err
	}
	g := grant{subject: ev.Subject, id: a.id}
	if ev.Subject == subjectAdmin {
		g.role = a.name
	}
	sess, err := s.openSession(ctx, c, g)
	if err != nil {
		return a, Session{}, err
	}
	ev.SubjectID, ev.Success = a.id, true
	return a, sess, s.record(ctx, c, ev)
}

func loginPassword(pw string) error {
	if pw == "" {
		return fault.Field("missing_field", "password", "is required")
	}
	if len(pw) > maxLoginPassword {
		return fault.Field("invalid_field", "password", fmt.Sprintf("must be at most %d bytes", maxLoginPassword))
	}
	return nil
}

// table is an account table: its name, the column a login names the account
// by, and the column shown as the account's name. All constants, never input.
type table struct{ table, key, name string }

var (
	usersTable  = table{"global_users", "phone", "real_name"}
	adminsTable = table{"admin_users", "username", "role"}
)

// authenticate decides a password login. An unknown account costs one
// bcrypt comparison against the dummy hash, like a wrong password, and gets
// the same answers: its failures count towards a lockout of the name (in
// login_lockouts) by the same rules and statements as a wrong password's
// towards the account's, so after as many failures both are locked alike.
// A locked account is refused before its password is checked; a right
// password resets the count. Failures are recorded here, successes by the
// caller (which knows the session).
//
// The lock read with the account is only a shortcut: concurrent guesses all
// read it before any of them is counted. Each is decided again after its
// bcrypt comparison with the account row locked, so once the failures that
// lock the account are counted every later decision is a refusal as locked,
// the right password's and the wrong ones' alike: a burst of guesses gets
// no more answers than sequential ones, and never one that tells the right
// password from the others.
func (s *Service) authenticate(ctx context.Context, c Client, t table, a *account, found bool, password string, ev event, invalid error) error {
	fail := func(reason string, err error) error {
		ev.Reason = reason
		if rerr := s.record(ctx, c, ev); rerr != nil {
			return rerr
		}
		return err
	}
	target := accountTarget(t, a.id)
	if !found {
		target = nameTarget(ev.Subject, ev.Identifier)
	} else {
		ev.SubjectID = a.id
	}
	// A name no account has is locked, and answered, like an account: the
	// lockout tells no one which names exist.
	if now := s.now(); a.lockedUntil.Valid && now.Before(a.lockedUntil.Time) {
		return fail("locked", accountLocked(a.lockedUntil.Time.Sub(now)))
	}
	if !found {
		passwordMatches(s.dummy(), password)
		ev.Reason = "unknown_identifier"
		if err := s.failLogin(ctx, c, target, ev); err != nil {
			return err
		}
		return invalid
	}
	if !passwordMatches(a.hash, password) {
		ev.Reason = "bad_credentials"
		if err := s.failLogin(ctx, c, target, ev); err != nil {
			return err
		}
		return invalid
	}
	var locked error
	err := sqldb.InTx(ctx, s.db, func(tx *sql.Tx) error {
		st, err := s.lockState(ctx, tx, target)
		if err != nil {
			return err
		}
		now := s.now()
		if locked = st.locked(now); locked != nil || a.status != "active" {
			return nil
		}
		_, err = tx.ExecContext(ctx, `UPDATE `+t.table+` SET failed_login_count = 0, first_failed_login_at = NULL,
			locked_until = NULL, last_login_at = ?, last_login_ip = ? WHERE id = ?`, now.UTC(), nullable(sqldb.Text(c.IP, 45)), a.id)
		if err != nil {
			return fmt.Errorf("reset failed logins: %w", err)
		}
		return nil
	})
	switch {
	case err != nil:
		return err
	case locked != nil:
		return fail("locked", locked)
	case a.status != "active":
		return fail("disabled", ErrAccountDisabled)
	}
	return nil
}

// failLogin records the failed attempt ev on target and, in the same
// transaction, counts it towards the lockout. A target locked since it was
// read is refused instead: the attempt is recorded as such, not counted,
// and the lock is the answer (account_locked). nil: the failure is counted
// and the caller answers it.
func (s *Service) failLogin(ctx context.Context, c Client, target lockTarget, ev event) error {
	if target.ensure != "" {
		// Made on its own, before the transaction locks it: an INSERT in
		// it would take a shared lock that concurrent failures could only
		// upgrade by deadlocking.
		if _, err := s.db.ExecContext(ctx, target.ensure, target.args...); err != nil {
			return fmt.Errorf("make lockout row: %w", err)
		}
	}
	var locked error
	err := s.recordWith(ctx, c, ev, func(tx *sql.Tx, ev *event) error {
		st, err := s.lockState(ctx, tx, target)
		if err != nil {
			return err
		}
		if locked = st.locked(s.now()); locked != nil {
			ev.Reason = "locked"
			return nil
		}
		nowLocked, err := s.countFailure(ctx, tx, target, st)
		if err != nil || !nowLocked {
			return err
		}
		lock := event{Type: "lockout", Subject: ev.Subject, SubjectID: ev.SubjectID, Identifier: ev.Identifier, Success: true}
		return s.recordIn(ctx, tx, c, lock)
	})
	if err != nil {
		return err
	}
	return locked
}

// lockRow is an account's lockout state, read with its row locked.
type lockRow struct {
	count       int
	first       sql.NullTime
	lockedUntil sql.NullTime
}

// locked returns the account_locked error of an account locked at now, nil
// when it is not.
func (l lockRow) locked(now time.Time) error {
	if l.lockedUntil.Valid && now.Before(l.lockedUntil.Time) {
		return accountLocked(l.lockedUntil.Time.Sub(now))
	}
	return nil
}

// lockTarget is the row whose lockout state a login attempt reads and
// counts: its account's, or for a name no account has, the name's in
// login_lockouts. Statement parts are constants, never input.
type lockTarget struct {
	table, where string
	args         []any
	ensure       string // makes the row when it may be missing
}

func accountTarget(t table, id int64) lockTarget {
	return lockTarget{table: t.table, where: "id = ?", args: []any{id}}
}

func nameTarget(subject, identifier string) lockTarget {
	return lockTarget{table: "login_lockouts", where: "subject_type = ? AND identifier = ?", args: []any{subject, identifier},
		ensure: "INSERT IGNORE INTO login_lockouts (subject_type, identifier) VALUES (?, ?)"}
}

// lockState reads the lockout state of target in tx and locks its row
// until tx ends, so attempts on one account (or name) are decided one after
// another.
func (s *Service) lockState(ctx context.Context, tx *sql.Tx, target lockTarget) (lockRow, error) {
	var l lockRow
	err := tx.QueryRowContext(ctx, `SELECT failed_login_count, first_failed_login_at, locked_until FROM `+target.table+` WHERE `+target.where+` FOR UPDATE`, target.args...).
		Scan(&l.count, &l.first, &l.lockedUntil)
	if err != nil {
		return l, fmt.Errorf("read failed logins: %w", err)
	}
	return l, nil
}

// countFailure counts a failed login against target, whose state st
// lockState read in tx, and locks it when the failures of the current
// window reach the limit. It reports whether this failure locked it.
func (s *Service) countFailure(ctx context.Context, tx *sql.Tx, target lockTarget, st lockRow) (bool, error) {
	count, first := st.count, st.first
	now := s.now().UTC()
	if !first.Valid || !first.Time.After(now.Add(-s.lockout.Window)) {
		count, first = 0, sql.NullTime{Time: now, Valid: true}
	}
	count++
	var until any
	locked := false
	if count >= s.lockout.MaxFailures {
		// The next failure after the lock starts a new window.
		locked, until, first = true, now.Add(s.lockout.Duration), sql.NullTime{}
	}
	args := append([]any{count, first, until}, target.args...)
	if _, err := tx.ExecContext(ctx, `UPDATE `+target.table+` SET failed_login_count = ?, first_failed_login_at = ?,
		locked_until = COALESCE(?, locked_until) WHERE `+target.where, args...); err != nil {
		return false, fmt.Errorf("count failed login: %w", err)
	}
	return locked, nil
}

// grant is what a session is opened for.
type grant struct {
	subject    string // subjectUser or subjectAdmin
	id         int64
	tenantID   int64  // tenant-scoped sessions
	tenantCode string // tenant-scoped sessions
	role       string // role in the tenant, or the admin's role
	family     string // "" = a new family
	parent     string // token_hash rotated from
}

// accessToken issues the access token of g.
func (s *Service) accessToken(g grant) (string, error) {
	kind, aud := auth.KindUser, auth.AudiencePlatform
	switch {
	case g.subject == subjectAdmin:
		kind, aud = auth.KindAdmin, auth.AudienceAdmin
	case g.tenantCode != "":
		aud = auth.AudienceTenant
	}
	tok, _, err := s.signer.Issue(kind, g.id, aud, g.tenantCode, g.role, s.cfg.AccessTTL)
	return tok, err
}

// openSession issues an access token and a refresh token of a new family
// for g.
func (s *Service) openSession(ctx context.Context, c Client, g grant) (Session, error) {
	var sess Session
	err := sqldb.InTx(ctx, s.db, func(tx *sql.Tx) error {
		var err error
		sess, err = s.issue(ctx, tx, c, g)
		return err
	})
	return sess, err
}
