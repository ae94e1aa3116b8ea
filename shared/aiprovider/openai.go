package aiprovider

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
)

// OpenAICompatible speaks OpenAI's API: {base}/chat/completions,
// /completions and /embeddings with a Bearer key. OpenAI, Doubao
// (Volcengine Ark), DeepSeek, Qwen's compatible mode and local servers all
// do. Requests and answers pass through unchanged but for the model id,
// stream_options.include_usage, which a stream always sets, and the
// completion cap, sent in the member the kind reads (see capField).
type OpenAICompatible struct {
	// Kind names the provider in errors and picks the default base URL.
	Kind string
	// Client sends the requests; nil is http.DefaultClient. It must have no
	// Timeout of its own (it would cut long streams).
	Client *http.Client
}

var _ Provider = (*OpenAICompatible)(nil)

func (p *OpenAICompatible) name() string {
	if p.Kind == "" {
		return KindOpenAI
	}
	return p.Kind
}

func (p *OpenAICompatible) exchange(t Target, path string) exchange {
	auth := http.Header{}
	if t.APIKey != "" {
		auth.Set("Authorization", "Bearer "+t.APIKey)
	}
	return newExchange(p.Client, p.name(), DefaultBaseURL(p.name()), t, path, auth)
}

// Chat implements Provider.
func (p *OpenAICompatible) Chat(ctx context.Context, t Target, req ChatRequest) (*ChatResponse, error) {
	req.Model = upstreamModel(t, req.Model)
	req.Stream, req.StreamOptions = false, nil
	p.capField(&req)
	var out ChatResponse
	if err := p.exchange(t, "/chat/completions").call(ctx, t.Timeout, req, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// ChatStream implements Provider. It always asks for usage
// (stream_options.include_usage), so the last chunk before io.EOF is a
// usage-only chunk (Chunk.UsageOnly) when the provider honours it.
func (p *OpenAICompatible) ChatStream(ctx context.Context, t Target, req ChatRequest) (Stream, error) {
	req.Model = upstreamModel(t, req.Model)
	req.Stream = true
	req.StreamOptions = &StreamOptions{IncludeUsage: true}
	p.capField(&req)
	s, err := p.exchange(t, "/chat/completions").openStream(ctx, t.IdleTimeout, req)
	if err != nil {
		return nil, err
	}
	return &openAIStream{sseStream: s}, nil
}

// Complete implements Provider (req.Stream is ignored).
func (p *OpenAICompatible) Complete(ctx context.Context, t Target, req CompletionRequest) (*CompletionResponse, error) {
	req.Model = upstreamModel(t, req.Model)
	req.Stream, req.StreamOptions = false, nil
	var out CompletionResponse
	if err := p.exchange(t, "/completions").call(ctx, t.Timeout, req, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// Embed implements Provider.
func (p *OpenAICompatible) Embed(ctx context.Context, t Target, req EmbeddingRequest) (*EmbeddingResponse, error) {
	req.Model = upstreamModel(t, req.Model)
	var out EmbeddingResponse
	if err := p.exchange(t, "/embeddings").call(ctx, t.Timeout, req, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// capField sends the request's completion cap (MaxOutputTokens, what the
// bridge reserved for) in the one member the kind reads. OpenAI reads
// max_completion_tokens on every chat model and refuses max_tokens on its
// reasoning models; DeepSeek, Qwen's compatible mode and local servers read
// only max_tokens and ignore the other, so a cap given as
// max_completion_tokens alone would not bind; Ark (Doubao) reads max_tokens
// on every model and refuses the two together. A request without a cap is
// left without one.
func (p *OpenAICompatible) capField(req *ChatRequest) {
	if req.MaxTokens == nil && req.MaxCompletionTokens == nil {
		return
	}
	n := req.MaxOutputTokens()
	if p.name() == KindOpenAI {
		req.MaxTokens, req.MaxCompletionTokens = nil, &n
		return
	}
	req.MaxTokens, req.MaxCompletionTokens = &n, nil
}

// upstreamModel is the model id the provider knows.
func upstreamModel(t Target, model string) string {
	if t.Model != "" {
		return t.Model
	}
	return model
}

// openAIStream reads OpenAI's SSE: "data: {chunk}" events, then
// "data: [DONE]".
type openAIStream struct {
	*sseStream
	usage *Usage
}

// Next implements Stream.
func (s *openAIStream) Next() (Chunk, error) {
	for {
		ev, err := s.next()
		if err != nil {
			return Chunk{}, err
		}
		data := bytes.TrimSpace(ev.data)
		switch string(data) {
		case "[DONE]":
			s.end()
			return Chunk{}, io.EOF
		case "":
			continue
		}
		chunk, err := s.decode(data)
		if err != nil {
			return Chunk{}, s.fail(err)
		}
		return chunk, nil
	}
}

// decode reads one data payload: a chunk, or an error some providers send
// in the stream instead of a chunk.
func (s *openAIStream) decode(data []byte) (Chunk, error) {
	var c Chunk
	if err := json.Unmarshal(data, &c); err != nil {
		return Chunk{}, &ProviderError{Provider: s.provider, Type: ErrTypeInvalidResponse,
			Message: "unreadable chunk: " + err.Error(), Retryable: true, Err: err}
	}
	if c.Object == "" && c.ID == "" && len(c.Choices) == 0 && c.Usage == nil {
		pe := &ProviderError{Provider: s.provider, Retryable: true}
		fillFromBody(pe, data)
		if pe.Message == "" {
			pe.Message = "unexpected event in stream"
		}
		return Chunk{}, pe
	}
	c.Raw = bytes.Clone(data)
	if c.Usage != nil {
		s.usage = c.Usage
	}
	return c, nil
}

// Usage implements Stream.
func (s *openAIStream) Usage() *Usage { return s.usage }
