package main

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/sluice/sluice/bench/internal/harness"
	"github.com/sluice/sluice/bench/internal/report"
)

// opFunc is one timed operation of a worker; i counts the worker's
// operations.
type opFunc func(ctx context.Context, i int) error

// A ratePath is one way to register or to heartbeat, measured as
// operations per second. prepare returns the operations of c workers in
// namespace ns (it may write first, untimed). A path with shared state
// prepares it once per run, in a namespace of its own, and keeps it: its
// measurements leave nothing to clean up.
type ratePath struct {
	name  string
	short string
	// shared says the path keeps what it prepares across measurements.
	shared  bool
	prepare func(ctx context.Context, e *env, cfg config, ns string, c int) ([]opFunc, error)
}

func shortNames(paths []ratePath) []string {
	var out []string
	for _, p := range paths {
		out = append(out, p.short)
	}
	return out
}

// rateSample is what one or more rate measurements saw.
type rateSample struct {
	// ops operations completed in elapsed time, each with its latency.
	ops     int
	elapsed time.Duration
	lats    []time.Duration
	// allOps counts the untimed warm-up operations too; cpu is the
	// process's CPU time (etcd, server and load generator) and revs the
	// etcd revisions from the start of the warm-up until etcd was quiet
	// again, so that work the server does after acknowledging an
	// operation (the registry's claim and status write) counts.
	allOps int
	cpu    time.Duration
	revs   int64
	etcd   etcdCounts
	// drain is how long etcd kept changing after the last operation;
	// span the time from the first operation until it stopped.
	drain time.Duration
	span  time.Duration
	runs  int
}

func (s *rateSample) add(o rateSample) {
	s.ops += o.ops
	s.elapsed += o.elapsed
	s.lats = append(s.lats, o.lats...)
	s.allOps += o.allOps
	s.cpu += o.cpu
	s.revs += o.revs
	s.etcd.reads += o.etcd.reads
	s.etcd.proposals += o.etcd.proposals
	s.drain += o.drain
	s.span += o.span
	s.runs += o.runs
}

func (s rateSample) opsPerSec() float64 {
	if s.elapsed <= 0 {
		return 0
	}
	return float64(s.ops) / s.elapsed.Seconds()
}

// settledPerSec is the rate at which operations were done and the server
// had caught up with them: every operation, warm-up included, ÷ the time
// from the first one until etcd was quiet again. Above it, the work the
// server does after acknowledging an operation falls behind.
func (s rateSample) settledPerSec() float64 {
	if s.span <= 0 {
		return 0
	}
	return float64(s.allOps) / s.span.Seconds()
}

// cpuPerOp is the process's CPU time per operation: on a machine whose
// cores are all busy, throughput is at most cores ÷ cpuPerOp.
func (s rateSample) cpuPerOp() time.Duration {
	if s.allOps == 0 {
		return 0
	}
	return s.cpu / time.Duration(s.allOps)
}

// perOp divides a count by the operations, warm-up included: how many
// etcd reads, raft proposals or writes (revisions) an operation caused.
func (s rateSample) perOp(n float64) float64 {
	if s.allOps == 0 {
		return 0
	}
	return n / float64(s.allOps)
}

// meanDrain is the mean time etcd kept changing after a measurement.
func (s rateSample) meanDrain() time.Duration {
	if s.runs == 0 {
		return 0
	}
	return s.drain / time.Duration(s.runs)
}

func (s rateSample) percentile(p float64) time.Duration { return report.Percentile(s.lats, p) }

