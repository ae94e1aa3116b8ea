package main

import (
	"context"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/unitenant/unitenant/shared/aiprovider"
)

// The dev provider answers OpenAI's wire protocol, streams included, and
// refuses a wrong key as OpenAI does.
func TestServesOpenAIWire(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ready := make(chan string, 1)
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"-addr", "127.0.0.1:0", "-key", "k1", "-chunk-delay", "0s"}, io.Discard, io.Discard, ready)
	}()
	var base string
	select {
	case base = <-ready:
	case err := <-done:
		t.Fatal(err)
	case <-time.After(5 * time.Second):
		t.Fatal("fakeai did not start")
	}
	p := &aiprovider.OpenAICompatible{Kind: "openai"}
	req := aiprovider.ChatRequest{Model: "dev-fake", Messages: []aiprovider.Message{{Role: "user", Content: aiprovider.TextContent("hi")}}}
	resp, err := p.Chat(ctx, aiprovider.Target{BaseURL: base, APIKey: "k1", Model: "dev-fake"}, req)
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.Choices) != 1 || !strings.Contains(resp.Choices[0].Message.Content.Text(), "end to end") || resp.Usage == nil || resp.Usage.TotalTokens == 0 {
		t.Fatalf("chat = %+v", resp)
	}
	s, err := p.ChatStream(ctx, aiprovider.Target{BaseURL: base, APIKey: "k1", Model: "dev-fake"}, req)
	if err != nil {
		t.Fatal(err)
	}
	chunks := 0
	for {
		if _, err = s.Next(); err != nil {
			break
		}
		chunks++
	}
	s.Close()
	if err != io.EOF || chunks < 2 || s.Usage() == nil {
		t.Fatalf("stream: %d chunks, usage %v, %v", chunks, s.Usage(), err)
	}
	_, err = p.Chat(ctx, aiprovider.Target{BaseURL: base, APIKey: "wrong", Model: "dev-fake"}, req)
	var pe *aiprovider.ProviderError
	if !errors.As(err, &pe) || pe.Status != 401 {
		t.Fatalf("wrong key: %v, want a 401 from the provider", err)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if err := run(context.Background(), []string{"-key", ""}, io.Discard, io.Discard, nil); err == nil {
		t.Error("an empty key was accepted")
	}
}
