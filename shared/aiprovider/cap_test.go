package aiprovider_test

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"

	"github.com/unitenant/unitenant/shared/aiprovider"
	"github.com/unitenant/unitenant/shared/aiprovider/fakeprovider"
)

// capMembers is what a recorded chat body says about the completion cap.
type capMembers struct {
	MaxTokens           *int `json:"max_tokens"`
	MaxCompletionTokens *int `json:"max_completion_tokens"`
}

func (c capMembers) String() string {
	show := func(p *int) string {
		if p == nil {
			return "absent"
		}
		return fmt.Sprint(*p)
	}
	return fmt.Sprintf("max_tokens %s, max_completion_tokens %s", show(c.MaxTokens), show(c.MaxCompletionTokens))
}

// TestEveryKindIsSentTheCapInForce: whichever member the client gave its
// cap in, each OpenAI-compatible kind receives the cap in force
// (MaxOutputTokens, what the bridge reserved for) in the one member it
// reads, and no member it would refuse; the provider then writes no more
// than that. A kind that only reads max_tokens, sent max_completion_tokens
// alone, would be uncapped.
func TestEveryKindIsSentTheCapInForce(t *testing.T) {
	t.Parallel()
	ten, five := 10, 5
	for _, kind := range []string{aiprovider.KindOpenAI, aiprovider.KindDoubao, aiprovider.KindDeepSeek, aiprovider.KindQwen, aiprovider.KindLocal} {
		t.Run(kind, func(t *testing.T) {
			t.Parallel()
			// A long reply: uncapped, the provider writes 100 tokens.
			fake := fakeprovider.NewOpenAI(t, fakeprovider.Options{Kind: kind, Default: fakeprovider.Model{CompletionTokens: 100}})
			p := &aiprovider.OpenAICompatible{Kind: kind}
			model := "chat-model"
			if kind == aiprovider.KindOpenAI {
				model = "o4-mini" // refuses max_tokens
			}
			want := func(n *int) capMembers {
				if kind == aiprovider.KindOpenAI {
					return capMembers{MaxCompletionTokens: n}
				}
				return capMembers{MaxTokens: n}
			}
			for _, tc := range []struct {
				name                string
				maxTokens, maxCompl *int
				want                capMembers
				completion          int
			}{
				{"MaxCompletionTokensOnly", nil, &ten, want(&ten), 10},
				{"MaxTokensOnly", &ten, nil, want(&ten), 10},
				{"BothTheLargerIsInForce", &five, &ten, want(&ten), 10},
				{"BothOtherWayRound", &ten, &five, want(&ten), 10},
				{"Neither", nil, nil, capMembers{}, 100},
			} {
				for _, stream := range []bool{false, true} {
					name := fmt.Sprintf("%s/stream=%v", tc.name, stream)
					upstream := fmt.Sprintf("%s-%s-%v", model, tc.name, stream)
					req := userChat("write a long story")
					req.MaxTokens, req.MaxCompletionTokens = tc.maxTokens, tc.maxCompl
					var usage *aiprovider.Usage
					if stream {
						s, err := p.ChatStream(context.Background(), fake.Target(upstream), req)
						if err != nil {
							t.Errorf("%s: %v", name, err)
							continue
						}
						drain(t, s)
						usage = s.Usage()
						s.Close()
					} else {
						resp, err := p.Chat(context.Background(), fake.Target(upstream), req)
						if err != nil {
							t.Errorf("%s: %v", name, err)
							continue
						}
						usage = resp.Usage
					}
					var got capMembers
					if err := json.Unmarshal(lastFor(t, fake, upstream).Body, &got); err != nil {
						t.Fatal(err)
					}
					if got.String() != tc.want.String() {
						t.Errorf("%s: sent %s; want %s", name, got, tc.want)
					}
					if usage == nil || usage.CompletionTokens != tc.completion {
						t.Errorf("%s: provider wrote %+v completion tokens, want %d", name, usage, tc.completion)
					}
					// The caller's request is not changed behind its back.
					if req.MaxTokens != tc.maxTokens || req.MaxCompletionTokens != tc.maxCompl {
						t.Errorf("%s: the caller's request was modified", name)
					}
				}
			}
		})
	}
}

// TestAnthropicIsSentTheCapInForce: Anthropic reads max_tokens only (and
// requires it); a cap given as max_completion_tokens must arrive there.
func TestAnthropicIsSentTheCapInForce(t *testing.T) {
	t.Parallel()
	fake := fakeprovider.NewAnthropic(t, fakeprovider.Options{Default: fakeprovider.Model{Reply: "fine", CompletionTokens: 3}})
	p := &aiprovider.Anthropic{}
	ten, five := 10, 5
	for _, tc := range []struct {
		name                string
		maxTokens, maxCompl *int
		want                int
	}{
		{"MaxCompletionTokensOnly", nil, &ten, 10},
		{"MaxTokensOnly", &ten, nil, 10},
		{"BothTheLargerIsInForce", &five, &ten, 10},
		{"Neither", nil, nil, aiprovider.DefaultAnthropicMaxTokens},
	} {
		for _, stream := range []bool{false, true} {
			name := fmt.Sprintf("%s/stream=%v", tc.name, stream)
			upstream := fmt.Sprintf("claude-%s-%v", tc.name, stream)
			req := userChat("hi")
			req.MaxTokens, req.MaxCompletionTokens = tc.maxTokens, tc.maxCompl
			if stream {
				s, err := p.ChatStream(context.Background(), fake.Target(upstream), req)
				if err != nil {
					t.Fatalf("%s: %v", name, err)
				}
				drain(t, s)
				s.Close()
			} else if _, err := p.Chat(context.Background(), fake.Target(upstream), req); err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			var wire map[string]json.RawMessage
			if err := json.Unmarshal(lastFor(t, fake, upstream).Body, &wire); err != nil {
				t.Fatal(err)
			}
			if got, want := string(wire["max_tokens"]), fmt.Sprint(tc.want); got != want {
				t.Errorf("%s: max_tokens %s, want %s", name, got, want)
			}
			if _, ok := wire["max_completion_tokens"]; ok {
				t.Errorf("%s: sent max_completion_tokens, which Anthropic does not know", name)
			}
		}
	}
}
