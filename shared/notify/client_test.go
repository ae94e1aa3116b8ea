package notify_test

import (
	"context"
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/unitenant/unitenant/shared/fault"
	"github.com/unitenant/unitenant/shared/notify"
)

// TestPrivateAddressesBehindIPv6TranslationRefused: an IPv6 address that a
// translator or tunnel turns into a private IPv4 one (NAT64's 64:ff9b::/96
// in IPv6-only subnets, 6to4's 2002::/16, Teredo) reaches that IPv4 host: a
// webhook URL naming one is refused like the IPv4 address itself, before
// anything is dialled. A NAT64 address of a public IPv4 host stays allowed
// (DNS64 hands those out for every IPv4-only receiver).
func TestPrivateAddressesBehindIPv6TranslationRefused(t *testing.T) {
	t.Parallel()
	client := notify.NewHTTPClient(false)
	get := func(url string) error {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, nil)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := client.Do(req)
		if err == nil {
			resp.Body.Close()
		}
		return err
	}
	for name, url := range map[string]string{
		"NAT64Metadata":       "http://[64:ff9b::a9fe:a9fe]/latest/meta-data/", // 169.254.169.254
		"NAT64AliyunMetadata": "http://[64:ff9b::6464:64c8]/latest/meta-data/", // 100.100.100.200
		"NAT64Private":        "http://[64:ff9b::a00:5]:8080/",                 // 10.0.0.5
		"NAT64Loopback":       "http://[64:ff9b::7f00:1]:9000/",                // 127.0.0.1
		"NAT64LocalUse":       "http://[64:ff9b:1:a9fe:a9:fe00::]/",            // RFC 8215, the operator's own mapping
		"6to4Metadata":        "http://[2002:a9fe:a9fe::1]/",                   // 6to4 relay of 169.254.169.254
		"6to4Private":         "http://[2002:c0a8:101::1]/",                    // 192.168.1.1
		"Teredo":              "http://[2001:0:4136:e378:8000:63bf:3fff:fdd2]/",
		"IPv4Compatible":      "http://[::a9fe:a9fe]/",
		// A zone names the interface to leave by, not another host.
		"NAT64LoopbackZoned": "http://[64:ff9b::7f00:1%25lo]:9000/",
		"6to4MetadataZoned":  "http://[2002:a9fe:a9fe::1%25lo]/",
		"TranslatedZoned":    "http://[::ffff:0:7f00:1%25lo]:9000/",
	} {
		if err := get(url); !errors.Is(err, notify.ErrPrivateAddress) {
			t.Errorf("%s: %s: %v, want %v", name, url, err, notify.ErrPrivateAddress)
		}
	}
	// 64:ff9b::808:808 is 8.8.8.8 behind NAT64: not ours to refuse (the dial
	// itself fails here, there being no NAT64 gateway).
	if err := get("http://[64:ff9b::808:808]:9/"); errors.Is(err, notify.ErrPrivateAddress) {
		t.Errorf("NAT64 address of a public host refused: %v", err)
	}
}

// TestCheckPublicURL: the check an admin API runs when an endpoint is added
// refuses, without resolving anything, hosts that are non-public addresses
// in any form a URL parser or resolver reads as one, and localhost; it takes
// any other name.
func TestCheckPublicURL(t *testing.T) {
	t.Parallel()
	for _, u := range []string{
		"http://169.254.169.254/", "http://127.0.0.1:8080/", "http://[::1]/", "http://10.0.0.5/",
		"http://2130706433/", "http://0x7f.1/", "http://0X7F.0.0.1/", "http://0177.0.0.01/", "http://127.1/", "http://127.0.1/",
		"http://0x/", "http://0xa9fea9fe/", "http://169.254.43518/", "http://100.100.100.200/",
		"http://[::ffff:a9fe:a9fe]/", "http://[fe80::1%25eth0]/", "http://[64:ff9b::7f00:1%25lo]/",
		"http://１２７.０.０.１/", "http://127。0。0。1/", "http://①②⑦.0.0.1/", "http://ｌｏｃａｌｈｏｓｔ/",
		"http://localhost/", "http://LOCALHOST./", "http://a.b.localhost:9/", "http://ip6-localhost/", "http://localhost.localdomain/",
		"http://1.2.3.4.5/", "http://256.0.0.1/", "http://1.16777216/", "http://08.0.0.1/", "http://a.1/", "http://4294967296/",
	} {
		if fe, ok := fault.As(notify.CheckPublicURL(u)); !ok || fe.Kind != fault.Invalid || fe.Fields["url"] == "" {
			t.Errorf("%s: %v, want an invalid-input error naming url", u, fe)
		}
	}
	for _, u := range []string{
		"https://8.8.8.8/", "http://134744072/", "http://[2606:4700::1111]/", "http://[64:ff9b::808:808]/",
		"https://hooks.example.com/x", "https://localhost.example.com/", "https://127.0.0.1.nip.io/", "https://a.1x/", "http://example.0x1g/",
		"https://xn--bcher-kva.example/", "https://bücher.example/",
	} {
		if err := notify.CheckPublicURL(u); err != nil {
			t.Errorf("%s: %v, want it taken", u, err)
		}
	}
}
