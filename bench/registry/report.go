package main

import (
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/sluice/sluice/bench/internal/report"
)

type results struct {
	cfg     config
	machine string
	// payload is the size of the stored JSON of a native registration;
	// consulPayload that of a Consul one (0 when not measured).
	payload, consulPayload int
	register               []rateRow
	heartbeat              []rateRow
	wake                   []wakeRow
	// skipped are the paths the server does not serve yet.
	skipped []string
}

// wakeTarget is issue 4's bound for one blocking query ("returns within
// 100 ms of a change"), held here against the last of all the waiters.
const wakeTargetLatency = 100 * time.Millisecond

// ratio formats a ÷ b; "—" for the baseline itself.
func ratio(a, b float64, ok bool) string {
	if x := report.Ratio(a, b); ok && !math.IsInf(x, 1) {
		return fmt.Sprintf("%.2f×", x)
	} else if ok {
		return "∞"
	}
	return "—"
}

// dur rounds a duration for a table: µs below 1 ms, 0.1 ms below 1 s.
func dur(d time.Duration) string {
	switch {
	case d < time.Millisecond:
		return fmt.Sprintf("%d µs", d.Microseconds())
	case d < time.Second:
		return fmt.Sprintf("%.1f ms", float64(d)/float64(time.Millisecond))
	}
	return fmt.Sprintf("%.2f s", d.Seconds())
}

// rateTable is a table of rate rows, each against the baseline path at
// the same concurrency.
func rateTable(title, unit, baseline string, rows []rateRow, drain bool) report.Table {
	t := report.Table{
		Title:   title,
		Header:  []string{"workers", "path", unit + "/s", "p50", "p99", "CPU/op", "etcd reads/op", "raft proposals/op", "etcd writes/op"},
		Numeric: 2,
	}
	if drain {
		t.Header = append(t.Header, "settled after", "settled/s")
	}
	t.Header = append(t.Header, "time/op ÷ raw", "p50 ÷ raw", "CPU/op ÷ raw")
	for _, row := range rows {
		b := baseRow(rows, row.c, baseline)
		ok := row.path != baseline && b != nil
		if b == nil {
			b = &row
		}
		cells := []string{
			fmt.Sprint(row.c), row.path,
			fmt.Sprintf("%.0f", row.s.opsPerSec()), dur(row.s.percentile(50)), dur(row.s.percentile(99)), dur(row.s.cpuPerOp()),
			fmt.Sprintf("%.2f", row.s.perOp(row.s.etcd.reads)), fmt.Sprintf("%.2f", row.s.perOp(row.s.etcd.proposals)), fmt.Sprintf("%.2f", row.s.perOp(float64(row.s.revs))),
		}
		if drain {
			cells = append(cells, dur(row.s.meanDrain()), fmt.Sprintf("%.0f", row.s.settledPerSec()))
		}
		t.Rows = append(t.Rows, append(cells,
			ratio(b.s.opsPerSec(), row.s.opsPerSec(), ok),
			ratio(float64(row.s.percentile(50)), float64(b.s.percentile(50)), ok),
			ratio(float64(row.s.cpuPerOp()), float64(b.s.cpuPerOp()), ok),
		))
	}
	return t
}

func baseRow(rows []rateRow, c int, baseline string) *rateRow {
	for i := range rows {
		if rows[i].c == c && rows[i].path == baseline {
			return &rows[i]
		}
	}
	return nil
}

