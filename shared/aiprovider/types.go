package aiprovider

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"strings"
	"sync"
)

// Extra holds the JSON members of an object that its Go type does not name,
// so a request or response passes through the bridge without losing fields
// OpenAI (or a compatible provider) added after this package was written.
type Extra map[string]json.RawMessage

// Sampling is the generation parameters chat and legacy completion
// requests share; their members are promoted into both.
type Sampling struct {
	Temperature   *float64       `json:"temperature,omitempty"`
	TopP          *float64       `json:"top_p,omitempty"`
	MaxTokens     *int           `json:"max_tokens,omitempty"`
	Stream        bool           `json:"stream,omitempty"`
	StreamOptions *StreamOptions `json:"stream_options,omitempty"`
	Stop          Strings        `json:"stop,omitzero"`
	User          string         `json:"user,omitempty"`
}

// ChatRequest is OpenAI's POST /chat/completions body. Members it does not
// name (n, seed, logprobs, response_format, ...) are kept in Extra and sent
// on to OpenAI-compatible providers unchanged.
type ChatRequest struct {
	Model    string    `json:"model"`
	Messages []Message `json:"messages"`
	Sampling
	MaxCompletionTokens *int            `json:"max_completion_tokens,omitempty"`
	Tools               json.RawMessage `json:"tools,omitempty"`
	ToolChoice          json.RawMessage `json:"tool_choice,omitempty"`
	Extra               Extra           `json:"-"`
}

// MarshalJSON writes the named members, then Extra's.
func (r ChatRequest) MarshalJSON() ([]byte, error) {
	return marshalExtra(chatRequestFields(r), r.Extra)
}

// UnmarshalJSON reads the named members and keeps the rest in Extra.
func (r *ChatRequest) UnmarshalJSON(b []byte) error {
	return unmarshalExtra(b, (*chatRequestFields)(r), &r.Extra)
}

// MaxOutputTokens is the completion-token cap the request asks for:
// max_completion_tokens or max_tokens, the larger when it gives both (a
// provider may honour either: OpenAI's newer models the first, many
// compatible servers only the second), else 0 (none given).
func (r ChatRequest) MaxOutputTokens() int {
	n := 0
	if r.MaxCompletionTokens != nil {
		n = *r.MaxCompletionTokens
	}
	if r.MaxTokens != nil {
		n = max(n, *r.MaxTokens)
	}
	return n
}

// StreamOptions is a streaming request's stream_options.
type StreamOptions struct {
	IncludeUsage bool `json:"include_usage"`
}

// Message is one chat message. Content is kept as raw JSON because OpenAI
// allows a string or an array of parts; Text reads either.
type Message struct {
	Role       string          `json:"role"`
	Content    Content         `json:"content,omitempty"`
	Name       string          `json:"name,omitempty"`
	ToolCallID string          `json:"tool_call_id,omitempty"`
	ToolCalls  json.RawMessage `json:"tool_calls,omitempty"`
	Extra      Extra           `json:"-"`
}

// MarshalJSON writes the named members, then Extra's.
func (m Message) MarshalJSON() ([]byte, error) { return marshalExtra(messageFields(m), m.Extra) }

// UnmarshalJSON reads the named members and keeps the rest in Extra.
func (m *Message) UnmarshalJSON(b []byte) error {
	return unmarshalExtra(b, (*messageFields)(m), &m.Extra)
}

// Content is a message's content as raw JSON: a string, an array of parts
// ({"type":"text","text":...}, {"type":"image_url",...}), or null.
type Content json.RawMessage

// TextContent is content holding the string s.
func TextContent(s string) Content {
	b, _ := json.Marshal(s) // a string always marshals
	return b
}

// MarshalJSON writes the content as it is (null when empty).
func (c Content) MarshalJSON() ([]byte, error) {
	if len(c) == 0 {
		return []byte("null"), nil
	}
	return c, nil
}

// UnmarshalJSON keeps a copy of the raw content.
func (c *Content) UnmarshalJSON(b []byte) error {
	*c = append((*c)[:0], b...)
	return nil
}

// ContentPart is one element of an array content.
type ContentPart struct {
	Type     string    `json:"type"`
	Text     string    `json:"text,omitempty"`
	ImageURL *ImageURL `json:"image_url,omitempty"`
}

// ImageURL is an image_url part's target: an https or data: URL.
type ImageURL struct {
	URL    string `json:"url"`
	Detail string `json:"detail,omitempty"`
}

