// Command xds measures how Sluice's xDS server converges thousands of
// connected ADS clients after a change, and what each connected client
// costs it, against a plain go-control-plane SnapshotCache server built
// here with the same resources.
//
// One run starts an embedded etcd and writes one gRPC Service with its
// Endpoints through Sluice's REST API. Then, for every number of clients
// (1,000, 5,000, 10,000 by default), protocol (State of the World, Delta)
// and round, it measures each server in turn, alternating their order
// between rounds:
//
//   - the server starts in this process (Sluice: server.New over the run's
//     etcd, as `sluice server` runs; the baseline: go-control-plane's
//     server/v3 over cache.NewSnapshotCache);
//   - a child process (this same program) opens N simulated proxyless gRPC
//     clients, each its own gRPC connection and ADS stream, which subscribe
//     to the Listener greeter.default and then to what it references, and
//     ACK every response;
//   - connect: the time until every client has ACKed all four resources,
//     and this process's CPU time meanwhile;
//   - memory: this process's heap, stacks and resident set after a GC,
//     before the clients and once they are idle, divided by N;
//   - changes: one Endpoint's weight changes (Sluice: a PUT through the
//     REST API; the baseline: SetSnapshot for every node), and the time from
//     the change until each client has ACKed the new ClusterLoadAssignment,
//     with this process's CPU time until the last one.
//
// The program only benchmarks; the results and how to read them are in
// bench/README.md.
//
// Usage:
//
//	go run ./bench/xds                      # full run, about 10 minutes
//	go run ./bench/xds -short               # seconds, tiny parameters
//	go run ./bench/xds -markdown            # the tables for bench/README.md
//	go run ./bench/xds -clients 10000 -protocols sotw -targets sluice -cpuprofile cpu.out -memprofile heap
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
	// Clients lists the numbers of connected clients.
	Clients []int
	// Protocols are sotw and/or delta.
	Protocols []string
	// Targets are the servers, in the order of even rounds: snapshotcache
	// and/or sluice.
	Targets []string
	// Changes is how many measured changes each measurement makes (one
	// unmeasured warm-up change comes first).
	Changes int
	// Rounds is how often every measurement repeats, alternating the order
	// of the targets.
	Rounds int
	// Endpoints is how many Endpoints the Service has.
	Endpoints int
	// Debounce is Sluice's XDSDebounceWindow; 0 keeps the server's default
	// (100 ms).
	Debounce time.Duration
	// BaselineGRPCDefaults gives the baseline grpc-go's default server
	// options instead of the ones Sluice uses.
	BaselineGRPCDefaults bool
	// ConnectConcurrency bounds the clients connecting at once.
	ConnectConcurrency int
	// Settle is how long the connected clients idle before memory is read;
	// Gap separates changes.
	Settle, Gap time.Duration
	// MemProfile, when set, is the prefix of heap profiles written at the
	// idle point of every measurement.
	MemProfile string
	// ChangesProfile, when set, is the prefix of CPU profiles of the
	// measured changes of every measurement (from the first measured change
	// to the last one's convergence).
	ChangesProfile string
	// Log receives the servers' warnings; Progress a line per step (nil:
	// none).
	Log      *slog.Logger
	Progress io.Writer
}

func defaultConfig() config {
	return config{
		Clients:            []int{1000, 5000, 10000},
		Protocols:          []string{sotw, delta},
		Targets:            []string{targetSnapshotCache, targetSluice},
		Changes:            5,
		Rounds:             4,
		Endpoints:          10,
		ConnectConcurrency: 200,
		Settle:             time.Second,
		Gap:                300 * time.Millisecond,
	}
}

// shortConfig is -short: everything, with tiny parameters.
func shortConfig() config {
	cfg := defaultConfig()
	cfg.Clients = []int{10, 50}
	cfg.Changes = 2
	cfg.Rounds = 2
	cfg.Settle = 100 * time.Millisecond
	cfg.Gap = 50 * time.Millisecond
	return cfg
}

func main() {
	if os.Getenv(roleEnv) == "clients" {
		os.Exit(clientsMain())
	}
	if err := mainErr(); err != nil {
		fmt.Fprintln(os.Stderr, "bench/xds:", err)
		os.Exit(1)
	}
}

