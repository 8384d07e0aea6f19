package main

import (
	"fmt"
	"math"
	"time"

	"github.com/sluice/sluice/bench/internal/report"
)

// sample is what one or more measurements saw: operations completed in
// elapsed time, and each one's latency; for writes also the CPU time the
// whole process (etcd, server and load) spent while allOps operations,
// warm-up included, ran.
type sample struct {
	ops     int
	elapsed time.Duration
	lats    []time.Duration
	cpu     time.Duration
	allOps  int
}

func (s *sample) add(o sample) {
	s.ops += o.ops
	s.elapsed += o.elapsed
	s.lats = append(s.lats, o.lats...)
	s.cpu += o.cpu
	s.allOps += o.allOps
}

// cpuPerOp is the process's CPU time per operation: on a machine whose
// cores are all busy, throughput is at most cores ÷ cpuPerOp.
func (s sample) cpuPerOp() time.Duration {
	if s.allOps == 0 {
		return 0
	}
	return s.cpu / time.Duration(s.allOps)
}

func (s sample) opsPerSec() float64 {
	if s.elapsed <= 0 {
		return 0
	}
	return float64(s.ops) / s.elapsed.Seconds()
}

// percentile returns the nearest-rank p-th percentile of the latencies
// (p = 100 is the maximum), 0 when there are none.
func (s sample) percentile(p float64) time.Duration {
	return report.Percentile(s.lats, p)
}

// writeRow is one write path at one concurrency level, all rounds together.
type writeRow struct {
	op   string
	c    int
	path string
	s    sample
}

// watchRow is one watch path at one number of watchers, all rounds together.
type watchRow struct {
	n    int
	path string
	s    sample
}

type results struct {
	cfg     config
	machine string
	// payload is the size of the stored JSON of the benchmark's Service.
	payload int
	writes  []writeRow
	watch   []watchRow
}

// Targets of the issue.
const (
	targetWriteRatio = 1.2
	targetFanout     = 200 * time.Millisecond
	targetWatchers   = 1000
)

// writeRatios returns, for a write row, its time per operation (inverse
// throughput), its median latency and its CPU per operation, each divided
// by the baseline's at the same operation and concurrency; ok is false for
// the baseline itself.
func (r *results) writeRatios(row writeRow) (perOp, p50, cpu float64, ok bool) {
	if row.path == baselinePath {
		return 0, 0, 0, false
	}
	for _, b := range r.writes {
		if b.op == row.op && b.c == row.c && b.path == baselinePath {
			return report.Ratio(b.s.opsPerSec(), row.s.opsPerSec()),
				report.Ratio(float64(row.s.percentile(50)), float64(b.s.percentile(50))),
				report.Ratio(float64(row.s.cpuPerOp()), float64(b.s.cpuPerOp())), true
		}
	}
	return 0, 0, 0, false
}

// watchRatio returns a watch row's median, maximum and CPU per change
// divided by the baseline's for the same number of watchers.
func (r *results) watchRatio(row watchRow) (p50, maxRatio, cpu float64, ok bool) {
	if row.path == watchBaseline {
		return 0, 0, 0, false
	}
	for _, b := range r.watch {
		if b.n == row.n && b.path == watchBaseline {
			return report.Ratio(float64(row.s.percentile(50)), float64(b.s.percentile(50))),
				report.Ratio(float64(row.s.percentile(100)), float64(b.s.percentile(100))),
				report.Ratio(float64(row.s.cpuPerOp()), float64(b.s.cpuPerOp())), true
		}
	}
	return 0, 0, 0, false
}

func fmtRatio(x float64, ok bool) string {
	switch {
	case !ok:
		return "—"
	case math.IsInf(x, 1):
		return "∞"
	}
	return fmt.Sprintf("%.2f×", x)
}

