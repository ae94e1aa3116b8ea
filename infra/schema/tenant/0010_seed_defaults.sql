-- Tenant template 0010: default rows every tenant starts with.
-- Roles, the permission catalogue (codes are resource:action), role grants joined on codes,
-- tenant_config defaults (seed 001 §2.3) and a few operational defaults.
-- The control plane overwrites tenant.* and limits.* from the tenant record at provisioning.

INSERT INTO roles (code, name, description, is_system, sort_order) VALUES
('admin', '管理员', '租户管理员, 拥有全部权限', 1, 10),
('principal', '园长', '园长, 管理园所业务, 不能修改角色和系统设置', 1, 20),
('teacher', '教师', '班级教师, 管理本班幼儿和家长沟通', 1, 30),
('staff', '招生/行政人员', '招生咨询、活动、营销等行政工作', 1, 40),
('finance', '财务', '收费、退费、计费和报表', 1, 50),
('parent', '家长', '家长端账号, 数据按本人子女范围限制', 1, 60);

INSERT INTO permissions (code, name, resource, action, module, sort_order) VALUES
('users:read', '查看用户', 'users', 'read', 'system', 100),
('users:write', '管理用户', 'users', 'write', 'system', 101),
('roles:read', '查看角色', 'roles', 'read', 'system', 110),
('roles:write', '管理角色与授权', 'roles', 'write', 'system', 111),
('kindergartens:read', '查看园区信息', 'kindergartens', 'read', 'school', 200),
('kindergartens:write', '管理园区信息', 'kindergartens', 'write', 'school', 201),
('classes:read', '查看班级', 'classes', 'read', 'school', 210),
('classes:write', '管理班级', 'classes', 'write', 'school', 211),
('students:read', '查看学生', 'students', 'read', 'school', 220),
('students:write', '管理学生', 'students', 'write', 'school', 221),
('parents:read', '查看家长', 'parents', 'read', 'school', 230),
('parents:write', '管理家长', 'parents', 'write', 'school', 231),
('teachers:read', '查看教师', 'teachers', 'read', 'school', 240),
('teachers:write', '管理教师', 'teachers', 'write', 'school', 241),
('enrollment:read', '查看招生计划与报名', 'enrollment', 'read', 'enrollment', 300),
('enrollment:write', '管理招生计划与报名', 'enrollment', 'write', 'enrollment', 301),
('enrollment:approve', '录取审核', 'enrollment', 'approve', 'enrollment', 302),
('consultations:read', '查看招生咨询', 'consultations', 'read', 'enrollment', 310),
('consultations:write', '管理招生咨询与跟进', 'consultations', 'write', 'enrollment', 311),
('activities:read', '查看活动', 'activities', 'read', 'activities', 400),
('activities:write', '管理活动', 'activities', 'write', 'activities', 401),
('marketing:read', '查看营销活动', 'marketing', 'read', 'marketing', 500),
('marketing:write', '管理营销、渠道、优惠券与推荐', 'marketing', 'write', 'marketing', 501),
('posters:read', '查看海报', 'posters', 'read', 'content', 600),
('posters:write', '管理海报与消息模板', 'posters', 'write', 'content', 601),
('ai:use', '使用AI助手', 'ai', 'use', 'ai', 700),
('ai:query', 'AI数据查询', 'ai', 'query', 'ai', 701),
('ai:manage', '管理AI模型与AI权限', 'ai', 'manage', 'ai', 702),
('notifications:read', '查看通知', 'notifications', 'read', 'workbench', 800),
('notifications:write', '发送通知', 'notifications', 'write', 'workbench', 801),
('files:read', '查看文件', 'files', 'read', 'workbench', 810),
('files:write', '上传和管理文件', 'files', 'write', 'workbench', 811),
('finance:read', '查看财务数据', 'finance', 'read', 'finance', 900),
('finance:write', '管理收费与退费', 'finance', 'write', 'finance', 901),
('performance:read', '查看绩效', 'performance', 'read', 'management', 1000),
('performance:write', '管理绩效规则与考核', 'performance', 'write', 'management', 1001),
('safety:read', '查看安全检查与事件', 'safety', 'read', 'management', 1010),
('safety:write', '登记安全检查与事件', 'safety', 'write', 'management', 1011),
('approvals:read', '查看审批', 'approvals', 'read', 'management', 1020),
('approvals:write', '发起审批', 'approvals', 'write', 'management', 1021),
('approvals:approve', '审批处理', 'approvals', 'approve', 'management', 1022),
('reports:read', '查看统计报表', 'reports', 'read', 'management', 1030),
('settings:read', '查看系统设置', 'settings', 'read', 'system', 1100),
('settings:write', '修改系统设置', 'settings', 'write', 'system', 1101),
('logs:read', '查看操作日志', 'logs', 'read', 'system', 1110);

