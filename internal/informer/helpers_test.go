package informer_test

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/tools/cache"

	"github.com/sluice/sluice/internal/client"
	"github.com/sluice/sluice/internal/informer"
	"github.com/sluice/sluice/internal/resource"
	"github.com/sluice/sluice/internal/server"
	"github.com/sluice/sluice/internal/servertest"
	"github.com/sluice/sluice/internal/store"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// service is a valid Service whose "seq" label tells its versions apart.
func service(namespace, name string, seq int, lbls map[string]string) *resource.Service {
	s := &resource.Service{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: namespace, Labels: map[string]string{"seq": strconv.Itoa(seq)}},
		Spec: resource.ServiceSpec{
			Selector: map[string]string{"app": name},
			Ports:    []resource.ServicePort{{Name: "http", Port: 8080}},
		},
	}
	for k, v := range lbls {
		s.Labels[k] = v
	}
	s.GetObjectKind().SetGroupVersionKind(resource.ServiceKind.GVK())
	return s
}

// env is what a test reads and writes: a store, a server over the store's
// etcd, or a server with its own embedded etcd (no store: tests write
// through the API and cannot compact).
type env struct {
	store  *store.Store       // nil when the server embeds its etcd
	server *servertest.Server // nil for the store source
	client *client.Client
}

// bookmarkInterval is short so that BOOKMARK events flow through the tests.
const bookmarkInterval = 100 * time.Millisecond

// newStore returns a store over a new etcd, without bookmarks.
func newStore(t *testing.T) *store.Store {
	t.Helper()
	e := servertest.StartEtcd(t)
	return store.New(e.Client, resource.Builtin(), store.Options{BookmarkInterval: bookmarkInterval})
}

// newStoreEnv is a store that sends bookmarks, for the store source.
func newStoreEnv(t *testing.T) *env {
	t.Helper()
	st := newStore(t)
	background(t, st.Run)
	return &env{store: st}
}

// newRESTEnv is a server over an etcd shared with a store, for the REST
// source; the server's own store sends the bookmarks.
func newRESTEnv(t *testing.T) *env {
	t.Helper()
	st := newStore(t)
	srv := servertest.Start(t, server.Config{EtcdEndpoints: st.Client().Endpoints(), BookmarkInterval: bookmarkInterval})
	return &env{store: st, server: srv, client: srv.Client(t, "")}
}

// newEmbeddedEnv is a server with its own embedded etcd, as `sluice server`
// runs by default.
func newEmbeddedEnv(t *testing.T) *env {
	t.Helper()
	srv := servertest.Start(t, server.Config{BookmarkInterval: bookmarkInterval})
	return &env{server: srv, client: srv.Client(t, "")}
}

func (e *env) source(k *resource.Kind, scope informer.Scope) informer.Source {
	if e.server != nil {
		return informer.NewRESTSource(e.client, k, scope)
	}
	return informer.NewStoreSource(e.store, k, scope)
}

var sources = []struct {
	name string
	env  func(*testing.T) *env
}{
	{"store", newStoreEnv},
	{"rest", newRESTEnv},
}

// apply creates or updates a Service, through the store or, for a server
// with its own embedded etcd, through the API.
func (e *env) apply(t *testing.T, obj resource.Object) resource.Object {
	t.Helper()
	var out resource.Object
	var err error
	if e.store != nil {
		out, _, err = e.store.Apply(context.Background(), obj, store.WriteOptions{})
	} else {
		out = resource.ServiceKind.New()
		_, err = e.client.Apply(context.Background(), client.ResourceOf(resource.ServiceKind), obj.GetNamespace(), obj.GetName(), obj, out, false)
	}
	if err != nil {
		t.Fatalf("apply %s/%s: %v", obj.GetNamespace(), obj.GetName(), err)
	}
	return out
}

// compact discards the history before the current revision.
func (e *env) compact(t *testing.T) {
	t.Helper()
	ctx := context.Background()
	rev, err := e.store.Revision(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.store.Compact(ctx, rev); err != nil {
		t.Fatal(err)
	}
}

// delete deletes a Service the way apply writes, and returns it as it was,
// at the resourceVersion of its deletion.
func (e *env) delete(t *testing.T, namespace, name string) resource.Object {
	t.Helper()
	var out resource.Object
	var err error
	if e.store != nil {
		out, err = e.store.Delete(context.Background(), resource.ServiceKind, namespace, name, store.Preconditions{}, store.WriteOptions{})
	} else {
		out = resource.ServiceKind.New()
		err = e.client.Delete(context.Background(), client.ResourceOf(resource.ServiceKind), namespace, name, nil, out, false)
	}
	if err != nil {
		t.Fatalf("delete %s/%s: %v", namespace, name, err)
	}
	return out
}

// background runs f in a goroutine until the test ends: then it cancels f's
// context and waits for f to return.
func background(t *testing.T, f func(ctx context.Context)) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		f(ctx)
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
}