// fmtDur rounds a duration for a table: µs below 1 ms, else 0.1 ms.
func fmtDur(d time.Duration) string {
	if d < time.Millisecond {
		return fmt.Sprintf("%d µs", d.Microseconds())
	}
	return fmt.Sprintf("%.1f ms", float64(d)/float64(time.Millisecond))
}

func (r *results) tables() []report.Table {
	var out []report.Table
	if len(r.writes) > 0 {
		t := report.Table{
			Title:   fmt.Sprintf("Writes (%v per measurement × %d rounds; ratios: Sluice ÷ %s at the same concurrency)", r.cfg.Duration, r.cfg.Rounds, baselinePath),
			Header:  []string{"op", "writers", "path", "ops/s", "p50", "p99", "CPU/op", "time/op ÷ raw", "p50 ÷ raw", "CPU/op ÷ raw"},
			Numeric: 3,
		}
		for _, row := range r.writes {
			perOp, p50, cpu, ok := r.writeRatios(row)
			t.Rows = append(t.Rows, []string{
				row.op, fmt.Sprint(row.c), row.path,
				fmt.Sprintf("%.0f", row.s.opsPerSec()), fmtDur(row.s.percentile(50)), fmtDur(row.s.percentile(99)), fmtDur(row.s.cpuPerOp()),
				fmtRatio(perOp, ok), fmtRatio(p50, ok), fmtRatio(cpu, ok),
			})
		}
		out = append(out, t)
	}
	if len(r.watch) > 0 {
		t := report.Table{
			Title:   fmt.Sprintf("Watch fan-out (time from the write's acknowledgement until every watcher has seen it; %d changes; ratios: Sluice ÷ %s)", r.cfg.Changes, watchBaseline),
			Header:  []string{"watchers", "path", "p50", "p99", "max", "CPU/change", "p50 ÷ raw", "max ÷ raw", "CPU/change ÷ raw"},
			Numeric: 2,
		}
		for _, row := range r.watch {
			p50, mx, cpu, ok := r.watchRatio(row)
			t.Rows = append(t.Rows, []string{
				fmt.Sprint(row.n), row.path,
				fmtDur(row.s.percentile(50)), fmtDur(row.s.percentile(99)), fmtDur(row.s.percentile(100)), fmtDur(row.s.cpuPerOp()),
				fmtRatio(p50, ok), fmtRatio(mx, ok), fmtRatio(cpu, ok),
			})
		}
		out = append(out, t)
	}
	return out
}

// verdicts compares the results with the targets.
func (r *results) verdicts() []string {
	var out []string
	for _, path := range []string{"store", "api"} {
		worst, at := 0.0, ""
		for _, row := range r.writes {
			if row.path != path {
				continue
			}
			if perOp, _, _, ok := r.writeRatios(row); ok && perOp > worst {
				worst, at = perOp, fmt.Sprintf("%s with %d writers", row.op, row.c)
			}
		}
		if at != "" {
			out = append(out, fmt.Sprintf("writes through %s: worst time/op %.2f× raw etcd (%s); target ≤ %.1f×: %s",
				path, worst, at, targetWriteRatio, report.MetOrMissed(worst <= targetWriteRatio)))
		}
	}
	for _, row := range r.watch {
		if row.n != targetWatchers || row.path == watchBaseline {
			continue
		}
		mx := row.s.percentile(100)
		out = append(out, fmt.Sprintf("%d watchers through %s: p50 %s, max %s; target ≤ %v: %s",
			row.n, row.path, fmtDur(row.s.percentile(50)), fmtDur(mx), targetFanout, report.MetOrMissed(mx <= targetFanout)))
	}
	return out
}

// Report is the results as the program prints them.
func (r *results) Report() report.Report {
	return report.Report{
		Machine:  r.machine,
		Notes:    []string{fmt.Sprintf("Object: a Service of %d bytes of stored JSON", r.payload)},
		Tables:   r.tables(),
		Verdicts: r.verdicts(),
	}
}
