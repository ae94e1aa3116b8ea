package notify

import (
	"database/sql"
	"errors"
	"log/slog"
	"net/mail"
	"strings"
	"time"

	"github.com/unitenant/unitenant/shared/config"
	"github.com/unitenant/unitenant/shared/secretbox"
)

// Config is the notification part of a function's configuration.
type Config struct {
	SMTP         SMTPConfig    // SMTP.Addr "": no e-mail
	EmailTo      []string      // who gets an e-mail copy of every lifecycle event
	Outbox       string        // development outbox file; "" outside development
	Timeout      time.Duration // per webhook delivery
	MaxAttempts  int           // delivery rounds before an event is dead
	DisableAfter int           // failed deliveries in a row that disable an endpoint (negative: never)
	AllowPrivate bool          // webhook URLs may resolve to private addresses
}

// LoadConfig reads:
//
//	SMTP_ADDR                  host:port of the mail relay ("" : no e-mail); 465 is implicit TLS,
//	                           other ports use STARTTLS when the server offers it
//	SMTP_USERNAME, SMTP_PASSWORD  PLAIN authentication (only over TLS or to localhost)
//	SMTP_FROM                  sender address, required with SMTP_ADDR
//	NOTIFY_EMAIL_TO            comma-separated addresses that get every lifecycle event by e-mail
//	NOTIFY_OUTBOX              development outbox (default .dev/outbox/notifications.jsonl);
//	                           refused outside development, where a file reaches nobody
//	NOTIFY_WEBHOOK_TIMEOUT     per delivery (default 10s)
//	NOTIFY_MAX_ATTEMPTS        delivery rounds before an event is dead (default 8)
//	NOTIFY_DISABLE_AFTER       failed deliveries in a row that disable a webhook endpoint
//	                           (default 50, about a day of a receiver down; 0: never)
//	NOTIFY_ALLOW_PRIVATE_URLS  let webhooks reach private addresses (default: in development only)
//
// Problems are recorded in e (see config.Env.Err).
func LoadConfig(e *config.Env, devEnv bool) Config {
	c := Config{
		SMTP: SMTPConfig{
			Addr:     e.String("SMTP_ADDR", ""),
			Username: e.String("SMTP_USERNAME", ""),
			Password: e.Secret("SMTP_PASSWORD", ""),
			From:     e.String("SMTP_FROM", ""),
			Timeout:  e.Duration("SMTP_TIMEOUT", 10*time.Second),
		},
		Timeout:      e.Duration("NOTIFY_WEBHOOK_TIMEOUT", DefaultTimeout),
		MaxAttempts:  e.Int("NOTIFY_MAX_ATTEMPTS", DefaultMaxAttempts, 1, 50),
		DisableAfter: e.Int("NOTIFY_DISABLE_AFTER", DefaultDisableAfter, 0, 1_000_000),
		AllowPrivate: e.Bool("NOTIFY_ALLOW_PRIVATE_URLS", devEnv),
	}
	if c.DisableAfter == 0 {
		c.DisableAfter = -1
	}
	if c.SMTP.Addr != "" {
		if _, err := NewSMTP(c.SMTP); err != nil {
			e.Fail("SMTP_ADDR", c.SMTP.Addr, err.Error())
		}
	}
	if to := e.String("NOTIFY_EMAIL_TO", ""); to != "" {
		for _, a := range strings.Split(to, ",") {
			addr, err := mail.ParseAddress(strings.TrimSpace(a))
			if err != nil {
				e.Fail("NOTIFY_EMAIL_TO", to, "not a comma-separated list of e-mail addresses")
				break
			}
			c.EmailTo = append(c.EmailTo, addr.Address)
		}
	}
	if len(c.EmailTo) > 0 && c.SMTP.Addr == "" && !devEnv {
		e.Fail("NOTIFY_EMAIL_TO", strings.Join(c.EmailTo, ","), "needs SMTP_ADDR")
	}
	if devEnv {
		c.Outbox = e.String("NOTIFY_OUTBOX", DefaultOutbox)
	} else if o := e.String("NOTIFY_OUTBOX", ""); o != "" {
		e.Fail("NOTIFY_OUTBOX", o, "the outbox is for development only; configure SMTP_ADDR")
	}
	return c
}

// Mailer returns the SMTP mailer, or nil when SMTP is not configured.
func (c Config) Mailer() (Mailer, error) {
	if c.SMTP.Addr == "" {
		return nil, nil
	}
	m, err := NewSMTP(c.SMTP)
	if err != nil {
		return nil, err
	}
	return m, nil
}

// Dispatcher returns the webhook dispatcher of this configuration; owner
// names it in leases (the function's name).
func (c Config) Dispatcher(db *sql.DB, box *secretbox.Box, owner string, log *slog.Logger) (*Dispatcher, error) {
	if db == nil || box == nil {
		return nil, errors.New("notify: dispatcher needs the system database and the secret box")
	}
	m, err := c.Mailer()
	if err != nil {
		return nil, err
	}
	if len(c.EmailTo) > 0 && m == nil && c.Outbox == "" {
		return nil, errors.New("NOTIFY_EMAIL_TO is set but SMTP_ADDR is not")
	}
	return &Dispatcher{DB: db, Box: box, Client: NewHTTPClient(c.AllowPrivate), Owner: owner,
		MaxAttempts: c.MaxAttempts, DisableAfter: c.DisableAfter, Timeout: c.Timeout, Email: m, EmailTo: c.EmailTo, Outbox: c.Outbox, Log: log}, nil
}

// Notifier returns the direct-message notifier of this configuration.
func (c Config) Notifier(db *sql.DB, log *slog.Logger) (*Notifier, error) {
	if db == nil {
		return nil, errors.New("notify: notifier needs the system database")
	}
	m, err := c.Mailer()
	if err != nil {
		return nil, err
	}
	n := &Notifier{DB: db, Mailer: m, Log: log}
	if c.Outbox != "" {
		n.Outbox = &Outbox{Path: c.Outbox}
	}
	return n, nil
}
