// Command fakefn is a stand-in function binary for the gateway's tests. It serves every
// path on 127.0.0.1:$PORT by echoing the request (with the Host it saw and its pid),
// streams server-sent events on /api/stream, and answers POST /invoke as a job.
//
// Environment: FAKEFN_EXIT=<code> exits at once; FAKEFN_NO_LISTEN=1 never listens;
// FAKEFN_INVOKE_DELAY=<duration> makes each /invoke take that long; FAKEFN_IGNORE_TERM=1
// ignores SIGTERM.
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"sync/atomic"
	"syscall"
	"time"
)

func main() {
	name := os.Getenv("UNITENANT_FUNCTION")
	if code := os.Getenv("FAKEFN_EXIT"); code != "" {
		n, _ := strconv.Atoi(code)
		fmt.Fprintln(os.Stderr, "fakefn exiting as asked")
		os.Exit(n)
	}
	if os.Getenv("FAKEFN_NO_LISTEN") != "" {
		time.Sleep(time.Hour)
	}
	delay, _ := time.ParseDuration(os.Getenv("FAKEFN_INVOKE_DELAY"))

	var runs atomic.Int64
	mux := http.NewServeMux()
	mux.HandleFunc("POST /invoke", func(w http.ResponseWriter, r *http.Request) {
		var event map[string]any
		if err := json.NewDecoder(r.Body).Decode(&event); err != nil {
			writeJSON(w, http.StatusBadRequest, map[string]any{"success": false,
				"error": map[string]string{"code": "bad_event", "message": err.Error()}, "requestId": "fake"})
			return
		}
		n := runs.Add(1)
		fmt.Printf("fakefn invoke %v\n", event["triggerName"])
		time.Sleep(delay)
		if event["fail"] == true {
			writeJSON(w, http.StatusInternalServerError, map[string]any{"success": false,
				"error": map[string]string{"code": "internal", "message": "asked to fail"}, "requestId": "fake"})
			return
		}
		writeJSON(w, http.StatusOK, map[string]any{"success": true,
			"data": map[string]any{"function": name, "runs": n, "event": event}})
	})
	mux.HandleFunc("GET /api/stream", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		fmt.Fprint(w, "data: one\n\n")
		http.NewResponseController(w).Flush()
		select {
		case <-r.Context().Done():
			return
		case <-time.After(3 * time.Second):
		}
		fmt.Fprint(w, "data: two\n\n")
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		writeJSON(w, http.StatusOK, map[string]any{
			"function":        name,
			"pid":             os.Getpid(),
			"method":          r.Method,
			"path":            r.URL.Path,
			"query":           r.URL.RawQuery,
			"host":            r.Host,
			"body":            string(body),
			"xForwardedFor":   r.Header.Get("X-Forwarded-For"),
			"xForwardedHost":  r.Header.Get("X-Forwarded-Host"),
			"xForwardedProto": r.Header.Get("X-Forwarded-Proto"),
		})
	})

	ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", os.Getenv("PORT")))
	if err != nil {
		fmt.Fprintln(os.Stderr, "fakefn:", err)
		os.Exit(1)
	}
	srv := &http.Server{Handler: mux}
	stopSignals := []os.Signal{syscall.SIGTERM, os.Interrupt}
	if os.Getenv("FAKEFN_IGNORE_TERM") != "" {
		signal.Ignore(syscall.SIGTERM)
		stopSignals = stopSignals[1:]
	}
	ctx, stop := signal.NotifyContext(context.Background(), stopSignals...)
	defer stop()
	go func() {
		<-ctx.Done()
		fmt.Println("fakefn stopping")
		sctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()
	fmt.Printf("fakefn listening pid=%d\n", os.Getpid())
	if err := srv.Serve(ln); err != http.ErrServerClosed {
		fmt.Fprintln(os.Stderr, "fakefn:", err)
		os.Exit(1)
	}
	<-ctx.Done()
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
