package e2e_test

import (
	"io"
	"net"
	"sync"
	"testing"
)

// relay is a TCP proxy to MySQL that the test can cut and restore, to show
// what the functions do while their database is down, without stopping the
// server other tests use. While cut, it resets every connection, open or new,
// as a stopped server would.
type relay struct {
	ln       net.Listener
	upstream string

	mu    sync.Mutex
	down  bool
	conns map[net.Conn]bool
}

func newRelay(t *testing.T, upstream string) *relay {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r := &relay{ln: ln, upstream: upstream, conns: map[net.Conn]bool{}}
	go r.serve()
	t.Cleanup(func() { ln.Close(); r.Cut() })
	return r
}

// Addr is where clients connect instead of MySQL.
func (r *relay) Addr() string { return r.ln.Addr().String() }

func (r *relay) serve() {
	for {
		c, err := r.ln.Accept()
		if err != nil {
			return
		}
		r.mu.Lock()
		if r.down {
			r.mu.Unlock()
			c.Close()
			continue
		}
		up, err := net.Dial("tcp", r.upstream)
		if err != nil {
			r.mu.Unlock()
			c.Close()
			continue
		}
		r.conns[c], r.conns[up] = true, true
		r.mu.Unlock()
		go r.pipe(c, up)
		go r.pipe(up, c)
	}
}

func (r *relay) pipe(dst, src net.Conn) {
	_, _ = io.Copy(dst, src)
	dst.Close()
	src.Close()
	r.mu.Lock()
	delete(r.conns, dst)
	delete(r.conns, src)
	r.mu.Unlock()
}

// Cut takes the database "down": open connections are closed, new ones refused.
func (r *relay) Cut() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.down = true
	for c := range r.conns {
		c.Close()
	}
}

// Restore brings the database back.
func (r *relay) Restore() {
	r.mu.Lock()
	r.down = false
	r.mu.Unlock()
}