func mainErr() error {
	def := defaultConfig()
	short := flag.Bool("short", false, "tiny parameters: check that everything runs, in seconds")
	clients := flag.String("clients", harness.JoinInts(def.Clients), "comma-separated numbers of connected clients")
	protocols := flag.String("protocols", strings.Join(def.Protocols, ","), "sotw, delta or both")
	targets := flag.String("targets", strings.Join(def.Targets, ","), "servers to measure: snapshotcache, sluice or both")
	changes := flag.Int("changes", def.Changes, "measured changes per measurement (after one warm-up change)")
	rounds := flag.Int("rounds", def.Rounds, "repetitions of every measurement, alternating the order of the servers")
	endpoints := flag.Int("endpoints", def.Endpoints, "Endpoints of the Service the clients watch")
	debounce := flag.Duration("debounce", 0, "Sluice's xDS debounce window (0: the server's default, 100ms)")
	grpcDefaults := flag.Bool("baseline-grpc-defaults", false, "give the SnapshotCache server grpc-go's default options instead of Sluice's (larger buffers per connection)")
	concurrency := flag.Int("connect-concurrency", def.ConnectConcurrency, "clients connecting at once")
	markdown := flag.Bool("markdown", false, "print the result tables as Markdown, for bench/README.md")
	cpuprofile := flag.String("cpuprofile", "", "write a CPU profile of the server process (this one) to this file")
	memprofile := flag.String("memprofile", "", "write a heap profile of the server process with its clients connected and idle, per measurement, to files with this prefix")
	changesprofile := flag.String("cpuprofile-changes", "", "write a CPU profile of the server process during the measured changes, per measurement, to files with this prefix (not with -cpuprofile)")
	verbose := flag.Bool("v", false, "log the servers' warnings")
	set, err := harness.ParseFlags(flag.CommandLine, os.Args[1:])
	if err != nil {
		return err
	}

	cfg := def
	if *short {
		cfg = shortConfig()
	}
	if set["clients"] {
		if cfg.Clients, err = harness.ParseInts("clients", *clients); err != nil {
			return err
		}
	}
	if set["protocols"] {
		cfg.Protocols = splitList(*protocols)
	}
	if set["targets"] {
		cfg.Targets = splitList(*targets)
	}
	if set["changes"] {
		cfg.Changes = *changes
	}
	if set["rounds"] {
		cfg.Rounds = *rounds
	}
	if set["endpoints"] {
		cfg.Endpoints = *endpoints
	}
	cfg.Debounce = *debounce
	cfg.BaselineGRPCDefaults = *grpcDefaults
	cfg.ConnectConcurrency = *concurrency
	cfg.MemProfile = *memprofile
	cfg.ChangesProfile = *changesprofile
	if *cpuprofile != "" && *changesprofile != "" {
		return errors.New("-cpuprofile and -cpuprofile-changes: one CPU profile at a time")
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
	case len(cfg.Clients) == 0:
		return errors.New("-clients: none")
	case cfg.Changes < 1:
		return errors.New("-changes must be at least 1")
	case cfg.Rounds < 1:
		return errors.New("-rounds must be at least 1")
	case cfg.Endpoints < 1:
		return errors.New("-endpoints must be at least 1")
	case cfg.ConnectConcurrency < 1:
		return errors.New("-connect-concurrency must be at least 1")
	case len(cfg.Protocols) == 0:
		return errors.New("-protocols: none")
	case len(cfg.Targets) == 0:
		return errors.New("-targets: none")
	}
	for _, p := range cfg.Protocols {
		if p != sotw && p != delta {
			return fmt.Errorf("-protocols: unknown protocol %q (want sotw, delta)", p)
		}
	}
	for _, t := range cfg.Targets {
		if t != targetSluice && t != targetSnapshotCache {
			return fmt.Errorf("-targets: unknown server %q (want snapshotcache, sluice)", t)
		}
	}
	if len(slices.Compact(slices.Sorted(slices.Values(cfg.Targets)))) != len(cfg.Targets) {
		return fmt.Errorf("-targets: %v names a server twice", cfg.Targets)
	}
	return nil
}

func splitList(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}
