package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"runtime/pprof"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/sluice/sluice/bench/internal/harness"
	"github.com/sluice/sluice/bench/internal/report"
)

// wakeTimeout bounds how long all waiters may take to return after one
// change before the measurement fails.
const wakeTimeout = 30 * time.Second

// wakes records when each of n waiters returned after the change.
type wakes struct {
	// issued is set just before the change is made: a waiter that
	// returns earlier (woken by something else, or at its wait time)
	// waits again.
	issued atomic.Bool
	// sent counts the waiters whose query is on its way (an HTTP request
	// written, an etcd watch created).
	sent atomic.Int32
	// at[i] is when waiter i returned; only waiter i writes it, before it
	// counts itself in left.
	at   []time.Time
	left atomic.Int32
	done chan struct{}
	errc chan error
}

func newWakes(n int) *wakes {
	w := &wakes{at: make([]time.Time, n), done: make(chan struct{}), errc: make(chan error, 1)}
	w.left.Store(int32(n))
	return w
}

// woke records that waiter i returned after the change.
func (w *wakes) woke(i int) {
	w.at[i] = time.Now()
	if w.left.Add(-1) == 0 {
		close(w.done)
	}
}

// fail reports a waiter's error; the first one ends the measurement.
func (w *wakes) fail(err error) {
	select {
	case w.errc <- err:
	default:
	}
}

// A wakeTarget is what the waiters of one measurement wait on.
type wakeTarget struct {
	// arm reads the current state (a blocking query's index) and returns
	// the waiters of the next change. Waiter i blocks until something
	// changes after that state, and calls w.woke(i) when that happens
	// after w.issued (else it waits again); it counts itself in w.sent
	// once its query is on its way, and returns when ctx ends.
	arm func(ctx context.Context) (wait func(ctx context.Context, i int, w *wakes), err error)
	// change makes the k-th change.
	change func(ctx context.Context, k int) error
}

// A wakePath is one way to wait for a change. setup writes what its
// waiters wait on, in namespace ns.
type wakePath struct {
	name  string
	short string
	setup func(ctx context.Context, e *env, ns string) (wakeTarget, error)
}

// wakeBaseline is the blocking path the ratios compare with.
const wakeBaseline = "etcd watch"

// etcdWatchPath is one clientv3 watch of one key per waiter, all on the
// raw client, created from the current revision and woken by a raw Put.
var etcdWatchPath = wakePath{
	name: wakeBaseline, short: "watch",
	setup: func(ctx context.Context, e *env, ns string) (wakeTarget, error) {
		key := rawKey(ns, "wake")
		if _, err := e.raw.Put(ctx, key, string(e.payload)); err != nil {
			return wakeTarget{}, err
		}
		wait := func(ctx context.Context, i int, w *wakes) {
			wch := e.raw.Watch(clientv3.WithRequireLeader(ctx), key, clientv3.WithCreatedNotify())
			for resp := range wch {
				if err := resp.Err(); err != nil {
					if ctx.Err() == nil {
						w.fail(err)
					}
					return
				}
				if resp.Created {
					w.sent.Add(1)
					continue
				}
				if len(resp.Events) > 0 && w.issued.Load() {
					w.woke(i)
					return
				}
			}
		}
		return wakeTarget{
			arm: func(context.Context) (func(context.Context, int, *wakes), error) { return wait, nil },
			change: func(ctx context.Context, k int) error {
				_, err := e.raw.Put(ctx, key, string(e.payload))
				return err
			},
		}, nil
	},
}

// wakePaths are the blocking paths, in report order.
func wakePaths() []wakePath {
	return []wakePath{etcdWatchPath, consulHealthPath, consulKVPath}
}

func wakeShortNames() []string {
	var out []string
	for _, p := range wakePaths() {
		out = append(out, p.short)
	}
	return out
}

// wakeSample is what one or more blocking measurements saw.
type wakeSample struct {
	// lats holds, for every waiter of every change, the time from the
	// moment the change was made until the waiter returned; writes the
	// time the change itself took to be acknowledged; last, per change,
	// when its last waiter returned.
	lats   []time.Duration
	writes []time.Duration
	last   []time.Duration
	// cpu is the process's CPU time, and etcd the requests etcd served,
	// from the changes until their last waiters returned (the changes'
	// own included).
	cpu  time.Duration
	etcd etcdCounts
}

func (s *wakeSample) add(o wakeSample) {
	s.lats = append(s.lats, o.lats...)
	s.writes = append(s.writes, o.writes...)
	s.last = append(s.last, o.last...)
	s.cpu += o.cpu
	s.etcd.reads += o.etcd.reads
	s.etcd.proposals += o.etcd.proposals
}

func (s wakeSample) percentile(p float64) time.Duration { return report.Percentile(s.lats, p) }

func (s wakeSample) cpuPerChange() time.Duration {
	if len(s.writes) == 0 {
		return 0
	}
	return s.cpu / time.Duration(len(s.writes))
}

func (s wakeSample) readsPerChange() float64 {
	if len(s.writes) == 0 {
		return 0
	}
	return s.etcd.reads / float64(len(s.writes))
}

