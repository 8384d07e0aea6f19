package report

import (
	"bytes"
	"flag"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/")

// TestReport checks the text and Markdown forms of a report against the
// golden files testdata/report.txt and testdata/report.md.
func TestReport(t *testing.T) {
	r := Report{
		Machine: "Some CPU, 4 CPUs (GOMAXPROCS 4)",
		Notes:   []string{"Object: 321 bytes"},
		Tables: []Table{
			{
				Title:   "Writes (ratios: ÷ baseline)",
				Header:  []string{"op", "path", "ops/s", "p50", "p50 ÷ raw"},
				Numeric: 2,
				Rows: [][]string{
					{"create", "etcd txn", "1200", "800 µs", "—"},
					{"create", "store", "1100", "1.1 ms", "1.38×"},
				},
			},
			{
				Title:   "Watch fan-out",
				Header:  []string{"watchers", "max"},
				Numeric: 1,
				Rows:    [][]string{{"1000", "12.5 ms"}},
			},
		},
		Verdicts: []string{"writes through store: 1.38× raw etcd; target ≤ 1.2×: MISSED"},
	}
	bare := Report{Machine: "Some CPU", Tables: []Table{{Title: "Empty", Header: []string{"a", "b"}}}}
	tests := []struct {
		name   string
		r      Report
		golden string
		write  func(Report, *bytes.Buffer)
	}{
		{"text", r, "report.txt", func(r Report, b *bytes.Buffer) { r.Text(b) }},
		{"markdown", r, "report.md", func(r Report, b *bytes.Buffer) { r.Markdown(b) }},
		{"text without notes and verdicts", bare, "bare.txt", func(r Report, b *bytes.Buffer) { r.Text(b) }},
		{"markdown without notes and verdicts", bare, "bare.md", func(r Report, b *bytes.Buffer) { r.Markdown(b) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got bytes.Buffer
			tt.write(tt.r, &got)
			path := filepath.Join("testdata", tt.golden)
			if *update {
				if err := os.WriteFile(path, got.Bytes(), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run with -update to create it)", err)
			}
			if got.String() != string(want) {
				t.Errorf("got:\n%s\nwant (%s):\n%s", got.String(), path, want)
			}
		})
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
			in := slices.Clone(tt.lats)
			if got := Percentile(tt.lats, tt.p); got != tt.want {
				t.Errorf("got %v, want %v", got, tt.want)
			}
			if !slices.Equal(in, tt.lats) {
				t.Errorf("Percentile reordered its input: %v, was %v", tt.lats, in)
			}
		})
	}
}

func TestRatio(t *testing.T) {
	tests := []struct {
		a, b, want float64
	}{
		{3, 2, 1.5},
		{0, 2, 0},
		{1, 0, math.Inf(1)},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%v÷%v", tt.a, tt.b), func(t *testing.T) {
			if got := Ratio(tt.a, tt.b); got != tt.want {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}
}

func TestDescribeMachine(t *testing.T) {
	got := DescribeMachine("the server and the load")
	if !strings.Contains(got, " CPUs (GOMAXPROCS ") || !strings.Contains(got, " shared by the server and the load, go") {
		t.Errorf("got %q, want the CPUs, GOMAXPROCS and what shares them, then the Go version", got)
	}
}
