package aibridge

import (
	"bytes"
	"cmp"
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/unitenant/unitenant/shared/aiprovider"
	"github.com/unitenant/unitenant/shared/budget"
	"github.com/unitenant/unitenant/shared/fault"
	"github.com/unitenant/unitenant/shared/ratelimit"
	"github.com/unitenant/unitenant/shared/sqldb"
)

// Caller is who makes a call: a tenant's member (by token) or one of its API
// keys, already authenticated and gated by the caller of the Bridge.
type Caller struct {
	TenantID   int64
	TenantCode string
	UserID     int64   // global user id, 0 for an API key
	Key        *APIKey // nil for a token
	RequestID  string  // the HTTP request's id, kept in the log row's metadata
	IP         string
	UserAgent  string
}

// Usage sources (ai_service_call_logs.usage_source).
const (
	UsageProvider  = "provider"  // the provider reported the tokens
	UsageEstimated = "estimated" // it did not (a stream cut short): estimated here
)

// Metering is what a finished call cost, as logged and settled.
type Metering struct {
	CallID       string // ai_service_call_logs.request_id
	Model        Model  // the model that answered (or was tried last)
	Attempts     int
	InputTokens  int
	OutputTokens int
	TotalTokens  int
	UsageSource  string
	Cost         budget.Amount // charged to the tenant
	ResponseTime time.Duration // the answering attempt's
	ClientGone   bool          // the client left before the stream ended
	Timing       Timing        // where a whole (not streamed) answer's time went
}

// Timing is where a call's time went, for a Server-Timing header: Begin
// counting the limits, holding the budget and inserting the row; Provider
// from there to the end of the last attempt (fallbacks included); Record
// making its row durable (the settlement follows, off the answer's path).
type Timing struct {
	Begin, Provider, Record time.Duration
}

// ServerTiming is t as a Server-Timing header's value, in milliseconds.
func (t Timing) ServerTiming() string {
	return "begin;dur=" + Millis(t.Begin) + ", provider;dur=" + Millis(t.Provider) + ", record;dur=" + Millis(t.Record)
}

// Millis is d in milliseconds, to the hundredth, as Server-Timing writes it.
func Millis(d time.Duration) string {
	return strconv.FormatFloat(float64(d.Microseconds())/1000, 'f', 2, 64)
}

// Models returns the models the caller may use, in priority order.
func (b *Bridge) Models(ctx context.Context, c Caller) ([]Model, error) {
	all, err := b.tenantModels(ctx, c.TenantID)
	if err != nil {
		return nil, err
	}
	out := all[:0]
	for _, m := range all {
		if c.Key.Allows(m.Name) {
			out = append(out, m)
		}
	}
	return out, nil
}

// call is one metered request across its attempts.
type call struct {
	b          *Bridge
	c          Caller
	endpoint   string
	chain      []Model
	id         string
	prompt     int // estimated prompt tokens
	maxTokens  int // the completion cap in force
	outputs    int // completions the provider may write, each up to maxTokens
	reserved   budget.Amount
	logged     budget.Amount // the cost the attempts' rows carry
	started    time.Time
	begunAt    time.Time     // when the begin's batch returned, its COMMIT on the way
	committed  func() error  // the outcome of the begin's commit
	windows    []tokenWindow // the token windows counted in, to correct after the call
	tokenCount int           // the tokens counted in each: the prompt's estimate and the cap
	used       []int         // the tokens each attempt used (attempt n at n-1), once known
}

// attempt is one model tried.
type attempt struct {
	n          int
	model      Model
	started    time.Time
	usage      *aiprovider.Usage
	outText    int  // estimated output tokens of what was streamed
	partial    bool // usage is what the provider reported before the stream broke off
	firstByte  time.Duration
	streamed   bool // a byte reached the client: no fallback any more
	clientGone bool
	answered   bool // an answer came without usage: estimate it
}

// MaxCallTokens bounds the tokens one call may count: its prompt's
// estimate and every completion it asks for (n, best_of, prompts) at its
// cap. No model comes near it; it keeps the worst case and the token
// counts from overflowing.
const MaxCallTokens = math.MaxInt32

