package identity

import (
	"fmt"
	"net/mail"
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/crypto/bcrypt"

	"github.com/unitenant/unitenant/shared/fault"
)

// Password rules: bcrypt reads at most 72 bytes, so longer passwords would be
// silently truncated; refuse them instead.
const (
	minPasswordLen = 8
	maxPasswordLen = 72
	// maxLoginPassword bounds what login accepts before any hashing.
	maxLoginPassword = 1024
)

// ValidatePassword enforces the password rule: 8 to 72 bytes with at least
// one letter and one digit.
func ValidatePassword(pw string) error {
	var letter, digit bool
	for _, r := range pw {
		switch {
		case r >= '0' && r <= '9':
			digit = true
		case unicode.IsLetter(r):
			letter = true
		}
	}
	switch {
	case utf8.RuneCountInString(pw) < minPasswordLen:
		return fault.Field("weak_password", "password", fmt.Sprintf("must be at least %d characters", minPasswordLen))
	case len(pw) > maxPasswordLen:
		return fault.Field("weak_password", "password", fmt.Sprintf("must be at most %d bytes", maxPasswordLen))
	case !letter || !digit:
		return fault.Field("weak_password", "password", "must contain letters and digits")
	}
	return nil
}

// HashPassword returns the bcrypt hash of pw at cost.
func HashPassword(pw string, cost int) (string, error) {
	h, err := bcrypt.GenerateFromPassword([]byte(pw), cost)
	if err != nil {
		return "", fmt.Errorf("hash password: %w", err)
	}
	return string(h), nil
}

// passwordMatches compares pw with hash; anything but a match (including a
// malformed hash) is a mismatch.
func passwordMatches(hash []byte, pw string) bool {
	return bcrypt.CompareHashAndPassword(hash, []byte(pw)) == nil
}

// validatePhone checks phone against the configured pattern.
func (s *Service) validatePhone(phone string) error {
	if !s.cfg.PhonePattern.MatchString(phone) {
		return fault.Field("invalid_phone", "phone", "is not a valid mobile number")
	}
	return nil
}

// required refuses an empty or oversized field.
func required(field, v string, max int) error {
	switch {
	case strings.TrimSpace(v) == "":
		return fault.Field("missing_field", field, "is required")
	case utf8.RuneCountInString(v) > max:
		return fault.Field("invalid_field", field, fmt.Sprintf("must be at most %d characters", max))
	}
	return nil
}

// validateEmail accepts an empty email (it is optional) or a bare address.
func validateEmail(email string) error {
	if email == "" {
		return nil
	}
	a, err := mail.ParseAddress(email)
	if err != nil || a.Address != email || len(email) > 255 {
		return fault.Field("invalid_email", "email", "is not a valid email address")
	}
	return nil
}

// RandomPassword returns a strong random password nobody knows: an account
// made on someone's behalf (an admin creating their tenant) starts with it,
// and its owner takes it over with an SMS code.
func RandomPassword() string { return randomToken() + "a1" }
