package aiprovider_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/unitenant/unitenant/shared/aiprovider"
	"github.com/unitenant/unitenant/shared/aiprovider/fakeprovider"
)

func userChat(text string) aiprovider.ChatRequest {
	return aiprovider.ChatRequest{
		Model:    "bridge-name",
		Messages: []aiprovider.Message{{Role: "user", Content: aiprovider.TextContent(text)}},
	}
}

// drain reads a stream to its end and returns its chunks.
func drain(t *testing.T, s aiprovider.Stream) []aiprovider.Chunk {
	t.Helper()
	var chunks []aiprovider.Chunk
	for {
		c, err := s.Next()
		if errors.Is(err, io.EOF) {
			return chunks
		}
		if err != nil {
			t.Fatalf("Next after %d chunks: %v", len(chunks), err)
		}
		chunks = append(chunks, c)
	}
}

// text joins the content deltas of chunks.
func text(chunks []aiprovider.Chunk) string {
	var b strings.Builder
	for _, c := range chunks {
		for _, ch := range c.Choices {
			if ch.Delta.Content != nil {
				b.WriteString(*ch.Delta.Content)
			}
		}
	}
	return b.String()
}

// assertStreamEnd checks a drained stream: one finish reason, finish; a
// last, usage-only chunk with usage; Usage() the same.
func assertStreamEnd(t *testing.T, s aiprovider.Stream, chunks []aiprovider.Chunk, finish string, usage *aiprovider.Usage) {
	t.Helper()
	var finishes []string
	for _, c := range chunks {
		for _, ch := range c.Choices {
			if ch.FinishReason != nil {
				finishes = append(finishes, *ch.FinishReason)
			}
		}
	}
	if diff := cmp.Diff([]string{finish}, finishes); diff != "" {
		t.Errorf("finish reasons (-want +got):\n%s", diff)
	}
	last := chunks[len(chunks)-1]
	if !last.UsageOnly() {
		t.Errorf("last chunk is not usage-only: %s", last.Raw)
	}
	if diff := cmp.Diff(usage, last.Usage); diff != "" {
		t.Errorf("last chunk usage (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(usage, s.Usage()); diff != "" {
		t.Errorf("Usage() (-want +got):\n%s", diff)
	}
}

func asProviderError(t *testing.T, err error) *aiprovider.ProviderError {
	t.Helper()
	var pe *aiprovider.ProviderError
	if !errors.As(err, &pe) {
		t.Fatalf("err = %v (%T), want a *ProviderError", err, err)
	}
	return pe
}

func TestOpenAIChat(t *testing.T) {
	t.Parallel()
	fake := fakeprovider.NewOpenAI(t, fakeprovider.Options{Default: fakeprovider.Model{
		Reply: "Hi there, friend.", PromptTokens: 11, CompletionTokens: 4,
	}})
	var req aiprovider.ChatRequest
	body := `{"model":"bridge-name","messages":[{"role":"system","content":"Be brief."},` +
		`{"role":"user","content":[{"type":"text","text":"Hello"}]}],"seed":7,"response_format":{"type":"text"},"max_tokens":20}`
	if err := json.Unmarshal([]byte(body), &req); err != nil {
		t.Fatal(err)
	}
	target := fake.Target("gpt-4o-mini")
	target.ExtraHeaders = map[string]string{"OpenAI-Organization": "org-1"}
	resp, err := (&aiprovider.OpenAICompatible{Kind: "deepseek"}).Chat(context.Background(), target, req)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := resp.Choices[0].Message.Content.Text(), "Hi there, friend."; got != want {
		t.Errorf("reply = %q, want %q", got, want)
	}
	if got, want := resp.Choices[0].FinishReason, "stop"; got != want {
		t.Errorf("finish_reason = %q, want %q", got, want)
	}
	if diff := cmp.Diff(&aiprovider.Usage{PromptTokens: 11, CompletionTokens: 4, TotalTokens: 15}, resp.Usage); diff != "" {
		t.Errorf("usage (-want +got):\n%s", diff)
	}
	if got := resp.SystemFingerprint; got != "fp_fake" {
		t.Errorf("system_fingerprint = %q", got)
	}

	sent := fake.Requests()[0]
	if got, want := sent.Header.Get("Authorization"), "Bearer "+fake.APIKey; got != want {
		t.Errorf("Authorization = %q, want %q", got, want)
	}
	if got := sent.Header.Get("OpenAI-Organization"); got != "org-1" {
		t.Errorf("extra header = %q", got)
	}
	var wire map[string]json.RawMessage
	if err := json.Unmarshal(sent.Body, &wire); err != nil {
		t.Fatal(err)
	}
	for k, want := range map[string]string{
		"model": `"gpt-4o-mini"`, "seed": `7`, "response_format": `{"type":"text"}`, "max_tokens": `20`,
	} {
		if got := string(wire[k]); got != want {
			t.Errorf("sent %s = %s, want %s", k, got, want)
		}
	}
	if _, ok := wire["stream"]; ok {
		t.Errorf("non-streaming request sent stream: %s", wire["stream"])
	}
}

func TestOpenAIChatStream(t *testing.T) {
	t.Parallel()
	fake := fakeprovider.NewOpenAI(t, fakeprovider.Options{Default: fakeprovider.Model{
		Reply: "one two three four", PromptTokens: 9, CompletionTokens: 4,
	}})
	for _, tc := range []struct {
		name string
		opts *aiprovider.StreamOptions
	}{
		{"NoStreamOptions", nil},
		{"IncludeUsageFalse", &aiprovider.StreamOptions{IncludeUsage: false}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			model := "m-" + tc.name
			req := userChat("hi")
			req.StreamOptions = tc.opts
			s, err := (&aiprovider.OpenAICompatible{}).ChatStream(context.Background(), fake.Target(model), req)
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			chunks := drain(t, s)
			if got, want := text(chunks), "one two three four"; got != want {
				t.Errorf("streamed text = %q, want %q", got, want)
			}
			assertStreamEnd(t, s, chunks, "stop", &aiprovider.Usage{PromptTokens: 9, CompletionTokens: 4, TotalTokens: 13})
			for _, c := range chunks {
				if !strings.Contains(string(c.Raw), `"system_fingerprint":"fp_fake"`) || c.Object != "chat.completion.chunk" {
					t.Errorf("chunk not passed through verbatim: %s", c.Raw)
				}
			}

			var sent aiprovider.ChatRequest
			for _, r := range fake.Requests() {
				if r.Model == model {
					_ = json.Unmarshal(r.Body, &sent)
				}
			}
			if !sent.Stream || sent.StreamOptions == nil || !sent.StreamOptions.IncludeUsage {
				t.Errorf("sent stream=%v stream_options=%+v, want include_usage forced on", sent.Stream, sent.StreamOptions)
			}
		})
	}
}

