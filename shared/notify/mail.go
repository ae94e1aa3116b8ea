package notify

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"mime"
	"mime/quotedprintable"
	"net"
	"net/mail"
	"net/smtp"
	"os"
	"strings"
	"time"

	"github.com/unitenant/unitenant/shared/devoutbox"
)

// Mailer sends one plain-text e-mail.
type Mailer interface {
	Send(ctx context.Context, to, subject, body string) error
}

// SMTPConfig is how to reach the mail relay. Addr "" means no SMTP.
type SMTPConfig struct {
	Addr     string // host:port; port 465 is implicit TLS, any other port upgrades with STARTTLS when offered
	Username string // empty: no authentication
	Password string
	From     string // the sender address, e.g. "unitenant <noreply@example.com>"
	Timeout  time.Duration
	// TLS overrides the TLS settings (tests trust their own certificate);
	// nil verifies the server's certificate for the host of Addr.
	TLS *tls.Config
}

// SMTP sends mail through an SMTP relay with net/smtp: STARTTLS whenever the
// server offers it, PLAIN authentication only over TLS (or to localhost).
type SMTP struct {
	cfg  SMTPConfig
	host string
}

// NewSMTP checks cfg and returns a mailer.
func NewSMTP(cfg SMTPConfig) (*SMTP, error) {
	host, _, err := net.SplitHostPort(cfg.Addr)
	if err != nil || host == "" {
		return nil, fmt.Errorf("SMTP_ADDR %q: want host:port", cfg.Addr)
	}
	if _, err := mail.ParseAddress(cfg.From); err != nil {
		return nil, fmt.Errorf("SMTP_FROM %q: not an e-mail address", cfg.From)
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 10 * time.Second
	}
	return &SMTP{cfg: cfg, host: host}, nil
}

// Send delivers one message. Header values are checked, never trusted: a
// line break in a recipient or subject is refused, not sent.
func (s *SMTP) Send(ctx context.Context, to, subject, body string) error {
	rcpt, err := mail.ParseAddress(to)
	if err != nil {
		return fmt.Errorf("smtp: recipient %q: not an e-mail address", to)
	}
	if strings.ContainsAny(subject, "\r\n") {
		return errors.New("smtp: subject contains a line break")
	}
	from, _ := mail.ParseAddress(s.cfg.From)
	msg, err := composeMessage(from, rcpt, subject, body, time.Now())
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, s.cfg.Timeout)
	defer cancel()
	if err := s.deliver(ctx, from.Address, rcpt.Address, msg); err != nil {
		return fmt.Errorf("smtp %s: %w", s.cfg.Addr, err)
	}
	return nil
}

func (s *SMTP) tlsConfig() *tls.Config {
	if s.cfg.TLS != nil {
		c := s.cfg.TLS.Clone()
		if c.ServerName == "" {
			c.ServerName = s.host
		}
		return c
	}
	return &tls.Config{ServerName: s.host, MinVersion: tls.VersionTLS12}
}

func (s *SMTP) deliver(ctx context.Context, from, to string, msg []byte) error {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", s.cfg.Addr)
	if err != nil {
		return err
	}
	deadline, _ := ctx.Deadline()
	_ = conn.SetDeadline(deadline) // net/smtp takes no context: the deadline bounds every exchange
	if strings.HasSuffix(s.cfg.Addr, ":465") {
		conn = tls.Client(conn, s.tlsConfig())
	}
	c, err := smtp.NewClient(conn, s.host)
	if err != nil {
		conn.Close()
		return err
	}
	defer c.Close()
	if ok, _ := c.Extension("STARTTLS"); ok {
		if err := c.StartTLS(s.tlsConfig()); err != nil {
			return fmt.Errorf("starttls: %w", err)
		}
	}
	if s.cfg.Username != "" {
		// PlainAuth itself refuses to send the password over a connection
		// that is neither TLS nor to localhost.
		if err := c.Auth(smtp.PlainAuth("", s.cfg.Username, s.cfg.Password, s.host)); err != nil {
			return fmt.Errorf("auth: %w", err)
		}
	}
	if err := c.Mail(from); err != nil {
		return fmt.Errorf("mail from: %w", err)
	}
	if err := c.Rcpt(to); err != nil {
		return fmt.Errorf("rcpt to: %w", err)
	}
	w, err := c.Data()
	if err != nil {
		return fmt.Errorf("data: %w", err)
	}
	if _, err := w.Write(msg); err != nil {
		return fmt.Errorf("data: %w", err)
	}
	if err := w.Close(); err != nil {
		return fmt.Errorf("data: %w", err)
	}
	return c.Quit()
}

