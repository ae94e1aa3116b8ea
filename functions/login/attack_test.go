package main

import (
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/unitenant/unitenant/shared/identity"
)

// TestRegisterDoesNotRevealRegisteredPhones: without the code sent to a
// phone, register must answer a registered phone exactly as an unregistered
// one, so it cannot be used to enumerate accounts login keeps secret. Only
// the phone's owner, with its code, learns the phone is taken.
func TestRegisterDoesNotRevealRegisteredPhones(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	const free = "13900139000"
	e.addUser(phone, password)
	body := func(p, code string) map[string]string {
		return map[string]string{"phone": p, "password": "another123", "realName": "Mallory", "smsCode": code}
	}
	// No code was ever sent to either phone.
	taken, unknown := e.post("/api/auth/register", body(phone, "123456")), e.post("/api/auth/register", body(free, "123456"))
	want(t, taken, 400, "invalid_sms_code")
	want(t, unknown, 400, "invalid_sms_code")
	if taken.Error.Message != unknown.Error.Message || taken.Error.Fields["smsCode"] != unknown.Error.Fields["smsCode"] {
		t.Errorf("registered phone answered %+v, unregistered %+v", taken.Error, unknown.Error)
	}
	// A code was sent to both (anyone may ask for one); the attacker guesses.
	want(t, e.post("/api/auth/sms-code", map[string]string{"phone": phone, "purpose": "register"}), 200, "")
	want(t, e.post("/api/auth/sms-code", map[string]string{"phone": free, "purpose": "register"}), 200, "")
	guess := func(p string) string {
		if e.lastCode(p) == "000000" {
			return "111111"
		}
		return "000000"
	}
	taken, unknown = e.post("/api/auth/register", body(phone, guess(phone))), e.post("/api/auth/register", body(free, guess(free)))
	want(t, taken, 400, "invalid_sms_code")
	want(t, unknown, 400, "invalid_sms_code")
	if taken.Error.Message != unknown.Error.Message {
		t.Errorf("registered phone answered %+v, unregistered %+v", taken.Error, unknown.Error)
	}
	// The owner, with the code, is told; the code stays unspent.
	want(t, e.post("/api/auth/register", body(phone, e.lastCode(phone))), 409, "phone_taken")
	if n := e.count(`SELECT COUNT(*) FROM sms_codes WHERE phone = ? AND consumed_at IS NULL`, phone); n != 1 {
		t.Errorf("phone_taken consumed the code")
	}
	if n := e.count(`SELECT COUNT(*) FROM global_users`); n != 1 {
		t.Errorf("%d users, want 1", n)
	}
}

// TestConcurrentGuessesCannotOutrunLockout sends a burst of password
// guesses at once, as an attacker with many connections would: every guess
// reads the account before any failure is counted. The lockout must still
// bound them: at most MaxFailures (5) guesses are told the password is
// wrong, the rest are refused as locked, and the right password sent in a
// burst is never told apart from the wrong ones by a lock only it sees.
// It runs at bcrypt cost 10 so the guesses overlap.
func TestConcurrentGuessesCannotOutrunLockout(t *testing.T) {
	t.Parallel()
	e := newEnvCost(t, 10)
	e.addUser(phone, password)
	burst := func(passwords []string) []string {
		codes := make([]string, len(passwords))
		var wg sync.WaitGroup
		start := make(chan struct{})
		for i, pw := range passwords {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				codes[i] = e.post("/api/auth/login", map[string]string{"phone": phone, "password": pw}).Code()
			}()
		}
		close(start)
		wg.Wait()
		return codes
	}
	tally := func(codes []string) map[string]int {
		m := map[string]int{}
		for _, c := range codes {
			m[c]++
		}
		return m
	}

	const n = 16
	wrong := make([]string, n)
	for i := range wrong {
		wrong[i] = "guess" + string(rune('a'+i)) + "123"
	}
	got := tally(burst(wrong))
	if got["invalid_credentials"] != 5 || got["account_locked"] != n-5 {
		t.Fatalf("%d concurrent wrong guesses answered %v, want 5 invalid_credentials and %d account_locked", n, got, n-5)
	}
	want(t, e.post("/api/auth/login", map[string]string{"phone": phone, "password": password}), 423, "account_locked")
}

