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
// (a 3xx is a failed delivery, never a detour to another host), response
// headers bounded (64 KiB) and, unless allowPrivate, no connections to
// non-public addresses, checked on the address actually dialled so DNS
// cannot be used to sneak past it. A tenant's admin chooses its endpoint
// URLs: they must not reach into our network. Development allows private
// addresses (receivers on localhost).
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
	// Receivers are other people's servers: a response's headers are read
	// whole, in memory, several deliveries at a time (the default allows
	// 10 MB each).
	transport.MaxResponseHeaderBytes = maxResponseHeaderBytes
	return &http.Client{
		Transport:     transport,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// maxResponseHeaderBytes bounds a receiver's response headers; a real
// receiver sends a few hundred bytes.
const maxResponseHeaderBytes = 64 << 10

func isPublic(a netip.Addr) bool {
	// A zone names the interface to dial from, not another host; a zoned
	// address never lies inside a netip.Prefix, so with its zone the
	// ranges below would all let it through.
	a = a.Unmap().WithZone("")
	if !a.IsGlobalUnicast() || a.IsPrivate() || a.IsLoopback() || a.IsLinkLocalUnicast() || cgnat.Contains(a) {
		return false
	}
	for _, p := range notPublic {
		if p.Contains(a) {
			return false
		}
	}
	// An IPv6 address a translator or a tunnel turns into an IPv4 one reaches
	// that IPv4 host: it is as public as the host.
	if v4, ok := embeddedIPv4(a); ok {
		return isPublic(v4)
	}
	return true
}

// cgnat is the shared address space (RFC 6598), private in practice; the
// Aliyun metadata service (100.100.100.200) lives there.
var cgnat = netip.MustParsePrefix("100.64.0.0/10")

// notPublic are the special-purpose ranges (RFC 6890 and its updates) that
// IsGlobalUnicast lets through and no webhook receiver lives in.
var notPublic = []netip.Prefix{
	netip.MustParsePrefix("0.0.0.0/8"),       // "this network"
	netip.MustParsePrefix("192.0.0.0/24"),    // IETF protocol assignments
	netip.MustParsePrefix("198.18.0.0/15"),   // benchmarking, used as internal space
	netip.MustParsePrefix("240.0.0.0/4"),     // reserved
	netip.MustParsePrefix("::/96"),           // IPv4-compatible (deprecated)
	netip.MustParsePrefix("::ffff:0:0:0/96"), // IPv4-translated (RFC 2765 SIIT): a stateless translator's way to an IPv4 host
	netip.MustParsePrefix("100::/64"),        // discard-only
	netip.MustParsePrefix("64:ff9b:1::/48"),  // local-use NAT64 (RFC 8215): the operator's own mapping, unknowable here
	netip.MustParsePrefix("2001::/32"),       // Teredo: a tunnel to an IPv4 host
	netip.MustParsePrefix("2001:db8::/32"),   // documentation
	netip.MustParsePrefix("fec0::/10"),       // site-local (deprecated)
}

var (
	nat64     = netip.MustParsePrefix("64:ff9b::/96") // well-known NAT64 prefix (RFC 6052): the IPv4 address is the last 32 bits
	sixToFour = netip.MustParsePrefix("2002::/16")    // 6to4 (RFC 3056): the IPv4 address follows the prefix
)

// embeddedIPv4 returns the IPv4 address an IPv6 address of a translation
// prefix stands for.
func embeddedIPv4(a netip.Addr) (netip.Addr, bool) {
	b := a.As16()
	switch {
	case !a.Is6():
		return netip.Addr{}, false
	case nat64.Contains(a):
		return netip.AddrFrom4([4]byte(b[12:16])), true
	case sixToFour.Contains(a):
		return netip.AddrFrom4([4]byte(b[2:6])), true
	}
	return netip.Addr{}, false
}
