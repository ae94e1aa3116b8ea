package serverless_test

import (
	"bufio"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-lambda-go/lambdaurl"

	"github.com/unitenant/unitenant/shared/fault"
	"github.com/unitenant/unitenant/shared/logging"
	"github.com/unitenant/unitenant/shared/serverless"
)

// seen is what app's GET /host answered: the host every accessor gives,
// or the error the request was refused with.
type seen struct {
	Host, RHost, HostHeader string
	Error                   string
}

func readSeen(t *testing.T, body string) seen {
	t.Helper()
	var env struct {
		Data struct {
			Host       string `json:"host"`
			RHost      string `json:"rHost"`
			HostHeader string `json:"hostHeader"`
		} `json:"data"`
		Error struct{ Code string } `json:"error"`
	}
	if err := json.Unmarshal([]byte(body), &env); err != nil {
		t.Fatalf("body %q: %v", body, err)
	}
	return seen{env.Data.Host, env.Data.RHost, env.Data.HostHeader, env.Error.Code}
}

// entry is one way a request reaches the handler: served for authority,
// with the client's own Host header claiming hostHeader.
type entry struct {
	name string
	get  func(t *testing.T, authority, hostHeader string) seen
}

func entries() []entry {
	return []entry{
		{"LambdaHTTPAPI", func(t *testing.T, authority, hostHeader string) seen {
			resp := invokeLambdaOn(t, "/host", authority, hostHeader)
			return readSeen(t, resp.Body)
		}},
		{"LambdaFunctionURL", func(t *testing.T, authority, hostHeader string) seen {
			h := lambdaurl.Wrap(serverless.Handler(app(), logging.Discard(), 0))
			resp, err := h(context.Background(), &events.LambdaFunctionURLRequest{
				RawPath: "/host", Headers: map[string]string{"host": hostHeader},
				RequestContext: events.LambdaFunctionURLRequestContext{
					DomainName: authority,
					HTTP:       events.LambdaFunctionURLRequestContextHTTPDescription{Method: "GET", Path: "/host"},
				},
			})
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			return readSeen(t, string(b))
		}},
		{"GoHTTP2Server", func(t *testing.T, authority, hostHeader string) seen {
			return readSeen(t, h2cGet(t, h2cServer(t), authority, hostHeader))
		}},
	}
}

// TestHostIsTheOneServed: on every entry path, the host routing sees is
// the authority the platform served the request for, whatever Host header
// the client added beside it; and the handler sees no such header.
func TestHostIsTheOneServed(t *testing.T) {
	t.Parallel()
	for _, e := range entries() {
		t.Run(e.name, func(t *testing.T) {
			t.Parallel()
			for _, tc := range []struct{ authority, header, want string }{
				{"k001.example.com", "k002.example.com", "k001.example.com"},
				{"k001.example.com", "k001.example.com", "k001.example.com"},
				{"fn.lambda-url.us-east-1.on.aws", "k002.example.com", "fn.lambda-url.us-east-1.on.aws"},
				{gatewayDomain, "K002.example.com:443", gatewayDomain},
			} {
				got := e.get(t, tc.authority, tc.header)
				if got != (seen{Host: tc.want, RHost: tc.authority}) {
					t.Errorf("served for %s, client's Host %s: handler saw %+v; want host %s, r.Host %s and no Host header",
						tc.authority, tc.header, got, tc.want, tc.authority)
				}
			}
		})
	}
	// HTTP/1 servers (FC, local): an absolute-form request target is the
	// authority Go's server routes by, whatever the Host line says.
	for _, mode := range []serverless.Mode{serverless.ModeFC, serverless.ModeLocal} {
		t.Run("AbsoluteForm/"+string(mode), func(t *testing.T) {
			t.Parallel()
			base, _ := startServer(t, mode, serverless.Service{Handler: app()})
			body := rawHTTP1(t, strings.TrimPrefix(base, "http://"),
				"GET http://k001.example.com/host HTTP/1.1\r\nHost: k002.example.com\r\nConnection: close\r\n\r\n")
			if got := readSeen(t, body); got != (seen{Host: "k001.example.com", RHost: "k001.example.com"}) {
				t.Errorf("absolute-form k001, Host k002: handler saw %+v", got)
			}
		})
	}
}

