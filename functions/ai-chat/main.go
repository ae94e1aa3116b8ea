// Command ai-chat is the AI bridge: tenants call AI models through it, in the
// seed's shapes (/api/v1/ai/bridge/*) or OpenAI's (/v1/*, so any OpenAI SDK
// is a client), with a tenant-scoped token or a tenant API key. Every call is
// rate limited, held against the tenant's budget before it is made, metered
// per attempt in ai_service_call_logs and settled after; platform admins
// configure models, tenants' model settings and accounts (/api/admin/ai/*).
package main

import (
	"context"
	"time"

	"github.com/unitenant/unitenant/shared/aibridge"
	"github.com/unitenant/unitenant/shared/config"
	"github.com/unitenant/unitenant/shared/secretbox"
	"github.com/unitenant/unitenant/shared/serverless"
	"github.com/unitenant/unitenant/shared/tenancy"
)

func main() { serverless.Main("ai-chat", setup) }

func setup(_ context.Context, d serverless.Deps) (serverless.Service, error) {
	box, err := secretbox.FromEnv(d.Env.Secret("MASTER_KEY", ""), d.Dev(), config.DefaultDevDir)
	if err != nil {
		return serverless.Service{}, err
	}
	// The bridge sends a call's bookkeeping in batches (sqldb.Batch): one
	// round trip for the rate limits, the hold and the log row.
	d.Config.DB.MultiStatements = true
	f, err := tenancy.OpenFunction(d)
	if err != nil {
		return serverless.Service{}, err
	}
	b := &aibridge.Bridge{
		DB:               f.DB,
		Box:              box,
		TenantRPM:        d.Env.Int("AI_TENANT_RPM", aibridge.DefaultTenantRPM, 1, 1_000_000),
		KeyRPM:           d.Env.Int("AI_KEY_RPM", aibridge.DefaultTenantRPM, 1, 1_000_000),
		TenantTPM:        d.Env.Int("AI_TENANT_TPM", 0, 0, 100_000_000),
		KeyTPM:           d.Env.Int("AI_KEY_TPM", 0, 0, 100_000_000),
		MaxAttempts:      d.Env.Int("AI_MAX_ATTEMPTS", aibridge.DefaultMaxAttempts, 1, 10),
		Deadline:         d.Env.Duration("AI_DEADLINE", aibridge.DefaultDeadline),
		CallTimeout:      d.Env.Duration("AI_CALL_TIMEOUT", aibridge.DefaultCallTimeout),
		StreamIdle:       d.Env.Duration("AI_STREAM_IDLE_TIMEOUT", aibridge.DefaultStreamIdle),
		ReservationTTL:   d.Env.Duration("AI_RESERVATION_TTL", aibridge.DefaultReservationTTL),
		DefaultMaxTokens: d.Env.Int("AI_DEFAULT_MAX_TOKENS", aibridge.DefaultMaxTokens, 1, 1_000_000),
		CacheTTL:         d.Env.Duration("AI_CACHE_TTL", aibridge.DefaultCacheTTL),
		Log:              d.Log,
	}
	h := &handler{db: f.DB, box: box, verifier: f.Verifier, tenants: f.Tenancy, bridge: b, log: d.Log, now: time.Now}
	// Settlements still on their way finish before the pool closes.
	closeAll := func() error { b.Wait(); return f.Close() }
	return serverless.Service{Handler: newHandler(h), Close: closeAll, MaxBody: maxRequestBody}, nil
}