// newCallID is a fresh id for a call's rows; never the client's, so no
// client can collide with another call's reservation.
func newCallID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return "ai-" + hex.EncodeToString(b[:])
}

// begin picks the chain, counts the rate limits and reserves the worst case.
// maxTokens is the request's completion cap (0: none given); the cap in
// force is call.maxTokens, which the request must carry. outputs is how
// many completions the provider may write (n, best_of), each up to the cap.
func (b *Bridge) begin(ctx context.Context, c Caller, endpoint, requested string, prompt, maxTokens, outputs int) (*call, error) {
	if maxTokens < 0 {
		return nil, fault.Field("invalid_max_tokens", "max_tokens", "must not be negative")
	}
	enabled, err := b.tenantModels(ctx, c.TenantID)
	if err != nil {
		return nil, err
	}
	chain, err := Chain(enabled, c.Key, endpoint, requested, orDefault(b.MaxAttempts, DefaultMaxAttempts))
	if err != nil {
		return nil, err
	}
	cl := &call{b: b, c: c, endpoint: endpoint, chain: chain, id: newCallID(), prompt: prompt, outputs: max(outputs, 1), started: time.Now()}
	if endpoint != EndpointEmbedding {
		cl.maxTokens = maxTokens
		if cl.maxTokens == 0 {
			cl.maxTokens = orDefault(chain[0].DefaultMaxTokens, orDefault(b.DefaultMaxTokens, DefaultMaxTokens))
		}
	}
	// Checked before multiplying: a product past the int range wraps, to a
	// worst case of nothing held and nothing counted for a call that may
	// write any number of tokens.
	if cl.maxTokens > (MaxCallTokens-prompt)/cl.outputs {
		return nil, fault.Field("invalid_max_tokens", "max_tokens", fmt.Sprintf("%d completions of up to %d tokens each, after a prompt of about %d, exceed the %d tokens one call may use",
			cl.outputs, cl.maxTokens, prompt, MaxCallTokens))
	}
	var worst budget.Amount
	for _, m := range chain {
		worst = max(worst, budget.Estimate(prompt, cl.maxTokens*cl.outputs, m.InPrice, m.OutPrice))
	}
	// One transaction, one commit, two round trips: the rate limits, the
	// hold and the first attempt's row go in one batch, then COMMIT, or
	// ROLLBACK when any refuses — a refused call neither counts nor holds
	// anything. The provider is called while the COMMIT is on its way: the
	// transaction's locks already keep every other call of the tenant from
	// taking what it holds, and nothing reaches the client, nor is written
	// for the call, before the commit is durable (begun).
	first := &attempt{n: 1, model: chain[0]}
	ttl := orDefault(b.ReservationTTL, DefaultReservationTTL)
	var (
		limits []limit
		hold   budget.Staged
	)
	cl.committed, err = sqldb.TxBatch(ctx, b.DB, func(batch *sqldb.Tx) (err error) {
		if limits, err = cl.limit(batch); err != nil {
			return err
		}
		if hold, err = budget.StageReserve(&batch.Batch, c.TenantID, cl.id, worst, ttl); err != nil {
			return err
		}
		q, args := cl.insertLog(first)
		batch.Add(q, args...)
		return nil
	}, func(q *sql.Conn, res sqldb.Results) error {
		cl.windows = cl.windows[:0]
		for _, l := range limits {
			d, err := l.s.Decide(res)
			if err != nil {
				return err
			}
			if l.tokens {
				cl.windows = append(cl.windows, tokenWindow{l.key, d.WindowStart, l.attempt})
			}
		}
		r, err := hold.Decide(ctx, q, res)
		cl.reserved = r.Amount
		return err
	})
	if err != nil {
		cl.windows = nil
		if _, ok := fault.As(err); ok {
			return nil, err
		}
		return nil, fmt.Errorf("begin AI call for tenant %d: %w", c.TenantID, err)
	}
	cl.begunAt = time.Now()
	return cl, nil
}

