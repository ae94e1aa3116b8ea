package fakeprovider

import (
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"testing"
)

// NewAnthropic starts a fake Anthropic Messages API; BaseURL is the
// server's root (requests go to /v1/messages). It checks x-api-key and
// anthropic-version, and refuses what Anthropic refuses: no max_tokens,
// a role other than user or assistant. It is closed when tb's test ends.
func NewAnthropic(tb testing.TB, opts Options) *Server {
	tb.Helper()
	return newServer(tb, opts, anthropic{}, "")
}

// AnthropicRequest is the part of a Messages API request the fake reads;
// tests decode a recorded Request.Body with it to check a translation.
type AnthropicRequest struct {
	Model         string             `json:"model"`
	System        json.RawMessage    `json:"system"`
	Messages      []AnthropicMessage `json:"messages"`
	MaxTokens     int                `json:"max_tokens"`
	Temperature   *float64           `json:"temperature"`
	StopSequences []string           `json:"stop_sequences"`
	Stream        bool               `json:"stream"`
}

// AnthropicMessage is one message of an AnthropicRequest.
type AnthropicMessage struct {
	Role    string          `json:"role"`
	Content json.RawMessage `json:"content"`
}

// SystemText is the system prompt, given as a string or text blocks.
func (r AnthropicRequest) SystemText() string { return blocksText(r.System) }

// Text is the message's text, given as a string or text blocks.
func (m AnthropicMessage) Text() string { return blocksText(m.Content) }

func blocksText(raw json.RawMessage) string {
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s
	}
	var blocks []struct{ Type, Text string }
	_ = json.Unmarshal(raw, &blocks)
	var texts []string
	for _, b := range blocks {
		if b.Type == "text" {
			texts = append(texts, b.Text)
		}
	}
	return strings.Join(texts, "\n")
}

// anthropic is Anthropic's wire protocol.
type anthropic struct{}

func (anthropic) authorized(r *http.Request, key string) bool {
	return r.Header.Get("X-Api-Key") == key
}

// writeError writes Anthropic's error body with the type Anthropic uses
// for the status.
func (anthropic) writeError(w http.ResponseWriter, status int, message string) {
	typ := map[int]string{
		400: "invalid_request_error", 401: "authentication_error", 403: "permission_error",
		404: "not_found_error", 413: "request_too_large", 429: "rate_limit_error",
		500: "api_error", 529: "overloaded_error",
	}[status]
	if typ == "" {
		typ = "api_error"
		if status < 500 {
			typ = "invalid_request_error"
		}
	}
	writeJSON(w, status, map[string]any{
		"type":  "error",
		"error": map[string]string{"type": typ, "message": message},
	})
}

func (anthropic) routes(s *Server, mux *http.ServeMux) {
	mux.HandleFunc("POST /v1/messages", s.handle(s.anthropicMessages))
}

func (s *Server) anthropicMessages(w http.ResponseWriter, c *call) {
	p := anthropic{}
	if c.r.Header.Get("Anthropic-Version") == "" {
		p.writeError(w, http.StatusBadRequest, "anthropic-version: header is required")
		return
	}
	var req AnthropicRequest
	if !c.decode(w, p, &req) {
		return
	}
	if req.MaxTokens <= 0 {
		p.writeError(w, http.StatusBadRequest, "max_tokens: Field required")
		return
	}
	if len(req.Messages) == 0 {
		p.writeError(w, http.StatusBadRequest, "messages: at least one message is required")
		return
	}
	prompt := []string{req.SystemText()}
	for i, m := range req.Messages {
		if m.Role != "user" && m.Role != "assistant" {
			p.writeError(w, http.StatusBadRequest, "messages."+strconv.Itoa(i)+".role: Input should be 'user' or 'assistant'")
			return
		}
		prompt = append(prompt, m.Text())
	}
	in, out := c.usage(strings.Join(prompt, " "))
	stop := c.model.StopReason
	if stop == "" {
		stop = "end_turn"
	}
	id := s.id("msg_fake")
	message := map[string]any{
		"id": id, "type": "message", "role": "assistant", "model": c.name,
		"content":     []map[string]any{{"type": "text", "text": c.reply()}},
		"stop_reason": stop, "stop_sequence": nil,
		"usage": map[string]int{"input_tokens": in, "output_tokens": out},
	}
	if !req.Stream {
		writeJSON(w, http.StatusOK, message)
		return
	}
	message["content"], message["stop_reason"] = []any{}, nil
	message["usage"] = map[string]int{"input_tokens": in, "output_tokens": 1}
	st := s.startStream(w, c)
	st.event("message_start", map[string]any{"type": "message_start", "message": message})
	st.event("content_block_start", map[string]any{"type": "content_block_start", "index": 0,
		"content_block": map[string]any{"type": "text", "text": ""}})
	st.event("ping", map[string]any{"type": "ping"})
	for i, piece := range c.pieces() {
		if !st.pace(i) {
			return
		}
		st.event("content_block_delta", map[string]any{"type": "content_block_delta", "index": 0,
			"delta": map[string]any{"type": "text_delta", "text": piece}})
	}
	st.event("content_block_stop", map[string]any{"type": "content_block_stop", "index": 0})
	st.event("message_delta", map[string]any{"type": "message_delta",
		"delta": map[string]any{"stop_reason": stop, "stop_sequence": nil},
		"usage": map[string]int{"output_tokens": out}})
	st.event("message_stop", map[string]any{"type": "message_stop"})
}
