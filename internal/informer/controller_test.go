package informer_test

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"
	"k8s.io/client-go/util/workqueue"

	"github.com/sluice/sluice/internal/informer"
	"github.com/sluice/sluice/internal/resource"
	"github.com/sluice/sluice/internal/servertest"
)

// attempt is one call of Reconcile: the key and what the cache held for it.
type attempt struct {
	key  string
	seq  string // "" when the object was absent (deleted)
	rv   string
	when time.Time
}

// reconciler records its calls and fails while fail says so.
type reconciler struct {
	inf  *informer.Informer
	fail func(key string, n int) bool // n counts the calls for key, from 1

	mu       sync.Mutex // guards attempts
	attempts []attempt
}

func (r *reconciler) reconcile(_ context.Context, key string) error {
	a := attempt{key: key, when: time.Now()}
	if obj, ok := r.inf.Get(key); ok {
		a.seq, a.rv = obj.GetLabels()["seq"], obj.GetResourceVersion()
	}
	r.mu.Lock()
	r.attempts = append(r.attempts, a)
	n := 0
	for _, x := range r.attempts {
		if x.key == key {
			n++
		}
	}
	r.mu.Unlock()
	if r.fail != nil && r.fail(key, n) {
		return fmt.Errorf("attempt %d of %s fails", n, key)
	}
	return nil
}

func (r *reconciler) of(key string) []attempt {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []attempt
	for _, a := range r.attempts {
		if a.key == key {
			out = append(out, a)
		}
	}
	return out
}

// last is the last attempt for key (zero if none).
func (r *reconciler) last(key string) attempt {
	as := r.of(key)
	if len(as) == 0 {
		return attempt{}
	}
	return as[len(as)-1]
}

// logRecorder is a slog.Handler that keeps every record.
type logRecorder struct {
	mu      sync.Mutex // guards records
	records []slog.Record
}

func (h *logRecorder) Enabled(context.Context, slog.Level) bool { return true }

func (h *logRecorder) Handle(_ context.Context, r slog.Record) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.records = append(h.records, r.Clone())
	return nil
}

func (h *logRecorder) WithAttrs([]slog.Attr) slog.Handler { return h }

func (h *logRecorder) WithGroup(string) slog.Handler { return h }

// find returns the first record whose message starts with msg.
func (h *logRecorder) find(msg string) (slog.Record, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, r := range h.records {
		if strings.HasPrefix(r.Message, msg) {
			return r, true
		}
	}
	return slog.Record{}, false
}

// runController runs an informer over the store and a controller over it
// until the test ends.
func runController(t *testing.T, e *env, r *reconciler, opts informer.ControllerOptions) {
	t.Helper()
	inf := informer.New(e.source(resource.ServiceKind, informer.Scope{}), informer.Options{Logger: servertest.Logger()})
	r.inf = inf
	c := informer.NewController(inf, r.reconcile, opts)
	background(t, inf.Run)
	background(t, func(ctx context.Context) {
		if err := c.Run(ctx); err != nil {
			t.Errorf("controller Run: %v", err)
		}
	})
}

func TestControllerReconcilesEveryChangedKey(t *testing.T) {
	e := newStoreEnv(t)
	a := e.apply(t, service("default", "a", 1, nil))
	r := &reconciler{}
	runController(t, e, r, informer.ControllerOptions{Workers: 2, Logger: servertest.Logger()})
	waitFor(t, "reconcile of a as listed", 10*time.Second, func() bool { return r.last("default/a").rv == a.GetResourceVersion() })

	b := e.apply(t, service("other", "b", 1, nil))
	waitFor(t, "reconcile of a new object", 10*time.Second, func() bool { return r.last("other/b").rv == b.GetResourceVersion() })
	a = e.apply(t, service("default", "a", 2, nil))
	waitFor(t, "reconcile of an update", 10*time.Second, func() bool { return r.last("default/a").rv == a.GetResourceVersion() })
	e.delete(t, "other", "b")
	waitFor(t, "reconcile of a delete", 10*time.Second, func() bool {
		as := r.of("other/b")
		return len(as) > 1 && as[len(as)-1].rv == ""
	})
}

func TestControllerRetriesWithBackoffThenSucceeds(t *testing.T) {
	e := newStoreEnv(t)
	const base = 20 * time.Millisecond
	r := &reconciler{fail: func(key string, n int) bool { return key == "default/flaky" && n <= 3 }}
	runController(t, e, r, informer.ControllerOptions{
		RateLimiter: workqueue.NewTypedItemExponentialFailureRateLimiter[string](base, time.Second),
		Logger:      servertest.Logger(),
	})
	e.apply(t, service("default", "flaky", 1, nil))
	waitFor(t, "a fourth attempt", 10*time.Second, func() bool { return len(r.of("default/flaky")) >= 4 })

	as := r.of("default/flaky")
	for i := 1; i < len(as); i++ {
		// Retry n waits base*2^(n-1): 20ms, 40ms, 80ms.
		if gap, min := as[i].when.Sub(as[i-1].when), base<<(i-1); gap < min {
			t.Errorf("retry %d came %v after the previous attempt, want at least %v", i, gap, min)
		}
	}
	// Succeeded, so forgotten: the next change is reconciled once, at once.
	e.apply(t, service("default", "flaky", 2, nil))
	waitFor(t, "a reconcile of the change", 10*time.Second, func() bool { return r.last("default/flaky").seq == "2" })
	if n := len(r.of("default/flaky")); n != 5 {
		t.Errorf("%d attempts, want 5 (3 failures, 1 success, 1 for the change)", n)
	}
}