// TestLoginInFlightWhenLockedIsRefused pins the race the burst above
// exploits: a login that read the account unlocked and is checking the
// password while other attempts lock the account must be answered as
// locked, with the right password as with a wrong one, and must neither
// reset the lock nor be counted. The test holds the account row while the
// login is in flight and locks the account as a concurrent failure would.
func TestLoginInFlightWhenLockedIsRefused(t *testing.T) {
	t.Parallel()
	e := newEnvCost(t, 10)
	id := e.addUser(phone, password)
	for _, pw := range []string{password, "wrong1234"} {
		e.exec(`UPDATE global_users SET failed_login_count = 4, first_failed_login_at = ?, locked_until = NULL WHERE id = ?`, e.clock.Now().UTC(), id)
		tx, err := e.db.Begin()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := tx.Exec(`SELECT id FROM global_users WHERE id = ? FOR UPDATE`, id); err != nil {
			t.Fatal(err)
		}
		done := make(chan reply, 1)
		go func() { done <- e.post("/api/auth/login", map[string]string{"phone": phone, "password": pw}) }()
		// Wait until the login has read the account and waits for its row.
		for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(5 * time.Millisecond) {
			waiting := e.count(`SELECT COUNT(*) FROM information_schema.PROCESSLIST
				WHERE DB = DATABASE() AND ID <> CONNECTION_ID() AND INFO LIKE '%global_users%'
				AND (INFO LIKE '%FOR UPDATE' OR INFO LIKE 'UPDATE%')`)
			if waiting > 0 {
				break
			}
			if time.Now().After(deadline) {
				_ = tx.Rollback()
				t.Fatal("the login never waited for the account row")
			}
		}
		until := e.clock.Now().UTC().Add(15 * time.Minute)
		if _, err := tx.Exec(`UPDATE global_users SET failed_login_count = 5, first_failed_login_at = NULL, locked_until = ? WHERE id = ?`, until, id); err != nil {
			t.Fatal(err)
		}
		if err := tx.Commit(); err != nil {
			t.Fatal(err)
		}
		r := <-done
		if r.Status != 423 || r.Code() != "account_locked" {
			t.Errorf("password %q in flight when the account was locked: got %d %q, want 423 account_locked", pw, r.Status, r.Code())
		}
		if n := e.count(`SELECT COUNT(*) FROM global_users WHERE id = ? AND locked_until IS NOT NULL AND failed_login_count = 5`, id); n != 1 {
			t.Errorf("password %q in flight reset or counted against the lock", pw)
		}
	}
	if n := e.count(`SELECT COUNT(*) FROM login_history WHERE failure_reason = 'locked'`); n != 2 {
		t.Errorf("%d attempts recorded as refused for the lock, want 2", n)
	}
}

// TestPhoneVariantsAreRefused: a phone written another way (country code,
// spaces, full-width or other non-ASCII digits, a trailing space or
// newline, an invisible character) must be refused before it reaches the
// database, where the column's collation ignores trailing spaces: accepted,
// a variant would be a second account for one phone, a login to the
// original one outside its own failure count, or a way round the per-phone
// code limits.
func TestPhoneVariantsAreRefused(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.addUser(phone, password)
	variants := []string{
		"+8613800138000", "8613800138000", "0086 13800138000", "138 0013 8000", "138-0013-8000",
		"１３８００１３８０００", "١٣٨٠٠١٣٨٠٠٠", "13800138000 ", " 13800138000", "13800138000\n", "13800138000\t",
		"\u200b13800138000", "13800138000\x00",
	}
	for _, v := range variants {
		want(t, e.post("/api/auth/sms-code", map[string]string{"phone": v, "purpose": "register"}), 400, "invalid_phone")
		want(t, e.post("/api/auth/login", map[string]string{"phone": v, "password": password}), 400, "invalid_phone")
		want(t, e.post("/api/auth/register", map[string]string{"phone": v, "password": password, "realName": "Twin", "smsCode": "123456"}), 400, "invalid_phone")
	}
	if n := e.count(`SELECT COUNT(*) FROM sms_codes`) + e.count(`SELECT COUNT(*) FROM login_history`); n != 0 {
		t.Errorf("phone variants reached the database: %d rows", n)
	}
}