-- admin: every permission.
INSERT INTO role_permissions (role_id, permission_id)
SELECT r.id, p.id FROM roles r CROSS JOIN permissions p
WHERE r.code = 'admin'
ORDER BY p.id;

-- principal: everything except role management, system settings and AI model management.
INSERT INTO role_permissions (role_id, permission_id)
SELECT r.id, p.id FROM roles r CROSS JOIN permissions p
WHERE r.code = 'principal' AND p.code NOT IN ('roles:write', 'settings:write', 'ai:manage')
ORDER BY p.id;

INSERT INTO role_permissions (role_id, permission_id)
SELECT r.id, p.id FROM roles r JOIN permissions p ON p.code IN (
  'kindergartens:read', 'classes:read', 'students:read', 'students:write',
  'parents:read', 'parents:write', 'teachers:read',
  'enrollment:read', 'consultations:read',
  'activities:read', 'activities:write', 'posters:read', 'posters:write',
  'ai:use', 'ai:query', 'notifications:read', 'notifications:write',
  'files:read', 'files:write', 'performance:read', 'safety:read', 'safety:write',
  'approvals:read', 'approvals:write')
WHERE r.code = 'teacher'
ORDER BY p.id;

INSERT INTO role_permissions (role_id, permission_id)
SELECT r.id, p.id FROM roles r JOIN permissions p ON p.code IN (
  'kindergartens:read', 'classes:read', 'students:read', 'parents:read', 'parents:write', 'teachers:read',
  'enrollment:read', 'enrollment:write', 'consultations:read', 'consultations:write',
  'activities:read', 'activities:write', 'marketing:read', 'marketing:write',
  'posters:read', 'posters:write', 'ai:use', 'ai:query',
  'notifications:read', 'notifications:write', 'files:read', 'files:write',
  'performance:read', 'safety:read', 'approvals:read', 'approvals:write', 'reports:read')
WHERE r.code = 'staff'
ORDER BY p.id;

INSERT INTO role_permissions (role_id, permission_id)
SELECT r.id, p.id FROM roles r JOIN permissions p ON p.code IN (
  'kindergartens:read', 'classes:read', 'students:read', 'parents:read',
  'enrollment:read', 'activities:read', 'marketing:read',
  'finance:read', 'finance:write', 'ai:use', 'notifications:read',
  'files:read', 'files:write', 'performance:read',
  'approvals:read', 'approvals:write', 'reports:read')
WHERE r.code = 'finance'
ORDER BY p.id;

INSERT INTO role_permissions (role_id, permission_id)
SELECT r.id, p.id FROM roles r JOIN permissions p ON p.code IN (
  'activities:read', 'posters:read', 'notifications:read', 'ai:use')
WHERE r.code = 'parent'
ORDER BY p.id;

-- tenant_config defaults: the six keys of seed 001 §2.3 plus kindergarten features and limits.
INSERT INTO tenant_config (config_key, config_value, config_type, description) VALUES
('tenant.name', '默认租户', 'string', '租户名称'),
('tenant.logo_url', '', 'string', '租户Logo URL'),
('tenant.theme_color', '#1890ff', 'string', '租户主题色'),
('tenant.contact_email', '', 'string', '联系邮箱'),
('tenant.contact_phone', '', 'string', '联系电话'),
('tenant.site_name', '幼儿园管理平台', 'string', '站点名称(浏览器标题与登录页)'),
('tenant.locale', 'zh-CN', 'string', '默认语言'),
('tenant.timezone', 'Asia/Shanghai', 'string', '时区'),
('theme.mode', 'light', 'string', '主题模式: light / dark'),
('features.payment_enabled', 'true', 'boolean', '是否启用支付功能'),
('features.study_tracking', 'true', 'boolean', '是否启用学习(成长)跟踪'),
('features.enrollment_enabled', 'true', 'boolean', '是否启用招生管理'),
('features.activities_enabled', 'true', 'boolean', '是否启用活动管理'),
('features.marketing_enabled', 'true', 'boolean', '是否启用营销管理'),
('features.poster_enabled', 'true', 'boolean', '是否启用海报生成'),
('features.ai_assistant_enabled', 'true', 'boolean', '是否启用AI助手'),
('limits.max_users', '100', 'number', '最大用户数'),
('limits.max_students', '500', 'number', '最大在园学生数'),
('limits.max_storage_mb', '10240', 'number', '存储空间上限(MB)'),
('limits.max_upload_size_mb', '50', 'number', '单个文件上传上限(MB)'),
('limits.ai_monthly_tokens', '1000000', 'number', '每月AI token额度');