func TestAnthropicChat(t *testing.T) {
	t.Parallel()
	fake := fakeprovider.NewAnthropic(t, fakeprovider.Options{
		Default: fakeprovider.Model{Reply: "Bonjour.", PromptTokens: 21, CompletionTokens: 3},
		Models: map[string]fakeprovider.Model{
			"claude-long": {Reply: "cut", StopReason: "max_tokens", PromptTokens: 5, CompletionTokens: 7},
			"claude-stop": {Reply: "until", StopReason: "stop_sequence"},
		},
	})
	p := &aiprovider.Anthropic{}

	t.Run("Translation", func(t *testing.T) {
		t.Parallel()
		temp := 1.5
		req := aiprovider.ChatRequest{
			Model: "bridge-name",
			Messages: []aiprovider.Message{
				{Role: "system", Content: aiprovider.TextContent("You are terse.")},
				{Role: "user", Content: aiprovider.TextContent("Hello")},
				{Role: "user", Content: aiprovider.Content(`[{"type":"text","text":"in French"}]`)},
				{Role: "assistant", Content: aiprovider.TextContent("Oui?")},
				{Role: "system", Content: aiprovider.TextContent("Never English.")},
				{Role: "user", Content: aiprovider.TextContent("Greet me")},
			},
			Sampling: aiprovider.Sampling{Stop: aiprovider.OneString("END"), Temperature: &temp},
		}
		resp, err := p.Chat(context.Background(), fake.Target("claude-sonnet"), req)
		if err != nil {
			t.Fatal(err)
		}
		want := &aiprovider.ChatResponse{
			Object: "chat.completion",
			Model:  "claude-sonnet",
			Choices: []aiprovider.Choice{{
				Message:      aiprovider.Message{Role: "assistant", Content: aiprovider.TextContent("Bonjour.")},
				FinishReason: "stop",
			}},
			Usage: &aiprovider.Usage{PromptTokens: 21, CompletionTokens: 3, TotalTokens: 24},
		}
		if diff := cmp.Diff(want, resp, cmpopts.IgnoreFields(aiprovider.ChatResponse{}, "ID", "Created")); diff != "" {
			t.Errorf("response (-want +got):\n%s", diff)
		}
		if !strings.HasPrefix(resp.ID, "msg_") || resp.Created == 0 {
			t.Errorf("id %q created %d", resp.ID, resp.Created)
		}

		sent := lastFor(t, fake, "claude-sonnet")
		if got := sent.Header.Get("X-Api-Key"); got != fake.APIKey {
			t.Errorf("x-api-key = %q", got)
		}
		if got := sent.Header.Get("Anthropic-Version"); got != "2023-06-01" {
			t.Errorf("anthropic-version = %q", got)
		}
		if got := sent.Header.Get("Authorization"); got != "" {
			t.Errorf("Authorization sent to anthropic: %q", got)
		}
		var wire fakeprovider.AnthropicRequest
		if err := json.Unmarshal(sent.Body, &wire); err != nil {
			t.Fatal(err)
		}
		if got, want := wire.SystemText(), "You are terse.\n\nNever English."; got != want {
			t.Errorf("system = %q, want %q", got, want)
		}
		var turns []string
		for _, m := range wire.Messages {
			turns = append(turns, m.Role+": "+m.Text())
		}
		if diff := cmp.Diff([]string{"user: Hello\nin French", "assistant: Oui?", "user: Greet me"}, turns); diff != "" {
			t.Errorf("messages (-want +got):\n%s", diff)
		}
		if wire.MaxTokens != aiprovider.DefaultAnthropicMaxTokens {
			t.Errorf("max_tokens = %d, want the default %d", wire.MaxTokens, aiprovider.DefaultAnthropicMaxTokens)
		}
		if diff := cmp.Diff([]string{"END"}, wire.StopSequences); diff != "" {
			t.Errorf("stop_sequences (-want +got):\n%s", diff)
		}
		if wire.Temperature == nil || *wire.Temperature != 1 {
			t.Errorf("temperature = %v, want capped at 1", wire.Temperature)
		}
	})

	for _, tc := range []struct{ model, finish string }{
		{"claude-long", "length"},
		{"claude-stop", "stop"},
	} {
		t.Run("StopReason/"+tc.model, func(t *testing.T) {
			t.Parallel()
			req := userChat("go")
			req.MaxTokens = new(7)
			resp, err := p.Chat(context.Background(), fake.Target(tc.model), req)
			if err != nil {
				t.Fatal(err)
			}
			if got := resp.Choices[0].FinishReason; got != tc.finish {
				t.Errorf("finish_reason = %q, want %q", got, tc.finish)
			}
			var wire fakeprovider.AnthropicRequest
			_ = json.Unmarshal(lastFor(t, fake, tc.model).Body, &wire)
			if wire.MaxTokens != 7 {
				t.Errorf("max_tokens = %d, want 7", wire.MaxTokens)
			}
		})
	}

	t.Run("ToolsRefused", func(t *testing.T) {
		t.Parallel()
		req := userChat("x")
		req.Tools = json.RawMessage(`[{"type":"function","function":{"name":"f"}}]`)
		_, err := p.Chat(context.Background(), fake.Target("claude-tools"), req)
		if !errors.Is(err, aiprovider.ErrUnsupported) {
			t.Errorf("err = %v, want ErrUnsupported", err)
		}
		if aiprovider.IsRetryable(err) {
			t.Error("an unsupported request is retryable")
		}
	})
}