// Parts returns the content as parts: a string is one text part, null none.
func (c Content) Parts() ([]ContentPart, error) {
	raw := bytes.TrimSpace(c)
	switch {
	case len(raw) == 0 || string(raw) == "null":
		return nil, nil
	case raw[0] == '"':
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return nil, fmt.Errorf("content string: %w", err)
		}
		return []ContentPart{{Type: "text", Text: s}}, nil
	}
	var parts []ContentPart
	if err := json.Unmarshal(raw, &parts); err != nil {
		return nil, fmt.Errorf("content parts: %w", err)
	}
	return parts, nil
}

// Text is the content's text: the string, or the text parts joined with
// "\n"; "" when the content is not valid.
func (c Content) Text() string {
	parts, err := c.Parts()
	if err != nil {
		return ""
	}
	var texts []string
	for _, p := range parts {
		if p.Type == "text" {
			texts = append(texts, p.Text)
		}
	}
	return strings.Join(texts, "\n")
}

// Strings is a JSON member that is one string or an array of strings (stop,
// prompt, input). It remembers a single string so it is resent as one.
type Strings struct {
	Values []string
	Single bool
}

// OneString is Strings holding s as a single string.
func OneString(s string) Strings { return Strings{Values: []string{s}, Single: true} }

// IsZero reports an absent member, so omitzero leaves it out.
func (s Strings) IsZero() bool { return len(s.Values) == 0 }

// MarshalJSON writes a string when Single, else an array.
func (s Strings) MarshalJSON() ([]byte, error) {
	if s.Single && len(s.Values) == 1 {
		return json.Marshal(s.Values[0])
	}
	if s.Values == nil {
		return []byte("[]"), nil
	}
	return json.Marshal(s.Values)
}

// UnmarshalJSON accepts a string, an array of strings or null.
func (s *Strings) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	switch {
	case string(b) == "null":
		*s = Strings{}
		return nil
	case len(b) > 0 && b[0] == '"':
		var one string
		if err := json.Unmarshal(b, &one); err != nil {
			return err
		}
		*s = OneString(one)
		return nil
	}
	var many []string
	if err := json.Unmarshal(b, &many); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) {
			return te // as is: the decoder adds the member's name to it
		}
		return fmt.Errorf("want a string or an array of strings: %w", err)
	}
	*s = Strings{Values: many}
	return nil
}

// ChatResponse is OpenAI's non-streaming chat completion.
type ChatResponse struct {
	ID                string   `json:"id"`
	Object            string   `json:"object"`
	Created           int64    `json:"created"`
	Model             string   `json:"model"`
	Choices           []Choice `json:"choices"`
	Usage             *Usage   `json:"usage,omitempty"`
	SystemFingerprint string   `json:"system_fingerprint,omitempty"`
	Extra             Extra    `json:"-"`
}

// MarshalJSON writes the named members, then Extra's.
func (r ChatResponse) MarshalJSON() ([]byte, error) {
	return marshalExtra(chatResponseFields(r), r.Extra)
}

// UnmarshalJSON reads the named members and keeps the rest in Extra.
func (r *ChatResponse) UnmarshalJSON(b []byte) error {
	return unmarshalExtra(b, (*chatResponseFields)(r), &r.Extra)
}

// Choice is one alternative of a ChatResponse.
type Choice struct {
	Index        int     `json:"index"`
	Message      Message `json:"message"`
	FinishReason string  `json:"finish_reason"`
}

// Usage is the token count of one call. Details (cached tokens, reasoning
// tokens) are kept in Extra.
type Usage struct {
	PromptTokens     int   `json:"prompt_tokens"`
	CompletionTokens int   `json:"completion_tokens"`
	TotalTokens      int   `json:"total_tokens"`
	Extra            Extra `json:"-"`
}

// MarshalJSON writes the named members, then Extra's.
func (u Usage) MarshalJSON() ([]byte, error) { return marshalExtra(usageFields(u), u.Extra) }

// UnmarshalJSON reads the named members and keeps the rest in Extra.
func (u *Usage) UnmarshalJSON(b []byte) error { return unmarshalExtra(b, (*usageFields)(u), &u.Extra) }