// TestUnknownNamesLockLikeAccounts: the lockout must not tell which phones
// and usernames exist. The same guesses at a real account and at a name no
// account has get the same answers, the lock (423, with its Retry-After)
// included, and both unlock after the same time.
func TestUnknownNamesLockLikeAccounts(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.addUser(phone, password)
	e.addAdmin("ops", "adminpass1", "admin")
	type answer struct {
		status     int
		code       string
		retryAfter string
	}
	guesses := func(path string, body func(name string) map[string]string, name string) []answer {
		t.Helper()
		var out []answer
		for range 7 {
			r := e.post(path, body(name))
			code := ""
			if r.Error != nil {
				code = r.Error.Code
			}
			out = append(out, answer{r.Status, code, r.Header.Get("Retry-After")})
		}
		return out
	}
	user := func(p string) map[string]string { return map[string]string{"phone": p, "password": "wrong1234"} }
	admin := func(u string) map[string]string { return map[string]string{"username": u, "password": "wrong1234"} }
	for _, c := range []struct {
		path          string
		body          func(string) map[string]string
		real, unknown string
	}{
		{"/api/auth/login", user, phone, "13900139000"},
		{"/api/admin/auth/login", admin, "ops", "nobody"},
	} {
		real, unknown := guesses(c.path, c.body, c.real), guesses(c.path, c.body, c.unknown)
		if !slices.Equal(real, unknown) {
			t.Fatalf("%s: %s answered %v, the unknown %s %v", c.path, c.real, real, c.unknown, unknown)
		}
		if real[4].status != 401 || real[5].status != 423 || real[5].retryAfter == "" {
			t.Fatalf("%s: answers %v, want 401 until the fifth failure, then 423 with Retry-After", c.path, real)
		}
	}
	e.clock.Add(15*time.Minute + time.Second)
	want(t, e.post("/api/auth/login", user("13900139000")), 401, "invalid_credentials")
	want(t, e.post("/api/admin/auth/login", admin("nobody")), 401, "invalid_credentials")
	if n := e.count(`SELECT COUNT(*) FROM global_users WHERE phone = '13900139000'`); n != 0 {
		t.Fatalf("a failed login made an account")
	}
}

// TestFailedLoginsPerAddress: guessing one password across many accounts
// (or names) trips no account's lockout; the client address's hourly limit
// of failed logins stops it, users' and admins' alike, with Retry-After.
// Successful logins do not use the limit up, and other addresses are not
// held back by one that did.
func TestFailedLoginsPerAddress(t *testing.T) {
	t.Parallel()
	e := newEnvCost(t, bcrypt.MinCost, func(c *identity.Config) { c.LoginIPHourlyLimit = 3 })
	e.addUser(phone, password)
	for range 5 {
		e.login(phone, password) // successes give their count back
	}
	for i := range 3 {
		want(t, e.post("/api/auth/login", map[string]string{"phone": fmt.Sprintf("1390013900%d", i), "password": "Summer2026"}), 401, "invalid_credentials")
	}
	r := e.post("/api/admin/auth/login", map[string]string{"username": "ops", "password": "Summer2026"})
	want(t, r, 429, "login_ip_limit")
	if r.Header.Get("Retry-After") == "" {
		t.Error("no Retry-After on login_ip_limit")
	}
	want(t, e.post("/api/auth/login", map[string]string{"phone": phone, "password": password}), 429, "login_ip_limit")
	if n := e.count(`SELECT failed_login_count FROM global_users WHERE phone = ?`, phone); n != 0 {
		t.Errorf("a refused attempt counted against the account: %d", n)
	}
	// Another address (IPv6, counted by its /64) is not held back.
	req := map[string]string{"phone": phone, "password": password}
	if r := e.callFrom("2001:db8:1:2::7", "POST", "/api/auth/login", req); r.Status != 200 {
		t.Fatalf("another address: %d %+v", r.Status, r.Error)
	}
	e.clock.Add(time.Hour)
	e.login(phone, password)
}
