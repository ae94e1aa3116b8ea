-- 0013_tenant_creator: the global user who created a tenant by self-service, so that one
-- account may hold only so many (TENANTS_PER_USER). created_by alone cannot tell: it holds
-- an admin_users id or a global_users id, the two tables numbering apart. Tenants an admin
-- made keep created_by_user NULL and count against nobody. The index makes the count a
-- short range read, locked by the creation that checks it.

ALTER TABLE tenants
  ADD COLUMN created_by_user BIGINT UNSIGNED NULL COMMENT 'global_users.id of its self-service creator; NULL when an admin made it' AFTER created_by,
  ADD KEY idx_tenants_created_by_user (created_by_user, status);

-- Tenants made before: their creator's kind is in the provisioning request kept with their
-- progress (createdByAdmin is left out of it when false).
UPDATE tenants t JOIN tenant_init_progress p ON p.tenant_id = t.id
  SET t.created_by_user = t.created_by
  WHERE t.created_by IS NOT NULL AND t.created_by_user IS NULL
    AND COALESCE(JSON_CONTAINS(p.params, 'true', '$.createdByAdmin'), 0) = 0;
