package rollout

// SetBeforeTenant makes o call f before each tenant is migrated, so a test
// can stop a roll-out half-way.
func SetBeforeTenant(o *Options, f func(tenantID int64)) { o.beforeTenant = f }

// SetCrashAfterMigrate makes o forget each tenant f says so of right after
// migrating it, before recording anything: a crash at the worst moment.
func SetCrashAfterMigrate(o *Options, f func(tenantID int64) bool) { o.crashAfterMigrate = f }
