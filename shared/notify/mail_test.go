package notify_test

import (
	"context"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"io"
	"mime"
	"mime/quotedprintable"
	"net"
	"net/http"
	"net/http/httptest"
	"net/mail"
	"net/textproto"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/unitenant/unitenant/shared/config"
	"github.com/unitenant/unitenant/shared/fault"
	"github.com/unitenant/unitenant/shared/notify"
)

// smtpServer is a tiny SMTP relay speaking the real protocol over a socket:
// EHLO, STARTTLS, AUTH PLAIN, MAIL, RCPT, DATA, QUIT.
type smtpServer struct {
	addr string
	tls  *tls.Config
	mu   sync.Mutex
	cmds []string // every command, "STARTTLS" then "(tls)" once upgraded
	msgs []string // the DATA of every message
	auth []string // decoded AUTH PLAIN credentials
}

// newSMTPServer starts the relay and returns it with a client TLS
// configuration that trusts its certificate.
func newSMTPServer(t *testing.T) (*smtpServer, *tls.Config) {
	t.Helper()
	// httptest's TLS server has a certificate for 127.0.0.1 and a client
	// that trusts it: borrow both.
	hs := httptest.NewTLSServer(http.NotFoundHandler())
	t.Cleanup(hs.Close)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	s := &smtpServer{addr: l.Addr().String(), tls: &tls.Config{Certificates: hs.TLS.Certificates}}
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go s.serve(c)
		}
	}()
	return s, &tls.Config{RootCAs: hs.Client().Transport.(*http.Transport).TLSClientConfig.RootCAs}
}

// snapshot returns the commands, credentials and messages seen so far.
func (s *smtpServer) snapshot() (cmds, auth, msgs []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.cmds), slices.Clone(s.auth), slices.Clone(s.msgs)
}

func (s *smtpServer) record(f func()) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f()
}

func (s *smtpServer) serve(c net.Conn) {
	defer func() { c.Close() }()
	tp := textproto.NewConn(c)
	_ = tp.PrintfLine("220 test ESMTP")
	secure := false
	for {
		line, err := tp.ReadLine()
		if err != nil {
			return
		}
		verb := strings.ToUpper(strings.Fields(line + " x")[0])
		s.record(func() { s.cmds = append(s.cmds, verb) })
		switch verb {
		case "EHLO":
			if secure {
				_ = tp.PrintfLine("250-test\r\n250 AUTH PLAIN")
			} else {
				_ = tp.PrintfLine("250-test\r\n250-STARTTLS\r\n250 AUTH PLAIN")
			}
		case "STARTTLS":
			_ = tp.PrintfLine("220 go ahead")
			tc := tls.Server(c, s.tls)
			if err := tc.Handshake(); err != nil {
				return
			}
			c, tp, secure = tc, textproto.NewConn(tc), true
			s.record(func() { s.cmds = append(s.cmds, "(tls)") })
		case "AUTH":
			cred, _ := base64.StdEncoding.DecodeString(strings.TrimSpace(strings.TrimPrefix(line, "AUTH PLAIN")))
			s.record(func() { s.auth = append(s.auth, string(cred)) })
			_ = tp.PrintfLine("235 ok")
		case "DATA":
			_ = tp.PrintfLine("354 go on")
			b, err := tp.ReadDotBytes()
			if err != nil {
				return
			}
			s.record(func() { s.msgs = append(s.msgs, string(b)) })
			_ = tp.PrintfLine("250 queued")
		case "QUIT":
			_ = tp.PrintfLine("221 bye")
			return
		default: // MAIL, RCPT, RSET, NOOP
			_ = tp.PrintfLine("250 ok")
		}
	}
}

