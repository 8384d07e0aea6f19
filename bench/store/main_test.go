package main

import (
	"bytes"
	"context"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/sluice/sluice/bench/internal/harness"
)

// TestShortRun runs every phase with tiny parameters and checks that each
// measured something. It asserts no timing: the numbers belong in the README.
func TestShortRun(t *testing.T) {
	goroutines := runtime.NumGoroutine()
	cfg := shortConfig()
	cfg.Dir = t.TempDir()
	cfg.Duration = 100 * time.Millisecond
	cfg.Concurrency = []int{1, 3}
	cfg.Watchers = []int{3, 20}
	cfg.Changes = 4
	cfg.Rounds = 2
	cfg.Log = harness.Logger(false)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	res, err := run(ctx, cfg)
	if err != nil {
		t.Fatalf("run: %v", err)
	}

	wantWrites := 0
	for _, op := range writeOps {
		for _, p := range writePaths(cfg) {
			if op == "create" && p.create == nil {
				continue
			}
			wantWrites += len(cfg.Concurrency)
		}
	}
	if len(res.writes) != wantWrites {
		t.Errorf("got %d write rows, want %d", len(res.writes), wantWrites)
	}
	for _, row := range res.writes {
		if row.s.ops == 0 || row.s.elapsed <= 0 {
			t.Errorf("%s through %s with %d writers: %d ops in %v, want some", row.op, row.path, row.c, row.s.ops, row.s.elapsed)
		}
	}
	if want := len(cfg.Watchers) * len(watchPaths(cfg)); len(res.watch) != want {
		t.Errorf("got %d watch rows, want %d", len(res.watch), want)
	}
	for _, row := range res.watch {
		if len(row.s.lats) != cfg.Changes {
			t.Errorf("%d watchers through %s: %d changes measured, want %d", row.n, row.path, len(row.s.lats), cfg.Changes)
		}
	}

	var text, md bytes.Buffer
	res.Report().Text(&text)
	res.Report().Markdown(&md)
	for _, want := range []string{"Writes (", "Watch fan-out (", "writes through api: worst time/op"} {
		if !strings.Contains(text.String(), want) || !strings.Contains(md.String(), want) {
			t.Errorf("the text and Markdown reports should both contain %q; text:\n%s\nmarkdown:\n%s", want, text.String(), md.String())
		}
	}

	// Everything the run started has stopped.
	if n, stacks := harness.WaitGoroutines(goroutines+5, 10*time.Second); n > goroutines+5 {
		t.Errorf("%d goroutines still running after the run, %d before:\n%s", n, goroutines, stacks)
	}
}