func lastFor(t *testing.T, fake *fakeprovider.Server, model string) fakeprovider.Request {
	t.Helper()
	reqs := fake.Requests()
	for i := len(reqs) - 1; i >= 0; i-- {
		if reqs[i].Model == model {
			return reqs[i]
		}
	}
	t.Fatalf("no request for %s", model)
	return fakeprovider.Request{}
}

func TestAnthropicChatStream(t *testing.T) {
	t.Parallel()
	fake := fakeprovider.NewAnthropic(t, fakeprovider.Options{Default: fakeprovider.Model{
		Reply: "Un deux trois.", PromptTokens: 12, CompletionTokens: 5, StopReason: "max_tokens",
	}})
	req := aiprovider.ChatRequest{Model: "x", Messages: []aiprovider.Message{
		{Role: "system", Content: aiprovider.TextContent("Count.")},
		{Role: "user", Content: aiprovider.TextContent("Go")},
	}}
	s, err := (&aiprovider.Anthropic{}).ChatStream(context.Background(), fake.Target("claude-haiku"), req)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	chunks := drain(t, s)
	if got, want := text(chunks), "Un deux trois."; got != want {
		t.Errorf("streamed text = %q, want %q", got, want)
	}
	if got := chunks[0].Choices[0].Delta.Role; got != "assistant" {
		t.Errorf("first delta role = %q", got)
	}
	assertStreamEnd(t, s, chunks, "length", &aiprovider.Usage{PromptTokens: 12, CompletionTokens: 5, TotalTokens: 17})
	for _, c := range chunks {
		var back aiprovider.Chunk
		if err := json.Unmarshal(c.Raw, &back); err != nil || back.Object != "chat.completion.chunk" || back.Model != "claude-haiku" || !strings.HasPrefix(back.ID, "msg_") {
			t.Errorf("Raw is not an OpenAI chunk: %s (%v)", c.Raw, err)
		}
	}
	var wire fakeprovider.AnthropicRequest
	_ = json.Unmarshal(fake.Requests()[0].Body, &wire)
	if !wire.Stream || wire.SystemText() != "Count." {
		t.Errorf("sent stream=%v system=%q", wire.Stream, wire.SystemText())
	}
}

