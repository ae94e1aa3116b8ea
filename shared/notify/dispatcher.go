package notify

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/unitenant/unitenant/shared/config"
	"github.com/unitenant/unitenant/shared/logging"
	"github.com/unitenant/unitenant/shared/secretbox"
	"github.com/unitenant/unitenant/shared/sqldb"
)

// Dispatcher defaults.
const (
	DefaultMaxAttempts = 8
	DefaultTimeout     = 10 * time.Second
	DefaultLeaseTTL    = 2 * time.Minute
	// DefaultDisableAfter failed deliveries in a row disable an endpoint:
	// with the default backoff, a receiver down for about a day.
	DefaultDisableAfter = 50
	// excerptLimit bounds the response body kept in notification_logs.
	excerptLimit = 1000
	// batchSize events are leased at a time, so that two dispatchers share
	// a backlog instead of one holding all of it.
	batchSize = 10
	// parallel targets are delivered to at once at most, each its share of
	// a batch one event after another, so one slow receiver holds up only
	// its own events (and one slot) instead of the others'.
	parallel = 8
)

// DefaultBackoff waits 30 s after the first failed attempt, doubling each
// time, at most an hour: 30s, 1m, 2m, 4m, 8m, 16m, 32m, 1h.
func DefaultBackoff(attempt int) time.Duration {
	if attempt < 1 {
		attempt = 1
	}
	if attempt > 8 {
		return time.Hour
	}
	return min(30*time.Second<<(attempt-1), time.Hour)
}

// Dispatcher delivers the outbox (webhook_events): every due pending event,
// taken under a lease so that two dispatchers never send one event at once,
// goes to each target that does not have it yet — every active subscribed
// webhook endpoint (a tenant's endpoints get only that tenant's events), the
// EmailTo recipients when Email is set, the development Outbox file when set.
// Every attempt is one notification_logs row, and a target counts as served
// once it has a 'sent' row for the event: a retry goes only to the targets
// that failed. An event is dispatched when every target has it, and failed
// (dead) when MaxAttempts rounds were not enough.
//
// Delivery is at least once: a receiver may see an event again if the
// dispatcher dies between its 2xx and the log row, so receivers dedupe on
// the event id of the verified body (the Unitenant-Event-Id header repeats it
// but is not signed).
type Dispatcher struct {
	DB     *sql.DB
	Box    *secretbox.Box // opens endpoint secrets
	Client *http.Client   // nil: NewHTTPClient(false)
	// Now is the clock of leases and retry times; nil is time.Now.
	Now func() time.Time
	// Owner names this dispatcher in leases (say the function and instance).
	Owner       string
	MaxAttempts int                             // 0: DefaultMaxAttempts
	Backoff     func(attempt int) time.Duration // wait after the attempt-th failed round; nil: DefaultBackoff
	Timeout     time.Duration                   // per delivery; 0: DefaultTimeout
	LeaseTTL    time.Duration                   // how long a claim lasts before another dispatcher may take it over; 0: DefaultLeaseTTL
	// DisableAfter failed deliveries in a row, with no success between
	// them, disable a webhook endpoint (an admin enables it again); its
	// disabling is itself an event. 0: DefaultDisableAfter; negative: never.
	DisableAfter int
	Email        Mailer       // nil: no e-mail copies
	EmailTo      []string     // who gets an e-mail copy of every event
	Outbox       string       // development outbox file; "": none
	Log          *slog.Logger // nil: discard
}

// Report is what one Deliver call did.
type Report struct {
	Events     int `json:"events"`     // events processed
	Dispatched int `json:"dispatched"` // events every target now has
	Retrying   int `json:"retrying"`   // events that will be retried after their backoff
	Failed     int `json:"failed"`     // events given up after MaxAttempts
	Sent       int `json:"sent"`       // successful deliveries
	Errors     int `json:"errors"`     // failed deliveries
	Lost       int `json:"lost"`       // events another dispatcher took over meanwhile
}

