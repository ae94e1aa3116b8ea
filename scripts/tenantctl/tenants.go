package main

import (
	"context"
	"database/sql"
	"errors"
	"flag"
	"fmt"

	"github.com/unitenant/unitenant/shared/objectstore"
	"github.com/unitenant/unitenant/shared/provisioning"
	"github.com/unitenant/unitenant/shared/sqldb"
	"github.com/unitenant/unitenant/shared/tenancy"
	"github.com/unitenant/unitenant/shared/tenantapp"
)

// DefaultCluster is the cluster tenantctl registers when none is named.
const DefaultCluster = "default"

// tenantResult is what tenant add prints.
type tenantResult struct {
	ID       int64       `json:"tenantId"`
	Code     string      `json:"code"`
	Name     string      `json:"name"`
	Database string      `json:"database"`
	Cluster  string      `json:"cluster"`
	Created  bool        `json:"created"`
	Owner    *memberInfo `json:"owner,omitempty"`
}

// memberInfo is what member add prints.
type memberInfo struct {
	Tenant string `json:"tenant"`
	Role   string `json:"role"`
	globalUser
	tenantapp.BindResult
}

func (c *cli) tenantAdd(ctx context.Context, args []string) error {
	var req provisioning.Request
	var owner string
	if err := c.flags("tenant add", args, func(fs *flag.FlagSet) {
		fs.StringVar(&req.Code, "code", "", "tenant code (TENANT_CODE_PATTERN, default ^k\\d{3,}$)")
		fs.StringVar(&req.Name, "name", "", "tenant name")
		fs.StringVar(&owner, "owner-phone", "", "phone of a global user to make the tenant's admin")
		fs.StringVar(&req.ContactName, "contact-name", "", "contact person (default: the owner's name, else the tenant name)")
		fs.StringVar(&req.ContactPhone, "contact-phone", "", "contact phone (default: --owner-phone)")
		fs.StringVar(&req.ContactEmail, "contact-email", "", "contact e-mail (default: admin@<code>.<BASE_DOMAIN>)")
		fs.StringVar(&req.Subdomain, "subdomain", "", "subdomain (default: the code)")
		fs.StringVar(&req.PlanType, "plan", "basic", "basic, standard, premium or enterprise (a siloed database)")
	}, "code", "name"); err != nil {
		return err
	}
	// Everything is checked before anything is written.
	if owner != "" {
		u, err := c.mustFindGlobalUser(ctx, owner)
		if err != nil {
			return err
		}
		req.AdminUserID = u.ID
		if req.ContactName == "" {
			req.ContactName = u.RealName
		}
		if req.ContactPhone == "" {
			req.ContactPhone = owner
		}
	}
	res, err := c.createTenant(ctx, req)
	if err != nil {
		return err
	}
	return c.print(res)
}

// createTenant runs the provisioning pipeline for req, filling the contact
// details tenantctl does not insist on.
func (c *cli) createTenant(ctx context.Context, req provisioning.Request) (tenantResult, error) {
	if req.ContactName == "" {
		req.ContactName = req.Name
	}
	if req.ContactEmail == "" {
		req.ContactEmail = "admin@" + req.Code + "." + c.env.String("BASE_DOMAIN", "localhost")
	}
	p, err := c.pipeline(ctx)
	if err != nil {
		return tenantResult{}, err
	}
	// Bad input changes nothing, not even the cluster registration.
	if err := p.Validate(&req); err != nil {
		return tenantResult{}, fmt.Errorf("tenant %s: %w", req.Code, err)
	}
	if err := c.ensureCluster(ctx); err != nil {
		return tenantResult{}, err
	}
	if _, err := p.Start(ctx, req); err != nil {
		return tenantResult{}, fmt.Errorf("tenant %s: %w", req.Code, err)
	}
	if err := p.Run(ctx, req.Code); err != nil {
		return tenantResult{}, fmt.Errorf("tenant %s is reserved but its provisioning stopped: %w\n"+
			"  resume it: tenantctl provision resume %s\n  or remove it: tenantctl provision abort %s", req.Code, err, req.Code, req.Code)
	}
	res := tenantResult{Code: req.Code, Name: req.Name, Created: true}
	err = c.db.QueryRowContext(ctx, `SELECT t.id, d.database_name, c.name FROM tenants t JOIN tenant_databases d ON d.tenant_id = t.id
		JOIN db_clusters c ON c.id = d.cluster_id WHERE t.tenant_code = ?`, req.Code).Scan(&res.ID, &res.Database, &res.Cluster)
	if err != nil {
		return res, fmt.Errorf("tenant %s: %w", req.Code, err)
	}
	return res, nil
}

// ensureCluster registers the default cluster when no cluster is
// registered yet, so a first tenant has somewhere to go.
func (c *cli) ensureCluster(ctx context.Context) error {
	var clusters int
	if err := c.db.QueryRowContext(ctx, "SELECT COUNT(*) FROM db_clusters").Scan(&clusters); err != nil {
		return fmt.Errorf("count clusters: %w", err)
	}
	if clusters > 0 {
		return nil
	}
	_, err := c.clusterID(ctx, DefaultCluster)
	return err
}

