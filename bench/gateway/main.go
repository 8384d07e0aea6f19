// Command gateway measures Sluice's gateway against the other reverse
// proxies a platform team would put at the edge.
//
// In one run it starts an HTTP upstream (a Go server answering a short
// body) and, in front of it, Sluice's gateway (`sluice server` plus
// `sluice gateway`, configured by a Gateway and an HTTPRoute over xDS),
// nginx and Caddy, each configured as a plain reverse proxy with keep-alive
// to the upstream. wrk then loads the upstream directly (the limit) and each
// proxy at every concurrency level, in rounds that alternate the order so
// that the shared machine's noise hits every target. It reports requests/s
// and p50/p99 latency with ratios against nginx and Caddy.
//
// wrk and nginx are Debian packages and Caddy a Go program: the command
// installs what is missing (apt-get, go install) before it starts, and
// says what it did.
//
// Usage:
//
//	go run ./bench/gateway                       # full run, about three minutes
//	go run ./bench/gateway -markdown             # the tables for bench/README.md
//	go run ./bench/gateway -duration 5s -connections 64
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"time"

	"github.com/sluice/sluice/bench/internal/harness"
)

// config is what a run measures.
type config struct {
	// Duration is how long wrk loads one target, per round.
	Duration time.Duration
	// Connections lists wrk's numbers of open connections.
	Connections []int
	// Threads is wrk's number of threads.
	Threads int
	// Rounds is how often every measurement repeats, alternating the order
	// of the targets.
	Rounds int
	// Log receives the servers' warnings; Progress a line per measurement.
	Log      *slog.Logger
	Progress io.Writer
}

func defaultConfig() config {
	return config{
		Duration:    10 * time.Second,
		Connections: []int{64, 256},
		Threads:     2,
		Rounds:      2,
	}
}

func main() {
	if err := run(os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "bench/gateway:", err)
		os.Exit(1)
	}
}

func run(args []string, out io.Writer) error {
	cfg := defaultConfig()
	fs := flag.NewFlagSet("gateway", flag.ContinueOnError)
	duration := fs.Duration("duration", cfg.Duration, "how long wrk loads one target, per round")
	conns := fs.String("connections", harness.JoinInts(cfg.Connections), "wrk's numbers of connections, comma-separated")
	threads := fs.Int("threads", cfg.Threads, "wrk's threads")
	rounds := fs.Int("rounds", cfg.Rounds, "how often every measurement repeats")
	markdown := fs.Bool("markdown", false, "print Markdown tables (for bench/README.md)")
	cpuprofile := fs.String("cpuprofile", "", "write a CPU profile of this process to `file`")
	verbose := fs.Bool("v", false, "show the servers' warnings")
	if _, err := harness.ParseFlags(fs, args); err != nil {
		return err
	}
	var err error
	if cfg.Connections, err = harness.ParseInts("connections", *conns); err != nil {
		return err
	}
	cfg.Duration, cfg.Threads, cfg.Rounds = *duration, *threads, *rounds
	if err := cfg.validate(); err != nil {
		return err
	}
	cfg.Log = harness.Logger(*verbose)
	cfg.Progress = os.Stderr
	return harness.Run(*cpuprofile, *markdown, out, func(ctx context.Context) (*results, error) {
		return measure(ctx, cfg)
	})
}

// validate checks a config before anything starts.
func (cfg config) validate() error {
	switch {
	case cfg.Duration < time.Second:
		return errors.New("-duration must be at least 1s (wrk counts in seconds)")
	case cfg.Threads < 1:
		return errors.New("-threads must be positive")
	case cfg.Rounds < 1:
		return errors.New("-rounds must be positive")
	}
	for _, c := range cfg.Connections {
		if c < cfg.Threads {
			return fmt.Errorf("-connections %d: wrk needs at least one connection per thread (%d)", c, cfg.Threads)
		}
	}
	return nil
}
