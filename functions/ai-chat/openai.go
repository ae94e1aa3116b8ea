package main

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/unitenant/unitenant/shared/aibridge"
	"github.com/unitenant/unitenant/shared/aiprovider"
	"github.com/unitenant/unitenant/shared/fault"
	"github.com/unitenant/unitenant/shared/httpapi"
	"github.com/unitenant/unitenant/shared/logging"
)

// maxRequestBody bounds an AI request (images inline as data: URLs can be
// large); the function's MaxBody is at least this.
const maxRequestBody = 8 << 20

// Response headers every answered call carries.
const (
	headerCallID = "X-Unitenant-Call-Id" // ai_service_call_logs.request_id
	headerModel  = "X-Unitenant-Model"   // the model that answered
)

// chatRoles are the message roles OpenAI's chat API knows.
var chatRoles = map[string]bool{"system": true, "developer": true, "user": true, "assistant": true, "tool": true, "function": true}

// unambiguous refuses a member of extra (those the request's type does not
// name exactly) that is one of the members of v's type but for case: Go's
// encoding/json matches member names regardless of case (and of Unicode
// folding: "\u212a" is "k"), and the members a type does not name travel
// on to the provider after the ones the bridge sets, so "MODEL" after the
// checked "model" would call, at the checked model's price, a model the
// tenant or the key may not use, and "MAX_TOKENS" would lift the cap the
// hold was made for. at locates the object ("" for the request,
// "messages[0]." for a message).
func unambiguous(extra aiprovider.Extra, v any, at string) error {
	if k, n := extra.Shadow(v); k != "" {
		return fault.Field("ambiguous_field", at+k, fmt.Sprintf("differs from %q only in case; member names are case-sensitive", n))
	}
	return nil
}

// validChat checks what the bridge relies on; providers judge the rest.
// modelRequired is OpenAI's rule; the seed's bridge defaults to "auto".
func validChat(req *aiprovider.ChatRequest, modelRequired bool) error {
	if err := unambiguous(req.Extra, aiprovider.ChatRequest{}, ""); err != nil {
		return err
	}
	if err := validModel(req.Model, modelRequired); err != nil {
		return err
	}
	if len(req.Messages) == 0 {
		return fault.Field("invalid_messages", "messages", "must hold at least one message")
	}
	for i, m := range req.Messages {
		if err := unambiguous(m.Extra, aiprovider.Message{}, fmt.Sprintf("messages[%d].", i)); err != nil {
			return err
		}
		if !chatRoles[m.Role] {
			return fault.Field("invalid_messages", fmt.Sprintf("messages[%d].role", i), fmt.Sprintf("%q is not a chat role", m.Role))
		}
		if _, err := m.Content.Parts(); err != nil {
			return fault.Field("invalid_messages", fmt.Sprintf("messages[%d].content", i), "must be a string or an array of content parts")
		}
	}
	return validSampling(req.Sampling, req.MaxCompletionTokens)
}

func validModel(model string, required bool) error {
	switch {
	case model == "" && required:
		return fault.Field("model_required", "model", "is required (a model id from /v1/models, or \"auto\")")
	case model != "" && model != aibridge.AutoModel && !aibridge.ValidModelName(model):
		return fault.Field("invalid_model", "model", "is not a model id")
	}
	return nil
}

func validSampling(s aiprovider.Sampling, maxCompletion *int) error {
	switch {
	case s.MaxTokens != nil && *s.MaxTokens < 1:
		return fault.Field("invalid_max_tokens", "max_tokens", "must be at least 1")
	case maxCompletion != nil && *maxCompletion < 1:
		return fault.Field("invalid_max_tokens", "max_completion_tokens", "must be at least 1")
	case s.Temperature != nil && (*s.Temperature < 0 || *s.Temperature > 2):
		return fault.Field("invalid_temperature", "temperature", "must be between 0 and 2")
	case s.TopP != nil && (*s.TopP < 0 || *s.TopP > 1):
		return fault.Field("invalid_top_p", "top_p", "must be between 0 and 1")
	}
	return nil
}