// begun waits for the begin's commit.
func (cl *call) begun() error {
	if err := cl.committed(); err != nil {
		cl.windows = nil
		return fmt.Errorf("begin AI call for tenant %d: %w", cl.c.TenantID, err)
	}
	return nil
}

// limit is one staged count of a call.
type limit struct {
	s       ratelimit.Staged
	key     string
	tokens  bool // counts tokens, corrected after the call
	attempt int  // the attempt whose model's limit it is (0: the call's)
}

// tokenWindow is a token count's window, to correct after the call: by
// the tokens of the whole call, or of the attempt whose model it limits.
type tokenWindow struct {
	key     string
	start   time.Time
	attempt int
}

// limitCount is one limit a call or attempt is counted against.
type limitCount struct {
	key     string
	n       int
	limit   int64
	window  time.Duration
	what    string // a token limit, as the refusal names it
	attempt int
}

// limit stages counting the call against the tenant's and the key's
// limits and the first model's (modelCounts): requests per minute, then
// tokens per minute (the prompt's estimate and the completion cap,
// corrected to the tokens used after the call). Each is one atomic
// statement shared by every instance, the rows always taken in this order.
// A call that alone exceeds a token limit is refused as invalid.
func (cl *call) limit(batch *sqldb.Tx) ([]limit, error) {
	b := cl.b
	tenant := "ai:t:" + strconv.FormatInt(cl.c.TenantID, 10)
	key := ""
	counts := []limitCount{{key: tenant, n: 1, limit: int64(orDefault(b.TenantRPM, DefaultTenantRPM)), window: time.Minute}}
	if k := cl.c.Key; k != nil {
		key = "ai:k:" + strconv.FormatInt(k.ID, 10)
		counts = append(counts, limitCount{key: key, n: 1, limit: int64(orDefault(k.RPMLimit, orDefault(b.KeyRPM, DefaultTenantRPM))), window: time.Minute})
	}
	n := cl.prompt + cl.maxTokens*cl.outputs
	cl.tokenCount = n
	if b.TenantTPM > 0 {
		counts = append(counts, limitCount{key: tenant + ":tok", n: n, limit: int64(b.TenantTPM), window: time.Minute, what: "the tenant's limit of %d tokens a minute"})
	}
	if k := cl.c.Key; k != nil && orDefault(k.TPMLimit, b.KeyTPM) > 0 {
		counts = append(counts, limitCount{key: key + ":tok", n: n, limit: int64(orDefault(k.TPMLimit, b.KeyTPM)), window: time.Minute, what: "the API key's limit of %d tokens a minute"})
	}
	return cl.stage(batch, append(counts, cl.modelCounts(cl.chain[0], 1)...))
}

// modelCounts are the limits the tenant set on model m, which attempt n
// counts against: requests and tokens per minute and tokens a day. Every
// attempt counts against its own model's: a fallback is refused by its
// model's limits as a first choice would be.
func (cl *call) modelCounts(m Model, n int) []limitCount {
	model := "ai:t:" + strconv.FormatInt(cl.c.TenantID, 10) + ":m:" + strconv.FormatInt(m.ID, 10)
	var counts []limitCount
	if m.RPM > 0 {
		counts = append(counts, limitCount{key: model, n: 1, limit: int64(m.RPM), window: time.Minute, attempt: n})
	}
	if m.TPM > 0 {
		counts = append(counts, limitCount{key: model + ":tok", n: cl.tokenCount, limit: int64(m.TPM), window: time.Minute, what: "the model's limit of %d tokens a minute", attempt: n})
	}
	if m.DailyTokens > 0 {
		counts = append(counts, limitCount{key: model + ":tok:day", n: cl.tokenCount, limit: m.DailyTokens, window: 24 * time.Hour, what: "the model's limit of %d tokens a day", attempt: n})
	}
	return counts
}