// pipeline builds the provisioning pipeline tenantctl runs.
func (c *cli) pipeline(ctx context.Context) (*provisioning.Pipeline, error) {
	box, err := c.secretBox()
	if err != nil {
		return nil, err
	}
	store, err := objectstore.Load(c.env, c.base.Env == "development")
	if err != nil {
		return nil, err
	}
	p := provisioning.LoadPipeline(c.env, c.db, box, store, c.log)
	if err := c.env.Err(); err != nil {
		return nil, err
	}
	return p, nil
}

// provision resumes or aborts unfinished provisioning.
func (c *cli) provision(ctx context.Context, args []string) error {
	if len(args) == 0 || (args[0] != "resume" && args[0] != "abort") || (args[0] == "abort" && len(args) != 2) || len(args) > 2 {
		return usageError("want: provision resume [code] | provision abort <code>")
	}
	p, err := c.pipeline(ctx)
	if err != nil {
		return err
	}
	type result struct {
		Resumed []string `json:"resumed,omitempty"`
		Aborted string   `json:"aborted,omitempty"`
	}
	switch {
	case args[0] == "abort":
		if err := p.Abort(ctx, args[1]); err != nil {
			return err
		}
		return c.print(result{Aborted: args[1]})
	case len(args) == 2:
		if err := p.Run(ctx, args[1]); err != nil {
			return err
		}
		return c.print(result{Resumed: []string{args[1]}})
	}
	done, err := p.Resume(ctx, 1000)
	if err != nil {
		return err
	}
	return c.print(result{Resumed: done})
}

// clusterID returns the id of cluster name. The default cluster is
// registered on first use, on TENANT_CLUSTER_DSN or else the server of the
// system database; any other must have been registered already.
func (c *cli) clusterID(ctx context.Context, name string) (int64, error) {
	var id int64
	err := c.db.QueryRowContext(ctx, "SELECT id FROM db_clusters WHERE name = ?", name).Scan(&id)
	if err == nil {
		return id, nil
	}
	if !errors.Is(err, sql.ErrNoRows) {
		return 0, fmt.Errorf("find cluster %s: %w", name, err)
	}
	if name != DefaultCluster {
		return 0, fmt.Errorf("cluster %q is not registered (only %q is registered automatically)", name, DefaultCluster)
	}
	dsn := c.clusterDSN
	if dsn == "" {
		if dsn, err = sqldb.WithDatabase(c.base.DB.DSN, ""); err != nil {
			return 0, err
		}
	}
	box, err := c.secretBox()
	if err != nil {
		return 0, err
	}
	return provisioning.EnsureCluster(ctx, c.db, box, name, dsn, 0)
}

func (c *cli) memberAdd(ctx context.Context, args []string) error {
	var code, phone, role string
	if err := c.flags("member add", args, func(fs *flag.FlagSet) {
		fs.StringVar(&code, "tenant", "", "tenant code")
		fs.StringVar(&phone, "phone", "", "phone of the global user")
		fs.StringVar(&role, "role", "", "role code in the tenant (admin, principal, teacher, staff, finance, parent...)")
	}, "tenant", "phone", "role"); err != nil {
		return err
	}
	u, err := c.mustFindGlobalUser(ctx, phone)
	if err != nil {
		return err
	}
	m, err := c.bind(ctx, code, u, role)
	if err != nil {
		return err
	}
	return c.print(m)
}

// bind makes u an active member of tenant code with role (see
// tenantapp.Bind: idempotent, repaired by rerunning).
func (c *cli) bind(ctx context.Context, code string, u globalUser, role string) (memberInfo, error) {
	if !tenancy.ValidCode(code) {
		return memberInfo{}, fmt.Errorf("tenant %q: not a tenant code", code)
	}
	box, err := c.secretBox()
	if err != nil {
		return memberInfo{}, err
	}
	t, err := tenancy.NewRegistry(c.db, tenancy.RegistryOptions{}).ByCode(ctx, code)
	if err != nil {
		return memberInfo{}, fmt.Errorf("tenant %s: %w", code, err)
	}
	if err := tenancy.Gate(t); err != nil {
		return memberInfo{}, fmt.Errorf("tenant %s: %w", code, err)
	}
	router := tenancy.NewRouter(c.db, box, tenancy.RouterOptions{ClusterMaxOpen: 1})
	defer router.Close()
	conn, err := router.Conn(ctx, t)
	if err != nil {
		return memberInfo{}, err
	}
	defer conn.Close()
	res, err := tenantapp.Bind(ctx, c.db, conn, tenantapp.Binding{
		GlobalUserID: u.ID, Phone: u.Phone, RealName: u.RealName,
		TenantID: t.ID, TenantCode: t.Code, Role: role,
	})
	if err != nil {
		return memberInfo{}, fmt.Errorf("member %s of %s: %w", u.Phone, code, err)
	}
	return memberInfo{Tenant: code, Role: role, globalUser: u, BindResult: res}, nil
}
