package notify

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"

	"github.com/unitenant/unitenant/shared/fault"
)

// CheckPublicURL refuses a webhook URL (one ValidateURL accepts) whose host
// is plainly not public, without resolving anything:
//
//   - an IP address the dispatcher's client would refuse to dial (see
//     NewHTTPClient), in any form a URL parser or a resolver takes for one:
//     "[::1]", "2130706433", "0x7f.1", "0177.0.0.1" and "127.1" are all
//     loopback, and a name whose last label is a number but which is no
//     address is refused too;
//   - a name that always means this machine: localhost, *.localhost and the
//     other names /etc/hosts gives the loopback address.
//
// The host is taken as the client will dial it: net/http maps an
// internationalized name to ASCII first (IDNA), under which a full-width
// "１２７.０.０.１" is 127.0.0.1. Any other name is checked on every delivery,
// on the address dialled, as DNS answers change. The error is a
// *fault.Error naming the field "url".
func CheckPublicURL(raw string) error {
	host, err := dialHost(raw)
	if err != nil {
		return fault.Field("invalid_field", "url", "must be an http or https URL with a host")
	}
	host = strings.TrimSuffix(asciiLower(host), ".")
	if localName(host) {
		return errNotPublic(host)
	}
	if a, err := netip.ParseAddr(host); err == nil {
		if !isPublic(a) {
			return errNotPublic(host)
		}
		return nil
	}
	if a, numeric, ok := numericIPv4(host); numeric {
		if !ok {
			return fault.Field("invalid_field", "url", "host "+strconv.Quote(host)+" ends in a number but is not an IP address")
		}
		if !isPublic(a) {
			return errNotPublic(host)
		}
	}
	return nil
}

func errNotPublic(host string) error {
	return fault.Field("invalid_field", "url", "host "+strconv.Quote(host)+
		" is not a public address: webhooks never reach loopback, private, link-local or metadata addresses")
}

// errDialTaken ends dialHost's round trip once the address is known.
var errDialTaken = errors.New("dial address taken")

// dialHost returns the host name or address the webhook client dials for
// raw, asking a transport whose dialer only records it (nothing is resolved
// or sent). The transport is net/http's, as the client's is, so it maps the
// host exactly as a delivery will.
func dialHost(raw string) (string, error) {
	req, err := http.NewRequest(http.MethodPost, raw, http.NoBody)
	if err != nil {
		return "", err
	}
	dialed := make(chan string, 1)
	t := &http.Transport{
		Proxy: nil,
		DialContext: func(_ context.Context, _, addr string) (net.Conn, error) {
			select {
			case dialed <- addr:
			default:
			}
			return nil, errDialTaken
		},
	}
	defer t.CloseIdleConnections()
	if resp, err := t.RoundTrip(req); err == nil { // cannot happen: nothing was dialled
		resp.Body.Close()
	}
	select {
	case addr := <-dialed:
		host, _, err := net.SplitHostPort(addr)
		return host, err
	default:
		return "", errors.New("no address to dial")
	}
}

// localNames are the names /etc/hosts commonly gives the loopback address
// (Debian's and Red Hat's); RFC 6761 reserves localhost and *.localhost.
var localNames = []string{
	"localhost", "localhost.localdomain", "localhost4", "localhost4.localdomain4",
	"localhost6", "localhost6.localdomain6", "ip6-localhost", "ip6-loopback",
}

func localName(host string) bool {
	for _, n := range localNames {
		if host == n {
			return true
		}
	}
	return strings.HasSuffix(host, ".localhost")
}

// numericIPv4 reads host as WHATWG URL parsers and inet_aton (which glibc's
// getaddrinfo, and so Go's cgo resolver, tries first) do: a host whose last
// label is a number (decimal, 0x hex) is numeric, and then it must be one to
// four numbers, each decimal, octal (a leading 0) or hex (0x), the last
// filling the remaining bytes. It returns the address, whether host is
// numeric, and whether it is a valid address.
func numericIPv4(host string) (addr netip.Addr, numeric, ok bool) {
	labels := strings.Split(host, ".")
	if !isNumberLabel(labels[len(labels)-1]) {
		return netip.Addr{}, false, false
	}
	if len(labels) > 4 {
		return netip.Addr{}, true, false
	}
	var v uint64
	for i, l := range labels {
		n, err := parseIPv4Number(l)
		last := i == len(labels)-1
		max := uint64(255)
		if last {
			max = 1<<(8*(5-len(labels))) - 1
		}
		if err != nil || n > max {
			return netip.Addr{}, true, false
		}
		if last {
			v = v<<(8*(5-len(labels))) | n
		} else {
			v = v<<8 | n
		}
	}
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)}), true, true
}

// isNumberLabel reports whether a label is a number: decimal digits, or 0x
// and hex digits (none: zero).
func isNumberLabel(l string) bool {
	if rest, ok := cutHexPrefix(l); ok {
		return strings.Trim(rest, "0123456789abcdefABCDEF") == ""
	}
	return l != "" && strings.Trim(l, "0123456789") == ""
}

func parseIPv4Number(l string) (uint64, error) {
	if rest, ok := cutHexPrefix(l); ok {
		if rest == "" {
			return 0, nil
		}
		return strconv.ParseUint(rest, 16, 64)
	}
	if len(l) > 1 && l[0] == '0' {
		return strconv.ParseUint(l[1:], 8, 64)
	}
	return strconv.ParseUint(l, 10, 64)
}

func cutHexPrefix(l string) (string, bool) {
	if len(l) >= 2 && l[0] == '0' && (l[1] == 'x' || l[1] == 'X') {
		return l[2:], true
	}
	return "", false
}

// asciiLower lower-cases A-Z only: no Unicode case mapping may turn a name
// into another.
func asciiLower(s string) string {
	return strings.Map(func(r rune) rune {
		if 'A' <= r && r <= 'Z' {
			return r + 'a' - 'A'
		}
		return r
	}, s)
}