// measureWake sets p up in namespace ns and, for each of changes changes,
// starts n waiters, waits until they are all parked, makes the change and
// times how long each waiter takes to return. With profile set, it writes
// a CPU profile of each change to profile.<ns>.<change>.
func measureWake(ctx context.Context, e *env, p wakePath, n, changes int, ns, profile string) (wakeSample, error) {
	target, err := p.setup(ctx, e, ns)
	if err != nil {
		return wakeSample{}, fmt.Errorf("setup: %w", err)
	}
	var s wakeSample
	for k := range changes {
		prof := ""
		if profile != "" {
			prof = fmt.Sprintf("%s.%s.%d", profile, ns, k)
		}
		if err := wakeOnce(ctx, e, target, n, k, prof, &s); err != nil {
			return wakeSample{}, fmt.Errorf("change %d: %w", k+1, err)
		}
	}
	return s, nil
}

func wakeOnce(ctx context.Context, e *env, target wakeTarget, n, k int, profile string, s *wakeSample) error {
	// Nothing else may change meanwhile.
	if _, err := e.quiesce(ctx); err != nil {
		return err
	}
	wait, err := target.arm(ctx)
	if err != nil {
		return err
	}
	w := newWakes(n)
	wctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	for i := range n {
		wg.Go(func() { wait(wctx, i, w) })
	}
	// Every query sent, and taken in: the process is idle again.
	deadline := time.Now().Add(settleTimeout)
	for int(w.sent.Load()) < n {
		select {
		case err := <-w.errc:
			return fmt.Errorf("waiter: %w", err)
		case <-time.After(10 * time.Millisecond):
		case <-ctx.Done():
			return ctx.Err()
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("only %d of %d waiters sent their query within %v", w.sent.Load(), n, settleTimeout)
		}
	}
	if err := awaitIdle(ctx); err != nil {
		return err
	}

	etcd0, err := readEtcdCounts()
	if err != nil {
		return err
	}
	if profile != "" {
		f, err := os.Create(profile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	cpu0, err := harness.CPUTime()
	if err != nil {
		return err
	}
	t0 := time.Now()
	w.issued.Store(true)
	if err := target.change(ctx, k); err != nil {
		return err
	}
	s.writes = append(s.writes, time.Since(t0))
	timeout := time.NewTimer(wakeTimeout)
	defer timeout.Stop()
	select {
	case <-w.done:
	case err := <-w.errc:
		return fmt.Errorf("waiter: %w", err)
	case <-timeout.C:
		return fmt.Errorf("only %d of %d waiters returned within %v", n-int(w.left.Load()), n, wakeTimeout)
	case <-ctx.Done():
		return ctx.Err()
	}
	cpu1, err := harness.CPUTime()
	if err != nil {
		return err
	}
	if profile != "" {
		pprof.StopCPUProfile()
	}
	etcd1, err := readEtcdCounts()
	if err != nil {
		return err
	}
	s.cpu += cpu1 - cpu0
	d := etcd1.sub(etcd0)
	s.etcd.reads += d.reads
	s.etcd.proposals += d.proposals
	lats := make([]time.Duration, n)
	for i, at := range w.at {
		lats[i] = at.Sub(t0)
	}
	s.lats = append(s.lats, lats...)
	s.last = append(s.last, slices.Max(lats))
	return nil
}

// wakeRow is one blocking path, all rounds together.
type wakeRow struct {
	path string
	s    wakeSample
}

// runWake measures every blocking path, spreading cfg.Changes over
// cfg.Rounds rounds; odd rounds run the paths in reverse order.
func runWake(ctx context.Context, e *env, cfg config) (rows []wakeRow, skipped []string, err error) {
	var paths []wakePath
	for _, p := range wakePaths() {
		if cfg.wants(p.short) {
			paths = append(paths, p)
		}
	}
	agg := map[string]*wakeSample{}
	for r := range cfg.Rounds {
		// Spread the changes evenly; the first rounds take the remainder.
		changes := cfg.Changes / cfg.Rounds
		if r < cfg.Changes%cfg.Rounds {
			changes++
		}
		for _, p := range harness.RoundOrder(paths, r) {
			if slices.Contains(skipped, p.name) {
				continue
			}
			ns := fmt.Sprintf("%s-%s-r%d", phaseBlocking, p.short, r)
			s, err := measureWake(ctx, e, p, cfg.Waiters, changes, ns, cfg.ChangesProfile)
			if errors.Is(err, errNotServed) {
				progress(cfg, "%s: %v; left out", p.name, err)
				skipped = append(skipped, p.name)
				continue
			}
			if err != nil {
				return nil, nil, fmt.Errorf("%d waiters through %s: %w", cfg.Waiters, p.name, err)
			}
			if err := e.reset(ctx, ns); err != nil {
				return nil, nil, err
			}
			progress(cfg, "round %d/%d  %-9s n=%-5d %-24s p50 %-9v p99 %-9v max %-9v CPU/change %v",
				r+1, cfg.Rounds, phaseBlocking, cfg.Waiters, p.name, s.percentile(50), s.percentile(99), s.percentile(100), s.cpuPerChange())
			if agg[p.name] == nil {
				agg[p.name] = &wakeSample{}
			}
			agg[p.name].add(s)
		}
	}
	for _, p := range paths {
		if agg[p.name] != nil {
			rows = append(rows, wakeRow{path: p.name, s: *agg[p.name]})
		}
	}
	return rows, skipped, nil
}
