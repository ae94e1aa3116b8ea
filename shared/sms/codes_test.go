package sms_test

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/unitenant/unitenant/shared/fault"
	"github.com/unitenant/unitenant/shared/logging"
	"github.com/unitenant/unitenant/shared/provisioning"
	"github.com/unitenant/unitenant/shared/sms"
	"github.com/unitenant/unitenant/shared/sqldb/sqldbtest"
)

// clock is an injectable time source tests move by hand.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)} }

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }

func (c *clock) Add(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }

// capture is a Sender that remembers what it sent, standing in for the
// phone; fail makes it refuse.
type capture struct {
	mu    sync.Mutex
	codes []string
	fail  atomic.Bool
}

func (c *capture) Send(_ context.Context, _ string, _ sms.Purpose, code string) error {
	if c.fail.Load() {
		return errors.New("provider down")
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.codes = append(c.codes, code)
	return nil
}

func (c *capture) last(t *testing.T) string {
	t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.codes) == 0 {
		t.Fatal("no code was sent")
	}
	return c.codes[len(c.codes)-1]
}

func newCodes(t *testing.T) (*sms.Codes, *capture, *clock, *sql.DB) {
	t.Helper()
	db, _ := sqldbtest.NewDatabase(t)
	if _, err := provisioning.MigrateSystem(context.Background(), db, logging.Discard()); err != nil {
		t.Fatal(err)
	}
	snd, clk := &capture{}, newClock()
	return sms.NewCodes(db, snd, []byte("0123456789abcdef0123456789abcdef"), sms.Options{Now: clk.Now}), snd, clk, db
}

const phone = "13800138000"

func wantCode(t *testing.T, err error, code string) {
	t.Helper()
	if got := fault.CodeOf(err); got != code {
		t.Fatalf("error %v: code %q, want %q", err, got, code)
	}
}

func TestIssueAndRedeem(t *testing.T) {
	t.Parallel()
	codes, snd, _, db := newCodes(t)
	ctx := context.Background()
	ttl, err := codes.Issue(ctx, phone, sms.PurposeRegister, "10.1.2.3")
	if err != nil || ttl != 5*time.Minute {
		t.Fatalf("Issue = %v, %v; want 5m", ttl, err)
	}
	code := snd.last(t)
	if len(code) != 6 || strings.Trim(code, "0123456789") != "" {
		t.Fatalf("code %q is not 6 digits", code)
	}
	var stored string
	if err := db.QueryRow(`SELECT code_hash FROM sms_codes WHERE phone = ?`, phone).Scan(&stored); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(stored, code) || len(stored) != 64 {
		t.Fatalf("stored %q: want a 64-hex hash that does not contain the code", stored)
	}

	t.Run("OtherPurposeRefused", func(t *testing.T) {
		wantCode(t, codes.Redeem(ctx, phone, sms.PurposeLogin, code, nil), "invalid_sms_code")
	})
	t.Run("FailingThenKeepsCode", func(t *testing.T) {
		boom := errors.New("boom")
		if err := codes.Redeem(ctx, phone, sms.PurposeRegister, code, func(*sql.Tx) error { return boom }); !errors.Is(err, boom) {
			t.Fatalf("Redeem = %v, want boom", err)
		}
	})
	t.Run("OK", func(t *testing.T) {
		ran := false
		if err := codes.Redeem(ctx, phone, sms.PurposeRegister, code, func(*sql.Tx) error { ran = true; return nil }); err != nil || !ran {
			t.Fatalf("Redeem = %v (then ran %v)", err, ran)
		}
	})
	t.Run("ConsumedOnce", func(t *testing.T) {
		wantCode(t, codes.Redeem(ctx, phone, sms.PurposeRegister, code, nil), "invalid_sms_code")
	})
	t.Run("Malformed", func(t *testing.T) {
		err := codes.Redeem(ctx, phone, sms.PurposeRegister, "12ab56", nil)
		wantCode(t, err, "invalid_sms_code")
		if fe, _ := fault.As(err); fe.Fields["smsCode"] == "" {
			t.Errorf("error does not name smsCode: %+v", fe)
		}
	})
}

func TestWrongAttemptsBurnTheCode(t *testing.T) {
	t.Parallel()
	codes, snd, _, db := newCodes(t)
	ctx := context.Background()
	if _, err := codes.Issue(ctx, phone, sms.PurposeLogin, ""); err != nil {
		t.Fatal(err)
	}
	code := snd.last(t)
	wrong := "000000"
	if code == wrong {
		wrong = "111111"
	}
	for i := 0; i < 5; i++ {
		wantCode(t, codes.Redeem(ctx, phone, sms.PurposeLogin, wrong, nil), "invalid_sms_code")
	}
	var attempts int
	if err := db.QueryRow(`SELECT attempts FROM sms_codes`).Scan(&attempts); err != nil || attempts != 5 {
		t.Fatalf("attempts = %d (%v), want 5", attempts, err)
	}
	// The right code no longer works.
	wantCode(t, codes.Redeem(ctx, phone, sms.PurposeLogin, code, nil), "invalid_sms_code")
}

