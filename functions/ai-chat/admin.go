package main

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/unitenant/unitenant/shared/aibridge"
	"github.com/unitenant/unitenant/shared/aiprovider"
	"github.com/unitenant/unitenant/shared/auth"
	"github.com/unitenant/unitenant/shared/budget"
	"github.com/unitenant/unitenant/shared/fault"
	"github.com/unitenant/unitenant/shared/httpapi"
	"github.com/unitenant/unitenant/shared/identity"
	"github.com/unitenant/unitenant/shared/logging"
	"github.com/unitenant/unitenant/shared/serverless"
	"github.com/unitenant/unitenant/shared/sqldb"
	"github.com/unitenant/unitenant/shared/tenantapp"
)

// adminRoutes registers the platform admins' AI routes (admin tokens;
// operator reads, admin manages). Prices and balances are exact JSON numbers
// in answers and a JSON number or a decimal string in requests; a model's
// provider API key is write-only (answers say hasApiKey).
//
//	GET    /api/admin/ai/models                         ?status=&provider=
//	POST   /api/admin/ai/models                         create a model → 201
//	GET    /api/admin/ai/models/{name}                  one
//	PUT    /api/admin/ai/models/{name}                  change the fields given (apiKey "" removes the key; the name stays)
//	DELETE /api/admin/ai/models/{name}                  delete it and every tenant's setting for it
//	GET    /api/admin/ai/tenants/{code}/models          the tenant's model settings
//	PUT    /api/admin/ai/tenants/{code}/models/{name}   set one (upsert): enabled, priority, customParameters, rpm, tpm, dailyTokenLimit
//	GET    /api/admin/ai/tenants/{code}/account         balance, creditLimit, reserved, available, ...
//	PUT    /api/admin/ai/tenants/{code}/account         balance, creditLimit, paymentStatus, billingCycle (created if missing)
//
// Model names may hold "/" (e.g. deepseek-ai/DeepSeek-V3), hence {name...}.
func (h *handler) adminRoutes(rt *httpapi.Router) {
	read, manage := h.adminRole("operator"), h.adminRole("admin")
	rt.Handle("GET /api/admin/ai/models", read(h.adminListModels))
	rt.Handle("POST /api/admin/ai/models", manage(h.adminCreateModel))
	rt.Handle("GET /api/admin/ai/models/{name...}", read(h.adminGetModel))
	rt.Handle("PUT /api/admin/ai/models/{name...}", manage(h.adminUpdateModel))
	rt.Handle("DELETE /api/admin/ai/models/{name...}", manage(h.adminDeleteModel))
	rt.Handle("GET /api/admin/ai/tenants/{code}/models", read(h.adminTenantModels))
	rt.Handle("PUT /api/admin/ai/tenants/{code}/models/{name...}", manage(h.adminSetTenantModel))
	rt.Handle("GET /api/admin/ai/tenants/{code}/account", read(h.adminGetAccount))
	rt.Handle("PUT /api/admin/ai/tenants/{code}/account", manage(h.adminSetAccount))
}

// adminEndpoint is an admin route's logic: its status and result, or an
// error for the envelope.
type adminEndpoint func(r *http.Request, c *auth.Claims) (int, any, error)

// adminRole authenticates an admin token (401 for none, a bad one or a
// tenant's) and requires at least the role least (403), from the token and
// from the account as it is now (an admin deleted, disabled or demoted
// since the token was issued acts as they are now). Each route does it
// itself: this function also serves tenants, whose credentials must never
// reach these routes, whatever newHandler wraps around them.
func (h *handler) adminRole(least string) func(adminEndpoint) http.Handler {
	authenticate := auth.Require(h.verifier, h.log, auth.AudienceAdmin)
	return func(fn adminEndpoint) http.Handler {
		return authenticate(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			c, _ := auth.FromContext(r.Context())
			if err := identity.RequireAdmin(r.Context(), h.db, c, least); err != nil {
				httpapi.Fail(w, r, h.log, err)
				return
			}
			status, data, err := fn(r, c)
			if err != nil {
				httpapi.Fail(w, r, h.log, err)
				return
			}
			httpapi.JSON(w, r, status, data)
		}))
	}
}

