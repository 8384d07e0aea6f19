package main

import (
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/sluice/sluice/bench/internal/report"
)

// Targets of the issue.
const (
	targetClients     = 10000
	targetP99         = time.Second
	targetBytesClient = 50_000
)

// row is one number of clients, protocol and target, all rounds together.
type row struct {
	n        int
	protocol string
	target   string
	ms       []*measurement
}

type results struct {
	cfg     config
	machine string
	rows    []*row
}

func (r *results) add(m *measurement) {
	for _, rw := range r.rows {
		if rw.n == m.n && rw.protocol == m.protocol && rw.target == m.target {
			rw.ms = append(rw.ms, m)
			return
		}
	}
	r.rows = append(r.rows, &row{n: m.n, protocol: m.protocol, target: m.target, ms: []*measurement{m}})
	slices.SortStableFunc(r.rows, func(a, b *row) int {
		if a.n != b.n {
			return a.n - b.n
		}
		if a.protocol != b.protocol {
			return slices.Index(r.cfg.Protocols, a.protocol) - slices.Index(r.cfg.Protocols, b.protocol)
		}
		return slices.Index(r.cfg.Targets, a.target) - slices.Index(r.cfg.Targets, b.target)
	})
}

// find returns the row of another target at the same point.
func (r *results) find(n int, protocol, target string) *row {
	for _, rw := range r.rows {
		if rw.n == n && rw.protocol == protocol && rw.target == target {
			return rw
		}
	}
	return nil
}

// lats pools every client's latency of every change of every round.
func (rw *row) lats() []time.Duration {
	var out []time.Duration
	for _, m := range rw.ms {
		for _, c := range m.changes {
			out = append(out, c.lats...)
		}
	}
	return out
}

// worstChange returns the highest p99 of any single change, and that
// change's maximum.
func (rw *row) worstChange() (p99, maxLat time.Duration) {
	for _, m := range rw.ms {
		for _, c := range m.changes {
			if p := report.Percentile(c.lats, 99); p > p99 {
				p99, maxLat = p, slices.Max(c.lats)
			}
		}
	}
	return p99, maxLat
}

// first is the median, over changes, of the first client's latency: the
// part of convergence before the fan-out (for Sluice the store, the
// informers and the debounce window; for SnapshotCache the translation).
func (rw *row) first() time.Duration {
	var firsts []time.Duration
	for _, m := range rw.ms {
		for _, c := range m.changes {
			firsts = append(firsts, slices.Min(c.lats))
		}
	}
	return report.Percentile(firsts, 50)
}

func (rw *row) changes() int {
	n := 0
	for _, m := range rw.ms {
		n += len(m.changes)
	}
	return n
}

func (rw *row) mean(f func(*measurement) float64) float64 {
	sum := 0.0
	for _, m := range rw.ms {
		sum += f(m)
	}
	return sum / float64(len(rw.ms))
}

func (rw *row) connect() time.Duration {
	return time.Duration(rw.mean(func(m *measurement) float64 { return float64(m.connect) }))
}

func (rw *row) connectCPU() time.Duration {
	return time.Duration(rw.mean(func(m *measurement) float64 { return float64(m.connectCPU) }))
}

// perClient is a memory figure's growth from before the clients to the
// idle point, per client, averaged over rounds.
func (rw *row) perClient(f func(memStats) int64) float64 {
	return rw.mean(func(m *measurement) float64 { return float64(f(m.idle)-f(m.before)) / float64(m.n) })
}

func (rw *row) perClientAfter(f func(memStats) int64) float64 {
	return rw.mean(func(m *measurement) float64 { return float64(f(m.after)-f(m.before)) / float64(m.n) })
}

func heapStacks(s memStats) int64 { return s.heapStacks() }
func heapOnly(s memStats) int64   { return int64(s.heapInuse) }
func stacksOnly(s memStats) int64 { return int64(s.stackInuse) }
func rssOf(s memStats) int64      { return s.rss }
func goroutinesOf(s memStats) int64 {
	return int64(s.goroutines)
}

// perChange averages a figure of every measured change.
func (rw *row) perChange(f func(change) time.Duration) time.Duration {
	var sum time.Duration
	for _, m := range rw.ms {
		for _, c := range m.changes {
			sum += f(c)
		}
	}
	return sum / time.Duration(max(rw.changes(), 1))
}

// cpuPerChange is the server process's CPU time per measured change.
func (rw *row) cpuPerChange() time.Duration {
	return rw.perChange(func(c change) time.Duration { return c.cpu })
}

// allocPerChange is what the server process allocated per change, and the
// GC cycles per change.
func (rw *row) allocPerChange() (float64, float64) {
	var alloc, gcs float64
	for _, m := range rw.ms {
		for _, c := range m.changes {
			alloc += float64(c.alloc)
			gcs += float64(c.gcs)
		}
	}
	n := float64(max(rw.changes(), 1))
	return alloc / n, gcs / n
}

