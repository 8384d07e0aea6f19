package kv_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sluice/sluice/internal/kv"
	"github.com/sluice/sluice/internal/resource"
)

// next receives the next event, failing the test after a deadline.
func next(t *testing.T, events <-chan kv.Event) kv.Event {
	t.Helper()
	select {
	case ev, ok := <-events:
		if !ok {
			t.Fatal("the watch ended")
		}
		return ev
	case <-time.After(10 * time.Second):
		t.Fatal("no event within 10s")
	}
	return kv.Event{}
}

// expect receives events and checks them as "TYPE key=value@index" (value
// left out for DELETE).
func expect(t *testing.T, events <-chan kv.Event, p string, want ...string) {
	t.Helper()
	for _, w := range want {
		ev := next(t, events)
		got := fmt.Sprintf("%s %s=%s@%d", ev.Type, strings.TrimPrefix(ev.Entry.Key, p), ev.Entry.Value, ev.Entry.ModifyIndex)
		if ev.Type == kv.Delete {
			got = fmt.Sprintf("%s %s@%d", ev.Type, strings.TrimPrefix(ev.Entry.Key, p), ev.Entry.ModifyIndex)
		}
		if got != w {
			t.Fatalf("event %q, want %q", got, w)
		}
	}
}

func TestWatch(t *testing.T) {
	s, p := newStore(t, kv.Options{})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	a1 := put(t, s, p+"cfg/a", "1")
	b1 := put(t, s, p+"cfg/b", "1")
	put(t, s, p+"other", "1")

	key, err := s.Watch(ctx, p+"cfg/a", false, 0)
	if err != nil {
		t.Fatal(err)
	}
	tree, err := s.Watch(ctx, p+"cfg/", true, 0)
	if err != nil {
		t.Fatal(err)
	}
	expect(t, key, p, fmt.Sprintf("PUT cfg/a=1@%d", a1.ModifyIndex))
	expect(t, tree, p, fmt.Sprintf("PUT cfg/a=1@%d", a1.ModifyIndex), fmt.Sprintf("PUT cfg/b=1@%d", b1.ModifyIndex))

	put(t, s, p+"other", "2")
	b2 := put(t, s, p+"cfg/b", "2")
	a2 := put(t, s, p+"cfg/a", "2")
	_, del, err := s.Delete(ctx, p+"cfg/a", kv.DeleteOptions{})
	if err != nil {
		t.Fatal(err)
	}
	c1 := put(t, s, p+"cfg/c", "1")
	expect(t, key, p, fmt.Sprintf("PUT cfg/a=2@%d", a2.ModifyIndex), fmt.Sprintf("DELETE cfg/a@%d", del))
	expect(t, tree, p, fmt.Sprintf("PUT cfg/b=2@%d", b2.ModifyIndex), fmt.Sprintf("PUT cfg/a=2@%d", a2.ModifyIndex),
		fmt.Sprintf("DELETE cfg/a@%d", del), fmt.Sprintf("PUT cfg/c=1@%d", c1.ModifyIndex))

	// Resumed from an index, the changes after it; a put event carries the
	// whole entry.
	resumed, err := s.Watch(ctx, p+"cfg/", true, a2.ModifyIndex)
	if err != nil {
		t.Fatal(err)
	}
	expect(t, resumed, p, fmt.Sprintf("DELETE cfg/a@%d", del))
	if ev := next(t, resumed); ev.Type != kv.Put || !sameEntry(ev.Entry, c1) {
		t.Errorf("resumed watch: %+v, want the put of %+v", ev, c1)
	}

	cancel()
	for _, events := range []<-chan kv.Event{key, tree, resumed} {
		for range events {
		}
	}
}

func sameEntry(a, b kv.Entry) bool {
	return a.Key == b.Key && string(a.Value) == string(b.Value) && a.Flags == b.Flags &&
		a.CreateIndex == b.CreateIndex && a.ModifyIndex == b.ModifyIndex && a.Modified.Equal(b.Modified)
}

func TestWatchOfACompactedIndex(t *testing.T) {
	s, c := ownStore(t, kv.Options{})
	ctx := context.Background()
	old := put(t, s, "k", "1")
	put(t, s, "k", "2")
	compact(t, c)
	events, err := s.Watch(ctx, "k", false, old.ModifyIndex)
	if err != nil {
		t.Fatal(err)
	}
	ev := next(t, events)
	if ev.Type != kv.Error {
		t.Fatalf("event %+v, want ERROR", ev)
	}
	wantErr(t, "watch from a compacted index", ev.Err, resource.ErrExpired, 410, fmt.Sprint("index ", old.ModifyIndex))
	if _, ok := <-events; ok {
		t.Error("the watch goes on after its ERROR event")
	}
}

// waitResult is what a WaitIndex returned.
type waitResult struct {
	rev int64
	err error
}

func wait(ctx context.Context, s *kv.Store, key string, prefix bool, after int64) <-chan waitResult {
	done := make(chan waitResult, 1)
	go func() {
		rev, err := s.WaitIndex(ctx, key, prefix, after)
		done <- waitResult{rev, err}
	}()
	return done
}

func result(t *testing.T, done <-chan waitResult) waitResult {
	t.Helper()
	select {
	case r := <-done:
		if r.err != nil {
			t.Fatalf("WaitIndex: %v", r.err)
		}
		return r
	case <-time.After(10 * time.Second):
		t.Fatal("WaitIndex did not return within 10s")
	}
	return waitResult{}
}

