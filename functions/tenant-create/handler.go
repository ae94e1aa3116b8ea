package main

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"time"

	"github.com/unitenant/unitenant/shared/auth"
	"github.com/unitenant/unitenant/shared/fault"
	"github.com/unitenant/unitenant/shared/httpapi"
	"github.com/unitenant/unitenant/shared/idempotency"
	"github.com/unitenant/unitenant/shared/identity"
	"github.com/unitenant/unitenant/shared/provisioning"
	"github.com/unitenant/unitenant/shared/sms"
	"github.com/unitenant/unitenant/shared/sqldb"
)

// Routes:
//
//	POST /api/tenants                   create a tenant (user token + SMS code, or admin token); Idempotency-Key
//	GET  /api/tenants/{code}/progress   its provisioning progress (its creator, its members, admins)
func newHandler(h *handler) http.Handler {
	rt := httpapi.NewRouter()
	rt.HandleFunc("POST /api/tenants", h.create)
	rt.HandleFunc("GET /api/tenants/{code}/progress", h.progress)
	return httpapi.Chain(rt, auth.Require(h.verifier, h.log, auth.AudiencePlatform, auth.AudienceTenant, auth.AudienceAdmin))
}

type handler struct {
	db         *sql.DB
	pipeline   *provisioning.Pipeline
	codes      *sms.Codes
	idem       *idempotency.Store
	verifier   *auth.Verifier
	log        *slog.Logger
	budget     time.Duration // how long a create waits for provisioning before answering 202
	baseDomain string
	bcryptCost int
}

// createRequest is the body of POST /api/tenants.
type createRequest struct {
	TenantCode          string `json:"tenantCode"`
	Name                string `json:"name"`
	ContactName         string `json:"contactName"`
	ContactEmail        string `json:"contactEmail"`
	ContactPhone        string `json:"contactPhone"`
	SMSVerificationCode string `json:"smsVerificationCode"`
	Subdomain           string `json:"subdomain"`
	Address             string `json:"address"`
	Description         string `json:"description"`
	PlanType            string `json:"planType"`
}

// created is the answer: the tenant when provisioning finished in time, else
// where to follow it.
type created struct {
	TenantCode  string `json:"tenantCode"`
	Name        string `json:"name"`
	Status      string `json:"status"`
	Domain      string `json:"domain"`
	ProgressURL string `json:"progressUrl"`
}

func (h *handler) create(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	claims, _ := auth.FromContext(ctx)
	if err := h.mayCreate(ctx, claims); err != nil {
		httpapi.Fail(w, r, h.log, err)
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, httpapi.DefaultMaxBody))
	if err != nil {
		httpapi.Fail(w, r, h.log, fault.New(fault.TooLarge, "body_too_large", "body exceeds %d bytes", httpapi.DefaultMaxBody))
		return
	}
	r.Body = io.NopCloser(bytes.NewReader(body))

	key := r.Header.Get("Idempotency-Key")
	scope := fmt.Sprintf("POST /api/tenants:%s:%d", claims.Kind, claims.SubjectID())
	if key != "" {
		stored, err := h.idem.Begin(ctx, scope, key, idempotency.Hash(body))
		if err != nil {
			httpapi.Fail(w, r, h.log, err)
			return
		}
		if stored != nil {
			w.Header().Set("Content-Type", "application/json; charset=utf-8")
			w.Header().Set("Idempotent-Replayed", "true")
			w.WriteHeader(stored.Status)
			_, _ = w.Write(stored.Body)
			return
		}
	}
	status, resp, err := h.provision(r, claims, scope, key)
	if err != nil {
		if key != "" {
			if ferr := h.idem.Fail(context.WithoutCancel(ctx), scope, key, err); ferr != nil {
				h.log.ErrorContext(ctx, "end idempotency key", "err", ferr)
			}
		}
		httpapi.Fail(w, r, h.log, err)
		return
	}
	b, _ := json.Marshal(httpapi.Envelope{Success: true, Data: resp})
	if key != "" {
		if err := h.idem.Finish(context.WithoutCancel(ctx), scope, key, status, b); err != nil {
			h.log.ErrorContext(ctx, "store idempotent response", "err", err)
		}
	}
	if status == http.StatusAccepted {
		w.Header().Set("Location", resp.ProgressURL)
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n'))
}

