// Package aibridge is the AI bridge's domain: which models a tenant may call
// and in which order, tenant API keys, and the metered call itself.
//
// A call is, in this order and with nothing kept only in memory: the
// tenant's enabled models are read and the chain of models to try is picked
// (Chain); the rate limits are counted, one atomic statement each, shared by
// every instance (shared/ratelimit); the worst case over the chain is
// reserved against the tenant's account (shared/budget) or the call is
// refused with 402; then each attempt gets an ai_service_call_logs row,
// inserted as pending before the provider is called and completed — tokens,
// cost at the prices in force, time, status — before the answer is returned;
// finally the reservation is settled to the logged cost. A function killed
// after an attempt's row is complete leaves a reservation that usage-cron's
// reconciliation settles at exactly that cost, once.
//
// Fallback to the next model happens on a retryable provider failure (429,
// 5xx, timeouts, broken connections), within the call's deadline, never to a
// model already tried and never once a byte was streamed to the client.
package aibridge

import (
	"database/sql"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/unitenant/unitenant/shared/aiprovider"
	"github.com/unitenant/unitenant/shared/ratelimit"
	"github.com/unitenant/unitenant/shared/secretbox"
)

// Defaults of a Bridge's settings.
const (
	DefaultTenantRPM      = 100 // seed: 100 calls a minute
	DefaultMaxAttempts    = 3
	DefaultDeadline       = 120 * time.Second
	DefaultCallTimeout    = 60 * time.Second
	DefaultStreamIdle     = 30 * time.Second
	DefaultReservationTTL = 10 * time.Minute
	DefaultMaxTokens      = 4096
)

// ModelKeyAAD is the additional data an ai_model_config row's provider API
// key is sealed with (secretbox), binding the ciphertext to its model.
func ModelKeyAAD(modelName string) string { return "ai_model_config:" + modelName + ":api_key" }

// Bridge makes metered AI calls for tenants. Its zero settings take the
// defaults above.
type Bridge struct {
	// DB is the system database, a pool opened with
	// config.DB.MultiStatements: a call's bookkeeping goes in batches.
	DB  *sql.DB
	Box *secretbox.Box // opens the providers' API keys
	// TenantRPM and KeyRPM are the requests a tenant, and one of its API
	// keys, may make per minute (a key's own rpm overrides KeyRPM).
	TenantRPM, KeyRPM int
	// TenantTPM and KeyTPM are the tokens (the prompt's estimate and the
	// completion cap, corrected after the call) a tenant, and one of its
	// API keys, may use per minute (a key's own tpm overrides KeyTPM);
	// 0: no limit.
	TenantTPM, KeyTPM int
	// MaxAttempts bounds the models one call tries.
	MaxAttempts int
	// Deadline bounds the time a call spends on failed attempts: no
	// fallback starts after it.
	Deadline time.Duration
	// CallTimeout bounds one non-streaming attempt.
	CallTimeout time.Duration
	// StreamIdle bounds the wait for a stream's first event and every gap
	// after it.
	StreamIdle time.Duration
	// ReservationTTL is how long a budget hold lives if the function dies;
	// a stream is cut before it, so a live call is always settled by itself.
	ReservationTTL time.Duration
	// DefaultMaxTokens caps a completion whose request and model set none,
	// so every call's worst case, and its reservation, is bounded.
	DefaultMaxTokens int
	// HTTPClient reaches the providers; nil is a client with a pool sized
	// for many concurrent calls to few hosts.
	HTTPClient *http.Client
	Log        *slog.Logger
	// Now is the clock of rate-limit windows and key expiry; nil: time.Now.
	Now func() time.Time
	// CacheTTL is how long API keys and tenants' models read are reused
	// (default DefaultCacheTTL; negative: never).
	CacheTTL time.Duration

	once      sync.Once
	providers map[string]aiprovider.Provider
	cache     cache
	windows   ratelimit.Windows // rate-limit windows whose rows exist
	pending   sync.WaitGroup    // settlements the server is still making
}

// Wait returns once the settlements of the calls answered so far are made
// (or failed and left to reconciliation). A call answers as soon as its log
// row is durable, a moment before its reservation is settled; a process
// about to stop, or a test reading accounts, waits here.
func (b *Bridge) Wait() { b.pending.Wait() }

func orDefault[T int | time.Duration](v, def T) T {
	if v > 0 {
		return v
	}
	return def
}

func (b *Bridge) now() time.Time {
	if b.Now != nil {
		return b.Now()
	}
	return time.Now()
}

func (b *Bridge) log() *slog.Logger {
	if b.Log != nil {
		return b.Log
	}
	return slog.Default()
}

// provider returns the provider for kind, built once.
func (b *Bridge) provider(kind string) (aiprovider.Provider, bool) {
	b.once.Do(func() {
		c := b.HTTPClient
		if c == nil {
			t := http.DefaultTransport.(*http.Transport).Clone()
			t.MaxIdleConns, t.MaxIdleConnsPerHost = 512, 256
			t.DialContext = (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext
			c = &http.Client{Transport: t}
		}
		b.providers = map[string]aiprovider.Provider{}
		for _, k := range aiprovider.Kinds() {
			if k == aiprovider.KindAnthropic {
				b.providers[k] = &aiprovider.Anthropic{Client: c}
			} else {
				b.providers[k] = &aiprovider.OpenAICompatible{Kind: k, Client: c}
			}
		}
	})
	p, ok := b.providers[kind]
	return p, ok
}