// Deliver processes up to limit due events and reports what it did. It stops
// early, releasing what it leased, when ctx ends. The error joins what went
// wrong with the database; failed deliveries are in the report and the logs,
// not in the error.
func (d *Dispatcher) Deliver(ctx context.Context, limit int) (Report, error) {
	var rep Report
	var errs []error
	// taken bounds the run even when events keep failing before they settle
	// (they are released and could be leased again at once).
	for taken := 0; taken < limit && ctx.Err() == nil; {
		token := d.leaseToken()
		batch, err := d.claim(ctx, token, min(batchSize, limit-taken))
		if err != nil {
			errs = append(errs, err)
			break
		}
		if len(batch) == 0 {
			break
		}
		taken += len(batch)
		errs = append(errs, d.process(ctx, token, batch, &rep)...)
		if err := d.release(ctx, token); err != nil {
			errs = append(errs, err)
		}
	}
	return rep, errors.Join(errs...)
}

// leased is an event taken under a lease.
type leased struct {
	id        int64
	eventID   string
	eventType string
	tenantID  int64
	tenant    string
	payload   []byte
	attempts  int
}

func (d *Dispatcher) leaseToken() string {
	owner := d.Owner
	if owner == "" {
		owner = "dispatcher"
	}
	if len(owner) > 60 {
		owner = owner[:60]
	}
	return owner + "/" + newID()
}

// claim leases up to n due events to token. The UPDATE locks and re-reads
// each row, so two dispatchers never lease one event at once.
func (d *Dispatcher) claim(ctx context.Context, token string, n int) ([]leased, error) {
	now := d.now()
	if _, err := d.exec(ctx, `UPDATE webhook_events SET lease_owner = ?, lease_expires_at = ?
		WHERE status = 'pending' AND (next_attempt_at IS NULL OR next_attempt_at <= ?)
		  AND (lease_expires_at IS NULL OR lease_expires_at <= ?)
		ORDER BY id LIMIT ?`, token, now.Add(d.leaseTTL()), now, now, n); err != nil {
		return nil, fmt.Errorf("lease webhook events: %w", err)
	}
	rows, err := d.DB.QueryContext(ctx, `SELECT id, event_id, event_type, COALESCE(tenant_id, 0), COALESCE(tenant_code, ''), payload, attempts
		FROM webhook_events WHERE lease_owner = ? AND status = 'pending' ORDER BY id`, token)
	if err != nil {
		return nil, fmt.Errorf("read leased webhook events: %w", err)
	}
	defer rows.Close()
	var out []leased
	for rows.Next() {
		var ev leased
		if err := rows.Scan(&ev.id, &ev.eventID, &ev.eventType, &ev.tenantID, &ev.tenant, &ev.payload, &ev.attempts); err != nil {
			return nil, fmt.Errorf("read leased webhook events: %w", err)
		}
		out = append(out, ev)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read leased webhook events: %w", err)
	}
	return out, nil
}

// exec runs one autocommit statement, again when InnoDB chose it as a
// deadlock victim or its lock wait timed out: the statement was rolled back,
// so running it again cannot apply it twice. Leasing (an UPDATE … ORDER BY
// … LIMIT that locks what it scans) and settling events deadlock this way
// between concurrent dispatchers.
func (d *Dispatcher) exec(ctx context.Context, query string, args ...any) (res sql.Result, err error) {
	err = sqldb.Retry(ctx, func() error {
		res, err = d.DB.ExecContext(ctx, query, args...)
		return err
	})
	return res, err
}

// release gives back what token still holds (the events ctx's end left
// unprocessed), so the next run need not wait for the lease to expire.
func (d *Dispatcher) release(ctx context.Context, token string) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if _, err := d.exec(ctx, `UPDATE webhook_events SET lease_owner = NULL, lease_expires_at = NULL
		WHERE lease_owner = ?`, token); err != nil {
		return fmt.Errorf("release webhook events: %w", err)
	}
	return nil
}