// stage adds counts to the batch, in order.
func (cl *call) stage(batch *sqldb.Tx, counts []limitCount) ([]limit, error) {
	now := cl.b.now()
	out := make([]limit, 0, len(counts))
	for _, c := range counts {
		if c.what != "" && int64(c.n) > c.limit {
			return nil, fault.Field("too_many_tokens", "max_tokens", fmt.Sprintf("this call may use %d tokens, over "+c.what, c.n, c.limit))
		}
		s, err := cl.b.windows.Stage(batch, c.key, c.n, int(c.limit), c.window, now)
		if err != nil {
			return nil, err
		}
		out = append(out, limit{s: s, key: c.key, tokens: c.what != "", attempt: c.attempt})
	}
	return out, nil
}

// startFallback counts attempt a, a fallback, against its model's limits
// and inserts its pending row, in one transaction committed before the
// provider is called. A model over one of its limits is not tried: the
// refusal is returned (see overLimit), and nothing is counted or written.
func (cl *call) startFallback(ctx context.Context, a *attempt) error {
	var (
		limits  []limit
		windows []tokenWindow
	)
	committed, err := sqldb.TxBatch(ctx, cl.b.DB, func(batch *sqldb.Tx) (err error) {
		if limits, err = cl.stage(batch, cl.modelCounts(a.model, a.n)); err != nil {
			return err
		}
		q, args := cl.insertLog(a)
		batch.Add(q, args...)
		return nil
	}, func(_ *sql.Conn, res sqldb.Results) error {
		windows = windows[:0]
		for _, l := range limits {
			d, err := l.s.Decide(res)
			if err != nil {
				return err
			}
			if l.tokens {
				windows = append(windows, tokenWindow{l.key, d.WindowStart, l.attempt})
			}
		}
		return nil
	})
	if err == nil {
		err = committed()
	}
	if err != nil {
		if overLimit(err) {
			return err
		}
		return fmt.Errorf("call log: %w", err)
	}
	cl.windows = append(cl.windows, windows...)
	return nil
}

// overLimit tells a refusal by a rate or token limit.
func overLimit(err error) bool {
	e, ok := fault.As(err)
	return ok && (e.Code == "rate_limited" || e.Code == "too_many_tokens")
}

// attemptFunc makes one attempt on a provider; it records usage and
// streaming progress on a.
type attemptFunc func(ctx context.Context, p aiprovider.Provider, t aiprovider.Target, a *attempt) error

// run tries the chain in order until an attempt succeeds, fails for good,
// or the deadline leaves no time; every attempt is logged. A fallback
// whose model is over one of its limits is not tried (startFallback). The
// last attempt's row is completed and the reservation settled to the
// logged cost in one round trip.
func (cl *call) run(ctx context.Context, stream bool, fn attemptFunc) (Metering, error) {
	b := cl.b
	deadline := cl.started.Add(orDefault(b.Deadline, DefaultDeadline))
	var (
		prev    *attempt // the last attempt whose row is complete
		failure error    // its error
	)
	for i, m := range cl.chain {
		left := time.Until(deadline)
		a := &attempt{n: 1, model: m, started: time.Now()}
		if prev != nil {
			if left <= 0 || ctx.Err() != nil {
				break // the models before were skipped until no time was left
			}
			a.n = prev.n + 1
			if err := cl.startFallback(ctx, a); overLimit(err) {
				b.log().InfoContext(ctx, "fallback model over its limits: not tried", "call", cl.id, "model", m.Name, "err", err)
				continue
			} else if err != nil {
				return cl.close(ctx, prev, nil, err)
			}
		}
		p, t, err := cl.target(m, left, stream)
		if err == nil {
			// The provider is paid whether or not our client stays: the
			// attempt outlives the client's request so its usage is known.
			actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cl.attemptBound(left, stream))
			err = fn(actx, p, t, a)
			cancel()
		}
		final := err == nil || !aiprovider.IsRetryable(err) || a.streamed || i == len(cl.chain)-1 ||
			time.Until(deadline) <= 0 || ctx.Err() != nil // out of time, or nobody is waiting for a fallback
		if final {
			return cl.close(ctx, a, a, err)
		}
		if berr := cl.begun(); berr != nil {
			return cl.unbegun(ctx, a, berr, err)
		}
		if lerr := cl.logFinish(ctx, a, err); lerr != nil {
			return cl.close(ctx, a, nil, err)
		}
		prev, failure = a, err
	}
	if prev == nil {
		failure = errors.New("no model to try") // unreachable: a chain is never empty
	}
	// The models left were over their limits: the last one tried failed.
	return cl.close(ctx, prev, nil, failure)
}

