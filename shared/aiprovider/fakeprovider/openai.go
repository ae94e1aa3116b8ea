package fakeprovider

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"math"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/unitenant/unitenant/shared/aiprovider"
)

// NewOpenAI starts a fake OpenAI-compatible provider; BaseURL ends in /v1.
// It is closed when tb's test ends.
func NewOpenAI(tb testing.TB, opts Options) *Server {
	tb.Helper()
	return newServer(tb, opts, openAI{}, "/v1")
}

// ListenOpenAI serves a fake OpenAI-compatible provider on l until Stop,
// outside any test: the local AI provider of `make dev`.
func ListenOpenAI(l net.Listener, opts Options) *Server {
	return build(opts, openAI{}, "/v1", l)
}

// openAI is OpenAI's wire protocol.
type openAI struct{}

func (openAI) authorized(r *http.Request, key string) bool {
	return r.Header.Get("Authorization") == "Bearer "+key
}

// writeError writes OpenAI's error body with the type and code OpenAI
// uses for the status.
func (openAI) writeError(w http.ResponseWriter, status int, message string) {
	typ, code := "invalid_request_error", ""
	switch {
	case status == http.StatusUnauthorized:
		code, message = "invalid_api_key", "Incorrect API key provided."
	case status == http.StatusTooManyRequests:
		typ, code = "requests", "rate_limit_exceeded"
	case status >= 500:
		typ = "server_error"
	}
	detail := aiprovider.ErrorDetail{Message: message, Type: typ}
	if code != "" {
		detail.Code = &code
	}
	writeJSON(w, status, aiprovider.ErrorResponse{Error: detail})
}

func (openAI) routes(s *Server, mux *http.ServeMux) {
	mux.HandleFunc("POST /v1/chat/completions", s.handle(s.openAIChat))
	mux.HandleFunc("POST /v1/completions", s.handle(s.openAICompletion))
	mux.HandleFunc("POST /v1/embeddings", s.handle(s.openAIEmbeddings))
	mux.HandleFunc("GET /v1/models", func(w http.ResponseWriter, r *http.Request) {
		if !(openAI{}).authorized(r, s.APIKey) {
			openAI{}.writeError(w, http.StatusUnauthorized, "")
			return
		}
		s.mu.Lock()
		data := []map[string]any{}
		for name := range s.models {
			data = append(data, map[string]any{"id": name, "object": "model", "created": 0, "owned_by": "fake"})
		}
		s.mu.Unlock()
		writeJSON(w, http.StatusOK, map[string]any{"object": "list", "data": data})
	})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// decode reads the call's body into v, answering 400 as OpenAI does when
// it cannot or the model is missing.
func (c *call) decode(w http.ResponseWriter, p protocol, v any) bool {
	if err := json.Unmarshal(c.body, v); err != nil {
		p.writeError(w, http.StatusBadRequest, "invalid JSON body: "+err.Error())
		return false
	}
	if c.name == "" {
		p.writeError(w, http.StatusBadRequest, "model: field required")
		return false
	}
	return true
}

func (s *Server) openAIChat(w http.ResponseWriter, c *call) {
	var req aiprovider.ChatRequest
	if !c.decode(w, openAI{}, &req) {
		return
	}
	if len(req.Messages) == 0 {
		openAI{}.writeError(w, http.StatusBadRequest, "messages: must not be empty")
		return
	}
	limit, refusal := chatCap(s.kind, c.name, req)
	if refusal != "" {
		openAI{}.writeError(w, http.StatusBadRequest, refusal)
		return
	}
	var prompt []string
	for _, m := range req.Messages {
		prompt = append(prompt, m.Content.Text())
	}
	in, out := c.usage(strings.Join(prompt, " "))
	finish := c.model.StopReason
	if finish == "" {
		finish = "stop"
	}
	if limit > 0 && out > limit {
		out, finish = limit, "length"
	}
	usage := map[string]int{"prompt_tokens": in, "completion_tokens": out, "total_tokens": in + out}
	id, created := s.id("chatcmpl-fake"), time.Now().Unix()
	if !req.Stream {
		writeJSON(w, http.StatusOK, map[string]any{
			"id": id, "object": "chat.completion", "created": created, "model": c.name,
			"system_fingerprint": "fp_fake",
			"choices": []map[string]any{{
				"index":         0,
				"message":       map[string]any{"role": "assistant", "content": c.reply(), "refusal": nil},
				"logprobs":      nil,
				"finish_reason": finish,
			}},
			"usage": usage,
		})
		return
	}
	withUsage := req.StreamOptions != nil && req.StreamOptions.IncludeUsage
	chunk := func(delta map[string]any, finish any) map[string]any {
		ch := map[string]any{
			"id": id, "object": "chat.completion.chunk", "created": created, "model": c.name,
			"system_fingerprint": "fp_fake",
			"choices":            []map[string]any{{"index": 0, "delta": delta, "logprobs": nil, "finish_reason": finish}},
		}
		if withUsage {
			ch["usage"] = nil
		}
		return ch
	}
	st := s.startStream(w, c)
	st.event("", chunk(map[string]any{"role": "assistant", "content": "", "refusal": nil}, nil))
	for i, piece := range c.pieces() {
		if !st.pace(i) {
			return
		}
		st.event("", chunk(map[string]any{"content": piece}, nil))
	}
	st.event("", chunk(map[string]any{}, finish))
	if withUsage {
		st.event("", map[string]any{
			"id": id, "object": "chat.completion.chunk", "created": created, "model": c.name,
			"system_fingerprint": "fp_fake", "choices": []any{}, "usage": usage,
		})
	}
	st.event("", "[DONE]")
}

func (s *Server) openAICompletion(w http.ResponseWriter, c *call) {
	var req aiprovider.CompletionRequest
	if !c.decode(w, openAI{}, &req) {
		return
	}
	if req.Stream {
		openAI{}.writeError(w, http.StatusBadRequest, "stream: not supported by the fake")
		return
	}
	in, out := c.usage(strings.Join(req.Prompt.Values, " "))
	finish := c.model.StopReason
	if finish == "" {
		finish = "stop"
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"id": s.id("cmpl-fake"), "object": "text_completion", "created": time.Now().Unix(), "model": c.name,
		"choices": []map[string]any{{"index": 0, "text": c.reply(), "logprobs": nil, "finish_reason": finish}},
		"usage":   map[string]int{"prompt_tokens": in, "completion_tokens": out, "total_tokens": in + out},
	})
}

