package notify_test

import (
	"context"
	"strconv"
	"strings"
	"testing"

	"github.com/unitenant/unitenant/shared/fault"
	"github.com/unitenant/unitenant/shared/notify"
)

func TestAddEndpoint(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	db, box := newSystem(t)
	const secret = "a-long-enough-secret"

	t.Run("Invalid", func(t *testing.T) {
		for name, ep := range map[string]notify.Endpoint{
			"NoURL":       {Secret: secret},
			"FTP":         {URL: "ftp://example.com/hook", Secret: secret},
			"NoHost":      {URL: "https:///hook", Secret: secret},
			"Credentials": {URL: "https://user:pw@example.com/hook", Secret: secret},
			"ShortSecret": {URL: "https://example.com/hook", Secret: "short"},
			"UnknownType": {URL: "https://example.com/hook", Secret: secret, Events: []string{"tenant.exploded"}},
		} {
			if _, err := notify.AddEndpoint(ctx, db, box, ep); err == nil {
				t.Errorf("%s: accepted", name)
			} else if fe, ok := fault.As(err); !ok || fe.Kind != fault.Invalid || strings.Contains(err.Error(), secret) {
				t.Errorf("%s: %v, want an invalid-field error without the secret", name, err)
			}
		}
	})

	t.Run("OK", func(t *testing.T) {
		id, err := notify.AddEndpoint(ctx, db, box, notify.Endpoint{Name: "ops", URL: "https://hooks.example.com/unitenant",
			Events: []string{notify.TenantDeleted, notify.TenantPurged}, Secret: secret})
		if err != nil {
			t.Fatal(err)
		}
		var sealed []byte
		if err := db.QueryRow("SELECT secret_encrypted FROM webhook_endpoints WHERE id = ?", id).Scan(&sealed); err != nil {
			t.Fatal(err)
		}
		if strings.Contains(string(sealed), secret) {
			t.Fatal("secret stored in clear")
		}
		if got, err := box.Open(sealed, "webhook_endpoints:"+strconv.FormatInt(id, 10)+":secret"); err != nil || string(got) != secret {
			t.Fatalf("sealed secret opens to %q (%v)", got, err)
		}
		if err := notify.SetEndpointStatus(ctx, db, id, notify.EndpointDisabled); err != nil {
			t.Fatal(err)
		}
		eps, err := notify.ListEndpoints(ctx, db, notify.AllTenants)
		if err != nil {
			t.Fatal(err)
		}
		if len(eps) != 1 || eps[0].ID != id || eps[0].Status != notify.EndpointDisabled || eps[0].Secret != "" ||
			len(eps[0].Events) != 2 || eps[0].Name != "ops" {
			t.Fatalf("endpoints %+v", eps)
		}
		if eps, err := notify.ListEndpoints(ctx, db, 42); err != nil || len(eps) != 0 {
			t.Fatalf("tenant 42's endpoints %+v (%v), want none", eps, err)
		}
		if err := notify.DeleteEndpoint(ctx, db, id); err != nil {
			t.Fatal(err)
		}
		if _, err := notify.GetEndpoint(ctx, db, id); fault.CodeOf(err) != "webhook_endpoint_not_found" {
			t.Fatalf("deleted endpoint: %v", err)
		}
		if err := notify.SetEndpointStatus(ctx, db, id, notify.EndpointActive); fault.CodeOf(err) != "webhook_endpoint_not_found" {
			t.Fatalf("enable a deleted endpoint: %v", err)
		}
	})
}
