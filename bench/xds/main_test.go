package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/sluice/sluice/bench/internal/harness"
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
	cfg.Log = harness.Logger(false)
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
	res.Report().Text(&text)
	res.Report().Markdown(&md)
	for _, want := range []string{"Convergence, memory and CPU", "Sluice ÷ SnapshotCache", "convergence p99"} {
		if !strings.Contains(text.String(), want) || !strings.Contains(md.String(), want) {
			t.Errorf("the text and Markdown reports should both contain %q; text:\n%s\nmarkdown:\n%s", want, text.String(), md.String())
		}
	}

	// Everything the run started has stopped.
	if n, stacks := harness.WaitGoroutines(goroutines+5, 10*time.Second); n > goroutines+5 {
		t.Errorf("%d goroutines still running after the run, %d before:\n%s", n, goroutines, stacks)
	}
}