// adminQuerier is a *sql.DB or a *sql.Tx.
type adminQuerier interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// adminAudit writes one audit_logs row in lifecycle.Audit's shape, which
// cannot be used here: it prefixes every action with "tenant." and targets
// a tenant, and models are nobody's. before and after must hold no secret;
// nil is stored as NULL.
func adminAudit(ctx context.Context, tx *sql.Tx, r *http.Request, c *auth.Claims, action, targetType, targetID string, tenantID int64, before, after any) error {
	state := func(v any) (any, error) {
		if v == nil {
			return nil, nil
		}
		b, err := json.Marshal(v)
		return string(b), err
	}
	b, err := state(before)
	if err != nil {
		return fmt.Errorf("audit %s: %w", action, err)
	}
	a, err := state(after)
	if err != nil {
		return fmt.Errorf("audit %s: %w", action, err)
	}
	ua := sqldb.Text(r.UserAgent(), 500)
	_, err = tx.ExecContext(ctx, `INSERT INTO audit_logs (actor_type, actor_id, actor_name, action, target_type, target_id, tenant_id,
		before_state, after_state, request_id, ip_address, user_agent) VALUES ('admin', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		adminNull(c.SubjectID()), adminNull(c.Role), action, targetType, targetID, adminNull(tenantID), b, a,
		adminNull(logging.RequestID(ctx)), adminNull(serverless.ClientIP(r)), adminNull(ua))
	if err != nil {
		return fmt.Errorf("audit %s: %w", action, err)
	}
	return nil
}

// adminNull binds a zero value as NULL.
func adminNull[T comparable](v T) any {
	var zero T
	if v == zero {
		return nil
	}
	return v
}

// adminProblems collects every invalid field of one input, so a client
// learns all its mistakes at once.
type adminProblems map[string]string

func (p adminProblems) add(field, problem string) {
	if _, ok := p[field]; !ok {
		p[field] = problem
	}
}

// err returns the problems as one Invalid error with code, or nil.
func (p adminProblems) err(code string) error {
	return fault.Fields(code, p)
}

// oneOf checks an enumerated value.
func (p adminProblems) oneOf(field, v string, allowed []string) bool {
	if slices.Contains(allowed, v) {
		return true
	}
	p.add(field, "must be one of "+strings.Join(allowed, ", "))
	return false
}

// text checks a trimmed string of 1 to max characters without control
// characters, and returns it.
func (p adminProblems) text(field, v string, max int) string {
	v = strings.TrimSpace(v)
	switch {
	case v == "":
		p.add(field, "must not be empty")
	case !utf8.ValidString(v) || strings.IndexFunc(v, unicode.IsControl) >= 0:
		p.add(field, "must be printable UTF-8 text")
	case utf8.RuneCountInString(v) > max:
		p.add(field, fmt.Sprintf("must be at most %d characters", max))
	}
	return v
}

// adminSet returns o's value when the input gives one; null is a problem for a
// column that cannot be NULL.
func adminSet[T any](p adminProblems, field string, o tenantapp.Opt[T]) (T, bool) {
	if o.Null {
		p.add(field, "must not be null")
	}
	return o.Value, o.Set && !o.Null
}

// adminInt checks an optional integer against [min, max]; null clears it
// when nullable.
func adminInt(p adminProblems, field string, o tenantapp.Opt[int64], min, max int64, dst **int64) {
	if !o.Set {
		return
	}
	if o.Null {
		*dst = nil
		return
	}
	if o.Value < min || o.Value > max {
		p.add(field, fmt.Sprintf("must be an integer from %d to %d, or null", min, max))
		return
	}
	v := o.Value
	*dst = &v
}

// adminObject checks that raw is a JSON object and returns it compacted,
// keys in the client's order.
func adminObject(p adminProblems, field string, raw json.RawMessage) json.RawMessage {
	var probe map[string]json.RawMessage
	var out bytes.Buffer
	if err := json.Unmarshal(raw, &probe); err != nil || probe == nil || json.Compact(&out, raw) != nil {
		p.add(field, "must be a JSON object or null")
		return nil
	}
	return out.Bytes()
}

// adminAmount is money in an answer: the exact decimal as a JSON number
// (0.001500), never through float64.
type adminAmount budget.Amount

// MarshalJSON writes the amount as a JSON number literal.
func (a adminAmount) MarshalJSON() ([]byte, error) { return []byte(budget.Amount(a).String()), nil }

// adminParseAmount reads a JSON number or a decimal string exactly; step is
// the smallest unit the column holds (budget.Micro for prices,
// budget.AccountStep for balances).
func adminParseAmount(p adminProblems, field string, o tenantapp.Opt[json.RawMessage], step, max budget.Amount, dst *adminAmount) {
	raw, ok := adminSet(p, field, o)
	if !ok {
		return
	}
	s := string(raw)
	if strings.HasPrefix(s, `"`) && json.Unmarshal(raw, &s) != nil {
		s = ""
	}
	places := 6 // budget.Amount's; each factor of ten in step takes one
	for st := step; st >= 10; st /= 10 {
		places--
	}
	a, err := budget.ParseAmount(strings.TrimSpace(s))
	switch {
	case err != nil || a%step != 0:
		p.add(field, fmt.Sprintf("must be a decimal number (or string) with at most %d decimal places", places))
	case a < 0 || a > max:
		p.add(field, "must be from 0 to "+strings.TrimRight(strings.TrimRight(max.String(), "0"), "."))
	default:
		*dst = adminAmount(a)
	}
}

