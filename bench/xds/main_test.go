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

// TestMain lets the test binary be the clients' child process too: run
// starts os.Executable() with roleEnv set.
func TestMain(m *testing.M) {
	if os.Getenv(roleEnv) == "clients" {
		os.Exit(clientsMain())
	}
	os.Exit(m.Run())
}

// TestShortRun runs every target and protocol with a few clients and
// checks that each phase measured every client. It asserts no timing: the
// numbers belong in the README.
func TestShortRun(t *testing.T) {
	goroutines := runtime.NumGoroutine()
	cfg := shortConfig()
	cfg.Clients = []int{3, 20}
	cfg.Changes = 2
	cfg.Log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError}))
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	res, err := run(ctx, cfg)
	if err != nil {
		t.Fatalf("run: %v", err)
	}

	if want := len(cfg.Clients) * len(cfg.Protocols) * len(cfg.Targets); len(res.rows) != want {
		t.Fatalf("got %d rows, want %d", len(res.rows), want)
	}
	for _, rw := range res.rows {
		name := fmt.Sprintf("%s, %s, %d clients", rw.target, rw.protocol, rw.n)
		if len(rw.ms) != cfg.Rounds {
			t.Errorf("%s: %d measurements, want one per round (%d)", name, len(rw.ms), cfg.Rounds)
		}
		for _, m := range rw.ms {
			if m.connect <= 0 {
				t.Errorf("%s: connect time %v, want > 0", name, m.connect)
			}
			if len(m.changes) != cfg.Changes {
				t.Errorf("%s: %d changes measured, want %d", name, len(m.changes), cfg.Changes)
			}
			for k, c := range m.changes {
				if len(c.lats) != rw.n {
					t.Errorf("%s, change %d: %d clients' latencies, want %d", name, k+1, len(c.lats), rw.n)
				}
			}
			if m.idle.rss == 0 || m.idle.heapInuse == 0 {
				t.Errorf("%s: memory not read: %+v", name, m.idle)
			}
		}
	}

	var text, md bytes.Buffer
	res.text(&text)
	res.markdown(&md)
	for _, want := range []string{"Convergence, memory and CPU", "Sluice ÷ SnapshotCache", "convergence p99"} {
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
		{ms(10, 9, 8, 7, 6, 5, 4, 3, 2, 1), 90, 9 * time.Millisecond},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("p%v of %v", tt.p, tt.lats), func(t *testing.T) {
			if got := percentile(tt.lats, tt.p); got != tt.want {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}
}

func TestRoundOrder(t *testing.T) {
	in := []string{"a", "b"}
	if got := fmt.Sprint(roundOrder(in, 0)); got != "[a b]" {
		t.Errorf("round 0: got %s, want [a b]", got)
	}
	if got := fmt.Sprint(roundOrder(in, 1)); got != "[b a]" {
		t.Errorf("round 1: got %s, want [b a]", got)
	}
	if fmt.Sprint(in) != "[a b]" {
		t.Errorf("roundOrder changed its input: %v", in)
	}
}
