package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os/exec"
	"strconv"
	"sync"
	"time"
)

// Restart backoff: a child that keeps crashing is restarted ever more slowly; one that
// ran for a while starts over from the shortest wait.
const (
	minBackoff   = 250 * time.Millisecond
	maxBackoff   = 10 * time.Second
	stableRunFor = 10 * time.Second
)

// child supervises one function binary: starts it on its port, waits for the port, and
// restarts it when it exits until stop is called.
type child struct {
	name         string
	bin          string
	port         int
	env          []string
	log          *logger
	readyTimeout time.Duration

	mu       sync.Mutex
	cur      *proc
	stopping bool
	quit     chan struct{} // closed by stop
	done     chan struct{} // closed when supervise returns
}

// proc is one run of a child's binary.
type proc struct {
	cmd     *exec.Cmd
	started time.Time
	exited  chan struct{} // closed when the process has exited
	err     error         // cmd.Wait's result, set before exited is closed
	ready   chan struct{} // closed when the port accepts connections
}

func (p *proc) isReady() bool {
	select {
	case <-p.ready:
		return true
	default:
		return false
	}
}

func newChild(name, bin string, port int, env []string, log *logger, readyTimeout time.Duration) *child {
	return &child{
		name: name, bin: bin, port: port, env: env, log: log, readyTimeout: readyTimeout,
		quit: make(chan struct{}), done: make(chan struct{}),
	}
}

func (c *child) addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(c.port)) }

// start runs the binary and returns once its port accepts connections; after that, the
// child is restarted whenever it exits. It fails if the port is taken or the binary does
// not listen within the ready timeout.
func (c *child) start() error {
	if err := portFree(c.port); err != nil {
		return fmt.Errorf("function %s: port %d: %w (a function left over from an earlier run?)", c.name, c.port, err)
	}
	p, err := c.launch()
	if err != nil {
		close(c.done)
		return err
	}
	if err := c.awaitPort(p); err != nil {
		c.mu.Lock()
		c.stopping = true
		c.mu.Unlock()
		_ = kill(p.cmd.Process)
		<-p.exited
		close(c.done)
		return err
	}
	go c.supervise(p)
	return nil
}

// launch starts one process of the binary.
func (c *child) launch() (*proc, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.stopping {
		return nil, errors.New("stopping")
	}
	cmd := exec.Command(c.bin)
	cmd.Env = c.env
	stdout, stderr := c.log.prefixed(c.name, c.log.stdout), c.log.prefixed(c.name, c.log.stderr)
	cmd.Stdout, cmd.Stderr = stdout, stderr
	// Do not wait forever for output pipes held open by the child's own children.
	cmd.WaitDelay = time.Second
	setProcAttrs(cmd)
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("function %s: start %s: %w", c.name, c.bin, err)
	}
	p := &proc{cmd: cmd, started: time.Now(), exited: make(chan struct{}), ready: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		stdout.flush()
		stderr.flush()
		close(p.exited)
	}()
	c.cur = p
	return p, nil
}

// awaitPort waits until p's port accepts connections.
func (c *child) awaitPort(p *proc) error {
	deadline := time.NewTimer(c.readyTimeout)
	defer deadline.Stop()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		conn, err := net.DialTimeout("tcp", c.addr(), 200*time.Millisecond)
		if err == nil {
			_ = conn.Close()
			close(p.ready)
			return nil
		}
		select {
		case <-p.exited:
			return fmt.Errorf("function %s: exited before listening on port %d: %v", c.name, c.port, p.err)
		case <-deadline.C:
			return fmt.Errorf("function %s: not listening on port %d after %s (does it serve on $PORT?)", c.name, c.port, c.readyTimeout)
		case <-c.quit:
			return errors.New("stopping")
		case <-tick.C:
		}
	}
}

// supervise restarts the child each time it exits, with backoff, until stop.
func (c *child) supervise(p *proc) {
	defer close(c.done)
	backoff := minBackoff
	for {
		<-p.exited
		c.mu.Lock()
		stopping := c.stopping
		c.mu.Unlock()
		if stopping {
			return
		}
		if time.Since(p.started) >= stableRunFor {
			backoff = minBackoff
		}
		c.log.infof("%s exited (%v); restarting in %s", c.name, exitReason(p.err), backoff)
		select {
		case <-c.quit:
			return
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, maxBackoff)

		next, err := c.launch()
		if err != nil {
			if c.isStopping() {
				return
			}
			c.log.infof("%v", err)
			// Nothing runs: wait as if it had exited at once.
			next = &proc{started: time.Now(), exited: make(chan struct{}), ready: make(chan struct{}), err: err}
			close(next.exited)
			p = next
			continue
		}
		p = next
		if err := c.awaitPort(p); err != nil {
			if c.isStopping() {
				continue // the loop sees the exit and returns
			}
			c.log.infof("%v; killing it", err)
			_ = kill(p.cmd.Process)
			continue
		}
		c.log.infof("%s restarted (pid %d)", c.name, p.cmd.Process.Pid)
	}
}

func (c *child) isStopping() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.stopping
}

func exitReason(err error) string {
	if err == nil {
		return "exit status 0"
	}
	return err.Error()
}

// awaitReady waits until the child's current process accepts connections (it may be
// restarting), for at most timeout.
func (c *child) awaitReady(ctx context.Context, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		c.mu.Lock()
		p, stopping := c.cur, c.stopping
		c.mu.Unlock()
		if stopping {
			return fmt.Errorf("function %s is stopping", c.name)
		}
		if p != nil && p.isReady() {
			select {
			case <-p.exited:
			default:
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("function %s not ready after %s", c.name, timeout)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// stop sends SIGTERM to the child, waits up to timeout for it to exit, then kills it.
func (c *child) stop(timeout time.Duration) {
	c.mu.Lock()
	if c.stopping {
		c.mu.Unlock()
		<-c.done
		return
	}
	c.stopping = true
	close(c.quit)
	p := c.cur
	c.mu.Unlock()
	if p == nil {
		<-c.done
		return
	}
	select {
	case <-p.exited:
	default:
		_ = terminate(p.cmd.Process)
	}
	select {
	case <-p.exited:
	case <-time.After(timeout):
		c.log.infof("%s did not stop within %s; killing it", c.name, timeout)
		_ = kill(p.cmd.Process)
		<-p.exited
	}
	<-c.done
}

// portFree reports an error if something already listens on the port.
func portFree(port int) error {
	ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
	if err != nil {
		return err
	}
	return ln.Close()
}

// freePort asks the kernel for an unused port.
func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free port: %w", err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}
