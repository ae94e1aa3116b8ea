-- 0001_auth: identities of the control plane and everything login needs.
-- Seed: 000 section 2.1 "admin_tenant_management", tables admin_users, global_users,
-- login_history, unified_auth_logs. refresh_tokens and sms_codes are new (DESIGN.md "Auth").
-- Enum-like columns are VARCHAR, the allowed values are listed in the column COMMENT.

-- Platform operators. They log in by username (never by phone).
CREATE TABLE admin_users (
  id                  BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
  username            VARCHAR(50)     NOT NULL,
  email               VARCHAR(255)    NULL,
  password_hash       VARCHAR(255)    NOT NULL COMMENT 'bcrypt hash (the seed named this column password)',
  real_name           VARCHAR(50)     NULL,
  role                VARCHAR(20)     NOT NULL DEFAULT 'operator' COMMENT 'super_admin | admin | operator',
  status              VARCHAR(20)     NOT NULL DEFAULT 'active' COMMENT 'active | inactive | suspended',
  failed_login_count  INT UNSIGNED    NOT NULL DEFAULT 0,
  locked_until        DATETIME(3)     NULL,
  last_login_at       DATETIME(3)     NULL,
  last_login_ip       VARCHAR(45)     NULL,
  password_changed_at DATETIME(3)     NULL,
  created_at          DATETIME(3)     NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
  updated_at          DATETIME(3)     NOT NULL DEFAULT CURRENT_TIMESTAMP(3) ON UPDATE CURRENT_TIMESTAMP(3),
  PRIMARY KEY (id),
  UNIQUE KEY uk_admin_users_username (username),
  UNIQUE KEY uk_admin_users_email (email),
  KEY idx_admin_users_status (status)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci COMMENT='platform administrators';

-- Every tenant user, once, across all tenants. Login credential is the phone number.
CREATE TABLE global_users (
  id                  BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
  phone               VARCHAR(20)     NOT NULL,
  password_hash       VARCHAR(255)    NOT NULL COMMENT 'bcrypt hash',
  real_name           VARCHAR(50)     NULL,
  email               VARCHAR(255)    NULL,
  avatar              VARCHAR(500)    NULL,
  registration_source VARCHAR(100)    NOT NULL DEFAULT 'web',
  status              VARCHAR(20)     NOT NULL DEFAULT 'active' COMMENT 'active | suspended | deleted',
  failed_login_count  INT UNSIGNED    NOT NULL DEFAULT 0,
  locked_until        DATETIME(3)     NULL,
  last_login_at       DATETIME(3)     NULL,
  last_login_ip       VARCHAR(45)     NULL,
  password_changed_at DATETIME(3)     NULL,
  deleted_at          DATETIME(3)     NULL,
  created_at          DATETIME(3)     NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
  updated_at          DATETIME(3)     NOT NULL DEFAULT CURRENT_TIMESTAMP(3) ON UPDATE CURRENT_TIMESTAMP(3),
  PRIMARY KEY (id),
  UNIQUE KEY uk_global_users_phone (phone),
  KEY idx_global_users_email (email),
  KEY idx_global_users_status (status),
  KEY idx_global_users_created_at (created_at)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci COMMENT='global (cross-tenant) users';

-- Refresh tokens, stored hashed, rotated on every use. A token whose used_at is already set
-- being presented again is reuse: revoke the whole family_id.
-- subject_id points at admin_users.id or global_users.id depending on subject_type, so it
-- carries no foreign key. tenant_id is the tenant scope of a switch-tenant token (NULL = none).
CREATE TABLE refresh_tokens (
  id             BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
  token_hash     CHAR(64)        NOT NULL COMMENT 'hex SHA-256 of the opaque token',
  family_id      VARCHAR(64)     NOT NULL COMMENT 'shared by every rotation of one login',
  parent_hash    CHAR(64)        NULL COMMENT 'token_hash this one was rotated from',
  subject_type   VARCHAR(10)     NOT NULL COMMENT 'user | admin',
  subject_id     BIGINT UNSIGNED NOT NULL,
  tenant_id      BIGINT UNSIGNED NULL COMMENT 'tenants.id of a tenant-scoped token',
  role           VARCHAR(50)     NULL COMMENT 'role in that tenant when the token was issued',
  issued_at      DATETIME(3)     NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
  expires_at     DATETIME(3)     NOT NULL,
  used_at        DATETIME(3)     NULL COMMENT 'set when rotated',
  revoked_at     DATETIME(3)     NULL,
  revoked_reason VARCHAR(50)     NULL COMMENT 'logout | reuse_detected | password_changed | admin | ...',
  ip_address     VARCHAR(45)     NULL,
  user_agent     VARCHAR(500)    NULL,
  created_at     DATETIME(3)     NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
  PRIMARY KEY (id),
  UNIQUE KEY uk_refresh_tokens_token_hash (token_hash),
  KEY idx_refresh_tokens_family (family_id),
  KEY idx_refresh_tokens_subject (subject_type, subject_id),
  KEY idx_refresh_tokens_tenant (tenant_id),
  KEY idx_refresh_tokens_expires_at (expires_at)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci COMMENT='rotating refresh tokens (hashed)';

-- SMS verification codes, stored hashed. Rate limiting per phone and per IP counts rows by
-- created_at, hence the (phone, created_at) and (ip_address, created_at) indexes.
CREATE TABLE sms_codes (
  id           BIGINT UNSIGNED  NOT NULL AUTO_INCREMENT,
  phone        VARCHAR(20)      NOT NULL,
  purpose      VARCHAR(30)      NOT NULL COMMENT 'register | login | reset_password | tenant_create | ...',
  code_hash    CHAR(64)         NOT NULL COMMENT 'hex HMAC/SHA-256 of the code',
  attempts     TINYINT UNSIGNED NOT NULL DEFAULT 0 COMMENT 'failed verification attempts',
  max_attempts TINYINT UNSIGNED NOT NULL DEFAULT 5,
  expires_at   DATETIME(3)      NOT NULL,
  consumed_at  DATETIME(3)      NULL,
  ip_address   VARCHAR(45)      NULL,
  provider_ref VARCHAR(100)     NULL COMMENT 'SMS provider biz id / request id',
  created_at   DATETIME(3)      NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
  PRIMARY KEY (id),
  KEY idx_sms_codes_phone_purpose_created (phone, purpose, created_at),
  KEY idx_sms_codes_phone_created (phone, created_at),
  KEY idx_sms_codes_ip_created (ip_address, created_at),
  KEY idx_sms_codes_expires_at (expires_at)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci COMMENT='hashed SMS verification codes';

-- Every login attempt, successful or not. High volume, no foreign keys (survives purges).
CREATE TABLE login_history (
  id             BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
  subject_type   VARCHAR(10)     NOT NULL COMMENT 'user | admin',
  subject_id     BIGINT UNSIGNED NULL COMMENT 'NULL when the identifier matched nobody',
  identifier     VARCHAR(255)    NOT NULL COMMENT 'phone or username as typed',
  tenant_id      BIGINT UNSIGNED NULL,
  login_method   VARCHAR(20)     NOT NULL DEFAULT 'password' COMMENT 'password | sms_code | refresh',
  success        TINYINT(1)      NOT NULL DEFAULT 0,
  failure_reason VARCHAR(50)     NULL COMMENT 'bad_credentials | locked | disabled | ...',
  ip_address     VARCHAR(45)     NULL,
  user_agent     VARCHAR(500)    NULL,
  request_id     VARCHAR(64)     NULL,
  created_at     DATETIME(3)     NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
  PRIMARY KEY (id),
  KEY idx_login_history_subject (subject_type, subject_id, created_at),
  KEY idx_login_history_identifier (identifier, created_at),
  KEY idx_login_history_ip (ip_address, created_at),
  KEY idx_login_history_tenant (tenant_id, created_at),
  KEY idx_login_history_created_at (created_at)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci COMMENT='login attempts';

-- Unified auth event log (seed table name): register, logout, refresh, reuse detection,
-- switch-tenant, lockout, SMS sent... High volume, no foreign keys.
CREATE TABLE unified_auth_logs (
  id           BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
  event_type   VARCHAR(40)     NOT NULL COMMENT 'register | login | logout | refresh | refresh_reuse | switch_tenant | lockout | sms_sent | password_reset | ...',
  subject_type VARCHAR(10)     NULL COMMENT 'user | admin',
  subject_id   BIGINT UNSIGNED NULL,
  tenant_id    BIGINT UNSIGNED NULL,
  tenant_code  VARCHAR(50)     NULL,
  success      TINYINT(1)      NOT NULL DEFAULT 1,
  request_id   VARCHAR(64)     NULL,
  ip_address   VARCHAR(45)     NULL,
  user_agent   VARCHAR(500)    NULL,
  details      JSON            NULL,
  created_at   DATETIME(3)     NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
  PRIMARY KEY (id),
  KEY idx_unified_auth_logs_subject (subject_type, subject_id, created_at),
  KEY idx_unified_auth_logs_tenant (tenant_id, created_at),
  KEY idx_unified_auth_logs_event (event_type, created_at),
  KEY idx_unified_auth_logs_created_at (created_at)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci COMMENT='auth event log';