func TestExpiry(t *testing.T) {
	t.Parallel()
	codes, snd, clk, _ := newCodes(t)
	ctx := context.Background()
	if _, err := codes.Issue(ctx, phone, sms.PurposeLogin, ""); err != nil {
		t.Fatal(err)
	}
	clk.Add(5*time.Minute + time.Second)
	wantCode(t, codes.Redeem(ctx, phone, sms.PurposeLogin, snd.last(t), nil), "invalid_sms_code")
}

func TestLatestCodeWins(t *testing.T) {
	t.Parallel()
	codes, snd, clk, _ := newCodes(t)
	ctx := context.Background()
	if _, err := codes.Issue(ctx, phone, sms.PurposeLogin, ""); err != nil {
		t.Fatal(err)
	}
	first := snd.last(t)
	clk.Add(2 * time.Minute)
	if _, err := codes.Issue(ctx, phone, sms.PurposeLogin, ""); err != nil {
		t.Fatal(err)
	}
	if second := snd.last(t); second != first {
		wantCode(t, codes.Redeem(ctx, phone, sms.PurposeLogin, first, nil), "invalid_sms_code")
	}
	if err := codes.Redeem(ctx, phone, sms.PurposeLogin, snd.last(t), nil); err != nil {
		t.Fatalf("latest code: %v", err)
	}
}

func TestOnePerMinute(t *testing.T) {
	t.Parallel()
	codes, _, clk, _ := newCodes(t)
	ctx := context.Background()
	if _, err := codes.Issue(ctx, phone, sms.PurposeLogin, ""); err != nil {
		t.Fatal(err)
	}
	clk.Add(59 * time.Second)
	_, err := codes.Issue(ctx, phone, sms.PurposeRegister, "")
	wantCode(t, err, "sms_rate_limited")
	if fe, _ := fault.As(err); fe.RetryAfter != time.Second {
		t.Errorf("RetryAfter = %v, want 1s", fe.RetryAfter)
	}
	clk.Add(time.Second)
	if _, err := codes.Issue(ctx, phone, sms.PurposeRegister, ""); err != nil {
		t.Fatalf("after a minute: %v", err)
	}
	// Another phone is not limited by this one.
	if _, err := codes.Issue(ctx, "13900139000", sms.PurposeRegister, ""); err != nil {
		t.Fatalf("other phone: %v", err)
	}
}

func TestOnePerMinuteUnderConcurrency(t *testing.T) {
	t.Parallel()
	codes, snd, _, db := newCodes(t)
	const n = 12
	var ok, limited atomic.Int32
	var wg sync.WaitGroup
	start := make(chan struct{})
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			_, err := codes.Issue(context.Background(), phone, sms.PurposeLogin, "")
			switch fault.CodeOf(err) {
			case "":
				ok.Add(1)
			case "sms_rate_limited":
				limited.Add(1)
			default:
				t.Errorf("Issue: %v", err)
			}
		}()
	}
	close(start)
	wg.Wait()
	var rows int
	if err := db.QueryRow(`SELECT COUNT(*) FROM sms_codes`).Scan(&rows); err != nil {
		t.Fatal(err)
	}
	if ok.Load() != 1 || limited.Load() != n-1 || rows != 1 || len(snd.codes) != 1 {
		t.Fatalf("%d sent, %d limited, %d rows, %d messages; want exactly one code", ok.Load(), limited.Load(), rows, len(snd.codes))
	}
}

func TestTenPerDay(t *testing.T) {
	t.Parallel()
	codes, _, clk, _ := newCodes(t)
	ctx := context.Background()
	for i := range 10 {
		if _, err := codes.Issue(ctx, phone, sms.PurposeLogin, ""); err != nil {
			t.Fatalf("code %d: %v", i+1, err)
		}
		clk.Add(2 * time.Minute)
	}
	_, err := codes.Issue(ctx, phone, sms.PurposeLogin, "")
	wantCode(t, err, "sms_daily_limit")
	// The window slides: 24h after the first code, one more is allowed.
	clk.Add(24*time.Hour - 20*time.Minute)
	if _, err := codes.Issue(ctx, phone, sms.PurposeLogin, ""); err != nil {
		t.Fatalf("after the first code left the window: %v", err)
	}
	_, err = codes.Issue(ctx, phone, sms.PurposeLogin, "")
	wantCode(t, err, "sms_rate_limited")
}