func TestControllerGivesUpAfterMaxRetries(t *testing.T) {
	e := newStoreEnv(t)
	logs := &logRecorder{}
	r := &reconciler{fail: func(key string, n int) bool { return n <= 3 }}
	runController(t, e, r, informer.ControllerOptions{
		MaxRetries:  2,
		RateLimiter: workqueue.NewTypedItemExponentialFailureRateLimiter[string](time.Millisecond, 10*time.Millisecond),
		Logger:      slog.New(logs),
	})
	e.apply(t, service("default", "broken", 1, nil))
	var giveUp slog.Record
	waitFor(t, "the controller to give up", 10*time.Second, func() bool {
		var ok bool
		giveUp, ok = logs.find("reconcile failed, giving up")
		return ok
	})
	if n := len(r.of("default/broken")); n != 3 {
		t.Errorf("%d attempts before giving up, want 3 (1 + MaxRetries 2)", n)
	}
	if giveUp.Level != slog.LevelError {
		t.Errorf("give-up logged at %v, want ERROR", giveUp.Level)
	}
	var key string
	giveUp.Attrs(func(a slog.Attr) bool {
		if a.Key == "key" {
			key = a.Value.String()
		}
		return true
	})
	if key != "default/broken" {
		t.Errorf("give-up log names key %q, want default/broken", key)
	}
	// Dropped until the next change, which is reconciled again.
	e.apply(t, service("default", "broken", 2, nil))
	waitFor(t, "a reconcile of the change", 10*time.Second, func() bool { return r.last("default/broken").seq == "2" })
	if n := len(r.of("default/broken")); n != 4 {
		t.Errorf("%d attempts, want 4", n)
	}
}

// Shutdown waits for the reconciles in flight, starts no others and leaves
// no goroutine behind.
func TestControllerShutdown(t *testing.T) {
	// No bookmarks: asking etcd for progress opens a watch stream when none
	// is open, which would outlive the informer's watch.
	e := &env{store: newStore(t)}
	for i := range 8 {
		e.apply(t, service("default", fmt.Sprintf("s%d", i), 1, nil))
	}
	// The etcd and its client run for the whole test; what starts after
	// this point must be gone after shutdown.
	ignore := goleak.IgnoreCurrent()

	const workers = 4
	var inFlight atomic.Int32
	started := make(chan string, 100)
	// Reconciles that last until shutdown.
	block := func(ctx context.Context, key string) error {
		inFlight.Add(1)
		defer inFlight.Add(-1)
		started <- key
		<-ctx.Done()
		return ctx.Err()
	}
	inf := informer.New(e.source(resource.ServiceKind, informer.Scope{}), informer.Options{Logger: servertest.Logger()})
	c := informer.NewController(inf, block, informer.ControllerOptions{Workers: workers, Logger: servertest.Logger()})
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { inf.Run(ctx) })
	errc := make(chan error, 1)
	wg.Go(func() { errc <- c.Run(ctx) })
	for range workers {
		<-started
	}
	// Shut down with the watch established (a change reaches the cache):
	// the etcd client (v3.7.3) leaks its stream when a watch is canceled
	// while etcd is still creating it, which is not what this test checks.
	changed := e.apply(t, service("default", "s0", 2, nil))
	waitFor(t, "the change in the cache", 10*time.Second, func() bool {
		o, ok := inf.Get("default/s0")
		return ok && o.GetResourceVersion() == changed.GetResourceVersion()
	})

	cancel()
	done := make(chan struct{})
	go func() {
		wg.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("controller and informer still running 10s after cancel")
	}
	if err := <-errc; err != nil {
		t.Errorf("Run: %v", err)
	}
	if n := inFlight.Load(); n != 0 {
		t.Errorf("%d reconciles still running after Run returned", n)
	}
	if n := len(started); n != 0 {
		t.Errorf("%d reconciles started after shutdown began, want 0", n)
	}
	// The etcd client ends the watch's gRPC stream after the watch's context
	// ends, in its own time: allow for it.
	deadline := time.Now().Add(10 * time.Second)
	for err := goleak.Find(ignore); err != nil; err = goleak.Find(ignore) {
		if time.Now().After(deadline) {
			t.Fatalf("goroutines left 10s after shutdown: %v", err)
		}
	}
}
