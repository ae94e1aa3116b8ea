package notify

import (
	"errors"
	"net"
	"net/http"
	"net/netip"
	"syscall"
	"time"
)

// ErrPrivateAddress is returned when a webhook URL resolves to an address
// that is not public (loopback, private, link-local — cloud metadata lives
// there) and private addresses are not allowed.
var ErrPrivateAddress = errors.New("webhook URL resolves to a non-public address")

// NewHTTPClient returns the client webhooks are posted with: no redirects
// (a 3xx is a failed delivery, never a detour to another host) and, unless
// allowPrivate, no connections to non-public addresses, checked on the
// address actually dialled so DNS cannot be used to sneak past it. A
// tenant's admin chooses its endpoint URLs: they must not reach into our
// network. Development allows private addresses (receivers on localhost).
func NewHTTPClient(allowPrivate bool) *http.Client {
	dialer := &net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}
	if !allowPrivate {
		dialer.Control = func(_, address string, _ syscall.RawConn) error {
			ap, err := netip.ParseAddrPort(address)
			if err != nil || !isPublic(ap.Addr()) {
				return ErrPrivateAddress
			}
			return nil
		}
	}
	transport := http.DefaultTransport.(*http.Transport).Clone()
	transport.DialContext = dialer.DialContext
	transport.Proxy = nil // a proxy would dial in our place, unchecked
	transport.MaxIdleConnsPerHost = 4
	return &http.Client{
		Transport:     transport,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

func isPublic(a netip.Addr) bool {
	a = a.Unmap()
	return a.IsGlobalUnicast() && !a.IsPrivate() && !a.IsLoopback() && !a.IsLinkLocalUnicast() &&
		!cgnat.Contains(a)
}

// cgnat is the shared address space (RFC 6598), private in practice.
var cgnat = netip.MustParsePrefix("100.64.0.0/10")