// provision reserves the tenant and runs its provisioning for up to the
// budget: 201 with the tenant when it finished, 202 when it goes on (in this
// process where it keeps running, else in provision-cron). A request holding
// an Idempotency-Key whose earlier holder died after reserving the tenant
// picks that tenant up instead.
func (h *handler) provision(r *http.Request, claims *auth.Claims, scope, key string) (int, created, error) {
	ctx := r.Context()
	var in createRequest
	if err := httpapi.Decode(r, &in); err != nil {
		return 0, created{}, err
	}
	req := provisioning.Request{Code: in.TenantCode, Name: in.Name, ContactName: in.ContactName, ContactEmail: in.ContactEmail,
		ContactPhone: in.ContactPhone, Subdomain: in.Subdomain, Address: in.Address, Description: in.Description,
		PlanType: in.PlanType, CreatedBy: claims.SubjectID(), CreatedByAdmin: claims.Kind == auth.KindAdmin}
	if err := h.pipeline.Validate(&req); err != nil {
		return 0, created{}, err
	}
	reserved, err := h.reservedByKey(ctx, scope, key, req.Code)
	if err != nil {
		return 0, created{}, err
	}
	// reserve makes the tenant and, in the same transaction, ties it to the key.
	reserve := func(tx *sql.Tx) error {
		if _, err := h.pipeline.StartTx(ctx, tx, req); err != nil {
			return err
		}
		if key == "" {
			return nil
		}
		return h.idem.Bind(ctx, tx, scope, key, "tenant", req.Code)
	}
	switch {
	case reserved:
	case claims.Kind == auth.KindUser:
		// The requester becomes the admin; the SMS code proves the contact phone.
		req.AdminUserID = claims.SubjectID()
		err := sqldb.Retry(ctx, func() error {
			return h.codes.Redeem(ctx, req.ContactPhone, sms.PurposeTenantCreate, in.SMSVerificationCode, reserve)
		})
		if err != nil {
			return 0, created{}, err
		}
	case claims.Kind == auth.KindAdmin:
		// The contact's user is made with the tenant: a refused request
		// (the code taken) leaves no user behind.
		var hash string
		err := sqldb.InTxRetry(ctx, h.db, func(tx *sql.Tx) error {
			id, err := h.contactUser(ctx, tx, req, &hash)
			if err != nil {
				return err
			}
			req.AdminUserID = id
			return reserve(tx)
		})
		if err != nil {
			return 0, created{}, err
		}
	}

	resp := created{TenantCode: req.Code, Name: req.Name, Status: "provisioning",
		Domain: req.Subdomain + "." + h.baseDomain, ProgressURL: "/api/tenants/" + req.Code + "/progress"}
	done := make(chan error, 1)
	go func() { done <- h.pipeline.Run(context.WithoutCancel(ctx), req.Code) }()
	select {
	case err := <-done:
		if err != nil {
			h.log.WarnContext(ctx, "provisioning stopped; provision-cron will resume it", "tenant", req.Code, "err", err)
			return http.StatusAccepted, resp, nil
		}
		resp.Status = "active"
		return http.StatusCreated, resp, nil
	case <-time.After(h.budget):
		return http.StatusAccepted, resp, nil
	}
}