// The values ai_model_config holds.
var (
	adminModelTypes    = []string{"text", "image", "audio", "multimodal", "embedding"}
	adminModelStatuses = []string{"active", "inactive", "deprecated"}
	adminModelName     = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._:/-]{0,99}$`)
	adminCurrency      = regexp.MustCompile(`^[A-Za-z]{3}$`)
)

// adminMaxPrice is the largest DECIMAL(12,6).
const adminMaxPrice = budget.Amount(999_999_999_999)

// adminModelNameProblem says what is wrong with a model name, "" when
// nothing. Names travel in URL paths, so no empty, "." or ".." segment.
func adminModelNameProblem(name string) string {
	if !adminModelName.MatchString(name) {
		return "must be 1 to 100 letters, digits or . _ : / -, starting with a letter or digit"
	}
	if strings.EqualFold(name, aibridge.AutoModel) {
		return `"auto" is reserved: it lets the bridge choose the model`
	}
	for _, seg := range strings.Split(name, "/") {
		if seg == "" || seg == "." || seg == ".." {
			return "must not have an empty, . or .. segment between slashes"
		}
	}
	return ""
}

// adminModel is an ai_model_config row as the admin API shows it: the
// provider API key only as hasApiKey.
type adminModel struct {
	ID               int64           `json:"id"`
	Name             string          `json:"name"`
	DisplayName      string          `json:"displayName"`
	ModelType        string          `json:"modelType"`
	Provider         string          `json:"provider"`
	UpstreamModel    *string         `json:"upstreamModel"`
	EndpointURL      *string         `json:"endpointUrl"`
	HasAPIKey        bool            `json:"hasApiKey"`
	ModelParameters  json.RawMessage `json:"modelParameters"`
	ContextWindow    *int64          `json:"contextWindow"`
	InputPricePer1k  adminAmount     `json:"inputPricePer1k"`
	OutputPricePer1k adminAmount     `json:"outputPricePer1k"`
	Currency         string          `json:"currency"`
	IsDefault        bool            `json:"isDefault"`
	Status           string          `json:"status"`
	CreatedAt        time.Time       `json:"createdAt"`
	UpdatedAt        time.Time       `json:"updatedAt"`
}

// adminModelAudit is a model in audit_logs: whether the key changed, never
// the key.
type adminModelAudit struct {
	adminModel
	APIKeyChanged bool `json:"apiKeyChanged,omitempty"`
}

const adminModelColumns = `id, model_name, display_name, model_type, provider, upstream_model, endpoint_url,
	api_key_encrypted IS NOT NULL, model_parameters, context_window, input_price_per_1k, output_price_per_1k,
	currency, is_default, status, created_at, updated_at`

func scanAdminModel(s interface{ Scan(...any) error }) (adminModel, error) {
	var m adminModel
	var upstream, endpoint, params sql.NullString
	var window sql.NullInt64
	var in, out string
	if err := s.Scan(&m.ID, &m.Name, &m.DisplayName, &m.ModelType, &m.Provider, &upstream, &endpoint, &m.HasAPIKey,
		&params, &window, &in, &out, &m.Currency, &m.IsDefault, &m.Status, &m.CreatedAt, &m.UpdatedAt); err != nil {
		return m, err
	}
	if upstream.Valid {
		m.UpstreamModel = &upstream.String
	}
	if endpoint.Valid {
		m.EndpointURL = &endpoint.String
	}
	if params.Valid && json.Valid([]byte(params.String)) {
		m.ModelParameters = json.RawMessage(params.String)
	}
	if window.Valid {
		m.ContextWindow = &window.Int64
	}
	for _, f := range []struct {
		s   string
		dst *adminAmount
	}{{in, &m.InputPricePer1k}, {out, &m.OutputPricePer1k}} {
		a, err := budget.ParseAmount(f.s)
		if err != nil {
			return m, fmt.Errorf("model %s: %w", m.Name, err)
		}
		*f.dst = adminAmount(a)
	}
	return m, nil
}

// adminModelByName reads one model, locked for update when lock is set.
func adminModelByName(ctx context.Context, q adminQuerier, name string, lock bool) (adminModel, error) {
	notFound := fault.New(fault.NotFound, "model_not_found", "no model %q", name)
	if adminModelNameProblem(name) != "" {
		return adminModel{}, notFound
	}
	query := "SELECT " + adminModelColumns + " FROM ai_model_config WHERE model_name = ?"
	if lock {
		query += " FOR UPDATE"
	}
	m, err := scanAdminModel(q.QueryRowContext(ctx, query, name))
	if errors.Is(err, sql.ErrNoRows) {
		return m, notFound
	}
	if err != nil {
		return m, fmt.Errorf("read model %s: %w", name, err)
	}
	return m, nil
}

// adminModelInput is a model in a request. Every field is optional: a
// create takes defaults, an update leaves what is absent unchanged.
type adminModelInput struct {
	Name             tenantapp.Opt[string]          `json:"name"`
	DisplayName      tenantapp.Opt[string]          `json:"displayName"`
	ModelType        tenantapp.Opt[string]          `json:"modelType"`
	Provider         tenantapp.Opt[string]          `json:"provider"`
	UpstreamModel    tenantapp.Opt[string]          `json:"upstreamModel"`
	EndpointURL      tenantapp.Opt[string]          `json:"endpointUrl"`
	APIKey           tenantapp.Opt[string]          `json:"apiKey"`
	ModelParameters  tenantapp.Opt[json.RawMessage] `json:"modelParameters"`
	ContextWindow    tenantapp.Opt[int64]           `json:"contextWindow"`
	InputPricePer1k  tenantapp.Opt[json.RawMessage] `json:"inputPricePer1k"`
	OutputPricePer1k tenantapp.Opt[json.RawMessage] `json:"outputPricePer1k"`
	Currency         tenantapp.Opt[string]          `json:"currency"`
	IsDefault        tenantapp.Opt[bool]            `json:"isDefault"`
	Status           tenantapp.Opt[string]          `json:"status"`
}

// apply validates in and writes it over m (the stored model, or a new
// one's defaults), reporting every problem at once. key is the API key to
// store when the input sets one ("" removes it).
func (in *adminModelInput) apply(m *adminModel, create bool) (key *string, err error) {
	bad := adminProblems{}
	if create {
		name, ok := adminSet(bad, "name", in.Name)
		switch problem := adminModelNameProblem(name); {
		case !ok:
			bad.add("name", "is required")
		case problem != "":
			bad.add("name", problem)
		}
		m.Name = name
		if !in.DisplayName.Set {
			m.DisplayName = name
		}
		if !in.Provider.Set {
			bad.add("provider", "is required: one of "+strings.Join(aiprovider.Kinds(), ", "))
		}
	} else if in.Name.Set && (in.Name.Null || in.Name.Value != m.Name) {
		bad.add("name", "cannot change: create a model with the new name and delete this one")
	}
	if v, ok := adminSet(bad, "displayName", in.DisplayName); ok {
		m.DisplayName = bad.text("displayName", v, 200)
	}
	if v, ok := adminSet(bad, "modelType", in.ModelType); ok && bad.oneOf("modelType", v, adminModelTypes) {
		m.ModelType = v
	}
	if v, ok := adminSet(bad, "provider", in.Provider); ok && bad.oneOf("provider", v, aiprovider.Kinds()) {
		m.Provider = v
	}
	if in.UpstreamModel.Set {
		m.UpstreamModel = nil
		if v := strings.TrimSpace(in.UpstreamModel.Value); !in.UpstreamModel.Null && v != "" {
			v = bad.text("upstreamModel", v, 200)
			m.UpstreamModel = &v
		}
	}
	if in.EndpointURL.Set {
		m.EndpointURL = nil
		if v := strings.TrimSpace(in.EndpointURL.Value); !in.EndpointURL.Null && v != "" {
			if problem := adminEndpointProblem(v); problem != "" {
				bad.add("endpointUrl", problem)
			}
			m.EndpointURL = &v
		}
	}
	if m.Provider == aiprovider.KindLocal && m.EndpointURL == nil && bad["provider"] == "" {
		bad.add("endpointUrl", "is required for provider local")
	}
	if in.APIKey.Set {
		v := strings.TrimSpace(in.APIKey.Value)
		switch {
		case len(v) > 1000:
			bad.add("apiKey", "must be at most 1000 bytes")
		case strings.IndexFunc(v, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }) >= 0:
			bad.add("apiKey", "must not contain spaces or control characters")
		}
		key = &v
	}
	if in.ModelParameters.Set {
		m.ModelParameters = nil
		if !in.ModelParameters.Null {
			m.ModelParameters = adminObject(bad, "modelParameters", in.ModelParameters.Value)
		}
	}
	adminInt(bad, "contextWindow", in.ContextWindow, 1, math.MaxUint32, &m.ContextWindow)
	adminParseAmount(bad, "inputPricePer1k", in.InputPricePer1k, budget.Micro, adminMaxPrice, &m.InputPricePer1k)
	adminParseAmount(bad, "outputPricePer1k", in.OutputPricePer1k, budget.Micro, adminMaxPrice, &m.OutputPricePer1k)
	if v, ok := adminSet(bad, "currency", in.Currency); ok {
		if adminCurrency.MatchString(v) {
			m.Currency = strings.ToUpper(v)
		} else {
			bad.add("currency", "must be a 3-letter currency code such as CNY")
		}
	}
	if v, ok := adminSet(bad, "isDefault", in.IsDefault); ok {
		m.IsDefault = v
	}
	if v, ok := adminSet(bad, "status", in.Status); ok && bad.oneOf("status", v, adminModelStatuses) {
		m.Status = v
	}
	return key, bad.err("invalid_field")
}

// empty reports whether the input gives no field at all.
func (in *adminModelInput) empty() bool {
	return !(in.Name.Set || in.DisplayName.Set || in.ModelType.Set || in.Provider.Set || in.UpstreamModel.Set ||
		in.EndpointURL.Set || in.APIKey.Set || in.ModelParameters.Set || in.ContextWindow.Set || in.InputPricePer1k.Set ||
		in.OutputPricePer1k.Set || in.Currency.Set || in.IsDefault.Set || in.Status.Set)
}

// adminEndpointProblem says what is wrong with a provider endpoint URL.
func adminEndpointProblem(s string) string {
	u, err := url.Parse(s)
	switch {
	case len(s) > 500:
		return "must be at most 500 characters"
	case err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "":
		return "must be an http or https URL with a host"
	case u.User != nil:
		return "must not carry credentials: give the key as apiKey, which is sealed"
	case u.Fragment != "" || u.RawQuery != "":
		return "must not have a query or a fragment"
	}
	return ""
}

// adminModelSet is every column a create or an update writes but the name
// and the key.
const adminModelSet = `display_name = ?, model_type = ?, provider = ?, upstream_model = ?, endpoint_url = ?,
	model_parameters = ?, context_window = ?, input_price_per_1k = CAST(? AS DECIMAL(20,6)),
	output_price_per_1k = CAST(? AS DECIMAL(20,6)), currency = ?, is_default = ?, status = ?`

func (m *adminModel) setArgs() []any {
	var params any
	if m.ModelParameters != nil {
		params = string(m.ModelParameters)
	}
	return []any{m.DisplayName, m.ModelType, m.Provider, m.UpstreamModel, m.EndpointURL, params, m.ContextWindow,
		budget.Amount(m.InputPricePer1k).String(), budget.Amount(m.OutputPricePer1k).String(), m.Currency, m.IsDefault, m.Status}
}

// adminSealKey returns the column value for a new API key: its ciphertext bound
// to the model's stored name, or NULL for "".
func (h *handler) adminSealKey(name, key string) any {
	if key == "" {
		return nil
	}
	return h.box.Seal([]byte(key), aibridge.ModelKeyAAD(name))
}

func (h *handler) adminListModels(r *http.Request, _ *auth.Claims) (int, any, error) {
	q := r.URL.Query()
	bad := adminProblems{}
	where, args := []string{"1 = 1"}, []any{}
	if s := q.Get("status"); s != "" && bad.oneOf("status", s, adminModelStatuses) {
		where, args = append(where, "status = ?"), append(args, s)
	}
	if p := q.Get("provider"); p != "" && bad.oneOf("provider", p, aiprovider.Kinds()) {
		where, args = append(where, "provider = ?"), append(args, p)
	}
	if err := bad.err("invalid_query"); err != nil {
		return 0, nil, err
	}
	rows, err := h.db.QueryContext(r.Context(), "SELECT "+adminModelColumns+" FROM ai_model_config WHERE "+
		strings.Join(where, " AND ")+" ORDER BY model_name", args...)
	if err != nil {
		return 0, nil, fmt.Errorf("list models: %w", err)
	}
	defer rows.Close()
	items := []adminModel{}
	for rows.Next() {
		m, err := scanAdminModel(rows)
		if err != nil {
			return 0, nil, err
		}
		items = append(items, m)
	}
	return http.StatusOK, map[string]any{"items": items}, rows.Err()
}

func (h *handler) adminGetModel(r *http.Request, _ *auth.Claims) (int, any, error) {
	m, err := adminModelByName(r.Context(), h.db, r.PathValue("name"), false)
	return http.StatusOK, m, err
}

func (h *handler) adminCreateModel(r *http.Request, c *auth.Claims) (int, any, error) {
	var in adminModelInput
	if err := httpapi.Decode(r, &in); err != nil {
		return 0, nil, err
	}
	m := adminModel{ModelType: "text", Currency: "CNY", Status: "active"}
	key, err := in.apply(&m, true)
	if err != nil {
		return 0, nil, err
	}
	ctx := r.Context()
	var created adminModel
	err = sqldb.InTxRetry(ctx, h.db, func(tx *sql.Tx) error {
		var sealed any
		if key != nil {
			sealed = h.adminSealKey(m.Name, *key)
		}
		res, err := tx.ExecContext(ctx, "INSERT INTO ai_model_config SET model_name = ?, api_key_encrypted = ?, "+adminModelSet,
			append([]any{m.Name, sealed}, m.setArgs()...)...)
		if sqldb.IsDuplicate(err) {
			return fault.New(fault.Conflict, "model_exists", "a model named %q exists already", m.Name)
		}
		if err != nil {
			return fmt.Errorf("create model: %w", err)
		}
		id, err := res.LastInsertId()
		if err != nil {
			return fmt.Errorf("create model: %w", err)
		}
		if created, err = scanAdminModel(tx.QueryRowContext(ctx, "SELECT "+adminModelColumns+" FROM ai_model_config WHERE id = ?", id)); err != nil {
			return fmt.Errorf("read the new model: %w", err)
		}
		return adminAudit(ctx, tx, r, c, "ai.model.create", "ai_model", created.Name, 0, nil,
			adminModelAudit{adminModel: created, APIKeyChanged: created.HasAPIKey})
	})
	if err != nil {
		return 0, nil, err
	}
	return http.StatusCreated, created, nil
}

func (h *handler) adminUpdateModel(r *http.Request, c *auth.Claims) (int, any, error) {
	var in adminModelInput
	if err := httpapi.Decode(r, &in); err != nil {
		return 0, nil, err
	}
	if in.empty() {
		return 0, nil, fault.New(fault.Invalid, "empty_update", "the body changes nothing: give at least one field")
	}
	ctx := r.Context()
	var after adminModel
	err := sqldb.InTxRetry(ctx, h.db, func(tx *sql.Tx) error {
		before, err := adminModelByName(ctx, tx, r.PathValue("name"), true)
		if err != nil {
			return err
		}
		m := before
		key, err := in.apply(&m, false)
		if err != nil {
			return err
		}
		set, args := adminModelSet, m.setArgs()
		if key != nil {
			// The stored name, not the path's: names compare case-insensitively.
			set, args = set+", api_key_encrypted = ?", append(args, h.adminSealKey(before.Name, *key))
		}
		if _, err := tx.ExecContext(ctx, "UPDATE ai_model_config SET "+set+" WHERE id = ?", append(args, before.ID)...); err != nil {
			return fmt.Errorf("update model %s: %w", before.Name, err)
		}
		if after, err = adminModelByName(ctx, tx, before.Name, false); err != nil {
			return err
		}
		return adminAudit(ctx, tx, r, c, "ai.model.update", "ai_model", before.Name, 0, before,
			adminModelAudit{adminModel: after, APIKeyChanged: key != nil})
	})
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, after, nil
}

func (h *handler) adminDeleteModel(r *http.Request, c *auth.Claims) (int, any, error) {
	ctx := r.Context()
	var name string
	var settings int64
	err := sqldb.InTxRetry(ctx, h.db, func(tx *sql.Tx) error {
		before, err := adminModelByName(ctx, tx, r.PathValue("name"), true)
		if err != nil {
			return err
		}
		name = before.Name
		if err := tx.QueryRowContext(ctx, "SELECT COUNT(*) FROM tenant_ai_model_configs WHERE model_id = ?", before.ID).Scan(&settings); err != nil {
			return fmt.Errorf("count tenant settings: %w", err)
		}
		// Tenants' settings for it go by ON DELETE CASCADE; call logs and
		// usage summaries keep the name they copied.
		if _, err := tx.ExecContext(ctx, "DELETE FROM ai_model_config WHERE id = ?", before.ID); err != nil {
			return fmt.Errorf("delete model %s: %w", name, err)
		}
		return adminAudit(ctx, tx, r, c, "ai.model.delete", "ai_model", name, 0, before,
			map[string]any{"deleted": true, "tenantSettingsRemoved": settings})
	})
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, map[string]any{"name": name, "deleted": true, "tenantSettingsRemoved": settings}, nil
}

// adminTenant returns the id and code of the tenant code.
func adminTenant(ctx context.Context, q adminQuerier, code string) (int64, string, error) {
	var id int64
	var stored string
	err := q.QueryRowContext(ctx, "SELECT id, tenant_code FROM tenants WHERE tenant_code = ?", code).Scan(&id, &stored)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, "", fault.New(fault.NotFound, "tenant_not_found", "no tenant %q", code)
	}
	if err != nil {
		return 0, "", fmt.Errorf("read tenant %s: %w", code, err)
	}
	return id, stored, nil
}

// adminTenantModel is a tenant's setting for one model
// (tenant_ai_model_configs), with the model's name and kind.
type adminTenantModel struct {
	TenantCode       string          `json:"tenantCode"`
	ModelID          int64           `json:"modelId"`
	ModelName        string          `json:"modelName"`
	DisplayName      string          `json:"displayName"`
	Provider         string          `json:"provider"`
	ModelType        string          `json:"modelType"`
	ModelStatus      string          `json:"modelStatus"`
	Enabled          bool            `json:"enabled"`
	Priority         int64           `json:"priority"`
	CustomParameters json.RawMessage `json:"customParameters"`
	RPM              *int64          `json:"rpm"`
	TPM              *int64          `json:"tpm"`
	DailyTokenLimit  *int64          `json:"dailyTokenLimit"`
	CreatedAt        time.Time       `json:"createdAt"`
	UpdatedAt        time.Time       `json:"updatedAt"`
}

const adminTenantModelQuery = `SELECT c.model_id, m.model_name, m.display_name, m.provider, m.model_type, m.status,
	c.is_enabled, c.priority, c.custom_parameters, c.rpm_limit, c.tpm_limit, c.daily_token_limit, c.created_at, c.updated_at
	FROM tenant_ai_model_configs c JOIN ai_model_config m ON m.id = c.model_id WHERE c.tenant_id = ?`

func scanAdminTenantModel(s interface{ Scan(...any) error }, code string) (adminTenantModel, error) {
	v := adminTenantModel{TenantCode: code}
	var params sql.NullString
	var rpm, tpm, daily sql.NullInt64
	err := s.Scan(&v.ModelID, &v.ModelName, &v.DisplayName, &v.Provider, &v.ModelType, &v.ModelStatus,
		&v.Enabled, &v.Priority, &params, &rpm, &tpm, &daily, &v.CreatedAt, &v.UpdatedAt)
	if params.Valid && json.Valid([]byte(params.String)) {
		v.CustomParameters = json.RawMessage(params.String)
	}
	for _, f := range []struct {
		n   sql.NullInt64
		dst **int64
	}{{rpm, &v.RPM}, {tpm, &v.TPM}, {daily, &v.DailyTokenLimit}} {
		if f.n.Valid {
			n := f.n.Int64
			*f.dst = &n
		}
	}
	return v, err
}

func (h *handler) adminTenantModels(r *http.Request, _ *auth.Claims) (int, any, error) {
	ctx := r.Context()
	id, code, err := adminTenant(ctx, h.db, r.PathValue("code"))
	if err != nil {
		return 0, nil, err
	}
	rows, err := h.db.QueryContext(ctx, adminTenantModelQuery+" ORDER BY c.priority, m.model_name", id)
	if err != nil {
		return 0, nil, fmt.Errorf("tenant models: %w", err)
	}
	defer rows.Close()
	items := []adminTenantModel{}
	for rows.Next() {
		v, err := scanAdminTenantModel(rows, code)
		if err != nil {
			return 0, nil, err
		}
		items = append(items, v)
	}
	return http.StatusOK, map[string]any{"tenantCode": code, "items": items}, rows.Err()
}

// adminTenantModelInput is a tenant's setting for a model in a request:
// absent fields keep their value (or the default for a new setting), null
// limits fall back to the platform's defaults.
type adminTenantModelInput struct {
	Enabled          tenantapp.Opt[bool]            `json:"enabled"`
	Priority         tenantapp.Opt[int64]           `json:"priority"`
	CustomParameters tenantapp.Opt[json.RawMessage] `json:"customParameters"`
	RPM              tenantapp.Opt[int64]           `json:"rpm"`
	TPM              tenantapp.Opt[int64]           `json:"tpm"`
	DailyTokenLimit  tenantapp.Opt[int64]           `json:"dailyTokenLimit"`
}

// adminMaxFallbacks bounds an explicit fallback list.
const adminMaxFallbacks = 10

// apply validates in and writes it over v. It returns the fallback model
// names customParameters gives, for the caller to check they exist.
func (in *adminTenantModelInput) apply(v *adminTenantModel, bad adminProblems) (fallbacks []string) {
	if b, ok := adminSet(bad, "enabled", in.Enabled); ok {
		v.Enabled = b
	}
	if p, ok := adminSet(bad, "priority", in.Priority); ok {
		if p < math.MinInt32 || p > math.MaxInt32 {
			bad.add("priority", "must be a 32-bit integer (lower is tried first)")
		}
		v.Priority = p
	}
	adminInt(bad, "rpm", in.RPM, 0, math.MaxUint32, &v.RPM)
	adminInt(bad, "tpm", in.TPM, 0, math.MaxUint32, &v.TPM)
	adminInt(bad, "dailyTokenLimit", in.DailyTokenLimit, 0, math.MaxInt64, &v.DailyTokenLimit)
	if !in.CustomParameters.Set {
		return nil // stored fallbacks are not checked again: a model deleted since does not block other changes
	}
	v.CustomParameters = nil
	if in.CustomParameters.Null {
		return nil
	}
	v.CustomParameters = adminObject(bad, "customParameters", in.CustomParameters.Value)
	if v.CustomParameters == nil {
		return nil
	}
	return adminFallbacks(v.CustomParameters, bad)
}

// adminFallbacks checks the shape of customParameters.fallbacks, the model
// names the bridge tries, in order, after this one, and returns them.
func adminFallbacks(params json.RawMessage, bad adminProblems) []string {
	var p struct {
		Fallbacks json.RawMessage `json:"fallbacks"`
	}
	if json.Unmarshal(params, &p) != nil || p.Fallbacks == nil {
		return nil
	}
	var names []string
	if err := json.Unmarshal(p.Fallbacks, &names); err != nil || names == nil {
		bad.add("customParameters", "fallbacks must be an array of model names")
		return nil
	}
	if len(names) > adminMaxFallbacks {
		bad.add("customParameters", fmt.Sprintf("fallbacks may name at most %d models", adminMaxFallbacks))
	}
	seen := map[string]bool{}
	for _, n := range names {
		if problem := adminModelNameProblem(n); problem != "" {
			bad.add("customParameters", fmt.Sprintf("fallbacks: %q %s", n, problem))
		}
		if seen[strings.ToLower(n)] {
			bad.add("customParameters", fmt.Sprintf("fallbacks: %q is listed twice", n))
		}
		seen[strings.ToLower(n)] = true
	}
	return names
}

func (h *handler) adminSetTenantModel(r *http.Request, c *auth.Claims) (int, any, error) {
	var in adminTenantModelInput
	if err := httpapi.Decode(r, &in); err != nil {
		return 0, nil, err
	}
	// The checks that need no database first, so a bad body is a 400
	// whatever the tenant or the model.
	probe := adminProblems{}
	in.apply(&adminTenantModel{}, probe)
	if err := probe.err("invalid_field"); err != nil {
		return 0, nil, err
	}
	ctx := r.Context()
	var after adminTenantModel
	err := sqldb.InTxRetry(ctx, h.db, func(tx *sql.Tx) error {
		tenantID, code, err := adminTenant(ctx, tx, r.PathValue("code"))
		if err != nil {
			return err
		}
		model, err := adminModelByName(ctx, tx, r.PathValue("name"), false)
		if err != nil {
			return err
		}
		before, err := scanAdminTenantModel(tx.QueryRowContext(ctx, adminTenantModelQuery+" AND c.model_id = ? FOR UPDATE", tenantID, model.ID), code)
		existed := err == nil
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			return fmt.Errorf("read tenant model: %w", err)
		}
		v := before
		if !existed {
			v = adminTenantModel{Enabled: true, Priority: 100}
		}
		bad := adminProblems{}
		fallbacks := in.apply(&v, bad)
		if err := h.adminCheckFallbacks(ctx, tx, model.Name, fallbacks, bad); err != nil {
			return err
		}
		if err := bad.err("invalid_field"); err != nil {
			return err
		}
		var params any
		if v.CustomParameters != nil {
			params = string(v.CustomParameters)
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO tenant_ai_model_configs (tenant_id, model_id, is_enabled, priority, custom_parameters,
			rpm_limit, tpm_limit, daily_token_limit) VALUES (?, ?, ?, ?, ?, ?, ?, ?)
			ON DUPLICATE KEY UPDATE is_enabled = VALUES(is_enabled), priority = VALUES(priority), custom_parameters = VALUES(custom_parameters),
			rpm_limit = VALUES(rpm_limit), tpm_limit = VALUES(tpm_limit), daily_token_limit = VALUES(daily_token_limit)`,
			tenantID, model.ID, v.Enabled, v.Priority, params, v.RPM, v.TPM, v.DailyTokenLimit); err != nil {
			return fmt.Errorf("set tenant model: %w", err)
		}
		if after, err = scanAdminTenantModel(tx.QueryRowContext(ctx, adminTenantModelQuery+" AND c.model_id = ?", tenantID, model.ID), code); err != nil {
			return fmt.Errorf("read tenant model: %w", err)
		}
		var was any
		if existed {
			was = before
		}
		return adminAudit(ctx, tx, r, c, "ai.tenant_model.update", "tenant", code, tenantID, was, after)
	})
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, after, nil
}

