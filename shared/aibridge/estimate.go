package aibridge

import (
	"encoding/json"
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/unitenant/unitenant/shared/aiprovider"
	"github.com/unitenant/unitenant/shared/fault"
)

// Token estimates stand in for the provider's count where none is known yet
// (the reservation, the tokens-per-minute check) or none came (a stream cut
// before its usage). They err high: a reservation too small would let
// concurrent calls overspend, one too large only holds money a moment
// longer. English runs near four bytes a token, Chinese near one character,
// so: a token per three ASCII bytes and two per other character.
const (
	tokensPerMessage = 4    // role and separators
	tokensPerReply   = 3    // the reply's priming
	tokensPerImage   = 1105 // a high-detail 1024x1024 image on OpenAI
)

// EstimateTokens is a generous token count of s.
func EstimateTokens(s string) int {
	ascii, other := 0, 0
	for i := 0; i < len(s); {
		if s[i] < utf8.RuneSelf {
			ascii++
			i++
			continue
		}
		_, n := utf8.DecodeRuneInString(s[i:])
		other++
		i += n
	}
	return (ascii+2)/3 + 2*other
}

// estimateChat estimates a chat request's prompt tokens.
func estimateChat(req aiprovider.ChatRequest) int {
	n := tokensPerReply
	for _, m := range req.Messages {
		n += tokensPerMessage + EstimateTokens(m.Name)
		parts, err := m.Content.Parts()
		if err != nil {
			n += EstimateTokens(string(m.Content))
			continue
		}
		var raw []json.RawMessage // the parts as sent, read when one is neither text nor image
		for i, p := range parts {
			switch p.Type {
			case "image_url":
				n += tokensPerImage
			case "text":
				n += EstimateTokens(p.Text)
			default:
				// Audio, files and parts not known here are read by the
				// model all the same: estimated by their size, as content
				// that is not parts is, or they would be held for nothing.
				if raw == nil && json.Unmarshal(m.Content, &raw) != nil {
					raw = []json.RawMessage{}
				}
				if i < len(raw) {
					n += EstimateTokens(string(raw[i]))
				}
			}
		}
		n += EstimateTokens(string(m.ToolCalls)) + EstimateTokens(m.ToolCallID) + estimateExtra(m.Extra)
	}
	return n + EstimateTokens(string(req.Tools)) + EstimateTokens(string(req.ToolChoice)) + estimateExtra(req.Extra)
}

// estimateStrings estimates a completion prompt's or embedding input's
// tokens, with the request's members not known here.
func estimateStrings(s aiprovider.Strings, extra aiprovider.Extra) int {
	n := 0
	for _, v := range s.Values {
		n += EstimateTokens(v) + 1
	}
	return n + estimateExtra(extra)
}

// estimateExtra estimates members not known here, passed upstream as they
// came: a provider may read any of them as prompt (legacy functions, a
// response format's schema, a predicted output, a suffix), so each is held
// for by its size, or a request could carry any amount of prompt in them
// and be held for none of it.
func estimateExtra(extra aiprovider.Extra) int {
	n := 0
	for k, v := range extra {
		n += EstimateTokens(k) + EstimateTokens(string(v))
	}
	return n
}

// Most completions a request may ask the provider for: OpenAI's limits of
// n and of best_of.
const (
	MaxChoices = 128
	MaxBestOf  = 20
)

// count reads the optional positive integer member name of a request's
// unnamed members, 1 when absent; above most it is refused as invalid. A
// member differing from name only in case (as encoding/json folds it) is
// refused too: it travels upstream beside the one read here, and an
// upstream that decodes as Go does may take it instead ("beſt_of" sorts
// after "best_of", so it is the one read last).
func count(extra aiprovider.Extra, name string, most int) (int, error) {
	for k := range extra {
		if k != name && strings.EqualFold(k, name) {
			return 0, fault.Field("ambiguous_field", k, fmt.Sprintf("differs from %q only in case; member names are case-sensitive", name))
		}
	}
	raw, ok := extra[name]
	if !ok || string(raw) == "null" {
		return 1, nil
	}
	var n int
	if err := json.Unmarshal(raw, &n); err != nil || n < 1 || n > most {
		return 0, fault.Field("invalid_"+name, name, fmt.Sprintf("must be a whole number from 1 to %d", most))
	}
	return n, nil
}

// chatOutputs is how many completions a chat request has the provider
// write, each up to the completion cap: its n.
func chatOutputs(req aiprovider.ChatRequest) (int, error) {
	return count(req.Extra, "n", MaxChoices)
}

// completionOutputs is how many completions a legacy completion request has
// the provider write, each up to max_tokens: best_of (it writes best_of and
// returns the best n) or n, for each of its prompts.
func completionOutputs(req aiprovider.CompletionRequest) (int, error) {
	n, err := count(req.Extra, "n", MaxChoices)
	if err != nil {
		return 0, err
	}
	best, err := count(req.Extra, "best_of", MaxBestOf)
	if err != nil {
		return 0, err
	}
	if best < n && best > 1 {
		return 0, fault.Field("invalid_best_of", "best_of", "must be at least n")
	}
	return max(n, best) * max(len(req.Prompt.Values), 1), nil
}
