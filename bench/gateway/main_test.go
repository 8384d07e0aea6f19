package main

import (
	"strings"
	"testing"
	"time"
)

// wrkOutput is what wrk 4.1 prints with --latency (and errors).
const wrkOutput = `Running 10s test @ http://127.0.0.1:8080/
  2 threads and 64 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency     1.20ms    2.01ms  42.78ms   93.11%
    Req/Sec    31.02k     3.11k   38.50k    70.00%
  Latency Distribution
     50%  635.00us
     75%    1.12ms
     90%    2.39ms
     99%   10.57ms
  617339 requests in 10.00s, 74.53MB read
  Socket errors: connect 0, read 3, write 0, timeout 2
  Non-2xx or 3xx responses: 7
Requests/sec:  61727.95
Transfer/sec:      7.45MB
`

func TestParseWrk(t *testing.T) {
	l, err := parseWrk(wrkOutput)
	if err != nil {
		t.Fatal(err)
	}
	want := load{rps: 61727.95, p50: 635 * time.Microsecond, p99: 10570 * time.Microsecond, requests: 617339, errors: 12}
	if l != want {
		t.Errorf("parseWrk = %+v, want %+v", l, want)
	}
	if _, err := parseWrk("Running 1s test @ http://x/\nunable to connect to 127.0.0.1:1 Connection refused\n"); err == nil {
		t.Error("parseWrk of a failed run succeeded")
	}
}

func TestParseWrkDuration(t *testing.T) {
	for in, want := range map[string]time.Duration{
		"635.00us": 635 * time.Microsecond, "2.39ms": 2390 * time.Microsecond,
		"1.50s": 1500 * time.Millisecond, "2.00m": 2 * time.Minute,
		"4.18ms": 4180 * time.Microsecond, "16.58ms": 16580 * time.Microsecond,
	} {
		if got, err := parseWrkDuration(in); err != nil || got != want {
			t.Errorf("parseWrkDuration(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	if _, err := parseWrkDuration("12"); err == nil {
		t.Error(`parseWrkDuration("12") succeeded without a unit`)
	}
}

func TestValidate(t *testing.T) {
	cfg := defaultConfig()
	cfg.Connections = []int{1}
	if err := cfg.validate(); err == nil || !strings.Contains(err.Error(), "at least one connection per thread") {
		t.Errorf("validate with 1 connection and 2 threads: %v", err)
	}
	cfg = defaultConfig()
	cfg.Duration = 500 * time.Millisecond
	if err := cfg.validate(); err == nil {
		t.Error("validate accepted a sub-second duration")
	}
}

func TestReportVerdicts(t *testing.T) {
	cfg := defaultConfig()
	cfg.Connections = []int{64}
	r := &results{cfg: cfg, machine: "test machine", targets: []string{direct, sluice, nginx, caddy}, loads: map[int]map[string][]load{
		64: {
			direct: {{rps: 100000, p50: time.Millisecond, p99: 3 * time.Millisecond}},
			sluice: {{rps: 40000, p50: 2 * time.Millisecond, p99: 9 * time.Millisecond}},
			nginx:  {{rps: 50000, p50: time.Millisecond, p99: 5 * time.Millisecond}},
			caddy:  {{rps: 35000, p50: 2 * time.Millisecond, p99: 8 * time.Millisecond}},
		},
	}}
	var b strings.Builder
	r.Report().Markdown(&b)
	out := b.String()
	for _, want := range []string{
		"| 64 | Sluice gateway | 40000 | 2.00 ms | 9.00 ms | 0 | 0.80× | 1.14× | 1.80× |",
		"throughput 40000/s is 1.14× Caddy's (target ≥ 1×): met",
		"0.80× nginx's (target ≥ 0.70×): met",
		"p99 9.00 ms is 1.80× nginx's (target ≤ 1.5×): MISSED",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("report lacks %q:\n%s", want, out)
		}
	}
}