// responsesPerChange describes the responses a client received per
// change, by type, e.g. "EDS 1.00".
func (rw *row) responsesPerChange() string {
	sum := map[string]float64{}
	for _, m := range rw.ms {
		for _, c := range m.changes {
			for t, k := range c.responses {
				sum[t] += float64(k) / float64(m.n)
			}
		}
	}
	var parts []string
	for _, t := range chain {
		if v := sum[shortType(t)]; v > 0 {
			parts = append(parts, fmt.Sprintf("%s %.2f", shortType(t), v/float64(max(rw.changes(), 1))))
		}
	}
	return strings.Join(parts, ", ")
}

// otherLoad is the CPU other processes of the machine took during the
// changes, in cores: the noise of the row.
func (rw *row) otherLoad() float64 {
	var others, wall time.Duration
	for _, m := range rw.ms {
		for _, c := range m.changes {
			others += c.busy - c.cpu - c.clientCPU
			wall += c.wall
		}
	}
	if wall <= 0 {
		return 0
	}
	return max(float64(others)/float64(wall), 0)
}

// clientCPUPerChange is the clients' process's CPU time per change.
func (rw *row) clientCPUPerChange() time.Duration {
	return rw.perChange(func(c change) time.Duration { return c.clientCPU })
}

func fmtRatio(x float64) string {
	if math.IsInf(x, 0) || math.IsNaN(x) {
		return "—"
	}
	return fmt.Sprintf("%.2f×", x)
}

// fmtDur rounds a duration for a table: µs below 1 ms, 0.1 ms below 1 s,
// else 0.01 s.
func fmtDur(d time.Duration) string {
	switch {
	case d < time.Millisecond:
		return fmt.Sprintf("%d µs", d.Microseconds())
	case d < time.Second:
		return fmt.Sprintf("%.1f ms", float64(d)/float64(time.Millisecond))
	}
	return fmt.Sprintf("%.2f s", d.Seconds())
}

// fmtBytes prints a size in kB (1,000 bytes), as the targets are stated.
func fmtBytes(b float64) string {
	return fmt.Sprintf("%.1f kB", b/1000)
}

func (r *results) tables() []report.Table {
	debounce := "Sluice's default debounce window, 100 ms"
	if r.cfg.Debounce > 0 {
		debounce = fmt.Sprintf("Sluice's debounce window %v", r.cfg.Debounce)
	}
	main := report.Table{
		Title: fmt.Sprintf("Convergence, memory and CPU (%d changes × %d rounds per row; convergence = from the change until a client ACKed the new ClusterLoadAssignment, every client of every change pooled; %s)",
			r.cfg.Changes, r.cfg.Rounds, debounce),
		Header:  []string{"clients connected", "protocol", "server", "connect", "CPU to connect", "first ACK", "p50", "p99", "max", "worst change p99", "heap+stacks / idle client", "RSS / idle client", "CPU / change"},
		Numeric: 3,
	}
	detail := report.Table{
		Title:   "Per client, and the clients' process (memory growth from before the clients to the idle point, ÷ clients; CPU of the clients' process)",
		Header:  []string{"clients", "protocol", "server", "goroutines / client", "heap / client", "stacks / client", "heap+stacks / client after the changes", "allocated / change", "GC cycles / change", "responses / client / change", "clients' CPU to connect", "clients' CPU / change", "clients' RSS", "other processes during the changes"},
		Numeric: 3,
	}
	for _, rw := range r.rows {
		lats := rw.lats()
		alloc, gcs := rw.allocPerChange()
		worstP99, _ := rw.worstChange()
		main.Rows = append(main.Rows, []string{
			fmt.Sprint(rw.n), rw.protocol, targetTitle(rw.target),
			fmtDur(rw.connect()), fmtDur(rw.connectCPU()), fmtDur(rw.first()),
			fmtDur(report.Percentile(lats, 50)), fmtDur(report.Percentile(lats, 99)), fmtDur(report.Percentile(lats, 100)), fmtDur(worstP99),
			fmtBytes(rw.perClient(heapStacks)), fmtBytes(rw.perClient(rssOf)), fmtDur(rw.cpuPerChange()),
		})
		detail.Rows = append(detail.Rows, []string{
			fmt.Sprint(rw.n), rw.protocol, targetTitle(rw.target),
			fmt.Sprintf("%.1f", rw.perClient(goroutinesOf)),
			fmtBytes(rw.perClient(heapOnly)), fmtBytes(rw.perClient(stacksOnly)), fmtBytes(rw.perClientAfter(heapStacks)),
			fmt.Sprintf("%.1f MB", alloc/1e6), fmt.Sprintf("%.1f", gcs), rw.responsesPerChange(),
			fmtDur(time.Duration(rw.mean(func(m *measurement) float64 { return float64(m.clientConnectCPU) }))),
			fmtDur(rw.clientCPUPerChange()),
			fmt.Sprintf("%.0f MB", rw.mean(func(m *measurement) float64 { return float64(m.clientRSS) })/1e6),
			fmt.Sprintf("%.2f cores", rw.otherLoad()),
		})
	}
	out := []report.Table{main}
	if slices.Contains(r.cfg.Targets, targetSluice) && slices.Contains(r.cfg.Targets, targetSnapshotCache) {
		ratios := report.Table{
			Title:   "Sluice ÷ SnapshotCache (below 1.00× Sluice is ahead)",
			Header:  []string{"clients", "protocol", "connect", "CPU to connect", "p50", "p99", "max", "heap+stacks / client", "RSS / client", "CPU / change"},
			Numeric: 2,
		}
		for _, rw := range r.rows {
			if rw.target != targetSluice {
				continue
			}
			b := r.find(rw.n, rw.protocol, targetSnapshotCache)
			if b == nil {
				continue
			}
			sl, bl := rw.lats(), b.lats()
			ratios.Rows = append(ratios.Rows, []string{
				fmt.Sprint(rw.n), rw.protocol,
				fmtRatio(report.Ratio(float64(rw.connect()), float64(b.connect()))),
				fmtRatio(report.Ratio(float64(rw.connectCPU()), float64(b.connectCPU()))),
				fmtRatio(report.Ratio(float64(report.Percentile(sl, 50)), float64(report.Percentile(bl, 50)))),
				fmtRatio(report.Ratio(float64(report.Percentile(sl, 99)), float64(report.Percentile(bl, 99)))),
				fmtRatio(report.Ratio(float64(report.Percentile(sl, 100)), float64(report.Percentile(bl, 100)))),
				fmtRatio(report.Ratio(rw.perClient(heapStacks), b.perClient(heapStacks))),
				fmtRatio(report.Ratio(rw.perClient(rssOf), b.perClient(rssOf))),
				fmtRatio(report.Ratio(float64(rw.cpuPerChange()), float64(b.cpuPerChange()))),
			})
		}
		out = append(out, ratios)
	}
	return append(out, detail)
}

