package main

import (
	"context"
	"database/sql"
	"log/slog"
	"net/http"
	"regexp"
	"strconv"
	"time"

	"github.com/unitenant/unitenant/shared/auth"
	"github.com/unitenant/unitenant/shared/fault"
	"github.com/unitenant/unitenant/shared/httpapi"
	"github.com/unitenant/unitenant/shared/identity"
	"github.com/unitenant/unitenant/shared/tenancy"
	"github.com/unitenant/unitenant/shared/tenantapp"
)

// Routes, every one behind the token (tenant-scoped; platform tokens are
// refused by tenancy with 403 tenant_forbidden), the tenant (identified,
// gated, its database attached) and the membership check (403 not_a_member):
//
//	GET    /api/app/me              the caller: user, roles, permissions, tenant
//	GET    /api/app/users           users:read      users, paginated (page, pageSize)
//	GET    /api/app/classes         classes:read    classes, paginated
//	POST   /api/app/classes         classes:write   create a class (201)
//	GET    /api/app/classes/{id}    classes:read    one class
//	PUT    /api/app/classes/{id}    classes:write   change the fields given
//	DELETE /api/app/classes/{id}    classes:write   delete; its students stay, classless
//	GET    /api/app/students        students:read   students, paginated, filter classId
//	POST   /api/app/students        students:write  create a student (201)
//	GET    /api/app/students/{id}   students:read   one student
//	PUT    /api/app/students/{id}   students:write  change the fields given
//	DELETE /api/app/students/{id}   students:write  delete (soft)
func newHandler(v *auth.Verifier, ten *tenancy.Service, sys *sql.DB, log *slog.Logger, now func() time.Time) http.Handler {
	h := &handler{sys: sys, log: log, now: now}
	rt := httpapi.NewRouter()
	rt.Handle("GET /api/app/me", h.route("", h.me))
	rt.Handle("GET /api/app/users", h.route("users:read", list(tenantapp.ListUsers)))
	rt.Handle("GET /api/app/classes", h.route("classes:read", list(tenantapp.ListClasses)))
	rt.Handle("POST /api/app/classes", h.route("classes:write", h.createClass))
	rt.Handle("GET /api/app/classes/{id}", h.route("classes:read", get(tenantapp.GetClass)))
	rt.Handle("PUT /api/app/classes/{id}", h.route("classes:write", update(tenantapp.UpdateClass)))
	rt.Handle("DELETE /api/app/classes/{id}", h.route("classes:write", remove(tenantapp.DeleteClass)))
	rt.Handle("GET /api/app/students", h.route("students:read", h.listStudents))
	rt.Handle("POST /api/app/students", h.route("students:write", h.createStudent))
	rt.Handle("GET /api/app/students/{id}", h.route("students:read", get(tenantapp.GetStudent)))
	rt.Handle("PUT /api/app/students/{id}", h.route("students:write", update(tenantapp.UpdateStudent)))
	rt.Handle("DELETE /api/app/students/{id}", h.route("students:write", remove(tenantapp.DeleteStudent)))
	return httpapi.Chain(rt,
		auth.Require(v, log, auth.AudienceTenant, auth.AudiencePlatform),
		ten.Middleware,
		h.member,
	)
}

type handler struct {
	sys *sql.DB // the system database: memberships
	log *slog.Logger
	now func() time.Time
}

// caller is who is calling and where: the member, its tenant and the
// request's connection on the tenant's database.
type caller struct {
	member *tenantapp.Member
	tenant *tenancy.Tenant
	db     tenantapp.TxDB
}

type callerKey struct{}

// member finds the caller's active membership in the system database and
// its active user in the tenant database by the token's global user id,
// with its roles and permissions. Both must hold: a membership ends in the
// system database first (tenantapp.Unbind), and a removal cut off before
// the tenant's user was made inactive still ends it.
func (h *handler) member(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx := r.Context()
		claims, ok := auth.FromContext(ctx)
		t, tok := tenancy.FromContext(ctx)
		if !ok || !tok || claims.Kind != auth.KindUser {
			httpapi.Fail(w, r, h.log, tenantapp.ErrNotMember)
			return
		}
		if _, err := identity.MemberRole(ctx, h.sys, claims.SubjectID(), t.ID); err != nil {
			httpapi.Fail(w, r, h.log, err)
			return
		}
		conn, err := tenancy.Conn(ctx)
		if err != nil {
			httpapi.Fail(w, r, h.log, err)
			return
		}
		m, err := tenantapp.LoadMember(ctx, conn, claims.SubjectID())
		if err != nil {
			httpapi.Fail(w, r, h.log, err)
			return
		}
		ctx = context.WithValue(ctx, callerKey{}, &caller{member: m, tenant: t, db: conn})
		next.ServeHTTP(w, r.WithContext(ctx))
	})
}

// endpoint is one route's work; it returns the status and data to answer.
type endpoint func(r *http.Request, c *caller) (int, any, error)