// chatCompletions is POST /v1/chat/completions.
func (h *handler) chatCompletions(w http.ResponseWriter, r *http.Request, p *principal, fail failFunc) {
	h.chat(w, r, p, fail, true, func(resp *aiprovider.ChatResponse, met aibridge.Metering) { writeOpenAI(w, p, met, resp) })
}

// chat decodes and checks a chat request, then streams it or makes the
// call and hands the answer to answer; both chat routes run it.
func (h *handler) chat(w http.ResponseWriter, r *http.Request, p *principal, fail failFunc, modelRequired bool,
	answer func(*aiprovider.ChatResponse, aibridge.Metering)) {
	var req aiprovider.ChatRequest
	err := httpapi.DecodeLimit(r, &req, maxRequestBody)
	if err == nil {
		err = validChat(&req, modelRequired)
	}
	if err != nil {
		fail(w, r, h.log, err)
		return
	}
	if req.Stream {
		h.stream(w, r, p, req, fail)
		return
	}
	resp, met, err := h.bridge.Chat(r.Context(), p.caller, req)
	if err != nil {
		fail(w, r, h.log, err)
		return
	}
	answer(resp, met)
}

// stream relays a streamed chat as server-sent events, passing the
// provider's chunks through as they come. Until the first chunk a failure
// is an ordinary error answer; after it, an error event ends the stream.
func (h *handler) stream(w http.ResponseWriter, r *http.Request, p *principal, req aiprovider.ChatRequest, fail failFunc) {
	includeUsage := req.StreamOptions != nil && req.StreamOptions.IncludeUsage
	rc := http.NewResponseController(w)
	started := false
	met, err := h.bridge.ChatStream(r.Context(), p.caller, req, func(m aibridge.Model, chunk aiprovider.Chunk) error {
		if !started {
			hd := w.Header()
			hd.Set("Content-Type", "text/event-stream")
			hd.Set("Cache-Control", "no-cache")
			hd.Set("X-Accel-Buffering", "no") // proxies must not hold events back
			hd.Set(headerModel, m.Name)
			// Known once the stream is over: sent after it, as trailers
			// (behind a gateway that buffers the stream, as headers).
			hd.Set("Trailer", headerCallID+", Server-Timing")
			w.WriteHeader(http.StatusOK)
			started = true
		}
		if chunk.UsageOnly() && !includeUsage {
			return nil // asked for upstream so the call is metered; not for this client
		}
		if _, err := fmt.Fprintf(w, "data: %s\n\n", chunk.Raw); err != nil {
			return err
		}
		return rc.Flush()
	})
	if started {
		defer func() {
			meteredHeaders(w, p, met)
			// The server sent the declaration already; a gateway that
			// buffers the stream sends these as headers, declaring nothing.
			w.Header().Del("Trailer")
		}()
	}
	switch {
	case err != nil && !started:
		fail(w, r, h.log, err)
	case err != nil:
		h.log.WarnContext(r.Context(), "stream ended by a failure", "call", met.CallID, "err", err)
		fe := openAIError(r, h.log, err)
		b, _ := json.Marshal(fe)
		fmt.Fprintf(w, "data: %s\n\n", b)
		_ = rc.Flush()
	default:
		fmt.Fprint(w, "data: [DONE]\n\n")
		_ = rc.Flush()
	}
}

// completions is POST /v1/completions.
func (h *handler) completions(w http.ResponseWriter, r *http.Request, p *principal, fail failFunc) {
	metered(h, w, r, p, fail, decodeCompletion(true), h.bridge.Complete,
		func(resp *aiprovider.CompletionResponse, met aibridge.Metering) { writeOpenAI(w, p, met, resp) })
}