// attemptBound is the most one attempt may take: a non-streaming one its
// timeout within the deadline, a stream as long as it likes; and neither
// past nine tenths of the call's reservation's life, however late it
// started (a fallback). An attempt outliving the reservation would be
// reconciled at the cost on record while it runs, and its own cost never
// charged; the last tenth is the margin for its row and the settlement.
func (cl *call) attemptBound(left time.Duration, stream bool) time.Duration {
	held := time.Until(cl.started.Add(orDefault(cl.b.ReservationTTL, DefaultReservationTTL) * 9 / 10))
	if stream {
		return held
	}
	return min(max(min(orDefault(cl.b.CallTimeout, DefaultCallTimeout), left), time.Second), held)
}

// target is how to reach m.
func (cl *call) target(m Model, left time.Duration, stream bool) (aiprovider.Provider, aiprovider.Target, error) {
	p, ok := cl.b.provider(m.Provider)
	if !ok {
		return nil, aiprovider.Target{}, fmt.Errorf("model %s: provider %q: %w", m.Name, m.Provider, aiprovider.ErrUnknownKind)
	}
	t := aiprovider.Target{BaseURL: m.EndpointURL, Model: m.Upstream}
	if t.Model == "" {
		t.Model = m.Name // never the request's: a fallback is another model
	}
	if len(m.sealedKey) > 0 {
		if cl.b.Box == nil {
			return nil, t, fmt.Errorf("model %s: no master key to open its API key", m.Name)
		}
		key, err := cl.b.Box.Open(m.sealedKey, ModelKeyAAD(m.Name))
		if err != nil {
			return nil, t, fmt.Errorf("model %s: open API key: %w", m.Name, err)
		}
		t.APIKey = string(key)
	}
	if stream {
		t.IdleTimeout = orDefault(cl.b.StreamIdle, DefaultStreamIdle)
	} else {
		t.Timeout = cl.attemptBound(left, false)
	}
	return p, t, nil
}

// close completes the row of finish (the last attempt; nil when its row
// is already complete or could not be written), settles the reservation at
// the logged cost and corrects the tokens-per-minute window to the tokens
// used. The row and the settlement go in one round trip, each committed on
// its own, the row first; close returns once the row is durable, while the
// server settles (see Bridge.Wait). Once the row is durable, a settlement
// that fails — or never happens, the process gone — is made good by
// reconciliation at the row's cost. a is the attempt the call's outcome is
// reported from (nil: none started).
func (cl *call) close(ctx context.Context, a, finish *attempt, failure error) (Metering, error) {
	met := Metering{CallID: cl.id, UsageSource: UsageProvider}
	if a != nil {
		met.Model, met.Attempts, met.ResponseTime, met.ClientGone = a.model, a.n, time.Since(a.started), a.clientGone
		in, out, source := cl.tokens(a)
		met.InputTokens, met.OutputTokens, met.TotalTokens, met.UsageSource = in, out, in+out, source
		cl.usedBy(a, in+out)
	}
	var (
		batch   sqldb.Batch
		charged budget.Amount
	)
	if finish != nil {
		q, args, c := cl.finishRow(finish, failure)
		batch.Add(q, args...)
		charged = c
	}
	if err := budget.StageSettle(&batch, cl.id, cl.logged+charged); err != nil {
		return met, err
	}
	met.Cost = cl.logged + charged // what the rows carry, settled now or by Reconcile
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), logWriteTimeout)
	// Sent without waiting for the begin's commit: the row's statement
	// waits for it on the row's lock, so both become durable in as few
	// flushes of the server's log as may be.
	recording := time.Now()
	first, rest, err := batch.Lead(ctx, cl.b.DB)
	berr := cl.begun()
	met.Timing = Timing{Begin: cl.begunAt.Sub(cl.started), Provider: recording.Sub(cl.begunAt), Record: time.Since(recording)}
	if err == nil && berr == nil && finish != nil && first == 0 {
		// The reservation was closed before the row could be completed
		// (finishRow): the settlement after it changes nothing either.
		charged, err = cl.finishLate(ctx, finish, failure)
		met.Cost = cl.logged + charged
		if err != nil {
			_ = rest()
		}
	}
	if err != nil {
		cancel()
		if finish != nil && failure == nil {
			failure = fmt.Errorf("call log: %w", err) // the answer may not be on record: not a success
		}
		// What is on record is durable: Reconcile settles at the rows' cost.
		cl.b.log().ErrorContext(ctx, "call not closed; left to reconciliation", "call", cl.id, "err", err)
		cl.adjustTokens(ctx)
	} else {
		cl.b.pending.Add(1)
		go func() {
			defer cl.b.pending.Done()
			defer cancel()
			if err := rest(); err != nil {
				cl.b.log().ErrorContext(ctx, "call not settled; left to reconciliation", "call", cl.id, "err", err)
			}
			cl.adjustTokens(ctx)
		}()
	}
	if berr != nil {
		return cl.unbegun(ctx, a, berr, failure)
	}
	if failure != nil {
		var m *Model
		if a != nil {
			m = &a.model
		}
		return met, clientError(failure, m)
	}
	return met, nil
}