func TestFailedSendIsNotCounted(t *testing.T) {
	t.Parallel()
	codes, snd, _, db := newCodes(t)
	ctx := context.Background()
	snd.fail.Store(true)
	_, err := codes.Issue(ctx, phone, sms.PurposeLogin, "")
	wantCode(t, err, "sms_send_failed")
	var rows int
	if err := db.QueryRow(`SELECT COUNT(*) FROM sms_codes`).Scan(&rows); err != nil || rows != 0 {
		t.Fatalf("rows = %d (%v), want 0", rows, err)
	}
	snd.fail.Store(false)
	if _, err := codes.Issue(ctx, phone, sms.PurposeLogin, ""); err != nil {
		t.Fatalf("retry after a failed send: %v", err)
	}
}

func TestParsePurpose(t *testing.T) {
	t.Parallel()
	for _, p := range sms.Purposes {
		if got, err := sms.ParsePurpose(string(p)); err != nil || got != p {
			t.Errorf("ParsePurpose(%q) = %q, %v", p, got, err)
		}
	}
	for _, s := range []string{"", "REGISTER", "admin", "register "} {
		if _, err := sms.ParsePurpose(s); fault.CodeOf(err) != "invalid_purpose" {
			t.Errorf("ParsePurpose(%q) = %v, want invalid_purpose", s, err)
		}
	}
}

// TestCodesPerAddressPerHour: one client spraying codes over many phones is
// stopped by its address's hourly limit, whatever the phones; another
// address is not; an IPv6 client counts with its /64; a code not sent is
// not counted; the next hour opens again.
func TestCodesPerAddressPerHour(t *testing.T) {
	t.Parallel()
	db, _ := sqldbtest.NewDatabase(t)
	if _, err := provisioning.MigrateSystem(context.Background(), db, logging.Discard()); err != nil {
		t.Fatal(err)
	}
	snd, clk := &capture{}, newClock()
	policy := sms.DefaultPolicy
	policy.IPHourlyLimit = 3
	codes := sms.NewCodes(db, snd, []byte("0123456789abcdef0123456789abcdef"), sms.Options{Policy: policy, Now: clk.Now})
	ctx := context.Background()
	next := 0
	newPhone := func() string { next++; return fmt.Sprintf("1390000%04d", next) }
	issue := func(ip string) error {
		_, err := codes.Issue(ctx, newPhone(), sms.PurposeRegister, ip)
		return err
	}
	rows := func() int {
		var n int
		if err := db.QueryRow(`SELECT COUNT(*) FROM sms_codes`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}

	// One failed send first: it is not counted.
	snd.fail.Store(true)
	wantCode(t, issue("203.0.113.7"), "sms_send_failed")
	snd.fail.Store(false)
	for i := range 3 {
		if err := issue("203.0.113.7"); err != nil {
			t.Fatalf("code %d from the address: %v", i+1, err)
		}
	}
	err := issue("203.0.113.7")
	wantCode(t, err, "sms_ip_limit")
	if fe, _ := fault.As(err); fe.RetryAfter <= 0 || fe.RetryAfter > time.Hour {
		t.Errorf("retry after %v, want within the hour", fe.RetryAfter)
	}
	// The same client as an IPv4-mapped IPv6 address is the same client.
	wantCode(t, issue("::ffff:203.0.113.7"), "sms_ip_limit")
	if n := rows(); n != 3 || len(snd.codes) != 3 {
		t.Fatalf("%d codes stored, %d sent; want 3 each: a refusal stores and sends nothing", n, len(snd.codes))
	}
	if err := issue("203.0.113.8"); err != nil {
		t.Fatalf("another address: %v", err)
	}

	// IPv6: the addresses of one /64 are one client.
	for i, ip := range []string{"2001:db8:1:2::1", "2001:db8:1:2::ffff", "2001:db8:1:2:abcd::9"} {
		if err := issue(ip); err != nil {
			t.Fatalf("IPv6 code %d: %v", i+1, err)
		}
	}
	wantCode(t, issue("2001:db8:1:2:ffff:ffff:ffff:fffe"), "sms_ip_limit")
	if err := issue("2001:db8:1:3::1"); err != nil {
		t.Fatalf("the next /64: %v", err)
	}

	// The next hour, the address may send again.
	clk.Add(time.Hour)
	if err := issue("203.0.113.7"); err != nil {
		t.Fatalf("the next hour: %v", err)
	}
	// No address known (a direct call, a test): only the phone limits apply.
	for range 4 {
		if err := issue(""); err != nil {
			t.Fatalf("without an address: %v", err)
		}
	}
}
