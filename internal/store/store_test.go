package store_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/watch"

	"github.com/sluice/sluice/internal/resource"
	"github.com/sluice/sluice/internal/servertest"
	"github.com/sluice/sluice/internal/store"
)

func newStore(t *testing.T) (*store.Store, *servertest.Etcd) {
	t.Helper()
	e := servertest.StartEtcd(t)
	return store.New(e.Client, resource.Builtin(), store.Options{BookmarkInterval: 100 * time.Millisecond}), e
}

func service(name string, port int32, lbls map[string]string) *resource.Service {
	s := &resource.Service{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default", Labels: lbls},
		Spec: resource.ServiceSpec{
			Selector: map[string]string{"app": name},
			Ports:    []resource.ServicePort{{Name: "http", Port: port}},
		},
	}
	s.GetObjectKind().SetGroupVersionKind(resource.ServiceKind.GVK())
	return s
}

func endpoint(name string) *resource.Endpoint {
	e := &resource.Endpoint{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default", Labels: map[string]string{"app": "greeter"}},
		Spec:       resource.EndpointSpec{Address: "10.0.0.1", Ports: []resource.EndpointPort{{Port: 8080}}},
	}
	e.GetObjectKind().SetGroupVersionKind(resource.EndpointKind.GVK())
	return e
}

func rev(t *testing.T, o resource.Object) int64 {
	t.Helper()
	n, err := store.ParseResourceVersion(o.GetResourceVersion())
	if err != nil || n == 0 {
		t.Fatalf("resourceVersion %q: %v", o.GetResourceVersion(), err)
	}
	return n
}

func TestCreateSetsServerFields(t *testing.T) {
	s, _ := newStore(t)
	ctx := context.Background()
	in := service("greeter", 80, nil)
	in.UID = "client-chosen"
	in.Generation = 7
	out, err := s.Create(ctx, in, store.WriteOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if out.GetUID() == "" || out.GetUID() == "client-chosen" {
		t.Errorf("uid = %q, want a server-generated uid", out.GetUID())
	}
	if out.GetGeneration() != 1 {
		t.Errorf("generation = %d, want 1", out.GetGeneration())
	}
	if ts := out.GetCreationTimestamp(); ts.IsZero() {
		t.Error("creationTimestamp not set")
	}
	if got := out.(*resource.Service).Spec.Ports[0].Protocol; got != resource.ProtocolHTTP {
		t.Errorf("protocol default = %q, want http", got)
	}
	got, err := s.Get(ctx, resource.ServiceKind, "default", "greeter")
	if err != nil {
		t.Fatal(err)
	}
	if got.GetResourceVersion() != out.GetResourceVersion() || got.GetUID() != out.GetUID() {
		t.Errorf("get returned rv %s uid %s, create returned rv %s uid %s", got.GetResourceVersion(), got.GetUID(), out.GetResourceVersion(), out.GetUID())
	}
	if _, err := s.Create(ctx, in, store.WriteOptions{}); !errors.Is(err, resource.ErrAlreadyExists) {
		t.Errorf("second create: err = %v, want ErrAlreadyExists", err)
	}
	if _, err := s.Get(ctx, resource.ServiceKind, "default", "missing"); !errors.Is(err, resource.ErrNotFound) {
		t.Errorf("get missing: err = %v, want ErrNotFound", err)
	}
}

func TestCreateRejectsInvalidAndWritesNothing(t *testing.T) {
	s, _ := newStore(t)
	ctx := context.Background()
	in := service("greeter", 70000, nil)
	_, err := s.Create(ctx, in, store.WriteOptions{})
	var inv *resource.InvalidError
	if !errors.As(err, &inv) {
		t.Fatalf("err = %v, want InvalidError", err)
	}
	causes := inv.Causes()
	if len(causes) != 1 || causes[0].Field != "spec.ports[0].port" || causes[0].Reason != "must be 1-65535" {
		t.Errorf("causes = %+v, want spec.ports[0].port: must be 1-65535", causes)
	}
	if _, err := s.Get(ctx, resource.ServiceKind, "default", "greeter"); !errors.Is(err, resource.ErrNotFound) {
		t.Errorf("invalid object was stored: get err = %v", err)
	}
}

func TestDryRunWritesNothing(t *testing.T) {
	s, _ := newStore(t)
	ctx := context.Background()
	out, err := s.Create(ctx, service("greeter", 80, nil), store.WriteOptions{DryRun: true})
	if err != nil || out.GetUID() == "" {
		t.Fatalf("dry-run create: %v, %v", out, err)
	}
	if _, err := s.Get(ctx, resource.ServiceKind, "default", "greeter"); !errors.Is(err, resource.ErrNotFound) {
		t.Errorf("dry run stored the object: %v", err)
	}
}

func TestConcurrentUpdatesExactlyOneWins(t *testing.T) {
	s, _ := newStore(t)
	ctx := context.Background()
	created, err := s.Create(ctx, service("greeter", 80, nil), store.WriteOptions{})
	if err != nil {
		t.Fatal(err)
	}
	const writers = 16
	var wins, conflicts atomic.Int32
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range writers {
		wg.Go(func() {
			obj := created.DeepCopyObject().(*resource.Service)
			obj.Spec.Ports[0].Port = int32(1000 + i)
			<-start
			_, err := s.Update(ctx, obj, store.WriteOptions{})
			switch {
			case err == nil:
				wins.Add(1)
			case errors.Is(err, resource.ErrConflict):
				conflicts.Add(1)
			default:
				t.Errorf("writer %d: unexpected error %v", i, err)
			}
		})
	}
	close(start)
	wg.Wait()
	if wins.Load() != 1 || conflicts.Load() != writers-1 {
		t.Fatalf("wins = %d, conflicts = %d; want exactly 1 win and %d conflicts", wins.Load(), conflicts.Load(), writers-1)
	}
	got, _ := s.Get(ctx, resource.ServiceKind, "default", "greeter")
	if got.GetGeneration() != 2 {
		t.Errorf("generation = %d after one winning update, want 2", got.GetGeneration())
	}
}

func TestUnconditionalUpdatesAllApply(t *testing.T) {
	s, _ := newStore(t)
	ctx := context.Background()
	if _, err := s.Create(ctx, service("greeter", 80, nil), store.WriteOptions{}); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			obj := service("greeter", int32(2000+i), nil) // no resourceVersion: last writer wins, nobody fails
			if _, err := s.Update(ctx, obj, store.WriteOptions{}); err != nil {
				t.Errorf("writer %d: %v", i, err)
			}
		})
	}
	wg.Wait()
}

