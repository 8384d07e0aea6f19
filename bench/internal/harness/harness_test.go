package harness

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sluice/sluice/bench/internal/report"
)

// results is what a fake run measured.
type results struct{ rep report.Report }

func (r *results) Report() report.Report { return r.rep }

func TestRun(t *testing.T) {
	rep := report.Report{Machine: "M", Tables: []report.Table{{Title: "T", Header: []string{"a"}, Rows: [][]string{{"1"}}}}}
	measure := func(context.Context) (*results, error) { return &results{rep}, nil }
	var text, md bytes.Buffer
	rep.Text(&text)
	rep.Markdown(&md)
	tests := []struct {
		name     string
		markdown bool
		want     string
	}{
		{"text", false, text.String()},
		{"markdown", true, md.String()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out bytes.Buffer
			if err := Run("", tt.markdown, &out, measure); err != nil {
				t.Fatalf("Run: %v", err)
			}
			if out.String() != tt.want {
				t.Errorf("got:\n%s\nwant:\n%s", out.String(), tt.want)
			}
		})
	}

	t.Run("error", func(t *testing.T) {
		failed := errors.New("failed")
		var out bytes.Buffer
		err := Run("", false, &out, func(context.Context) (*results, error) { return nil, failed })
		if !errors.Is(err, failed) || out.Len() > 0 {
			t.Errorf("got error %v and output %q, want %v and nothing", err, out.String(), failed)
		}
	})

	t.Run("cpuprofile", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "cpu.out")
		if err := Run(path, false, &bytes.Buffer{}, measure); err != nil {
			t.Fatalf("Run: %v", err)
		}
		if err := Run(filepath.Join(path, "missing", "cpu.out"), false, &bytes.Buffer{}, measure); err == nil {
			t.Error("Run with a profile it cannot create: got no error, want one")
		}
	})
}

func TestParseFlags(t *testing.T) {
	tests := []struct {
		args    []string
		want    []string
		wantErr string
	}{
		{nil, nil, ""},
		{[]string{"-n", "3", "-v"}, []string{"n", "v"}, ""},
		{[]string{"-n=1", "extra"}, nil, `unexpected arguments ["extra"]`},
		{[]string{"-unknown"}, nil, "flag provided but not defined: -unknown"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			fs := flag.NewFlagSet("test", flag.ContinueOnError)
			fs.SetOutput(io.Discard)
			fs.Int("n", 1, "")
			fs.Bool("v", false, "")
			fs.String("s", "", "")
			set, err := ParseFlags(fs, tt.args)
			if tt.wantErr != "" {
				if err == nil || err.Error() != tt.wantErr {
					t.Errorf("got %v, error %v; want error %q", set, err, tt.wantErr)
				}
				return
			}
			var got []string
			for name := range set {
				got = append(got, name)
			}
			slices.Sort(got)
			if err != nil || !slices.Equal(got, tt.want) {
				t.Errorf("got %v, error %v; want %v", got, err, tt.want)
			}
		})
	}
}

func TestLogger(t *testing.T) {
	tests := []struct {
		verbose bool
		level   slog.Level
		want    bool
	}{
		{false, slog.LevelError, true},
		{false, slog.LevelWarn, false},
		{true, slog.LevelWarn, true},
		{true, slog.LevelInfo, false},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("verbose=%v/%v", tt.verbose, tt.level), func(t *testing.T) {
			if got := Logger(tt.verbose).Enabled(context.Background(), tt.level); got != tt.want {
				t.Errorf("enabled: got %v, want %v", got, tt.want)
			}
		})
	}
}

func TestParseInts(t *testing.T) {
	tests := []struct {
		in      string
		want    []int
		wantErr string
	}{
		{"1", []int{1}, ""},
		{"1, 16,64", []int{1, 16, 64}, ""},
		{"1,0", nil, `-n: "0" is not a positive integer`},
		{"1,,2", nil, `-n: "" is not a positive integer`},
		{"x", nil, `-n: "x" is not a positive integer`},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseInts("n", tt.in)
			if tt.wantErr != "" {
				if err == nil || err.Error() != tt.wantErr {
					t.Errorf("got %v, error %v; want error %q", got, err, tt.wantErr)
				}
				return
			}
			if err != nil || !slices.Equal(got, tt.want) {
				t.Errorf("got %v, error %v; want %v", got, err, tt.want)
			}
			if back, err := ParseInts("n", JoinInts(got)); err != nil || !slices.Equal(back, got) {
				t.Errorf("JoinInts(%v) = %q reads back as %v, error %v", got, JoinInts(got), back, err)
			}
		})
	}
}

func TestRoundOrder(t *testing.T) {
	tests := []struct {
		in    []string
		round int
		want  string
	}{
		{[]string{"a", "b", "c"}, 0, "[a b c]"},
		{[]string{"a", "b", "c"}, 1, "[c b a]"},
		{[]string{"a", "b", "c"}, 2, "[a b c]"},
		{[]string{"a", "b"}, 1, "[b a]"},
		{nil, 1, "[]"},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%v round %d", tt.in, tt.round), func(t *testing.T) {
			in := slices.Clone(tt.in)
			if got := fmt.Sprint(RoundOrder(tt.in, tt.round)); got != tt.want {
				t.Errorf("got %s, want %s", got, tt.want)
			}
			if !slices.Equal(in, tt.in) {
				t.Errorf("RoundOrder changed its input: %v, was %v", tt.in, in)
			}
		})
	}
}

func TestCPUTime(t *testing.T) {
	before, err := CPUTime()
	if err != nil {
		t.Fatalf("CPUTime: %v", err)
	}
	for deadline := time.Now().Add(time.Second); time.Now().Before(deadline); {
		if now, err := CPUTime(); err != nil || now > before {
			return
		}
	}
	t.Errorf("CPUTime stayed at %v through a second of spinning", before)
}

func TestRaiseFileLimit(t *testing.T) {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatal(err)
	}
	hard, err := RaiseFileLimit(lim.Cur)
	if err != nil || hard != lim.Max {
		t.Errorf("RaiseFileLimit(the soft limit %d): got hard limit %d, error %v; want %d, no error", lim.Cur, hard, err, lim.Max)
	}
	if lim.Max < 1<<40 {
		hard, err := RaiseFileLimit(lim.Max + 1)
		if err != nil || hard != lim.Max {
			t.Errorf("RaiseFileLimit(above the hard limit %d): got hard limit %d, error %v; want %d, no error", lim.Max, hard, err, lim.Max)
		}
	}
}

func TestWaitGoroutines(t *testing.T) {
	stop := make(chan struct{})
	done := make(chan struct{})
	before, _ := WaitGoroutines(1<<30, 0)
	go func() {
		defer close(done)
		<-stop
	}()
	// (Not n == before+1: a goroutine of an earlier test may still be
	// ending, so only "more than allowed, with the stacks" is certain.)
	if n, stacks := WaitGoroutines(0, 0); n < 2 || !strings.Contains(stacks, "TestWaitGoroutines.func1") {
		t.Errorf("with one more goroutine: got %d running and stacks %q, want its stack among them", n, stacks)
	}
	close(stop)
	<-done
	if n, stacks := WaitGoroutines(before, 10*time.Second); n > before || stacks != "" {
		t.Errorf("after it ended: got %d running and %d bytes of stacks, want at most %d and none", n, len(stacks), before)
	}
}
