// Package report owns what the benchmark programs under bench/ print at
// the end of a run and compute alike for it: tables written as aligned text
// or as Markdown for bench/README.md, nearest-rank percentiles of
// latencies, ratios to a baseline, the words of a verdict and the note of
// the machine the run used.
//
// It does not decide what a table holds, how a figure is rounded or what
// the targets are: each program does, from its own measurements.
package report

import (
	"bufio"
	"fmt"
	"io"
	"math"
	"os"
	"runtime"
	"slices"
	"strings"
	"text/tabwriter"
	"time"
)

// Report is what a run prints: the machine, notes about what was measured,
// the tables and the verdicts.
type Report struct {
	// Machine says where the run happened (see DescribeMachine).
	Machine string
	// Notes are lines printed right after the machine, e.g. the size of
	// the measured object.
	Notes  []string
	Tables []Table
	// Verdicts compare the results with the targets, one a line.
	Verdicts []string
}

// Table is a header and rows of cells, printed as text or Markdown.
type Table struct {
	Title  string
	Header []string
	// Numeric is the first column of numbers, right-aligned in Markdown.
	Numeric int
	Rows    [][]string
}

// Text writes the report as aligned columns of plain text.
func (r Report) Text(w io.Writer) {
	fmt.Fprintln(w, r.Machine)
	for _, note := range r.Notes {
		fmt.Fprintln(w, note)
	}
	for _, t := range r.Tables {
		fmt.Fprintf(w, "\n%s\n", t.Title)
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, strings.Join(t.Header, "\t"))
		for _, row := range t.Rows {
			fmt.Fprintln(tw, strings.Join(row, "\t"))
		}
		tw.Flush()
	}
	if len(r.Verdicts) > 0 {
		fmt.Fprintln(w)
		for _, line := range r.Verdicts {
			fmt.Fprintln(w, line)
		}
	}
}

// Markdown writes the report as Markdown, for bench/README.md: the machine
// and the notes as lines of one paragraph, every table under its title,
// the verdicts as a list.
func (r Report) Markdown(w io.Writer) {
	fmt.Fprintf(w, "Machine: %s", r.Machine)
	for _, note := range r.Notes {
		fmt.Fprintf(w, "  \n%s", note)
	}
	fmt.Fprintln(w)
	for _, t := range r.Tables {
		fmt.Fprintf(w, "\n%s\n\n", t.Title)
		fmt.Fprintf(w, "| %s |\n", strings.Join(t.Header, " | "))
		seps := make([]string, len(t.Header))
		for i := range seps {
			seps[i] = "---"
			if i >= t.Numeric {
				seps[i] = "---:"
			}
		}
		fmt.Fprintf(w, "|%s|\n", strings.Join(seps, "|"))
		for _, row := range t.Rows {
			fmt.Fprintf(w, "| %s |\n", strings.Join(row, " | "))
		}
	}
	if len(r.Verdicts) > 0 {
		fmt.Fprintln(w)
		for _, line := range r.Verdicts {
			fmt.Fprintf(w, "- %s\n", line)
		}
	}
}

// Percentile returns the nearest-rank p-th percentile of the latencies
// (p = 100 is the maximum), 0 when there are none. It does not change
// lats.
func Percentile(lats []time.Duration, p float64) time.Duration {
	if len(lats) == 0 {
		return 0
	}
	sorted := slices.Clone(lats)
	slices.Sort(sorted)
	i := int(math.Ceil(p/100*float64(len(sorted)))) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}

// Ratio returns a ÷ b, +Inf when b is 0.
func Ratio(a, b float64) float64 {
	if b == 0 {
		return math.Inf(1)
	}
	return a / b
}

// MetOrMissed is the word that ends a verdict.
func MetOrMissed(ok bool) string {
	if ok {
		return "met"
	}
	return "MISSED"
}

// DescribeMachine says where the run happened: the CPU model (from
// /proc/cpuinfo where there is one), the number of CPUs and GOMAXPROCS,
// what sharedBy says shares them, the Go version and the platform.
func DescribeMachine(sharedBy string) string {
	cpu := "unknown CPU"
	if f, err := os.Open("/proc/cpuinfo"); err == nil {
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if name, ok := strings.CutPrefix(sc.Text(), "model name"); ok {
				cpu = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(name), ":"))
				break
			}
		}
		f.Close()
	}
	return fmt.Sprintf("%s, %d CPUs (GOMAXPROCS %d) shared by %s, %s %s/%s",
		cpu, runtime.NumCPU(), runtime.GOMAXPROCS(0), sharedBy, runtime.Version(), runtime.GOOS, runtime.GOARCH)
}
