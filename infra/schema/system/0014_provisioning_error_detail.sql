-- 0014_provisioning_error_detail: a failed provisioning step's error, told apart for whom
-- sees it. error_message is what the tenant's creator and members see in its progress: a
-- refusal's own message, or that an internal error stopped the step. error_detail is the
-- error in full, for admins: it may name our servers, their addresses and their users.

ALTER TABLE tenant_init_progress
  ADD COLUMN error_detail TEXT NULL COMMENT 'the error in full, shown to admins only' AFTER error_message;

ALTER TABLE tenant_init_steps
  ADD COLUMN error_detail TEXT NULL COMMENT 'the error in full, shown to admins only' AFTER error_message;

-- Errors recorded before: in full, so shown to admins only from now on.
UPDATE tenant_init_progress SET error_detail = error_message, error_message = 'an internal error stopped provisioning'
  WHERE error_message IS NOT NULL AND error_detail IS NULL AND error_message <> 'aborted';

UPDATE tenant_init_steps SET error_detail = error_message, error_message = 'an internal error stopped this step'
  WHERE error_message IS NOT NULL AND error_detail IS NULL;