func TestEmbed(t *testing.T) {
	t.Parallel()
	fake := fakeprovider.NewOpenAI(t, fakeprovider.Options{Default: fakeprovider.Model{Dimensions: 4}})
	p := &aiprovider.OpenAICompatible{}

	t.Run("OpenAI", func(t *testing.T) {
		t.Parallel()
		var req aiprovider.EmbeddingRequest
		if err := json.Unmarshal([]byte(`{"model":"e","input":["a b","c"],"dimensions":4}`), &req); err != nil {
			t.Fatal(err)
		}
		resp, err := p.Embed(context.Background(), fake.Target("text-embedding-3-small"), req)
		if err != nil {
			t.Fatal(err)
		}
		if len(resp.Data) != 2 || resp.Data[1].Index != 1 {
			t.Fatalf("data = %+v", resp.Data)
		}
		var vec []float64
		if err := json.Unmarshal(resp.Data[0].Embedding, &vec); err != nil || len(vec) != 4 {
			t.Errorf("embedding = %s (%v)", resp.Data[0].Embedding, err)
		}
		if resp.Usage == nil || resp.Usage.PromptTokens != 3 {
			t.Errorf("usage = %+v, want 3 prompt tokens", resp.Usage)
		}
		sent := lastFor(t, fake, "text-embedding-3-small")
		if !strings.Contains(string(sent.Body), `"dimensions":4`) {
			t.Errorf("extra member dropped: %s", sent.Body)
		}
	})

	t.Run("OneStringBase64", func(t *testing.T) {
		t.Parallel()
		req := aiprovider.EmbeddingRequest{Input: aiprovider.OneString("hello"), EncodingFormat: "base64"}
		resp, err := p.Embed(context.Background(), fake.Target("emb-b64"), req)
		if err != nil {
			t.Fatal(err)
		}
		var s string
		if err := json.Unmarshal(resp.Data[0].Embedding, &s); err != nil || s == "" {
			t.Errorf("base64 embedding = %s (%v)", resp.Data[0].Embedding, err)
		}
		if sent := lastFor(t, fake, "emb-b64"); !strings.Contains(string(sent.Body), `"input":"hello"`) {
			t.Errorf("single input not sent as a string: %s", sent.Body)
		}
	})

	t.Run("AnthropicRefused", func(t *testing.T) {
		t.Parallel()
		_, err := (&aiprovider.Anthropic{}).Embed(context.Background(), aiprovider.Target{}, aiprovider.EmbeddingRequest{})
		if !errors.Is(err, aiprovider.ErrUnsupported) || !strings.Contains(err.Error(), "not supported by anthropic") {
			t.Errorf("err = %v, want a clear ErrUnsupported", err)
		}
	})
}

