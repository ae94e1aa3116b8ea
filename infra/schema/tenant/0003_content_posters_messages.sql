-- Tenant template 0003: poster and message content (seed 000 §2.2 group 7).

CREATE TABLE poster_categories (
  id BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
  parent_id BIGINT UNSIGNED NULL,
  code VARCHAR(64) NOT NULL,
  name VARCHAR(64) NOT NULL,
  icon_url VARCHAR(512) NOT NULL DEFAULT '',
  sort_order INT NOT NULL DEFAULT 0,
  status ENUM('active','inactive') NOT NULL DEFAULT 'active',
  created_at DATETIME(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
  updated_at DATETIME(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3) ON UPDATE CURRENT_TIMESTAMP(3),
  UNIQUE KEY uk_poster_categories_code (code),
  KEY idx_poster_categories_parent_id (parent_id),
  CONSTRAINT fk_poster_categories_parent_id FOREIGN KEY (parent_id) REFERENCES poster_categories (id) ON DELETE SET NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci COMMENT='海报分类';

CREATE TABLE poster_templates (
  id BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
  category_id BIGINT UNSIGNED NULL,
  name VARCHAR(128) NOT NULL,
  description VARCHAR(512) NOT NULL DEFAULT '',
  thumbnail_url VARCHAR(512) NOT NULL DEFAULT '',
  background_url VARCHAR(512) NOT NULL DEFAULT '',
  width INT UNSIGNED NOT NULL DEFAULT 750,
  height INT UNSIGNED NOT NULL DEFAULT 1334,
  canvas_config JSON NULL,
  is_builtin TINYINT(1) NOT NULL DEFAULT 0,
  usage_count INT UNSIGNED NOT NULL DEFAULT 0,
  status ENUM('draft','published','archived') NOT NULL DEFAULT 'draft',
  created_by BIGINT UNSIGNED NULL,
  created_at DATETIME(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
  updated_at DATETIME(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3) ON UPDATE CURRENT_TIMESTAMP(3),
  KEY idx_poster_templates_category_id (category_id),
  KEY idx_poster_templates_status (status),
  KEY idx_poster_templates_created_by (created_by),
  CONSTRAINT fk_poster_templates_category_id FOREIGN KEY (category_id) REFERENCES poster_categories (id) ON DELETE SET NULL,
  CONSTRAINT fk_poster_templates_created_by FOREIGN KEY (created_by) REFERENCES users (id) ON DELETE SET NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci COMMENT='海报模板';

CREATE TABLE poster_elements (
  id BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
  template_id BIGINT UNSIGNED NOT NULL,
  element_type ENUM('text','image','qrcode','shape','avatar','variable') NOT NULL DEFAULT 'text',
  element_key VARCHAR(64) NOT NULL DEFAULT '' COMMENT 'placeholder name filled at generation time',
  content TEXT NULL,
  pos_x INT NOT NULL DEFAULT 0,
  pos_y INT NOT NULL DEFAULT 0,
  width INT UNSIGNED NOT NULL DEFAULT 0,
  height INT UNSIGNED NOT NULL DEFAULT 0,
  z_index INT NOT NULL DEFAULT 0,
  rotation DECIMAL(6,2) NOT NULL DEFAULT 0.00,
  style JSON NULL COMMENT 'font, colour, border, opacity',
  is_editable TINYINT(1) NOT NULL DEFAULT 1,
  sort_order INT NOT NULL DEFAULT 0,
  created_at DATETIME(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
  updated_at DATETIME(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3) ON UPDATE CURRENT_TIMESTAMP(3),
  KEY idx_poster_elements_template_id (template_id, sort_order),
  CONSTRAINT fk_poster_elements_template_id FOREIGN KEY (template_id) REFERENCES poster_templates (id) ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci COMMENT='海报元素';

CREATE TABLE poster_generations (
  id BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
  template_id BIGINT UNSIGNED NULL,
  user_id BIGINT UNSIGNED NULL,
  business_type VARCHAR(32) NOT NULL DEFAULT '' COMMENT 'activity, enrollment_plan, campaign, personal',
  business_id BIGINT UNSIGNED NULL,
  variables JSON NULL COMMENT 'values substituted into the template',
  image_url VARCHAR(512) NOT NULL DEFAULT '',
  file_size INT UNSIGNED NOT NULL DEFAULT 0,
  status ENUM('pending','generating','success','failed') NOT NULL DEFAULT 'pending',
  error_message VARCHAR(512) NOT NULL DEFAULT '',
  generated_at DATETIME(3) NULL,
  created_at DATETIME(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
  updated_at DATETIME(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3) ON UPDATE CURRENT_TIMESTAMP(3),
  KEY idx_poster_generations_template_id (template_id),
  KEY idx_poster_generations_user_id (user_id, created_at),
  KEY idx_poster_generations_business (business_type, business_id),
  CONSTRAINT fk_poster_generations_template_id FOREIGN KEY (template_id) REFERENCES poster_templates (id) ON DELETE SET NULL,
  CONSTRAINT fk_poster_generations_user_id FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE SET NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci COMMENT='海报生成记录';

CREATE TABLE personal_posters (
  id BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
  user_id BIGINT UNSIGNED NOT NULL,
  template_id BIGINT UNSIGNED NULL,
  generation_id BIGINT UNSIGNED NULL,
  title VARCHAR(128) NOT NULL DEFAULT '',
  image_url VARCHAR(512) NOT NULL DEFAULT '',
  share_url VARCHAR(512) NOT NULL DEFAULT '',
  referral_code VARCHAR(32) NOT NULL DEFAULT '' COMMENT 'referral code printed on the poster',
  view_count INT UNSIGNED NOT NULL DEFAULT 0,
  share_count INT UNSIGNED NOT NULL DEFAULT 0,
  status ENUM('active','archived') NOT NULL DEFAULT 'active',
  created_at DATETIME(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
  updated_at DATETIME(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3) ON UPDATE CURRENT_TIMESTAMP(3),
  KEY idx_personal_posters_user_id (user_id),
  KEY idx_personal_posters_template_id (template_id),
  KEY idx_personal_posters_generation_id (generation_id),
  CONSTRAINT fk_personal_posters_user_id FOREIGN KEY (user_id) REFERENCES users (id) ON DELETE CASCADE,
  CONSTRAINT fk_personal_posters_template_id FOREIGN KEY (template_id) REFERENCES poster_templates (id) ON DELETE SET NULL,
  CONSTRAINT fk_personal_posters_generation_id FOREIGN KEY (generation_id) REFERENCES poster_generations (id) ON DELETE SET NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci COMMENT='个人海报';

CREATE TABLE message_templates (
  id BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY,
  code VARCHAR(64) NOT NULL,
  name VARCHAR(128) NOT NULL,
  channel ENUM('in_app','sms','wechat','email','app_push') NOT NULL DEFAULT 'in_app',
  category ENUM('enrollment','activity','notice','marketing','system') NOT NULL DEFAULT 'notice',
  title VARCHAR(255) NOT NULL DEFAULT '',
  content TEXT NOT NULL,
  variables JSON NULL COMMENT 'names of placeholders used in content',
  external_template_id VARCHAR(128) NOT NULL DEFAULT '' COMMENT 'SMS / WeChat provider template code',
  status ENUM('active','inactive') NOT NULL DEFAULT 'active',
  created_by BIGINT UNSIGNED NULL,
  created_at DATETIME(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
  updated_at DATETIME(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3) ON UPDATE CURRENT_TIMESTAMP(3),
  UNIQUE KEY uk_message_templates_code_channel (code, channel),
  KEY idx_message_templates_category (category),
  KEY idx_message_templates_created_by (created_by),
  CONSTRAINT fk_message_templates_created_by FOREIGN KEY (created_by) REFERENCES users (id) ON DELETE SET NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci COMMENT='消息模板';
