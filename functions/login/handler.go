package main

import (
	"log/slog"
	"net/http"

	"github.com/unitenant/unitenant/shared/auth"
	"github.com/unitenant/unitenant/shared/httpapi"
	"github.com/unitenant/unitenant/shared/identity"
	"github.com/unitenant/unitenant/shared/logging"
	"github.com/unitenant/unitenant/shared/serverless"
)

// Routes:
//
//	POST /api/auth/sms-code        {phone, purpose}                        -> {expiresIn}
//	POST /api/auth/register        {phone, password, realName, smsCode, email?} -> 201 {globalUserId, phone, realName}
//	POST /api/auth/login           {phone, password}                       -> session + tenants
//	POST /api/auth/refresh         {refreshToken}                          -> a new pair
//	POST /api/auth/logout          {refreshToken}                          -> revokes the session's family
//	GET  /api/auth/me              platform or tenant token                -> the caller (a tenant token: its membership as it is now)
//	GET  /api/auth/tenants         platform or tenant token                -> the caller's tenants
//	POST /api/auth/switch-tenant   {tenantCode}, platform or tenant token  -> tenant-scoped session
//	POST /api/admin/auth/login     {username, password}                    -> admin session
//	GET  /.well-known/jwks.json    the token verification keys
func newHandler(svc *identity.Service, verifier *auth.Verifier, log *slog.Logger) http.Handler {
	h := &handler{svc: svc, verifier: verifier, log: log}
	user := auth.Require(verifier, log, auth.AudiencePlatform, auth.AudienceTenant)
	rt := httpapi.NewRouter()
	rt.HandleFunc("POST /api/auth/sms-code", h.smsCode)
	rt.HandleFunc("POST /api/auth/register", h.register)
	rt.HandleFunc("POST /api/auth/login", h.login)
	rt.HandleFunc("POST /api/auth/refresh", h.refresh)
	rt.HandleFunc("POST /api/auth/logout", h.logout)
	rt.Handle("GET /api/auth/me", user(http.HandlerFunc(h.me)))
	rt.Handle("GET /api/auth/tenants", user(http.HandlerFunc(h.tenants)))
	rt.Handle("POST /api/auth/switch-tenant", user(http.HandlerFunc(h.switchTenant)))
	rt.HandleFunc("POST /api/admin/auth/login", h.adminLogin)
	rt.HandleFunc("GET /.well-known/jwks.json", h.jwks)
	return rt
}

type handler struct {
	svc      *identity.Service
	verifier *auth.Verifier
	log      *slog.Logger
}

// client is the caller as the audit rows record it.
func client(r *http.Request) identity.Client {
	return identity.Client{IP: serverless.ClientIP(r), UserAgent: r.UserAgent(), RequestID: logging.RequestID(r.Context())}
}

// decode reads the body into in, answering the request itself when it
// cannot.
func (h *handler) decode(w http.ResponseWriter, r *http.Request, in any) bool {
	if err := httpapi.Decode(r, in); err != nil {
		httpapi.Fail(w, r, h.log, err)
		return false
	}
	return true
}

// answer writes data with status, or err.
func (h *handler) answer(w http.ResponseWriter, r *http.Request, status int, data any, err error) {
	if err != nil {
		httpapi.Fail(w, r, h.log, err)
		return
	}
	httpapi.JSON(w, r, status, data)
}

// userClaims returns the claims of a verified user (not admin) token.
func userClaims(w http.ResponseWriter, r *http.Request) (*auth.Claims, bool) {
	c, ok := auth.FromContext(r.Context())
	if !ok || c.Kind != auth.KindUser {
		httpapi.Fail(w, r, nil, auth.ErrInvalidToken)
		return nil, false
	}
	return c, true
}

func (h *handler) smsCode(w http.ResponseWriter, r *http.Request) {
	var in struct {
		Phone   string `json:"phone"`
		Purpose string `json:"purpose"`
	}
	if !h.decode(w, r, &in) {
		return
	}
	ttl, err := h.svc.SendCode(r.Context(), client(r), in.Phone, in.Purpose)
	h.answer(w, r, http.StatusOK, map[string]int{"expiresIn": int(ttl.Seconds())}, err)
}

func (h *handler) register(w http.ResponseWriter, r *http.Request) {
	var in struct {
		Phone    string `json:"phone"`
		Password string `json:"password"`
		RealName string `json:"realName"`
		SMSCode  string `json:"smsCode"`
		Email    string `json:"email"`
	}
	if !h.decode(w, r, &in) {
		return
	}
	u, err := h.svc.Register(r.Context(), client(r), identity.Registration{
		Phone: in.Phone, Password: in.Password, RealName: in.RealName, SMSCode: in.SMSCode, Email: in.Email})
	h.answer(w, r, http.StatusCreated, u, err)
}

func (h *handler) login(w http.ResponseWriter, r *http.Request) {
	var in struct {
		Phone    string `json:"phone"`
		Password string `json:"password"`
	}
	if !h.decode(w, r, &in) {
		return
	}
	res, err := h.svc.Login(r.Context(), client(r), in.Phone, in.Password)
	h.answer(w, r, http.StatusOK, res, err)
}

// refreshBody is the body of refresh and logout.
type refreshBody struct {
	RefreshToken string `json:"refreshToken"`
}

func (h *handler) refresh(w http.ResponseWriter, r *http.Request) {
	var in refreshBody
	if !h.decode(w, r, &in) {
		return
	}
	res, err := h.svc.Refresh(r.Context(), client(r), in.RefreshToken)
	h.answer(w, r, http.StatusOK, res, err)
}

func (h *handler) logout(w http.ResponseWriter, r *http.Request) {
	var in refreshBody
	if !h.decode(w, r, &in) {
		return
	}
	err := h.svc.Logout(r.Context(), client(r), in.RefreshToken)
	h.answer(w, r, http.StatusOK, map[string]bool{"loggedOut": true}, err)
}

func (h *handler) me(w http.ResponseWriter, r *http.Request) {
	c, ok := userClaims(w, r)
	if !ok {
		return
	}
	me, err := h.svc.Me(r.Context(), c.SubjectID(), c.TenantID)
	h.answer(w, r, http.StatusOK, me, err)
}

func (h *handler) tenants(w http.ResponseWriter, r *http.Request) {
	c, ok := userClaims(w, r)
	if !ok {
		return
	}
	ts, err := h.svc.Tenants(r.Context(), c.SubjectID())
	h.answer(w, r, http.StatusOK, map[string]any{"tenants": ts}, err)
}

func (h *handler) switchTenant(w http.ResponseWriter, r *http.Request) {
	c, ok := userClaims(w, r)
	if !ok {
		return
	}
	var in struct {
		TenantCode string `json:"tenantCode"`
	}
	if !h.decode(w, r, &in) {
		return
	}
	res, err := h.svc.SwitchTenant(r.Context(), client(r), c.SubjectID(), in.TenantCode)
	h.answer(w, r, http.StatusOK, res, err)
}

func (h *handler) adminLogin(w http.ResponseWriter, r *http.Request) {
	var in struct {
		Username string `json:"username"`
		Password string `json:"password"`
	}
	if !h.decode(w, r, &in) {
		return
	}
	res, err := h.svc.AdminLogin(r.Context(), client(r), in.Username, in.Password)
	h.answer(w, r, http.StatusOK, res, err)
}

// jwks serves the key set bare (JWKS consumers, API gateway authorizers
// among them, do not read the envelope), cacheable briefly so a rotated key
// reaches verifiers within minutes.
func (h *handler) jwks(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "public, max-age=300")
	_, _ = w.Write(h.verifier.JWKS())
}
