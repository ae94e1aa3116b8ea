-- 0011_ai_metering: money columns wide enough for every amount the AI bridge can compute,
-- only the call-log indexes some statement uses, and the 'orphaned' reservation status.
--
-- Widths. A call costs at most budget.MaxAmount, 9999999999.9999, the largest amount an
-- account (DECIMAL(14,4)) holds: Estimate and Cost saturate there and a call log carries at
-- most the reservation. DECIMAL(14,6) stops at 99999999.999999, so under strict mode such a
-- call's log row was refused and its metering lost. Now:
--   ai_service_call_logs.cost              DECIMAL(20,6)  one attempt, 6 places (the
--                                                         precision the bridge binds money at)
--   tenant_ai_usage_summary.total_cost     DECIMAL(20,6)  a tenant's day on a model: sums of
--   tenant_statistics.ai_cost              DECIMAL(20,6)  the above, room for 10^4 calls at
--                                                         the largest amount a day
--   billing_records.amount                 DECIMAL(20,4)  a tenant's day over its models
--   tenant_accounts.reserved_amount        DECIMAL(15,4)  the open reservations, at most
--                                                         balance + credit_limit, twice
--                                                         the largest amount
-- Balances, credit limits and reservation amounts stay DECIMAL(14,4): what they hold never
-- exceeds MaxAmount in size (balance + credit - reserved >= 0 bounds a balance below at
-- -credit_limit).
--
-- Indexes. ai_service_call_logs takes an insert and an update on every call attempt; every
-- secondary index costs each of them. The statements that run on it: the bridge's insert
-- and its update by (request_id, attempt), budget.Reconcile's sum by request_id (the unique
-- key and its prefix), and usage.Rollup's day by created_at range. Nothing reads it by
-- tenant, model, user, API key or status: those five indexes go (the per-tenant and
-- per-model views read tenant_ai_usage_summary; limits use rate_limit_counters).
--
-- Applying it: a DECIMAL cannot change precision in place, so each ALTER below that
-- widens one copies its table and blocks writes to it while it runs (the index drops ride
-- along in the same copy). tenant_accounts and the daily tables are small; on a large
-- ai_service_call_logs, AI calls wait for the copy: apply it at a quiet hour, or with an
-- online schema change tool.

ALTER TABLE ai_service_call_logs
  MODIFY COLUMN cost DECIMAL(20,6) NOT NULL DEFAULT 0,
  DROP INDEX idx_ai_service_call_logs_tenant_created,
  DROP INDEX idx_ai_service_call_logs_tenant_model_created,
  DROP INDEX idx_ai_service_call_logs_user_created,
  DROP INDEX idx_ai_service_call_logs_api_key,
  DROP INDEX idx_ai_service_call_logs_status_created;

ALTER TABLE tenant_ai_usage_summary
  MODIFY COLUMN total_cost DECIMAL(20,6) NOT NULL DEFAULT 0;

ALTER TABLE tenant_statistics
  MODIFY COLUMN ai_cost DECIMAL(20,6) NOT NULL DEFAULT 0;

ALTER TABLE billing_records
  MODIFY COLUMN amount DECIMAL(20,4) NOT NULL DEFAULT 0;

ALTER TABLE tenant_accounts
  MODIFY COLUMN reserved_amount DECIMAL(15,4) NOT NULL DEFAULT 0 COMMENT 'sum of open ai_budget_reservations';

-- A reservation whose tenant's account is gone (the provisioning abort path deletes both)
-- is closed by budget.Reconcile as 'orphaned', moving no money. Only the comment changes.
ALTER TABLE ai_budget_reservations
  MODIFY COLUMN status VARCHAR(20) NOT NULL DEFAULT 'reserved' COMMENT 'reserved | settled | released | expired | orphaned';