// metered decodes a request, makes its metered call and hands the answer
// to answer; the completion and embedding routes of both shapes run it.
func metered[Req, Resp any](h *handler, w http.ResponseWriter, r *http.Request, p *principal, fail failFunc,
	decode func(*http.Request, *Req) error, call func(context.Context, aibridge.Caller, Req) (Resp, aibridge.Metering, error),
	answer func(Resp, aibridge.Metering)) {
	var req Req
	if err := decode(r, &req); err != nil {
		fail(w, r, h.log, err)
		return
	}
	resp, met, err := call(r.Context(), p.caller, req)
	if err != nil {
		fail(w, r, h.log, err)
		return
	}
	answer(resp, met)
}

// decodeCompletion reads and checks a completion request.
func decodeCompletion(modelRequired bool) func(*http.Request, *aiprovider.CompletionRequest) error {
	return func(r *http.Request, req *aiprovider.CompletionRequest) error {
		return readCompletion(r, req, modelRequired)
	}
}

func readCompletion(r *http.Request, req *aiprovider.CompletionRequest, modelRequired bool) error {
	if err := httpapi.DecodeLimit(r, req, maxRequestBody); err != nil {
		return err
	}
	if err := unambiguous(req.Extra, aiprovider.CompletionRequest{}, ""); err != nil {
		return err
	}
	if err := validModel(req.Model, modelRequired); err != nil {
		return err
	}
	if req.Prompt.IsZero() {
		return fault.Field("invalid_prompt", "prompt", "is required")
	}
	if err := fewInputs(req.Prompt, "prompt"); err != nil {
		return err
	}
	if req.Stream {
		return fault.Field("unsupported", "stream", "streaming is offered on chat completions only")
	}
	return validSampling(req.Sampling, nil)
}

// embeddings is POST /v1/embeddings.
func (h *handler) embeddings(w http.ResponseWriter, r *http.Request, p *principal, fail failFunc) {
	metered(h, w, r, p, fail, decodeEmbedding(true), h.bridge.Embed,
		func(resp *aiprovider.EmbeddingResponse, met aibridge.Metering) { writeOpenAI(w, p, met, resp) })
}

// decodeEmbedding reads and checks an embeddings request.
func decodeEmbedding(modelRequired bool) func(*http.Request, *aiprovider.EmbeddingRequest) error {
	return func(r *http.Request, req *aiprovider.EmbeddingRequest) error {
		return readEmbedding(r, req, modelRequired)
	}
}

func readEmbedding(r *http.Request, req *aiprovider.EmbeddingRequest, modelRequired bool) error {
	if err := httpapi.DecodeLimit(r, req, maxRequestBody); err != nil {
		return err
	}
	if err := unambiguous(req.Extra, aiprovider.EmbeddingRequest{}, ""); err != nil {
		return err
	}
	if err := validModel(req.Model, modelRequired); err != nil {
		return err
	}
	if req.Input.IsZero() {
		return fault.Field("invalid_input", "input", "is required")
	}
	return fewInputs(req.Input, "input")
}

// maxInputs is the most strings a completion's prompt or an embedding's
// input may hold: OpenAI's limit for embedding inputs. Each prompt is a
// completion the provider writes, held for and counted as one, and OpenAI
// documents no limit for prompts of its own, so they are held to the same.
// The seed's routes and OpenAI's decode through here, before anything is
// counted, held or sent.
const maxInputs = 2048

// fewInputs refuses a prompt or input array (member) over maxInputs.
func fewInputs(s aiprovider.Strings, member string) error {
	if n := len(s.Values); n > maxInputs {
		return fault.Field("invalid_"+member, member, fmt.Sprintf("must hold at most %d items, not %d", maxInputs, n))
	}
	return nil
}

// openAIModel is an entry of GET /v1/models.
type openAIModel struct {
	ID      string `json:"id"`
	Object  string `json:"object"`
	Created int64  `json:"created"`
	OwnedBy string `json:"owned_by"`
}

