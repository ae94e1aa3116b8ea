package objectstore_test

import (
	"context"
	"strings"
	"testing"

	"github.com/unitenant/unitenant/shared/config"
	"github.com/unitenant/unitenant/shared/objectstore"
)

func load(t *testing.T, dev bool, vars map[string]string) (*objectstore.Service, error) {
	t.Helper()
	e := config.FromMap(vars)
	svc, err := objectstore.Load(e, dev)
	if err == nil {
		err = e.Err()
	}
	return svc, err
}

func TestLoad(t *testing.T) {
	t.Parallel()
	secret := strings.Repeat("x", 32)
	t.Run("DevelopmentDefaultsToLocal", func(t *testing.T) {
		dir := t.TempDir()
		svc, err := load(t, true, map[string]string{"LOCAL_STORAGE_DIR": dir, "LOCAL_STORAGE_SECRET": secret})
		if err != nil {
			t.Fatal(err)
		}
		if svc.Backend != objectstore.BackendLocal || svc.Local == nil || svc.STS != nil || svc.Layout.String() != objectstore.DefaultPrefixPattern {
			t.Fatalf("%+v", svc)
		}
		k001, err := svc.Tenant("k001")
		if err != nil || k001.Prefix() != "tenants/k001/" {
			t.Fatalf("Tenant: %v %v", k001, err)
		}
		if err := objectstore.AllocatePrefix(context.Background(), k001); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("ProductionRefusesLocal", func(t *testing.T) {
		_, err := load(t, false, map[string]string{"STORAGE_BACKEND": "local", "LOCAL_STORAGE_SECRET": secret})
		if err == nil || !strings.Contains(err.Error(), "development only") {
			t.Fatalf("err = %v", err)
		}
	})
	t.Run("ProductionDefaultsToOSSAndNamesWhatIsMissing", func(t *testing.T) {
		_, err := load(t, false, map[string]string{"OSS_ACCESS_KEY_SECRET": "top-secret"})
		if err == nil || !strings.Contains(err.Error(), "OSS_ENDPOINT") || !strings.Contains(err.Error(), "OSS_BUCKET") ||
			!strings.Contains(err.Error(), "OSS_ACCESS_KEY_ID") || strings.Contains(err.Error(), "top-secret") {
			t.Fatalf("err = %v", err)
		}
	})
	oss := map[string]string{"OSS_ENDPOINT": "https://oss-cn-hangzhou.aliyuncs.com", "OSS_BUCKET": "tenant-storage",
		"OSS_ACCESS_KEY_ID": "LTAI5t", "OSS_ACCESS_KEY_SECRET": "top-secret"}
	t.Run("OSSWithoutSTS", func(t *testing.T) {
		svc, err := load(t, false, oss)
		if err != nil || svc.Backend != objectstore.BackendOSS || svc.OSS == nil || svc.STS != nil || svc.Local != nil {
			t.Fatalf("%+v %v", svc, err)
		}
	})
	t.Run("OSSWithSTS", func(t *testing.T) {
		vars := map[string]string{"STS_ROLE_ARN": "acs:ram::1234567890123456:role/oss-tenant", "STS_DURATION": "30m"}
		for k, v := range oss {
			vars[k] = v
		}
		svc, err := load(t, false, vars)
		if err != nil || svc.STS == nil {
			t.Fatalf("%+v %v", svc, err)
		}
	})
	t.Run("BadValues", func(t *testing.T) {
		for name, vars := range map[string]map[string]string{
			"Backend":     {"STORAGE_BACKEND": "s3"},
			"Pattern":     {"TENANT_STORAGE_PREFIX": "tenants/{code}", "LOCAL_STORAGE_SECRET": secret},
			"ShortSecret": {"LOCAL_STORAGE_SECRET": "short"},
		} {
			if _, err := load(t, true, vars); err == nil {
				t.Errorf("%s: accepted %v", name, vars)
			}
		}
	})
}