// Chunk is one event of a streamed chat completion
// (object "chat.completion.chunk"). Raw is its OpenAI-format JSON: the
// provider's bytes verbatim for OpenAI-compatible providers, the translation
// for Anthropic; a bridge relays it as "data: "+Raw+"\n\n".
type Chunk struct {
	ID                string        `json:"id"`
	Object            string        `json:"object"`
	Created           int64         `json:"created"`
	Model             string        `json:"model"`
	SystemFingerprint string        `json:"system_fingerprint,omitempty"`
	Choices           []ChunkChoice `json:"choices"`
	Usage             *Usage        `json:"usage,omitempty"`
	Raw               []byte        `json:"-"`
}

// UsageOnly reports the final chunk that carries only usage (no choices),
// which a bridge may drop when its client did not ask for usage.
func (c Chunk) UsageOnly() bool { return len(c.Choices) == 0 && c.Usage != nil }

// ChunkChoice is one alternative's delta in a Chunk.
type ChunkChoice struct {
	Index        int     `json:"index"`
	Delta        Delta   `json:"delta"`
	FinishReason *string `json:"finish_reason"`
}

// Delta is what a chunk adds to a message.
type Delta struct {
	Role      string          `json:"role,omitempty"`
	Content   *string         `json:"content,omitempty"`
	ToolCalls json.RawMessage `json:"tool_calls,omitempty"`
}

// CompletionRequest is the legacy POST /completions body; unnamed members
// are kept in Extra.
type CompletionRequest struct {
	Model  string  `json:"model"`
	Prompt Strings `json:"prompt"`
	Sampling
	Extra Extra `json:"-"`
}

// MarshalJSON writes the named members, then Extra's.
func (r CompletionRequest) MarshalJSON() ([]byte, error) {
	return marshalExtra(completionRequestFields(r), r.Extra)
}

// UnmarshalJSON reads the named members and keeps the rest in Extra.
func (r *CompletionRequest) UnmarshalJSON(b []byte) error {
	return unmarshalExtra(b, (*completionRequestFields)(r), &r.Extra)
}

// CompletionResponse is the legacy text completion (object
// "text_completion").
type CompletionResponse struct {
	ID      string             `json:"id"`
	Object  string             `json:"object"`
	Created int64              `json:"created"`
	Model   string             `json:"model"`
	Choices []CompletionChoice `json:"choices"`
	Usage   *Usage             `json:"usage,omitempty"`
}

// CompletionChoice is one alternative of a CompletionResponse.
type CompletionChoice struct {
	Index        int             `json:"index"`
	Text         string          `json:"text"`
	Logprobs     json.RawMessage `json:"logprobs"`
	FinishReason string          `json:"finish_reason"`
}

// EmbeddingRequest is POST /embeddings' body. Input is one string or an
// array of strings (token-array inputs are refused when decoding); unnamed
// members (dimensions, ...) are kept in Extra.
type EmbeddingRequest struct {
	Model          string  `json:"model"`
	Input          Strings `json:"input"`
	EncodingFormat string  `json:"encoding_format,omitempty"`
	User           string  `json:"user,omitempty"`
	Extra          Extra   `json:"-"`
}

// MarshalJSON writes the named members, then Extra's.
func (r EmbeddingRequest) MarshalJSON() ([]byte, error) {
	return marshalExtra(embeddingRequestFields(r), r.Extra)
}

// UnmarshalJSON reads the named members and keeps the rest in Extra.
func (r *EmbeddingRequest) UnmarshalJSON(b []byte) error {
	return unmarshalExtra(b, (*embeddingRequestFields)(r), &r.Extra)
}

// EmbeddingResponse is OpenAI's embeddings list.
type EmbeddingResponse struct {
	Object string      `json:"object"`
	Data   []Embedding `json:"data"`
	Model  string      `json:"model"`
	Usage  *Usage      `json:"usage,omitempty"`
}

// Embedding is one input's vector: a JSON array of floats, or a base64
// string when the request asked for encoding_format "base64"; kept raw so
// either passes through unchanged.
type Embedding struct {
	Object    string          `json:"object"`
	Index     int             `json:"index"`
	Embedding json.RawMessage `json:"embedding"`
}

// ErrorResponse is OpenAI's error body, {"error":{...}}.
type ErrorResponse struct {
	Error ErrorDetail `json:"error"`
}

// ErrorDetail is the inside of an ErrorResponse; Param and Code are null
// when absent.
type ErrorDetail struct {
	Message string  `json:"message"`
	Type    string  `json:"type"`
	Param   *string `json:"param"`
	Code    *string `json:"code"`
}

