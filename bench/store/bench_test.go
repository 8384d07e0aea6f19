package main

import (
	"context"
	"fmt"
	"runtime"
	"sync/atomic"
	"testing"

	"github.com/sluice/sluice/bench/internal/harness"
)

// BenchmarkWrite times one create or update of a Service through each write
// path, with 1 and 16 concurrent writers, against one embedded etcd with
// fsync on. ns/op is the inverse of throughput. Compare paths with
//
//	go test -run '^$' -bench 'Write/update/(txn|gettxn|store)/' ./bench/store
//
// The load program (go run ./bench/store) measures the same paths
// interleaved, with latency percentiles; its results are in bench/README.md.
func BenchmarkWrite(b *testing.B) {
	ctx := context.Background()
	e, err := startEnv(ctx, b.TempDir(), 64, harness.Logger(false))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(e.close)
	var calls atomic.Int64 // makes each call's namespace unique
	for _, op := range writeOps {
		for _, p := range writePaths(config{}) {
			if op == "create" && p.create == nil {
				continue
			}
			for _, c := range []int{1, 16} {
				b.Run(fmt.Sprintf("%s/%s/c=%d", op, p.short, c), func(b *testing.B) {
					ns := fmt.Sprintf("b-%s-%s-%d", op, p.short, calls.Add(1))
					b.Cleanup(func() { e.deleteNamespace(ctx, ns) })
					benchmarkWrite(b, e, p, op, c, ns)
				})
			}
		}
	}
}

// benchmarkWrite runs op through p with c concurrent workers (rounded up to
// a multiple of GOMAXPROCS).
func benchmarkWrite(b *testing.B, e *env, p writePath, op string, c int, ns string) {
	ctx := context.Background()
	parallelism := (c + runtime.GOMAXPROCS(0) - 1) / runtime.GOMAXPROCS(0)
	workers := 1
	if c > 1 {
		workers = parallelism * runtime.GOMAXPROCS(0)
	}
	ops, err := prepareWorkers(ctx, e, p, op, ns, workers)
	if err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	if c == 1 {
		for i := 0; b.Loop(); i++ {
			if err := ops[0](ctx, i); err != nil {
				b.Fatal(err)
			}
		}
		return
	}
	var next atomic.Int64
	b.SetParallelism(parallelism)
	b.RunParallel(func(pb *testing.PB) {
		do := ops[next.Add(1)-1]
		for i := 0; pb.Next(); i++ {
			if err := do(ctx, i); err != nil {
				b.Error(err)
				return
			}
		}
	})
}
