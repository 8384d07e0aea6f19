package main

import (
	"bufio"
	"fmt"
	"io"
	"math"
	"os"
	"runtime"
	"slices"
	"strings"
	"text/tabwriter"
	"time"
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
	if len(s.lats) == 0 {
		return 0
	}
	sorted := slices.Clone(s.lats)
	slices.Sort(sorted)
	i := int(math.Ceil(p/100*float64(len(sorted)))) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
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
			return ratio(b.s.opsPerSec(), row.s.opsPerSec()),
				ratio(float64(row.s.percentile(50)), float64(b.s.percentile(50))),
				ratio(float64(row.s.cpuPerOp()), float64(b.s.cpuPerOp())), true
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
			return ratio(float64(row.s.percentile(50)), float64(b.s.percentile(50))),
				ratio(float64(row.s.percentile(100)), float64(b.s.percentile(100))),
				ratio(float64(row.s.cpuPerOp()), float64(b.s.cpuPerOp())), true
		}
	}
	return 0, 0, 0, false
}

func ratio(a, b float64) float64 {
	if b == 0 {
		return math.Inf(1)
	}
	return a / b
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

// table is a header and rows of cells, printed as text or Markdown.
type table struct {
	title  string
	header []string
	// numeric is the first column of numbers, right-aligned in Markdown.
	numeric int
	rows    [][]string
}

func (r *results) tables() []table {
	var out []table
	if len(r.writes) > 0 {
		t := table{
			title:   fmt.Sprintf("Writes (%v per measurement × %d rounds; ratios: Sluice ÷ %s at the same concurrency)", r.cfg.Duration, r.cfg.Rounds, baselinePath),
			header:  []string{"op", "writers", "path", "ops/s", "p50", "p99", "CPU/op", "time/op ÷ raw", "p50 ÷ raw", "CPU/op ÷ raw"},
			numeric: 3,
		}
		for _, row := range r.writes {
			perOp, p50, cpu, ok := r.writeRatios(row)
			t.rows = append(t.rows, []string{
				row.op, fmt.Sprint(row.c), row.path,
				fmt.Sprintf("%.0f", row.s.opsPerSec()), fmtDur(row.s.percentile(50)), fmtDur(row.s.percentile(99)), fmtDur(row.s.cpuPerOp()),
				fmtRatio(perOp, ok), fmtRatio(p50, ok), fmtRatio(cpu, ok),
			})
		}
		out = append(out, t)
	}
	if len(r.watch) > 0 {
		t := table{
			title:   fmt.Sprintf("Watch fan-out (time from the write's acknowledgement until every watcher has seen it; %d changes; ratios: Sluice ÷ %s)", r.cfg.Changes, watchBaseline),
			header:  []string{"watchers", "path", "p50", "p99", "max", "CPU/change", "p50 ÷ raw", "max ÷ raw", "CPU/change ÷ raw"},
			numeric: 2,
		}
		for _, row := range r.watch {
			p50, mx, cpu, ok := r.watchRatio(row)
			t.rows = append(t.rows, []string{
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
				path, worst, at, targetWriteRatio, metOrMissed(worst <= targetWriteRatio)))
		}
	}
	for _, row := range r.watch {
		if row.n != targetWatchers || row.path == watchBaseline {
			continue
		}
		mx := row.s.percentile(100)
		out = append(out, fmt.Sprintf("%d watchers through %s: p50 %s, max %s; target ≤ %v: %s",
			row.n, row.path, fmtDur(row.s.percentile(50)), fmtDur(mx), targetFanout, metOrMissed(mx <= targetFanout)))
	}
	return out
}

func metOrMissed(ok bool) string {
	if ok {
		return "met"
	}
	return "MISSED"
}

func (r *results) text(w io.Writer) {
	fmt.Fprintln(w, r.machine)
	fmt.Fprintf(w, "Object: a Service of %d bytes of stored JSON\n", r.payload)
	for _, t := range r.tables() {
		fmt.Fprintf(w, "\n%s\n", t.title)
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, strings.Join(t.header, "\t"))
		for _, row := range t.rows {
			fmt.Fprintln(tw, strings.Join(row, "\t"))
		}
		tw.Flush()
	}
	if v := r.verdicts(); len(v) > 0 {
		fmt.Fprintln(w)
		for _, line := range v {
			fmt.Fprintln(w, line)
		}
	}
}

func (r *results) markdown(w io.Writer) {
	fmt.Fprintf(w, "Machine: %s  \nObject: a Service of %d bytes of stored JSON\n", r.machine, r.payload)
	for _, t := range r.tables() {
		fmt.Fprintf(w, "\n%s\n\n", t.title)
		fmt.Fprintf(w, "| %s |\n", strings.Join(t.header, " | "))
		seps := make([]string, len(t.header))
		for i := range seps {
			seps[i] = "---"
			if i >= t.numeric {
				seps[i] = "---:"
			}
		}
		fmt.Fprintf(w, "|%s|\n", strings.Join(seps, "|"))
		for _, row := range t.rows {
			fmt.Fprintf(w, "| %s |\n", strings.Join(row, " | "))
		}
	}
	if v := r.verdicts(); len(v) > 0 {
		fmt.Fprintln(w)
		for _, line := range v {
			fmt.Fprintf(w, "- %s\n", line)
		}
	}
}

// describeMachine says where the run happened.
func describeMachine() string {
	cpu := "unknown CPU"
	if f, err := os.Open("/proc/cpuinfo"); err == nil {
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if name, ok := strings.CutPrefix(sc.Text(), "model name"); ok {
				cpu = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(name), ":"))
				break
			}
		}
		f.Close()
	}
	return fmt.Sprintf("%s, %d CPUs (GOMAXPROCS %d) shared by etcd, the server and the load, %s %s/%s",
		cpu, runtime.NumCPU(), runtime.GOMAXPROCS(0), runtime.Version(), runtime.GOOS, runtime.GOARCH)
}
