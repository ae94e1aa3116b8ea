package main

import (
	"encoding/json"
	"net/http"
	"strconv"
	"time"

	"github.com/unitenant/unitenant/shared/aibridge"
	"github.com/unitenant/unitenant/shared/aiprovider"
	"github.com/unitenant/unitenant/shared/fault"
	"github.com/unitenant/unitenant/shared/httpapi"
	"github.com/unitenant/unitenant/shared/lifecycle"
)

// The seed's AIBridge shapes: {success, data: {message, usage: {inputTokens,
// outputTokens, totalTokens, cost, responseTime}}}. The model may be left
// out ("auto"); the rest of a request is OpenAI's.

// seedUsage is the seed's usage block; cost is what the tenant was charged,
// responseTime is in milliseconds.
type seedUsage struct {
	InputTokens  int         `json:"inputTokens"`
	OutputTokens int         `json:"outputTokens"`
	TotalTokens  int         `json:"totalTokens"`
	Cost         json.Number `json:"cost"`
	ResponseTime int64       `json:"responseTime"`
	Source       string      `json:"source"` // provider | estimated
}

func usageOf(m aibridge.Metering) seedUsage {
	return seedUsage{InputTokens: m.InputTokens, OutputTokens: m.OutputTokens, TotalTokens: m.TotalTokens,
		Cost: json.Number(trimZeros(m.Cost.String())), ResponseTime: m.ResponseTime.Milliseconds(), Source: m.UsageSource}
}

// trimZeros drops a decimal's trailing zeros: 0.000200 -> 0.0002.
func trimZeros(s string) string {
	for len(s) > 1 && s[len(s)-1] == '0' {
		s = s[:len(s)-1]
	}
	if s[len(s)-1] == '.' {
		s = s[:len(s)-1]
	}
	return s
}

type seedChat struct {
	Message      string    `json:"message"`
	Model        string    `json:"model"`
	FinishReason string    `json:"finishReason"`
	CallID       string    `json:"callId"`
	Attempts     int       `json:"attempts"`
	Usage        seedUsage `json:"usage"`
}

// bridgeChat is POST /api/v1/ai/bridge/chat.
func (h *handler) bridgeChat(w http.ResponseWriter, r *http.Request, p *principal, fail failFunc) {
	h.chat(w, r, p, fail, false, func(resp *aiprovider.ChatResponse, met aibridge.Metering) {
		out := seedChat{Model: met.Model.Name, CallID: met.CallID, Attempts: met.Attempts, Usage: usageOf(met)}
		if len(resp.Choices) > 0 {
			out.Message, out.FinishReason = resp.Choices[0].Message.Content.Text(), resp.Choices[0].FinishReason
		}
		meteredHeaders(w, p, met)
		httpapi.OK(w, r, out)
	})
}

type seedCompletion struct {
	Text         string    `json:"text"`
	Model        string    `json:"model"`
	FinishReason string    `json:"finishReason"`
	CallID       string    `json:"callId"`
	Attempts     int       `json:"attempts"`
	Usage        seedUsage `json:"usage"`
}

// bridgeCompletion is POST /api/v1/ai/bridge/completion.
func (h *handler) bridgeCompletion(w http.ResponseWriter, r *http.Request, p *principal, fail failFunc) {
	metered(h, w, r, p, fail, decodeCompletion(false), h.bridge.Complete, func(resp *aiprovider.CompletionResponse, met aibridge.Metering) {
		out := seedCompletion{Model: met.Model.Name, CallID: met.CallID, Attempts: met.Attempts, Usage: usageOf(met)}
		if len(resp.Choices) > 0 {
			out.Text, out.FinishReason = resp.Choices[0].Text, resp.Choices[0].FinishReason
		}
		meteredHeaders(w, p, met)
		httpapi.OK(w, r, out)
	})
}

type seedEmbedding struct {
	// Embedding is the first input's vector (the seed sends one text);
	// Embeddings has every input's, in order.
	Embedding  json.RawMessage   `json:"embedding"`
	Embeddings []json.RawMessage `json:"embeddings"`
	Model      string            `json:"model"`
	CallID     string            `json:"callId"`
	Usage      seedUsage         `json:"usage"`
}

// bridgeEmbedding is POST /api/v1/ai/bridge/embedding.
func (h *handler) bridgeEmbedding(w http.ResponseWriter, r *http.Request, p *principal, fail failFunc) {
	metered(h, w, r, p, fail, decodeEmbedding(false), h.bridge.Embed, func(resp *aiprovider.EmbeddingResponse, met aibridge.Metering) {
		out := seedEmbedding{Model: met.Model.Name, CallID: met.CallID, Usage: usageOf(met), Embeddings: make([]json.RawMessage, len(resp.Data))}
		for _, e := range resp.Data {
			if e.Index >= 0 && e.Index < len(out.Embeddings) {
				out.Embeddings[e.Index] = e.Embedding
			}
		}
		if len(out.Embeddings) > 0 {
			out.Embedding = out.Embeddings[0]
		}
		meteredHeaders(w, p, met)
		httpapi.OK(w, r, out)
	})
}

