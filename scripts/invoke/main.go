// Command invoke does what `sam local invoke` does, without Docker: it runs a
// function binary under a local Lambda Runtime API, hands it one event and
// prints the Lambda response as JSON.
//
//	go run ./scripts/invoke -fn health -event events/health.json
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/unitenant/unitenant/scripts/runtimeapi"
)

func main() {
	fn := flag.String("fn", "", "function name (a directory under functions/)")
	eventPath := flag.String("event", "", "event file, e.g. events/health.json (default events/<fn>.json)")
	bin := flag.String("bin", ".dev/bin", "directory of built function binaries")
	timeout := flag.Duration("timeout", 30*time.Second, "the function's timeout")
	flag.Parse()
	if err := run(*fn, *eventPath, *bin, *timeout); err != nil {
		fmt.Fprintln(os.Stderr, "invoke:", err)
		os.Exit(1)
	}
}

func run(fn, eventPath, bin string, timeout time.Duration) error {
	if fn == "" {
		return fmt.Errorf("-fn is required (one of the directories under functions/)")
	}
	if eventPath == "" {
		eventPath = filepath.Join("events", fn+".json")
	}
	event, err := os.ReadFile(eventPath)
	if err != nil {
		return fmt.Errorf("read event: %w", err)
	}
	binary := filepath.Join(bin, fn)
	if _, err := os.Stat(binary); err != nil {
		return fmt.Errorf("function binary %s: %w (build it with make build-local)", binary, err)
	}
	res, err := runtimeapi.Invoke(context.Background(), binary, event, runtimeapi.Options{
		Env: os.Environ(), Timeout: timeout, Stdout: os.Stderr,
	})
	if err != nil {
		return err
	}
	var out any = json.RawMessage(res.Payload)
	switch {
	case res.Err != nil:
		out = res.Err
	case res.Streamed:
		if out, err = runtimeapi.DecodeStreaming(res.Payload); err != nil {
			return err
		}
	}
	b, err := json.Marshal(out)
	if err != nil {
		return err
	}
	var pretty bytes.Buffer
	if json.Indent(&pretty, b, "", "  ") != nil {
		pretty.Reset()
		pretty.Write(b)
	}
	fmt.Println(pretty.String())
	fmt.Fprintf(os.Stderr, "invoke: %s answered in %s\n", fn, res.Duration.Round(time.Millisecond))
	if res.Err != nil {
		os.Exit(1)
	}
	return nil
}