// foldTricks are hosts that Unicode lower-casing or a database collation
// would fold onto an ASCII tenant's name.
var foldTricks = []string{
	"\u212a001.example.com",               // Kelvin sign: strings.ToLower gives "k"
	"\u0130nfo.example.com",               // capital I with dot: ToLower gives "i"
	"\uff4b001.example.com",               // fullwidth k
	"\uff2b001.example.com",               // fullwidth K
	"stra\u00dfe.example.com",             // ß: "ss" in utf8mb4_unicode_ci
	"\u017fchool.example.com",             // long s
	"k001.example.com\u00a0",              // no-break space
	"k001.example.com" + "\u2024",         // one dot leader
	"xn--k001-\u212a.example.com:443",     // with a port
	"\u212a001.example.com.",              // with a trailing dot
	"K001.EXAMPLE.COM\u0307",              // combining dot above
	"\u212a001.execute-api.amazonaws.com", // a platform suffix
}

// TestNonASCIIHostIsRefused: a host that is not ASCII is refused, on every
// entry path, before the handler runs (and so before any tenant lookup).
func TestNonASCIIHostIsRefused(t *testing.T) {
	t.Parallel()
	for _, e := range entries() {
		t.Run(e.name, func(t *testing.T) {
			t.Parallel()
			for _, host := range foldTricks {
				if got := e.get(t, host, host); got != (seen{Error: "invalid_host"}) {
					t.Errorf("host %q: handler saw %+v, want it refused with invalid_host", host, got)
				}
			}
		})
	}
	t.Run("Direct", func(t *testing.T) {
		t.Parallel()
		h := serverless.Handler(app(), logging.Discard(), 0)
		for _, host := range foldTricks {
			r, _ := http.NewRequest("GET", "http://placeholder/host", nil)
			r.Host = host
			w := &recorder{header: http.Header{}}
			h.ServeHTTP(w, r)
			if got := readSeen(t, w.body.String()); w.status != 400 || got != (seen{Error: "invalid_host"}) {
				t.Errorf("host %q: %d %+v, want 400 invalid_host", host, w.status, got)
			}
		}
	})
}

func TestNormalizeHost(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ in, want, err string }{
		{"k001.example.com", "k001.example.com", ""},
		{"K001.Example.COM:8080", "k001.example.com", ""},
		{"k001.example.com.", "k001.example.com", ""},
		{"k001.example.com:", "k001.example.com", ""},
		{"xn--bcher-kva.example", "xn--bcher-kva.example", ""},
		{"[::1]:8080", "::1", ""},
		{"[::1]", "[::1]", ""},
		{"", "", ""},
		{"\u212a001.example.com", "", "invalid_host"},
		{"\u0130.example.com", "", "invalid_host"},
		{"b\u00fccher.example", "", "invalid_host"},
		{"k001.example.com:80x", "", "invalid_host"},
		{"[k001.example.com]:443", "", "invalid_host"},
		{"k001.example.com\t", "", "invalid_host"},
		{"k001 .example.com", "", "invalid_host"},
		{"k001.example.com\x00", "", "invalid_host"},
	} {
		got, err := serverless.NormalizeHost(tc.in)
		if got != tc.want || fault.CodeOf(err) != tc.err {
			t.Errorf("NormalizeHost(%q) = %q, %v; want %q, %s", tc.in, got, err, tc.want, tc.err)
		}
	}
	if _, err := serverless.NormalizeHost("\u212a001.example.com"); !errors.Is(err, serverless.ErrHostNotASCII) {
		t.Errorf("Kelvin sign: %v, want ErrHostNotASCII (a message that says why)", err)
	}
}

// recorder is a minimal ResponseWriter.
type recorder struct {
	header http.Header
	status int
	body   strings.Builder
}

func (w *recorder) Header() http.Header { return w.header }
func (w *recorder) WriteHeader(s int) {
	if w.status == 0 {
		w.status = s
	}
}
func (w *recorder) Write(b []byte) (int, error) {
	w.WriteHeader(200)
	return w.body.Write(b)
}

