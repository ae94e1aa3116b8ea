package aiprovider

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"time"
)

// AnthropicVersion is the anthropic-version header sent with every call.
const AnthropicVersion = "2023-06-01"

// DefaultAnthropicMaxTokens is max_tokens when a request sets none:
// Anthropic requires one, OpenAI does not.
const DefaultAnthropicMaxTokens = 1024

// Anthropic speaks Anthropic's Messages API (POST {base}/v1/messages with
// x-api-key), translating OpenAI's chat shapes to it and back, streams
// included. System (and developer) messages become the top-level system
// prompt, stop becomes stop_sequences, user becomes metadata.user_id and
// temperature is capped at 1, Anthropic's maximum. Text and image parts
// are translated; tools, tool messages and members Anthropic has no
// equivalent for (n, seed, response_format, logprobs, ... in Extra) are
// not: tools are refused with ErrUnsupported, the rest is dropped.
type Anthropic struct {
	// Client sends the requests; nil is http.DefaultClient. It must have no
	// Timeout of its own (it would cut long streams).
	Client *http.Client
	// DefaultMaxTokens replaces DefaultAnthropicMaxTokens when > 0.
	DefaultMaxTokens int
	// Now stamps translated answers' created; nil is time.Now.
	Now func() time.Time
}

var _ Provider = (*Anthropic)(nil)

func (p *Anthropic) exchange(t Target) exchange {
	auth := http.Header{}
	auth.Set("x-api-key", t.APIKey)
	auth.Set("anthropic-version", AnthropicVersion)
	return newExchange(p.Client, KindAnthropic, DefaultBaseURL(KindAnthropic), t, "/v1/messages", auth)
}

func (p *Anthropic) now() int64 {
	if p.Now != nil {
		return p.Now().Unix()
	}
	return time.Now().Unix()
}

// anthropicRequest is the Messages API's request body.
type anthropicRequest struct {
	Model         string             `json:"model"`
	System        string             `json:"system,omitempty"`
	Messages      []anthropicMessage `json:"messages"`
	MaxTokens     int                `json:"max_tokens"`
	Temperature   *float64           `json:"temperature,omitempty"`
	TopP          *float64           `json:"top_p,omitempty"`
	StopSequences []string           `json:"stop_sequences,omitempty"`
	Stream        bool               `json:"stream,omitempty"`
	Metadata      *anthropicMetadata `json:"metadata,omitempty"`
}

type anthropicMetadata struct {
	UserID string `json:"user_id"`
}

type anthropicMessage struct {
	Role    string           `json:"role"`
	Content []anthropicBlock `json:"content"`
}

// anthropicBlock is a content block: text or image (requests), text or
// others (answers, where only text is read).
type anthropicBlock struct {
	Type   string                `json:"type"`
	Text   string                `json:"text,omitempty"`
	Source *anthropicImageSource `json:"source,omitempty"`
}

type anthropicImageSource struct {
	Type      string `json:"type"` // "base64" or "url"
	MediaType string `json:"media_type,omitempty"`
	Data      string `json:"data,omitempty"`
	URL       string `json:"url,omitempty"`
}

// anthropicResponse is the Messages API's answer (and message_start's
// message).
type anthropicResponse struct {
	ID         string           `json:"id"`
	Model      string           `json:"model"`
	Content    []anthropicBlock `json:"content"`
	StopReason string           `json:"stop_reason"`
	Usage      anthropicUsage   `json:"usage"`
}

type anthropicUsage struct {
	InputTokens              int `json:"input_tokens"`
	OutputTokens             int `json:"output_tokens"`
	CacheCreationInputTokens int `json:"cache_creation_input_tokens"`
	CacheReadInputTokens     int `json:"cache_read_input_tokens"`
}

// prompt is every input token, cached or not: all of them are billed.
func (u anthropicUsage) prompt() int {
	return u.InputTokens + u.CacheCreationInputTokens + u.CacheReadInputTokens
}

// toAnthropic translates an OpenAI chat request.
func (p *Anthropic) toAnthropic(t Target, req ChatRequest) (anthropicRequest, error) {
	if len(req.Tools) > 0 && string(req.Tools) != "null" {
		return anthropicRequest{}, fmt.Errorf("anthropic: tools: %w", ErrUnsupported)
	}
	out := anthropicRequest{
		Model:         upstreamModel(t, req.Model),
		MaxTokens:     req.MaxOutputTokens(),
		Temperature:   req.Temperature,
		TopP:          req.TopP,
		StopSequences: req.Stop.Values,
	}
	if out.MaxTokens <= 0 {
		out.MaxTokens = p.DefaultMaxTokens
		if out.MaxTokens <= 0 {
			out.MaxTokens = DefaultAnthropicMaxTokens
		}
	}
	if out.Temperature != nil && *out.Temperature > 1 {
		one := 1.0
		out.Temperature = &one
	}
	if req.User != "" {
		out.Metadata = &anthropicMetadata{UserID: req.User}
	}
	var system []string
	for i, m := range req.Messages {
		switch m.Role {
		case "system", "developer":
			system = append(system, m.Content.Text())
			continue
		case "user", "assistant":
		default:
			return anthropicRequest{}, fmt.Errorf("anthropic: message %d: role %q: %w", i, m.Role, ErrUnsupported)
		}
		blocks, err := anthropicBlocks(m.Content)
		if err != nil {
			return anthropicRequest{}, fmt.Errorf("anthropic: message %d: %w", i, err)
		}
		// Anthropic wants turns to alternate: consecutive messages of one
		// role become one message.
		if n := len(out.Messages); n > 0 && out.Messages[n-1].Role == m.Role {
			out.Messages[n-1].Content = append(out.Messages[n-1].Content, blocks...)
			continue
		}
		out.Messages = append(out.Messages, anthropicMessage{Role: m.Role, Content: blocks})
	}
	out.System = strings.Join(system, "\n\n")
	return out, nil
}