// models is GET /v1/models: what the caller may use.
func (h *handler) models(w http.ResponseWriter, r *http.Request, p *principal, fail failFunc) {
	ms, err := h.bridge.Models(r.Context(), p.caller)
	if err != nil {
		fail(w, r, h.log, err)
		return
	}
	list := struct {
		Object string        `json:"object"`
		Data   []openAIModel `json:"data"`
	}{Object: "list", Data: make([]openAIModel, 0, len(ms))}
	for _, m := range ms {
		list.Data = append(list.Data, openAIModel{ID: m.Name, Object: "model", Created: m.Created.Unix(), OwnedBy: m.Provider})
	}
	writeJSON(w, http.StatusOK, list)
}

// writeOpenAI answers a metered call's response as OpenAI does.
func writeOpenAI(w http.ResponseWriter, p *principal, met aibridge.Metering, v any) {
	meteredHeaders(w, p, met)
	w.Header().Set(headerModel, met.Model.Name)
	writeJSON(w, http.StatusOK, v)
}

// meteredHeaders sets the headers of a metered call's whole answer — or
// the trailers of a streamed one: its call id, and where its time went
// (Server-Timing): authenticating the caller, the call's own phases
// (aibridge.Timing; a stream's provider phase is the whole stream), and all
// of it from the route's start.
func meteredHeaders(w http.ResponseWriter, p *principal, met aibridge.Metering) {
	w.Header().Set(headerCallID, met.CallID)
	w.Header().Set("Server-Timing", "auth;dur="+aibridge.Millis(p.authed.Sub(p.start))+", "+met.Timing.ServerTiming()+
		", total;dur="+aibridge.Millis(time.Since(p.start)))
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		status, b = http.StatusInternalServerError, []byte(`{"error":{"message":"response encoding failed","type":"api_error","param":null,"code":"internal"}}`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

// openAIErrorBody is OpenAI's error answer.
type openAIErrorBody struct {
	Error openAIErrorDetail `json:"error"`
}

type openAIErrorDetail struct {
	Message string  `json:"message"`
	Type    string  `json:"type"`
	Param   *string `json:"param"`
	Code    string  `json:"code"`
}

// openAIType is the error type OpenAI gives a status.
func openAIType(status int) string {
	switch {
	case status == http.StatusUnauthorized:
		return "authentication_error"
	case status == http.StatusPaymentRequired:
		return "insufficient_quota"
	case status == http.StatusForbidden:
		return "permission_error"
	case status == http.StatusNotFound:
		return "not_found_error"
	case status == http.StatusTooManyRequests:
		return "rate_limit_error"
	case status >= 500:
		return "api_error"
	}
	return "invalid_request_error"
}

// openAIError is err as OpenAI's error body; internal errors are logged and
// shown only as "internal" with the request id.
func openAIError(r *http.Request, log *slog.Logger, err error) openAIErrorBody {
	fe, ok := fault.As(err)
	if !ok || fe.Kind == fault.Internal {
		log.ErrorContext(r.Context(), "request failed", "method", r.Method, "path", r.URL.Path, "err", err)
		fe = &fault.Error{Kind: fault.Internal, Code: "internal",
			Message: "internal error; quote the request id " + logging.RequestID(r.Context()) + " when reporting it"}
	}
	d := openAIErrorDetail{Message: fe.Message, Type: openAIType(httpapi.StatusOf(fe.Kind)), Code: fe.Code}
	for field := range fe.Fields {
		d.Param = &field
		break
	}
	return openAIErrorBody{Error: d}
}

// openAIFail answers err in OpenAI's error shape, with the status of its
// kind and Retry-After when it has one.
func openAIFail(w http.ResponseWriter, r *http.Request, log *slog.Logger, err error) {
	body := openAIError(r, log, err)
	if fe, ok := fault.As(err); ok && fe.RetryAfter > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(max(int(fe.RetryAfter.Seconds()), 1)))
	}
	status := http.StatusInternalServerError
	if fe, ok := fault.As(err); ok {
		status = httpapi.StatusOf(fe.Kind)
	}
	writeJSON(w, status, body)
}
