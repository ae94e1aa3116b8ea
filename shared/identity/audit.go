package identity

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"

	"github.com/unitenant/unitenant/shared/sqldb"
)

// Subject types, as stored in subject_type columns.
const (
	subjectUser  = "user"
	subjectAdmin = "admin"
)

// event is one row of unified_auth_logs and, for login attempts, one row of
// login_history.
type event struct {
	Type       string // register | login | admin_login | logout | refresh | refresh_reuse | switch_tenant | lockout | sms_sent
	Subject    string // subjectUser or subjectAdmin
	SubjectID  int64  // 0 when the identifier matched nobody
	Identifier string // phone or username as typed (login attempts)
	TenantID   int64
	TenantCode string
	Success    bool
	Reason     string // why it failed
	Method     string // login_history.login_method; set for login attempts only
}

// record writes ev. It is kept even when the client has gone away: an
// attempt must not vanish from the audit trail because the caller hung up.
func (s *Service) record(ctx context.Context, c Client, ev event) error {
	return s.recordWith(ctx, c, ev, nil)
}

// recordWith writes ev in one transaction after before's statements (nil:
// none), which the caller's answer may depend on; before may amend ev (the
// reason of a failure it decides).
func (s *Service) recordWith(ctx context.Context, c Client, ev event, before func(*sql.Tx, *event) error) error {
	ctx = context.WithoutCancel(ctx)
	err := sqldb.InTx(ctx, s.db, func(tx *sql.Tx) error {
		if before != nil {
			if err := before(tx, &ev); err != nil {
				return err
			}
		}
		return s.recordIn(ctx, tx, c, ev)
	})
	if err != nil {
		return fmt.Errorf("record %s: %w", ev.Type, err)
	}
	return nil
}

// recordIn writes ev's rows in tx.
func (s *Service) recordIn(ctx context.Context, tx *sql.Tx, c Client, ev event) error {
	now := s.now().UTC()
	details := map[string]string{}
	for k, v := range map[string]string{"reason": ev.Reason, "identifier": ev.Identifier, "method": ev.Method} {
		if v != "" {
			details[k] = v
		}
	}
	var detailsJSON any
	if len(details) > 0 {
		b, _ := json.Marshal(details)
		detailsJSON = string(b)
	}
	ip, ua, rid := nullable(sqldb.Text(c.IP, 45)), nullable(sqldb.Text(c.UserAgent, 500)), nullable(sqldb.Text(c.RequestID, 64))
	if ev.Method != "" {
		if _, err := tx.ExecContext(ctx, `
			INSERT INTO login_history (subject_type, subject_id, identifier, tenant_id, login_method, success, failure_reason, ip_address, user_agent, request_id, created_at)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			ev.Subject, nullID(ev.SubjectID), sqldb.Text(ev.Identifier, 255), nullID(ev.TenantID), ev.Method,
			ev.Success, nullable(ev.Reason), ip, ua, rid, now); err != nil {
			return fmt.Errorf("insert login_history: %w", err)
		}
	}
	if _, err := tx.ExecContext(ctx, `
		INSERT INTO unified_auth_logs (event_type, subject_type, subject_id, tenant_id, tenant_code, success, request_id, ip_address, user_agent, details, created_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		ev.Type, nullable(ev.Subject), nullID(ev.SubjectID), nullID(ev.TenantID), nullable(ev.TenantCode),
		ev.Success, rid, ip, ua, detailsJSON, now); err != nil {
		return fmt.Errorf("insert unified_auth_logs: %w", err)
	}
	return nil
}

func nullable(s string) any {
	if s == "" {
		return nil
	}
	return s
}

func nullID(id int64) any {
	if id == 0 {
		return nil
	}
	return id
}