func (s *Server) openAIEmbeddings(w http.ResponseWriter, c *call) {
	var req aiprovider.EmbeddingRequest
	if !c.decode(w, openAI{}, &req) {
		return
	}
	if len(req.Input.Values) == 0 {
		openAI{}.writeError(w, http.StatusBadRequest, "input: must not be empty")
		return
	}
	data := make([]map[string]any, len(req.Input.Values))
	words := 0
	for i, text := range req.Input.Values {
		words += max(1, len(strings.Fields(text)))
		v := vector(text, c.model.Dimensions)
		var emb any = v
		if req.EncodingFormat == "base64" {
			var buf bytes.Buffer
			for _, f := range v {
				_ = binary.Write(&buf, binary.LittleEndian, math.Float32bits(f))
			}
			emb = base64.StdEncoding.EncodeToString(buf.Bytes())
		}
		data[i] = map[string]any{"object": "embedding", "index": i, "embedding": emb}
	}
	in := c.model.PromptTokens
	if in == 0 {
		in = words
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"object": "list", "data": data, "model": c.name,
		"usage": map[string]int{"prompt_tokens": in, "total_tokens": in},
	})
}

// chatCap is the completion cap a provider of kind reads from req (0:
// none), or the message it refuses req with (see Options.Kind).
func chatCap(kind, model string, req aiprovider.ChatRequest) (int, string) {
	val := func(p *int) int {
		if p == nil {
			return 0
		}
		return *p
	}
	switch kind {
	case "":
		return 0, ""
	case aiprovider.KindOpenAI:
		reasoning := len(model) > 1 && model[0] == 'o' && '1' <= model[1] && model[1] <= '9' || strings.HasPrefix(model, "gpt-5")
		if req.MaxTokens != nil && reasoning {
			return 0, "Unsupported parameter: 'max_tokens' is not supported with this model. Use 'max_completion_tokens' instead."
		}
		if req.MaxCompletionTokens != nil {
			return val(req.MaxCompletionTokens), ""
		}
		return val(req.MaxTokens), ""
	case aiprovider.KindDoubao:
		if req.MaxTokens != nil && req.MaxCompletionTokens != nil {
			return 0, "max_tokens and max_completion_tokens cannot be set at the same time"
		}
	}
	return val(req.MaxTokens), "" // deepseek, qwen, local, doubao: max_tokens only
}
