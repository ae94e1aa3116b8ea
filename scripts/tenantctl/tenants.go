package main

import (
	"context"
	"database/sql"
	"errors"
	"flag"
	"fmt"
	"strings"

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
	var code, name, owner, cluster string
	if err := c.flags("tenant add", args, func(fs *flag.FlagSet) {
		fs.StringVar(&code, "code", "", "tenant code, a lower-case DNS label (k001)")
		fs.StringVar(&name, "name", "", "tenant name")
		fs.StringVar(&owner, "owner-phone", "", "phone of a global user to make the tenant's admin")
		fs.StringVar(&cluster, "cluster", DefaultCluster, "database cluster to place the tenant on")
	}, "code", "name"); err != nil {
		return err
	}
	// Everything is checked before anything is written.
	name = strings.TrimSpace(name)
	if !tenancy.ValidCode(code) {
		return fmt.Errorf("--code %q: want a lower-case DNS label of letters, digits and hyphens, at most 50 characters", code)
	}
	if err := checkName("--name", name, 255); err != nil {
		return err
	}
	var ownerUser globalUser
	if owner != "" {
		u, err := c.mustFindGlobalUser(ctx, owner)
		if err != nil {
			return err
		}
		ownerUser = u
	}
	res, err := c.createTenant(ctx, code, name, owner, cluster)
	if err != nil {
		return err
	}
	if owner != "" {
		m, err := c.bind(ctx, code, ownerUser, "admin")
		if err != nil {
			return fmt.Errorf("tenant %s created, but binding its owner failed (rerun member add): %w", code, err)
		}
		res.Owner = &m
	}
	return c.print(res)
}

// createTenant places a new tenant on cluster and creates its database.
func (c *cli) createTenant(ctx context.Context, code, name, contactPhone, cluster string) (tenantResult, error) {
	clusterID, err := c.clusterID(ctx, cluster)
	if err != nil {
		return tenantResult{}, err
	}
	dbName, err := provisioning.DatabaseName(c.dbPrefix, code)
	if err != nil {
		return tenantResult{}, err
	}
	box, err := c.secretBox()
	if err != nil {
		return tenantResult{}, err
	}
	nt := provisioning.NewTenant{Code: code, Name: name, ContactPhone: contactPhone, ClusterID: clusterID, Database: dbName}
	id, err := provisioning.CreateTenant(ctx, c.db, box, nt, c.log)
	if err != nil {
		return tenantResult{}, fmt.Errorf("create tenant %s: %w", code, err)
	}
	return tenantResult{ID: id, Code: code, Name: name, Database: dbName, Cluster: cluster, Created: true}, nil
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
