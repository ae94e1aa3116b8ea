package provisioning

import (
	"database/sql"
	"log/slog"
	"os"
	"regexp"
	"strconv"
	"time"

	"github.com/unitenant/unitenant/shared/config"
	"github.com/unitenant/unitenant/shared/secretbox"
	"github.com/unitenant/unitenant/shared/tenancy"
)

// DefaultMaxTenantsPerUser is how many tenants one user may create by
// self-service unless TENANTS_PER_USER says otherwise.
const DefaultMaxTenantsPerUser = 5

// LoadPipeline builds the provisioning pipeline from the environment:
//
//	TENANT_CODE_PATTERN   new tenant codes (default DefaultCodePattern)
//	PHONE_PATTERN         contact phones (default ^1[3-9]\d{9}$)
//	TEMPLATE_DATABASE     the template on every cluster (default unitenant_template)
//	TENANT_DB_PREFIX      tenant database names (default tenant_)
//	RESERVED_SUBDOMAINS   besides tenancy.DefaultReserved
//	CLONE_PARALLEL        connections a clone uses (default 8)
//	SILO_USER_HOST        host of siloed MySQL users (default %)
//	PROVISION_LEASE       how long a run holds a tenant (default 2m)
//	TENANTS_PER_USER      tenants one user may create by self-service (default 5, 0: no limit)
func LoadPipeline(e *config.Env, sys *sql.DB, box *secretbox.Box, store Storage, log *slog.Logger) *Pipeline {
	p := &Pipeline{
		Sys: sys, Box: box, Storage: store, Log: log,
		Template:          e.String("TEMPLATE_DATABASE", DefaultTemplateDatabase),
		Prefix:            e.String("TENANT_DB_PREFIX", DefaultDatabasePrefix),
		Parallel:          e.Int("CLONE_PARALLEL", DefaultCloneParallel, 1, 32),
		SiloUserHost:      e.String("SILO_USER_HOST", "%"),
		LeaseTTL:          e.Duration("PROVISION_LEASE", 2*time.Minute),
		MaxTenantsPerUser: e.Int("TENANTS_PER_USER", DefaultMaxTenantsPerUser, 0, 1_000_000),
		Reserved:          tenancy.ParseHosts("x", e.String("RESERVED_SUBDOMAINS", ""), "").Reserved,
	}
	for name, dst := range map[string]**regexp.Regexp{"TENANT_CODE_PATTERN": &p.CodePattern, "PHONE_PATTERN": &p.PhonePattern} {
		if v := e.String(name, ""); v != "" {
			re, err := regexp.Compile(v)
			if err != nil {
				e.Fail(name, v, "not a regular expression: "+err.Error())
				continue
			}
			*dst = re
		}
	}
	host, _ := os.Hostname()
	p.Owner = host + ":" + strconv.Itoa(os.Getpid())
	p.defaults()
	return p
}
