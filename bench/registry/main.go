// Command registry measures Sluice's service registry against raw etcd:
// registrations, TTL heartbeats and blocking queries woken by a change.
//
// In one run, against one embedded etcd (fsync on, as in production) and a
// Sluice server over it, both in this process, it measures
//
//   - registrations per second at several concurrency levels: an Endpoint
//     with spec.ttl created through the REST API (internal/client), and a
//     service with a TTL check registered through the official Consul
//     client against the server's Consul listener; the baseline is a raw
//     etcd transaction that creates a key of the same size if it is absent
//     (and a plain Put, etcd's floor);
//   - sustained heartbeats per second: a set of TTL Endpoints kept alive as
//     fast as the workers go, through POST .../endpoints/{name}/heartbeat and
//     through Consul's PassTTL; the baseline is a raw etcd KeepAliveOnce on
//     a lease;
//   - 1,000 concurrent blocking queries woken by one change: the time from
//     the change until each query has returned, for Consul health and KV
//     blocking queries; the baseline is 1,000 raw etcd watches of one key
//     woken by one Put.
//
// Sluice and the baseline alternate (each round reverses their order) so
// that machine noise hits both. The program only benchmarks; the results
// and how to read them are in bench/README.md.
//
// Usage:
//
//	go run ./bench/registry                   # full run, about three minutes
//	go run ./bench/registry -short            # seconds, tiny parameters
//	go run ./bench/registry -markdown         # the tables for bench/README.md
//	go run ./bench/registry -phases blocking -waiters 1000 -cpuprofile cpu.out
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

// The phases, by the names -phases takes.
const (
	phaseRegister  = "register"
	phaseHeartbeat = "heartbeat"
	phaseBlocking  = "blocking"
)

var allPhases = []string{phaseRegister, phaseHeartbeat, phaseBlocking}

// config is what a run measures.
type config struct {
	// Dir is where the embedded etcd keeps its data; empty uses a temporary
	// directory, removed at the end.
	Dir string
	// Duration is how long each registration or heartbeat measurement
	// runs, per round, after an untimed tenth of it.
	Duration time.Duration
	// Concurrency lists the numbers of concurrent workers.
	Concurrency []int
	// Endpoints is how many TTL registrations the heartbeat phase keeps
	// alive, per path.
	Endpoints int
	// Waiters is how many blocking queries one change wakes.
	Waiters int
	// Changes is how many changes each blocking measurement makes in all
	// rounds together.
	Changes int
	// Quiet is how long etcd's revision must stay the same for the server
	// to count as done with what a measurement left it to do (the registry
	// claims new registrations and writes their status after they are
	// acknowledged, and releases the claims of deleted ones): between
	// measurements, and before every change of the blocking phase.
	Quiet time.Duration
	// Rounds is how often every measurement repeats, alternating the order
	// of baseline and Sluice.
	Rounds int
	// Phases selects what to measure (register, heartbeat, blocking).
	Phases []string
	// Paths, when not empty, selects paths by short name (see -paths).
	Paths []string
	// ChangesProfile, when set, is the prefix of CPU profiles of the
	// blocking phase's changes, one per change (from the change until its
	// last waiter returned), named <prefix>.<namespace>.<change>.
	ChangesProfile string
	// Log receives the server's and etcd's warnings; Progress a line per
	// measurement (nil: none).
	Log      *slog.Logger
	Progress io.Writer
}

func defaultConfig() config {
	return config{
		Duration:    500 * time.Millisecond,
		Concurrency: []int{1, 16, 64},
		Endpoints:   500,
		Waiters:     1000,
		Changes:     8,
		Quiet:       300 * time.Millisecond,
		Rounds:      4,
		Phases:      allPhases,
	}
}

// shortConfig is -short: every phase and path, tiny parameters.
func shortConfig() config {
	cfg := defaultConfig()
	cfg.Duration = 100 * time.Millisecond
	cfg.Concurrency = []int{4}
	cfg.Endpoints = 20
	cfg.Waiters = 50
	cfg.Changes = 2
	cfg.Quiet = 50 * time.Millisecond
	cfg.Rounds = 2
	return cfg
}

func main() {
	if err := mainErr(); err != nil {
		fmt.Fprintln(os.Stderr, "bench/registry:", err)
		os.Exit(1)
	}
}

