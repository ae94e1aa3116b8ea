-- 0002_tenants: tenants, their domains and members, where their databases live, their
-- accounts, and the per-tenant schema migration ledger.
-- Seed: 000 section 2.1 tenants / tenant_accounts / global_user_tenant_relations,
-- 001 section 2.2 saas_tenants / saas_tenant_databases (host, port, name, user, encrypted password).
-- Tenant rows are never hard-deleted: purging sets status = purged and keeps the row, so
-- children that track physical resources or money use ON DELETE RESTRICT, and pure
-- metadata children use ON DELETE CASCADE.

CREATE TABLE tenants (
  id                    BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
  tenant_code           VARCHAR(50)     NOT NULL COMMENT 'stable code such as k001 (the seed tenants.tenant_id)',
  tenant_name           VARCHAR(255)    NOT NULL,
  subdomain             VARCHAR(63)     NOT NULL COMMENT 'label under the base domain, e.g. k001',
  status                VARCHAR(20)     NOT NULL DEFAULT 'provisioning' COMMENT 'provisioning | active | suspended | deleted | purged',
  previous_status       VARCHAR(20)     NULL COMMENT 'status before suspend/delete, restored by resume/restore',
  plan_type             VARCHAR(30)     NOT NULL DEFAULT 'basic' COMMENT 'basic | standard | premium | enterprise',
  max_users             INT UNSIGNED    NULL COMMENT 'NULL = unlimited',
  max_storage           BIGINT UNSIGNED NULL COMMENT 'bytes, NULL = unlimited',
  contact_name          VARCHAR(100)    NULL,
  contact_phone         VARCHAR(20)     NULL,
  contact_email         VARCHAR(255)    NULL,
  address               VARCHAR(500)    NULL,
  description           TEXT            NULL,
  settings              JSON            NULL,
  storage_prefix        VARCHAR(255)    NULL COMMENT 'object-store key prefix owned by this tenant',
  suspended_at          DATETIME(3)     NULL,
  suspended_reason      VARCHAR(500)    NULL,
  activated_at          DATETIME(3)     NULL,
  deleted_at            DATETIME(3)     NULL,
  scheduled_deletion_at DATETIME(3)     NULL COMMENT 'end of the grace period, purge after this',
  purged_at             DATETIME(3)     NULL,
  created_by            BIGINT UNSIGNED NULL COMMENT 'admin_users.id or global_users.id (self-service)',
  created_at            DATETIME(3)     NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
  updated_at            DATETIME(3)     NOT NULL DEFAULT CURRENT_TIMESTAMP(3) ON UPDATE CURRENT_TIMESTAMP(3),
  PRIMARY KEY (id),
  UNIQUE KEY uk_tenants_tenant_code (tenant_code),
  UNIQUE KEY uk_tenants_subdomain (subdomain),
  UNIQUE KEY uk_tenants_storage_prefix (storage_prefix),
  KEY idx_tenants_status (status),
  KEY idx_tenants_status_scheduled_deletion (status, scheduled_deletion_at),
  KEY idx_tenants_contact_phone (contact_phone),
  KEY idx_tenants_plan_type (plan_type),
  KEY idx_tenants_created_at (created_at)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci COMMENT='tenants';

-- Host names that route to a tenant: its subdomain under the base domain and custom domains.
CREATE TABLE tenant_domains (
  id                 BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
  tenant_id          BIGINT UNSIGNED NOT NULL,
  domain             VARCHAR(253)    NOT NULL COMMENT 'lower-case host name without port',
  domain_type        VARCHAR(20)     NOT NULL DEFAULT 'custom' COMMENT 'subdomain | custom',
  is_primary         TINYINT(1)      NOT NULL DEFAULT 0,
  verification_token VARCHAR(100)    NULL,
  verified_at        DATETIME(3)     NULL,
  created_at         DATETIME(3)     NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
  updated_at         DATETIME(3)     NOT NULL DEFAULT CURRENT_TIMESTAMP(3) ON UPDATE CURRENT_TIMESTAMP(3),
  PRIMARY KEY (id),
  UNIQUE KEY uk_tenant_domains_domain (domain),
  KEY idx_tenant_domains_tenant (tenant_id, is_primary),
  CONSTRAINT fk_tenant_domains_tenant FOREIGN KEY (tenant_id) REFERENCES tenants (id) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci COMMENT='tenant host names';

-- Membership of a global user in a tenant. The seed joins on tenant_code, kept here beside
-- the numeric tenant_id foreign key (tenant codes never change).
CREATE TABLE global_user_tenant_relations (
  id             BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
  global_user_id BIGINT UNSIGNED NOT NULL,
  tenant_id      BIGINT UNSIGNED NOT NULL,
  tenant_code    VARCHAR(50)     NOT NULL,
  tenant_user_id VARCHAR(255)    NULL COMMENT 'the user id inside the tenant database',
  role_in_tenant VARCHAR(50)     NOT NULL DEFAULT 'member' COMMENT 'owner | admin | member | ... (tenant-defined)',
  permissions    JSON            NULL,
  status         VARCHAR(20)     NOT NULL DEFAULT 'active' COMMENT 'active | disabled | removed',
  first_login_at DATETIME(3)     NULL,
  last_login_at  DATETIME(3)     NULL,
  login_count    INT UNSIGNED    NOT NULL DEFAULT 0,
  created_at     DATETIME(3)     NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
  updated_at     DATETIME(3)     NOT NULL DEFAULT CURRENT_TIMESTAMP(3) ON UPDATE CURRENT_TIMESTAMP(3),
  PRIMARY KEY (id),
  UNIQUE KEY uk_gutr_user_tenant (global_user_id, tenant_id),
  KEY idx_gutr_tenant (tenant_id, status),
  KEY idx_gutr_tenant_code (tenant_code),
  KEY idx_gutr_user_last_login (global_user_id, last_login_at),
  CONSTRAINT fk_gutr_global_user FOREIGN KEY (global_user_id) REFERENCES global_users (id) ON DELETE CASCADE,
  CONSTRAINT fk_gutr_tenant FOREIGN KEY (tenant_id) REFERENCES tenants (id) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci COMMENT='global user <-> tenant membership';

-- MySQL servers that host tenant databases. The app registers the default cluster from its
-- configuration, no rows are seeded here.
CREATE TABLE db_clusters (
  id                       BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
  name                     VARCHAR(64)     NOT NULL,
  host                     VARCHAR(255)    NOT NULL,
  port                     INT UNSIGNED    NOT NULL DEFAULT 3306,
  admin_user               VARCHAR(100)    NOT NULL COMMENT 'account that creates/drops tenant databases',
  admin_password_encrypted VARBINARY(1024) NULL COMMENT 'ciphertext, never returned by the API',
  params                   JSON            NULL COMMENT 'extra DSN parameters (tls, timeouts)',
  region                   VARCHAR(50)     NULL,
  max_tenants              INT UNSIGNED    NOT NULL DEFAULT 1000 COMMENT 'capacity in tenant databases',
  weight                   INT UNSIGNED    NOT NULL DEFAULT 100 COMMENT 'placement weight among active clusters',
  status                   VARCHAR(20)     NOT NULL DEFAULT 'active' COMMENT 'active | draining | disabled',
  created_at               DATETIME(3)     NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
  updated_at               DATETIME(3)     NOT NULL DEFAULT CURRENT_TIMESTAMP(3) ON UPDATE CURRENT_TIMESTAMP(3),
  PRIMARY KEY (id),
  UNIQUE KEY uk_db_clusters_name (name),
  KEY idx_db_clusters_status (status)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci COMMENT='database servers hosting tenants';

-- Where a tenant's database lives (placement, tier, credentials, schema version).
CREATE TABLE tenant_databases (
  id                    BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
  tenant_id             BIGINT UNSIGNED NOT NULL,
  cluster_id            BIGINT UNSIGNED NOT NULL,
  database_name         VARCHAR(64)     NOT NULL,
  tier                  VARCHAR(10)     NOT NULL DEFAULT 'pooled' COMMENT 'pooled | siloed',
  db_user               VARCHAR(100)    NULL COMMENT 'siloed tier only',
  db_password_encrypted VARBINARY(1024) NULL COMMENT 'siloed tier only, ciphertext',
  max_connections       INT UNSIGNED    NULL COMMENT 'siloed pool cap, NULL = default',
  schema_version        INT UNSIGNED    NOT NULL DEFAULT 0 COMMENT 'mirror of the tenant DB ledger',
  status                VARCHAR(20)     NOT NULL DEFAULT 'creating' COMMENT 'creating | ready | migrating | failed | archived | dropped',
  last_migrated_at      DATETIME(3)     NULL,
  dropped_at            DATETIME(3)     NULL,
  created_at            DATETIME(3)     NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
  updated_at            DATETIME(3)     NOT NULL DEFAULT CURRENT_TIMESTAMP(3) ON UPDATE CURRENT_TIMESTAMP(3),
  PRIMARY KEY (id),
  UNIQUE KEY uk_tenant_databases_tenant (tenant_id),
  UNIQUE KEY uk_tenant_databases_name (database_name),
  KEY idx_tenant_databases_cluster (cluster_id, status),
  KEY idx_tenant_databases_schema_version (schema_version, status),
  CONSTRAINT fk_tenant_databases_tenant FOREIGN KEY (tenant_id) REFERENCES tenants (id) ON DELETE RESTRICT,
  CONSTRAINT fk_tenant_databases_cluster FOREIGN KEY (cluster_id) REFERENCES db_clusters (id) ON DELETE RESTRICT
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci COMMENT='tenant database placement';

-- Pre-created tenant databases at the latest template version, claimed by provisioning.
CREATE TABLE warm_pool_databases (
  id                   BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
  cluster_id           BIGINT UNSIGNED NOT NULL,
  database_name        VARCHAR(64)     NOT NULL,
  schema_version       INT UNSIGNED    NOT NULL DEFAULT 0,
  status               VARCHAR(20)     NOT NULL DEFAULT 'creating' COMMENT 'creating | ready | claimed | failed | discarded',
  claimed_by_tenant_id BIGINT UNSIGNED NULL,
  last_error           TEXT            NULL,
  created_at           DATETIME(3)     NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
  ready_at             DATETIME(3)     NULL,
  claimed_at           DATETIME(3)     NULL,
  updated_at           DATETIME(3)     NOT NULL DEFAULT CURRENT_TIMESTAMP(3) ON UPDATE CURRENT_TIMESTAMP(3),
  PRIMARY KEY (id),
  UNIQUE KEY uk_warm_pool_databases_name (database_name),
  KEY idx_warm_pool_claimable (cluster_id, status, schema_version),
  KEY idx_warm_pool_status (status, created_at),
  KEY idx_warm_pool_claimed_by (claimed_by_tenant_id),
  CONSTRAINT fk_warm_pool_cluster FOREIGN KEY (cluster_id) REFERENCES db_clusters (id) ON DELETE RESTRICT,
  CONSTRAINT fk_warm_pool_tenant FOREIGN KEY (claimed_by_tenant_id) REFERENCES tenants (id) ON DELETE SET NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci COMMENT='warm pool of ready tenant databases';

-- Tenant balance for AI metering. Seed tenant_accounts, with tenant_id now tenants.id.
-- Spendable = balance + credit_limit - reserved_amount.
CREATE TABLE tenant_accounts (
  id              BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
  tenant_id       BIGINT UNSIGNED NOT NULL,
  balance         DECIMAL(14,4)   NOT NULL DEFAULT 0,
  credit_limit    DECIMAL(14,4)   NOT NULL DEFAULT 0,
  reserved_amount DECIMAL(14,4)   NOT NULL DEFAULT 0 COMMENT 'sum of open ai_budget_reservations',
  currency        CHAR(3)         NOT NULL DEFAULT 'CNY',
  payment_status  VARCHAR(20)     NOT NULL DEFAULT 'normal' COMMENT 'normal | overdue | frozen',
  billing_cycle   VARCHAR(20)     NOT NULL DEFAULT 'monthly' COMMENT 'prepaid | monthly | yearly',
  created_at      DATETIME(3)     NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
  updated_at      DATETIME(3)     NOT NULL DEFAULT CURRENT_TIMESTAMP(3) ON UPDATE CURRENT_TIMESTAMP(3),
  PRIMARY KEY (id),
  UNIQUE KEY uk_tenant_accounts_tenant (tenant_id),
  KEY idx_tenant_accounts_payment_status (payment_status),
  CONSTRAINT fk_tenant_accounts_tenant FOREIGN KEY (tenant_id) REFERENCES tenants (id) ON DELETE RESTRICT
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci COMMENT='tenant balances';

-- A roll-out of the tenant template to target_version across the fleet, in waves, with a
-- failure budget. lease_* lets a killed run be resumed by the next cron invocation.
CREATE TABLE schema_rollouts (
  id               BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
  target_version   INT UNSIGNED    NOT NULL,
  status           VARCHAR(20)     NOT NULL DEFAULT 'pending' COMMENT 'pending | running | paused | completed | failed | cancelled',
  current_wave     INT UNSIGNED    NOT NULL DEFAULT 0,
  wave_size        INT UNSIGNED    NOT NULL DEFAULT 10,
  failure_budget   INT UNSIGNED    NOT NULL DEFAULT 0 COMMENT 'failures tolerated before the roll-out halts',
  total_count      INT UNSIGNED    NOT NULL DEFAULT 0,
  succeeded_count  INT UNSIGNED    NOT NULL DEFAULT 0,
  failed_count     INT UNSIGNED    NOT NULL DEFAULT 0,
  skipped_count    INT UNSIGNED    NOT NULL DEFAULT 0 COMMENT 'tenants already at target',
  lease_owner      VARCHAR(100)    NULL,
  lease_expires_at DATETIME(3)     NULL,
  last_error       TEXT            NULL,
  created_by       VARCHAR(100)    NULL,
  started_at       DATETIME(3)     NULL,
  finished_at      DATETIME(3)     NULL,
  created_at       DATETIME(3)     NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
  updated_at       DATETIME(3)     NOT NULL DEFAULT CURRENT_TIMESTAMP(3) ON UPDATE CURRENT_TIMESTAMP(3),
  PRIMARY KEY (id),
  KEY idx_schema_rollouts_status (status, created_at),
  KEY idx_schema_rollouts_target (target_version)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci COMMENT='tenant schema roll-outs';

-- System-side mirror of each tenant database's migration ledger, one row per tenant+version.
CREATE TABLE tenant_schema_migrations (
  id            BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
  tenant_id     BIGINT UNSIGNED NOT NULL,
  database_name VARCHAR(64)     NOT NULL,
  version       INT UNSIGNED    NOT NULL,
  status        VARCHAR(20)     NOT NULL DEFAULT 'pending' COMMENT 'pending | running | applied | failed',
  attempts      INT UNSIGNED    NOT NULL DEFAULT 0,
  last_error    TEXT            NULL,
  rollout_id    BIGINT UNSIGNED NULL,
  wave          INT UNSIGNED    NULL,
  checksum      CHAR(64)        NULL COMMENT 'hex SHA-256 of the migration file',
  started_at    DATETIME(3)     NULL,
  applied_at    DATETIME(3)     NULL,
  created_at    DATETIME(3)     NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
  updated_at    DATETIME(3)     NOT NULL DEFAULT CURRENT_TIMESTAMP(3) ON UPDATE CURRENT_TIMESTAMP(3),
  PRIMARY KEY (id),
  UNIQUE KEY uk_tenant_schema_migrations_tenant_version (tenant_id, version),
  KEY idx_tenant_schema_migrations_status (status, version),
  KEY idx_tenant_schema_migrations_rollout (rollout_id, status),
  CONSTRAINT fk_tenant_schema_migrations_tenant FOREIGN KEY (tenant_id) REFERENCES tenants (id) ON DELETE CASCADE,
  CONSTRAINT fk_tenant_schema_migrations_rollout FOREIGN KEY (rollout_id) REFERENCES schema_rollouts (id) ON DELETE SET NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci COMMENT='per-tenant migration ledger (system mirror)';
