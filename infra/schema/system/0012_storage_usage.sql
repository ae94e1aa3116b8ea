-- 0012_storage_usage: the object storage each tenant uses, as usage-cron measures it, so
-- that tenant-admin can show it and storage can hold a tenant to its max_storage.
--
-- Uploads go from the browser to OSS directly (presigned URLs, STS credentials): nothing of
-- ours sees their sizes. usage-cron lists each tenant's prefix page by page and sums it. A
-- scan that does not finish within a run keeps its place (scan_marker: the last key
-- counted) and its partial sums, and the next run goes on from there; the figures shown
-- (used_bytes, object_count, measured_at) change only when a scan completes, so a reader
-- never sees half a tenant. Tenants are measured oldest measurement first.

CREATE TABLE tenant_storage_usage (
  tenant_id       BIGINT UNSIGNED NOT NULL,
  used_bytes      BIGINT UNSIGNED NOT NULL DEFAULT 0 COMMENT 'bytes under the prefix at the last complete scan',
  object_count    BIGINT UNSIGNED NOT NULL DEFAULT 0 COMMENT 'objects under the prefix at the last complete scan',
  measured_at     DATETIME(3)     NULL COMMENT 'when the last complete scan ended; NULL = never completed',
  scan_marker     VARCHAR(1024)   NULL COMMENT 'the scan in progress: the last key counted; NULL = none in progress',
  scan_bytes      BIGINT UNSIGNED NOT NULL DEFAULT 0 COMMENT 'the scan in progress: bytes counted so far',
  scan_objects    BIGINT UNSIGNED NOT NULL DEFAULT 0 COMMENT 'the scan in progress: objects counted so far',
  scan_started_at DATETIME(3)     NULL COMMENT 'when the scan in progress began',
  PRIMARY KEY (tenant_id),
  KEY idx_tenant_storage_usage_measured (measured_at),
  CONSTRAINT fk_tenant_storage_usage_tenant FOREIGN KEY (tenant_id) REFERENCES tenants (id) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci COMMENT='object storage used per tenant, measured by usage-cron';
