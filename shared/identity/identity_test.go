package identity_test

import (
	"strings"
	"testing"
	"time"

	"github.com/unitenant/unitenant/shared/config"
	"github.com/unitenant/unitenant/shared/fault"
	"github.com/unitenant/unitenant/shared/identity"
)

func TestValidatePassword(t *testing.T) {
	t.Parallel()
	tests := []struct {
		pw string
		ok bool
	}{
		{"secret123", true},
		{"密码密码密码12", true},
		{"abc1234", false},   // 7 characters
		{"abcdefgh", false},  // no digit
		{"12345678", false},  // no letter
		{"        1a", true}, // spaces are characters
		{strings.Repeat("a1", 36), true},
		{strings.Repeat("a1", 36) + "x", false}, // 73 bytes: bcrypt would truncate
	}
	for _, tc := range tests {
		err := identity.ValidatePassword(tc.pw)
		if (err == nil) != tc.ok {
			t.Errorf("ValidatePassword(%q) = %v, want ok=%v", tc.pw, err, tc.ok)
		}
		if err != nil {
			if fe, _ := fault.As(err); fe.Code != "weak_password" || fe.Fields["password"] == "" {
				t.Errorf("ValidatePassword(%q) = %+v, want weak_password naming password", tc.pw, fe)
			}
		}
	}
}

func TestLoadConfig(t *testing.T) {
	t.Parallel()
	e := config.FromMap(map[string]string{})
	c, err := identity.LoadConfig(e)
	if err != nil || e.Err() != nil {
		t.Fatal(err, e.Err())
	}
	if c.BcryptCost != 12 || c.AccessTTL != 15*time.Minute || c.RefreshTTL != 720*time.Hour || c.BaseDomain != "localhost" ||
		!c.PhonePattern.MatchString("13800138000") || c.PhonePattern.MatchString("12800138000") {
		t.Fatalf("defaults = %+v", c)
	}
	if c.LoginIPHourlyLimit != identity.DefaultLoginIPHourlyLimit {
		t.Fatalf("LoginIPHourlyLimit = %d, want %d", c.LoginIPHourlyLimit, identity.DefaultLoginIPHourlyLimit)
	}
	if c, _ := identity.LoadConfig(config.FromMap(map[string]string{"LOGIN_IP_HOURLY_LIMIT": "0"})); c.LoginIPHourlyLimit != 0 {
		t.Fatalf("LOGIN_IP_HOURLY_LIMIT=0 gave %d, want 0 (no limit)", c.LoginIPHourlyLimit)
	}
	e = config.FromMap(map[string]string{"PHONE_PATTERN": `^\+\d{8,15}$`, "BCRYPT_COST": "10", "ACCESS_TOKEN_TTL": "5m"})
	if c, err = identity.LoadConfig(e); err != nil || e.Err() != nil || !c.PhonePattern.MatchString("+4915112345678") || c.BcryptCost != 10 || c.AccessTTL != 5*time.Minute {
		t.Fatalf("custom = %+v, %v, %v", c, err, e.Err())
	}
	if _, err := identity.LoadConfig(config.FromMap(map[string]string{"PHONE_PATTERN": `^(`})); err == nil {
		t.Error("a broken PHONE_PATTERN was accepted")
	}
	e = config.FromMap(map[string]string{"BCRYPT_COST": "40", "REFRESH_TOKEN_TTL": "-1h"})
	_, _ = identity.LoadConfig(e)
	if err := e.Err(); err == nil || !strings.Contains(err.Error(), "BCRYPT_COST") || !strings.Contains(err.Error(), "REFRESH_TOKEN_TTL") {
		t.Errorf("bad values: %v, want both named", err)
	}
}

func TestHashPassword(t *testing.T) {
	t.Parallel()
	h, err := identity.HashPassword("secret123", 4)
	if err != nil || !strings.HasPrefix(h, "$2a$04$") {
		t.Fatalf("HashPassword = %q, %v", h, err)
	}
}