// The types with Extra, without their JSON methods, so marshalExtra and
// unmarshalExtra can use encoding/json's default behaviour on them.
type (
	chatRequestFields       ChatRequest
	messageFields           Message
	chatResponseFields      ChatResponse
	usageFields             Usage
	completionRequestFields CompletionRequest
	embeddingRequestFields  EmbeddingRequest
)

// marshalExtra marshals v (a struct without MarshalJSON of its own) and
// appends the members of extra that v does not name, in key order.
func marshalExtra(v any, extra Extra) ([]byte, error) {
	b, err := json.Marshal(v)
	if err != nil || len(extra) == 0 {
		return b, err
	}
	known := jsonNames(reflect.TypeOf(v))
	keys := make([]string, 0, len(extra))
	for k := range extra {
		if !known[k] {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	out := bytes.NewBuffer(b[:len(b)-1]) // drop the closing brace
	for _, k := range keys {
		if out.Len() > 1 {
			out.WriteByte(',')
		}
		name, _ := json.Marshal(k)
		out.Write(name)
		out.WriteByte(':')
		if len(extra[k]) == 0 {
			out.WriteString("null")
		} else {
			out.Write(extra[k])
		}
	}
	out.WriteByte('}')
	return out.Bytes(), nil
}

// unmarshalExtra decodes b into v (a pointer to a struct without
// UnmarshalJSON of its own) and the members v does not name into *extra.
func unmarshalExtra(b []byte, v any, extra *Extra) error {
	if err := json.Unmarshal(b, v); err != nil {
		return memberPath(err, reflect.TypeOf(v).Elem())
	}
	var all map[string]json.RawMessage
	if err := json.Unmarshal(b, &all); err != nil {
		return err
	}
	known := jsonNames(reflect.TypeOf(v).Elem())
	var rest Extra
	for k, raw := range all {
		if !known[k] {
			if rest == nil {
				rest = Extra{}
			}
			rest[k] = raw
		}
	}
	*extra = rest
	return nil
}

// Shadow returns a member of e that differs only in case (as
// encoding/json folds it) from a member the struct type of v names, and
// that name; "" when none does. Such a member is read twice: here as the
// named one, and again by a provider that decodes the same way, where it
// overrides what the bridge checked and set.
func (e Extra) Shadow(v any) (member, named string) {
	if len(e) == 0 {
		return "", ""
	}
	known := jsonNames(reflect.TypeOf(v))
	for _, k := range slices.Sorted(maps.Keys(e)) {
		for n := range known {
			if strings.EqualFold(k, n) {
				return k, n
			}
		}
	}
	return "", ""
}

// memberPath makes a type error of decoding into struct type t name the
// member as the client wrote it: encoding/json puts the Go names of
// embedded structs in the path ("Sampling.max_tokens"), which no request
// has.
func memberPath(err error, t reflect.Type) error {
	var te *json.UnmarshalTypeError
	if !errors.As(err, &te) || te.Field == "" {
		return err
	}
	embedded := embeddedNames(t)
	path := strings.Split(te.Field, ".")
	kept := path[:0]
	for _, p := range path {
		if !embedded[p] {
			kept = append(kept, p)
		}
	}
	te.Field = strings.Join(kept, ".")
	return err
}

// embeddedNames is the Go names of the structs t embeds without a JSON
// name, whose members encoding/json promotes.
func embeddedNames(t reflect.Type) map[string]bool {
	names := map[string]bool{}
	for f := range t.Fields() {
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if f.Anonymous && f.Type.Kind() == reflect.Struct && name == "" {
			names[f.Name] = true
			maps.Copy(names, embeddedNames(f.Type))
		}
	}
	return names
}

var jsonNameCache sync.Map // reflect.Type -> map[string]bool

// jsonNames is the set of member names encoding/json uses for struct type t.
func jsonNames(t reflect.Type) map[string]bool {
	if names, ok := jsonNameCache.Load(t); ok {
		return names.(map[string]bool)
	}
	names := map[string]bool{}
	for f := range t.Fields() {
		tag := f.Tag.Get("json")
		if tag == "-" || !f.IsExported() {
			continue
		}
		name, _, _ := strings.Cut(tag, ",")
		if name == "" && f.Anonymous && f.Type.Kind() == reflect.Struct {
			maps.Copy(names, jsonNames(f.Type)) // promoted members
			continue
		}
		if name == "" {
			name = f.Name
		}
		names[name] = true
	}
	jsonNameCache.Store(t, names)
	return names
}
