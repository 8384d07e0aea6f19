// Package heapfloor gives the Go garbage collector a minimum heap goal.
//
// With GOGC=100 the collector runs each time the heap doubles its live size.
// A proxy's live heap is small (its configuration and per-connection buffers,
// a few MiB) while it allocates a few KiB per request, so at thousands of
// requests a second it collects several times a second, and the marking
// costs it about a tenth of its CPU. Go has a maximum heap size (GOMEMLIMIT)
// but no minimum; this package makes one: after each collection it sets the GC percentage so that
// the next goal is the floor, never less than GOGC=100 would give. A live
// heap above half the floor is collected exactly as with GOGC=100.
package heapfloor

import (
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"sync"
)

// DefaultPercent is the GC percentage below which the floor never goes:
// Go's default.
const DefaultPercent = 100

// Floor holds the heap goal at or above a size while it runs.
type Floor struct {
	bytes   uint64
	samples []metrics.Sample

	mu      sync.Mutex // serialises adjust with Stop
	stopped bool
	percent int // the percentage last set
}

// sentinel is allocated unreachable after each collection: its cleanup runs
// after the next one. It holds a pointer so that it is not tiny-allocated
// (cleanups of tiny objects may never run).
type sentinel struct {
	_ *byte
	_ [8]byte
}

// Start holds the heap goal at or above bytes until Stop. The caller decides
// whether to: a user who set GOGC has chosen the collector's pace, and the
// floor should then not be started.
func Start(bytes uint64) *Floor {
	f := &Floor{bytes: bytes, percent: DefaultPercent, samples: []metrics.Sample{
		{Name: "/gc/heap/live:bytes"},
		{Name: "/gc/scan/stack:bytes"},
		{Name: "/gc/scan/globals:bytes"},
	}}
	f.adjust()
	f.arm()
	return f
}

func (f *Floor) arm() {
	runtime.AddCleanup(&sentinel{}, func(f *Floor) {
		if f.adjust() {
			f.arm()
		}
	}, f)
}

// adjust sets the percentage for the collection after the one that just
// ended; false once stopped. Go's goal is live + (live + stacks + globals)
// × percent / 100.
func (f *Floor) adjust() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.stopped {
		return false
	}
	metrics.Read(f.samples)
	live := f.samples[0].Value.Uint64()
	scannable := live + f.samples[1].Value.Uint64() + f.samples[2].Value.Uint64()
	percent := Percent(f.bytes, live, scannable)
	if percent != f.percent {
		debug.SetGCPercent(percent)
		f.percent = percent
	}
	return true
}

// Percent is the GC percentage that makes the heap goal floor for a live
// heap of live bytes, of which (with stacks and globals) scannable are
// scanned; never below DefaultPercent.
//
// Go's goal is the larger of live + scannable × percent / 100 and its heap
// minimum, 4 MiB × percent / 100. The second bounds the percentage: over a
// heap next to empty, the minimum alone would otherwise put the goal far
// above the floor.
func Percent(floor, live, scannable uint64) int {
	if live >= floor {
		return DefaultPercent
	}
	p := (floor - live) * 100 / max(scannable, 1)
	p = min(p, floor*100/heapMinimum)
	return int(max(p, DefaultPercent))
}

// heapMinimum is the runtime's goal at GOGC=100 for a heap next to empty
// (defaultHeapMinimum in runtime/mgcpacer.go).
const heapMinimum = 4 << 20

// Stop gives the collector back Go's default pace.
func (f *Floor) Stop() {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.stopped {
		return
	}
	f.stopped = true
	debug.SetGCPercent(DefaultPercent)
}
