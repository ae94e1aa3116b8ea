// Package aiprovider calls the AI providers behind the AI bridge, in
// OpenAI's shapes both ways: OpenAI-compatible endpoints (OpenAI,
// Doubao/Volcengine Ark, DeepSeek, Qwen compatible mode, local servers) are
// passed through, Anthropic's Messages API is translated to and from them,
// streaming included.
//
// Every failure a provider causes is a *ProviderError that says whether the
// bridge may fall back to another model (429, 5xx, timeouts, broken
// connections) or not (other 4xx). A stream always asks for usage, so its
// last chunk carries the provider's token count.
//
// It never logs, and never puts an API key anywhere but the request header
// the provider reads it from; it keeps no state between calls, so a frozen
// or killed function loses nothing here.
package aiprovider

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"
)

// Provider is one wire protocol to AI models.
type Provider interface {
	// Chat sends a non-streaming chat request (req.Stream is ignored).
	Chat(ctx context.Context, t Target, req ChatRequest) (*ChatResponse, error)
	// ChatStream sends a streaming chat request. The stream lives as long
	// as ctx: a bridge that must drain the provider after its client left
	// passes a context that outlives the client's request
	// (context.WithoutCancel). The caller closes the stream.
	ChatStream(ctx context.Context, t Target, req ChatRequest) (Stream, error)
	// Complete sends a legacy, non-streaming text completion.
	Complete(ctx context.Context, t Target, req CompletionRequest) (*CompletionResponse, error)
	// Embed sends an embeddings request.
	Embed(ctx context.Context, t Target, req EmbeddingRequest) (*EmbeddingResponse, error)
}

// Stream is a streamed chat completion, chunk by chunk, in OpenAI's format.
type Stream interface {
	// Next returns the next chunk; io.EOF after the provider's last one.
	// Any other error ends the stream.
	Next() (Chunk, error)
	// Usage is the usage the provider reported so far (complete once Next
	// returned io.EOF), nil when it reported none.
	Usage() *Usage
	// Close ends the stream and releases its connection; a stream not read
	// to its end is aborted upstream. Closing twice is harmless.
	Close() error
}

// Target is where and how one call is sent: a model's configuration.
type Target struct {
	// BaseURL is the API root, e.g. "https://api.openai.com/v1" or, for
	// Anthropic, "https://api.anthropic.com"; empty takes the kind's
	// default (DefaultBaseURL).
	BaseURL string
	// APIKey is the provider's key, sent as the kind expects.
	APIKey string
	// Model is the upstream model id; it replaces the request's model
	// (which is the bridge's name for it). Empty keeps the request's.
	Model string
	// Timeout bounds a whole non-streaming call; 0 is no bound but ctx's.
	Timeout time.Duration
	// IdleTimeout bounds, on a stream, the wait for the response and then
	// every gap between two events; 0 is no bound but ctx's.
	IdleTimeout time.Duration
	// ExtraHeaders are added to every request (e.g. an organization id);
	// they replace the kind's own headers of the same name, so a gateway
	// wanting another auth header can have it.
	ExtraHeaders map[string]string
}

// Kinds of provider New knows.
const (
	KindOpenAI    = "openai"
	KindDoubao    = "doubao"
	KindDeepSeek  = "deepseek"
	KindQwen      = "qwen"
	KindLocal     = "local"
	KindAnthropic = "anthropic"
)

// defaultBaseURLs are the public endpoints of each kind; local has none.
var defaultBaseURLs = map[string]string{
	KindOpenAI:    "https://api.openai.com/v1",
	KindDoubao:    "https://ark.cn-beijing.volces.com/api/v3",
	KindDeepSeek:  "https://api.deepseek.com/v1",
	KindQwen:      "https://dashscope.aliyuncs.com/compatible-mode/v1",
	KindLocal:     "",
	KindAnthropic: "https://api.anthropic.com",
}

// ErrUnknownKind is New's error for a kind it does not know.
var ErrUnknownKind = errors.New("unknown provider kind")

// ErrUnsupported is returned, wrapped, for a request a provider cannot
// serve (embeddings on Anthropic, tools through the translation, ...).
// It is the caller's problem, not the provider's, so it is no
// *ProviderError and never triggers a fallback.
var ErrUnsupported = errors.New("not supported")

// ErrStreamClosed is what a stream's Next returns, wrapped, after Close.
var ErrStreamClosed = errors.New("stream closed")

// Kinds lists the provider kinds New accepts.
func Kinds() []string {
	return []string{KindOpenAI, KindDoubao, KindDeepSeek, KindQwen, KindLocal, KindAnthropic}
}

// DefaultBaseURL is kind's public API root ("" for local or an unknown
// kind).
func DefaultBaseURL(kind string) string { return defaultBaseURLs[kind] }

// New returns the provider for kind (ai_model_config.provider), using
// http.DefaultClient's transport.
func New(kind string) (Provider, error) {
	switch kind {
	case KindOpenAI, KindDoubao, KindDeepSeek, KindQwen, KindLocal:
		return &OpenAICompatible{Kind: kind}, nil
	case KindAnthropic:
		return &Anthropic{}, nil
	}
	return nil, fmt.Errorf("provider %q: %w", kind, ErrUnknownKind)
}

// client returns c, or http.DefaultClient when c is nil. No client-wide
// Timeout may be set: it would cut long streams; Target's timeouts apply.
func client(c *http.Client) *http.Client {
	if c != nil {
		return c
	}
	return http.DefaultClient
}
