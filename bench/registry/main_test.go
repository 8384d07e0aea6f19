package main

import (
	"bytes"
	"context"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sluice/sluice/bench/internal/harness"
)

// TestShortRun runs every phase and path with tiny parameters and checks
// that each measured something. It asserts no timing: the numbers belong
// in the README.
func TestShortRun(t *testing.T) {
	goroutines := runtime.NumGoroutine()
	cfg := shortConfig()
	cfg.Dir = t.TempDir()
	cfg.Concurrency = []int{3}
	cfg.Endpoints = 6
	cfg.Waiters = 20
	cfg.Log = harness.Logger(false)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	res, err := run(ctx, cfg)
	if err != nil {
		t.Fatalf("run: %v", err)
	}

	for _, phase := range []struct {
		name  string
		paths []ratePath
		rows  []rateRow
	}{
		{phaseRegister, registerPaths, res.register},
		{phaseHeartbeat, heartbeatPaths, res.heartbeat},
	} {
		if want := len(cfg.Concurrency) * len(phase.paths); len(phase.rows) != want {
			t.Errorf("%s: got %d rows, want %d", phase.name, len(phase.rows), want)
		}
		for _, row := range phase.rows {
			if row.s.ops == 0 || row.s.elapsed <= 0 {
				t.Errorf("%s through %s with %d workers: %d operations in %v, want some", phase.name, row.path, row.c, row.s.ops, row.s.elapsed)
			}
		}
	}
	for _, row := range res.register {
		// Every registration writes once; Sluice's, through the registry,
		// also claim their checks and write their status.
		if got := row.s.perOp(float64(row.s.revs)); got < 1 {
			t.Errorf("registrations through %s with %d workers: %.2f etcd writes each, want at least 1", row.path, row.c, got)
		}
	}
	if want := len(wakePaths()) - len(res.skipped); len(res.wake) != want {
		t.Errorf("blocking: got %d rows (%d paths left out: %v), want %d", len(res.wake), len(res.skipped), res.skipped, want)
	}
	if !slices.ContainsFunc(res.wake, func(r wakeRow) bool { return r.path == consulHealthPath.name }) {
		t.Errorf("blocking: no row for %s", consulHealthPath.name)
	}
	for _, row := range res.wake {
		if want := cfg.Changes * cfg.Waiters; len(row.s.lats) != want {
			t.Errorf("blocking through %s: %d waiters' returns measured, want %d", row.path, len(row.s.lats), want)
		}
		if len(row.s.writes) != cfg.Changes {
			t.Errorf("blocking through %s: %d changes, want %d", row.path, len(row.s.writes), cfg.Changes)
		}
	}

	var text, md bytes.Buffer
	res.Report().Text(&text)
	res.Report().Markdown(&md)
	for _, want := range []string{"Registrations (", "Heartbeats (", "Blocking queries woken by one change (", "registrations through Consul (ServiceRegister):"} {
		if !strings.Contains(text.String(), want) || !strings.Contains(md.String(), want) {
			t.Errorf("the text and Markdown reports should both contain %q; text:\n%s\nmarkdown:\n%s", want, text.String(), md.String())
		}
	}

	// Everything the run started has stopped.
	if n, stacks := harness.WaitGoroutines(goroutines+5, 10*time.Second); n > goroutines+5 {
		t.Errorf("%d goroutines still running after the run, %d before:\n%s", n, goroutines, stacks)
	}
}