// A deletion confirmation for an admin with an address goes out by SMTP:
// STARTTLS first, then authentication, then one well-formed message.
func TestSendToAdminBySMTP(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db, _ := newSystem(t)
	srv, clientTLS := newSMTPServer(t)
	res, err := db.Exec("INSERT INTO admin_users (username, email, password_hash, role) VALUES ('root', 'ops@example.com', 'x', 'super_admin')")
	if err != nil {
		t.Fatal(err)
	}
	adminID, _ := res.LastInsertId()
	m, err := notify.NewSMTP(notify.SMTPConfig{Addr: srv.addr, Username: "relay", Password: "relay-password",
		From: "unitenant <noreply@example.com>", TLS: clientTLS})
	if err != nil {
		t.Fatal(err)
	}
	n := &notify.Notifier{DB: db, Mailer: m}
	body := "Confirm the deletion of k001 with this token:\n\n  tok_3f9a=\n\nIt expires in 7 days."
	if where, err := n.SendToAdmin(ctx, adminID, "Confirm deleting tenant k001 – 确认", body); err != nil || where != "ops@example.com" {
		t.Fatalf("sent to %q (%v)", where, err)
	}
	cmds, creds, msgs := srv.snapshot()
	if got := strings.Join(cmds, " "); got != "EHLO STARTTLS (tls) EHLO AUTH MAIL RCPT DATA QUIT" {
		t.Fatalf("SMTP conversation %q", got)
	}
	if len(creds) != 1 || creds[0] != "\x00relay\x00relay-password" {
		t.Fatalf("auth %q", creds)
	}
	msg, err := mail.ReadMessage(strings.NewReader(msgs[0]))
	if err != nil {
		t.Fatal(err)
	}
	subject, _ := new(mime.WordDecoder).DecodeHeader(msg.Header.Get("Subject"))
	text, _ := io.ReadAll(quotedprintable.NewReader(msg.Body))
	if msg.Header.Get("To") != "<ops@example.com>" || subject != "Confirm deleting tenant k001 – 确认" ||
		strings.TrimSuffix(strings.ReplaceAll(string(text), "\r\n", "\n"), "\n") != body {
		t.Fatalf("message to %q subject %q body %q", msg.Header.Get("To"), subject, text)
	}
	var channel, target, status string
	if err := db.QueryRow("SELECT channel, target, status FROM notification_logs").Scan(&channel, &target, &status); err != nil ||
		channel != "email" || target != "ops@example.com" || status != "sent" {
		t.Fatalf("log row %s %s %s (%v)", channel, target, status, err)
	}

	// Lifecycle events are mailed to NOTIFY_EMAIL_TO through the same relay.
	d := &notify.Dispatcher{DB: db, Email: m, EmailTo: []string{"oncall@example.com"}}
	emit(t, db, threeEvents()[0])
	rep, err := d.Deliver(ctx, 10)
	if _, _, msgs = srv.snapshot(); err != nil || rep != (notify.Report{Events: 1, Dispatched: 1, Sent: 1}) || len(msgs) != 2 ||
		!strings.Contains(msgs[1], "To: <oncall@example.com>") || !strings.Contains(msgs[1], "tenant.suspended") {
		t.Fatalf("event e-mail: report %+v (%v), messages %q", rep, err, msgs)
	}

	// A recipient or subject that would inject headers is refused.
	if err := m.Send(ctx, "a@example.com\r\nBcc: x@example.com", "hi", "x"); err == nil {
		t.Fatal("header injection in the recipient was accepted")
	}
	if err := m.Send(ctx, "a@example.com", "hi\r\nBcc: x@example.com", "x"); err == nil {
		t.Fatal("header injection in the subject was accepted")
	}
}

