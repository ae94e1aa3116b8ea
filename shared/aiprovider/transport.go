package aiprovider

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"
)

// maxResponseBody bounds a non-streaming answer (a large embeddings batch
// fits with room to spare).
const maxResponseBody = 64 << 20

// exchange is one HTTP call to a provider: who it is, where it goes, which
// headers authenticate it.
type exchange struct {
	client   *http.Client
	provider string
	url      string
	header   http.Header
}

// newExchange prepares a call to path under t's base URL (or fallback) with
// the kind's auth headers and t's extra headers.
func newExchange(c *http.Client, provider, fallback string, t Target, path string, auth http.Header) exchange {
	base := t.BaseURL
	if base == "" {
		base = fallback
	}
	h := auth
	for k, v := range t.ExtraHeaders {
		h.Set(k, v)
	}
	h.Set("Content-Type", "application/json")
	return exchange{client: client(c), provider: provider, url: strings.TrimRight(base, "/") + path, header: h}
}

// send posts body as JSON and returns a 2xx response, or the error a
// failed exchange means (see classify).
func (x exchange) send(ctx context.Context, body any) (*http.Response, error) {
	b, err := json.Marshal(body)
	if err != nil {
		return nil, fmt.Errorf("%s: encode request: %w", x.provider, err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, x.url, bytes.NewReader(b))
	if err != nil {
		return nil, fmt.Errorf("%s: build request: %w", x.provider, err)
	}
	req.Header = x.header.Clone()
	resp, err := x.client.Do(req)
	if err != nil {
		return nil, classify(ctx, x.provider, err)
	}
	if resp.StatusCode/100 != 2 {
		defer resp.Body.Close()
		return nil, errorFromResponse(x.provider, resp)
	}
	return resp, nil
}

// call is a whole non-streaming exchange bounded by timeout: it posts body
// and decodes the answer into out.
func (x exchange) call(ctx context.Context, timeout time.Duration, body, out any) error {
	if timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeoutCause(ctx, timeout, errCallTimeout)
		defer cancel()
	}
	resp, err := x.send(ctx, body)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, maxResponseBody))
	if err != nil {
		return classify(ctx, x.provider, err)
	}
	if err := json.Unmarshal(raw, out); err != nil {
		return &ProviderError{Provider: x.provider, Status: resp.StatusCode, Type: ErrTypeInvalidResponse,
			Message: "unreadable response: " + err.Error(), Retryable: true, Err: err}
	}
	return nil
}

// sseEvent is one server-sent event.
type sseEvent struct {
	name string
	data []byte
}

// sseReader splits a text/event-stream into events.
type sseReader struct {
	r *bufio.Reader
}

// next returns the next event; io.EOF at the end of the stream. An event
// whose final blank line is missing at the end still counts; a cut line
// does not.
func (s *sseReader) next() (sseEvent, error) {
	var ev sseEvent
	var data [][]byte
	pending := false
	for {
		line, err := s.r.ReadBytes('\n')
		if err != nil {
			if errors.Is(err, io.EOF) && pending {
				return sseEvent{name: ev.name, data: bytes.Join(data, []byte("\n"))}, nil
			}
			return sseEvent{}, err
		}
		line = bytes.TrimRight(line, "\r\n")
		if len(line) == 0 {
			if pending {
				return sseEvent{name: ev.name, data: bytes.Join(data, []byte("\n"))}, nil
			}
			continue
		}
		if line[0] == ':' { // a comment, e.g. a keep-alive
			continue
		}
		field, value, _ := bytes.Cut(line, []byte(":"))
		value = bytes.TrimPrefix(value, []byte(" "))
		switch string(field) {
		case "data":
			data = append(data, value)
			pending = true
		case "event":
			ev.name = string(value)
			pending = true
		}
	}
}

// sseStream is a provider's event stream under an idle timeout; the
// provider-specific streams read events from it.
type sseStream struct {
	provider string
	ctx      context.Context
	cancel   context.CancelCauseFunc
	body     io.ReadCloser
	events   sseReader
	idle     time.Duration
	timer    *time.Timer
	once     sync.Once
	err      error // sticky: io.EOF after the last event, else why it ended
}

// openStream posts body and returns the event stream of the answer.
func (x exchange) openStream(ctx context.Context, idle time.Duration, body any) (*sseStream, error) {
	ctx, cancel := context.WithCancelCause(ctx)
	s := &sseStream{provider: x.provider, ctx: ctx, cancel: cancel, idle: idle}
	if idle > 0 {
		s.timer = time.AfterFunc(idle, func() { cancel(fmt.Errorf("%w: nothing for %s", errIdleTimeout, idle)) })
	}
	resp, err := x.send(ctx, body)
	if err != nil {
		s.stop()
		return nil, err
	}
	s.body = resp.Body
	s.events = sseReader{r: bufio.NewReaderSize(resp.Body, 16<<10)}
	return s, nil
}

// next returns the next event and restarts the idle clock. Once the
// stream ended (end, a failure, Close) it returns why, for good; a body
// that ends before end was called is an interruption.
func (s *sseStream) next() (sseEvent, error) {
	if s.err != nil {
		return sseEvent{}, s.err
	}
	ev, err := s.events.next()
	switch {
	case errors.Is(err, io.EOF) && s.ctx.Err() == nil:
		return ev, s.fail(&ProviderError{Provider: s.provider, Type: ErrTypeStreamInterrupted,
			Message: "stream ended before its last event", Retryable: true})
	case err != nil:
		return ev, s.fail(classify(s.ctx, s.provider, err))
	}
	if s.timer != nil {
		s.timer.Reset(s.idle)
	}
	return ev, nil
}

// fail ends the stream with err and returns it.
func (s *sseStream) fail(err error) error {
	s.err = err
	s.stop()
	return err
}

// end marks the last event read: the stream is released and Next gives
// io.EOF from now on.
func (s *sseStream) end() {
	s.err = io.EOF
	s.finish()
}

// Close implements Stream for the streams embedding sseStream.
func (s *sseStream) Close() error {
	if s.err == nil {
		s.err = fmt.Errorf("%s: %w", s.provider, ErrStreamClosed)
	}
	s.stop()
	return nil
}

// finish releases the stream after its last event, reading the little
// that may follow so the connection can be reused.
func (s *sseStream) finish() {
	s.once.Do(func() {
		if s.timer != nil {
			s.timer.Stop()
		}
		_, _ = io.Copy(io.Discard, io.LimitReader(s.body, 4<<10))
		_ = s.body.Close()
		s.cancel(nil)
	})
}

// stop aborts the stream: the connection is closed, not reused.
func (s *sseStream) stop() {
	s.once.Do(func() {
		if s.timer != nil {
			s.timer.Stop()
		}
		s.cancel(errors.New("stream closed"))
		if s.body != nil {
			_ = s.body.Close()
		}
	})
}
