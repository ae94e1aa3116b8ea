package main

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"

	"github.com/unitenant/unitenant/shared/auth"
	"github.com/unitenant/unitenant/shared/fault"
	"github.com/unitenant/unitenant/shared/httpapi"
	"github.com/unitenant/unitenant/shared/idempotency"
	"github.com/unitenant/unitenant/shared/lifecycle"
	"github.com/unitenant/unitenant/shared/notify"
	"github.com/unitenant/unitenant/shared/sqldb"
	"github.com/unitenant/unitenant/shared/tenantapp"
)

// Webhook routes (see newHandler):
//
//	GET    /api/admin/webhooks          endpoints, oldest first: ?tenantCode= for one tenant's, ?page=&pageSize= (as
//	                                    the tenant list: default 20, at most 100) → {items, page, pageSize, total}
//	POST   /api/admin/webhooks          {url, events?, tenantCode?, name?} → the endpoint and its secret, shown once;
//	                                    a URL whose host is a non-public address or localhost is 400 (unless
//	                                    NOTIFY_ALLOW_PRIVATE_URLS), names are checked on delivery; a tenant (and the
//	                                    platform-wide set) has at most notify.MaxEndpointsPerTenant, then 409
//	                                    too_many_webhooks; Idempotency-Key: a retry gets the first answer again
//	PATCH  /api/admin/webhooks/{id}     {status: active|disabled}
//	DELETE /api/admin/webhooks/{id}
//
// An endpoint's URL is shown as entered, query string included, to the
// platform admins these routes serve: they own the configuration, as a
// GitHub or Stripe hook's owners see its URL. Its audit rows (and the
// dispatcher's logs and delivery log) keep notify.RedactURL's form only, for
// a query string often carries the receiver's token. Each change is audited
// in its own transaction: a change that cannot be audited does not happen.

type webhookInput struct {
	URL        string   `json:"url"`
	Events     []string `json:"events"`
	TenantCode string   `json:"tenantCode"`
	Name       string   `json:"name"`
}

func (h *handler) listWebhooks(r *http.Request, _ *auth.Claims) (int, any, error) {
	q := r.URL.Query()
	page, err := tenantapp.ParsePage(q)
	if err != nil {
		return 0, nil, err
	}
	tenantID := notify.AllTenants
	if codes := q["tenantCode"]; len(codes) > 1 {
		return 0, nil, fault.Field("invalid_query", "tenantCode", "must be given once")
	} else if len(codes) == 1 && codes[0] != "" {
		t, err := h.tenant(r.Context(), codes[0])
		if err != nil {
			return 0, nil, err
		}
		tenantID = t.ID
	}
	eps, total, err := notify.ListEndpointsPage(r.Context(), h.db, tenantID, (page.Number-1)*page.Size, page.Size)
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, map[string]any{"items": eps, "page": page.Number, "pageSize": page.Size, "total": total}, nil
}

// webhookCreated is the answer to a create: the secret is shown this once
// (and to a retry of the same request), for receivers need it to verify
// signatures.
type webhookCreated struct {
	Endpoint notify.Endpoint `json:"endpoint"`
	Secret   string          `json:"secret"`
}

// keptWebhook is webhookCreated as the idempotency store keeps it for
// replay: the store keeps answers in clear for a day, and a webhook secret
// is only ever stored sealed, here bound to the key (keptSecretAAD).
type keptWebhook struct {
	Endpoint     notify.Endpoint `json:"endpoint"`
	SealedSecret []byte          `json:"sealedSecret"`
}

// webhookResource is the resource type an Idempotency-Key of a create is
// bound to (the endpoint's id), in the transaction that adds the endpoint.
const webhookResource = "webhook_endpoint"

