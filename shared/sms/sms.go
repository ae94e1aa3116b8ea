// Package sms issues and checks the one-time verification codes sent by text
// message (register, login, password reset, tenant creation) and delivers
// them: through Aliyun SMS in production, to a JSON-lines outbox file on a
// developer machine.
//
// It never stores or logs a code in plaintext: the database holds an
// HMAC-SHA256 of phone, purpose and code keyed with a server secret. Codes
// expire, allow a few attempts, are consumed once, and are rate-limited per
// phone with a lock so concurrent requests cannot slip past the limits.
package sms

import (
	"context"

	"github.com/unitenant/unitenant/shared/fault"
)

// Purpose is what a code is for; a code only verifies for its own purpose.
type Purpose string

// The purposes a code can be requested for.
const (
	PurposeRegister      Purpose = "register"
	PurposeLogin         Purpose = "login"
	PurposeResetPassword Purpose = "reset_password"
	PurposeTenantCreate  Purpose = "tenant_create"
)

// Purposes lists every valid purpose.
var Purposes = []Purpose{PurposeRegister, PurposeLogin, PurposeResetPassword, PurposeTenantCreate}

// ParsePurpose returns s as a Purpose, or an invalid_purpose error naming the
// field "purpose".
func ParsePurpose(s string) (Purpose, error) {
	for _, p := range Purposes {
		if string(p) == s {
			return p, nil
		}
	}
	return "", fault.Field("invalid_purpose", "purpose", "must be one of register, login, reset_password, tenant_create")
}

// Sender delivers a code to a phone. Implementations must not log the code.
type Sender interface {
	Send(ctx context.Context, phone string, purpose Purpose, code string) error
}