// unbegun ends a call whose begin did not commit: it holds nothing and has
// no row, so it fails, and its provider's answer, if any, is dropped.
func (cl *call) unbegun(ctx context.Context, a *attempt, berr, attemptErr error) (Metering, error) {
	met := Metering{CallID: cl.id}
	if a != nil {
		met.Model, met.Attempts = a.model, a.n
	}
	cl.b.log().ErrorContext(ctx, "AI call not begun; its answer is dropped", "call", cl.id, "model", met.Model.Name, "err", berr, "attempt_err", attemptErr)
	return met, berr
}

// usedBy records the tokens attempt a used.
func (cl *call) usedBy(a *attempt, tokens int) {
	for len(cl.used) < a.n {
		cl.used = append(cl.used, 0)
	}
	cl.used[a.n-1] = tokens
}

// adjustTokens corrects the token windows from the tokens counted to the
// tokens used: a model's by its attempt's, the tenant's and the key's by
// the whole call's. It is never retried with the settlement: a correction
// must not run twice.
func (cl *call) adjustTokens(ctx context.Context) {
	total := 0
	for _, n := range cl.used {
		total += n
	}
	for _, w := range cl.windows {
		used := total
		if w.attempt > 0 {
			used = 0
			if w.attempt <= len(cl.used) {
				used = cl.used[w.attempt-1]
			}
		}
		if err := ratelimit.Adjust(ctx, cl.b.DB, w.key, w.start, used-cl.tokenCount); err != nil {
			cl.b.log().WarnContext(ctx, "token limit not corrected", "key", w.key, "err", err)
		}
	}
	cl.windows = nil
}

// tokens is an attempt's usage and where it came from.
func (cl *call) tokens(a *attempt) (in, out int, source string) {
	if a.usage != nil && (!a.partial || a.usage.CompletionTokens >= a.outText) {
		return a.usage.PromptTokens, a.usage.CompletionTokens, UsageProvider
	}
	if a.usage != nil {
		// A stream broken off before its final count (Anthropic counts
		// output in message_delta, after the text): what was streamed
		// is estimated; the prompt's count, sent first, is the provider's.
		return cmp.Or(a.usage.PromptTokens, cl.prompt), a.outText, UsageEstimated
	}
	if a.streamed || a.answered {
		return cl.prompt, a.outText, UsageEstimated
	}
	return 0, 0, UsageProvider
}