// reservedByKey reports whether an earlier holder of the Idempotency-Key (a
// request that died before it answered) reserved tenant code, which is still
// there. The key's scope is the caller and its body was the same, so the
// tenant is the caller's own.
func (h *handler) reservedByKey(ctx context.Context, scope, key, code string) (bool, error) {
	if key == "" {
		return false, nil
	}
	bound, err := h.idem.Resource(ctx, scope, key, "tenant")
	if err != nil || bound != code {
		return false, err
	}
	var n int
	if err := h.db.QueryRowContext(ctx, "SELECT COUNT(*) FROM tenants WHERE tenant_code = ?", code).Scan(&n); err != nil {
		return false, fmt.Errorf("find reserved tenant %s: %w", code, err)
	}
	return n > 0, nil // else aborted since: reserve it again
}

// contactUser finds, in tx, the global user of the contact phone, or
// creates one (without a usable password: they set one by SMS) for an
// admin's request. hash keeps the password hash across retries of tx.
func (h *handler) contactUser(ctx context.Context, tx *sql.Tx, req provisioning.Request, hash *string) (int64, error) {
	var id int64
	err := tx.QueryRowContext(ctx, "SELECT id FROM global_users WHERE phone = ?", req.ContactPhone).Scan(&id)
	if err == nil {
		return id, nil
	}
	if !errors.Is(err, sql.ErrNoRows) {
		return 0, fmt.Errorf("find contact user: %w", err)
	}
	if *hash == "" {
		if *hash, err = identity.HashPassword(identity.RandomPassword(), h.bcryptCost); err != nil {
			return 0, err
		}
	}
	// real_name is narrower than a contact name may be: it takes its start.
	res, err := tx.ExecContext(ctx, `INSERT INTO global_users (phone, password_hash, real_name, email, registration_source)
		VALUES (?, ?, LEFT(?, 50), ?, 'admin') ON DUPLICATE KEY UPDATE id = LAST_INSERT_ID(id)`, req.ContactPhone, *hash, req.ContactName, req.ContactEmail)
	if err == nil {
		id, err = res.LastInsertId()
	}
	if err != nil {
		return 0, fmt.Errorf("create contact user: %w", err)
	}
	return id, nil
}

// mayCreate lets through admins who are at least admin and global users
// who are active, as their accounts are now: a token's role outlives a
// demotion or a disabling made after it was issued.
func (h *handler) mayCreate(ctx context.Context, c *auth.Claims) error {
	if c.Kind == auth.KindAdmin {
		return identity.RequireAdmin(ctx, h.db, c, "admin")
	}
	var status string
	err := h.db.QueryRowContext(ctx, "SELECT status FROM global_users WHERE id = ?", c.SubjectID()).Scan(&status)
	if errors.Is(err, sql.ErrNoRows) || err == nil && status != "active" {
		return identity.ErrAccountDisabled
	}
	if err != nil {
		return fmt.Errorf("read user %d: %w", c.SubjectID(), err)
	}
	return nil
}

func (h *handler) progress(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	claims, _ := auth.FromContext(ctx)
	code := r.PathValue("code")
	v, err := provisioning.Progress(ctx, h.db, code)
	if err == nil && !h.mayView(ctx, claims, v) {
		err = fault.New(fault.NotFound, "tenant_not_found", "no provisioning record for tenant %q", code) // do not reveal it exists
	}
	if err == nil && claims.Kind != auth.KindAdmin {
		v.Redact() // errors in full are for admins
	}
	if err != nil {
		httpapi.Fail(w, r, h.log, err)
		return
	}
	httpapi.OK(w, r, v)
}

// mayView: admins, the creator, and the tenant's members see its progress.
func (h *handler) mayView(ctx context.Context, c *auth.Claims, v *provisioning.ProgressView) bool {
	if c.Kind == auth.KindAdmin {
		return identity.RequireAdmin(ctx, h.db, c, "operator") == nil
	}
	if v.CreatorUserID() != 0 && v.CreatorUserID() == c.SubjectID() {
		return true
	}
	var n int
	err := h.db.QueryRowContext(ctx, `SELECT COUNT(*) FROM global_user_tenant_relations WHERE tenant_id = ? AND global_user_id = ? AND status = 'active'`,
		v.TenantID(), c.SubjectID()).Scan(&n)
	return err == nil && n > 0
}