// addWebhook is POST /api/admin/webhooks. With an Idempotency-Key, the first
// request does the work and its answer is kept; a retry with the same body
// gets that answer again (Idempotent-Replayed: true) and makes nothing, one
// with another body is refused. A key is the admin's own (the scope names
// them), and the body it is bound to names the tenant, so no answer, and no
// secret, reaches another admin or another tenant's request.
func (h *handler) addWebhook(r *http.Request, c *auth.Claims) (int, any, error) {
	key := r.Header.Get("Idempotency-Key")
	if key == "" {
		created, err := h.createWebhook(r, c, "", "")
		return http.StatusCreated, created, err
	}
	ctx := r.Context()
	body, err := io.ReadAll(http.MaxBytesReader(nil, r.Body, httpapi.DefaultMaxBody))
	if err != nil {
		return 0, nil, fault.New(fault.TooLarge, "body_too_large", "body exceeds %d bytes", httpapi.DefaultMaxBody)
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	scope := fmt.Sprintf("POST /api/admin/webhooks:%s:%d", c.Kind, c.SubjectID())
	stored, err := h.idem.Begin(ctx, scope, key, idempotency.Hash(body))
	if err != nil {
		return 0, nil, err
	}
	if stored != nil {
		return h.replayWebhook(scope, key, stored)
	}
	created, err := h.createdByKey(ctx, scope, key)
	if err == nil && created == nil {
		created, err = h.createWebhook(r, c, scope, key)
	}
	done := context.WithoutCancel(ctx)
	if err != nil {
		if ferr := h.idem.Fail(done, scope, key, err); ferr != nil {
			h.log.ErrorContext(ctx, "end idempotency key", "err", ferr)
		}
		return 0, nil, err
	}
	kept := keptWebhook{Endpoint: created.Endpoint, SealedSecret: h.box.Seal([]byte(created.Secret), keptSecretAAD(scope, key))}
	b, err := json.Marshal(httpapi.Envelope{Success: true, Data: kept})
	if err == nil {
		err = h.idem.Finish(done, scope, key, http.StatusCreated, b)
	}
	if err != nil {
		// The endpoint is made and bound to the key: a retry once the key's
		// lock lapses gets it (createdByKey).
		h.log.ErrorContext(ctx, "store idempotent response", "err", err)
	}
	return http.StatusCreated, created, nil
}

// keptSecretAAD binds a kept answer's sealed secret to its key.
func keptSecretAAD(scope, key string) string {
	return "idempotency_keys:" + scope + ":" + key + ":secret"
}

// replayWebhook answers a retry with the answer kept for its key.
func (h *handler) replayWebhook(scope, key string, stored *idempotency.Stored) (int, any, error) {
	if stored.Status != http.StatusCreated {
		return 0, replayed{status: stored.Status, body: stored.Body}, nil
	}
	var env struct {
		Data keptWebhook `json:"data"`
	}
	if err := json.Unmarshal(stored.Body, &env); err != nil {
		return 0, nil, fmt.Errorf("kept webhook answer: %w", err)
	}
	secret, err := h.box.Open(env.Data.SealedSecret, keptSecretAAD(scope, key))
	if err != nil {
		return 0, nil, fmt.Errorf("kept webhook answer: %w", err)
	}
	b, err := json.Marshal(httpapi.Envelope{Success: true, Data: webhookCreated{Endpoint: env.Data.Endpoint, Secret: string(secret)}})
	if err != nil {
		return 0, nil, fmt.Errorf("kept webhook answer: %w", err)
	}
	return 0, replayed{status: stored.Status, body: b}, nil
}

// createdByKey is the endpoint an earlier holder of the key made before it
// died without keeping its answer, nil when none did.
func (h *handler) createdByKey(ctx context.Context, scope, key string) (*webhookCreated, error) {
	res, err := h.idem.Resource(ctx, scope, key, webhookResource)
	if err != nil || res == "" {
		return nil, err
	}
	id, err := strconv.ParseInt(res, 10, 64)
	if err != nil {
		return nil, fmt.Errorf("idempotency key bound to endpoint %q: %w", res, err)
	}
	ep, err := notify.GetEndpoint(ctx, h.db, id)
	if err != nil {
		return nil, err
	}
	secret, err := notify.EndpointSecret(ctx, h.db, h.box, id)
	if err != nil {
		return nil, err
	}
	return &webhookCreated{Endpoint: ep, Secret: secret}, nil
}

// createWebhook adds the endpoint the request describes and audits it, in
// one transaction that also binds the Idempotency-Key (when key is not
// empty) to the endpoint.
func (h *handler) createWebhook(r *http.Request, c *auth.Claims, scope, key string) (*webhookCreated, error) {
	ctx := r.Context()
	var in webhookInput
	if err := httpapi.Decode(r, &in); err != nil {
		return nil, err
	}
	ep := notify.Endpoint{URL: in.URL, Events: in.Events, Name: in.Name, Secret: notify.NewSecret(), CreatedBy: c.SubjectID()}
	// Every bad field at once, before anything is looked up. A URL the
	// dispatcher would never deliver to (an address that is not public) is
	// refused now, not on every delivery.
	if err := notify.ValidateNewEndpoint(&ep, h.allowPrivateURLs); err != nil {
		return nil, err
	}
	code := ""
	if in.TenantCode != "" {
		t, err := h.tenant(ctx, in.TenantCode)
		if fe, ok := fault.As(err); ok && fe.Code == "tenant_not_found" {
			return nil, &fault.Error{Kind: fe.Kind, Code: fe.Code, Message: "tenantCode: " + fe.Message,
				Fields: map[string]string{"tenantCode": "no such tenant"}}
		}
		if err != nil {
			return nil, err
		}
		ep.TenantID, code = t.ID, t.Code
	}
	var stored notify.Endpoint
	// Retried on deadlock: adds of the first platform-wide endpoints can
	// collide (see notify.AddEndpointTx), and the loser counts again.
	err := sqldb.InTxRetry(ctx, h.db, func(tx *sql.Tx) error {
		id, err := notify.AddEndpointTx(ctx, tx, h.box, ep)
		if err != nil {
			return err
		}
		if key != "" {
			if err := h.idem.Bind(ctx, tx, scope, key, webhookResource, strconv.FormatInt(id, 10)); err != nil {
				return err
			}
		}
		if stored, err = notify.GetEndpoint(ctx, tx, id); err != nil {
			return err
		}
		return lifecycle.Audit(ctx, tx, actor(r, c), "webhook.add", ep.TenantID, code, nil, webhookAudit(stored), "")
	})
	if err != nil {
		return nil, err
	}
	return &webhookCreated{Endpoint: stored, Secret: ep.Secret}, nil
}

// webhookAudit is what audit rows keep of an endpoint: never its secret, and
// its URL without the query string.
func webhookAudit(ep notify.Endpoint) map[string]any {
	return map[string]any{"id": ep.ID, "url": notify.RedactURL(ep.URL), "name": ep.Name, "events": ep.Events, "status": ep.Status}
}

func webhookID(r *http.Request) (int64, error) {
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil || id <= 0 {
		return 0, fault.Field("invalid_id", "id", "must be a positive integer")
	}
	return id, nil
}

// changeWebhook locks endpoint id, applies change and audits action with the
// endpoint before and after, in one transaction; it returns the endpoint
// after the change (nil once deleted).
func (h *handler) changeWebhook(r *http.Request, c *auth.Claims, id int64, action string,
	change func(ctx context.Context, tx *sql.Tx) error) (after *notify.Endpoint, err error) {
	ctx := r.Context()
	err = sqldb.InTx(ctx, h.db, func(tx *sql.Tx) error {
		b, err := notify.LockEndpoint(ctx, tx, id)
		if err != nil {
			return err
		}
		if err := change(ctx, tx); err != nil {
			return err
		}
		var beforeState, afterState any = webhookAudit(b), nil
		if a, err := notify.GetEndpoint(ctx, tx, id); err == nil {
			after, afterState = &a, webhookAudit(a)
		} else if fault.CodeOf(err) != "webhook_endpoint_not_found" {
			return err
		}
		return lifecycle.Audit(ctx, tx, actor(r, c), action, b.TenantID, b.TenantCode, beforeState, afterState, "")
	})
	return after, err
}

func (h *handler) setWebhookStatus(r *http.Request, c *auth.Claims) (int, any, error) {
	id, err := webhookID(r)
	if err != nil {
		return 0, nil, err
	}
	var in struct {
		Status string `json:"status"`
	}
	if err := httpapi.Decode(r, &in); err != nil {
		return 0, nil, err
	}
	if in.Status != notify.EndpointActive && in.Status != notify.EndpointDisabled {
		return 0, nil, fault.Field("invalid_field", "status", "must be active or disabled")
	}
	after, err := h.changeWebhook(r, c, id, "webhook.status", func(ctx context.Context, tx *sql.Tx) error {
		return notify.SetEndpointStatus(ctx, tx, id, in.Status)
	})
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, after, nil
}

func (h *handler) deleteWebhook(r *http.Request, c *auth.Claims) (int, any, error) {
	id, err := webhookID(r)
	if err != nil {
		return 0, nil, err
	}
	if _, err := h.changeWebhook(r, c, id, "webhook.delete", func(ctx context.Context, tx *sql.Tx) error {
		return notify.DeleteEndpoint(ctx, tx, id)
	}); err != nil {
		return 0, nil, err
	}
	return http.StatusOK, map[string]any{"id": id, "deleted": true}, nil
}