// anthropicBlocks translates a message's content.
func anthropicBlocks(c Content) ([]anthropicBlock, error) {
	parts, err := c.Parts()
	if err != nil {
		return nil, err
	}
	blocks := make([]anthropicBlock, 0, len(parts))
	for _, part := range parts {
		switch {
		case part.Type == "text":
			blocks = append(blocks, anthropicBlock{Type: "text", Text: part.Text})
		case part.Type == "image_url" && part.ImageURL != nil:
			blocks = append(blocks, anthropicBlock{Type: "image", Source: imageSource(part.ImageURL.URL)})
		default:
			return nil, fmt.Errorf("content part %q: %w", part.Type, ErrUnsupported)
		}
	}
	return blocks, nil
}

// imageSource turns an image URL (data: or http(s)) into Anthropic's.
func imageSource(u string) *anthropicImageSource {
	if rest, ok := strings.CutPrefix(u, "data:"); ok {
		meta, data, _ := strings.Cut(rest, ",")
		return &anthropicImageSource{Type: "base64", MediaType: strings.TrimSuffix(meta, ";base64"), Data: data}
	}
	return &anthropicImageSource{Type: "url", URL: u}
}

// finishReason maps Anthropic's stop_reason to OpenAI's finish_reason.
func finishReason(stop string) string {
	switch stop {
	case "max_tokens", "model_context_window_exceeded":
		return "length"
	case "tool_use":
		return "tool_calls"
	case "refusal":
		return "content_filter"
	}
	return "stop" // end_turn, stop_sequence, pause_turn
}

func openAIUsage(u anthropicUsage) *Usage {
	in := u.prompt()
	return &Usage{PromptTokens: in, CompletionTokens: u.OutputTokens, TotalTokens: in + u.OutputTokens}
}

// Chat implements Provider.
func (p *Anthropic) Chat(ctx context.Context, t Target, req ChatRequest) (*ChatResponse, error) {
	body, err := p.toAnthropic(t, req)
	if err != nil {
		return nil, err
	}
	var out anthropicResponse
	if err := p.exchange(t).call(ctx, t.Timeout, body, &out); err != nil {
		return nil, err
	}
	var text strings.Builder
	for _, b := range out.Content {
		if b.Type == "text" {
			text.WriteString(b.Text)
		}
	}
	return &ChatResponse{
		ID:      out.ID,
		Object:  "chat.completion",
		Created: p.now(),
		Model:   out.Model,
		Choices: []Choice{{
			Message:      Message{Role: "assistant", Content: TextContent(text.String())},
			FinishReason: finishReason(out.StopReason),
		}},
		Usage: openAIUsage(out.Usage),
	}, nil
}

// Complete implements Provider by sending the prompt as one user message.
func (p *Anthropic) Complete(ctx context.Context, t Target, req CompletionRequest) (*CompletionResponse, error) {
	if len(req.Prompt.Values) > 1 {
		return nil, fmt.Errorf("anthropic: several prompts in one completion: %w", ErrUnsupported)
	}
	chat := ChatRequest{
		Model:    req.Model,
		Messages: []Message{{Role: "user", Content: TextContent(strings.Join(req.Prompt.Values, ""))}},
		Sampling: req.Sampling,
	}
	resp, err := p.Chat(ctx, t, chat)
	if err != nil {
		return nil, err
	}
	c := resp.Choices[0]
	return &CompletionResponse{
		ID:      resp.ID,
		Object:  "text_completion",
		Created: resp.Created,
		Model:   resp.Model,
		Choices: []CompletionChoice{{Text: c.Message.Content.Text(), Logprobs: json.RawMessage("null"), FinishReason: c.FinishReason}},
		Usage:   resp.Usage,
	}, nil
}

// Embed implements Provider: Anthropic has no embeddings API.
func (p *Anthropic) Embed(context.Context, Target, EmbeddingRequest) (*EmbeddingResponse, error) {
	return nil, fmt.Errorf("embeddings are not supported by anthropic: %w", ErrUnsupported)
}