// target is one place an event goes to.
type target struct {
	channel  string // webhook | email | outbox
	endpoint endpointRow
	to       string // e-mail address, or the outbox file
}

func (t target) key() string {
	if t.channel == "webhook" {
		return "webhook:" + strconv.FormatInt(t.endpoint.id, 10)
	}
	return t.channel + ":" + t.to
}

// endpointRow is what delivering to an endpoint needs.
type endpointRow struct {
	id     int64
	url    string
	sealed []byte
}

// attempt is the outcome of one delivery.
type attempt struct {
	target     target
	number     int
	ok         bool
	cut        bool // failed because ctx ended (or never made for it): says nothing of the receiver
	httpStatus int
	err        string
	excerpt    string
	duration   time.Duration
}

// job is one leased event of a batch: the targets that lack it, and what
// became of each delivery to them.
type job struct {
	ev      leased
	pending []target
	tries   map[string]int // earlier attempts, by target key
	results []attempt      // one per pending target
	now     time.Time      // when its lease was renewed: its retry and dispatch times count from it
}

// process delivers the events of batch, leased to token, to every target
// that lacks them and settles their status. The batch's deliveries are made
// all together, grouped by target (deliverAll), rather than event after
// event: one slow receiver would otherwise hold up every later event.
func (d *Dispatcher) process(ctx context.Context, token string, batch []leased, rep *Report) []error {
	var errs []error
	var jobs []*job
	for _, ev := range batch {
		if ctx.Err() != nil {
			break
		}
		j, err := d.prepare(ctx, ev)
		if err != nil {
			errs = append(errs, fmt.Errorf("event %s: %w", ev.eventID, err))
			continue
		}
		jobs = append(jobs, j)
	}
	// Extend the leases to cover the batch's deliveries; losing one means
	// another dispatcher took the event over, which must then send it alone.
	ttl := d.leaseTTL() + time.Duration(rounds(jobs))*d.timeout()
	var held []*job
	for _, j := range jobs {
		if ctx.Err() != nil {
			break
		}
		ok, err := d.renew(ctx, token, j, ttl)
		switch {
		case err != nil:
			errs = append(errs, fmt.Errorf("event %s: %w", j.ev.eventID, err))
		case !ok:
			rep.Lost++
		default:
			rep.Events++
			held = append(held, j)
		}
	}
	d.deliverAll(ctx, held)
	for _, j := range held {
		if err := d.settle(ctx, token, j, rep); err != nil {
			errs = append(errs, fmt.Errorf("event %s: %w", j.ev.eventID, err))
		}
	}
	return errs
}

// prepare lists the targets that lack ev and the attempts each has had.
func (d *Dispatcher) prepare(ctx context.Context, ev leased) (*job, error) {
	targets, err := d.targets(ctx, ev)
	if err != nil {
		return nil, err
	}
	served, tries, err := d.history(ctx, ev.eventID)
	if err != nil {
		return nil, err
	}
	j := &job{ev: ev, tries: tries}
	for _, t := range targets {
		if !served[t.key()] {
			j.pending = append(j.pending, t)
		}
	}
	return j, nil
}

// rounds bounds how many delivery timeouts the deliveries of jobs take one
// after another: a target's own deliveries, plus, when more targets than
// parallel wait, the others' share before a slot frees for it.
func rounds(jobs []*job) int {
	queued := map[string]int{}
	total, longest := 0, 0
	for _, j := range jobs {
		for _, t := range j.pending {
			queued[t.key()]++
			longest = max(longest, queued[t.key()])
			total++
		}
	}
	if len(queued) <= parallel {
		return longest
	}
	return longest + (total-longest+parallel-1)/parallel
}