func TestComplete(t *testing.T) {
	t.Parallel()
	oa := fakeprovider.NewOpenAI(t, fakeprovider.Options{Default: fakeprovider.Model{Reply: "done", CompletionTokens: 1, PromptTokens: 2}})
	an := fakeprovider.NewAnthropic(t, fakeprovider.Options{Default: fakeprovider.Model{Reply: "done", CompletionTokens: 1, PromptTokens: 2}})
	for _, tc := range []struct {
		name   string
		p      aiprovider.Provider
		target aiprovider.Target
	}{
		{"OpenAI", &aiprovider.OpenAICompatible{}, oa.Target("gpt-3.5-turbo-instruct")},
		{"Anthropic", &aiprovider.Anthropic{}, an.Target("claude")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			resp, err := tc.p.Complete(context.Background(), tc.target, aiprovider.CompletionRequest{Prompt: aiprovider.OneString("say done")})
			if err != nil {
				t.Fatal(err)
			}
			if resp.Object != "text_completion" || resp.Choices[0].Text != "done" || resp.Choices[0].FinishReason != "stop" {
				t.Errorf("response = %+v", resp)
			}
			if diff := cmp.Diff(&aiprovider.Usage{PromptTokens: 2, CompletionTokens: 1, TotalTokens: 3}, resp.Usage); diff != "" {
				t.Errorf("usage (-want +got):\n%s", diff)
			}
		})
	}
}

func TestErrors(t *testing.T) {
	t.Parallel()
	fail := func(status int, retryAfter time.Duration) fakeprovider.Model {
		return fakeprovider.Model{Fail: fakeprovider.Failure{Status: status, RetryAfter: retryAfter}}
	}
	models := map[string]fakeprovider.Model{
		"m429": fail(429, 2*time.Second), "m503": fail(503, 0), "m400": fail(400, 0), "m529": fail(529, 0),
	}
	oa := fakeprovider.NewOpenAI(t, fakeprovider.Options{Models: models})
	an := fakeprovider.NewAnthropic(t, fakeprovider.Options{Models: models})
	for _, tc := range []struct {
		name       string
		p          aiprovider.Provider
		target     aiprovider.Target
		stream     bool
		status     int
		typ, code  string
		retryable  bool
		retryAfter time.Duration
	}{
		{"OpenAI429", &aiprovider.OpenAICompatible{}, oa.Target("m429"), false, 429, "requests", "rate_limit_exceeded", true, 2 * time.Second},
		{"OpenAI429Stream", &aiprovider.OpenAICompatible{}, oa.Target("m429"), true, 429, "requests", "rate_limit_exceeded", true, 2 * time.Second},
		{"OpenAI503", &aiprovider.OpenAICompatible{}, oa.Target("m503"), false, 503, "server_error", "", true, 0},
		{"OpenAI400", &aiprovider.OpenAICompatible{}, oa.Target("m400"), false, 400, "invalid_request_error", "", false, 0},
		{"OpenAI401", &aiprovider.OpenAICompatible{}, aiprovider.Target{BaseURL: oa.BaseURL(), APIKey: "wrong", Model: "ok"}, true, 401, "invalid_request_error", "invalid_api_key", false, 0},
		{"Anthropic429", &aiprovider.Anthropic{}, an.Target("m429"), false, 429, "rate_limit_error", "", true, 2 * time.Second},
		{"Anthropic529Stream", &aiprovider.Anthropic{}, an.Target("m529"), true, 529, "overloaded_error", "", true, 0},
		{"Anthropic400", &aiprovider.Anthropic{}, an.Target("m400"), false, 400, "invalid_request_error", "", false, 0},
		{"Anthropic401", &aiprovider.Anthropic{}, aiprovider.Target{BaseURL: an.BaseURL(), APIKey: "wrong", Model: "ok"}, false, 401, "authentication_error", "", false, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var err error
			if tc.stream {
				_, err = tc.p.ChatStream(context.Background(), tc.target, userChat("hi"))
			} else {
				_, err = tc.p.Chat(context.Background(), tc.target, userChat("hi"))
			}
			pe := asProviderError(t, err)
			if pe.Status != tc.status || pe.Type != tc.typ || pe.Code != tc.code || pe.Retryable != tc.retryable || pe.RetryAfter != tc.retryAfter {
				t.Errorf("got status=%d type=%q code=%q retryable=%v retryAfter=%v, want %d %q %q %v %v",
					pe.Status, pe.Type, pe.Code, pe.Retryable, pe.RetryAfter, tc.status, tc.typ, tc.code, tc.retryable, tc.retryAfter)
			}
			if pe.Message == "" {
				t.Error("no message parsed from the error body")
			}
			if aiprovider.IsRetryable(err) != tc.retryable {
				t.Errorf("IsRetryable = %v", !tc.retryable)
			}
		})
	}
}

