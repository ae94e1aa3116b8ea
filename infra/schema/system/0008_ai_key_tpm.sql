-- 0008_ai_key_tpm: tokens per minute per API key, beside its requests per minute (NULL = the
-- platform's default per key, AI_KEY_TPM).

ALTER TABLE tenant_api_keys
  ADD COLUMN tpm_limit INT UNSIGNED NULL COMMENT 'tokens per minute' AFTER rpm_limit;