// renew extends token's lease of j's event to ttl from now, and says whether
// token still holds it.
func (d *Dispatcher) renew(ctx context.Context, token string, j *job, ttl time.Duration) (bool, error) {
	j.now = d.now()
	res, err := d.exec(ctx, `UPDATE webhook_events SET lease_expires_at = ?
		WHERE id = ? AND lease_owner = ? AND status = 'pending'`,
		j.now.Add(ttl), j.ev.id, token)
	if err != nil {
		return false, fmt.Errorf("renew lease: %w", err)
	}
	if n, _ := res.RowsAffected(); n > 0 {
		return true, nil
	}
	// MySQL counts the rows an UPDATE changed: a lease renewed to the
	// expiry it had (nothing to send, in the claim's millisecond) is still
	// held. Only another owner, or a settled event, is lost.
	var held bool
	if err := d.DB.QueryRowContext(ctx, `SELECT COUNT(*) > 0 FROM webhook_events
		WHERE id = ? AND lease_owner = ? AND status = 'pending'`, j.ev.id, token).Scan(&held); err != nil {
		return false, fmt.Errorf("renew lease: %w", err)
	}
	return held, nil
}

// deliverAll makes the pending deliveries of jobs. Each target gets its
// deliveries one after another, in event order, on a goroutine of its own,
// at most parallel targets at once: a receiver that hangs delays only its
// own events, and takes one slot only until they time out. Once ctx ends,
// what is left is not attempted, and marked cut.
func (d *Dispatcher) deliverAll(ctx context.Context, jobs []*job) {
	type delivery struct {
		job *job
		i   int // in job.pending and job.results
	}
	var keys []string
	queues := map[string][]delivery{}
	for _, j := range jobs {
		j.results = make([]attempt, len(j.pending))
		for i, t := range j.pending {
			if queues[t.key()] == nil {
				keys = append(keys, t.key())
			}
			queues[t.key()] = append(queues[t.key()], delivery{j, i})
		}
	}
	var wg sync.WaitGroup
	sem := make(chan struct{}, parallel)
	for _, k := range keys {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			for _, q := range queues[k] {
				t := q.job.pending[q.i]
				a := attempt{target: t, number: q.job.tries[k] + 1, cut: true}
				if ctx.Err() == nil {
					a = d.send(ctx, q.job.ev, t, a.number)
					a.cut = !a.ok && ctx.Err() != nil
				}
				q.job.results[q.i] = a
			}
		}()
	}
	wg.Wait()
}

// settle records what became of j's deliveries and settles its event.
func (d *Dispatcher) settle(ctx context.Context, token string, j *job, rep *Report) error {
	ev, pending, results, now := j.ev, j.pending, j.results, j.now
	round := ev.attempts + 1
	// A delivery cut short by ctx's end (the run's deadline, a shutdown)
	// says nothing of its receiver: it is not its failure, and it is not a
	// round of the event's, which stays pending (Deliver releases it) for
	// the next run to try again.
	cut := slices.ContainsFunc(results, func(a attempt) bool { return a.cut })
	final := len(pending) > 0 && round >= d.maxAttempts() && !cut
	var retryAt time.Time
	if !final {
		retryAt = now.Add(d.backoff(round))
	}

	// What was sent is recorded even when ctx ended meanwhile: an unrecorded
	// 2xx would be sent again.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	var errs []error
	missing := 0
	for _, a := range results {
		if cut && !a.ok {
			continue
		}
		if a.ok {
			rep.Sent++
		} else {
			rep.Errors++
			missing++
			d.logger().WarnContext(ctx, "notification attempt failed", "event_id", ev.eventID, "type", ev.eventType,
				"channel", a.target.channel, "endpoint_id", a.target.endpoint.id, "attempt", a.number,
				"http_status", a.httpStatus, "err", a.err, "final", final)
		}
		if err := d.record(ctx, ev, a, final, retryAt); err != nil {
			errs = append(errs, err)
		}
	}

	if cut {
		return errors.Join(errs...)
	}
	status, attempts := "pending", ev.attempts
	if len(pending) > 0 {
		attempts = round
	}
	switch {
	case missing == 0:
		status = "dispatched"
		rep.Dispatched++
	case final:
		status = "failed"
		rep.Failed++
		d.logger().ErrorContext(ctx, "webhook event dead after its last attempt", "event_id", ev.eventID,
			"type", ev.eventType, "attempts", attempts, "undelivered", missing)
	default:
		rep.Retrying++
	}
	var next, dispatchedAt any
	if status == "pending" {
		next = retryAt
	}
	if status == "dispatched" {
		dispatchedAt = now
	}
	if _, err := d.exec(ctx, `UPDATE webhook_events SET status = ?, attempts = ?, next_attempt_at = ?,
		dispatched_at = ?, lease_owner = NULL, lease_expires_at = NULL WHERE id = ? AND lease_owner = ?`,
		status, attempts, next, dispatchedAt, ev.id, token); err != nil {
		errs = append(errs, fmt.Errorf("settle: %w", err))
	}
	return errors.Join(errs...)
}

