package notify

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"net/mail"
	"time"

	"github.com/unitenant/unitenant/shared/fault"
	"github.com/unitenant/unitenant/shared/logging"
)

// ErrNoChannel is returned when a message cannot reach its recipient: no
// SMTP relay for an address, and no development outbox.
var ErrNoChannel = fault.New(fault.NotImplemented, "notification_unavailable",
	"no channel can deliver this message: configure SMTP_ADDR (and an e-mail address for the recipient)")

// Notifier sends direct messages to people (a deletion confirmation token to
// the admin who asked for it, say): by e-mail through Mailer when there is
// one and the recipient has an address, else to the development Outbox.
// Every message is one notification_logs row (channel email or outbox) that
// records where it went, never what it said: bodies can hold tokens.
type Notifier struct {
	DB     *sql.DB
	Mailer Mailer  // SMTP; nil: none
	Outbox *Outbox // development outbox; nil: none
	Log    *slog.Logger
}

// SentToOutbox is where a message went when no e-mail could carry it (as
// Send and SendToAdmin report it).
const SentToOutbox = "development outbox"

// Send delivers one message to the e-mail address to, and says where it went:
// the address, or SentToOutbox.
func (n *Notifier) Send(ctx context.Context, to, subject, body string) (where string, err error) {
	return n.send(ctx, to, to, subject, body)
}

// SendToAdmin delivers one message to the admin user adminID, at the e-mail
// address on their account. Without an address (or without SMTP) it goes to
// the development outbox, addressed "admin:<username>"; with neither, it is
// ErrNoChannel. It says where the message went, like Send.
func (n *Notifier) SendToAdmin(ctx context.Context, adminID int64, subject, body string) (where string, err error) {
	address, fallback, err := n.admin(ctx, adminID)
	if err != nil {
		return "", err
	}
	return n.send(ctx, address, fallback, subject, body)
}

// AdminChannel says where SendToAdmin would deliver a message to adminID,
// sending nothing, or why it could not (ErrNoChannel, say): a caller about to
// commit something whose secret only that message carries (a deletion
// confirmation token) checks first, and refuses before changing anything.
func (n *Notifier) AdminChannel(ctx context.Context, adminID int64) (where string, err error) {
	address, fallback, err := n.admin(ctx, adminID)
	if err != nil {
		return "", err
	}
	r, err := n.route(address, fallback)
	return r.where, err
}

// admin returns the e-mail address of admin user adminID ("" when none) and
// the outbox recipient for the fallback.
func (n *Notifier) admin(ctx context.Context, adminID int64) (address, fallback string, err error) {
	var email sql.NullString
	var username string
	err = n.DB.QueryRowContext(ctx, "SELECT email, username FROM admin_users WHERE id = ?", adminID).Scan(&email, &username)
	if errors.Is(err, sql.ErrNoRows) {
		return "", "", fault.New(fault.NotFound, "admin_not_found", "admin user %d does not exist", adminID)
	}
	if err != nil {
		return "", "", fmt.Errorf("notify admin %d: %w", adminID, err)
	}
	return email.String, "admin:" + username, nil
}

// route is the channel a message takes.
type route struct {
	channel, to, where string
	m                  Mailer
}

// route picks e-mail to address when it can, else the outbox for fallback.
func (n *Notifier) route(address, fallback string) (route, error) {
	switch {
	case n.Mailer != nil && address != "":
		if _, err := mail.ParseAddress(address); err != nil {
			return route{}, fault.Field("invalid_email", "to", "is not a valid email address")
		}
		return route{channel: "email", to: address, where: address, m: n.Mailer}, nil
	case n.Outbox != nil:
		r := route{channel: "outbox", to: fallback, where: SentToOutbox, m: n.Outbox}
		if address != "" {
			r.to = address
		}
		return r, nil
	}
	return route{}, ErrNoChannel
}

// send mails address when it can, else writes to the outbox for fallback.
func (n *Notifier) send(ctx context.Context, address, fallback, subject, body string) (string, error) {
	r, err := n.route(address, fallback)
	if err != nil {
		return "", err
	}
	channel, to, m, where := r.channel, r.to, r.m, r.where
	start := time.Now()
	sendErr := m.Send(ctx, to, subject, body)
	status, errMsg := "sent", any(nil)
	if sendErr != nil {
		status, errMsg = "failed", truncate(sendErr.Error(), 2000)
	}
	if _, err := n.DB.ExecContext(ctx, `INSERT INTO notification_logs (channel, target, attempt, status, error_message, duration_ms)
		VALUES (?, ?, 1, ?, ?, ?)`, channel, truncate(to, 1000), status, errMsg, time.Since(start).Milliseconds()); err != nil {
		sendErr = errors.Join(sendErr, fmt.Errorf("log notification: %w", err))
	}
	log := n.Log
	if log == nil {
		log = logging.Discard()
	}
	if sendErr != nil {
		log.ErrorContext(ctx, "notification", "channel", channel, "to", to, "subject", subject, "err", sendErr)
		return "", fmt.Errorf("notify %s: %w", to, sendErr)
	}
	log.InfoContext(ctx, "notification", "channel", channel, "to", to, "subject", subject)
	return where, nil
}
