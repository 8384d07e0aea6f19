package main

import (
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/sluice/sluice/bench/internal/report"
)

func describeMachine() string {
	return report.DescribeMachine("wrk, the upstream and the proxy under load")
}

// summary pools a target's rounds: the mean throughput, the median of the
// rounds' p50 and the worst round's p99 (wrk gives no raw samples to pool).
type summary struct {
	rps      float64
	p50, p99 time.Duration
	errors   int64
}

func summarize(ls []load) summary {
	var s summary
	var p50s []time.Duration
	for _, l := range ls {
		s.rps += l.rps / float64(len(ls))
		p50s = append(p50s, l.p50)
		s.p99 = max(s.p99, l.p99)
		s.errors += l.errors
	}
	slices.Sort(p50s)
	if len(p50s) > 0 {
		s.p50 = p50s[len(p50s)/2]
	}
	return s
}

func (r *results) Report() report.Report {
	rep := report.Report{
		Machine: r.machine,
		Notes: append([]string{fmt.Sprintf("wrk -t%d, %s per measurement × %d rounds; upstream answers %d bytes",
			r.cfg.Threads, r.cfg.Duration, r.cfg.Rounds, len(body))}, r.notes...),
	}
	t := report.Table{
		Title:   "Throughput and latency through each proxy (ratios: the proxy ÷ nginx, ÷ Caddy)",
		Header:  []string{"connections", "target", "requests/s", "p50", "p99", "errors", "req/s ÷ nginx", "req/s ÷ Caddy", "p99 ÷ nginx"},
		Numeric: 2,
	}
	for _, conns := range r.cfg.Connections {
		sums := map[string]summary{}
		for _, name := range r.targets {
			sums[name] = summarize(r.loads[conns][name])
		}
		for _, name := range r.targets {
			s := sums[name]
			t.Rows = append(t.Rows, []string{
				fmt.Sprint(conns), name, fmt.Sprintf("%.0f", s.rps), fmtDur(s.p50), fmtDur(s.p99), fmt.Sprint(s.errors),
				fmtRatio(report.Ratio(s.rps, sums[nginx].rps)), fmtRatio(report.Ratio(s.rps, sums[caddy].rps)),
				fmtRatio(report.Ratio(float64(s.p99), float64(sums[nginx].p99))),
			})
		}
		if g, ok := sums[sluice]; ok && len(r.loads[conns][sluice]) > 0 {
			n, c := sums[nginx], sums[caddy]
			rep.Verdicts = append(rep.Verdicts,
				fmt.Sprintf("%d connections: throughput %.0f/s is %s Caddy's (target ≥ 1×): %s; %s nginx's (target ≥ 0.70×): %s; p99 %s is %s nginx's (target ≤ 1.5×): %s",
					conns, g.rps, fmtRatio(report.Ratio(g.rps, c.rps)), report.MetOrMissed(g.rps >= c.rps),
					fmtRatio(report.Ratio(g.rps, n.rps)), report.MetOrMissed(g.rps >= 0.7*n.rps),
					fmtDur(g.p99), fmtRatio(report.Ratio(float64(g.p99), float64(n.p99))), report.MetOrMissed(float64(g.p99) <= 1.5*float64(n.p99))))
		}
	}
	rep.Tables = []report.Table{t}
	return rep
}

func fmtDur(d time.Duration) string {
	switch {
	case d >= time.Second:
		return fmt.Sprintf("%.2f s", d.Seconds())
	case d >= time.Millisecond:
		return fmt.Sprintf("%.2f ms", float64(d)/float64(time.Millisecond))
	}
	return fmt.Sprintf("%d µs", d.Microseconds())
}

func fmtRatio(r float64) string {
	if math.IsNaN(r) || math.IsInf(r, 0) {
		return "—"
	}
	return fmt.Sprintf("%.2f×", r)
}