// targets lists where ev goes: the active endpoints subscribed to it, then
// the e-mail recipients and the outbox.
func (d *Dispatcher) targets(ctx context.Context, ev leased) ([]target, error) {
	rows, err := d.DB.QueryContext(ctx, `SELECT id, url, events, secret_encrypted FROM webhook_endpoints
		WHERE status = 'active' AND (tenant_id IS NULL OR tenant_id = ?) ORDER BY id`, ev.tenantID)
	if err != nil {
		return nil, fmt.Errorf("list endpoints: %w", err)
	}
	defer rows.Close()
	var out []target
	for rows.Next() {
		var ep endpointRow
		var events sql.NullString
		if err := rows.Scan(&ep.id, &ep.url, &events, &ep.sealed); err != nil {
			return nil, fmt.Errorf("list endpoints: %w", err)
		}
		if events.Valid && events.String != "null" {
			var types []string
			if err := json.Unmarshal([]byte(events.String), &types); err != nil {
				return nil, fmt.Errorf("endpoint %d events: %w", ep.id, err)
			}
			if len(types) > 0 && !slices.Contains(types, ev.eventType) {
				continue
			}
		}
		out = append(out, target{channel: "webhook", endpoint: ep, to: RedactURL(ep.url)})
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list endpoints: %w", err)
	}
	if d.Email != nil {
		for _, to := range d.EmailTo {
			out = append(out, target{channel: "email", to: to})
		}
	}
	if d.Outbox != "" {
		out = append(out, target{channel: "outbox", to: d.Outbox})
	}
	return out, nil
}

// history returns, from notification_logs, which targets already have
// eventID and how many attempts each has had.
func (d *Dispatcher) history(ctx context.Context, eventID string) (served map[string]bool, tries map[string]int, err error) {
	rows, err := d.DB.QueryContext(ctx, `SELECT channel, COALESCE(endpoint_id, 0), target, status
		FROM notification_logs WHERE event_id = ?`, eventID)
	if err != nil {
		return nil, nil, fmt.Errorf("read delivery log: %w", err)
	}
	defer rows.Close()
	served, tries = map[string]bool{}, map[string]int{}
	for rows.Next() {
		var t target
		var status string
		if err := rows.Scan(&t.channel, &t.endpoint.id, &t.to, &status); err != nil {
			return nil, nil, fmt.Errorf("read delivery log: %w", err)
		}
		tries[t.key()]++
		if status == "sent" {
			served[t.key()] = true
		}
	}
	if err := rows.Err(); err != nil {
		return nil, nil, fmt.Errorf("read delivery log: %w", err)
	}
	return served, tries, nil
}

