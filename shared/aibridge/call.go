package aibridge

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strconv"
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
}

// Models returns the models the caller may use, in priority order.
func (b *Bridge) Models(ctx context.Context, c Caller) ([]Model, error) {
	all, err := tenantModels(ctx, b.DB, c.TenantID)
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
	b           *Bridge
	c           Caller
	endpoint    string
	chain       []Model
	id          string
	prompt      int // estimated prompt tokens
	maxTokens   int // the completion cap in force
	reserved    budget.Amount
	logged      budget.Amount // the cost the attempts' rows carry
	started     time.Time
	firstLogged bool                // the first attempt's row was inserted with the hold
	tpm         *ratelimit.Decision // the tokens-per-minute window counted in
	tpmKey      string
	tpmCount    int
}

// attempt is one model tried.
type attempt struct {
	n          int
	model      Model
	started    time.Time
	usage      *aiprovider.Usage
	outText    int // estimated output tokens of what was streamed
	firstByte  time.Duration
	streamed   bool // a byte reached the client: no fallback any more
	clientGone bool
	answered   bool // an answer came without usage: estimate it
}

// newCallID is a fresh id for a call's rows; never the client's, so no
// client can collide with another call's reservation.
func newCallID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return "ai-" + hex.EncodeToString(b[:])
}

// begin picks the chain, counts the rate limits and reserves the worst case.
// maxTokens is the request's completion cap (0: none given); the cap in
// force is call.maxTokens, which the request must carry.
func (b *Bridge) begin(ctx context.Context, c Caller, endpoint, requested string, prompt, maxTokens int) (*call, error) {
	if maxTokens < 0 {
		return nil, fault.Field("invalid_max_tokens", "max_tokens", "must not be negative")
	}
	enabled, err := tenantModels(ctx, b.DB, c.TenantID)
	if err != nil {
		return nil, err
	}
	chain, err := Chain(enabled, c.Key, endpoint, requested, orDefault(b.MaxAttempts, DefaultMaxAttempts))
	if err != nil {
		return nil, err
	}
	cl := &call{b: b, c: c, endpoint: endpoint, chain: chain, id: newCallID(), prompt: prompt, started: time.Now()}
	if endpoint != EndpointEmbedding {
		cl.maxTokens = maxTokens
		if cl.maxTokens == 0 {
			cl.maxTokens = orDefault(chain[0].DefaultMaxTokens, orDefault(b.DefaultMaxTokens, DefaultMaxTokens))
		}
	}
	var worst budget.Amount
	for _, m := range chain {
		worst = max(worst, budget.Estimate(prompt, cl.maxTokens, m.InPrice, m.OutPrice))
	}
	// One transaction, one commit: the rate limits, the hold and the first
	// attempt's row. A refusal rolls all of it back, so a refused call
	// neither counts nor holds anything.
	first := &attempt{n: 1, model: chain[0]}
	err = sqldb.InTxRetry(ctx, b.DB, func(tx *sql.Tx) error {
		if err := cl.limit(ctx, tx); err != nil {
			return err
		}
		r, err := budget.ReserveIn(ctx, tx, c.TenantID, cl.id, worst, orDefault(b.ReservationTTL, DefaultReservationTTL))
		if err != nil {
			return err
		}
		cl.reserved = r.Amount
		return cl.insertLog(ctx, tx, first)
	})
	if err != nil {
		cl.tpm = nil
		if _, ok := fault.As(err); ok {
			return nil, err
		}
		return nil, fmt.Errorf("begin AI call for tenant %d: %w", c.TenantID, err)
	}
	cl.firstLogged = true
	return cl, nil
}

// limit counts the call against the tenant's, the key's and the first
// model's limits, in tx; each is one atomic statement shared by every
// instance, the rows always taken in this order.
func (cl *call) limit(ctx context.Context, tx *sql.Tx) error {
	b, now, m := cl.b, cl.b.now(), cl.chain[0]
	if _, err := ratelimit.CountIn(ctx, tx, "ai:t:"+strconv.FormatInt(cl.c.TenantID, 10), 1, orDefault(b.TenantRPM, DefaultTenantRPM), time.Minute, now); err != nil {
		return err
	}
	if k := cl.c.Key; k != nil {
		if _, err := ratelimit.CountIn(ctx, tx, "ai:k:"+strconv.FormatInt(k.ID, 10), 1, orDefault(k.RPMLimit, orDefault(b.KeyRPM, DefaultTenantRPM)), time.Minute, now); err != nil {
			return err
		}
	}
	model := "ai:t:" + strconv.FormatInt(cl.c.TenantID, 10) + ":m:" + strconv.FormatInt(m.ID, 10)
	if m.RPM > 0 {
		if _, err := ratelimit.CountIn(ctx, tx, model, 1, m.RPM, time.Minute, now); err != nil {
			return err
		}
	}
	if m.TPM > 0 {
		n := cl.prompt + cl.maxTokens
		if n > m.TPM {
			return fault.Field("too_many_tokens", "max_tokens", fmt.Sprintf("this call may use %d tokens, over the model's limit of %d a minute", n, m.TPM))
		}
		d, err := ratelimit.CountIn(ctx, tx, model+":tok", n, m.TPM, time.Minute, now)
		if err != nil {
			return err
		}
		cl.tpm, cl.tpmKey, cl.tpmCount = &d, model+":tok", n
	}
	return nil
}