// adminCheckFallbacks adds a problem for each fallback that names no model
// or the model itself.
func (h *handler) adminCheckFallbacks(ctx context.Context, q adminQuerier, self string, names []string, bad adminProblems) error {
	if len(names) == 0 || bad["customParameters"] != "" {
		return nil
	}
	marks := strings.TrimSuffix(strings.Repeat("?, ", len(names)), ", ")
	args := make([]any, len(names))
	for i, n := range names {
		args[i] = n
	}
	rows, err := q.QueryContext(ctx, "SELECT model_name FROM ai_model_config WHERE model_name IN ("+marks+")", args...)
	if err != nil {
		return fmt.Errorf("check fallbacks: %w", err)
	}
	defer rows.Close()
	// The bridge looks fallbacks up by exact name, so the names must be
	// the stored ones, not just equal under the column's collation.
	stored := map[string]string{}
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			return err
		}
		stored[strings.ToLower(n)] = n
	}
	if err := rows.Err(); err != nil {
		return err
	}
	for _, n := range names {
		switch s, ok := stored[strings.ToLower(n)]; {
		case strings.EqualFold(n, self):
			bad.add("customParameters", fmt.Sprintf("fallbacks: %q is the model itself", n))
		case !ok:
			bad.add("customParameters", fmt.Sprintf("fallbacks: no model %q", n))
		case s != n:
			bad.add("customParameters", fmt.Sprintf("fallbacks: no model %q (names are case-sensitive: %q?)", n, s))
		}
	}
	return nil
}

