package main

import (
	"context"
	"database/sql"
	"net/http"
	"strconv"

	"github.com/unitenant/unitenant/shared/auth"
	"github.com/unitenant/unitenant/shared/fault"
	"github.com/unitenant/unitenant/shared/httpapi"
	"github.com/unitenant/unitenant/shared/lifecycle"
	"github.com/unitenant/unitenant/shared/notify"
	"github.com/unitenant/unitenant/shared/sqldb"
)

// Webhook routes (see newHandler):
//
//	GET    /api/admin/webhooks          endpoints (?tenantCode= for one tenant's)
//	POST   /api/admin/webhooks          {url, events?, tenantCode?, name?} → the endpoint and its secret, shown once;
//	                                    a URL whose host is a non-public address or localhost is 400 (unless
//	                                    NOTIFY_ALLOW_PRIVATE_URLS), names are checked on delivery
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
	tenantID := notify.AllTenants
	if code := r.URL.Query().Get("tenantCode"); code != "" {
		t, err := h.tenant(r.Context(), code)
		if err != nil {
			return 0, nil, err
		}
		tenantID = t.ID
	}
	eps, err := notify.ListEndpoints(r.Context(), h.db, tenantID)
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, map[string]any{"items": eps}, nil
}

func (h *handler) addWebhook(r *http.Request, c *auth.Claims) (int, any, error) {
	ctx := r.Context()
	var in webhookInput
	if err := httpapi.Decode(r, &in); err != nil {
		return 0, nil, err
	}
	ep := notify.Endpoint{URL: in.URL, Events: in.Events, Name: in.Name, Secret: notify.NewSecret(), CreatedBy: c.SubjectID()}
	// Every bad field at once, before anything is looked up. A URL the
	// dispatcher would never deliver to (an address that is not public) is
	// refused now, not on every delivery.
	if err := notify.ValidateNewEndpoint(&ep, h.allowPrivateURLs); err != nil {
		return 0, nil, err
	}
	code := ""
	if in.TenantCode != "" {
		t, err := h.tenant(ctx, in.TenantCode)
		if fe, ok := fault.As(err); ok && fe.Code == "tenant_not_found" {
			return 0, nil, &fault.Error{Kind: fe.Kind, Code: fe.Code, Message: "tenantCode: " + fe.Message,
				Fields: map[string]string{"tenantCode": "no such tenant"}}
		}
		if err != nil {
			return 0, nil, err
		}
		ep.TenantID, code = t.ID, t.Code
	}
	var stored notify.Endpoint
	err := sqldb.InTx(ctx, h.db, func(tx *sql.Tx) error {
		id, err := notify.AddEndpointTx(ctx, tx, h.box, ep)
		if err != nil {
			return err
		}
		if stored, err = notify.GetEndpoint(ctx, tx, id); err != nil {
			return err
		}
		return lifecycle.Audit(ctx, tx, actor(r, c), "webhook.add", ep.TenantID, code, nil, webhookAudit(stored), "")
	})
	if err != nil {
		return 0, nil, err
	}
	// The secret is returned this once: receivers need it to verify signatures.
	return http.StatusCreated, map[string]any{"endpoint": stored, "secret": ep.Secret}, nil
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
