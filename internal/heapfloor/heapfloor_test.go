package heapfloor

import (
	"runtime"
	"runtime/metrics"
	"testing"
	"time"
)

func TestPercent(t *testing.T) {
	const mib = 1 << 20
	for _, c := range []struct {
		name                   string
		floor, live, scannable uint64
		want                   int
	}{
		{"small heap: goal raised to the floor", 64 * mib, 8 * mib, 8 * mib, 700},
		{"stacks and globals are scanned too", 64 * mib, 8 * mib, 14 * mib, 400},
		{"live heap at half the floor: Go's default", 64 * mib, 32 * mib, 32 * mib, 100},
		{"live heap above the floor", 64 * mib, 100 * mib, 100 * mib, 100},
		{"empty heap: Go's 4 MiB minimum, scaled, is the floor", 64 * mib, 0, 0, 1600},
		{"tiny heap: the same bound", 64 * mib, mib / 8, mib / 4, 1600},
	} {
		if got := Percent(c.floor, c.live, c.scannable); got != c.want {
			t.Errorf("%s: Percent(%d, %d, %d) = %d, want %d", c.name, c.floor, c.live, c.scannable, got, c.want)
		}
	}
}

func readGoal() (goal, live uint64) {
	s := []metrics.Sample{{Name: "/gc/heap/goal:bytes"}, {Name: "/gc/heap/live:bytes"}}
	metrics.Read(s)
	return s[0].Value.Uint64(), s[1].Value.Uint64()
}

// waitGoal collects until the heap goal satisfies ok: the floor adjusts
// after a collection, in a cleanup that runs shortly after it.
func waitGoal(t *testing.T, ok func(goal, live uint64) bool, what string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		runtime.GC()
		time.Sleep(20 * time.Millisecond)
		goal, live := readGoal()
		if ok(goal, live) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("heap goal %d MiB with %d MiB live: want %s", goal>>20, live>>20, what)
		}
	}
}

func TestFloorHoldsTheGoal(t *testing.T) {
	const floor = 256 << 20
	f := Start(floor)
	waitGoal(t, func(goal, _ uint64) bool { return goal >= floor*9/10 && goal <= floor*11/10 }, "about the 256 MiB floor")

	f.Stop()
	// Go's pace again: the goal is about twice the (small) live heap.
	waitGoal(t, func(goal, live uint64) bool { return goal < floor/4 && goal <= 2*live+8<<20 }, "Go's default goal after Stop")
}

func TestFloorLeavesALargeHeapAlone(t *testing.T) {
	const floor = 32 << 20
	f := Start(floor)
	defer f.Stop()
	// A small heap first: the percentage goes up.
	waitGoal(t, func(goal, _ uint64) bool { return goal >= floor*9/10 }, "about the 32 MiB floor")

	// Then the live heap grows past the floor: a collection later the pace
	// is Go's default again.
	retained := make([]*[1 << 10]byte, 64<<10) // 64 MiB
	for i := range retained {
		retained[i] = new([1 << 10]byte)
	}
	waitGoal(t, func(goal, live uint64) bool { return live >= 64<<20 && goal >= 2*live-4<<20 && goal <= 2*live+16<<20 }, "about twice the live heap, as GOGC=100 gives")
	f.mu.Lock()
	percent := f.percent
	f.mu.Unlock()
	if percent != DefaultPercent {
		t.Errorf("percent = %d with the live heap above the floor, want %d", percent, DefaultPercent)
	}
	runtime.KeepAlive(retained)
}
