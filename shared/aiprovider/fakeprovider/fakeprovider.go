// Package fakeprovider is fake AI providers for tests, benchmarks and `make
// dev` (ListenOpenAI):
// httptest servers speaking OpenAI's API (POST /v1/chat/completions,
// /v1/completions, /v1/embeddings, GET /v1/models, SSE streams ending in
// "data: [DONE]") and Anthropic's Messages API (POST /v1/messages, its
// event stream from message_start to message_stop), with the real error
// bodies of each.
//
// Each model's behaviour is configurable (reply, usage, failures for the
// next K calls, delays, chunking, a stall or a cut mid-stream), every
// request is recorded (headers included) for assertions, and a request
// without the right key is refused as the real service refuses it. By
// default it answers at once, so benchmarks measure the caller.
//
// It never reaches the network beyond the loopback listener it serves on.
package fakeprovider

import (
	"bufio"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/unitenant/unitenant/shared/aiprovider"
)

// DefaultAPIKey is the key a server accepts when Options.APIKey is empty.
const DefaultAPIKey = "test-key"

// Options configures a server.
type Options struct {
	// APIKey is the only key accepted; empty is DefaultAPIKey.
	APIKey string
	// Models configures models by the name requests use; others behave as
	// Default.
	Models map[string]Model
	// Default is the behaviour of models not in Models.
	Default Model
	// NoRecord keeps no requests (for long benchmarks).
	NoRecord bool
	// Kind, when set (an aiprovider kind other than anthropic), makes the
	// OpenAI fake read a chat request's completion cap as that provider
	// does, refuse what it refuses, and write no more completion tokens
	// than the cap it read (finish_reason "length" when it cut): openai
	// reads max_completion_tokens, else max_tokens, and refuses max_tokens
	// on its reasoning models (o1, o3, o4-mini, gpt-5...); doubao (Ark)
	// reads max_tokens and refuses both members together; deepseek, qwen
	// and local read max_tokens only. Empty: no cap is read or enforced.
	Kind string
}

// Model is how one model behaves.
type Model struct {
	// Reply is the answer's text; empty is "Hello from <model>.".
	Reply string
	// PromptTokens is the reported prompt usage; 0 is one per word of the
	// prompt's text.
	PromptTokens int
	// CompletionTokens is the reported completion usage; 0 is one per word
	// of the reply.
	CompletionTokens int
	// StopReason is the finish in the provider's own words (OpenAI
	// finish_reason, Anthropic stop_reason); empty is "stop" / "end_turn".
	StopReason string
	// Fail makes calls fail with an error status before anything else.
	Fail Failure
	// Delay is waited before answering (cut short if the client leaves).
	Delay time.Duration
	// Chunks splits a streamed reply into this many content chunks; 0 is
	// one per word.
	Chunks int
	// ChunkDelay is waited before each streamed content chunk.
	ChunkDelay time.Duration
	// StallAfter, when > 0, stops a stream after that many content chunks
	// without ending it, until the client leaves.
	StallAfter int
	// CloseAfter, when > 0, cuts the connection after that many content
	// chunks, with no end of stream.
	CloseAfter int
	// Dimensions is the embeddings' length; 0 is 8.
	Dimensions int
}

// Failure makes a model fail with Status.
type Failure struct {
	Status int // 0: never fail
	// Times is how many next calls fail; 0 is every call.
	Times int
	// RetryAfter is sent as Retry-After (whole seconds) when > 0.
	RetryAfter time.Duration
	// Message is the error's message; "": "fake failure <status>".
	Message string
}

// Request is one recorded request.
type Request struct {
	Method string
	Path   string
	Header http.Header
	Body   []byte
	Model  string // the body's model
	Stream bool   // the body asked for a stream
	// Done is set once the handler returned; ClientGone if by then the
	// client had closed the connection or cancelled the request.
	Done       bool
	ClientGone bool
}

// Server is a fake provider; embed its URL with BaseURL or Target.
type Server struct {
	*httptest.Server
	// APIKey is the accepted key.
	APIKey string

	base     string
	protocol protocol
	quit     chan struct{}
	noRecord bool
	kind     string
	stopOnce sync.Once

	mu       sync.Mutex
	def      Model
	models   map[string]Model
	failLeft map[string]int
	calls    map[string]int
	reqs     []*Request
	ids      atomic.Int64
}

