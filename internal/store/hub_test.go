package store_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/watch"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/sluice/sluice/internal/resource"
	"github.com/sluice/sluice/internal/store"
)

// waitFor polls cond until it holds or 10s pass.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestWatchersShareOneHub(t *testing.T) {
	s, _ := newStore(t)
	ctx, cancel := context.WithCancel(context.Background())
	const n = 50
	var chans []<-chan store.Event
	for i := range n {
		opts := store.WatchOptions{}
		if i%2 == 1 {
			opts.Selector = labels.SelectorFromSet(labels.Set{"tier": "web"})
		}
		ch, err := s.Watch(ctx, resource.ServiceKind, "default", opts)
		if err != nil {
			t.Fatal(err)
		}
		chans = append(chans, ch)
	}
	if got := s.Hubs(); got != 1 {
		t.Fatalf("%d hubs for %d watchers of one kind, want 1", got, n)
	}
	if _, err := s.Create(ctx, service("web", 80, map[string]string{"tier": "web"}), store.WriteOptions{}); err != nil {
		t.Fatal(err)
	}
	var first []byte
	for i, ch := range chans {
		ev := expect(t, ch, watch.Added, "web")
		data, err := ev.ObjectJSON()
		if err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			first = data
		} else if &data[0] != &first[0] {
			t.Fatalf("watcher %d got its own encoding of the event; want one encoding shared by all", i)
		}
	}
	cancel()
	for _, ch := range chans {
		for range ch {
		}
	}
	waitFor(t, "the hub to stop after its last watcher", func() bool { return s.Hubs() == 0 })
}

func TestLateWatcherResumesFromTheHub(t *testing.T) {
	s, _ := newStore(t)
	ctx := context.Background()
	early, err := s.Watch(ctx, resource.ServiceKind, "", store.WatchOptions{})
	if err != nil {
		t.Fatal(err)
	}
	a, _ := s.Create(ctx, service("a", 80, nil), store.WriteOptions{})
	s.Create(ctx, service("b", 80, nil), store.WriteOptions{})
	expect(t, early, watch.Added, "a")
	expect(t, early, watch.Added, "b")
	// Joins the running hub after a: sees b, then what follows.
	late, err := s.Watch(ctx, resource.ServiceKind, "", store.WatchOptions{ResourceVersion: rev(t, a)})
	if err != nil {
		t.Fatal(err)
	}
	if s.Hubs() != 1 {
		t.Fatalf("%d hubs, want the one shared hub", s.Hubs())
	}
	expect(t, late, watch.Added, "b")
	s.Create(ctx, service("c", 80, nil), store.WriteOptions{})
	expect(t, late, watch.Added, "c")
	expect(t, early, watch.Added, "c")
}