func TestGenerationBumpsOnSpecChangesOnly(t *testing.T) {
	s, _ := newStore(t)
	ctx := context.Background()
	cur, err := s.Create(ctx, service("greeter", 80, nil), store.WriteOptions{})
	if err != nil {
		t.Fatal(err)
	}
	steps := []struct {
		name    string
		mutate  func(*resource.Service)
		wantGen int64
		wantRV  string // "same" or "new"
	}{
		{"labels only", func(s *resource.Service) { s.Labels = map[string]string{"team": "a"} }, 1, "new"},
		{"annotations only", func(s *resource.Service) { s.Annotations = map[string]string{"note": "x"} }, 1, "new"},
		{"spec", func(s *resource.Service) { s.Spec.Ports[0].Port = 81 }, 2, "new"},
		{"nothing", func(s *resource.Service) {}, 2, "same"},
		{"defaulted field written explicitly", func(s *resource.Service) { s.Spec.Ports[0].Protocol = resource.ProtocolHTTP }, 2, "same"},
	}
	for _, step := range steps {
		obj := cur.DeepCopyObject().(*resource.Service)
		step.mutate(obj)
		next, err := s.Update(ctx, obj, store.WriteOptions{})
		if err != nil {
			t.Fatalf("%s: %v", step.name, err)
		}
		if next.GetGeneration() != step.wantGen {
			t.Errorf("%s: generation = %d, want %d", step.name, next.GetGeneration(), step.wantGen)
		}
		sameRV := next.GetResourceVersion() == cur.GetResourceVersion()
		if sameRV != (step.wantRV == "same") {
			t.Errorf("%s: resourceVersion %s -> %s, want %s", step.name, cur.GetResourceVersion(), next.GetResourceVersion(), step.wantRV)
		}
		nextTS, curTS := next.GetCreationTimestamp(), cur.GetCreationTimestamp()
		if next.GetUID() != cur.GetUID() || !nextTS.Equal(&curTS) {
			t.Errorf("%s: uid or creationTimestamp changed", step.name)
		}
		cur = next
	}
}