// ChatStream implements Provider, translating Anthropic's events into
// OpenAI chunks: a first chunk with the assistant role, one per text
// delta, one with the finish reason, and a usage-only chunk last.
func (p *Anthropic) ChatStream(ctx context.Context, t Target, req ChatRequest) (Stream, error) {
	body, err := p.toAnthropic(t, req)
	if err != nil {
		return nil, err
	}
	body.Stream = true
	s, err := p.exchange(t).openStream(ctx, t.IdleTimeout, body)
	if err != nil {
		return nil, err
	}
	return &anthropicStream{sseStream: s, created: p.now()}, nil
}

// anthropicStream translates the Messages API's SSE events.
type anthropicStream struct {
	*sseStream
	created int64
	id      string
	model   string
	usage   anthropicUsage
	started bool
	stopped bool // message_stop seen: the usage chunk is next, then io.EOF
}

// anthropicEvent is the union of the stream's event payloads this package
// reads.
type anthropicEvent struct {
	Type    string            `json:"type"`
	Message anthropicResponse `json:"message"`
	Delta   struct {
		Type       string `json:"type"`
		Text       string `json:"text"`
		StopReason string `json:"stop_reason"`
	} `json:"delta"`
	Usage *anthropicUsage `json:"usage"`
	Error json.RawMessage `json:"error"`
}

// Next implements Stream.
func (s *anthropicStream) Next() (Chunk, error) {
	for {
		if s.stopped && s.err == nil {
			s.end()
			return s.chunk(nil, s.Usage())
		}
		ev, err := s.next()
		if err != nil {
			return Chunk{}, err
		}
		chunk, ok, err := s.translate(ev)
		if err != nil {
			return Chunk{}, s.fail(err)
		}
		if ok {
			return chunk, nil
		}
	}
}

// translate turns one event into a chunk (ok false: none to send).
func (s *anthropicStream) translate(ev sseEvent) (Chunk, bool, error) {
	var e anthropicEvent
	if err := json.Unmarshal(ev.data, &e); err != nil {
		return Chunk{}, false, &ProviderError{Provider: KindAnthropic, Type: ErrTypeInvalidResponse,
			Message: "unreadable event: " + err.Error(), Retryable: true, Err: err}
	}
	switch e.Type {
	case "message_start":
		s.id, s.model, s.usage, s.started = e.Message.ID, e.Message.Model, e.Message.Usage, true
		c, err := s.chunk(&Delta{Role: "assistant", Content: new("")}, nil)
		return c, true, err
	case "content_block_delta":
		if e.Delta.Type != "text_delta" {
			return Chunk{}, false, nil
		}
		c, err := s.chunk(&Delta{Content: &e.Delta.Text}, nil)
		return c, true, err
	case "message_delta":
		s.mergeUsage(e.Usage)
		if e.Delta.StopReason == "" {
			return Chunk{}, false, nil
		}
		c, err := s.chunk(&Delta{}, nil, finishReason(e.Delta.StopReason))
		return c, true, err
	case "message_stop":
		s.stopped = true
		return Chunk{}, false, nil
	case "error":
		pe := &ProviderError{Provider: KindAnthropic}
		fillFromBody(pe, ev.data)
		pe.Retryable = pe.Type == "overloaded_error" || pe.Type == "api_error" || pe.Type == "rate_limit_error"
		return Chunk{}, false, pe
	}
	return Chunk{}, false, nil // ping, content_block_start/stop, future events
}

// mergeUsage takes message_delta's counts, which are cumulative.
func (s *anthropicStream) mergeUsage(u *anthropicUsage) {
	if u == nil {
		return
	}
	if u.InputTokens > 0 {
		s.usage.InputTokens = u.InputTokens
	}
	if u.CacheCreationInputTokens > 0 {
		s.usage.CacheCreationInputTokens = u.CacheCreationInputTokens
	}
	if u.CacheReadInputTokens > 0 {
		s.usage.CacheReadInputTokens = u.CacheReadInputTokens
	}
	s.usage.OutputTokens = max(s.usage.OutputTokens, u.OutputTokens)
}

// chunk builds an OpenAI chunk with its Raw bytes: one choice with delta
// (and the finish reason, if given), or none with usage.
func (s *anthropicStream) chunk(delta *Delta, usage *Usage, finish ...string) (Chunk, error) {
	c := Chunk{ID: s.id, Object: "chat.completion.chunk", Created: s.created, Model: s.model, Usage: usage, Choices: []ChunkChoice{}}
	if delta != nil {
		choice := ChunkChoice{Delta: *delta}
		if len(finish) > 0 {
			choice.FinishReason = &finish[0]
		}
		c.Choices = append(c.Choices, choice)
	}
	raw, err := json.Marshal(c)
	if err != nil {
		return Chunk{}, fmt.Errorf("anthropic: encode chunk: %w", err)
	}
	c.Raw = raw
	return c, nil
}

// Usage implements Stream.
func (s *anthropicStream) Usage() *Usage {
	if !s.started {
		return nil
	}
	return openAIUsage(s.usage)
}