// run runs inf until the test ends and waits for its first list.
func run(t *testing.T, inf *informer.Informer) {
	t.Helper()
	background(t, inf.Run)
	waitFor(t, "the informer's first list", 10*time.Second, inf.HasSynced)
}

// probe wraps a source to count lists and watches, record watch options and
// the statuses of ERROR events, and drop or hold watches on demand.
type probe struct {
	informer.Source
	lists   atomic.Int32
	watches atomic.Int32

	mu       sync.Mutex // guards current, held, opts, statuses
	current  watch.Interface
	held     chan struct{} // while not nil, new watches wait for it to close
	opts     []metav1.ListOptions
	statuses []metav1.Status
}

func (p *probe) ListWithContext(ctx context.Context, opts metav1.ListOptions) (runtime.Object, error) {
	p.lists.Add(1)
	return p.Source.ListWithContext(ctx, opts)
}

func (p *probe) WatchWithContext(ctx context.Context, opts metav1.ListOptions) (watch.Interface, error) {
	p.watches.Add(1)
	p.mu.Lock()
	p.opts = append(p.opts, opts)
	held := p.held
	p.mu.Unlock()
	if held != nil {
		select {
		case <-held:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	inner, err := p.Source.WatchWithContext(ctx, opts)
	if err != nil {
		return nil, err
	}
	w := &tap{Interface: inner, out: make(chan watch.Event), stop: make(chan struct{})}
	go func() {
		defer close(w.out)
		for ev := range inner.ResultChan() {
			if st, ok := ev.Object.(*metav1.Status); ok {
				p.mu.Lock()
				p.statuses = append(p.statuses, *st)
				p.mu.Unlock()
			}
			select {
			case w.out <- ev:
			case <-w.stop:
				return
			}
		}
	}()
	p.mu.Lock()
	p.current = w
	p.mu.Unlock()
	return w, nil
}

// tap is a watch whose events pass through the probe.
type tap struct {
	watch.Interface
	out      chan watch.Event
	stop     chan struct{}
	stopOnce sync.Once
}

func (w *tap) ResultChan() <-chan watch.Event { return w.out }

func (w *tap) Stop() {
	w.stopOnce.Do(func() { close(w.stop) })
	w.Interface.Stop()
}

// drop ends the current watch as a broken connection would.
func (p *probe) drop() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.current.Stop()
}

// hold makes new watches wait until release.
func (p *probe) hold() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.held = make(chan struct{})
}

func (p *probe) release() {
	p.mu.Lock()
	defer p.mu.Unlock()
	close(p.held)
	p.held = nil
}

func (p *probe) errorStatuses() []metav1.Status {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]metav1.Status(nil), p.statuses...)
}

func (p *probe) watchOptions() []metav1.ListOptions {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]metav1.ListOptions(nil), p.opts...)
}

// event is what a recorder saw: an add, update or delete of an object at a
// resourceVersion, with the object's "seq" label.
type event struct {
	Type string
	Key  string
	RV   string
	Seq  string
}

func (e event) String() string { return fmt.Sprintf("%s %s seq=%s rv=%s", e.Type, e.Key, e.Seq, e.RV) }

// recorder is an event handler that keeps every real change it is told
// about. Updates that keep the resourceVersion are not changes: a relist
// re-reports every object that way.
type recorder struct {
	mu     sync.Mutex // guards events
	events []event
}

func (r *recorder) record(typ string, obj any) {
	if tomb, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = tomb.Obj
	}
	o := obj.(resource.Object)
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, event{typ, o.GetNamespace() + "/" + o.GetName(), o.GetResourceVersion(), o.GetLabels()["seq"]})
}

func (r *recorder) OnAdd(obj any, _ bool) { r.record("add", obj) }

func (r *recorder) OnUpdate(oldObj, newObj any) {
	if oldObj.(resource.Object).GetResourceVersion() != newObj.(resource.Object).GetResourceVersion() {
		r.record("update", newObj)
	}
}

func (r *recorder) OnDelete(obj any) { r.record("delete", obj) }

func (r *recorder) all() []event {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]event(nil), r.events...)
}

func (r *recorder) len() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.events)
}

// byKey groups events by object, in the order they came.
func byKey(events []event) map[string][]event {
	m := map[string][]event{}
	for _, e := range events {
		m[e.Key] = append(m[e.Key], e)
	}
	return m
}
