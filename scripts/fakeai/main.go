// Command fakeai is the local AI provider of `make dev`: a fake speaking
// OpenAI's wire protocol (chat, completions, embeddings, models, SSE
// streams with usage) on loopback, so the AI bridge can be tried end to end
// without a provider account or a network. The demo model `dev-fake` that
// `tenantctl dev-seed` adds points at it.
//
//	go run ./scripts/fakeai [-addr 127.0.0.1:8090] [-key dev-fake-key] [-chunk-delay 30ms]
//
// A real provider is added the same way through the admin API
// (POST /api/admin/ai/models) and enabled for a tenant; this one never
// leaves the machine.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/unitenant/unitenant/shared/aiprovider/fakeprovider"
)

// DefaultKey is the API key the demo model is sealed with.
const DefaultKey = "dev-fake-key"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr, nil)
	if errors.Is(err, flag.ErrHelp) {
		return
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "fakeai:", err)
		os.Exit(1)
	}
}

// run serves until ctx ends; ready, when given, receives the API's base URL.
func run(ctx context.Context, args []string, stdout, stderr io.Writer, ready chan<- string) error {
	fs := flag.NewFlagSet("fakeai", flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("addr", "127.0.0.1:8090", "address to listen on (keep it on loopback)")
	key := fs.String("key", DefaultKey, "the only API key accepted")
	chunkDelay := fs.Duration("chunk-delay", 30*time.Millisecond, "pause before each streamed chunk, so a stream is seen as one")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	if *key == "" {
		return errors.New("-key must not be empty")
	}
	if *chunkDelay < 0 {
		return errors.New("-chunk-delay must not be negative")
	}
	l, err := net.Listen("tcp", *addr)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	s := fakeprovider.ListenOpenAI(l, fakeprovider.Options{APIKey: *key, NoRecord: true,
		Default: fakeprovider.Model{Reply: "Hello from the local fake provider: the AI bridge works end to end.", ChunkDelay: *chunkDelay}})
	defer s.Stop()
	fmt.Fprintf(stdout, "fakeai: OpenAI-compatible fake provider on %s (key %s)\n", s.BaseURL(), *key)
	if ready != nil {
		ready <- s.BaseURL()
	}
	<-ctx.Done()
	return nil
}