// Without SMTP, direct messages and copies of every event go to the
// development outbox, and are logged.
func TestOutboxInDevelopment(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db, box := newSystem(t)
	clk := newClock()
	path := filepath.Join(t.TempDir(), "outbox", "notifications.jsonl")
	cfg := notify.LoadConfig(config.FromMap(map[string]string{"NOTIFY_OUTBOX": path}), true)
	n, err := cfg.Notifier(db, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec("INSERT INTO admin_users (id, username, password_hash) VALUES (7, 'alice', 'x')"); err != nil {
		t.Fatal(err)
	}
	if where, err := n.SendToAdmin(ctx, 7, "Confirm deleting tenant k001", "token: tok_123"); err != nil || where != notify.SentToOutbox {
		t.Fatalf("sent to %q (%v)", where, err)
	}
	if _, err := n.SendToAdmin(ctx, 8, "x", "y"); fault.CodeOf(err) != "admin_not_found" {
		t.Fatalf("unknown admin: %v", err)
	}

	d, err := cfg.Dispatcher(db, box, "cron", nil)
	if err != nil {
		t.Fatal(err)
	}
	d.Now = clk.Now
	ids := emit(t, db, threeEvents()[0])
	// No endpoint: the event is dispatched at once, its copy in the outbox.
	if rep, err := d.Deliver(ctx, 100); err != nil || rep != (notify.Report{Events: 1, Dispatched: 1, Sent: 1}) {
		t.Fatalf("report %+v (%v)", rep, err)
	}
	msgs, err := notify.ReadOutbox(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(msgs) != 2 {
		t.Fatalf("outbox %+v, want 2 messages", msgs)
	}
	if m := msgs[0]; m.Channel != "email" || m.To != "admin:alice" || m.Subject != "Confirm deleting tenant k001" || m.Body != "token: tok_123" {
		t.Errorf("direct message %+v", m)
	}
	if m := msgs[1]; m.Channel != "event" || m.EventID != ids[0] || m.Type != notify.TenantSuspended ||
		!strings.Contains(m.Subject, "k001") || !strings.Contains(m.Body, `"reason": "unpaid"`) || !m.Time.Equal(clk.Now()) {
		t.Errorf("event copy %+v", m)
	}
	var logged string
	if err := db.QueryRow("SELECT GROUP_CONCAT(CONCAT(channel, ':', status) ORDER BY id) FROM notification_logs").Scan(&logged); err != nil ||
		logged != "outbox:sent,outbox:sent" {
		t.Fatalf("logged %q (%v)", logged, err)
	}
	var secretLeak int
	if err := db.QueryRow("SELECT COUNT(*) FROM notification_logs WHERE error_message LIKE '%tok_123%' OR target LIKE '%tok_123%'").Scan(&secretLeak); err != nil || secretLeak != 0 {
		t.Fatalf("the token reached the log (%v)", err)
	}
}

// Outside development the outbox is refused and a bad SMTP setting named.
func TestLoadConfig(t *testing.T) {
	t.Parallel()
	e := config.FromMap(nil)
	if c := notify.LoadConfig(e, true); e.Err() != nil || c.Outbox != notify.DefaultOutbox || c.SMTP.Addr != "" || !c.AllowPrivate || c.DisableAfter != notify.DefaultDisableAfter {
		t.Fatalf("development defaults %+v (%v)", c, e.Err())
	}
	for v, want := range map[string]int{"7": 7, "0": -1} {
		e := config.FromMap(map[string]string{"NOTIFY_DISABLE_AFTER": v})
		if c := notify.LoadConfig(e, true); e.Err() != nil || c.DisableAfter != want {
			t.Errorf("NOTIFY_DISABLE_AFTER=%s: %d (%v), want %d", v, c.DisableAfter, e.Err(), want)
		}
	}
	e = config.FromMap(map[string]string{"NOTIFY_DISABLE_AFTER": "-2"})
	if notify.LoadConfig(e, true); e.Err() == nil || !strings.Contains(e.Err().Error(), "NOTIFY_DISABLE_AFTER") {
		t.Errorf("NOTIFY_DISABLE_AFTER=-2: %v, want an error naming it", e.Err())
	}
	e = config.FromMap(nil)
	e = config.FromMap(map[string]string{"NOTIFY_OUTBOX": "/tmp/x", "SMTP_ADDR": "mail.example.com", "SMTP_PASSWORD": "hunter2",
		"NOTIFY_EMAIL_TO": "ops@example.com, not an address"})
	c := notify.LoadConfig(e, false)
	err := e.Err()
	for _, name := range []string{"NOTIFY_OUTBOX", "SMTP_ADDR", "NOTIFY_EMAIL_TO"} {
		if err == nil || !strings.Contains(err.Error(), name) {
			t.Errorf("error does not name %s: %v", name, err)
		}
	}
	if err != nil && strings.Contains(err.Error(), "hunter2") {
		t.Errorf("error leaks the SMTP password: %v", err)
	}
	if c.Outbox != "" || c.AllowPrivate {
		t.Errorf("production config %+v", c)
	}
}

// In production without SMTP a message has nowhere to go: the caller is told.
func TestNoChannel(t *testing.T) {
	t.Parallel()
	db, _ := newSystem(t)
	n, err := notify.LoadConfig(config.FromMap(nil), false).Notifier(db, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := n.Send(context.Background(), "ops@example.com", "s", "b"); !errors.Is(err, notify.ErrNoChannel) {
		t.Fatalf("err = %v, want ErrNoChannel", err)
	}
}
