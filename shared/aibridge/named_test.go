package aibridge

import (
	"encoding/json"
	"testing"

	"github.com/unitenant/unitenant/shared/aiprovider"
)

// A streamed chunk names the bridge's model however the provider spaced
// its JSON, and keeps everything else, a look-alike inside content too.
func TestNamedChunks(t *testing.T) {
	for _, raw := range []string{
		`{"id":"c1","model":"up-2026","choices":[{"delta":{"content":"say \"model\":\"up-2026\""}}]}`,
		`{ "id": "c1", "model" : "up-2026", "choices": [{"delta": {"content": "say \"model\":\"up-2026\""}}] }`,
	} {
		c := named(aiprovider.Chunk{Model: "up-2026", Raw: []byte(raw)}, "gpt-mini")
		var got struct {
			Model   string `json:"model"`
			Choices []struct {
				Delta struct{ Content string } `json:"delta"`
			} `json:"choices"`
		}
		if err := json.Unmarshal(c.Raw, &got); err != nil {
			t.Fatal(err)
		}
		if got.Model != "gpt-mini" || c.Model != "gpt-mini" || len(got.Choices) != 1 || got.Choices[0].Delta.Content != `say "model":"up-2026"` {
			t.Errorf("%s -> %s (model %q)", raw, c.Raw, c.Model)
		}
	}
	same := aiprovider.Chunk{Model: "gpt-mini", Raw: []byte(`{"model":"gpt-mini"}`)}
	if c := named(same, "gpt-mini"); string(c.Raw) != `{"model":"gpt-mini"}` {
		t.Errorf("a chunk already named was changed: %s", c.Raw)
	}
}