// verdicts compares Sluice's rows with the targets.
func (r *results) verdicts() []string {
	var out []string
	for _, rw := range r.rows {
		if rw.target != targetSluice {
			continue
		}
		at := fmt.Sprintf("%d clients, %s", rw.n, rw.protocol)
		if rw.n == targetClients {
			out = append(out, fmt.Sprintf("%s: all %d connected and in sync, %d of %d rounds: met", at, rw.n, len(rw.ms), r.cfg.Rounds))
		}
		p99 := report.Percentile(rw.lats(), 99)
		worst, _ := rw.worstChange()
		out = append(out, fmt.Sprintf("%s: convergence p99 %s (worst single change %s); target < %v: %s",
			at, fmtDur(p99), fmtDur(worst), targetP99, report.MetOrMissed(p99 < targetP99)))
		hs, rs := rw.perClient(heapStacks), rw.perClient(rssOf)
		out = append(out, fmt.Sprintf("%s: %s heap+stacks, %s RSS per idle client; target < %s: %s",
			at, fmtBytes(hs), fmtBytes(rs), fmtBytes(targetBytesClient), report.MetOrMissed(hs < targetBytesClient && rs < targetBytesClient)))
		if b := r.find(rw.n, rw.protocol, targetSnapshotCache); b != nil {
			var ahead, behind []string
			cmp := func(name string, s, base float64) {
				if s <= base {
					ahead = append(ahead, name)
				} else {
					behind = append(behind, fmt.Sprintf("%s %.2f×", name, s/base))
				}
			}
			sl, bl := rw.lats(), b.lats()
			cmp("p99", float64(report.Percentile(sl, 99)), float64(report.Percentile(bl, 99)))
			cmp("max", float64(report.Percentile(sl, 100)), float64(report.Percentile(bl, 100)))
			cmp("memory", rw.perClient(heapStacks), b.perClient(heapStacks))
			cmp("CPU/change", float64(rw.cpuPerChange()), float64(b.cpuPerChange()))
			line := fmt.Sprintf("%s: ahead of SnapshotCache on %s", at, strings.Join(ahead, ", "))
			if len(ahead) == 0 {
				line = fmt.Sprintf("%s: ahead of SnapshotCache on nothing", at)
			}
			if len(behind) > 0 {
				line += fmt.Sprintf("; behind on %s", strings.Join(behind, ", "))
			}
			out = append(out, line+": "+report.MetOrMissed(len(behind) == 0))
		}
	}
	return out
}

// Report is the results as the program prints them.
func (r *results) Report() report.Report {
	return report.Report{Machine: r.machine, Tables: r.tables(), Verdicts: r.verdicts()}
}
