package aibridge_test

import (
	"strings"
	"testing"

	"github.com/unitenant/unitenant/shared/aibridge"
	"github.com/unitenant/unitenant/shared/fault"
)

func names(ms []aibridge.Model) string {
	var out []string
	for _, m := range ms {
		out = append(out, m.Name)
	}
	return strings.Join(out, ",")
}

func model(id int64, name, typ string, fallbacks ...string) aibridge.Model {
	return aibridge.Model{ID: id, Name: name, Type: typ, Fallbacks: fallbacks}
}

func TestChain(t *testing.T) {
	t.Parallel()
	// In priority order, as the tenant enabled them.
	enabled := []aibridge.Model{
		model(1, "a", "text"), model(2, "emb", "embedding"), model(3, "b", "multimodal"), model(4, "c", "text"), model(5, "d", "text"),
	}
	restricted := &aibridge.APIKey{Models: []string{"b", "c"}}
	for _, tc := range []struct {
		name, endpoint, requested string
		enabled                   []aibridge.Model
		key                       *aibridge.APIKey
		max                       int
		want, code                string
	}{
		{name: "auto is the first chat model, then priority order", endpoint: "chat", requested: "auto", max: 3, want: "a,b,c"},
		{name: "empty is auto", endpoint: "chat", max: 10, want: "a,b,c,d"},
		{name: "a named model first, the rest after it", endpoint: "chat", requested: "c", max: 3, want: "c,a,b"},
		{name: "max 1 never falls back", endpoint: "chat", requested: "c", max: 1, want: "c"},
		{name: "embeddings never fall back", endpoint: "embedding", requested: "auto", max: 3, want: "emb"},
		{name: "a key limits the chain", endpoint: "chat", requested: "auto", key: restricted, max: 3, want: "b,c"},
		{name: "a key refuses the rest", endpoint: "chat", requested: "a", key: restricted, max: 3, code: "model_not_enabled"},
		{name: "unknown", endpoint: "chat", requested: "zzz", max: 3, code: "model_not_enabled"},
		{name: "wrong type", endpoint: "chat", requested: "emb", max: 3, code: "model_type_mismatch"},
		{name: "no chat model", endpoint: "chat", enabled: []aibridge.Model{model(2, "emb", "embedding")}, max: 3, code: "model_not_enabled"},
		{name: "explicit fallbacks, followed transitively", endpoint: "chat", requested: "a", max: 5,
			enabled: []aibridge.Model{model(1, "a", "text", "c"), model(3, "b", "text"), model(4, "c", "text", "d"), model(5, "d", "text")}, want: "a,c,d"},
		{name: "a cycle ends", endpoint: "chat", requested: "a", max: 10,
			enabled: []aibridge.Model{model(1, "a", "text", "b"), model(2, "b", "text", "a")}, want: "a,b"},
		{name: "a self-loop and an unknown name are skipped", endpoint: "chat", requested: "a", max: 10,
			enabled: []aibridge.Model{model(1, "a", "text", "a", "ghost", "b"), model(2, "b", "text")}, want: "a,b"},
		{name: "fallbacks of another type are skipped", endpoint: "chat", requested: "a", max: 10,
			enabled: []aibridge.Model{model(1, "a", "text", "emb", "b"), model(2, "emb", "embedding"), model(3, "b", "text")}, want: "a,b"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			en := tc.enabled
			if en == nil {
				en = enabled
			}
			got, err := aibridge.Chain(en, tc.key, tc.endpoint, tc.requested, tc.max)
			if tc.code != "" {
				if fault.CodeOf(err) != tc.code {
					t.Fatalf("err %v, want %s", err, tc.code)
				}
				return
			}
			if err != nil || names(got) != tc.want {
				t.Fatalf("chain %q %v, want %q", names(got), err, tc.want)
			}
		})
	}
}

func TestEstimateTokensErrsHigh(t *testing.T) {
	t.Parallel()
	for s, atLeast := range map[string]int{
		"":             0,
		"Hello, world": 4, // OpenAI's tokenizer: 4
		"你好，请介绍一下幼儿园管理系统":            15, // about one per character
		strings.Repeat("word ", 100): 100,
	} {
		if got := aibridge.EstimateTokens(s); got < atLeast {
			t.Errorf("%q: %d, want at least %d", s, got, atLeast)
		}
	}
}