func TestStatusSubresource(t *testing.T) {
	s, _ := newStore(t)
	ctx := context.Background()
	in := endpoint("ep-1")
	in.Status.Health = resource.HealthUnhealthy // ignored on create
	created, err := s.Create(ctx, in, store.WriteOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if h := created.(*resource.Endpoint).Status.Health; h != resource.HealthHealthy {
		t.Fatalf("health on create = %q, want the default healthy", h)
	}

	// The main path cannot change status.
	upd := created.DeepCopyObject().(*resource.Endpoint)
	upd.Status.Health = resource.HealthUnhealthy
	upd.Spec.Address = "10.0.0.2"
	got, err := s.Update(ctx, upd, store.WriteOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ep := got.(*resource.Endpoint)
	if ep.Status.Health != resource.HealthHealthy || ep.Spec.Address != "10.0.0.2" || ep.Generation != 2 {
		t.Errorf("after update: health %q address %q generation %d; want healthy, 10.0.0.2, 2", ep.Status.Health, ep.Spec.Address, ep.Generation)
	}

	// The status path cannot change spec, labels or generation.
	st := ep.DeepCopy()
	st.Status.Health = resource.HealthUnhealthy
	st.Status.Message = "connection refused"
	st.Spec.Address = "10.9.9.9"
	st.Labels = map[string]string{"hijack": "true"}
	got, err = s.UpdateStatus(ctx, st, store.WriteOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ep2 := got.(*resource.Endpoint)
	if ep2.Status.Health != resource.HealthUnhealthy || ep2.Status.Message != "connection refused" {
		t.Errorf("status not written: %+v", ep2.Status)
	}
	if ep2.Spec.Address != "10.0.0.2" || ep2.Labels["hijack"] != "" || ep2.Generation != 2 {
		t.Errorf("status update changed spec/metadata: address %q labels %v generation %d", ep2.Spec.Address, ep2.Labels, ep2.Generation)
	}

	bad := ep2.DeepCopy()
	bad.Status.Health = "sick"
	if _, err := s.UpdateStatus(ctx, bad, store.WriteOptions{}); !errors.Is(err, resource.ErrInvalid) {
		t.Errorf("invalid status: err = %v, want ErrInvalid", err)
	}
	if _, err := s.UpdateStatus(ctx, service("greeter", 80, nil), store.WriteOptions{}); !errors.Is(err, resource.ErrNotFound) {
		t.Errorf("status of a kind without status: err = %v, want ErrNotFound", err)
	}
}

func TestApplyIsIdempotent(t *testing.T) {
	s, _ := newStore(t)
	ctx := context.Background()
	first, created, err := s.Apply(ctx, service("greeter", 80, nil), store.WriteOptions{})
	if err != nil || !created {
		t.Fatalf("first apply: created=%v err=%v", created, err)
	}
	second, created, err := s.Apply(ctx, service("greeter", 80, nil), store.WriteOptions{})
	if err != nil || created {
		t.Fatalf("second apply: created=%v err=%v", created, err)
	}
	if second.GetResourceVersion() != first.GetResourceVersion() {
		t.Errorf("applying the same document changed resourceVersion %s -> %s", first.GetResourceVersion(), second.GetResourceVersion())
	}
	third, _, err := s.Apply(ctx, service("greeter", 81, nil), store.WriteOptions{})
	if err != nil || third.GetResourceVersion() == first.GetResourceVersion() || third.GetGeneration() != 2 {
		t.Fatalf("changed apply: rv %s generation %d err %v", third.GetResourceVersion(), third.GetGeneration(), err)
	}
}

func TestDeletePreconditions(t *testing.T) {
	s, _ := newStore(t)
	ctx := context.Background()
	created, err := s.Create(ctx, service("greeter", 80, nil), store.WriteOptions{})
	if err != nil {
		t.Fatal(err)
	}
	stale := fmt.Sprint(rev(t, created) - 1)
	if _, err := s.Delete(ctx, resource.ServiceKind, "default", "greeter", store.Preconditions{ResourceVersion: stale}, store.WriteOptions{}); !errors.Is(err, resource.ErrConflict) {
		t.Errorf("delete with stale rv: err = %v, want ErrConflict", err)
	}
	if _, err := s.Delete(ctx, resource.ServiceKind, "default", "greeter", store.Preconditions{UID: "other"}, store.WriteOptions{}); !errors.Is(err, resource.ErrConflict) {
		t.Errorf("delete with wrong uid: err = %v, want ErrConflict", err)
	}
	del, err := s.Delete(ctx, resource.ServiceKind, "default", "greeter", store.Preconditions{ResourceVersion: created.GetResourceVersion()}, store.WriteOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if del.GetUID() != created.GetUID() || rev(t, del) <= rev(t, created) {
		t.Errorf("deleted object uid %s rv %s; want uid %s and a later rv than %s", del.GetUID(), del.GetResourceVersion(), created.GetUID(), created.GetResourceVersion())
	}
	if _, err := s.Delete(ctx, resource.ServiceKind, "default", "greeter", store.Preconditions{}, store.WriteOptions{}); !errors.Is(err, resource.ErrNotFound) {
		t.Errorf("second delete: err = %v, want ErrNotFound", err)
	}
}

func TestListByNamespaceAndSelector(t *testing.T) {
	s, _ := newStore(t)
	ctx := context.Background()
	for _, o := range []struct{ ns, name, tier string }{
		{"default", "a", "web"}, {"default", "b", "db"}, {"prod", "c", "web"}, {"prod-eu", "d", "web"},
	} {
		svc := service(o.name, 80, map[string]string{"tier": o.tier})
		svc.Namespace = o.ns
		if _, err := s.Create(ctx, svc, store.WriteOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	web := labels.SelectorFromSet(labels.Set{"tier": "web"})
	cases := []struct {
		ns   string
		sel  labels.Selector
		want []string
	}{
		{"", nil, []string{"default/a", "default/b", "prod-eu/d", "prod/c"}},
		{"default", nil, []string{"default/a", "default/b"}},
		{"prod", nil, []string{"prod/c"}}, // not prod-eu
		{"", web, []string{"default/a", "prod-eu/d", "prod/c"}},
	}
	for _, c := range cases {
		objs, listRev, err := s.List(ctx, resource.ServiceKind, c.ns, c.sel)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, o := range objs {
			got = append(got, o.GetNamespace()+"/"+o.GetName())
		}
		if fmt.Sprint(got) != fmt.Sprint(c.want) {
			t.Errorf("list ns=%q sel=%v = %v, want %v", c.ns, c.sel, got, c.want)
		}
		if listRev < 5 {
			t.Errorf("list revision = %d, want the etcd header revision (>= 5)", listRev)
		}
	}
}

// next reads one event with a deadline.
func next(t *testing.T, ch <-chan store.Event) store.Event {
	t.Helper()
	for {
		select {
		case ev, ok := <-ch:
			if !ok {
				t.Fatal("watch channel closed")
			}
			if ev.Type == watch.Bookmark {
				continue
			}
			return ev
		case <-time.After(10 * time.Second):
			t.Fatal("no watch event within 10s")
		}
	}
}

func expect(t *testing.T, ch <-chan store.Event, typ watch.EventType, name string) store.Event {
	t.Helper()
	ev := next(t, ch)
	if ev.Type != typ || ev.Object == nil || ev.Object.GetName() != name {
		got := "<nil>"
		if ev.Object != nil {
			got = ev.Object.GetName()
		}
		t.Fatalf("event = %s %s (err %v), want %s %s", ev.Type, got, ev.Err, typ, name)
	}
	return ev
}

func TestWatch(t *testing.T) {
	s, _ := newStore(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	existing, err := s.Create(ctx, service("existing", 80, nil), store.WriteOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ch, err := s.Watch(ctx, resource.ServiceKind, "default", store.WatchOptions{})
	if err != nil {
		t.Fatal(err)
	}
	expect(t, ch, watch.Added, "existing") // initial state
	created, _ := s.Create(ctx, service("greeter", 80, nil), store.WriteOptions{})
	ev := expect(t, ch, watch.Added, "greeter")
	if ev.Object.GetResourceVersion() != created.GetResourceVersion() {
		t.Errorf("ADDED rv %s, want %s", ev.Object.GetResourceVersion(), created.GetResourceVersion())
	}
	upd := created.DeepCopyObject().(*resource.Service)
	upd.Spec.Ports[0].Port = 81
	if _, err := s.Update(ctx, upd, store.WriteOptions{}); err != nil {
		t.Fatal(err)
	}
	ev = expect(t, ch, watch.Modified, "greeter")
	if ev.Object.(*resource.Service).Spec.Ports[0].Port != 81 {
		t.Error("MODIFIED does not carry the new object")
	}
	del, err := s.Delete(ctx, resource.ServiceKind, "default", "existing", store.Preconditions{}, store.WriteOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ev = expect(t, ch, watch.Deleted, "existing")
	if ev.Object.GetResourceVersion() != del.GetResourceVersion() {
		t.Errorf("DELETED rv %s, want the deletion's %s", ev.Object.GetResourceVersion(), del.GetResourceVersion())
	}
	other := service("elsewhere", 80, nil)
	other.Namespace = "other"
	if _, err := s.Create(ctx, other, store.WriteOptions{}); err != nil {
		t.Fatal(err)
	}
	// Resuming after the first object's creation replays what came later, in order.
	resumed, err := s.Watch(ctx, resource.ServiceKind, "", store.WatchOptions{ResourceVersion: rev(t, existing)})
	if err != nil {
		t.Fatal(err)
	}
	expect(t, resumed, watch.Added, "greeter")
	expect(t, resumed, watch.Modified, "greeter")
	expect(t, resumed, watch.Deleted, "existing")
	expect(t, resumed, watch.Added, "elsewhere")
}

func TestWatchSelectorTransitions(t *testing.T) {
	s, _ := newStore(t)
	ctx := context.Background()
	ch, err := s.Watch(ctx, resource.ServiceKind, "default", store.WatchOptions{Selector: labels.SelectorFromSet(labels.Set{"tier": "web"})})
	if err != nil {
		t.Fatal(err)
	}
	obj, _ := s.Create(ctx, service("a", 80, map[string]string{"tier": "db"}), store.WriteOptions{})
	moved := obj.DeepCopyObject().(*resource.Service)
	moved.Labels = map[string]string{"tier": "web"}
	obj, _ = s.Update(ctx, moved, store.WriteOptions{})
	expect(t, ch, watch.Added, "a") // now matches
	away := obj.DeepCopyObject().(*resource.Service)
	away.Labels = map[string]string{"tier": "db"}
	if _, err := s.Update(ctx, away, store.WriteOptions{}); err != nil {
		t.Fatal(err)
	}
	expect(t, ch, watch.Deleted, "a") // stopped matching
	if _, err := s.Delete(ctx, resource.ServiceKind, "default", "a", store.Preconditions{}, store.WriteOptions{}); err != nil {
		t.Fatal(err)
	}
	s.Create(ctx, service("b", 80, map[string]string{"tier": "web"}), store.WriteOptions{})
	expect(t, ch, watch.Added, "b") // the delete of a non-matching object was not reported
}

func TestWatchCompactedRevisionIsExpired(t *testing.T) {
	s, _ := newStore(t)
	ctx := context.Background()
	first, _ := s.Create(ctx, service("a", 80, nil), store.WriteOptions{})
	s.Create(ctx, service("b", 80, nil), store.WriteOptions{})
	last, _ := s.Create(ctx, service("c", 80, nil), store.WriteOptions{})
	// Resuming after first needs the revision after it, which this compaction removes.
	if err := s.Compact(ctx, rev(t, last)); err != nil {
		t.Fatal(err)
	}
	ch, err := s.Watch(ctx, resource.ServiceKind, "", store.WatchOptions{ResourceVersion: rev(t, first)})
	if err != nil {
		t.Fatal(err)
	}
	ev := next(t, ch)
	if ev.Type != watch.Error || !errors.Is(ev.Err, resource.ErrExpired) {
		t.Fatalf("event = %s %v, want ERROR wrapping ErrExpired", ev.Type, ev.Err)
	}
	if st := resource.StatusOf(ev.Err); st.Code != 410 {
		t.Errorf("status code = %d, want 410", st.Code)
	}
	if _, ok := <-ch; ok {
		t.Error("watch channel still open after the ERROR event")
	}
}

func TestWatchBookmarks(t *testing.T) {
	s, _ := newStore(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go s.Run(ctx)
	created, _ := s.Create(ctx, service("a", 80, nil), store.WriteOptions{})
	ch, err := s.Watch(ctx, resource.ServiceKind, "", store.WatchOptions{ResourceVersion: rev(t, created)})
	if err != nil {
		t.Fatal(err)
	}
	// A write elsewhere moves the revision; the bookmark must report it.
	other := endpoint("ep")
	written, _ := s.Create(ctx, other, store.WriteOptions{})
	deadline := time.After(10 * time.Second)
	for {
		select {
		case ev := <-ch:
			if ev.Type != watch.Bookmark {
				t.Fatalf("event %s, want only bookmarks", ev.Type)
			}
			if rev(t, ev.Object) >= rev(t, written) {
				return
			}
		case <-deadline:
			t.Fatal("no bookmark at or past the latest revision within 10s")
		}
	}
}

func TestCompactionKeepsOneIntervalOfHistory(t *testing.T) {
	s, e := newStore(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	first, _ := s.Create(ctx, service("a", 80, nil), store.WriteOptions{})
	go s.RunMaintenance(ctx, store.MaintenanceOptions{CompactInterval: 100 * time.Millisecond})
	// Compaction happens one interval after a revision was recorded; poll
	// until the first revision is gone.
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, err := e.Client.Get(ctx, "/sluice/resources/sluice.io/Service/default/a", clientv3.WithRev(rev(t, first)))
		if err != nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("revision of the first write still readable after 10s of 100ms compaction intervals")
		}
		time.Sleep(50 * time.Millisecond)
	}
	if _, err := s.Get(ctx, resource.ServiceKind, "default", "a"); err != nil {
		t.Errorf("current data lost by compaction: %v", err)
	}
}

func TestDefragment(t *testing.T) {
	s, _ := newStore(t)
	ctx := context.Background()
	// Write and delete enough to leave free pages, compact, then defragment.
	big := service("big", 80, nil)
	big.Annotations = map[string]string{"pad": string(make([]byte, 200<<10))}
	for i := range 40 {
		o := big.DeepCopy()
		o.Name = fmt.Sprintf("big-%d", i)
		for k := range o.Annotations {
			o.Annotations[k] = fmt.Sprintf("%0*d", 200<<10, i)
		}
		if _, err := s.Create(ctx, o, store.WriteOptions{}); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Delete(ctx, resource.ServiceKind, "default", o.Name, store.Preconditions{}, store.WriteOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	r, err := s.Revision(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Compact(ctx, r); err != nil {
		t.Fatal(err)
	}
	did, err := s.DefragmentIfWorthwhile(ctx, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	if !did {
		t.Error("no defragmentation with megabytes of free pages")
	}
	did, err = s.DefragmentIfWorthwhile(ctx, 1<<30)
	if err != nil || did {
		t.Errorf("defragmented below the threshold: did=%v err=%v", did, err)
	}
}

// TestWatchAtCompactionRevision resumes a watch whose first event's previous
// value was compacted in the same revision: the store cannot report that
// delete and must say so (410) rather than drop it.
func TestWatchAtCompactionRevision(t *testing.T) {
	s, _ := newStore(t)
	ctx := context.Background()
	s.Create(ctx, service("a", 80, nil), store.WriteOptions{})
	b, _ := s.Create(ctx, service("b", 80, nil), store.WriteOptions{})
	del, err := s.Delete(ctx, resource.ServiceKind, "default", "a", store.Preconditions{}, store.WriteOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Compact(ctx, rev(t, del)); err != nil {
		t.Fatal(err)
	}
	ch, err := s.Watch(ctx, resource.ServiceKind, "", store.WatchOptions{ResourceVersion: rev(t, b)})
	if err != nil {
		t.Fatal(err)
	}
	ev := next(t, ch)
	if ev.Type != watch.Error || !errors.Is(ev.Err, resource.ErrExpired) {
		t.Fatalf("event %s %v, want ERROR wrapping ErrExpired", ev.Type, ev.Err)
	}
}