// composeMessage builds an RFC 5322 message: UTF-8 text, quoted-printable,
// the subject and display names encoded when they are not ASCII.
func composeMessage(from, to *mail.Address, subject, body string, now time.Time) ([]byte, error) {
	var id [12]byte
	_, _ = rand.Read(id[:])
	domain := from.Address[strings.LastIndexByte(from.Address, '@')+1:]
	var b bytes.Buffer
	fmt.Fprintf(&b, "From: %s\r\n", from.String())
	fmt.Fprintf(&b, "To: %s\r\n", to.String())
	fmt.Fprintf(&b, "Subject: %s\r\n", mime.QEncoding.Encode("utf-8", subject))
	fmt.Fprintf(&b, "Date: %s\r\n", now.Format(time.RFC1123Z))
	fmt.Fprintf(&b, "Message-ID: <%s@%s>\r\n", hex.EncodeToString(id[:]), domain)
	b.WriteString("MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n")
	qp := quotedprintable.NewWriter(&b)
	if _, err := qp.Write([]byte(strings.ReplaceAll(body, "\n", "\r\n"))); err != nil {
		return nil, fmt.Errorf("encode mail body: %w", err)
	}
	if err := qp.Close(); err != nil {
		return nil, fmt.Errorf("encode mail body: %w", err)
	}
	b.WriteString("\r\n")
	return b.Bytes(), nil
}

// DefaultOutbox is the development outbox, relative to the working directory
// (the repository root under `make dev`).
const DefaultOutbox = ".dev/outbox/notifications.jsonl"

// OutboxMessage is one line of the outbox.
type OutboxMessage struct {
	Time    time.Time `json:"time"`
	Channel string    `json:"channel"` // "email" for direct messages, "event" for copies of lifecycle events
	To      string    `json:"to,omitempty"`
	Subject string    `json:"subject"`
	Body    string    `json:"body"`
	EventID string    `json:"eventId,omitempty"`
	Type    string    `json:"type,omitempty"`
}

// Outbox is the development channel: it appends every message as one JSON
// line to a file that developers and the end-to-end tests read (a deletion
// confirmation token, say). Several processes may append at once: each line
// is one write to a file opened with O_APPEND, which the kernel keeps whole.
// It is a Mailer too.
type Outbox struct {
	Path string
	Now  func() time.Time // nil: time.Now
}

// Send appends a direct message (channel "email").
func (o *Outbox) Send(_ context.Context, to, subject, body string) error {
	return o.Write(OutboxMessage{Channel: "email", To: to, Subject: subject, Body: body})
}

// Write appends m, stamping its time, creating the file and its directories
// on first use.
func (o *Outbox) Write(m OutboxMessage) error {
	now := time.Now
	if o.Now != nil {
		now = o.Now
	}
	m.Time = now().UTC()
	return devoutbox.Append(o.Path, m)
}

// ReadOutbox returns every message in the outbox file at path, oldest first
// (none when it does not exist yet): for tests and tools.
func ReadOutbox(path string) ([]OutboxMessage, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read outbox: %w", err)
	}
	var out []OutboxMessage
	for _, line := range bytes.Split(b, []byte("\n")) {
		if len(bytes.TrimSpace(line)) == 0 {
			continue
		}
		var m OutboxMessage
		if err := json.Unmarshal(line, &m); err != nil {
			return nil, fmt.Errorf("read outbox: %w", err)
		}
		out = append(out, m)
	}
	return out, nil
}