// protocol is what differs between the OpenAI and the Anthropic fake.
type protocol interface {
	authorized(r *http.Request, key string) bool
	writeError(w http.ResponseWriter, status int, message string)
	routes(s *Server, mux *http.ServeMux)
}

func newServer(tb testing.TB, opts Options, p protocol, basePath string) *Server {
	tb.Helper()
	s := build(opts, p, basePath, nil)
	tb.Cleanup(s.Stop)
	return s
}

// build starts a server on l (nil: a loopback port of its own).
func build(opts Options, p protocol, basePath string, l net.Listener) *Server {
	s := &Server{
		APIKey:   opts.APIKey,
		protocol: p,
		quit:     make(chan struct{}),
		noRecord: opts.NoRecord,
		kind:     opts.Kind,
		def:      opts.Default,
		models:   map[string]Model{},
		failLeft: map[string]int{},
		calls:    map[string]int{},
	}
	if s.APIKey == "" {
		s.APIKey = DefaultAPIKey
	}
	for name, m := range opts.Models {
		s.SetModel(name, m)
	}
	mux := http.NewServeMux()
	p.routes(s, mux)
	if l == nil {
		s.Server = httptest.NewServer(mux)
	} else {
		s.Server = &httptest.Server{Listener: l, Config: &http.Server{Handler: mux}}
		s.Start()
	}
	s.base = s.URL + basePath
	return s
}

// Stop ends the server: waiting streams give up, then it closes.
func (s *Server) Stop() {
	s.stopOnce.Do(func() {
		close(s.quit)
		s.Close()
	})
}

// BaseURL is the API root a client is configured with.
func (s *Server) BaseURL() string { return s.base }

// Target is an aiprovider.Target for model on this server, with its key.
func (s *Server) Target(model string) aiprovider.Target {
	return aiprovider.Target{BaseURL: s.base, APIKey: s.APIKey, Model: model}
}

// SetModel (re)configures a model; its failure count starts over.
func (s *Server) SetModel(name string, m Model) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.models[name] = m
	s.failLeft[name] = m.Fail.Times
}

// Requests returns copies of the recorded requests, oldest first.
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Request, len(s.reqs))
	for i, r := range s.reqs {
		out[i] = *r
	}
	return out
}

// Calls is how many requests named model (failed ones included).
func (s *Server) Calls(model string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls[model]
}

// WaitDone waits up to 5 seconds until every recorded request for model
// ("" for any) was handled to its end, and returns those requests; it
// fails tb if some were not.
func (s *Server) WaitDone(tb testing.TB, model string) []Request {
	tb.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		var mine []Request
		busy := 0
		for _, r := range s.Requests() {
			if model == "" || r.Model == model {
				mine = append(mine, r)
				if !r.Done {
					busy++
				}
			}
		}
		if busy == 0 {
			return mine
		}
		if time.Now().After(deadline) {
			tb.Fatalf("fakeprovider: %d requests for %q still running after 5s", busy, model)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// call is what a route handler gets: the decoded request and the model's
// behaviour.
type call struct {
	r     *http.Request
	rec   *Request
	model Model
	name  string
	body  []byte
}

// handle wraps a route: it records the request, checks the key, decodes
// the body's model and applies the model's failure and delay before fn.
func (s *Server) handle(fn func(w http.ResponseWriter, c *call)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		var head struct {
			Model  string `json:"model"`
			Stream bool   `json:"stream"`
		}
		_ = json.Unmarshal(body, &head)
		rec := &Request{Method: r.Method, Path: r.URL.Path, Header: r.Header.Clone(), Body: body, Model: head.Model, Stream: head.Stream}
		defer func() {
			s.mu.Lock()
			rec.Done, rec.ClientGone = true, r.Context().Err() != nil
			s.mu.Unlock()
		}()
		ok := s.protocol.authorized(r, s.APIKey)
		m, fail := s.begin(rec, ok)
		if !ok {
			s.protocol.writeError(w, http.StatusUnauthorized, "invalid api key")
			return
		}
		if fail.Status != 0 {
			if fail.RetryAfter > 0 {
				w.Header().Set("Retry-After", strconv.Itoa(int((fail.RetryAfter+time.Second-1)/time.Second)))
			}
			msg := fail.Message
			if msg == "" {
				msg = fmt.Sprintf("fake failure %d", fail.Status)
			}
			s.protocol.writeError(w, fail.Status, msg)
			return
		}
		if !s.wait(r, m.Delay) {
			return
		}
		fn(w, &call{r: r, rec: rec, model: m, name: head.Model, body: body})
	}
}

// begin records rec and returns its model's behaviour and the failure
// this call must return (Status 0: none); an unauthorized call uses up no
// failure.
func (s *Server) begin(rec *Request, authorized bool) (Model, Failure) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.noRecord {
		s.reqs = append(s.reqs, rec)
	}
	s.calls[rec.Model]++
	m, ok := s.models[rec.Model]
	if !ok {
		m = s.def
	}
	f := m.Fail
	if f.Status == 0 || !authorized {
		return m, Failure{}
	}
	if f.Times == 0 {
		return m, f
	}
	left, seen := s.failLeft[rec.Model]
	if !seen { // a Default model: its count starts at its first call
		left = f.Times
	}
	if left > 0 {
		s.failLeft[rec.Model] = left - 1
		return m, f
	}
	s.failLeft[rec.Model] = 0
	return m, Failure{}
}