func TestErrorBodies(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, body, header string
		want               aiprovider.ProviderError
	}{
		{"NumericCode", `{"error":{"message":"quota","type":"insufficient_quota","param":null,"code":1008}}`, "",
			aiprovider.ProviderError{Type: "insufficient_quota", Code: "1008", Message: "quota"}},
		{"BareMessage", `{"message":"model busy","code":"busy"}`, "",
			aiprovider.ProviderError{Code: "busy", Message: "model busy"}},
		{"ErrorString", `{"error":"upstream exploded"}`, "",
			aiprovider.ProviderError{Message: "upstream exploded"}},
		{"PlainText", "Bad Gateway from nginx\n", "",
			aiprovider.ProviderError{Message: "Bad Gateway from nginx"}},
		{"RetryAfterMs", `{}`, "1500",
			aiprovider.ProviderError{Message: "Bad Gateway", RetryAfter: 1500 * time.Millisecond}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if tc.header != "" {
					w.Header().Set("Retry-After-Ms", tc.header)
				}
				w.WriteHeader(http.StatusBadGateway)
				_, _ = io.WriteString(w, tc.body)
			}))
			defer srv.Close()
			_, err := (&aiprovider.OpenAICompatible{Kind: "qwen"}).Chat(context.Background(), aiprovider.Target{BaseURL: srv.URL}, userChat("x"))
			pe := asProviderError(t, err)
			want := tc.want
			want.Provider, want.Status, want.Retryable = "qwen", 502, true
			if diff := cmp.Diff(&want, pe); diff != "" {
				t.Errorf("error (-want +got):\n%s", diff)
			}
		})
	}
}

func TestFailNextCalls(t *testing.T) {
	t.Parallel()
	fake := fakeprovider.NewOpenAI(t, fakeprovider.Options{Default: fakeprovider.Model{
		Fail: fakeprovider.Failure{Status: 503, Times: 2},
	}})
	p := &aiprovider.OpenAICompatible{}
	var got []bool
	for range 3 {
		_, err := p.Chat(context.Background(), fake.Target("flaky"), userChat("x"))
		got = append(got, err == nil)
	}
	if diff := cmp.Diff([]bool{false, false, true}, got); diff != "" {
		t.Errorf("successes (-want +got):\n%s", diff)
	}
}

// providerCase is one provider with a fake of its own kind.
type providerCase struct {
	name string
	p    aiprovider.Provider
	fake *fakeprovider.Server
}

// bothKinds starts an OpenAI and an Anthropic fake serving models.
func bothKinds(t *testing.T, models map[string]fakeprovider.Model) []providerCase {
	return []providerCase{
		{"OpenAI", &aiprovider.OpenAICompatible{}, fakeprovider.NewOpenAI(t, fakeprovider.Options{Models: models})},
		{"Anthropic", &aiprovider.Anthropic{}, fakeprovider.NewAnthropic(t, fakeprovider.Options{Models: models})},
	}
}

// readToError reads s until Next fails and returns the chunks read.
func readToError(s aiprovider.Stream) (int, error) {
	for n := 0; ; n++ {
		if _, err := s.Next(); err != nil {
			return n, err
		}
	}
}

// assertAbandoned checks that every request for model ended because the
// client went away.
func assertAbandoned(t *testing.T, fake *fakeprovider.Server, model string) {
	t.Helper()
	for _, r := range fake.WaitDone(t, model) {
		if !r.ClientGone {
			t.Errorf("the upstream request for %s kept running", model)
		}
	}
}