// route runs fn for a member holding permission ("" = any member).
func (h *handler) route(permission string, fn endpoint) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, ok := r.Context().Value(callerKey{}).(*caller)
		if !ok {
			httpapi.Fail(w, r, h.log, tenantapp.ErrNotMember)
			return
		}
		if permission != "" {
			if err := c.member.Require(permission); err != nil {
				httpapi.Fail(w, r, h.log, err)
				return
			}
		}
		status, data, err := fn(r, c)
		if err != nil {
			httpapi.Fail(w, r, h.log, err)
			return
		}
		httpapi.JSON(w, r, status, data)
	})
}

// me is the body of GET /api/app/me.
type me struct {
	User        tenantapp.User `json:"user"`
	Roles       []string       `json:"roles"`
	Permissions []string       `json:"permissions"`
	Tenant      tenantInfo     `json:"tenant"`
}

type tenantInfo struct {
	Code string `json:"code"`
	Name string `json:"name"`
}

func (h *handler) me(_ *http.Request, c *caller) (int, any, error) {
	m := c.member
	return http.StatusOK, me{User: m.User, Roles: m.Roles, Permissions: m.Permissions,
		Tenant: tenantInfo{Code: c.tenant.Code, Name: c.tenant.Name}}, nil
}

func (h *handler) createClass(r *http.Request, c *caller) (int, any, error) {
	var in tenantapp.ClassInput
	if err := httpapi.Decode(r, &in); err != nil {
		return 0, nil, err
	}
	cl, err := tenantapp.CreateClass(r.Context(), c.db, in, c.tenant.Name, h.now())
	return http.StatusCreated, cl, err
}

func (h *handler) listStudents(r *http.Request, c *caller) (int, any, error) {
	q := r.URL.Query()
	p, err := tenantapp.ParsePage(q)
	if err != nil {
		return 0, nil, err
	}
	var class *int64
	if _, ok := q["classId"]; ok {
		id, ok := parseID(q.Get("classId"))
		if !ok || len(q["classId"]) > 1 {
			return 0, nil, fault.Field("invalid_query", "classId", "must be one positive integer")
		}
		class = &id
	}
	l, err := tenantapp.ListStudents(r.Context(), c.db, p, class)
	return http.StatusOK, l, err
}

func (h *handler) createStudent(r *http.Request, c *caller) (int, any, error) {
	var in tenantapp.StudentInput
	if err := httpapi.Decode(r, &in); err != nil {
		return 0, nil, err
	}
	st, err := tenantapp.CreateStudent(r.Context(), c.db, in, c.tenant.Name)
	return http.StatusCreated, st, err
}

// list is the endpoint of a paginated list.
func list[T any](fn func(context.Context, tenantapp.DB, tenantapp.Page) (tenantapp.List[T], error)) endpoint {
	return func(r *http.Request, c *caller) (int, any, error) {
		p, err := tenantapp.ParsePage(r.URL.Query())
		if err != nil {
			return 0, nil, err
		}
		l, err := fn(r.Context(), c.db, p)
		return http.StatusOK, l, err
	}
}

// get is the endpoint that reads the row {id}.
func get[T any](fn func(context.Context, tenantapp.DB, int64) (T, error)) endpoint {
	return func(r *http.Request, c *caller) (int, any, error) {
		id, err := pathID(r)
		if err != nil {
			return 0, nil, err
		}
		v, err := fn(r.Context(), c.db, id)
		return http.StatusOK, v, err
	}
}

// update is the endpoint that changes the row {id} with the JSON body.
func update[In, T any](fn func(context.Context, tenantapp.DB, int64, In) (T, error)) endpoint {
	return func(r *http.Request, c *caller) (int, any, error) {
		id, err := pathID(r)
		if err != nil {
			return 0, nil, err
		}
		var in In
		if err := httpapi.Decode(r, &in); err != nil {
			return 0, nil, err
		}
		v, err := fn(r.Context(), c.db, id, in)
		return http.StatusOK, v, err
	}
}

// remove is the endpoint that deletes the row {id}.
func remove(fn func(context.Context, tenantapp.DB, int64) error) endpoint {
	return func(r *http.Request, c *caller) (int, any, error) {
		id, err := pathID(r)
		if err != nil {
			return 0, nil, err
		}
		return http.StatusOK, deleted{ID: id, Deleted: true}, fn(r.Context(), c.db, id)
	}
}

// deleted is the body of a successful DELETE.
type deleted struct {
	ID      int64 `json:"id"`
	Deleted bool  `json:"deleted"`
}

var idPattern = regexp.MustCompile(`^[1-9][0-9]{0,18}$`)

// parseID reads a row id: a positive decimal integer that fits in int64.
func parseID(s string) (int64, bool) {
	if !idPattern.MatchString(s) {
		return 0, false
	}
	id, err := strconv.ParseInt(s, 10, 64)
	return id, err == nil
}

// pathID reads the {id} of the route; anything else is refused before the
// database is asked.
func pathID(r *http.Request) (int64, error) {
	id, ok := parseID(r.PathValue("id"))
	if !ok {
		return 0, fault.Field("invalid_id", "id", "must be a positive integer")
	}
	return id, nil
}