// rawHTTP1 sends req as written on a new connection to addr and returns the
// response body.
func rawHTTP1(t *testing.T, addr, req string) string {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(c, req); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// h2cServer serves app through Handler on Go's own HTTP/2 server
// (prior-knowledge cleartext HTTP/2) and returns its address.
func h2cServer(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var protocols http.Protocols
	protocols.SetUnencryptedHTTP2(true)
	srv := &http.Server{Handler: serverless.Handler(app(), logging.Discard(), 0), Protocols: &protocols}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	return ln.Addr().String()
}

// h2cGet sends GET /host over HTTP/2 with :authority authority and, when
// hostHeader is not empty, a literal "host" header too (which Go's HTTP/2
// client never sends, hence frames written by hand), and returns the
// response body.
func h2cGet(t *testing.T, addr, authority, hostHeader string) string {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	// HPACK: indexed :method GET (2) and :scheme http (6); literals without
	// indexing for :path (name 4), :authority (name 1) and host (new name).
	block := []byte{0x82, 0x86}
	block = hpackLiteral(block, 4, "", "/host")
	block = hpackLiteral(block, 1, "", authority)
	if hostHeader != "" {
		block = hpackLiteral(block, 0, "host", hostHeader)
	}
	out := []byte("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
	out = h2Frame(out, 0x4, 0, 0, nil)     // SETTINGS
	out = h2Frame(out, 0x1, 0x5, 1, block) // HEADERS, END_STREAM|END_HEADERS
	if _, err := c.Write(out); err != nil {
		t.Fatal(err)
	}
	r := bufio.NewReader(c)
	var body strings.Builder
	for {
		var hdr [9]byte
		if _, err := io.ReadFull(r, hdr[:]); err != nil {
			t.Fatalf("read frame: %v (body so far %q)", err, body.String())
		}
		n := int(hdr[0])<<16 | int(hdr[1])<<8 | int(hdr[2])
		typ, flags, stream := hdr[3], hdr[4], binary.BigEndian.Uint32(hdr[5:])&0x7fffffff
		payload := make([]byte, n)
		if _, err := io.ReadFull(r, payload); err != nil {
			t.Fatal(err)
		}
		switch {
		case typ == 0x4 && flags&0x1 == 0: // the server's SETTINGS: acknowledge
			if _, err := c.Write(h2Frame(nil, 0x4, 0x1, 0, nil)); err != nil {
				t.Fatal(err)
			}
		case typ == 0x3 || typ == 0x7: // RST_STREAM, GOAWAY
			t.Fatalf("server sent frame type %d: % x", typ, payload)
		case typ == 0x0 && stream == 1: // DATA
			body.Write(payload)
			if flags&0x1 != 0 {
				return body.String()
			}
		case typ == 0x1 && stream == 1 && flags&0x1 != 0: // HEADERS ending the stream: no body
			return body.String()
		}
	}
}

func h2Frame(dst []byte, typ, flags byte, stream uint32, payload []byte) []byte {
	n := len(payload)
	dst = append(dst, byte(n>>16), byte(n>>8), byte(n), typ, flags)
	dst = binary.BigEndian.AppendUint32(dst, stream)
	return append(dst, payload...)
}

// hpackLiteral appends a literal header field without indexing: name by
// static table index, or new when index is 0.
func hpackLiteral(dst []byte, index int, name, value string) []byte {
	dst = hpackInt(dst, 0x00, 4, index)
	if index == 0 {
		dst = hpackInt(dst, 0x00, 7, len(name))
		dst = append(dst, name...)
	}
	dst = hpackInt(dst, 0x00, 7, len(value))
	return append(dst, value...)
}

// hpackInt appends an HPACK integer with an n-bit prefix (RFC 7541 5.1).
func hpackInt(dst []byte, first byte, n uint, v int) []byte {
	limit := 1<<n - 1
	if v < limit {
		return append(dst, first|byte(v))
	}
	dst = append(dst, first|byte(limit))
	for v -= limit; v >= 128; v >>= 7 {
		dst = append(dst, byte(v&0x7f|0x80))
	}
	return append(dst, byte(v))
}
