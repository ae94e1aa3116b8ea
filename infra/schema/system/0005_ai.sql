-- 0005_ai: AI bridge models, per-tenant enablement, metering, budgets, API keys, billing
-- and the daily usage roll-ups (usage-cron).
-- Seed: 000 section 2.1 "AI services" (ai_model_config, tenant_ai_model_configs,
-- ai_service_call_logs, tenant_ai_usage_summary) and "other system tables" (billing_records).
-- Money columns are DECIMAL, token prices are per 1000 tokens.

CREATE TABLE ai_model_config (
  id                  BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
  model_name          VARCHAR(100)    NOT NULL COMMENT 'public model id clients send (seed: name)',
  display_name        VARCHAR(200)    NOT NULL,
  model_type          VARCHAR(20)     NOT NULL DEFAULT 'text' COMMENT 'text | image | audio | multimodal | embedding',
  provider            VARCHAR(50)     NOT NULL COMMENT 'openai | anthropic | doubao | deepseek | qwen | local | ...',
  upstream_model      VARCHAR(200)    NULL COMMENT 'provider-side model or endpoint id when it differs from model_name',
  endpoint_url        VARCHAR(500)    NULL,
  api_key_encrypted   VARBINARY(2048) NULL COMMENT 'ciphertext, never returned by the API',
  model_parameters    JSON            NULL COMMENT 'default parameters (temperature, max_tokens...)',
  context_window      INT UNSIGNED    NULL,
  input_price_per_1k  DECIMAL(12,6)   NOT NULL DEFAULT 0,
  output_price_per_1k DECIMAL(12,6)   NOT NULL DEFAULT 0,
  currency            CHAR(3)         NOT NULL DEFAULT 'CNY',
  is_default          TINYINT(1)      NOT NULL DEFAULT 0 COMMENT 'enabled for new tenants',
  status              VARCHAR(20)     NOT NULL DEFAULT 'active' COMMENT 'active | inactive | deprecated',
  created_at          DATETIME(3)     NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
  updated_at          DATETIME(3)     NOT NULL DEFAULT CURRENT_TIMESTAMP(3) ON UPDATE CURRENT_TIMESTAMP(3),
  PRIMARY KEY (id),
  UNIQUE KEY uk_ai_model_config_model_name (model_name),
  KEY idx_ai_model_config_provider (provider),
  KEY idx_ai_model_config_status_default (status, is_default),
  KEY idx_ai_model_config_type (model_type)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci COMMENT='AI models and providers';

-- Which models a tenant may use, in which fallback order (lower priority value first),
-- with which parameters and limits (NULL limit = platform default).
CREATE TABLE tenant_ai_model_configs (
  id                BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
  tenant_id         BIGINT UNSIGNED NOT NULL,
  model_id          BIGINT UNSIGNED NOT NULL,
  is_enabled        TINYINT(1)      NOT NULL DEFAULT 1,
  priority          INT             NOT NULL DEFAULT 100,
  custom_parameters JSON            NULL,
  rpm_limit         INT UNSIGNED    NULL COMMENT 'requests per minute',
  tpm_limit         INT UNSIGNED    NULL COMMENT 'tokens per minute',
  daily_token_limit BIGINT UNSIGNED NULL,
  created_at        DATETIME(3)     NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
  updated_at        DATETIME(3)     NOT NULL DEFAULT CURRENT_TIMESTAMP(3) ON UPDATE CURRENT_TIMESTAMP(3),
  PRIMARY KEY (id),
  UNIQUE KEY uk_tenant_ai_model_configs_tenant_model (tenant_id, model_id),
  KEY idx_tenant_ai_model_configs_tenant_enabled (tenant_id, is_enabled, priority),
  KEY idx_tenant_ai_model_configs_model (model_id),
  CONSTRAINT fk_tenant_ai_model_configs_tenant FOREIGN KEY (tenant_id) REFERENCES tenants (id) ON DELETE CASCADE,
  CONSTRAINT fk_tenant_ai_model_configs_model FOREIGN KEY (model_id) REFERENCES ai_model_config (id) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci COMMENT='per-tenant AI model settings';

-- One durable row per provider attempt, written before the response ends (insert as pending,
-- then update). Model and prices are copied so the row stays meaningful after config changes.
-- High volume, no foreign keys (survives tenant purge).
CREATE TABLE ai_service_call_logs (
  id                  BIGINT UNSIGNED  NOT NULL AUTO_INCREMENT,
  request_id          VARCHAR(64)      NOT NULL,
  attempt             TINYINT UNSIGNED NOT NULL DEFAULT 1 COMMENT '1 for the first model, 2.. for fallbacks',
  tenant_id           BIGINT UNSIGNED  NOT NULL,
  user_id             VARCHAR(64)      NULL COMMENT 'global user id (seed: user_id)',
  api_key_id          BIGINT UNSIGNED  NULL COMMENT 'tenant_api_keys.id when called with an API key',
  session_id          VARCHAR(255)     NULL,
  endpoint            VARCHAR(20)      NOT NULL DEFAULT 'chat' COMMENT 'chat | completion | embedding',
  model_id            BIGINT UNSIGNED  NULL,
  model_name          VARCHAR(100)     NOT NULL,
  provider            VARCHAR(50)      NOT NULL,
  input_tokens        INT UNSIGNED     NOT NULL DEFAULT 0,
  output_tokens       INT UNSIGNED     NOT NULL DEFAULT 0,
  total_tokens        INT UNSIGNED     NOT NULL DEFAULT 0,
  cost                DECIMAL(14,6)    NOT NULL DEFAULT 0,
  input_price_per_1k  DECIMAL(12,6)    NOT NULL DEFAULT 0 COMMENT 'price at call time',
  output_price_per_1k DECIMAL(12,6)    NOT NULL DEFAULT 0 COMMENT 'price at call time',
  response_time_ms    INT UNSIGNED     NULL COMMENT 'seed: response_time (ms)',
  first_byte_ms       INT UNSIGNED     NULL COMMENT 'time to first streamed byte',
  status              VARCHAR(20)      NOT NULL DEFAULT 'pending' COMMENT 'pending | success | error | timeout | cancelled',
  error_code          VARCHAR(64)      NULL,
  error_message       TEXT             NULL,
  http_status         SMALLINT UNSIGNED NULL COMMENT 'upstream HTTP status',
  usage_source        VARCHAR(10)      NOT NULL DEFAULT 'provider' COMMENT 'provider | estimated',
  streamed            TINYINT(1)       NOT NULL DEFAULT 0,
  client_disconnected TINYINT(1)       NOT NULL DEFAULT 0,
  ip_address          VARCHAR(45)      NULL,
  user_agent          VARCHAR(500)     NULL,
  metadata            JSON             NULL,
  created_at          DATETIME(3)      NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
  completed_at        DATETIME(3)      NULL,
  PRIMARY KEY (id),
  UNIQUE KEY uk_ai_service_call_logs_request_attempt (request_id, attempt),
  KEY idx_ai_service_call_logs_tenant_created (tenant_id, created_at),
  KEY idx_ai_service_call_logs_tenant_model_created (tenant_id, model_id, created_at),
  KEY idx_ai_service_call_logs_user_created (user_id, created_at),
  KEY idx_ai_service_call_logs_api_key (api_key_id, created_at),
  KEY idx_ai_service_call_logs_status_created (status, created_at),
  KEY idx_ai_service_call_logs_created_at (created_at)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci COMMENT='AI call attempts';

-- Daily roll-up of ai_service_call_logs (usage-cron upserts it). model_id 0 = unknown model.
-- Derived data, no foreign keys.
CREATE TABLE tenant_ai_usage_summary (
  id                    BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
  tenant_id             BIGINT UNSIGNED NOT NULL,
  model_id              BIGINT UNSIGNED NOT NULL DEFAULT 0,
  model_name            VARCHAR(100)    NULL,
  `date`                DATE            NOT NULL,
  total_calls           INT UNSIGNED    NOT NULL DEFAULT 0,
  success_count         INT UNSIGNED    NOT NULL DEFAULT 0,
  error_count           INT UNSIGNED    NOT NULL DEFAULT 0,
  total_input_tokens    BIGINT UNSIGNED NOT NULL DEFAULT 0,
  total_output_tokens   BIGINT UNSIGNED NOT NULL DEFAULT 0,
  total_tokens          BIGINT UNSIGNED NOT NULL DEFAULT 0,
  total_cost            DECIMAL(14,6)   NOT NULL DEFAULT 0,
  average_response_time INT UNSIGNED    NOT NULL DEFAULT 0 COMMENT 'ms',
  success_rate          DECIMAL(5,4)    NOT NULL DEFAULT 0 COMMENT '0..1',
  created_at            DATETIME(3)     NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
  updated_at            DATETIME(3)     NOT NULL DEFAULT CURRENT_TIMESTAMP(3) ON UPDATE CURRENT_TIMESTAMP(3),
  PRIMARY KEY (id),
  UNIQUE KEY uk_tenant_ai_usage_summary_tenant_model_date (tenant_id, model_id, `date`),
  KEY idx_tenant_ai_usage_summary_tenant_date (tenant_id, `date`),
  KEY idx_tenant_ai_usage_summary_date (`date`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci COMMENT='daily AI usage per tenant and model';

-- Budget held before a call and settled after it (or released/expired if the call died).
-- tenant_accounts.reserved_amount is the sum of the reserved rows.
CREATE TABLE ai_budget_reservations (
  id             BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
  request_id     VARCHAR(64)     NOT NULL,
  tenant_id      BIGINT UNSIGNED NOT NULL,
  model_id       BIGINT UNSIGNED NULL,
  amount         DECIMAL(14,4)   NOT NULL COMMENT 'amount held',
  settled_amount DECIMAL(14,4)   NULL COMMENT 'actual cost charged',
  status         VARCHAR(20)     NOT NULL DEFAULT 'reserved' COMMENT 'reserved | settled | released | expired',
  expires_at     DATETIME(3)     NOT NULL COMMENT 'a reserved row past this is released by a sweeper',
  settled_at     DATETIME(3)     NULL,
  created_at     DATETIME(3)     NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
  updated_at     DATETIME(3)     NOT NULL DEFAULT CURRENT_TIMESTAMP(3) ON UPDATE CURRENT_TIMESTAMP(3),
  PRIMARY KEY (id),
  UNIQUE KEY uk_ai_budget_reservations_request (request_id),
  KEY idx_ai_budget_reservations_tenant_status (tenant_id, status),
  KEY idx_ai_budget_reservations_status_expires (status, expires_at)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci COMMENT='AI budget holds';

-- API keys a tenant uses to call the OpenAI-compatible endpoints. Only the hash is stored.
CREATE TABLE tenant_api_keys (
  id           BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
  tenant_id    BIGINT UNSIGNED NOT NULL,
  name         VARCHAR(100)    NOT NULL,
  key_prefix   VARCHAR(16)     NOT NULL COMMENT 'first characters, shown to identify the key',
  key_hash     CHAR(64)        NOT NULL COMMENT 'hex SHA-256 of the full key',
  models       JSON            NULL COMMENT 'allowed model names, NULL = every enabled model',
  rpm_limit    INT UNSIGNED    NULL,
  created_by   BIGINT UNSIGNED NULL COMMENT 'global_users.id or admin_users.id',
  last_used_at DATETIME(3)     NULL,
  expires_at   DATETIME(3)     NULL,
  revoked_at   DATETIME(3)     NULL,
  created_at   DATETIME(3)     NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
  updated_at   DATETIME(3)     NOT NULL DEFAULT CURRENT_TIMESTAMP(3) ON UPDATE CURRENT_TIMESTAMP(3),
  PRIMARY KEY (id),
  UNIQUE KEY uk_tenant_api_keys_key_hash (key_hash),
  KEY idx_tenant_api_keys_tenant (tenant_id, revoked_at),
  KEY idx_tenant_api_keys_prefix (key_prefix),
  CONSTRAINT fk_tenant_api_keys_tenant FOREIGN KEY (tenant_id) REFERENCES tenants (id) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci COMMENT='tenant API keys (hashed)';

-- Daily charges per tenant and category, produced by usage-cron (upsert on the unique key).
CREATE TABLE billing_records (
  id           BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
  tenant_id    BIGINT UNSIGNED NOT NULL,
  billing_date DATE            NOT NULL,
  category     VARCHAR(30)     NOT NULL COMMENT 'ai_usage | storage | subscription | adjustment',
  quantity     DECIMAL(20,4)   NOT NULL DEFAULT 0 COMMENT 'tokens, bytes, days...',
  amount       DECIMAL(14,4)   NOT NULL DEFAULT 0,
  currency     CHAR(3)         NOT NULL DEFAULT 'CNY',
  status       VARCHAR(20)     NOT NULL DEFAULT 'pending' COMMENT 'pending | charged | void',
  details      JSON            NULL,
  created_at   DATETIME(3)     NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
  updated_at   DATETIME(3)     NOT NULL DEFAULT CURRENT_TIMESTAMP(3) ON UPDATE CURRENT_TIMESTAMP(3),
  PRIMARY KEY (id),
  UNIQUE KEY uk_billing_records_tenant_date_category (tenant_id, billing_date, category),
  KEY idx_billing_records_date (billing_date),
  KEY idx_billing_records_status (status),
  CONSTRAINT fk_billing_records_tenant FOREIGN KEY (tenant_id) REFERENCES tenants (id) ON DELETE RESTRICT
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci COMMENT='daily billing per tenant';

-- Daily tenant statistics computed by usage-cron (seed: tenant_user_statistics).
-- Derived data, no foreign keys.
CREATE TABLE tenant_statistics (
  id             BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
  tenant_id      BIGINT UNSIGNED NOT NULL,
  stat_date      DATE            NOT NULL,
  user_count     INT UNSIGNED    NOT NULL DEFAULT 0 COMMENT 'active memberships at end of day',
  active_users   INT UNSIGNED    NOT NULL DEFAULT 0 COMMENT 'members who logged in that day',
  login_count    INT UNSIGNED    NOT NULL DEFAULT 0,
  ai_calls       INT UNSIGNED    NOT NULL DEFAULT 0,
  ai_tokens      BIGINT UNSIGNED NOT NULL DEFAULT 0,
  ai_cost        DECIMAL(14,6)   NOT NULL DEFAULT 0,
  storage_bytes  BIGINT UNSIGNED NULL,
  created_at     DATETIME(3)     NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
  updated_at     DATETIME(3)     NOT NULL DEFAULT CURRENT_TIMESTAMP(3) ON UPDATE CURRENT_TIMESTAMP(3),
  PRIMARY KEY (id),
  UNIQUE KEY uk_tenant_statistics_tenant_date (tenant_id, stat_date),
  KEY idx_tenant_statistics_date (stat_date)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci COMMENT='daily tenant statistics';
