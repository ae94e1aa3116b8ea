-- 0004_lifecycle: deleting, purging and archiving tenants.
-- Seed: 000 section 5.4 (tenant_resource_cleanup, 30-day grace, up to 3 retries, cancel),
-- 002 (confirmation valid 7 days then auto-cancelled, archives kept 180 days, alert on the
-- last failure).

-- A delete needs a confirmation token delivered by notification. Only its hash is stored.
CREATE TABLE tenant_deletion_requests (
  id                BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
  tenant_id         BIGINT UNSIGNED NOT NULL,
  tenant_code       VARCHAR(50)     NOT NULL,
  requested_by      BIGINT UNSIGNED NULL COMMENT 'admin_users.id',
  requested_by_type VARCHAR(10)     NOT NULL DEFAULT 'admin' COMMENT 'admin | user | system',
  token_hash        CHAR(64)        NOT NULL COMMENT 'hex SHA-256 of the confirmation token',
  status            VARCHAR(20)     NOT NULL DEFAULT 'pending' COMMENT 'pending | confirmed | cancelled | expired',
  reason            VARCHAR(500)    NULL,
  expires_at        DATETIME(3)     NOT NULL COMMENT 'created_at + 7 days',
  confirmed_at      DATETIME(3)     NULL,
  confirmed_by      BIGINT UNSIGNED NULL,
  cancelled_at      DATETIME(3)     NULL,
  cancelled_by      BIGINT UNSIGNED NULL,
  created_at        DATETIME(3)     NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
  updated_at        DATETIME(3)     NOT NULL DEFAULT CURRENT_TIMESTAMP(3) ON UPDATE CURRENT_TIMESTAMP(3),
  PRIMARY KEY (id),
  UNIQUE KEY uk_tenant_deletion_requests_token_hash (token_hash),
  KEY idx_tenant_deletion_requests_tenant (tenant_id, status),
  KEY idx_tenant_deletion_requests_status_expires (status, expires_at),
  CONSTRAINT fk_tenant_deletion_requests_tenant FOREIGN KEY (tenant_id) REFERENCES tenants (id) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci COMMENT='tenant deletion confirmations';

-- One row per resource to purge once the grace period ends (seed section 5.4 columns plus
-- a lease and a backoff schedule so concurrent cron runs never process a row twice).
-- One row per tenant+resource: scheduling is an upsert, so deleting again after a restore
-- resets the cancelled row to pending instead of adding a second one.
CREATE TABLE tenant_resource_cleanup (
  id                    BIGINT UNSIGNED  NOT NULL AUTO_INCREMENT,
  tenant_id             BIGINT UNSIGNED  NOT NULL,
  tenant_code           VARCHAR(50)      NOT NULL,
  deletion_request_id   BIGINT UNSIGNED  NULL,
  resource_type         VARCHAR(20)      NOT NULL COMMENT 'archive | database | db_user | oss | subdomain | other',
  resource_name         VARCHAR(255)     NOT NULL COMMENT 'database name, db user, object prefix, host name...',
  oss_bucket            VARCHAR(100)     NULL,
  oss_region            VARCHAR(50)      NULL,
  oss_path              VARCHAR(500)     NULL,
  cluster_id            BIGINT UNSIGNED  NULL COMMENT 'db_clusters.id for database and db_user rows',
  sort_order            INT UNSIGNED     NOT NULL DEFAULT 0 COMMENT 'archive before database before objects',
  status                VARCHAR(20)      NOT NULL DEFAULT 'pending' COMMENT 'pending | in_progress | completed | failed | cancelled',
  scheduled_deletion_at DATETIME(3)      NOT NULL COMMENT 'deleted_at + grace period (30 days)',
  next_attempt_at       DATETIME(3)      NULL COMMENT 'backoff after a failed attempt',
  retry_count           INT UNSIGNED     NOT NULL DEFAULT 0,
  max_retries           INT UNSIGNED     NOT NULL DEFAULT 3,
  lease_owner           VARCHAR(100)     NULL,
  lease_expires_at      DATETIME(3)      NULL,
  deletion_started_at   DATETIME(3)      NULL,
  deletion_completed_at DATETIME(3)      NULL,
  error_message         TEXT             NULL,
  alerted_at            DATETIME(3)      NULL COMMENT 'set when the final failure was alerted',
  created_at            DATETIME(3)      NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
  updated_at            DATETIME(3)      NOT NULL DEFAULT CURRENT_TIMESTAMP(3) ON UPDATE CURRENT_TIMESTAMP(3),
  PRIMARY KEY (id),
  UNIQUE KEY uk_tenant_resource_cleanup_resource (tenant_id, resource_type, resource_name),
  KEY idx_tenant_resource_cleanup_due (status, scheduled_deletion_at),
  KEY idx_tenant_resource_cleanup_retry (status, next_attempt_at),
  KEY idx_tenant_resource_cleanup_lease (lease_expires_at),
  KEY idx_tenant_resource_cleanup_tenant_code (tenant_code, status),
  KEY idx_tenant_resource_cleanup_request (deletion_request_id),
  CONSTRAINT fk_tenant_resource_cleanup_tenant FOREIGN KEY (tenant_id) REFERENCES tenants (id) ON DELETE RESTRICT,
  CONSTRAINT fk_tenant_resource_cleanup_request FOREIGN KEY (deletion_request_id) REFERENCES tenant_deletion_requests (id) ON DELETE SET NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci COMMENT='tenant resources scheduled for purge';

-- Archives of purged tenant databases in object storage, kept 180 days.
CREATE TABLE tenant_archives (
  id            BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
  tenant_id     BIGINT UNSIGNED NOT NULL,
  tenant_code   VARCHAR(50)     NOT NULL,
  database_name VARCHAR(64)     NOT NULL,
  schema_version INT UNSIGNED   NULL,
  object_key    VARCHAR(500)    NOT NULL,
  format        VARCHAR(20)     NOT NULL DEFAULT 'sql.gz' COMMENT 'sql.gz | ndjson.gz | ...',
  size_bytes    BIGINT UNSIGNED NOT NULL DEFAULT 0,
  row_counts    JSON            NULL COMMENT 'table name to row count',
  checksum      CHAR(64)        NULL COMMENT 'hex SHA-256 of the object',
  encrypted     TINYINT(1)      NOT NULL DEFAULT 0,
  status        VARCHAR(20)     NOT NULL DEFAULT 'completed' COMMENT 'in_progress | completed | failed | expired',
  created_at    DATETIME(3)     NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
  expires_at    DATETIME(3)     NOT NULL COMMENT 'created_at + 180 days',
  deleted_at    DATETIME(3)     NULL COMMENT 'when the object was removed after expiry',
  PRIMARY KEY (id),
  UNIQUE KEY uk_tenant_archives_object_key (object_key),
  KEY idx_tenant_archives_tenant (tenant_id, created_at),
  KEY idx_tenant_archives_tenant_code (tenant_code),
  KEY idx_tenant_archives_expires (status, expires_at),
  CONSTRAINT fk_tenant_archives_tenant FOREIGN KEY (tenant_id) REFERENCES tenants (id) ON DELETE RESTRICT
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci COMMENT='tenant database archives';