// measureRate runs the workers' operations for a tenth of d untimed, then
// for d timed, then waits until etcd is quiet, and returns what they did.
func measureRate(ctx context.Context, e *env, ops []opFunc, d time.Duration) (rateSample, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	rev0, err := e.revision(ctx)
	if err != nil {
		return rateSample{}, err
	}
	etcd0, err := readEtcdCounts()
	if err != nil {
		return rateSample{}, err
	}
	cpu0, err := harness.CPUTime()
	if err != nil {
		return rateSample{}, err
	}
	type result struct {
		lats []time.Duration
		all  int
		last time.Time
		err  error
	}
	results := make([]result, len(ops))
	start := time.Now()
	from := start.Add(d / 10)
	until := from.Add(d)
	var wg sync.WaitGroup
	for w, do := range ops {
		wg.Go(func() {
			res := &results[w]
			for ; ; res.all++ {
				start := time.Now()
				if !start.Before(until) || ctx.Err() != nil {
					return
				}
				if res.err = do(ctx, res.all); res.err != nil {
					cancel()
					return
				}
				res.last = time.Now()
				if !start.Before(from) {
					res.lats = append(res.lats, res.last.Sub(start))
				}
			}
		})
	}
	wg.Wait()
	s := rateSample{runs: 1}
	var end time.Time
	for _, res := range results {
		if res.err != nil {
			return rateSample{}, res.err
		}
		s.lats = append(s.lats, res.lats...)
		s.allOps += res.all
		if res.last.After(end) {
			end = res.last
		}
	}
	if err := ctx.Err(); err != nil {
		return rateSample{}, err
	}
	q, err := e.quiesce(ctx)
	if err != nil {
		return rateSample{}, err
	}
	etcd1, err := readEtcdCounts()
	if err != nil {
		return rateSample{}, err
	}
	s.etcd = etcd1.sub(etcd0)
	s.etcd.reads -= float64(q.polls) // the revision reads of quiesce
	s.ops, s.elapsed = len(s.lats), end.Sub(from)
	s.cpu, s.revs, s.drain, s.span = q.cpu-cpu0, q.rev-rev0, max(0, q.at.Sub(end)), max(q.at.Sub(start), end.Sub(start))
	return s, nil
}

// rateRow is one path at one concurrency level, all rounds together.
type rateRow struct {
	c    int
	path string
	s    rateSample
}

// runRate measures every path at every concurrency level, for cfg.Rounds
// rounds; odd rounds run the paths in reverse order.
func runRate(ctx context.Context, e *env, cfg config, phase string, paths []ratePath) ([]rateRow, error) {
	type key struct {
		c    int
		path string
	}
	agg := map[key]*rateSample{}
	for r := range cfg.Rounds {
		for _, c := range cfg.Concurrency {
			for _, p := range harness.RoundOrder(paths, r) {
				ns := fmt.Sprintf("%s-%s-r%d-c%d", phase, p.short, r, c)
				if p.shared {
					ns = fmt.Sprintf("%s-%s", phase, p.short)
				}
				ops, err := p.prepare(ctx, e, cfg, ns, c)
				if err != nil {
					return nil, fmt.Errorf("%s through %s: preparing %d workers: %w", phase, p.name, c, err)
				}
				s, err := measureRate(ctx, e, ops, cfg.Duration)
				if err != nil {
					return nil, fmt.Errorf("%s through %s, %d workers: %w", phase, p.name, c, err)
				}
				if !p.shared {
					if err := e.reset(ctx, ns); err != nil {
						return nil, err
					}
				}
				progress(cfg, "round %d/%d  %-9s c=%-3d %-24s %7.0f ops/s  p50 %-9v p99 %-9v etcd per op: %.2f reads %.2f proposals %.2f writes",
					r+1, cfg.Rounds, phase, c, p.name, s.opsPerSec(), s.percentile(50), s.percentile(99),
					s.perOp(s.etcd.reads), s.perOp(s.etcd.proposals), s.perOp(float64(s.revs)))
				k := key{c, p.name}
				if agg[k] == nil {
					agg[k] = &rateSample{}
				}
				agg[k].add(s)
			}
		}
	}
	// What shared paths prepared goes now, so that the next phase starts
	// with the same data as if this one had not run.
	for _, p := range paths {
		if p.shared {
			if err := e.release(ctx, fmt.Sprintf("%s-%s", phase, p.short)); err != nil {
				return nil, err
			}
		}
	}
	var rows []rateRow
	for _, c := range cfg.Concurrency {
		for _, p := range paths {
			rows = append(rows, rateRow{c: c, path: p.name, s: *agg[key{c, p.name}]})
		}
	}
	return rows, nil
}

// selectPaths returns the paths cfg selects, in report order.
func selectPaths(cfg config, paths []ratePath) []ratePath {
	var out []ratePath
	for _, p := range paths {
		if cfg.wants(p.short) {
			out = append(out, p)
		}
	}
	return out
}