// send makes one delivery attempt to t.
func (d *Dispatcher) send(ctx context.Context, ev leased, t target, number int) attempt {
	a := attempt{target: t, number: number}
	start := time.Now()
	var err error
	switch t.channel {
	case "webhook":
		a.httpStatus, a.excerpt, err = d.post(ctx, ev, t.endpoint)
	case "email":
		err = d.Email.Send(ctx, t.to, eventSubject(ev), eventBody(ev))
	case "outbox":
		err = (&Outbox{Path: t.to, Now: d.Now}).Write(OutboxMessage{Channel: "event", To: strings.Join(d.EmailTo, ", "),
			Subject: eventSubject(ev), Body: eventBody(ev), EventID: ev.eventID, Type: ev.eventType})
	}
	a.duration = time.Since(start)
	if err != nil {
		a.err = err.Error()
	} else {
		a.ok = true
	}
	return a
}

// post sends ev to ep, signed, and returns the response status and the start
// of the response body. Errors never carry the URL (it may hold a token) nor
// the secret.
func (d *Dispatcher) post(ctx context.Context, ev leased, ep endpointRow) (int, string, error) {
	if d.Box == nil {
		return 0, "", errors.New("dispatcher has no secret box to open endpoint secrets")
	}
	secret, err := d.Box.Open(ep.sealed, secretAAD(ep.id))
	if err != nil {
		return 0, "", fmt.Errorf("endpoint secret: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, d.timeout())
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, ep.url, strings.NewReader(string(ev.payload)))
	if err != nil {
		return 0, "", errors.New("invalid endpoint URL")
	}
	ts := strconv.FormatInt(d.now().Unix(), 10)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "unitenant-webhooks/"+config.Version)
	req.Header.Set(HeaderEvent, ev.eventType)
	req.Header.Set(HeaderEventID, ev.eventID)
	req.Header.Set(HeaderTimestamp, ts)
	req.Header.Set(HeaderSignature, Sign(secret, ts, ev.payload))
	resp, err := d.client().Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		if ctx.Err() == context.DeadlineExceeded {
			return 0, "", fmt.Errorf("no response within %s", d.timeout())
		}
		return 0, "", err
	}
	defer resp.Body.Close()
	head, _ := io.ReadAll(io.LimitReader(resp.Body, excerptLimit))
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10)) // lets the connection be reused
	excerpt := strings.ToValidUTF8(string(head), "\uFFFD")
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return resp.StatusCode, excerpt, fmt.Errorf("HTTP %d", resp.StatusCode)
	}
	return resp.StatusCode, excerpt, nil
}