// giveBackTokens corrects the tokens-per-minute window to the tokens used.
func (cl *call) giveBackTokens(ctx context.Context, used int) {
	if cl.tpm == nil {
		return
	}
	if err := ratelimit.Adjust(context.WithoutCancel(ctx), cl.b.DB, cl.tpmKey, cl.tpm.WindowStart, used-cl.tpmCount); err != nil {
		cl.b.log().WarnContext(ctx, "tokens per minute not corrected", "err", err)
	}
	cl.tpm = nil
}

// attemptFunc makes one attempt on a provider; it records usage and
// streaming progress on a.
type attemptFunc func(ctx context.Context, p aiprovider.Provider, t aiprovider.Target, a *attempt) error

// run tries the chain in order until an attempt succeeds, fails for good,
// or the deadline leaves no time; every attempt is logged, then the
// reservation is settled to the logged cost.
func (cl *call) run(ctx context.Context, stream bool, fn attemptFunc) (Metering, error) {
	b := cl.b
	deadline := cl.started.Add(orDefault(b.Deadline, DefaultDeadline))
	var (
		last error
		a    *attempt
	)
	for i, m := range cl.chain {
		left := time.Until(deadline)
		if i > 0 && (left <= 0 || ctx.Err() != nil) {
			break // out of time, or nobody is waiting for a fallback
		}
		a = &attempt{n: i + 1, model: m, started: time.Now()}
		if i > 0 || !cl.firstLogged {
			if err := cl.logStart(ctx, a); err != nil {
				last = err
				break
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
		if lerr := cl.logFinish(ctx, a, err); lerr != nil && err == nil {
			err = lerr
		}
		if err == nil {
			return cl.settle(ctx, a, nil)
		}
		last = err
		if !aiprovider.IsRetryable(err) || a.streamed {
			break
		}
	}
	return cl.settle(ctx, a, last)
}

// attemptBound is the most one attempt may take: a non-streaming one its
// timeout within the deadline, a stream until just before its reservation
// could expire.
func (cl *call) attemptBound(left time.Duration, stream bool) time.Duration {
	if stream {
		return orDefault(cl.b.ReservationTTL, DefaultReservationTTL) * 9 / 10
	}
	return max(min(orDefault(cl.b.CallTimeout, DefaultCallTimeout), left), time.Second)
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

// settle closes the reservation at the logged cost and reports the call.
func (cl *call) settle(ctx context.Context, a *attempt, failure error) (Metering, error) {
	ctx = context.WithoutCancel(ctx)
	met := Metering{CallID: cl.id, UsageSource: UsageProvider}
	if a != nil {
		met.Model, met.Attempts, met.ResponseTime, met.ClientGone = a.model, a.n, time.Since(a.started), a.clientGone
		in, out, source := cl.tokens(a)
		met.InputTokens, met.OutputTokens, met.TotalTokens, met.UsageSource = in, out, in+out, source
		cl.giveBackTokens(ctx, in+out)
	} else {
		cl.giveBackTokens(ctx, 0)
	}
	var err error
	if cl.logged > 0 {
		var s budget.Settlement
		s, err = budget.Settle(ctx, cl.b.DB, cl.id, cl.logged)
		met.Cost = s.Charged
	} else {
		_, err = budget.Release(ctx, cl.b.DB, cl.id)
	}
	if err != nil {
		// The rows are durable: Reconcile settles at their cost later.
		cl.b.log().ErrorContext(ctx, "settle failed; left to reconciliation", "call", cl.id, "err", err)
		met.Cost = cl.logged
	}
	if failure != nil {
		return met, clientError(failure)
	}
	return met, nil
}

// tokens is an attempt's usage and where it came from.
func (cl *call) tokens(a *attempt) (in, out int, source string) {
	if a.usage != nil {
		return a.usage.PromptTokens, a.usage.CompletionTokens, UsageProvider
	}
	if a.streamed || a.answered {
		return cl.prompt, a.outText, UsageEstimated
	}
	return 0, 0, UsageProvider
}

// clientError is what the client is told of a failed call.
func clientError(err error) error {
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
	cl, err := b.begin(ctx, c, EndpointChat, req.Model, estimateChat(req), req.MaxOutputTokens())
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
	cl, err := b.begin(ctx, c, EndpointChat, req.Model, estimateChat(req), req.MaxOutputTokens())
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
				a.usage = s.Usage()
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
				a.firstByte = time.Since(a.started)
			}
			a.streamed = true
			if emit(a.model, chunk) != nil || ctx.Err() != nil {
				a.clientGone = true
			}
		}
	})
}

// Complete makes a legacy text completion.
func (b *Bridge) Complete(ctx context.Context, c Caller, req aiprovider.CompletionRequest) (*aiprovider.CompletionResponse, Metering, error) {
	maxTokens := 0
	if req.MaxTokens != nil {
		maxTokens = *req.MaxTokens
	}
	cl, err := b.begin(ctx, c, EndpointCompletion, req.Model, estimateStrings(req.Prompt), maxTokens)
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
	cl, err := b.begin(ctx, c, EndpointEmbedding, req.Model, estimateStrings(req.Input), 0)
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
