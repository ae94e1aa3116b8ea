// Command gateway is the local API gateway: it runs every function of template.yaml that
// has an HttpApi route or a schedule as a local process, routes HTTP requests to them by the template's HttpApi routes as API
// Gateway would, and fires their schedules.
//
//	go run ./scripts/gateway [-template template.yaml] [-bin .dev/bin] [-addr :8080]
//	    [-base-port 9100] [-schedules=true] [-only health,login]
//	go run ./scripts/gateway -list    # the template's functions as JSON
//
// Each function binary (<bin>/<kebab-name>) is started with PORT=<port>, UNITENANT_FUNCTION
// and the gateway's own environment, and must serve HTTP on 127.0.0.1:$PORT; a job must
// answer POST /invoke. POST /_jobs/<name> runs a job at once. The gateway is a
// development tool: it never runs in production, where API Gateway, EventBridge or
// Function Compute triggers do its work.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/unitenant/unitenant/scripts/samtemplate"
)

// config is the gateway's command line.
type config struct {
	template     string
	bin          string
	addr         string
	basePort     int
	schedules    bool
	only         []string
	timeScale    float64
	readyTimeout time.Duration
	stopTimeout  time.Duration
	environ      []string
	list         bool
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	go func() {
		<-ctx.Done()
		stop() // a second Ctrl-C kills the gateway at once
	}()
	if err := run(ctx, os.Args[1:], os.Environ(), os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "gateway:", err)
		os.Exit(1)
	}
}

// run parses args, starts the gateway and serves until ctx ends.
func run(ctx context.Context, args, environ []string, stdout, stderr io.Writer) error {
	cfg, err := parseConfig(args, environ, stderr)
	if err != nil {
		return err
	}
	if cfg.list {
		return list(cfg.template, stdout)
	}
	g, err := startGateway(cfg, stdout, stderr)
	if err != nil {
		return err
	}
	select {
	case <-ctx.Done():
		g.log.infof("shutting down")
		return g.shutdown()
	case err := <-g.serveErr:
		_ = g.shutdown()
		return fmt.Errorf("serve: %w", err)
	}
}

// list prints the functions of the template at path as JSON, after checking that the
// gateway can serve its routes and run its schedules.
func list(path string, w io.Writer) error {
	tpl, err := samtemplate.Load(path)
	if err != nil {
		return fmt.Errorf("load template: %w", err)
	}
	if _, err := newRouter(tpl.Functions); err != nil {
		return fmt.Errorf("routes: %w", err)
	}
	for _, f := range tpl.Functions {
		for _, expr := range f.Schedules {
			if _, err := parseSchedule(expr, time.Now()); err != nil {
				return fmt.Errorf("function %s: %w", f.Name, err)
			}
		}
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if err := enc.Encode(tpl); err != nil {
		return fmt.Errorf("print template: %w", err)
	}
	return nil
}

// parseConfig reads the command line; -addr defaults to :$PORT when PORT is set.
func parseConfig(args, environ []string, output io.Writer) (config, error) {
	cfg := config{environ: environ, readyTimeout: 10 * time.Second, stopTimeout: 5 * time.Second}
	defaultAddr := ":8080"
	for _, kv := range environ {
		if v, ok := strings.CutPrefix(kv, "PORT="); ok && v != "" {
			defaultAddr = ":" + v
		}
	}
	fs := flag.NewFlagSet("gateway", flag.ContinueOnError)
	fs.SetOutput(output)
	fs.StringVar(&cfg.template, "template", "template.yaml", "SAM `template` that lists the functions, routes and schedules")
	fs.StringVar(&cfg.bin, "bin", ".dev/bin", "`directory` of function binaries, named by kebab-case function name")
	fs.StringVar(&cfg.addr, "addr", defaultAddr, "`address` to serve on (default :$PORT if set)")
	fs.IntVar(&cfg.basePort, "base-port", 9100, "first function `port`; functions get consecutive ports (0: any free ports)")
	fs.BoolVar(&cfg.schedules, "schedules", true, "fire the template's schedules (jobs still run on POST /_jobs/<name>)")
	only := fs.String("only", "", "comma-separated `names` of the functions to run (default all)")
	fs.Float64Var(&cfg.timeScale, "time-scale", 1, "schedule clock speed-up `factor` (for tests: 600 fires rate(1 minute) every 100ms)")
	fs.BoolVar(&cfg.list, "list", false, "print the template's functions, routes and schedules as JSON, and exit")
	fs.DurationVar(&cfg.readyTimeout, "ready-timeout", cfg.readyTimeout, "how long a function may take to listen on its port")
	if err := fs.Parse(args); err != nil {
		return cfg, err
	}
	if fs.NArg() > 0 {
		return cfg, fmt.Errorf("unexpected arguments: %s", strings.Join(fs.Args(), " "))
	}
	for _, name := range strings.Split(*only, ",") {
		if name = strings.TrimSpace(name); name != "" {
			cfg.only = append(cfg.only, name)
		}
	}
	if cfg.basePort < 0 || cfg.basePort > 65535 {
		return cfg, errors.New("-base-port must be between 0 and 65535")
	}
	if cfg.timeScale <= 0 {
		return cfg, errors.New("-time-scale must be positive")
	}
	return cfg, nil
}