// clientError is what the client is told of a failed call to m (nil: none
// tried). A provider's message passed on names m as the bridge does, never
// by the provider's own id for it (a Doubao endpoint id, say), which
// the bridge keeps to itself.
func clientError(err error, m *Model) error {
	var pe *aiprovider.ProviderError
	switch {
	case errors.As(err, &pe):
		switch {
		case pe.Type == aiprovider.ErrTypeTimeout:
			return &fault.Error{Kind: fault.GatewayTimeout, Code: "upstream_timeout", Message: "the model's provider did not answer in time", Err: err}
		case pe.Status == 429:
			return &fault.Error{Kind: fault.TooManyRequests, Code: "upstream_rate_limited", Message: "the model's provider is rate limiting; try again later",
				RetryAfter: max(pe.RetryAfter, time.Second), Err: err}
		case pe.Retryable, pe.Status == 401, pe.Status == 403, pe.Status == 404:
			return &fault.Error{Kind: fault.BadGateway, Code: "upstream_error", Message: "the model's provider failed (" + pe.Provider + ")", Err: err}
		default:
			msg := pe.Message
			if msg == "" {
				msg = "the model's provider refused the request"
			}
			if m != nil && m.Upstream != "" && m.Upstream != m.Name {
				msg = strings.ReplaceAll(msg, m.Upstream, m.Name)
			}
			return &fault.Error{Kind: fault.Invalid, Code: "upstream_rejected", Message: msg, Err: err}
		}
	case errors.Is(err, aiprovider.ErrUnsupported):
		return &fault.Error{Kind: fault.Invalid, Code: "unsupported", Message: err.Error(), Err: err}
	case errors.Is(err, context.Canceled):
		return &fault.Error{Kind: fault.Unavailable, Code: "cancelled", Message: "the call was cancelled", Err: err}
	}
	return err
}

// Chat makes a non-streaming chat call. The response names the model that
// answered by its bridge name.
func (b *Bridge) Chat(ctx context.Context, c Caller, req aiprovider.ChatRequest) (*aiprovider.ChatResponse, Metering, error) {
	outputs, err := chatOutputs(req)
	if err != nil {
		return nil, Metering{}, err
	}
	cl, err := b.begin(ctx, c, EndpointChat, req.Model, estimateChat(req), req.MaxOutputTokens(), outputs)
	if err != nil {
		return nil, Metering{}, err
	}
	capTokens(&req, cl.maxTokens)
	var resp *aiprovider.ChatResponse
	met, err := cl.run(ctx, false, func(ctx context.Context, p aiprovider.Provider, t aiprovider.Target, a *attempt) error {
		r, err := p.Chat(ctx, t, req)
		if err != nil {
			return err
		}
		r.Model, a.usage, resp = a.model.Name, r.Usage, r
		if a.usage == nil {
			a.answered = true
			for _, ch := range r.Choices {
				a.outText += EstimateTokens(ch.Message.Content.Text())
			}
		}
		return nil
	})
	return resp, met, err
}

// capTokens makes the request carry the completion cap in force.
func capTokens(req *aiprovider.ChatRequest, n int) {
	if req.MaxOutputTokens() == 0 {
		req.MaxTokens = &n
	}
}

// Emit receives a stream's chunks for the client, with the model that
// produces them; an error means the client is gone (the stream is drained
// for its usage, and nothing more is emitted).
type Emit func(m Model, chunk aiprovider.Chunk) error

// ChatStream makes a streaming chat call, emitting the provider's chunks as
// they come. Before the first chunk reached emit, a retryable failure falls
// back to the next model; after it, never. The returned error, when the
// stream had started, is for the log only: the client already has a 200.
func (b *Bridge) ChatStream(ctx context.Context, c Caller, req aiprovider.ChatRequest, emit Emit) (Metering, error) {
	outputs, err := chatOutputs(req)
	if err != nil {
		return Metering{}, err
	}
	cl, err := b.begin(ctx, c, EndpointChat, req.Model, estimateChat(req), req.MaxOutputTokens(), outputs)
	if err != nil {
		return Metering{}, err
	}
	capTokens(&req, cl.maxTokens)
	return cl.run(ctx, true, func(pctx context.Context, p aiprovider.Provider, t aiprovider.Target, a *attempt) error {
		s, err := p.ChatStream(pctx, t, req)
		if err != nil {
			return err
		}
		defer s.Close()
		for {
			chunk, err := s.Next()
			if errors.Is(err, io.EOF) {
				a.usage = s.Usage()
				return nil
			}
			if err != nil {
				a.usage, a.partial = s.Usage(), true
				return err
			}
			for _, ch := range chunk.Choices {
				if ch.Delta.Content != nil {
					a.outText += EstimateTokens(*ch.Delta.Content)
				}
			}
			if a.clientGone {
				continue // drain: the provider's usage comes last
			}
			if !a.streamed {
				if err := cl.begun(); err != nil {
					return err // nothing streams before the call's hold is durable
				}
				a.firstByte = time.Since(a.started)
			}
			a.streamed = true
			if emit(a.model, named(chunk, a.model.Name)) != nil || ctx.Err() != nil {
				a.clientGone = true
			}
		}
	})
}

