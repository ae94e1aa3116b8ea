package sms

import (
	"context"
	"time"

	"github.com/unitenant/unitenant/shared/devoutbox"
)

// DefaultOutbox is where the development sender writes, relative to the
// working directory (the repository root under `make dev`).
const DefaultOutbox = ".dev/outbox/sms.jsonl"

// Outbox is the development sender: it appends every message as one JSON
// line {"time","phone","purpose","code"} to a file that developers and the
// end-to-end tests read codes from. Several processes may append at once:
// each line is a single write to a file opened with O_APPEND, which the
// kernel keeps whole.
type Outbox struct {
	path string
	now  func() time.Time
}

// OutboxMessage is one line of the outbox.
type OutboxMessage struct {
	Time    time.Time `json:"time"`
	Phone   string    `json:"phone"`
	Purpose Purpose   `json:"purpose"`
	Code    string    `json:"code"`
}

// NewOutbox returns a sender appending to path; now may be nil (time.Now).
func NewOutbox(path string, now func() time.Time) *Outbox {
	if now == nil {
		now = time.Now
	}
	return &Outbox{path: path, now: now}
}

// Path returns the file the outbox appends to.
func (o *Outbox) Path() string { return o.path }

// Send appends the message to the outbox file, creating it and its
// directories on first use.
func (o *Outbox) Send(_ context.Context, phone string, purpose Purpose, code string) error {
	return devoutbox.Append(o.path, OutboxMessage{Time: o.now().UTC(), Phone: phone, Purpose: purpose, Code: code})
}