// adminAccount is a tenant's account (tenant_accounts). Reserved is what
// in-flight AI calls hold; available is what new calls may still spend.
type adminAccount struct {
	TenantCode    string      `json:"tenantCode"`
	Balance       adminAmount `json:"balance"`
	CreditLimit   adminAmount `json:"creditLimit"`
	Reserved      adminAmount `json:"reserved"`
	Available     adminAmount `json:"available"`
	Currency      string      `json:"currency"`
	PaymentStatus string      `json:"paymentStatus"`
	BillingCycle  string      `json:"billingCycle"`
	UpdatedAt     time.Time   `json:"updatedAt"`
}

// The values tenant_accounts holds.
var (
	adminPaymentStatuses = []string{"normal", "overdue", "frozen"}
	adminBillingCycles   = []string{"prepaid", "monthly", "yearly"}
)

// adminReadAccount reads the account of tenantID; found is false when it
// has none.
func adminReadAccount(ctx context.Context, q adminQuerier, tenantID int64, code string, lock bool) (a adminAccount, found bool, err error) {
	query := `SELECT balance, credit_limit, reserved_amount, currency, payment_status, billing_cycle, updated_at
		FROM tenant_accounts WHERE tenant_id = ?`
	if lock {
		query += " FOR UPDATE"
	}
	a.TenantCode = code
	var balance, credit, reserved string
	err = q.QueryRowContext(ctx, query, tenantID).Scan(&balance, &credit, &reserved, &a.Currency, &a.PaymentStatus, &a.BillingCycle, &a.UpdatedAt)
	if errors.Is(err, sql.ErrNoRows) {
		return a, false, nil
	}
	if err != nil {
		return a, false, fmt.Errorf("read account of %s: %w", code, err)
	}
	for _, f := range []struct {
		s   string
		dst *adminAmount
	}{{balance, &a.Balance}, {credit, &a.CreditLimit}, {reserved, &a.Reserved}} {
		v, err := budget.ParseAmount(f.s)
		if err != nil {
			return a, false, fmt.Errorf("account of %s: %w", code, err)
		}
		*f.dst = adminAmount(v)
	}
	a.Available = a.Balance + a.CreditLimit - a.Reserved
	return a, true, nil
}