// seedModel is a model as GET /api/v1/ai/bridge/models lists it.
type seedModel struct {
	Name             string      `json:"name"`
	DisplayName      string      `json:"displayName"`
	ModelType        string      `json:"modelType"`
	Provider         string      `json:"provider"`
	Priority         int         `json:"priority"`
	ContextWindow    int         `json:"contextWindow,omitempty"`
	InputPricePer1k  json.Number `json:"inputPricePer1k"`
	OutputPricePer1k json.Number `json:"outputPricePer1k"`
	Currency         string      `json:"currency"`
}

// bridgeModels is GET /api/v1/ai/bridge/models.
func (h *handler) bridgeModels(w http.ResponseWriter, r *http.Request, p *principal, fail failFunc) {
	ms, err := h.bridge.Models(r.Context(), p.caller)
	if err != nil {
		fail(w, r, h.log, err)
		return
	}
	out := make([]seedModel, 0, len(ms))
	for _, m := range ms {
		out = append(out, seedModel{Name: m.Name, DisplayName: m.DisplayName, ModelType: m.Type, Provider: m.Provider, Priority: m.Priority,
			ContextWindow: m.ContextWindow, InputPricePer1k: json.Number(trimZeros(m.InPrice.String())),
			OutputPricePer1k: json.Number(trimZeros(m.OutPrice.String())), Currency: m.Currency})
	}
	httpapi.OK(w, r, map[string]any{"models": out})
}

// newKeyRequest is POST /api/v1/ai/keys' body.
type newKeyRequest struct {
	Name      string     `json:"name"`
	Models    []string   `json:"models"`
	RPM       int        `json:"rpm"`
	TPM       int        `json:"tpm"`
	ExpiresAt *time.Time `json:"expiresAt"`
}

// createdKey is the one answer that shows a key's secret.
type createdKey struct {
	aibridge.APIKey
	Key string `json:"key"`
}

// createKey is POST /api/v1/ai/keys.
func (h *handler) createKey(w http.ResponseWriter, r *http.Request, p *principal, fail failFunc) {
	if err := tenantAdmin(p); err != nil {
		fail(w, r, h.log, err)
		return
	}
	var in newKeyRequest
	if err := httpapi.Decode(r, &in); err != nil {
		fail(w, r, h.log, err)
		return
	}
	if len(in.Models) > 0 {
		if err := h.enabledModels(r, p, in.Models); err != nil {
			fail(w, r, h.log, err)
			return
		}
	}
	k, secret, err := aibridge.CreateKey(r.Context(), h.db, p.tenant.ID,
		aibridge.NewKey{Name: in.Name, Models: in.Models, RPMLimit: in.RPM, TPMLimit: in.TPM, ExpiresAt: in.ExpiresAt, CreatedBy: p.claims.SubjectID()}, h.now())
	if err == nil {
		err = lifecycle.Audit(r.Context(), h.db, h.actor(r, p), "ai_key.create", p.tenant.ID, p.tenant.Code, nil,
			map[string]any{"id": k.ID, "name": k.Name, "prefix": k.Prefix, "models": k.Models}, "")
	}
	if err != nil {
		fail(w, r, h.log, err)
		return
	}
	httpapi.JSON(w, r, http.StatusCreated, createdKey{APIKey: k, Key: secret})
}

// enabledModels refuses model names the tenant has not enabled.
func (h *handler) enabledModels(r *http.Request, p *principal, names []string) error {
	ms, err := h.bridge.Models(r.Context(), p.caller)
	if err != nil {
		return err
	}
	enabled := map[string]bool{}
	for _, m := range ms {
		enabled[m.Name] = true
	}
	for _, n := range names {
		if !enabled[n] {
			return fault.Field("model_not_enabled", "models", "model "+strconv.Quote(n)+" is not enabled for this tenant")
		}
	}
	return nil
}

// listKeys is GET /api/v1/ai/keys.
func (h *handler) listKeys(w http.ResponseWriter, r *http.Request, p *principal, fail failFunc) {
	if err := tenantAdmin(p); err != nil {
		fail(w, r, h.log, err)
		return
	}
	keys, err := aibridge.ListKeys(r.Context(), h.db, p.tenant.ID)
	if err != nil {
		fail(w, r, h.log, err)
		return
	}
	httpapi.OK(w, r, map[string]any{"keys": keys})
}

// revokeKey is DELETE /api/v1/ai/keys/{id}.
func (h *handler) revokeKey(w http.ResponseWriter, r *http.Request, p *principal, fail failFunc) {
	if err := tenantAdmin(p); err != nil {
		fail(w, r, h.log, err)
		return
	}
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil || id <= 0 {
		fail(w, r, h.log, fault.Field("invalid_id", "id", "must be a positive integer"))
		return
	}
	k, err := aibridge.RevokeKey(r.Context(), h.db, p.tenant.ID, id, h.now())
	if err == nil {
		err = lifecycle.Audit(r.Context(), h.db, h.actor(r, p), "ai_key.revoke", p.tenant.ID, p.tenant.Code, nil, map[string]any{"id": k.ID, "prefix": k.Prefix}, "")
	}
	if err != nil {
		fail(w, r, h.log, err)
		return
	}
	httpapi.OK(w, r, k)
}

func (h *handler) actor(r *http.Request, p *principal) lifecycle.Actor {
	a := lifecycle.Actor{Type: "user", Name: p.role, IP: p.caller.IP, UserAgent: p.caller.UserAgent, RequestID: p.caller.RequestID}
	if p.claims != nil {
		a.ID = p.claims.SubjectID()
	}
	return a
}
