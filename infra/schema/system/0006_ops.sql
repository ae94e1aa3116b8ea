-- 0006_ops: shared rate limits, audit trail, webhooks and notifications, system settings,
-- scheduled job bookkeeping.
-- Seed: 000 section 2.1 "other system tables" (audit_logs, notification_logs, system_config,
-- scheduled_tasks), 001 section 2.2 saas_system_config (config_type, is_public), 002
-- (notifications by email, log and webhook).

-- Fixed-window counters shared by every function instance. One atomic statement per hit:
-- INSERT ... ON DUPLICATE KEY UPDATE `count` = `count` + 1. Expired windows are swept.
CREATE TABLE rate_limit_counters (
  bucket_key   VARCHAR(255)    NOT NULL COMMENT 'e.g. ai:tenant:42:rpm or sms:phone:138...',
  window_start DATETIME(3)     NOT NULL,
  `count`      BIGINT UNSIGNED NOT NULL DEFAULT 0,
  expires_at   DATETIME(3)     NOT NULL COMMENT 'window end, rows past this may be deleted',
  PRIMARY KEY (bucket_key, window_start),
  KEY idx_rate_limit_counters_expires_at (expires_at)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci COMMENT='shared rate-limit windows';

-- Every administrative change and lifecycle transition. High volume, no foreign keys.
CREATE TABLE audit_logs (
  id           BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
  actor_type   VARCHAR(20)     NOT NULL COMMENT 'admin | user | api_key | system',
  actor_id     BIGINT UNSIGNED NULL,
  actor_name   VARCHAR(100)    NULL COMMENT 'username, phone or job name at the time',
  action       VARCHAR(64)     NOT NULL COMMENT 'tenant.suspend, tenant.delete, model.update, ...',
  target_type  VARCHAR(50)     NOT NULL,
  target_id    VARCHAR(100)    NULL,
  tenant_id    BIGINT UNSIGNED NULL,
  before_state JSON            NULL,
  after_state  JSON            NULL,
  reason       VARCHAR(500)    NULL,
  request_id   VARCHAR(64)     NULL,
  ip_address   VARCHAR(45)     NULL,
  user_agent   VARCHAR(500)    NULL,
  created_at   DATETIME(3)     NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
  PRIMARY KEY (id),
  KEY idx_audit_logs_tenant_created (tenant_id, created_at),
  KEY idx_audit_logs_actor_created (actor_type, actor_id, created_at),
  KEY idx_audit_logs_target (target_type, target_id, created_at),
  KEY idx_audit_logs_action_created (action, created_at),
  KEY idx_audit_logs_request (request_id),
  KEY idx_audit_logs_created_at (created_at)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci COMMENT='audit trail';

-- Receivers of signed (HMAC-SHA256) lifecycle events. tenant_id NULL = platform-wide.
CREATE TABLE webhook_endpoints (
  id                   BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
  tenant_id            BIGINT UNSIGNED NULL,
  name                 VARCHAR(100)    NULL,
  url                  VARCHAR(1000)   NOT NULL,
  secret_encrypted     VARBINARY(1024) NOT NULL COMMENT 'HMAC secret, ciphertext',
  `events`             JSON            NULL COMMENT 'subscribed event types, NULL = all',
  status               VARCHAR(20)     NOT NULL DEFAULT 'active' COMMENT 'active | disabled',
  consecutive_failures INT UNSIGNED    NOT NULL DEFAULT 0,
  last_success_at      DATETIME(3)     NULL,
  last_failure_at      DATETIME(3)     NULL,
  created_by           BIGINT UNSIGNED NULL,
  created_at           DATETIME(3)     NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
  updated_at           DATETIME(3)     NOT NULL DEFAULT CURRENT_TIMESTAMP(3) ON UPDATE CURRENT_TIMESTAMP(3),
  PRIMARY KEY (id),
  KEY idx_webhook_endpoints_status (status),
  KEY idx_webhook_endpoints_tenant (tenant_id),
  CONSTRAINT fk_webhook_endpoints_tenant FOREIGN KEY (tenant_id) REFERENCES tenants (id) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci COMMENT='webhook receivers';

-- Transactional outbox: an event is inserted in the same transaction as the state change,
-- then dispatched to every matching endpoint. No foreign keys (outlives the tenant).
CREATE TABLE webhook_events (
  id              BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
  event_id        VARCHAR(64)     NOT NULL COMMENT 'UUID, also the webhook delivery id',
  event_type      VARCHAR(64)     NOT NULL COMMENT 'tenant.activated, tenant.suspended, tenant.deleted, tenant.purged, ...',
  tenant_id       BIGINT UNSIGNED NULL,
  tenant_code     VARCHAR(50)     NULL,
  payload         JSON            NOT NULL,
  status          VARCHAR(20)     NOT NULL DEFAULT 'pending' COMMENT 'pending | dispatched | failed',
  attempts        INT UNSIGNED    NOT NULL DEFAULT 0,
  next_attempt_at DATETIME(3)     NULL,
  lease_owner     VARCHAR(100)    NULL,
  lease_expires_at DATETIME(3)    NULL,
  dispatched_at   DATETIME(3)     NULL,
  created_at      DATETIME(3)     NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
  updated_at      DATETIME(3)     NOT NULL DEFAULT CURRENT_TIMESTAMP(3) ON UPDATE CURRENT_TIMESTAMP(3),
  PRIMARY KEY (id),
  UNIQUE KEY uk_webhook_events_event_id (event_id),
  KEY idx_webhook_events_pending (status, next_attempt_at),
  KEY idx_webhook_events_tenant_created (tenant_id, created_at),
  KEY idx_webhook_events_type_created (event_type, created_at),
  KEY idx_webhook_events_created_at (created_at)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci COMMENT='event outbox';

-- One row per delivery attempt of an event over a channel. High volume, no foreign keys.
CREATE TABLE notification_logs (
  id              BIGINT UNSIGNED  NOT NULL AUTO_INCREMENT,
  event_id        VARCHAR(64)      NULL COMMENT 'webhook_events.event_id',
  event_type      VARCHAR(64)      NULL,
  tenant_id       BIGINT UNSIGNED  NULL,
  endpoint_id     BIGINT UNSIGNED  NULL COMMENT 'webhook_endpoints.id for webhook deliveries',
  channel         VARCHAR(20)      NOT NULL COMMENT 'webhook | email | sms | log | outbox',
  target          VARCHAR(1000)    NOT NULL COMMENT 'URL, e-mail address or phone',
  attempt         INT UNSIGNED     NOT NULL DEFAULT 1,
  status          VARCHAR(20)      NOT NULL DEFAULT 'pending' COMMENT 'pending | sent | failed | dead',
  http_status     SMALLINT UNSIGNED NULL,
  error_message   TEXT             NULL,
  response_excerpt VARCHAR(1000)   NULL,
  duration_ms     INT UNSIGNED     NULL,
  next_attempt_at DATETIME(3)      NULL,
  created_at      DATETIME(3)      NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
  updated_at      DATETIME(3)      NOT NULL DEFAULT CURRENT_TIMESTAMP(3) ON UPDATE CURRENT_TIMESTAMP(3),
  PRIMARY KEY (id),
  KEY idx_notification_logs_event (event_id, attempt),
  KEY idx_notification_logs_retry (status, next_attempt_at),
  KEY idx_notification_logs_tenant_created (tenant_id, created_at),
  KEY idx_notification_logs_endpoint_created (endpoint_id, created_at),
  KEY idx_notification_logs_created_at (created_at)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci COMMENT='notification delivery attempts';

-- Runtime settings editable without a deploy. Environment configuration stays the default,
-- a row here overrides it where the code reads system_config.
CREATE TABLE system_config (
  id           BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
  config_key   VARCHAR(100)    NOT NULL,
  config_value TEXT            NULL,
  config_type  VARCHAR(20)     NOT NULL DEFAULT 'string' COMMENT 'string | number | boolean | json',
  description  VARCHAR(500)    NULL,
  is_public    TINYINT(1)      NOT NULL DEFAULT 0 COMMENT 'may be shown to non-admins',
  updated_by   BIGINT UNSIGNED NULL COMMENT 'admin_users.id',
  created_at   DATETIME(3)     NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
  updated_at   DATETIME(3)     NOT NULL DEFAULT CURRENT_TIMESTAMP(3) ON UPDATE CURRENT_TIMESTAMP(3),
  PRIMARY KEY (id),
  UNIQUE KEY uk_system_config_key (config_key)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci COMMENT='system settings';

INSERT INTO system_config (config_key, config_value, config_type, description, is_public) VALUES
  ('tenant.deletion_grace_days', '30', 'number', 'Days a deleted tenant stays restorable before purge', 0),
  ('tenant.deletion_confirm_token_days', '7', 'number', 'Days a deletion confirmation token stays valid', 0),
  ('tenant.archive_retention_days', '180', 'number', 'Days a purged tenant database archive is kept', 0),
  ('cleanup.max_retries', '3', 'number', 'Attempts per cleanup resource before alerting', 0),
  ('storage.temp_retention_days', '7', 'number', 'Days objects under a tenant temp/ prefix are kept', 0),
  ('ratelimit.default_per_minute', '100', 'number', 'Default requests per minute per tenant', 0),
  ('tenant.signup_enabled', 'false', 'boolean', 'Whether self-service tenant signup is open', 1);

-- Singleton bookkeeping for scheduled jobs: a run takes the lease (UPDATE ... WHERE
-- lease_expires_at < NOW(3)) so overlapping invocations skip instead of racing.
CREATE TABLE scheduled_tasks (
  id               BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
  task_name        VARCHAR(100)    NOT NULL COMMENT 'provision-cron, cleanup-cron, usage-cron, ...',
  lease_owner      VARCHAR(100)    NULL,
  lease_expires_at DATETIME(3)     NULL,
  last_started_at  DATETIME(3)     NULL,
  last_finished_at DATETIME(3)     NULL,
  last_status      VARCHAR(20)     NULL COMMENT 'success | failed | partial',
  last_error       TEXT            NULL,
  last_summary     JSON            NULL COMMENT 'counters of the last run',
  run_count        BIGINT UNSIGNED NOT NULL DEFAULT 0,
  created_at       DATETIME(3)     NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
  updated_at       DATETIME(3)     NOT NULL DEFAULT CURRENT_TIMESTAMP(3) ON UPDATE CURRENT_TIMESTAMP(3),
  PRIMARY KEY (id),
  UNIQUE KEY uk_scheduled_tasks_name (task_name)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci COMMENT='scheduled job leases and last run';