func TestSlowWatcherFallsBehindAndResumes(t *testing.T) {
	s, _ := newStore(t)
	ctx := context.Background()
	slow, err := s.Watch(ctx, resource.ServiceKind, "", store.WatchOptions{})
	if err != nil {
		t.Fatal(err)
	}
	fast, err := s.Watch(ctx, resource.ServiceKind, "", store.WatchOptions{})
	if err != nil {
		t.Fatal(err)
	}
	seen := make(chan int, store.HubRing*3)
	go func() {
		for ev := range fast {
			if ev.Type == watch.Added {
				seen <- 1
			}
		}
	}()
	// More changes than the ring holds, while slow reads nothing.
	total := store.HubRing + 200
	for i := range total {
		if _, err := s.Create(ctx, service(fmt.Sprintf("s%d", i), 80, nil), store.WriteOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "the fast watcher to see every change", func() bool { return len(seen) == total })
	// The slow watcher reads what it had queued, then its channel closes
	// without an error; resuming from its last revision loses nothing.
	var last int64
	got := 0
	for ev := range slow {
		if ev.Type == watch.Error {
			t.Fatalf("slow watcher got ERROR %v, want its channel closed", ev.Err)
		}
		if ev.Type == watch.Added {
			got++
			last = rev(t, ev.Object)
		}
	}
	if got >= total {
		t.Fatalf("slow watcher saw all %d changes; the test did not make it fall behind", got)
	}
	resumed, err := s.Watch(ctx, resource.ServiceKind, "", store.WatchOptions{ResourceVersion: last})
	if err != nil {
		t.Fatal(err)
	}
	for got < total {
		ev := next(t, resumed)
		if ev.Type != watch.Added || ev.Object.GetName() != fmt.Sprintf("s%d", got) {
			t.Fatalf("after resuming: %s %s, want ADDED s%d", ev.Type, ev.Object.GetName(), got)
		}
		got++
	}
}

func TestHubFromCompactedRevision(t *testing.T) {
	s, _ := newStore(t)
	ctx := context.Background()
	a, _ := s.Create(ctx, service("a", 80, nil), store.WriteOptions{})
	s.Create(ctx, service("b", 80, nil), store.WriteOptions{})
	c, _ := s.Create(ctx, service("c", 80, nil), store.WriteOptions{})
	if err := s.Compact(ctx, rev(t, c)); err != nil {
		t.Fatal(err)
	}
	// The first watcher starts the hub at a compacted revision: 410 for it.
	ch, err := s.Watch(ctx, resource.ServiceKind, "", store.WatchOptions{ResourceVersion: rev(t, a)})
	if err != nil {
		t.Fatal(err)
	}
	if ev := next(t, ch); ev.Type != watch.Error {
		t.Fatalf("event %s, want ERROR 410", ev.Type)
	}
	waitFor(t, "the failed hub to go away", func() bool { return s.Hubs() == 0 })
	// A current watcher gets a new hub that works.
	now, err := s.Watch(ctx, resource.ServiceKind, "", store.WatchOptions{ResourceVersion: rev(t, c)})
	if err != nil {
		t.Fatal(err)
	}
	s.Create(ctx, service("d", 80, nil), store.WriteOptions{})
	expect(t, now, watch.Added, "d")
}

// TestHubRingDoesNotOutliveCompaction resumes from a revision a running hub
// still holds in its ring but etcd has compacted: the watch must fail as an
// etcd watch would, so every replica answers a resume the same way.
func TestHubRingDoesNotOutliveCompaction(t *testing.T) {
	s, _ := newStore(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	a, _ := s.Create(ctx, service("a", 80, nil), store.WriteOptions{})
	held, err := s.Watch(ctx, resource.ServiceKind, "", store.WatchOptions{ResourceVersion: rev(t, a)})
	if err != nil {
		t.Fatal(err)
	}
	s.Create(ctx, service("b", 80, nil), store.WriteOptions{})
	c, _ := s.Create(ctx, service("c", 80, nil), store.WriteOptions{})
	expect(t, held, watch.Added, "b")
	expect(t, held, watch.Added, "c")
	if err := s.Compact(ctx, rev(t, c)); err != nil {
		t.Fatal(err)
	}
	ch, err := s.Watch(ctx, resource.ServiceKind, "", store.WatchOptions{ResourceVersion: rev(t, a)})
	if err != nil {
		t.Fatal(err)
	}
	if ev := next(t, ch); ev.Type != watch.Error || !errors.Is(ev.Err, resource.ErrExpired) {
		t.Fatalf("event = %s %v, want ERROR wrapping ErrExpired", ev.Type, ev.Err)
	}
	// At the compacted revision itself the history after it is still there.
	at, err := s.Watch(ctx, resource.ServiceKind, "", store.WatchOptions{ResourceVersion: rev(t, c)})
	if err != nil {
		t.Fatal(err)
	}
	s.Create(ctx, service("d", 80, nil), store.WriteOptions{})
	expect(t, at, watch.Added, "d")
	expect(t, held, watch.Added, "d")
	if got := s.Hubs(); got != 1 {
		t.Errorf("hubs = %d, want 1 (the resume at the compacted revision joins the running hub)", got)
	}
}

// TestOneTransactionManyChanges deletes three objects in one etcd
// transaction (as `etcdctl del --prefix` does): their changes share one
// revision, and a watcher gets every one of them.
func TestOneTransactionManyChanges(t *testing.T) {
	s, e := newStore(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var last resource.Object
	for _, name := range []string{"a", "b", "c"} {
		last, _ = s.Create(ctx, service(name, 80, nil), store.WriteOptions{})
	}
	ch, err := s.Watch(ctx, resource.ServiceKind, "", store.WatchOptions{ResourceVersion: rev(t, last)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.Client.Delete(ctx, "/sluice/resources/sluice.io/Service/default/", clientv3.WithPrefix()); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"a", "b", "c"} {
		expect(t, ch, watch.Deleted, name)
	}
}

// TestJoinAheadOfTheHub resumes watchers at a revision the hub's etcd watch
// may not have reached yet: they must not get the changes up to it.
func TestJoinAheadOfTheHub(t *testing.T) {
	s, _ := newStore(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	first, _ := s.Create(ctx, service("first", 80, nil), store.WriteOptions{})
	held, err := s.Watch(ctx, resource.ServiceKind, "", store.WatchOptions{ResourceVersion: rev(t, first)})
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		for range held {
		}
	}()
	for i := range 50 {
		x, err := s.Create(ctx, service(fmt.Sprintf("x%d", i), 80, nil), store.WriteOptions{})
		if err != nil {
			t.Fatal(err)
		}
		ch, err := s.Watch(ctx, resource.ServiceKind, "", store.WatchOptions{ResourceVersion: rev(t, x)})
		if err != nil {
			t.Fatal(err)
		}
		s.Create(ctx, service(fmt.Sprintf("y%d", i), 80, nil), store.WriteOptions{})
		expect(t, ch, watch.Added, fmt.Sprintf("y%d", i))
	}
}
