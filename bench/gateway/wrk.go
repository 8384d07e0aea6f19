package main

import (
	"bufio"
	"context"
	"fmt"
	"math"
	"os/exec"
	"strconv"
	"strings"
	"time"
)

// load is what one wrk run measured.
type load struct {
	rps      float64
	p50, p99 time.Duration
	requests int64
	// errors counts non-2xx/3xx answers and socket errors.
	errors int64
}

// runWrk loads url with wrk and parses its report.
func runWrk(ctx context.Context, wrk string, threads, conns int, d time.Duration, url string) (load, error) {
	args := []string{"-t", strconv.Itoa(threads), "-c", strconv.Itoa(conns), "-d", fmt.Sprintf("%ds", int(d.Seconds())), "--latency", url}
	out, err := exec.CommandContext(ctx, wrk, args...).CombinedOutput()
	if err != nil {
		return load{}, fmt.Errorf("wrk %s: %w\n%s", strings.Join(args, " "), err, out)
	}
	return parseWrk(string(out))
}

// parseWrk reads wrk's text report: "Requests/sec:", the latency
// distribution's 50% and 99% lines, the request count and the error lines.
func parseWrk(out string) (load, error) {
	var l load
	var haveRPS, have50, have99 bool
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		switch {
		case len(f) == 2 && f[0] == "Requests/sec:":
			v, err := strconv.ParseFloat(f[1], 64)
			if err != nil {
				return l, fmt.Errorf("wrk: Requests/sec %q: %w", f[1], err)
			}
			l.rps, haveRPS = v, true
		case len(f) == 2 && (f[0] == "50%" || f[0] == "99%"):
			d, err := parseWrkDuration(f[1])
			if err != nil {
				return l, err
			}
			if f[0] == "50%" {
				l.p50, have50 = d, true
			} else {
				l.p99, have99 = d, true
			}
		case len(f) >= 3 && f[1] == "requests" && f[2] == "in":
			n, err := strconv.ParseInt(f[0], 10, 64)
			if err != nil {
				return l, fmt.Errorf("wrk: request count %q: %w", f[0], err)
			}
			l.requests = n
		case len(f) == 5 && f[0] == "Non-2xx":
			n, _ := strconv.ParseInt(f[4], 10, 64)
			l.errors += n
		case len(f) >= 2 && f[0] == "Socket" && f[1] == "errors:":
			// Socket errors: connect 0, read 0, write 0, timeout 0
			for i := 3; i < len(f); i += 2 {
				n, _ := strconv.ParseInt(strings.TrimSuffix(f[i], ","), 10, 64)
				l.errors += n
			}
		}
	}
	if !haveRPS || !have50 || !have99 {
		return l, fmt.Errorf("wrk: no Requests/sec or latency distribution in its output:\n%s", out)
	}
	return l, nil
}

// parseWrkDuration reads wrk's durations: 635.00us, 2.39ms, 1.02s, 2.00m.
func parseWrkDuration(s string) (time.Duration, error) {
	for _, u := range []struct {
		suffix string
		unit   time.Duration
	}{{"us", time.Microsecond}, {"ms", time.Millisecond}, {"m", time.Minute}, {"s", time.Second}} {
		if v, ok := strings.CutSuffix(s, u.suffix); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				return 0, fmt.Errorf("wrk: duration %q: %w", s, err)
			}
			// Rounded: 4.18 ms is 4179999.99… ns in floating point.
			return time.Duration(math.Round(f * float64(u.unit))), nil
		}
	}
	return 0, fmt.Errorf("wrk: duration %q has no unit", s)
}
