package tenancy

import (
	"database/sql"
	"log/slog"
	"time"

	"github.com/unitenant/unitenant/shared/config"
	"github.com/unitenant/unitenant/shared/secretbox"
)

// Load builds the tenancy service of a function from its environment:
//
//	BASE_DOMAIN            tenants live at <code>.<BASE_DOMAIN> (default localhost)
//	RESERVED_SUBDOMAINS    labels that are never tenants, besides DefaultReserved
//	PLATFORM_HOSTS         hosts serving no tenant (default DefaultPlatformHosts)
//	TENANT_CACHE_TTL       registry cache TTL (default 10s, at most 15s)
//	TENANT_POOL_MAX_OPEN   connections per cluster pool (default 16)
//	SILO_POOL_MAX_OPEN     connections per siloed tenant (default 2)
//	MAX_SILO_POOLS         siloed pools kept open (default 64)
//	MASTER_KEY             opens sealed database credentials (dev: .dev/keys)
func Load(e *config.Env, devEnv bool, sys *sql.DB, log *slog.Logger) (*Service, error) {
	hosts := ParseHosts(e.String("BASE_DOMAIN", "localhost"), e.String("RESERVED_SUBDOMAINS", ""),
		e.String("PLATFORM_HOSTS", DefaultPlatformHosts))
	ttl := e.Duration("TENANT_CACHE_TTL", 10*time.Second)
	ropts := RouterOptions{
		ClusterMaxOpen: e.Int("TENANT_POOL_MAX_OPEN", 16, 1, 1000),
		SiloMaxOpen:    e.Int("SILO_POOL_MAX_OPEN", 2, 1, 100),
		MaxSilos:       e.Int("MAX_SILO_POOLS", 64, 1, 10000),
	}
	box, err := secretbox.FromEnv(e.Secret("MASTER_KEY", ""), devEnv, config.DefaultDevDir)
	if err != nil {
		return nil, err
	}
	return &Service{
		Registry: NewRegistry(sys, RegistryOptions{TTL: ttl}),
		Router:   NewRouter(sys, box, ropts),
		Hosts:    hosts,
		Log:      log,
	}, nil
}
