package main

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"k8s.io/apimachinery/pkg/watch"

	"github.com/sluice/sluice/bench/internal/harness"
	"github.com/sluice/sluice/internal/client"
	"github.com/sluice/sluice/internal/resource"
	"github.com/sluice/sluice/internal/store"
)

// changeTimeout bounds how long all watchers may take to see one change
// before the measurement fails.
const changeTimeout = 30 * time.Second

// changeGap separates changes, so that each one meets idle watchers.
const changeGap = 20 * time.Millisecond

// fanout records, for every change, how many watchers have seen it and when
// the latest of them did.
type fanout struct {
	n    int32
	base time.Time
	seen []atomic.Int32
	last []atomic.Int64 // nanoseconds since base
	done []chan struct{}
	errc chan error
}

func newFanout(n, changes int) *fanout {
	f := &fanout{
		n:    int32(n),
		base: time.Now(),
		seen: make([]atomic.Int32, changes),
		last: make([]atomic.Int64, changes),
		done: make([]chan struct{}, changes),
		errc: make(chan error, 1),
	}
	for i := range f.done {
		f.done[i] = make(chan struct{})
	}
	return f
}

func (f *fanout) now() time.Duration { return time.Since(f.base) }

// saw records that one watcher has seen change k.
func (f *fanout) saw(k int) {
	if k >= len(f.seen) {
		f.fail(fmt.Errorf("a watcher saw event %d, but only %d changes were made", k+1, len(f.seen)))
		return
	}
	now := int64(f.now())
	for {
		old := f.last[k].Load()
		if now <= old || f.last[k].CompareAndSwap(old, now) {
			break
		}
	}
	if f.seen[k].Add(1) == f.n {
		close(f.done[k])
	}
}

// fail reports a watcher's error; the first one ends the measurement.
func (f *fanout) fail(err error) {
	select {
	case f.errc <- err:
	default:
	}
}

// A watchPath is one way to follow the Services of a namespace. setup
// writes the watched object and returns the revision to watch from and the
// change to make; open starts n watchers that call f.saw for every change,
// and stop when ctx ends.
type watchPath struct {
	name  string
	short string
	setup updater
	open  func(ctx context.Context, e *env, ns string, rev int64, n int, f *fanout, wg *sync.WaitGroup) error
}

const watchBaseline = "etcd watch"

var (
	// etcdWatchPath is one clientv3 watch per watcher on the shared client,
	// with the options the store asks etcd for (prefix, previous value,
	// require leader); changes are raw Puts of the stored JSON.
	etcdWatchPath = watchPath{
		name: watchBaseline, short: "etcd",
		setup: putUpdater,
		open: func(ctx context.Context, e *env, ns string, rev int64, n int, f *fanout, wg *sync.WaitGroup) error {
			ctx = clientv3.WithRequireLeader(ctx)
			for range n {
				wch := e.raw.Watch(ctx, servicePrefix(ns), clientv3.WithPrefix(), clientv3.WithRev(rev+1), clientv3.WithPrevKV())
				wg.Go(func() {
					k := 0
					for resp := range wch {
						if err := resp.Err(); err != nil {
							if ctx.Err() == nil {
								f.fail(err)
							}
							return
						}
						for range resp.Events {
							f.saw(k)
							k++
						}
					}
				})
			}
			return nil
		},
	}

	// storeWatchPath is one store.Watch per watcher, in-process; changes are
	// store updates.
	storeWatchPath = watchPath{
		name: "store", short: "store",
		setup: storeUpdater,
		open: func(ctx context.Context, e *env, ns string, rev int64, n int, f *fanout, wg *sync.WaitGroup) error {
			for range n {
				events, err := e.store.Watch(ctx, resource.ServiceKind, ns, store.WatchOptions{ResourceVersion: rev})
				if err != nil {
					return err
				}
				wg.Go(func() {
					k := 0
					for ev := range events {
						switch ev.Type {
						case watch.Bookmark:
							continue
						case watch.Error:
							f.fail(ev.Err)
							return
						}
						f.saw(k)
						k++
					}
				})
			}
			return nil
		},
	}

	// apiWatchPath is one REST watch stream per watcher, through
	// internal/client; changes are PUTs through the API.
	apiWatchPath = watchPath{
		name: "api", short: "api",
		setup: apiUpdater,
		open: func(ctx context.Context, e *env, ns string, rev int64, n int, f *fanout, wg *sync.WaitGroup) error {
			// Open the streams a few at a time: a thousand dials at once
			// would only measure the listen backlog.
			const parallel = 32
			var (
				mu       sync.Mutex // guards firstErr
				firstErr error
				opening  sync.WaitGroup
			)
			sem := make(chan struct{}, parallel)
			for range n {
				sem <- struct{}{}
				opening.Go(func() {
					defer func() { <-sem }()
					w, err := e.api.Watch(ctx, svcResource, ns, client.WatchOptions{ResourceVersion: strconv.FormatInt(rev, 10)})
					if err != nil {
						mu.Lock()
						firstErr = errors.Join(firstErr, err)
						mu.Unlock()
						return
					}
					wg.Go(func() {
						defer w.Close()
						k := 0
						for {
							ev, err := w.Next()
							if err != nil {
								if ctx.Err() == nil {
									f.fail(err)
								}
								return
							}
							switch ev.Type {
							case string(watch.Bookmark):
								continue
							case string(watch.Error):
								f.fail(ev.Err())
								return
							}
							f.saw(k)
							k++
						}
					})
				})
			}
			opening.Wait()
			return firstErr
		},
	}
)