// record writes a's notification_logs row and, for a webhook, the
// endpoint's health counters.
func (d *Dispatcher) record(ctx context.Context, ev leased, a attempt, final bool, retryAt time.Time) error {
	status := "sent"
	var next any
	switch {
	case a.ok:
	case final:
		status = "dead"
	default:
		status, next = "failed", retryAt
	}
	var endpointID, httpStatus, errMsg, excerpt any
	if a.target.channel == "webhook" {
		endpointID = a.target.endpoint.id
	}
	if a.httpStatus != 0 {
		httpStatus = a.httpStatus
	}
	if a.err != "" {
		errMsg = truncate(a.err, 2000)
	}
	if a.excerpt != "" {
		excerpt = a.excerpt
	}
	if _, err := d.exec(ctx, `INSERT INTO notification_logs (event_id, event_type, tenant_id, endpoint_id, channel,
		target, attempt, status, http_status, error_message, response_excerpt, duration_ms, next_attempt_at)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		ev.eventID, ev.eventType, nullID(ev.tenantID), endpointID, a.target.channel, truncate(a.target.to, 1000),
		a.number, status, httpStatus, errMsg, excerpt, a.duration.Milliseconds(), next); err != nil {
		return fmt.Errorf("log attempt: %w", err)
	}
	if a.target.channel != "webhook" {
		return nil
	}
	id := a.target.endpoint.id
	if a.ok {
		if _, err := d.exec(ctx, "UPDATE webhook_endpoints SET consecutive_failures = 0, last_success_at = ? WHERE id = ?", d.now(), id); err != nil {
			return fmt.Errorf("endpoint %d health: %w", id, err)
		}
		return nil
	}
	if _, err := d.exec(ctx, "UPDATE webhook_endpoints SET consecutive_failures = consecutive_failures + 1, last_failure_at = ? WHERE id = ?", d.now(), id); err != nil {
		return fmt.Errorf("endpoint %d health: %w", id, err)
	}
	return d.disableFailing(ctx, a)
}

// disableFailing disables a's endpoint once it has failed DisableAfter
// deliveries in a row, and emits WebhookDisabled with it, in one
// transaction: the event exists if and only if this dispatcher disabled it.
func (d *Dispatcher) disableFailing(ctx context.Context, a attempt) error {
	after := d.DisableAfter
	if after == 0 {
		after = DefaultDisableAfter
	}
	if after < 0 {
		return nil
	}
	ep := a.target.endpoint
	disabled := false
	err := sqldb.InTxRetry(ctx, d.DB, func(tx *sql.Tx) error {
		var (
			tenantID sql.NullInt64
			code     sql.NullString
			failures int
		)
		err := tx.QueryRowContext(ctx, `SELECT e.tenant_id, t.tenant_code, e.consecutive_failures FROM webhook_endpoints e
			LEFT JOIN tenants t ON t.id = e.tenant_id WHERE e.id = ? AND e.status = 'active' FOR UPDATE`, ep.id).Scan(&tenantID, &code, &failures)
		if errors.Is(err, sql.ErrNoRows) || err == nil && failures < after {
			return nil
		}
		if err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, "UPDATE webhook_endpoints SET status = ? WHERE id = ?", EndpointDisabled, ep.id); err != nil {
			return err
		}
		disabled = true
		_, err = Emit(ctx, tx, Event{Type: WebhookDisabled, TenantID: tenantID.Int64, TenantCode: code.String, Data: map[string]any{
			"endpointId": ep.id, "url": RedactURL(ep.url), "consecutiveFailures": failures, "lastError": truncate(a.err, 500)}})
		return err
	})
	if err != nil {
		return fmt.Errorf("endpoint %d: disable after failures: %w", ep.id, err)
	}
	if disabled {
		d.logger().WarnContext(ctx, "webhook endpoint disabled after failing in a row", "endpoint", ep.id, "url", RedactURL(ep.url), "failures", after)
	}
	return nil
}

func eventSubject(ev leased) string {
	if ev.tenant != "" {
		return fmt.Sprintf("[unitenant] %s: %s", ev.eventType, ev.tenant)
	}
	return "[unitenant] " + ev.eventType
}

func eventBody(ev leased) string {
	var v any
	if err := json.Unmarshal(ev.payload, &v); err == nil {
		if b, err := json.MarshalIndent(v, "", "  "); err == nil {
			return string(b) + "\n"
		}
	}
	return string(ev.payload)
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return strings.ToValidUTF8(s[:n], "")
}

func (d *Dispatcher) now() time.Time {
	now := time.Now
	if d.Now != nil {
		now = d.Now
	}
	return now().UTC().Truncate(time.Millisecond)
}

func (d *Dispatcher) maxAttempts() int {
	if d.MaxAttempts > 0 {
		return d.MaxAttempts
	}
	return DefaultMaxAttempts
}

func (d *Dispatcher) backoff(attempt int) time.Duration {
	if d.Backoff != nil {
		return d.Backoff(attempt)
	}
	return DefaultBackoff(attempt)
}

func (d *Dispatcher) timeout() time.Duration {
	if d.Timeout > 0 {
		return d.Timeout
	}
	return DefaultTimeout
}

func (d *Dispatcher) leaseTTL() time.Duration {
	if d.LeaseTTL > 0 {
		return d.LeaseTTL
	}
	return DefaultLeaseTTL
}

func (d *Dispatcher) logger() *slog.Logger {
	if d.Log != nil {
		return d.Log
	}
	return logging.Discard()
}

func (d *Dispatcher) client() *http.Client {
	if d.Client != nil {
		return d.Client
	}
	return defaultClient
}

var defaultClient = NewHTTPClient(false)