func mainErr() error {
	def := defaultConfig()
	short := flag.Bool("short", false, "tiny parameters: check that every phase runs, in seconds")
	dir := flag.String("dir", "", "data directory of the embedded etcd (default: a temporary directory, removed at the end)")
	duration := flag.Duration("duration", def.Duration, "how long each registration or heartbeat measurement runs, per round")
	concurrency := flag.String("concurrency", harness.JoinInts(def.Concurrency), "comma-separated numbers of concurrent workers")
	endpoints := flag.Int("endpoints", def.Endpoints, "TTL registrations kept alive by the heartbeat phase, per path")
	waiters := flag.Int("waiters", def.Waiters, "blocking queries (or etcd watches) one change wakes")
	changes := flag.Int("changes", def.Changes, "changes per blocking measurement, all rounds together")
	quiet := flag.Duration("quiet", def.Quiet, "how long etcd must see no write for the server to count as settled, between measurements")
	rounds := flag.Int("rounds", def.Rounds, "repetitions of every measurement, alternating baseline and Sluice")
	phases := flag.String("phases", strings.Join(def.Phases, ","), "which phases to run: "+strings.Join(allPhases, ", "))
	paths := flag.String("paths", "", "only these paths, by short name: register "+strings.Join(shortNames(registerPaths), ",")+
		"; heartbeat "+strings.Join(shortNames(heartbeatPaths), ",")+"; blocking "+strings.Join(wakeShortNames(), ",")+" (default: all)")
	markdown := flag.Bool("markdown", false, "print the result tables as Markdown, for bench/README.md")
	cpuprofile := flag.String("cpuprofile", "", "write a CPU profile of the whole run to this file")
	changesprofile := flag.String("cpuprofile-changes", "", "write a CPU profile of each change of the blocking phase, until its last waiter returned, to files with this prefix (not with -cpuprofile)")
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
	cfg.Paths = splitList(*paths)
	cfg.Phases = splitList(*phases)
	if set["duration"] {
		cfg.Duration = *duration
	}
	if set["endpoints"] {
		cfg.Endpoints = *endpoints
	}
	if set["waiters"] {
		cfg.Waiters = *waiters
	}
	if set["changes"] {
		cfg.Changes = *changes
	}
	if set["quiet"] {
		cfg.Quiet = *quiet
	}
	if set["rounds"] {
		cfg.Rounds = *rounds
	}
	if set["concurrency"] {
		if cfg.Concurrency, err = harness.ParseInts("concurrency", *concurrency); err != nil {
			return err
		}
	}
	if *cpuprofile != "" && *changesprofile != "" {
		return errors.New("-cpuprofile and -cpuprofile-changes: one CPU profile at a time")
	}
	cfg.ChangesProfile = *changesprofile
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
	case cfg.Quiet <= 0:
		return errors.New("-quiet must be positive")
	case cfg.Rounds < 1:
		return errors.New("-rounds must be at least 1")
	case len(cfg.Concurrency) == 0:
		return errors.New("-concurrency: none")
	case cfg.Endpoints < 1:
		return errors.New("-endpoints must be at least 1")
	case cfg.Waiters < 1:
		return errors.New("-waiters must be at least 1")
	case cfg.has(phaseBlocking) && cfg.Changes < cfg.Rounds:
		return fmt.Errorf("-changes %d: want at least one change per round (-rounds %d)", cfg.Changes, cfg.Rounds)
	case cfg.has(phaseHeartbeat) && cfg.Endpoints < slices.Max(cfg.Concurrency):
		return fmt.Errorf("-endpoints %d: want at least one registration per worker (-concurrency up to %d)", cfg.Endpoints, slices.Max(cfg.Concurrency))
	case len(cfg.Phases) == 0:
		return errors.New("no phase selected")
	}
	for _, p := range cfg.Phases {
		if !slices.Contains(allPhases, p) {
			return fmt.Errorf("-phases: unknown phase %q (want %s)", p, strings.Join(allPhases, ", "))
		}
	}
	return nil
}

// has says whether the phase is selected.
func (cfg config) has(phase string) bool { return slices.Contains(cfg.Phases, phase) }

// wants says whether the path with this short name is selected.
func (cfg config) wants(short string) bool {
	return len(cfg.Paths) == 0 || slices.Contains(cfg.Paths, short)
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

func progress(cfg config, format string, args ...any) {
	if cfg.Progress != nil {
		fmt.Fprintf(cfg.Progress, format+"\n", args...)
	}
}
