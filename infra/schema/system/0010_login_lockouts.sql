-- 0010_login_lockouts: the lockout state of names no account has. A wrong password locks a
-- real account after a few failures (admin_users / global_users.failed_login_count); a name
-- that is no account's must lock the same way, or a locked answer would tell which phones
-- and usernames exist. Rows untouched for a day are pruned by cleanup-cron.

CREATE TABLE login_lockouts (
  subject_type          VARCHAR(10)     NOT NULL COMMENT 'user (phone) | admin (username)',
  identifier            VARCHAR(50)     NOT NULL COMMENT 'the phone or username tried; compared as the account tables compare it',
  failed_login_count    INT UNSIGNED    NOT NULL DEFAULT 0,
  first_failed_login_at DATETIME(3)     NULL COMMENT 'first failure of the current lockout window',
  locked_until          DATETIME(3)     NULL,
  updated_at            DATETIME(3)     NOT NULL DEFAULT CURRENT_TIMESTAMP(3) ON UPDATE CURRENT_TIMESTAMP(3),
  PRIMARY KEY (subject_type, identifier),
  KEY idx_login_lockouts_updated (updated_at)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci COMMENT='lockout state of login names no account has';
