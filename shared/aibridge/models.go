package aibridge

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"regexp"
	"time"

	"github.com/unitenant/unitenant/shared/budget"
	"github.com/unitenant/unitenant/shared/fault"
)

// AutoModel asks for the tenant's highest-priority model.
const AutoModel = "auto"

var modelNamePattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._:/-]{0,99}$`)

// ValidModelName reports whether s may name a model (ai_model_config.model_name).
func ValidModelName(s string) bool { return modelNamePattern.MatchString(s) }

// Model types (ai_model_config.model_type).
const (
	TypeText       = "text"
	TypeImage      = "image"
	TypeAudio      = "audio"
	TypeMultimodal = "multimodal"
	TypeEmbedding  = "embedding"
)

// Endpoints a call is made on (ai_service_call_logs.endpoint).
const (
	EndpointChat       = "chat"
	EndpointCompletion = "completion"
	EndpointEmbedding  = "embedding"
)

// serves reports whether a model of type t can answer endpoint.
func serves(t, endpoint string) bool {
	if endpoint == EndpointEmbedding {
		return t == TypeEmbedding
	}
	return t == TypeText || t == TypeMultimodal
}

// Model is one model a tenant has enabled, with the tenant's settings.
type Model struct {
	ID            int64
	Name          string // what clients send
	DisplayName   string
	Type          string
	Provider      string // aiprovider kind
	Upstream      string // the provider's model id; empty: Name
	EndpointURL   string
	sealedKey     []byte
	Params        json.RawMessage // ai_model_config.model_parameters
	ContextWindow int
	InPrice       budget.Amount // per 1000 input tokens
	OutPrice      budget.Amount // per 1000 output tokens
	Currency      string
	Priority      int   // lower is tried first
	RPM, TPM      int   // the tenant's limits on this model; 0: none of its own
	DailyTokens   int64 // the tenant's tokens a UTC day on this model; 0: no limit
	// Fallbacks, when the tenant set custom_parameters.fallbacks, is the
	// explicit order of models to fall back to.
	Fallbacks []string
	// DefaultMaxTokens is model_parameters.max_tokens, 0 when unset.
	DefaultMaxTokens int
	Created          time.Time
}

// tenantModels reads the models tenantID has enabled and that are active,
// in priority order.
func tenantModels(ctx context.Context, db *sql.DB, tenantID int64) ([]Model, error) {
	rows, err := db.QueryContext(ctx, `SELECT m.id, m.model_name, m.display_name, m.model_type, m.provider,
			COALESCE(m.upstream_model, ''), COALESCE(m.endpoint_url, ''), m.api_key_encrypted, m.model_parameters,
			COALESCE(m.context_window, 0), m.input_price_per_1k, m.output_price_per_1k, m.currency,
			c.priority, c.custom_parameters, COALESCE(c.rpm_limit, 0), COALESCE(c.tpm_limit, 0), COALESCE(c.daily_token_limit, 0), m.created_at
		FROM tenant_ai_model_configs c JOIN ai_model_config m ON m.id = c.model_id
		WHERE c.tenant_id = ? AND c.is_enabled = 1 AND m.status = 'active'
		ORDER BY c.priority, m.id`, tenantID)
	if err != nil {
		return nil, fmt.Errorf("load tenant models: %w", err)
	}
	defer rows.Close()
	var out []Model
	for rows.Next() {
		var (
			m              Model
			params, custom sql.NullString
			in, outPrice   string
		)
		if err := rows.Scan(&m.ID, &m.Name, &m.DisplayName, &m.Type, &m.Provider, &m.Upstream, &m.EndpointURL, &m.sealedKey, &params,
			&m.ContextWindow, &in, &outPrice, &m.Currency, &m.Priority, &custom, &m.RPM, &m.TPM, &m.DailyTokens, &m.Created); err != nil {
			return nil, fmt.Errorf("load tenant models: %w", err)
		}
		if m.InPrice, err = budget.ParseAmount(in); err != nil {
			return nil, fmt.Errorf("model %s input price: %w", m.Name, err)
		}
		if m.OutPrice, err = budget.ParseAmount(outPrice); err != nil {
			return nil, fmt.Errorf("model %s output price: %w", m.Name, err)
		}
		if params.Valid {
			m.Params = json.RawMessage(params.String)
			var p struct {
				MaxTokens int `json:"max_tokens"`
			}
			if json.Unmarshal(m.Params, &p) == nil && p.MaxTokens > 0 {
				m.DefaultMaxTokens = p.MaxTokens
			}
		}
		if custom.Valid {
			var c struct {
				Fallbacks []string `json:"fallbacks"`
			}
			if json.Unmarshal([]byte(custom.String), &c) == nil {
				m.Fallbacks = c.Fallbacks
			}
		}
		out = append(out, m)
	}
	return out, rows.Err()
}

// ErrModelNotEnabled is the answer for a model the caller may not use.
func errModelNotEnabled(name string) error {
	return fault.New(fault.Forbidden, "model_not_enabled", "model %q is not enabled for this tenant", name)
}

// Chain picks the models one call may try, in order: the requested model
// (AutoModel or "" is the tenant's highest-priority model that serves the
// endpoint), then its fallbacks — the tenant's explicit list when it set one,
// followed transitively, else the other enabled models in priority order —
// each at most once, at most max in all. Embeddings never fall back: another
// model's vectors live in another space.
func Chain(enabled []Model, key *APIKey, endpoint, requested string, max int) ([]Model, error) {
	usable := make([]Model, 0, len(enabled))
	for _, m := range enabled {
		if key.Allows(m.Name) {
			usable = append(usable, m)
		}
	}
	var first *Model
	if requested == "" || requested == AutoModel {
		for i := range usable {
			if serves(usable[i].Type, endpoint) {
				first = &usable[i]
				break
			}
		}
		if first == nil {
			return nil, fault.New(fault.Forbidden, "model_not_enabled", "no %s model is enabled for this tenant", endpoint)
		}
	} else {
		for i := range usable {
			if usable[i].Name == requested {
				first = &usable[i]
				break
			}
		}
		if first == nil {
			return nil, errModelNotEnabled(requested)
		}
		if !serves(first.Type, endpoint) {
			return nil, fault.Field("model_type_mismatch", "model", fmt.Sprintf("%s is a %s model and cannot serve %s requests", first.Name, first.Type, endpoint))
		}
	}
	chain := []Model{*first}
	if endpoint == EndpointEmbedding || max <= 1 {
		return chain, nil
	}
	byName := make(map[string]*Model, len(usable))
	for i := range usable {
		byName[usable[i].Name] = &usable[i]
	}
	seen := map[int64]bool{first.ID: true}
	add := func(m *Model) bool {
		if m == nil || seen[m.ID] || !serves(m.Type, endpoint) {
			return false
		}
		seen[m.ID] = true
		chain = append(chain, *m)
		return len(chain) >= max
	}
	if len(first.Fallbacks) > 0 {
		// Breadth first over the explicit lists; seen ends any cycle.
		for i := 0; i < len(chain) && len(chain) < max; i++ {
			for _, name := range chain[i].Fallbacks {
				if add(byName[name]) {
					break
				}
			}
		}
		return chain, nil
	}
	for i := range usable {
		if add(&usable[i]) {
			break
		}
	}
	return chain, nil
}
