package main

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"
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
	cfg.Log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError}))
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
	res.text(&text)
	res.markdown(&md)
	for _, want := range []string{"Writes (", "Watch fan-out (", "writes through api: worst time/op"} {
		if !strings.Contains(text.String(), want) || !strings.Contains(md.String(), want) {
			t.Errorf("the text and Markdown reports should both contain %q; text:\n%s\nmarkdown:\n%s", want, text.String(), md.String())
		}
	}

	// Everything the run started has stopped.
	deadline := time.Now().Add(10 * time.Second)
	for runtime.NumGoroutine() > goroutines+5 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if n := runtime.NumGoroutine(); n > goroutines+5 {
		buf := make([]byte, 1<<20)
		t.Errorf("%d goroutines still running after the run, %d before:\n%s", n, goroutines, buf[:runtime.Stack(buf, true)])
	}
}

func TestPercentile(t *testing.T) {
	ms := func(ns ...int) []time.Duration {
		out := make([]time.Duration, len(ns))
		for i, n := range ns {
			out[i] = time.Duration(n) * time.Millisecond
		}
		return out
	}
	tests := []struct {
		lats []time.Duration
		p    float64
		want time.Duration
	}{
		{nil, 50, 0},
		{ms(7), 99, 7 * time.Millisecond},
		{ms(4, 1, 3, 2), 50, 2 * time.Millisecond},
		{ms(4, 1, 3, 2), 99, 4 * time.Millisecond},
		{ms(4, 1, 3, 2), 100, 4 * time.Millisecond},
		{ms(10, 9, 8, 7, 6, 5, 4, 3, 2, 1), 90, 9 * time.Millisecond},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("p%v of %v", tt.p, tt.lats), func(t *testing.T) {
			if got := (sample{lats: tt.lats}).percentile(tt.p); got != tt.want {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}
}

func TestRoundOrder(t *testing.T) {
	in := []string{"a", "b", "c"}
	if got := fmt.Sprint(roundOrder(in, 0)); got != "[a b c]" {
		t.Errorf("round 0: got %s, want [a b c]", got)
	}
	if got := fmt.Sprint(roundOrder(in, 1)); got != "[c b a]" {
		t.Errorf("round 1: got %s, want [c b a]", got)
	}
	if fmt.Sprint(in) != "[a b c]" {
		t.Errorf("roundOrder changed its input: %v", in)
	}
}
