package aibridge

import (
	"unicode/utf8"

	"github.com/unitenant/unitenant/shared/aiprovider"
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
		for _, p := range parts {
			if p.Type == "image_url" {
				n += tokensPerImage
			} else {
				n += EstimateTokens(p.Text)
			}
		}
		n += EstimateTokens(string(m.ToolCalls))
	}
	return n + EstimateTokens(string(req.Tools))
}

// estimateStrings estimates a completion prompt's or embedding input's tokens.
func estimateStrings(s aiprovider.Strings) int {
	n := 0
	for _, v := range s.Values {
		n += EstimateTokens(v) + 1
	}
	return n
}