INSERT INTO system_config (config_group, config_key, config_value, value_type, description, is_public, sort_order) VALUES
('security', 'session_timeout_minutes', '120', 'number', '登录会话超时(分钟)', 0, 10),
('upload', 'allowed_extensions', '["jpg","jpeg","png","gif","webp","pdf","doc","docx","xls","xlsx","mp4"]', 'json', '允许上传的文件类型', 1, 20),
('notification', 'sms_enabled', 'false', 'boolean', '是否启用短信通知', 0, 30),
('notification', 'wechat_enabled', 'false', 'boolean', '是否启用微信通知', 0, 31),
('enrollment', 'application_no_prefix', 'BM', 'string', '报名单号前缀', 0, 40),
('enrollment', 'followup_interval_days', '3', 'number', '默认咨询跟进间隔(天)', 0, 41),
('approval', 'request_no_prefix', 'SP', 'string', '审批单号前缀', 0, 50);

INSERT INTO channels (code, name, channel_type, sort_order) VALUES
('walk_in', '上门咨询', 'walk_in', 10),
('phone', '电话咨询', 'offline', 20),
('referral', '老带新推荐', 'referral', 30),
('wechat', '微信公众号/朋友圈', 'online', 40),
('online_ad', '网络广告', 'advertising', 50),
('community_event', '社区活动', 'event', 60),
('other', '其他', 'other', 100);

INSERT INTO poster_categories (code, name, sort_order) VALUES
('enrollment', '招生海报', 10),
('activity', '活动海报', 20),
('festival', '节日海报', 30),
('brand', '品牌宣传', 40);

INSERT INTO message_templates (code, name, channel, category, title, content, variables) VALUES
('admission_notice', '录取通知', 'sms', 'enrollment', '录取通知', '尊敬的{parent_name}家长, {child_name}小朋友已被{kindergarten_name}{class_name}录取, 请于{confirm_deadline}前确认入园.', '["parent_name","child_name","kindergarten_name","class_name","confirm_deadline"]'),
('interview_scheduled', '面试安排', 'sms', 'enrollment', '入园面谈通知', '尊敬的{parent_name}家长, {child_name}小朋友的入园面谈安排在{scheduled_at}, 地点: {location}.', '["parent_name","child_name","scheduled_at","location"]'),
('activity_registration_confirmed', '活动报名成功', 'in_app', 'activity', '活动报名成功', '您已成功报名活动《{activity_title}》, 时间: {start_at}, 地点: {location}.', '["activity_title","start_at","location"]'),
('consultation_followup_reminder', '咨询跟进提醒', 'in_app', 'enrollment', '咨询跟进提醒', '咨询客户{parent_name}({parent_phone})需要在{next_followup_at}前跟进.', '["parent_name","parent_phone","next_followup_at"]');

INSERT INTO approval_flows (code, name, business_type, description, steps) VALUES
('leave', '请假审批', 'leave', '教职工请假', '[{"step":1,"role":"principal"}]'),
('purchase', '采购审批', 'purchase', '物资采购', '[{"step":1,"role":"principal"},{"step":2,"role":"finance"}]'),
('activity_plan', '活动方案审批', 'activity_plan', '活动计划与预算', '[{"step":1,"role":"principal"}]'),
('refund', '退费审批', 'refund', '学费、活动费退费', '[{"step":1,"role":"principal"},{"step":2,"role":"finance"}]');