// waitUntil polls cond until it holds, failing the test after a deadline.
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// runHub runs the store's wait hub until the test ends.
func runHub(t *testing.T, s *kv.Store) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { s.Run(ctx) })
	t.Cleanup(func() {
		cancel()
		wg.Wait()
	})
	waitUntil(t, "the hub to run", func() bool { return kv.HubRunning(s) })
}

func TestWaitIndex(t *testing.T) {
	for _, hub := range []bool{true, false} {
		t.Run(map[bool]string{true: "hub", false: "direct"}[hub], func(t *testing.T) {
			s, p := newStore(t, kv.Options{})
			if hub {
				runHub(t, s)
			}
			ctx := context.Background()
			key := p + "cfg/a"
			first := put(t, s, key, "1")

			// Only a change of the key wakes a wait on it.
			done := wait(ctx, s, key, false, first.ModifyIndex)
			prefixDone := wait(ctx, s, p+"cfg/", true, first.ModifyIndex)
			if hub {
				waitUntil(t, "both waits to register", func() bool { return kv.HubWaiters(s) == 2 })
			}
			other := put(t, s, p+"cfg2", "x")
			sibling := put(t, s, p+"cfg/b", "1")
			if r := result(t, prefixDone); r.rev != sibling.ModifyIndex {
				t.Errorf("prefix wait returned %d, want the sibling's change %d", r.rev, sibling.ModifyIndex)
			}
			if hub {
				waitUntil(t, "the hub to see the unrelated changes", func() bool { return kv.HubSeen(s) >= sibling.ModifyIndex })
			} else {
				time.Sleep(100 * time.Millisecond)
			}
			select {
			case r := <-done:
				t.Fatalf("the wait returned %+v on changes of other keys (%d, %d)", r, other.ModifyIndex, sibling.ModifyIndex)
			default:
			}
			second := put(t, s, key, "2")
			if r := result(t, done); r.rev != second.ModifyIndex {
				t.Errorf("wait returned %d, want the change's index %d", r.rev, second.ModifyIndex)
			}

			// A change already made after the index answers at once; so does
			// a delete.
			if r := result(t, wait(ctx, s, key, false, first.ModifyIndex)); r.rev != second.ModifyIndex {
				t.Errorf("wait from before a change returned %d, want %d", r.rev, second.ModifyIndex)
			}
			deleting := wait(ctx, s, key, false, second.ModifyIndex)
			_, del, err := s.Delete(ctx, key, kv.DeleteOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if r := result(t, deleting); r.rev != del {
				t.Errorf("wait over a delete returned %d, want %d", r.rev, del)
			}

			// When ctx ends first, its error.
			tctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
			defer cancel()
			start := time.Now()
			rev, err := s.WaitIndex(tctx, key, false, del)
			if took := time.Since(start); took < 150*time.Millisecond {
				t.Errorf("the wait returned after %v, before its context ended", took)
			}
			if !errors.Is(err, context.DeadlineExceeded) || rev != 0 {
				t.Errorf("a wait whose context ended returned %d, %v; want 0 and the context's error", rev, err)
			}
			if hub {
				waitUntil(t, "the ended wait to leave the hub", func() bool { return kv.HubWaiters(s) == 0 })
			}
		})
	}
}

func TestWaitIndexOfACompactedIndex(t *testing.T) {
	s, c := ownStore(t, kv.Options{})
	old := put(t, s, "k", "1")
	compacted := compact(t, c)
	r := result(t, wait(context.Background(), s, "k", false, old.ModifyIndex-1))
	if r.rev < compacted {
		t.Errorf("a wait from a compacted index returned %d, want the current revision (at least %d)", r.rev, compacted)
	}
}

// TestWaitIndexThousandWaiters measures 1,000 waits on one key woken by one
// change, through the hub and through an etcd watch each.
func TestWaitIndexThousandWaiters(t *testing.T) {
	if testing.Short() {
		t.Skip("load test")
	}
	const waiters = 1000
	for _, hub := range []bool{true, false} {
		t.Run(map[bool]string{true: "hub", false: "direct"}[hub], func(t *testing.T) {
			s, p := newStore(t, kv.Options{})
			if hub {
				runHub(t, s)
			}
			key := p + "hot"
			first := put(t, s, key, "1")
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			results := make(chan waitResult, waiters)
			start := time.Now()
			for range waiters {
				go func() {
					rev, err := s.WaitIndex(ctx, key, false, first.ModifyIndex)
					results <- waitResult{rev, err}
				}()
			}
			if hub {
				waitUntil(t, "every wait to register", func() bool { return kv.HubWaiters(s) == waiters })
			} else {
				// An etcd watch replays a change made before it starts, so the
				// put may come before every watch is open; let them open.
				time.Sleep(time.Second)
			}
			registered := time.Since(start)
			change := put(t, s, key, "2")
			woken := time.Now()
			for range waiters {
				r := <-results
				if r.err != nil || r.rev != change.ModifyIndex {
					t.Fatalf("a waiter returned %d, %v; want %d", r.rev, r.err, change.ModifyIndex)
				}
			}
			t.Logf("%d waiters: registered in %v, all returned %v after the put", waiters, registered.Round(time.Millisecond), time.Since(woken).Round(time.Microsecond))
			if errors.Is(ctx.Err(), context.DeadlineExceeded) {
				t.Fatal("the waits took longer than their context")
			}
		})
	}
}
