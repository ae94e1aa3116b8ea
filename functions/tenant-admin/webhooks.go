package main

import (
	"net/http"
	"strconv"

	"github.com/unitenant/unitenant/shared/auth"
	"github.com/unitenant/unitenant/shared/fault"
	"github.com/unitenant/unitenant/shared/httpapi"
	"github.com/unitenant/unitenant/shared/lifecycle"
	"github.com/unitenant/unitenant/shared/notify"
)

// Webhook routes (see newHandler):
//
//	GET    /api/admin/webhooks          endpoints (?tenantCode= for one tenant's)
//	POST   /api/admin/webhooks          {url, events?, tenantCode?, name?} → the endpoint and its secret, shown once
//	PATCH  /api/admin/webhooks/{id}     {status: active|disabled}
//	DELETE /api/admin/webhooks/{id}

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
	var in webhookInput
	if err := httpapi.Decode(r, &in); err != nil {
		return 0, nil, err
	}
	ep := notify.Endpoint{URL: in.URL, Events: in.Events, Name: in.Name, Secret: notify.NewSecret(), CreatedBy: c.SubjectID()}
	code := ""
	if in.TenantCode != "" {
		t, err := h.tenant(r.Context(), in.TenantCode)
		if err != nil {
			return 0, nil, err
		}
		ep.TenantID, code = t.ID, t.Code
	}
	id, err := notify.AddEndpoint(r.Context(), h.db, h.box, ep)
	if err != nil {
		return 0, nil, err
	}
	if err := lifecycle.Audit(r.Context(), h.db, actor(r, c), "webhook.add", ep.TenantID, code, nil, map[string]any{"id": id, "url": ep.URL}, ""); err != nil {
		return 0, nil, err
	}
	stored, err := notify.GetEndpoint(r.Context(), h.db, id)
	if err != nil {
		return 0, nil, err
	}
	// The secret is returned this once: receivers need it to verify signatures.
	return http.StatusCreated, map[string]any{"endpoint": stored, "secret": ep.Secret}, nil
}

func webhookID(r *http.Request) (int64, error) {
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil || id <= 0 {
		return 0, fault.Field("invalid_id", "id", "must be a positive integer")
	}
	return id, nil
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
	if err := notify.SetEndpointStatus(r.Context(), h.db, id, in.Status); err != nil {
		return 0, nil, err
	}
	ep, err := notify.GetEndpoint(r.Context(), h.db, id)
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, ep, lifecycle.Audit(r.Context(), h.db, actor(r, c), "webhook.status", ep.TenantID, "", nil, map[string]any{"id": id, "status": in.Status}, "")
}

func (h *handler) deleteWebhook(r *http.Request, c *auth.Claims) (int, any, error) {
	id, err := webhookID(r)
	if err != nil {
		return 0, nil, err
	}
	if err := notify.DeleteEndpoint(r.Context(), h.db, id); err != nil {
		return 0, nil, err
	}
	return http.StatusOK, map[string]any{"id": id, "deleted": true},
		lifecycle.Audit(r.Context(), h.db, actor(r, c), "webhook.delete", 0, "", map[string]int64{"id": id}, nil, "")
}
