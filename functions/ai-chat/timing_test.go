package main

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/unitenant/unitenant/shared/aiprovider/fakeprovider"
)

// A whole answer says where its time went (Server-Timing): authenticating
// the caller, the bridge's begin, the provider, and making the call's row
// durable, each in its place — a slow provider shows as the provider's, not
// the bridge's — within the route's total, itself within what the client
// waited.
func TestAnswerTellsWhereItsTimeWent(t *testing.T) {
	t.Parallel()
	f, key := slowFixture(t, "ok", 1)
	for _, path := range []string{"/v1/chat/completions", "/api/v1/ai/bridge/chat"} {
		start := time.Now()
		r := f.do(t, key, "POST", path, chatBody("gpt-mini"))
		took := time.Since(start)
		if r.Status != http.StatusOK {
			t.Fatalf("%s: %d %s", path, r.Status, r.Body)
		}
		if err := phasesFit(r.Header.Get("Server-Timing"), took); err != nil {
			t.Fatalf("%s: %v", path, err)
		}
	}
}

// slowProvider is how long the fake provider of slowFixture takes.
const slowProvider = 80 * time.Millisecond

// slowFixture is a fixture whose gpt-mini answers reply, of completion
// tokens, after slowProvider, and an API key of k001's.
func slowFixture(t *testing.T, reply string, completion int) (*fixture, string) {
	f := newFixture(t)
	f.openai.SetModel("gpt-mini", fakeprovider.Model{Reply: reply, PromptTokens: 3, CompletionTokens: completion, Delay: slowProvider})
	_, key := f.newKey(t, map[string]any{"name": "timing"})
	return f, key
}

// phasesFit checks a Server-Timing value of a call to slowFixture's
// provider: the five phases, the provider's at least slowProvider, the
// bridge's own short, adding up to no more than the route's total, itself
// no more than what the client waited (took).
func phasesFit(h string, took time.Duration) error {
	got, err := serverTiming(h)
	if err != nil {
		return err
	}
	if len(got) != 5 || got["provider"] < slowProvider || got["auth"] >= slowProvider || got["begin"] >= slowProvider || got["record"] >= slowProvider {
		return fmt.Errorf("Server-Timing %q: want auth, begin and record short, provider at least %s", h, slowProvider)
	}
	// Each figure is rounded down to 10 µs.
	if sum := got["auth"] + got["begin"] + got["provider"] + got["record"]; sum > got["total"]+40*time.Microsecond || got["total"] > took {
		return fmt.Errorf("Server-Timing %q: the phases add up to %s, the route's total is %s, the client waited %s", h, sum, got["total"], took)
	}
	return nil
}

// serverTiming reads a Server-Timing header of ours: each metric's duration
// by its name.
func serverTiming(h string) (map[string]time.Duration, error) {
	out := map[string]time.Duration{}
	for _, m := range strings.Split(h, ",") {
		name, dur, ok := strings.Cut(strings.TrimSpace(m), ";dur=")
		ms, err := strconv.ParseFloat(dur, 64)
		if !ok || err != nil || ms < 0 {
			return nil, fmt.Errorf("Server-Timing %q", h)
		}
		out[name] = time.Duration(ms * float64(time.Millisecond))
	}
	return out, nil
}

// A streamed answer's call id and Server-Timing are known only once the
// stream is over: they come after it, as trailers, the provider's phase
// the whole stream; the call id names the call's row.
func TestStreamTellsWhereItsTimeWentAfterIt(t *testing.T) {
	t.Parallel()
	f, key := slowFixture(t, "one two three", 3)
	start := time.Now()
	r := f.do(t, key, "POST", "/v1/chat/completions", chatBody("gpt-mini", "stream", true))
	took := time.Since(start)
	if r.Status != http.StatusOK || !strings.HasSuffix(string(r.Body), "data: [DONE]\n\n") {
		t.Fatalf("stream: %d %s", r.Status, r.Body)
	}
	if r.Header.Get("Server-Timing") != "" || r.Header.Get(headerCallID) != "" {
		t.Fatalf("a stream's timing came before it: %v", r.Header)
	}
	if err := phasesFit(r.Trailer.Get("Server-Timing"), took); err != nil {
		t.Fatalf("trailers %v: %v", r.Trailer, err)
	}
	var tokens int
	if err := f.sys.QueryRow("SELECT output_tokens FROM ai_service_call_logs WHERE request_id = ? AND status = 'success'", r.Trailer.Get(headerCallID)).Scan(&tokens); err != nil || tokens != 3 {
		t.Fatalf("the call id trailer %q names no successful row of 3 output tokens: %d, %v", r.Trailer.Get(headerCallID), tokens, err)
	}
}
