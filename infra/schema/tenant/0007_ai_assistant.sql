-- Tenant template 0007: AI assistant (seed 000 §2.2 group 8).
-- ai_model_config here is the tenant's local view of the models the control plane enabled for it.
-- Provider keys live only in the control plane (encrypted) so this table has no api_key column.

CREATE TABLE ai_model_config (
  id BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
  global_model_id BIGINT UNSIGNED NULL COMMENT 'control plane ai_model_config.id',
  name VARCHAR(100) NOT NULL COMMENT 'model name as sent to the AI bridge',
  display_name VARCHAR(200) NOT NULL DEFAULT '',
  model_type ENUM('text','image','audio','multimodal') NOT NULL DEFAULT 'text',
  provider VARCHAR(50) NOT NULL DEFAULT '' COMMENT 'openai, anthropic, doubao, deepseek, qwen, local',
  model_parameters JSON NULL COMMENT 'temperature, max_tokens, ...',
  is_default TINYINT(1) NOT NULL DEFAULT 0,
  is_enabled TINYINT(1) NOT NULL DEFAULT 1,
  priority INT NOT NULL DEFAULT 0,
  status ENUM('active','inactive','deprecated') NOT NULL DEFAULT 'active',
  created_at DATETIME(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
  updated_at DATETIME(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3) ON UPDATE CURRENT_TIMESTAMP(3),
  UNIQUE KEY uk_ai_model_config_name (name),
  KEY idx_ai_model_config_global_model_id (global_model_id),
  KEY idx_ai_model_config_type_status (model_type, status)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci COMMENT='AI模型配置(租户视图)';

CREATE TABLE ai_conversations (
  id BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
  user_id BIGINT UNSIGNED NOT NULL,
  model_id BIGINT UNSIGNED NULL,
  title VARCHAR(255) NOT NULL DEFAULT '',
  scene VARCHAR(64) NOT NULL DEFAULT 'chat' COMMENT 'chat, enrollment_assistant, activity_planner, data_query ...',
  summary TEXT NULL,
  message_count INT UNSIGNED NOT NULL DEFAULT 0,
  total_tokens BIGINT UNSIGNED NOT NULL DEFAULT 0,
  is_pinned TINYINT(1) NOT NULL DEFAULT 0,
  status ENUM('active','archived','deleted') NOT NULL DEFAULT 'active',
  last_message_at DATETIME(3) NULL,
  created_at DATETIME(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
  updated_at DATETIME(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3) ON UPDATE CURRENT_TIMESTAMP(3),
  KEY idx_ai_conversations_user_last (user_id, last_message_at),
  KEY idx_ai_conversations_model_id (model_id),
  CONSTRAINT fk_ai_conversations_user_id FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE,
  CONSTRAINT fk_ai_conversations_model_id FOREIGN KEY (model_id) REFERENCES ai_model_config (id) ON DELETE SET NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci COMMENT='AI对话';

CREATE TABLE ai_messages (
  id BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
  conversation_id BIGINT UNSIGNED NOT NULL,
  parent_message_id BIGINT UNSIGNED NULL,
  message_role ENUM('system','user','assistant','tool') NOT NULL,
  content MEDIUMTEXT NULL,
  content_type ENUM('text','markdown','image','json') NOT NULL DEFAULT 'text',
  model_id BIGINT UNSIGNED NULL,
  request_id VARCHAR(64) NULL COMMENT 'AI bridge request id',
  input_tokens INT UNSIGNED NOT NULL DEFAULT 0,
  output_tokens INT UNSIGNED NOT NULL DEFAULT 0,
  metadata JSON NULL COMMENT 'tool calls, attachments, finish reason',
  created_at DATETIME(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
  updated_at DATETIME(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3) ON UPDATE CURRENT_TIMESTAMP(3),
  KEY idx_ai_messages_conversation (conversation_id, id),
  KEY idx_ai_messages_parent_message_id (parent_message_id),
  KEY idx_ai_messages_model_id (model_id),
  KEY idx_ai_messages_request_id (request_id),
  CONSTRAINT fk_ai_messages_conversation_id FOREIGN KEY (conversation_id) REFERENCES ai_conversations (id) ON DELETE CASCADE,
  CONSTRAINT fk_ai_messages_parent_message_id FOREIGN KEY (parent_message_id) REFERENCES ai_messages (id) ON DELETE SET NULL,
  CONSTRAINT fk_ai_messages_model_id FOREIGN KEY (model_id) REFERENCES ai_model_config (id) ON DELETE SET NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci COMMENT='AI消息';

CREATE TABLE ai_model_usage (
  id BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
  request_id VARCHAR(64) NOT NULL COMMENT 'AI bridge request id',
  model_id BIGINT UNSIGNED NULL,
  user_id BIGINT UNSIGNED NULL,
  conversation_id BIGINT UNSIGNED NULL,
  usage_type ENUM('chat','completion','image','audio','embedding','query') NOT NULL DEFAULT 'chat',
  input_tokens INT UNSIGNED NOT NULL DEFAULT 0,
  output_tokens INT UNSIGNED NOT NULL DEFAULT 0,
  total_tokens INT UNSIGNED NOT NULL DEFAULT 0,
  cost DECIMAL(12,6) NOT NULL DEFAULT 0.000000 COMMENT 'per-call cost, sub-cent precision',
  response_time_ms INT UNSIGNED NOT NULL DEFAULT 0,
  status ENUM('success','error','timeout') NOT NULL DEFAULT 'success',
  error_message TEXT NULL,
  created_at DATETIME(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
  updated_at DATETIME(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3) ON UPDATE CURRENT_TIMESTAMP(3),
  UNIQUE KEY uk_ai_model_usage_request_id (request_id),
  KEY idx_ai_model_usage_model_created (model_id, created_at),
  KEY idx_ai_model_usage_user_created (user_id, created_at),
  KEY idx_ai_model_usage_conversation_id (conversation_id),
  KEY idx_ai_model_usage_created_at (created_at),
  CONSTRAINT fk_ai_model_usage_model_id FOREIGN KEY (model_id) REFERENCES ai_model_config (id) ON DELETE SET NULL,
  CONSTRAINT fk_ai_model_usage_user_id FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE SET NULL,
  CONSTRAINT fk_ai_model_usage_conversation_id FOREIGN KEY (conversation_id) REFERENCES ai_conversations (id) ON DELETE SET NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci COMMENT='AI使用记录';

CREATE TABLE ai_model_billing (
  id BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
  model_id BIGINT UNSIGNED NULL,
  period_start DATE NOT NULL,
  period_end DATE NOT NULL,
  total_calls INT UNSIGNED NOT NULL DEFAULT 0,
  input_tokens BIGINT UNSIGNED NOT NULL DEFAULT 0,
  output_tokens BIGINT UNSIGNED NOT NULL DEFAULT 0,
  total_tokens BIGINT UNSIGNED NOT NULL DEFAULT 0,
  amount DECIMAL(12,2) NOT NULL DEFAULT 0.00,
  currency CHAR(3) NOT NULL DEFAULT 'CNY',
  status ENUM('pending','settled','paid','void') NOT NULL DEFAULT 'pending',
  settled_at DATETIME(3) NULL,
  created_at DATETIME(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
  updated_at DATETIME(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3) ON UPDATE CURRENT_TIMESTAMP(3),
  UNIQUE KEY uk_ai_model_billing_model_period (model_id, period_start),
  KEY idx_ai_model_billing_period (period_start, period_end),
  KEY idx_ai_model_billing_status (status),
  CONSTRAINT fk_ai_model_billing_model_id FOREIGN KEY (model_id) REFERENCES ai_model_config (id) ON DELETE SET NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci COMMENT='AI计费(按周期汇总)';

CREATE TABLE ai_memories (
  id BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
  user_id BIGINT UNSIGNED NOT NULL,
  conversation_id BIGINT UNSIGNED NULL,
  memory_type ENUM('fact','preference','context','summary') NOT NULL DEFAULT 'fact',
  memory_key VARCHAR(128) NOT NULL DEFAULT '',
  content TEXT NOT NULL,
  importance TINYINT UNSIGNED NOT NULL DEFAULT 5 COMMENT '1-10',
  access_count INT UNSIGNED NOT NULL DEFAULT 0,
  last_accessed_at DATETIME(3) NULL,
  expires_at DATETIME(3) NULL,
  created_at DATETIME(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
  updated_at DATETIME(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3) ON UPDATE CURRENT_TIMESTAMP(3),
  KEY idx_ai_memories_user_type (user_id, memory_type),
  KEY idx_ai_memories_conversation_id (conversation_id),
  KEY idx_ai_memories_expires_at (expires_at),
  CONSTRAINT fk_ai_memories_user_id FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE,
  CONSTRAINT fk_ai_memories_conversation_id FOREIGN KEY (conversation_id) REFERENCES ai_conversations (id) ON DELETE SET NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci COMMENT='AI记忆';

CREATE TABLE ai_feedback (
  id BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
  conversation_id BIGINT UNSIGNED NULL,
  message_id BIGINT UNSIGNED NULL,
  user_id BIGINT UNSIGNED NULL,
  feedback_type ENUM('like','dislike','report','suggestion') NOT NULL DEFAULT 'like',
  rating TINYINT UNSIGNED NULL COMMENT '1-5',
  comment TEXT NULL,
  status ENUM('new','reviewed','resolved') NOT NULL DEFAULT 'new',
  handled_by BIGINT UNSIGNED NULL,
  created_at DATETIME(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
  updated_at DATETIME(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3) ON UPDATE CURRENT_TIMESTAMP(3),
  KEY idx_ai_feedback_conversation_id (conversation_id),
  KEY idx_ai_feedback_message_id (message_id),
  KEY idx_ai_feedback_user_id (user_id),
  KEY idx_ai_feedback_handled_by (handled_by),
  KEY idx_ai_feedback_status (status),
  CONSTRAINT fk_ai_feedback_conversation_id FOREIGN KEY (conversation_id) REFERENCES ai_conversations (id) ON DELETE CASCADE,
  CONSTRAINT fk_ai_feedback_message_id FOREIGN KEY (message_id) REFERENCES ai_messages (id) ON DELETE CASCADE,
  CONSTRAINT fk_ai_feedback_user_id FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE SET NULL,
  CONSTRAINT fk_ai_feedback_handled_by FOREIGN KEY (handled_by) REFERENCES users (id) ON DELETE SET NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci COMMENT='AI反馈';

CREATE TABLE ai_user_permissions (
  id BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
  user_id BIGINT UNSIGNED NOT NULL,
  model_id BIGINT UNSIGNED NULL COMMENT 'NULL = all enabled models',
  feature VARCHAR(64) NOT NULL DEFAULT 'chat' COMMENT 'chat, data_query, poster, copywriting ...',
  is_allowed TINYINT(1) NOT NULL DEFAULT 1,
  daily_call_limit INT UNSIGNED NULL,
  daily_token_limit INT UNSIGNED NULL,
  monthly_token_limit BIGINT UNSIGNED NULL,
  granted_by BIGINT UNSIGNED NULL,
  expires_at DATETIME(3) NULL,
  created_at DATETIME(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
  updated_at DATETIME(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3) ON UPDATE CURRENT_TIMESTAMP(3),
  UNIQUE KEY uk_ai_user_permissions_user_feature_model (user_id, feature, model_id),
  KEY idx_ai_user_permissions_model_id (model_id),
  KEY idx_ai_user_permissions_granted_by (granted_by),
  CONSTRAINT fk_ai_user_permissions_user_id FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE,
  CONSTRAINT fk_ai_user_permissions_model_id FOREIGN KEY (model_id) REFERENCES ai_model_config (id) ON DELETE CASCADE,
  CONSTRAINT fk_ai_user_permissions_granted_by FOREIGN KEY (granted_by) REFERENCES users (id) ON DELETE SET NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci COMMENT='AI权限';

CREATE TABLE ai_user_relations (
  id BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
  user_id BIGINT UNSIGNED NOT NULL,
  assistant_code VARCHAR(64) NOT NULL COMMENT 'assistant persona, e.g. enrollment_advisor',
  relation_type ENUM('owner','shared','subscriber') NOT NULL DEFAULT 'owner',
  external_user_id VARCHAR(128) NOT NULL DEFAULT '' COMMENT 'user identifier passed to the AI bridge',
  default_model_id BIGINT UNSIGNED NULL,
  settings JSON NULL COMMENT 'per-user assistant settings (tone, language, ...)',
  last_interaction_at DATETIME(3) NULL,
  status ENUM('active','inactive') NOT NULL DEFAULT 'active',
  created_at DATETIME(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
  updated_at DATETIME(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3) ON UPDATE CURRENT_TIMESTAMP(3),
  UNIQUE KEY uk_ai_user_relations_user_assistant (user_id, assistant_code),
  KEY idx_ai_user_relations_default_model_id (default_model_id),
  CONSTRAINT fk_ai_user_relations_user_id FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE,
  CONSTRAINT fk_ai_user_relations_default_model_id FOREIGN KEY (default_model_id) REFERENCES ai_model_config (id) ON DELETE SET NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci COMMENT='AI用户关系';

CREATE TABLE ai_query_templates (
  id BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
  code VARCHAR(64) NOT NULL,
  name VARCHAR(128) NOT NULL,
  category VARCHAR(64) NOT NULL DEFAULT '' COMMENT 'enrollment, students, activities, finance ...',
  description VARCHAR(512) NOT NULL DEFAULT '',
  example_question TEXT NULL COMMENT 'natural-language question the template answers',
  sql_template TEXT NOT NULL COMMENT 'parameterised read-only query',
  parameters JSON NULL,
  required_permission VARCHAR(128) NOT NULL DEFAULT '' COMMENT 'permissions.code needed to run it',
  usage_count INT UNSIGNED NOT NULL DEFAULT 0,
  status ENUM('active','inactive') NOT NULL DEFAULT 'active',
  created_by BIGINT UNSIGNED NULL,
  created_at DATETIME(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
  updated_at DATETIME(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3) ON UPDATE CURRENT_TIMESTAMP(3),
  UNIQUE KEY uk_ai_query_templates_code (code),
  KEY idx_ai_query_templates_category (category),
  KEY idx_ai_query_templates_created_by (created_by),
  CONSTRAINT fk_ai_query_templates_created_by FOREIGN KEY (created_by) REFERENCES users (id) ON DELETE SET NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci COMMENT='AI查询模板';

CREATE TABLE ai_query_logs (
  id BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
  user_id BIGINT UNSIGNED NULL,
  conversation_id BIGINT UNSIGNED NULL,
  template_id BIGINT UNSIGNED NULL,
  model_id BIGINT UNSIGNED NULL,
  query_text TEXT NOT NULL,
  generated_sql TEXT NULL,
  result_count INT UNSIGNED NOT NULL DEFAULT 0,
  execution_time_ms INT UNSIGNED NOT NULL DEFAULT 0,
  cache_hit TINYINT(1) NOT NULL DEFAULT 0,
  status ENUM('success','error','denied') NOT NULL DEFAULT 'success',
  error_message TEXT NULL,
  created_at DATETIME(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
  updated_at DATETIME(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3) ON UPDATE CURRENT_TIMESTAMP(3),
  KEY idx_ai_query_logs_user_created (user_id, created_at),
  KEY idx_ai_query_logs_conversation_id (conversation_id),
  KEY idx_ai_query_logs_template_id (template_id),
  KEY idx_ai_query_logs_model_id (model_id),
  CONSTRAINT fk_ai_query_logs_user_id FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE SET NULL,
  CONSTRAINT fk_ai_query_logs_conversation_id FOREIGN KEY (conversation_id) REFERENCES ai_conversations (id) ON DELETE SET NULL,
  CONSTRAINT fk_ai_query_logs_template_id FOREIGN KEY (template_id) REFERENCES ai_query_templates (id) ON DELETE SET NULL,
  CONSTRAINT fk_ai_query_logs_model_id FOREIGN KEY (model_id) REFERENCES ai_model_config (id) ON DELETE SET NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci COMMENT='AI查询日志';

CREATE TABLE ai_query_cache (
  id BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
  query_hash CHAR(64) NOT NULL COMMENT 'sha256 of normalised question + parameters',
  template_id BIGINT UNSIGNED NULL,
  query_text TEXT NOT NULL,
  result_data JSON NULL,
  hit_count INT UNSIGNED NOT NULL DEFAULT 0,
  last_hit_at DATETIME(3) NULL,
  expires_at DATETIME(3) NOT NULL,
  created_at DATETIME(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
  updated_at DATETIME(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3) ON UPDATE CURRENT_TIMESTAMP(3),
  UNIQUE KEY uk_ai_query_cache_query_hash (query_hash),
  KEY idx_ai_query_cache_template_id (template_id),
  KEY idx_ai_query_cache_expires_at (expires_at),
  CONSTRAINT fk_ai_query_cache_template_id FOREIGN KEY (template_id) REFERENCES ai_query_templates (id) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci COMMENT='AI查询缓存';
