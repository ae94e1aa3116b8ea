-- 0009_tenant_statistics_users: when tenant_statistics.user_count was taken. usage-cron
-- counts a day's active memberships on every run while the day lasts, and once more on
-- its first run after the day ended: that count is the day's, and later runs keep it.

ALTER TABLE tenant_statistics
  ADD COLUMN users_counted_at DATETIME(3) NULL COMMENT 'when user_count was taken; final once after the day' AFTER user_count;