// wait sleeps d unless the client leaves or the server closes first; it
// reports whether to go on.
func (s *Server) wait(r *http.Request, d time.Duration) bool {
	if d <= 0 {
		return r.Context().Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-r.Context().Done():
	case <-s.quit:
	}
	return false
}

// streamer writes server-sent events.
type streamer struct {
	s  *Server
	c  *call
	w  *bufio.Writer
	rc *http.ResponseController
}

func (s *Server) startStream(w http.ResponseWriter, c *call) *streamer {
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	w.WriteHeader(http.StatusOK)
	st := &streamer{s: s, c: c, w: bufio.NewWriter(w), rc: http.NewResponseController(w)}
	st.flush()
	return st
}

// event writes one event (name may be empty) with v as JSON data, or as
// is when v is a string.
func (st *streamer) event(name string, v any) {
	if name != "" {
		fmt.Fprintf(st.w, "event: %s\n", name)
	}
	data, ok := v.(string)
	if !ok {
		b, _ := json.Marshal(v)
		data = string(b)
	}
	fmt.Fprintf(st.w, "data: %s\n\n", data)
	st.flush()
}

func (st *streamer) flush() {
	_ = st.w.Flush()
	_ = st.rc.Flush()
}

// pace runs before content chunk i (from 0): the chunk delay, then a stall
// or a cut when the model asks for one. It reports whether to go on.
func (st *streamer) pace(i int) bool {
	m := st.c.model
	if m.StallAfter > 0 && i == m.StallAfter {
		select {
		case <-st.c.r.Context().Done():
		case <-st.s.quit:
		}
		return false
	}
	if m.CloseAfter > 0 && i == m.CloseAfter {
		panic(http.ErrAbortHandler) // net/http drops the connection mid-body
	}
	return st.s.wait(st.c.r, m.ChunkDelay)
}

// reply is the model's answer text.
func (c *call) reply() string {
	if c.model.Reply != "" {
		return c.model.Reply
	}
	return "Hello from " + c.name + "."
}

// usage is the model's prompt and completion tokens for prompt's text.
func (c *call) usage(prompt string) (in, out int) {
	in, out = c.model.PromptTokens, c.model.CompletionTokens
	if in == 0 {
		in = max(1, len(strings.Fields(prompt)))
	}
	if out == 0 {
		out = len(strings.Fields(c.reply()))
	}
	return in, out
}

// pieces splits the reply into n chunks (0: one per word, spaces kept).
func (c *call) pieces() []string {
	text := c.reply()
	n := c.model.Chunks
	if n <= 0 {
		var out []string
		for i, w := range strings.SplitAfter(text, " ") {
			if w != "" || i == 0 {
				out = append(out, w)
			}
		}
		return out
	}
	runes := []rune(text)
	out := make([]string, 0, n)
	for i := range n {
		out = append(out, string(runes[i*len(runes)/n:(i+1)*len(runes)/n]))
	}
	return out
}

// vector is a deterministic embedding of text.
func vector(text string, dims int) []float32 {
	if dims <= 0 {
		dims = 8
	}
	h := fnv.New64a()
	_, _ = h.Write([]byte(text))
	seed := h.Sum64()
	v := make([]float32, dims)
	for i := range v {
		seed = seed*6364136223846793005 + 1442695040888963407
		v[i] = float32(seed>>40)/float32(1<<24) - 0.5
	}
	return v
}

// id is a fresh response id.
func (s *Server) id(prefix string) string {
	return fmt.Sprintf("%s%06d", prefix, s.ids.Add(1))
}