func TestTimeouts(t *testing.T) {
	t.Parallel()
	for _, pc := range bothKinds(t, map[string]fakeprovider.Model{
		"slow":  {Delay: 5 * time.Second},
		"stall": {Reply: "a b c d e", StallAfter: 2},
		"cut":   {Reply: "a b c d e", CloseAfter: 2},
	}) {
		t.Run(pc.name+"/CallTimeout", func(t *testing.T) {
			t.Parallel()
			target := pc.fake.Target("slow")
			target.Timeout = 100 * time.Millisecond
			start := time.Now()
			_, err := pc.p.Chat(context.Background(), target, userChat("x"))
			pe := asProviderError(t, err)
			if pe.Type != aiprovider.ErrTypeTimeout || !pe.Retryable {
				t.Errorf("got %v, want a retryable timeout", err)
			}
			if elapsed := time.Since(start); elapsed > 2*time.Second {
				t.Errorf("took %v", elapsed)
			}
		})
		t.Run(pc.name+"/IdleTimeout", func(t *testing.T) {
			t.Parallel()
			target := pc.fake.Target("stall")
			target.IdleTimeout = 200 * time.Millisecond
			s, err := pc.p.ChatStream(context.Background(), target, userChat("x"))
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			n, err := readToError(s)
			pe := asProviderError(t, err)
			if pe.Type != aiprovider.ErrTypeTimeout || !pe.Retryable {
				t.Errorf("got %v after %d chunks, want a retryable timeout", err, n)
			}
			if n < 3 { // role chunk + 2 content chunks
				t.Errorf("only %d chunks before the stall", n)
			}
			if _, again := s.Next(); again == nil {
				t.Error("Next after the failure returned a chunk")
			}
			assertAbandoned(t, pc.fake, "stall")
		})
		t.Run(pc.name+"/CutMidStream", func(t *testing.T) {
			t.Parallel()
			s, err := pc.p.ChatStream(context.Background(), pc.fake.Target("cut"), userChat("x"))
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			if _, err = readToError(s); errors.Is(err, io.EOF) || !aiprovider.IsRetryable(err) {
				t.Errorf("err = %v, want a retryable interruption", err)
			}
		})
	}
}

func TestCancel(t *testing.T) {
	t.Parallel()
	for _, pc := range bothKinds(t, map[string]fakeprovider.Model{
		"slow": {Delay: 10 * time.Second},
		"long": {Chunks: 200, ChunkDelay: 20 * time.Millisecond},
	}) {
		t.Run(pc.name+"/ContextCancelStopsUpstream", func(t *testing.T) {
			t.Parallel()
			ctx, cancel := context.WithCancel(context.Background())
			time.AfterFunc(50*time.Millisecond, cancel)
			start := time.Now()
			_, err := pc.p.Chat(ctx, pc.fake.Target("slow"), userChat("x"))
			if !errors.Is(err, context.Canceled) || aiprovider.IsRetryable(err) {
				t.Errorf("err = %v, want context.Canceled, not retryable", err)
			}
			if elapsed := time.Since(start); elapsed > 2*time.Second {
				t.Errorf("took %v", elapsed)
			}
			assertAbandoned(t, pc.fake, "slow")
		})
		t.Run(pc.name+"/CloseReleasesConnection", func(t *testing.T) {
			t.Parallel()
			s, err := pc.p.ChatStream(context.Background(), pc.fake.Target("long"), userChat("x"))
			if err != nil {
				t.Fatal(err)
			}
			for range 3 {
				if _, err := s.Next(); err != nil {
					t.Fatal(err)
				}
			}
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			_ = s.Close() // twice is harmless
			if _, err := s.Next(); !errors.Is(err, aiprovider.ErrStreamClosed) {
				t.Errorf("Next after Close = %v, want ErrStreamClosed", err)
			}
			start := time.Now()
			assertAbandoned(t, pc.fake, "long")
			if elapsed := time.Since(start); elapsed > time.Second {
				t.Errorf("upstream ended %v after Close (the whole stream takes 4s)", elapsed)
			}
		})
	}
}

func TestNew(t *testing.T) {
	t.Parallel()
	for _, kind := range aiprovider.Kinds() {
		p, err := aiprovider.New(kind)
		if err != nil {
			t.Fatalf("New(%q): %v", kind, err)
		}
		_, isAnthropic := p.(*aiprovider.Anthropic)
		if isAnthropic != (kind == aiprovider.KindAnthropic) {
			t.Errorf("New(%q) = %T", kind, p)
		}
		if kind != aiprovider.KindLocal && aiprovider.DefaultBaseURL(kind) == "" {
			t.Errorf("no default base URL for %q", kind)
		}
	}
	if _, err := aiprovider.New("gemini"); !errors.Is(err, aiprovider.ErrUnknownKind) {
		t.Errorf("New(gemini) err = %v, want ErrUnknownKind", err)
	}
}