func (h *handler) adminGetAccount(r *http.Request, _ *auth.Claims) (int, any, error) {
	ctx := r.Context()
	id, code, err := adminTenant(ctx, h.db, r.PathValue("code"))
	if err != nil {
		return 0, nil, err
	}
	a, found, err := adminReadAccount(ctx, h.db, id, code, false)
	if err == nil && !found {
		err = fault.New(fault.NotFound, "account_not_found", "tenant %s has no account yet; PUT one", code)
	}
	return http.StatusOK, a, err
}

// adminAccountInput is an account change. Reserved and available are read
// only (the budget moves reserved_amount), but named so that sending them is
// a clear 400 rather than an unknown field.
type adminAccountInput struct {
	Balance       tenantapp.Opt[json.RawMessage] `json:"balance"`
	CreditLimit   tenantapp.Opt[json.RawMessage] `json:"creditLimit"`
	PaymentStatus tenantapp.Opt[string]          `json:"paymentStatus"`
	BillingCycle  tenantapp.Opt[string]          `json:"billingCycle"`
	Reserved      json.RawMessage                `json:"reserved"`
	Available     json.RawMessage                `json:"available"`
}

func (h *handler) adminSetAccount(r *http.Request, c *auth.Claims) (int, any, error) {
	var in adminAccountInput
	if err := httpapi.Decode(r, &in); err != nil {
		return 0, nil, err
	}
	readOnly := adminProblems{}
	if in.Reserved != nil {
		readOnly.add("reserved", "is read-only: it is what in-flight AI calls hold")
	}
	if in.Available != nil {
		readOnly.add("available", "is read-only: it is balance + creditLimit - reserved")
	}
	if err := readOnly.err("read_only_field"); err != nil {
		return 0, nil, err
	}
	bad := adminProblems{}
	var balance, credit adminAmount
	adminParseAmount(bad, "balance", in.Balance, budget.AccountStep, budget.MaxAmount, &balance)
	adminParseAmount(bad, "creditLimit", in.CreditLimit, budget.AccountStep, budget.MaxAmount, &credit)
	cols, args := []string{}, []any{}
	if in.Balance.Set {
		cols, args = append(cols, "balance"), append(args, budget.Amount(balance).String())
	}
	if in.CreditLimit.Set {
		cols, args = append(cols, "credit_limit"), append(args, budget.Amount(credit).String())
	}
	if v, ok := adminSet(bad, "paymentStatus", in.PaymentStatus); ok && bad.oneOf("paymentStatus", v, adminPaymentStatuses) {
		cols, args = append(cols, "payment_status"), append(args, v)
	}
	if v, ok := adminSet(bad, "billingCycle", in.BillingCycle); ok && bad.oneOf("billingCycle", v, adminBillingCycles) {
		cols, args = append(cols, "billing_cycle"), append(args, v)
	}
	if err := bad.err("invalid_field"); err != nil {
		return 0, nil, err
	}
	if len(cols) == 0 {
		return 0, nil, fault.New(fault.Invalid, "empty_update", "the body changes nothing: give balance, creditLimit, paymentStatus or billingCycle")
	}
	values, updates := make([]string, len(cols)), make([]string, len(cols))
	for i, col := range cols {
		values[i] = "?"
		if col == "balance" || col == "credit_limit" {
			values[i] = "CAST(? AS DECIMAL(20,6))"
		}
		updates[i] = col + " = VALUES(" + col + ")"
	}
	ctx := r.Context()
	var after adminAccount
	err := sqldb.InTxRetry(ctx, h.db, func(tx *sql.Tx) error {
		tenantID, code, err := adminTenant(ctx, tx, r.PathValue("code"))
		if err != nil {
			return err
		}
		before, existed, err := adminReadAccount(ctx, tx, tenantID, code, true)
		if err != nil {
			return err
		}
		// reserved_amount is never written here: concurrent reservations
		// and settlements own it.
		if _, err := tx.ExecContext(ctx, "INSERT INTO tenant_accounts (tenant_id, "+strings.Join(cols, ", ")+") VALUES (?, "+
			strings.Join(values, ", ")+") ON DUPLICATE KEY UPDATE "+strings.Join(updates, ", "), append([]any{tenantID}, args...)...); err != nil {
			return fmt.Errorf("set account of %s: %w", code, err)
		}
		if after, _, err = adminReadAccount(ctx, tx, tenantID, code, false); err != nil {
			return err
		}
		var was any
		if existed {
			was = before
		}
		return adminAudit(ctx, tx, r, c, "ai.account.update", "tenant", code, tenantID, was, after)
	})
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, after, nil
}
