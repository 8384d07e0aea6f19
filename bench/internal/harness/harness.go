// Package harness owns what the benchmark programs under bench/ do alike
// around their measurements: parsing the command line (only flags, and
// comma-separated counts), the logger behind -v, a CPU profile of the whole
// run, stopping at an interrupt and printing the report, the order of the
// compared paths in each round, the process's CPU time and open-file
// limit, and, for their tests, waiting for a run's goroutines to end.
//
// It measures nothing itself and knows nothing of what a program compares:
// the report's layout is package report's, its content the program's.
package harness

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/sluice/sluice/bench/internal/report"
)

// Results is what a run measured; Report is how it prints.
type Results interface {
	Report() report.Report
}

// Run calls measure with a context that ends at an interrupt, profiling
// the CPU of the whole process into cpuprofile when it is not empty, and
// writes the report of what measure returns to out: as Markdown when
// markdown is set, else as text.
func Run[R Results](cpuprofile string, markdown bool, out io.Writer, measure func(context.Context) (R, error)) error {
	if cpuprofile != "" {
		f, err := os.Create(cpuprofile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	res, err := measure(ctx)
	if err != nil {
		return err
	}
	if markdown {
		res.Report().Markdown(out)
	} else {
		res.Report().Text(out)
	}
	return nil
}

// ParseFlags parses args, which may hold nothing but flags, into fs and
// returns the names of the flags they set: a program applies only those
// over its defaults, or over the tiny ones of -short.
func ParseFlags(fs *flag.FlagSet, args []string) (set map[string]bool, err error) {
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	set = map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	return set, nil
}

// Logger returns the logger for the servers and etcd a benchmark runs:
// text on stderr, errors only, and warnings too when verbose (-v).
func Logger(verbose bool) *slog.Logger {
	level := slog.LevelError
	if verbose {
		level = slog.LevelWarn
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
}

// ParseInts parses the value of the flag -name: comma-separated positive
// integers.
func ParseInts(name, s string) ([]int, error) {
	var out []int
	for _, f := range strings.Split(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 {
			return nil, fmt.Errorf("-%s: %q is not a positive integer", name, f)
		}
		out = append(out, n)
	}
	return out, nil
}

// JoinInts is the flag value ParseInts reads back as ns, for a default.
func JoinInts(ns []int) string {
	s := make([]string, len(ns))
	for i, n := range ns {
		s[i] = strconv.Itoa(n)
	}
	return strings.Join(s, ",")
}

// RoundOrder returns items in order for even rounds and reversed for odd
// ones (A B, B A, …), so that no compared path always runs first or last
// and a slow spell of the shared machine hits them all. It does not change
// items.
func RoundOrder[T any](items []T, round int) []T {
	out := slices.Clone(items)
	if round%2 == 1 {
		slices.Reverse(out)
	}
	return out
}

// CPUTime returns the user and system CPU time this process has used.
func CPUTime() (time.Duration, error) {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0, fmt.Errorf("getrusage: %w", err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()), nil
}

// RaiseFileLimit raises this process's soft limit on open files to need,
// or as far as the hard limit allows, and returns the hard limit: when
// that is below need, the caller says what to do. (Go already raises the
// soft limit to the hard limit at start-up; this covers being started
// otherwise.)
func RaiseFileLimit(need uint64) (hard uint64, err error) {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return 0, fmt.Errorf("reading the open-file limit: %w", err)
	}
	if lim.Cur >= need {
		return lim.Max, nil
	}
	lim.Cur = min(need, lim.Max)
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return 0, fmt.Errorf("raising the open-file limit to %d: %w", lim.Cur, err)
	}
	return lim.Max, nil
}

// WaitGoroutines waits, for up to timeout, until at most n goroutines run,
// for a test to check that a run stopped everything it started. It returns
// how many run in the end and, when that is more than n, the stacks of
// them all.
func WaitGoroutines(n int, timeout time.Duration) (running int, stacks string) {
	deadline := time.Now().Add(timeout)
	for runtime.NumGoroutine() > n && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if running = runtime.NumGoroutine(); running > n {
		buf := make([]byte, 1<<20)
		stacks = string(buf[:runtime.Stack(buf, true)])
	}
	return running, stacks
}
