package aiprovider_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/unitenant/unitenant/shared/aiprovider"
)

// A bridge relays a stream: it picks the provider by the model's kind,
// writes each chunk's Raw bytes as an SSE event, and meters with Usage once
// the stream ended. It reads on after its client left (the context outlives
// the client's request), so the provider's usage is never lost.
func Example_relayStream() {
	var w http.ResponseWriter // the bridge's client
	var r *http.Request
	p, err := aiprovider.New("anthropic") // ai_model_config.provider
	if err != nil {
		return
	}
	target := aiprovider.Target{
		BaseURL:     "https://api.anthropic.com",
		APIKey:      "decrypted-key",
		Model:       "claude-sonnet-4-5",
		IdleTimeout: 30 * time.Second,
	}
	req := aiprovider.ChatRequest{Model: "assistant", Messages: []aiprovider.Message{
		{Role: "user", Content: aiprovider.TextContent("Hello")},
	}}
	s, err := p.ChatStream(context.WithoutCancel(r.Context()), target, req)
	if aiprovider.IsRetryable(err) {
		return // nothing streamed yet: fall back to the next model
	}
	if err != nil {
		return
	}
	defer s.Close()
	for {
		chunk, err := s.Next()
		if errors.Is(err, io.EOF) {
			fmt.Fprint(w, "data: [DONE]\n\n")
			break
		}
		if err != nil {
			break // meter what Usage says, or estimate
		}
		fmt.Fprintf(w, "data: %s\n\n", chunk.Raw) // fails silently once the client left
	}
	if u := s.Usage(); u != nil {
		_ = u.TotalTokens // settle the call with the provider's numbers
	}
}
