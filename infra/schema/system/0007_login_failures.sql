-- 0007_login_failures: the start of the current window of failed logins, so "5 failures within
-- 15 minutes lock the account" counts failures of one window only (failed_login_count alone
-- cannot tell an old failure from a recent one). NULL = no failure since the last success.

ALTER TABLE global_users
  ADD COLUMN first_failed_login_at DATETIME(3) NULL COMMENT 'first failure of the current lockout window' AFTER failed_login_count;

ALTER TABLE admin_users
  ADD COLUMN first_failed_login_at DATETIME(3) NULL COMMENT 'first failure of the current lockout window' AFTER failed_login_count;