// named is chunk naming the model by its bridge name, as a whole answer
// does: the provider's own id (a dated version, an endpoint id) stays
// behind the bridge. The rest of the chunk is as the provider sent it.
func named(chunk aiprovider.Chunk, name string) aiprovider.Chunk {
	if chunk.Model == name || len(chunk.Raw) == 0 {
		return chunk
	}
	from, _ := json.Marshal(chunk.Model)
	to, _ := json.Marshal(name)
	// Inside a JSON string a quote is escaped, so `"model":"…"` unescaped
	// can only be a key: the chunk's own, the one object with a model.
	raw := bytes.Replace(chunk.Raw, append([]byte(`"model":`), from...), append([]byte(`"model":`), to...), 1)
	if bytes.Equal(raw, chunk.Raw) { // spaced out, or no model field: rewrite it whole
		var fields map[string]json.RawMessage
		if json.Unmarshal(chunk.Raw, &fields) != nil {
			return chunk
		}
		fields["model"] = to
		if raw, _ = json.Marshal(fields); raw == nil {
			return chunk
		}
	}
	chunk.Raw, chunk.Model = raw, name
	return chunk
}

// Complete makes a legacy text completion.
func (b *Bridge) Complete(ctx context.Context, c Caller, req aiprovider.CompletionRequest) (*aiprovider.CompletionResponse, Metering, error) {
	maxTokens := 0
	if req.MaxTokens != nil {
		maxTokens = *req.MaxTokens
	}
	outputs, err := completionOutputs(req)
	if err != nil {
		return nil, Metering{}, err
	}
	cl, err := b.begin(ctx, c, EndpointCompletion, req.Model, estimateStrings(req.Prompt, req.Extra), maxTokens, outputs)
	if err != nil {
		return nil, Metering{}, err
	}
	if req.MaxTokens == nil {
		req.MaxTokens = &cl.maxTokens
	}
	var resp *aiprovider.CompletionResponse
	met, err := cl.run(ctx, false, func(ctx context.Context, p aiprovider.Provider, t aiprovider.Target, a *attempt) error {
		r, err := p.Complete(ctx, t, req)
		if err != nil {
			return err
		}
		r.Model, a.usage, resp = a.model.Name, r.Usage, r
		if a.usage == nil {
			a.answered = true
			for _, ch := range r.Choices {
				a.outText += EstimateTokens(ch.Text)
			}
		}
		return nil
	})
	return resp, met, err
}

// Embed makes an embeddings call (no fallback: vectors of another model
// are not comparable).
func (b *Bridge) Embed(ctx context.Context, c Caller, req aiprovider.EmbeddingRequest) (*aiprovider.EmbeddingResponse, Metering, error) {
	cl, err := b.begin(ctx, c, EndpointEmbedding, req.Model, estimateStrings(req.Input, req.Extra), 0, 1)
	if err != nil {
		return nil, Metering{}, err
	}
	var resp *aiprovider.EmbeddingResponse
	met, err := cl.run(ctx, false, func(ctx context.Context, p aiprovider.Provider, t aiprovider.Target, a *attempt) error {
		r, err := p.Embed(ctx, t, req)
		if err != nil {
			return err
		}
		r.Model, a.usage, a.answered, resp = a.model.Name, r.Usage, r.Usage == nil, r
		return nil
	})
	return resp, met, err
}
