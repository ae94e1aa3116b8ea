-- 0003_provisioning: tenant onboarding progress and request idempotency.
-- Seed: 000 section 5.1 / tenant-init-monitor (tenant_init_progress, tenant_init_steps with
-- tenant_id, current_step, total_steps, status, error_message, step_name, step_order,
-- started_at, completed_at).

-- One row per tenant. provision-cron resumes rows stuck in running once the lease expires.
CREATE TABLE tenant_init_progress (
  id                BIGINT UNSIGNED  NOT NULL AUTO_INCREMENT,
  tenant_id         BIGINT UNSIGNED  NOT NULL,
  tenant_code       VARCHAR(50)      NOT NULL,
  status            VARCHAR(20)      NOT NULL DEFAULT 'pending' COMMENT 'pending | running | completed | failed',
  current_step      INT UNSIGNED     NOT NULL DEFAULT 0 COMMENT 'step_order of the step in progress (0 = not started)',
  current_step_name VARCHAR(64)      NULL,
  total_steps       INT UNSIGNED     NOT NULL DEFAULT 0,
  progress_percent  TINYINT UNSIGNED NOT NULL DEFAULT 0,
  error_message     TEXT             NULL,
  params            JSON             NULL COMMENT 'inputs needed to resume, never a plain password',
  attempts          INT UNSIGNED     NOT NULL DEFAULT 0 COMMENT 'runs of the whole pipeline',
  lease_owner       VARCHAR(100)     NULL,
  lease_expires_at  DATETIME(3)      NULL,
  started_at        DATETIME(3)      NULL,
  completed_at      DATETIME(3)      NULL,
  created_at        DATETIME(3)      NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
  updated_at        DATETIME(3)      NOT NULL DEFAULT CURRENT_TIMESTAMP(3) ON UPDATE CURRENT_TIMESTAMP(3),
  PRIMARY KEY (id),
  UNIQUE KEY uk_tenant_init_progress_tenant (tenant_id),
  UNIQUE KEY uk_tenant_init_progress_tenant_code (tenant_code),
  KEY idx_tenant_init_progress_status_lease (status, lease_expires_at),
  KEY idx_tenant_init_progress_updated_at (updated_at),
  CONSTRAINT fk_tenant_init_progress_tenant FOREIGN KEY (tenant_id) REFERENCES tenants (id) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci COMMENT='tenant provisioning progress';

-- One row per tenant and step. Steps are idempotent, output records what a step produced
-- (for example the claimed database name) so a resumed run can skip or reuse it.
CREATE TABLE tenant_init_steps (
  id            BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
  tenant_id     BIGINT UNSIGNED NOT NULL,
  progress_id   BIGINT UNSIGNED NULL,
  step_name     VARCHAR(64)     NOT NULL COMMENT 'validate | reserve | place | database | seed | admin | storage | ai_models | activate',
  step_order    INT UNSIGNED    NOT NULL,
  status        VARCHAR(20)     NOT NULL DEFAULT 'pending' COMMENT 'pending | running | completed | failed | skipped',
  attempts      INT UNSIGNED    NOT NULL DEFAULT 0,
  output        JSON            NULL,
  error_message TEXT            NULL,
  started_at    DATETIME(3)     NULL,
  completed_at  DATETIME(3)     NULL,
  created_at    DATETIME(3)     NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
  updated_at    DATETIME(3)     NOT NULL DEFAULT CURRENT_TIMESTAMP(3) ON UPDATE CURRENT_TIMESTAMP(3),
  PRIMARY KEY (id),
  UNIQUE KEY uk_tenant_init_steps_tenant_step (tenant_id, step_name),
  KEY idx_tenant_init_steps_tenant_order (tenant_id, step_order),
  KEY idx_tenant_init_steps_progress (progress_id),
  KEY idx_tenant_init_steps_status (status),
  CONSTRAINT fk_tenant_init_steps_tenant FOREIGN KEY (tenant_id) REFERENCES tenants (id) ON DELETE CASCADE,
  CONSTRAINT fk_tenant_init_steps_progress FOREIGN KEY (progress_id) REFERENCES tenant_init_progress (id) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci COMMENT='tenant provisioning steps';

-- Idempotency-Key support. The first request inserts the row (status in_progress), a retry
-- with the same key and scope replays response_status/response_body, a retry with a different
-- request_hash is refused.
CREATE TABLE idempotency_keys (
  id              BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
  scope           VARCHAR(100)    NOT NULL COMMENT 'route plus caller, e.g. POST /api/tenants:admin:1',
  idempotency_key VARCHAR(255)    NOT NULL,
  request_hash    CHAR(64)        NOT NULL COMMENT 'hex SHA-256 of the canonical request',
  status          VARCHAR(20)     NOT NULL DEFAULT 'in_progress' COMMENT 'in_progress | completed',
  response_status SMALLINT UNSIGNED NULL,
  response_body   MEDIUMTEXT      NULL,
  resource_type   VARCHAR(50)     NULL,
  resource_id     VARCHAR(100)    NULL,
  locked_until    DATETIME(3)     NULL COMMENT 'an in_progress row past this may be taken over',
  created_at      DATETIME(3)     NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
  updated_at      DATETIME(3)     NOT NULL DEFAULT CURRENT_TIMESTAMP(3) ON UPDATE CURRENT_TIMESTAMP(3),
  expires_at      DATETIME(3)     NOT NULL,
  PRIMARY KEY (id),
  UNIQUE KEY uk_idempotency_keys_scope_key (scope, idempotency_key),
  KEY idx_idempotency_keys_expires_at (expires_at)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci COMMENT='Idempotency-Key replay store';