func (r *results) tables() []report.Table {
	var out []report.Table
	if len(r.register) > 0 {
		out = append(out, rateTable(
			fmt.Sprintf("Registrations (%v per measurement × %d rounds; ratios: Sluice ÷ %s at the same concurrency)", r.cfg.Duration, r.cfg.Rounds, registerBaseline),
			"registrations", registerBaseline, r.register, true))
	}
	if len(r.heartbeat) > 0 {
		out = append(out, rateTable(
			fmt.Sprintf("Heartbeats (%d TTL registrations kept alive per path; %v per measurement × %d rounds; ratios: Sluice ÷ %s at the same concurrency)",
				r.cfg.Endpoints, r.cfg.Duration, r.cfg.Rounds, heartbeatBaseline),
			"heartbeats", heartbeatBaseline, r.heartbeat, false))
	}
	if len(r.wake) > 0 {
		t := report.Table{
			Title: fmt.Sprintf("Blocking queries woken by one change (%d waiters, %d changes; time from the change until each waiter returned, all waiters of all changes pooled; ratios: Sluice ÷ %s)",
				r.cfg.Waiters, r.cfg.Changes, wakeBaseline),
			Header:  []string{"waiters", "path", "change acknowledged", "p50", "p99", "max", "all returned (median change)", "CPU/change", "etcd reads/change", "p50 ÷ raw", "p99 ÷ raw", "max ÷ raw", "CPU/change ÷ raw"},
			Numeric: 2,
		}
		var base *wakeRow
		for i := range r.wake {
			if r.wake[i].path == wakeBaseline {
				base = &r.wake[i]
			}
		}
		for _, row := range r.wake {
			b, ok := base, base != nil && row.path != wakeBaseline
			if b == nil {
				b = &row
			}
			t.Rows = append(t.Rows, []string{
				fmt.Sprint(r.cfg.Waiters), row.path,
				dur(report.Percentile(row.s.writes, 50)), dur(row.s.percentile(50)), dur(row.s.percentile(99)), dur(row.s.percentile(100)),
				dur(report.Percentile(row.s.last, 50)), dur(row.s.cpuPerChange()), fmt.Sprintf("%.0f", row.s.readsPerChange()),
				ratio(float64(row.s.percentile(50)), float64(b.s.percentile(50)), ok),
				ratio(float64(row.s.percentile(99)), float64(b.s.percentile(99)), ok),
				ratio(float64(row.s.percentile(100)), float64(b.s.percentile(100)), ok),
				ratio(float64(row.s.cpuPerChange()), float64(b.s.cpuPerChange()), ok),
			})
		}
		out = append(out, t)
	}
	return out
}

// rateVerdict sums up one Sluice path of a rate phase: its time per
// operation against the baseline at each concurrency level.
func rateVerdict(what, baseline string, rows []rateRow, path string) string {
	var per []string
	worst := 0.0
	var revs float64
	for _, row := range rows {
		b := baseRow(rows, row.c, baseline)
		if row.path != path || b == nil {
			continue
		}
		x := report.Ratio(b.s.opsPerSec(), row.s.opsPerSec())
		worst = max(worst, x)
		revs = max(revs, row.s.perOp(float64(row.s.revs)))
		per = append(per, fmt.Sprintf("%.0f/s (%.2f×) with %d", row.s.opsPerSec(), x, row.c))
	}
	if len(per) == 0 {
		return ""
	}
	return fmt.Sprintf("%s through %s: %s workers; time/op at most %.2f× %s; up to %.2f etcd writes per operation",
		what, path, strings.Join(per, ", "), worst, baseline, revs)
}

// verdicts sums the results up, one line per Sluice path.
func (r *results) verdicts() []string {
	var out []string
	for _, phase := range []struct {
		what, baseline string
		rows           []rateRow
	}{
		{"registrations", registerBaseline, r.register},
		{"heartbeats", heartbeatBaseline, r.heartbeat},
	} {
		var paths []string
		for _, row := range phase.rows {
			if row.path != phase.baseline && !strings.HasPrefix(row.path, "etcd ") && !slices.Contains(paths, row.path) {
				paths = append(paths, row.path)
			}
		}
		for _, p := range paths {
			out = append(out, rateVerdict(phase.what, phase.baseline, phase.rows, p))
		}
	}
	for _, row := range r.wake {
		worst := row.s.percentile(100)
		line := fmt.Sprintf("%d blocking waiters through %s: p50 %s, p99 %s, all returned within %s of the change (median change %s)",
			r.cfg.Waiters, row.path, dur(row.s.percentile(50)), dur(row.s.percentile(99)), dur(worst), dur(report.Percentile(row.s.last, 50)))
		if row.path != wakeBaseline {
			line += fmt.Sprintf("; issue 4's %v for one query, held against the last of them: %s", wakeTargetLatency, report.MetOrMissed(worst <= wakeTargetLatency))
		}
		out = append(out, line)
	}
	return out
}

// Report is the results as the program prints them.
func (r *results) Report() report.Report {
	notes := []string{fmt.Sprintf("Registration: an Endpoint of %d bytes of stored JSON (the raw baseline writes as many)", r.payload)}
	if r.consulPayload > 0 {
		notes = append(notes, fmt.Sprintf("Consul registration: an Endpoint of %d bytes of stored JSON", r.consulPayload))
	}
	for _, p := range r.skipped {
		notes = append(notes, fmt.Sprintf("Left out: %s (%v)", p, errNotServed))
	}
	return report.Report{
		Machine:  r.machine,
		Notes:    notes,
		Tables:   r.tables(),
		Verdicts: r.verdicts(),
	}
}
