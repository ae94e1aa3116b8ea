package main

import (
	"bytes"
	"fmt"
	"io"
	"sync"
	"time"
)

// logger serializes the gateway's output: request and job lines on stdout, its own
// messages on stderr, and the children's lines with a "[name] " prefix, never interleaved
// mid-line.
type logger struct {
	mu     sync.Mutex
	stdout io.Writer
	stderr io.Writer
}

// line writes one request or job line to stdout.
func (l *logger) line(format string, args ...any) {
	l.write(l.stdout, "", fmt.Sprintf(format, args...)+"\n")
}

// infof writes one gateway message to stderr.
func (l *logger) infof(format string, args ...any) {
	l.write(l.stderr, "[gateway] ", fmt.Sprintf(format, args...)+"\n")
}

func (l *logger) write(dst io.Writer, prefix, s string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	_, _ = io.WriteString(dst, prefix+s)
}

// prefixed returns a writer that copies complete lines to dst, each prefixed with
// "[name] ". Call flush after the last write to emit a trailing partial line.
func (l *logger) prefixed(name string, dst io.Writer) *lineWriter {
	return &lineWriter{log: l, dst: dst, prefix: "[" + name + "] "}
}

// maxLine bounds how much of an unterminated line lineWriter holds before writing it.
const maxLine = 64 << 10

// lineWriter is an io.Writer that prefixes every line; see logger.prefixed.
type lineWriter struct {
	log    *logger
	dst    io.Writer
	prefix string

	mu  sync.Mutex
	buf []byte
}

// Write implements io.Writer.
func (w *lineWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf = append(w.buf, p...)
	for {
		i := bytes.IndexByte(w.buf, '\n')
		if i < 0 {
			break
		}
		w.log.write(w.dst, w.prefix, string(w.buf[:i+1]))
		w.buf = w.buf[i+1:]
	}
	if len(w.buf) > maxLine {
		w.log.write(w.dst, w.prefix, string(w.buf)+"\n")
		w.buf = nil
	}
	return len(p), nil
}

// flush writes a pending partial line.
func (w *lineWriter) flush() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.buf) > 0 {
		w.log.write(w.dst, w.prefix, string(w.buf)+"\n")
		w.buf = nil
	}
}

// formatDuration renders d the way the request lines show it: "3.1ms", "1.25s".
func formatDuration(d time.Duration) string {
	if d < time.Second {
		return fmt.Sprintf("%.1fms", float64(d)/float64(time.Millisecond))
	}
	return fmt.Sprintf("%.2fs", d.Seconds())
}
