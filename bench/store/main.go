// Command store measures what Sluice's store and REST API add to raw etcd.
//
// In one run, against one embedded etcd (fsync on, as in production) in one
// process, it measures
//
//   - write throughput, latency and CPU per operation of creates and updates
//     of a Service at several concurrency levels, through the raw etcd client
//     (a Put; the Txn with the compare the store uses, the fair baseline; and
//     for updates a Get before that Txn, as the store does), through the
//     store in-process, and through the REST API over loopback HTTP;
//   - watch fan-out: the time from a write's acknowledgement until every one
//     of N concurrent watchers (raw etcd watches, store watches, REST watch
//     streams) has seen the change.
//
// The baseline and the Sluice phases alternate (each round reverses their
// order) so that machine noise hits both. The program only benchmarks; the
// results and how to read them are in bench/README.md.
//
// Usage:
//
//	go run ./bench/store                    # full run, about six minutes
//	go run ./bench/store -short             # seconds, tiny parameters
//	go run ./bench/store -markdown          # the tables for bench/README.md
//	go run ./bench/store -phases watch -watchers 1000 -cpuprofile cpu.out
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/sluice/sluice/bench/internal/harness"
)

// config is what a run measures.
type config struct {
	// Dir is where the embedded etcd keeps its data; empty uses a temporary
	// directory, removed at the end.
	Dir string
	// Duration is how long each write measurement runs, per round.
	Duration time.Duration
	// Concurrency lists the numbers of concurrent writers.
	Concurrency []int
	// Watchers lists the numbers of concurrent watchers.
	Watchers []int
	// Changes is how many changes each fan-out measurement makes in all
	// rounds together (one unmeasured warm-up change per round comes on top).
	Changes int
	// Rounds is how often every measurement repeats, alternating the order
	// of baseline and Sluice.
	Rounds int
	// Writes and Watch select the phases.
	Writes, Watch bool
	// Paths, when not empty, selects the write and watch paths by short
	// name (put, txn, gettxn, sgettxn, store, api, client; etcd, store, api).
	Paths []string
	// Log receives the server's and etcd's warnings; Progress a line per
	// measurement (nil: none).
	Log      *slog.Logger
	Progress io.Writer
}

func defaultConfig() config {
	return config{
		Duration:    2 * time.Second,
		Concurrency: []int{1, 16, 64},
		Watchers:    []int{100, 1000},
		Changes:     20,
		Rounds:      4,
		Writes:      true,
		Watch:       true,
	}
}

// shortConfig is -short: every phase, tiny parameters.
func shortConfig() config {
	cfg := defaultConfig()
	cfg.Duration = 300 * time.Millisecond
	cfg.Concurrency = []int{1, 4}
	cfg.Watchers = []int{10, 50}
	cfg.Changes = 4
	cfg.Rounds = 2
	return cfg
}

func main() {
	if err := mainErr(); err != nil {
		fmt.Fprintln(os.Stderr, "bench/store:", err)
		os.Exit(1)
	}
}

func mainErr() error {
	def := defaultConfig()
	short := flag.Bool("short", false, "tiny parameters: check that every phase runs, in seconds")
	dir := flag.String("dir", "", "data directory of the embedded etcd (default: a temporary directory, removed at the end)")
	duration := flag.Duration("duration", def.Duration, "how long each write measurement runs, per round")
	concurrency := flag.String("concurrency", harness.JoinInts(def.Concurrency), "comma-separated numbers of concurrent writers")
	watchers := flag.String("watchers", harness.JoinInts(def.Watchers), "comma-separated numbers of concurrent watchers")
	changes := flag.Int("changes", def.Changes, "changes per fan-out measurement, all rounds together")
	rounds := flag.Int("rounds", def.Rounds, "repetitions of every measurement, alternating baseline and Sluice")
	phases := flag.String("phases", "writes,watch", "which phases to run: writes, watch or both")
	paths := flag.String("paths", "", "only these paths, by short name: writes put,txn,gettxn,sgettxn,store,api,client; watch etcd,store,api (default: all)")
	markdown := flag.Bool("markdown", false, "print the result tables as Markdown, for bench/README.md")
	cpuprofile := flag.String("cpuprofile", "", "write a CPU profile of the whole run to this file")
	verbose := flag.Bool("v", false, "log the server's and etcd's warnings")
	set, err := harness.ParseFlags(flag.CommandLine, os.Args[1:])
	if err != nil {
		return err
	}

	cfg := def
	if *short {
		cfg = shortConfig()
	}
	cfg.Dir = *dir
	if *paths != "" {
		for _, p := range strings.Split(*paths, ",") {
			cfg.Paths = append(cfg.Paths, strings.TrimSpace(p))
		}
	}
	if set["duration"] {
		cfg.Duration = *duration
	}
	if set["changes"] {
		cfg.Changes = *changes
	}
	if set["rounds"] {
		cfg.Rounds = *rounds
	}
	if set["concurrency"] {
		if cfg.Concurrency, err = harness.ParseInts("concurrency", *concurrency); err != nil {
			return err
		}
	}
	if set["watchers"] {
		if cfg.Watchers, err = harness.ParseInts("watchers", *watchers); err != nil {
			return err
		}
	}
	cfg.Writes, cfg.Watch = false, false
	for _, p := range strings.Split(*phases, ",") {
		switch strings.TrimSpace(p) {
		case "writes":
			cfg.Writes = true
		case "watch":
			cfg.Watch = true
		default:
			return fmt.Errorf("-phases: unknown phase %q (want writes, watch)", p)
		}
	}
	cfg.Log = harness.Logger(*verbose)
	cfg.Progress = os.Stderr
	return harness.Run(*cpuprofile, *markdown, os.Stdout, func(ctx context.Context) (*results, error) {
		return run(ctx, cfg)
	})
}

// validate checks a config before anything starts.
func (cfg config) validate() error {
	switch {
	case cfg.Duration <= 0:
		return errors.New("-duration must be positive")
	case cfg.Rounds < 1:
		return errors.New("-rounds must be at least 1")
	case cfg.Watch && cfg.Changes < cfg.Rounds:
		return fmt.Errorf("-changes %d: want at least one change per round (-rounds %d)", cfg.Changes, cfg.Rounds)
	case !cfg.Writes && !cfg.Watch:
		return errors.New("no phase selected")
	}
	return nil
}

// wants says whether the path with this short name is selected.
func (cfg config) wants(short string) bool {
	return len(cfg.Paths) == 0 || slices.Contains(cfg.Paths, short)
}