// watchPaths are the paths cfg selects, in report order.
func watchPaths(cfg config) []watchPath {
	var paths []watchPath
	for _, p := range []watchPath{etcdWatchPath, storeWatchPath, apiWatchPath} {
		if cfg.wants(p.short) {
			paths = append(paths, p)
		}
	}
	return paths
}

// measureFanout opens n watchers through p, makes one unmeasured warm-up
// change (which also proves every watcher is established), then changes
// more, one at a time. It returns for each change the time from the
// write's acknowledgement until the last watcher saw it (zero if all had
// seen it before the write returned), and the process's CPU time per change.
func measureFanout(ctx context.Context, e *env, p watchPath, n, changes int, ns string) (sample, error) {
	rev, change, err := p.setup(ctx, e, ns, "watched")
	if err != nil {
		return sample{}, fmt.Errorf("setup: %w", err)
	}
	f := newFanout(n, changes+1)
	wctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	if err := p.open(wctx, e, ns, rev, n, f, &wg); err != nil {
		return sample{}, fmt.Errorf("opening watchers: %w", err)
	}
	var (
		lats []time.Duration
		cpu0 time.Duration
	)
	for k := 0; k <= changes; k++ {
		if k == 1 {
			if cpu0, err = harness.CPUTime(); err != nil {
				return sample{}, err
			}
		}
		if err := change(ctx, k); err != nil {
			return sample{}, fmt.Errorf("change %d: %w", k, err)
		}
		ack := f.now()
		timeout := time.NewTimer(changeTimeout)
		select {
		case <-f.done[k]:
			timeout.Stop()
		case err := <-f.errc:
			return sample{}, fmt.Errorf("watcher: %w", err)
		case <-timeout.C:
			return sample{}, fmt.Errorf("only %d of %d watchers saw change %d within %v", f.seen[k].Load(), n, k, changeTimeout)
		case <-ctx.Done():
			return sample{}, ctx.Err()
		}
		if k > 0 {
			lats = append(lats, max(0, time.Duration(f.last[k].Load())-ack))
		}
		select {
		case <-time.After(changeGap):
		case <-ctx.Done():
			return sample{}, ctx.Err()
		}
	}
	cpu1, err := harness.CPUTime()
	if err != nil {
		return sample{}, err
	}
	// An event beyond the last change would be reported here.
	select {
	case err := <-f.errc:
		return sample{}, fmt.Errorf("watcher: %w", err)
	default:
	}
	return sample{lats: lats, cpu: cpu1 - cpu0, allOps: changes}, nil
}

// runWatch measures fan-out through every watch path for every number of
// watchers, spreading cfg.Changes over cfg.Rounds rounds; odd rounds run
// the paths in reverse order.
func runWatch(ctx context.Context, e *env, cfg config) ([]watchRow, error) {
	type key struct {
		n    int
		path string
	}
	paths := watchPaths(cfg)
	agg := map[key]*sample{}
	for r := range cfg.Rounds {
		// Spread the changes evenly; the first rounds take the remainder.
		changes := cfg.Changes / cfg.Rounds
		if r < cfg.Changes%cfg.Rounds {
			changes++
		}
		for _, n := range cfg.Watchers {
			for _, p := range harness.RoundOrder(paths, r) {
				ns := fmt.Sprintf("f%d-%s-n%d", r, p.short, n)
				s, err := measureFanout(ctx, e, p, n, changes, ns)
				if err != nil {
					return nil, fmt.Errorf("fan-out to %d watchers through %s: %w", n, p.name, err)
				}
				if err := e.reset(ctx, ns); err != nil {
					return nil, err
				}
				progress(cfg, "round %d/%d  watch  n=%-5d %-10s p50 %-8v max %-8v CPU/change %v",
					r+1, cfg.Rounds, n, p.name, s.percentile(50), s.percentile(100), s.cpuPerOp())
				k := key{n, p.name}
				if agg[k] == nil {
					agg[k] = &sample{}
				}
				agg[k].add(s)
			}
		}
	}
	var rows []watchRow
	for _, n := range cfg.Watchers {
		for _, p := range paths {
			rows = append(rows, watchRow{n: n, path: p.name, s: *agg[key{n, p.name}]})
		}
	}
	return rows, nil
}
