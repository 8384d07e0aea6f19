package informer

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/tools/cache"

	"github.com/sluice/sluice/internal/client"
	"github.com/sluice/sluice/internal/resource"
	"github.com/sluice/sluice/internal/store"
)

// Source lists and watches one kind of resource for an Informer.
type Source interface {
	// What the Reflector calls.
	cache.ListerWatcherWithContext
	// What client-go's informer constructor still asks for.
	cache.ListerWatcher
	// IsWatchListSemanticsUnSupported must return true: Sluice's API has no
	// WatchList (sendInitialEvents), and client-go's Reflector, which tries
	// WatchList by default, falls back to list-then-watch only for sources
	// that say so.
	IsWatchListSemanticsUnSupported() bool
	// Kind is the kind of the objects the source returns.
	Kind() *resource.Kind
}

// Scope selects the objects a source lists and watches.
type Scope struct {
	// Namespace to read; empty reads all namespaces.
	Namespace string
	// Selector filters by labels; nil selects everything.
	Selector labels.Selector
}

func (s Scope) selector() string {
	if s.Selector == nil {
		return ""
	}
	return s.Selector.String()
}

// statusOf is the object of an ERROR event: client-go reads only a
// *metav1.Status, and relists when its code is 410 with reason Expired.
func statusOf(err error) *metav1.Status {
	st := resource.StatusOf(err)
	return &metav1.Status{
		Status:  metav1.StatusFailure,
		Code:    int32(st.Code),
		Reason:  metav1.StatusReason(st.Reason),
		Message: err.Error(),
	}
}

// stream is a watch.Interface fed by one producer goroutine.
type stream struct {
	result chan watch.Event
	cancel context.CancelFunc
	done   chan struct{}
}

// newStream runs produce until it returns or the watch is stopped (ctx ends,
// cancel is called); then the result channel closes. produce sends with emit,
// which reports false once the watch is stopped.
func newStream(ctx context.Context, cancel context.CancelFunc, produce func(emit func(watch.Event) bool)) *stream {
	s := &stream{result: make(chan watch.Event), cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(s.done)
		defer close(s.result)
		defer cancel()
		produce(func(ev watch.Event) bool {
			select {
			case s.result <- ev:
				return true
			case <-ctx.Done():
				return false
			}
		})
	}()
	return s
}

// Stop ends the watch and returns once its producer has finished.
func (s *stream) Stop() {
	s.cancel()
	<-s.done
}

func (s *stream) ResultChan() <-chan watch.Event { return s.result }

// ListWatch is the Source of the objects of one kind in a scope, read from
// the store (NewStoreSource) or through the REST API (NewRESTSource).
type ListWatch struct {
	kind    *resource.Kind
	scope   Scope
	backend backend
}

// backend is where a ListWatch reads.
type backend interface {
	list(ctx context.Context, k *resource.Kind, scope Scope) (runtime.Object, error)
	// watch opens a watch after resourceVersion rv, until ctx ends, and
	// returns the loop that passes its events to emit; the loop returns when
	// the watch ends or emit reports the consumer gone.
	watch(ctx context.Context, k *resource.Kind, scope Scope, rv string) (func(emit func(watch.Event) bool), error)
}

// NewStoreSource returns a source of the objects of kind k in scope, read
// from the store in-process: for controllers that run inside the server.
func NewStoreSource(st storeAPI, k *resource.Kind, scope Scope) *ListWatch {
	return &ListWatch{kind: k, scope: scope, backend: storeBackend{st}}
}

// NewRESTSource returns a source of the objects of kind k in scope, read
// through a server's REST API: for controllers that run outside the server.
func NewRESTSource(c restAPI, k *resource.Kind, scope Scope) *ListWatch {
	return &ListWatch{kind: k, scope: scope, backend: restBackend{c}}
}

// Kind is the kind of the source's objects.
func (lw *ListWatch) Kind() *resource.Kind { return lw.kind }

// IsWatchListSemanticsUnSupported is true: see Source.
func (lw *ListWatch) IsWatchListSemanticsUnSupported() bool { return true }

// List returns the typed list of the objects in scope, as of now, which is at
// least as fresh as any resourceVersion options ask for.
func (lw *ListWatch) List(options metav1.ListOptions) (runtime.Object, error) {
	return lw.ListWithContext(context.Background(), options)
}

// ListWithContext is List with a context.
func (lw *ListWatch) ListWithContext(ctx context.Context, _ metav1.ListOptions) (runtime.Object, error) {
	return lw.backend.list(ctx, lw.kind, lw.scope)
}

// Watch follows the objects in scope after options.ResourceVersion, for at
// most options.TimeoutSeconds.
func (lw *ListWatch) Watch(options metav1.ListOptions) (watch.Interface, error) {
	return lw.WatchWithContext(context.Background(), options)
}

// WatchWithContext is Watch with a context.
func (lw *ListWatch) WatchWithContext(ctx context.Context, options metav1.ListOptions) (watch.Interface, error) {
	if options.SendInitialEvents != nil {
		// The Reflector does not ask for WatchList here; refusing makes one
		// that does fall back to a plain list rather than wait forever for
		// an initial-events bookmark that never comes.
		return nil, fmt.Errorf("informer: %w: sendInitialEvents (WatchList) is not supported: list, then watch", resource.ErrBadRequest)
	}
	// The Reflector sets a timeout so that a silently stuck watch is
	// eventually replaced.
	var cancel context.CancelFunc
	if options.TimeoutSeconds != nil && *options.TimeoutSeconds > 0 {
		ctx, cancel = context.WithTimeout(ctx, time.Duration(*options.TimeoutSeconds)*time.Second)
	} else {
		ctx, cancel = context.WithCancel(ctx)
	}
	produce, err := lw.backend.watch(ctx, lw.kind, lw.scope, options.ResourceVersion)
	if err != nil {
		cancel()
		return nil, err
	}
	return newStream(ctx, cancel, produce), nil
}

// storeAPI is what a store source reads; *store.Store implements it.
type storeAPI interface {
	List(ctx context.Context, k *resource.Kind, namespace string, selector labels.Selector) ([]resource.Object, int64, error)
	Watch(ctx context.Context, k *resource.Kind, namespace string, opts store.WatchOptions) (<-chan store.Event, error)
}

type storeBackend struct{ store storeAPI }

func (b storeBackend) list(ctx context.Context, k *resource.Kind, scope Scope) (runtime.Object, error) {
	objs, rev, err := b.store.List(ctx, k, scope.Namespace, scope.Selector)
	if err != nil {
		return nil, err
	}
	return k.ListOf(objs, strconv.FormatInt(rev, 10))
}

func (b storeBackend) watch(ctx context.Context, k *resource.Kind, scope Scope, rv string) (func(emit func(watch.Event) bool), error) {
	rev, err := store.ParseResourceVersion(rv)
	if err != nil {
		return nil, err
	}
	events, err := b.store.Watch(ctx, k, scope.Namespace, store.WatchOptions{ResourceVersion: rev, Selector: scope.Selector})
	if err != nil {
		return nil, err
	}
	return func(emit func(watch.Event) bool) {
		for ev := range events {
			out := watch.Event{Type: ev.Type, Object: ev.Object}
			if ev.Type == watch.Error {
				out.Object = statusOf(ev.Err)
			}
			if !emit(out) || ev.Type == watch.Error {
				return
			}
		}
	}, nil
}

// restAPI is what a REST source calls; *client.Client implements it.
type restAPI interface {
	List(ctx context.Context, r client.Resource, namespace, labelSelector string, out any) error
	Watch(ctx context.Context, r client.Resource, namespace string, opts client.WatchOptions) (*client.Watch, error)
}

type restBackend struct{ client restAPI }

func (b restBackend) list(ctx context.Context, k *resource.Kind, scope Scope) (runtime.Object, error) {
	list := k.NewList()
	if err := b.client.List(ctx, client.ResourceOf(k), scope.Namespace, scope.selector(), list); err != nil {
		return nil, fmt.Errorf("informer: list %s: %w", k, err)
	}
	return list, nil
}

func (b restBackend) watch(ctx context.Context, k *resource.Kind, scope Scope, rv string) (func(emit func(watch.Event) bool), error) {
	w, err := b.client.Watch(ctx, client.ResourceOf(k), scope.Namespace, client.WatchOptions{ResourceVersion: rv, LabelSelector: scope.selector()})
	if err != nil {
		// The transport's error stays wrapped: the Reflector watches again
		// from its resourceVersion, rather than relisting, when it is
		// "connection refused", as while the server restarts.
		return nil, fmt.Errorf("informer: watch %s: %w", k, err)
	}
	return func(emit func(watch.Event) bool) {
		defer w.Close()
		for {
			ev, err := w.Next()
			if errors.Is(err, client.ErrWatchClosed) {
				// Dropped: the Reflector watches again from the last
				// resourceVersion it saw.
				return
			}
			var out watch.Event
			if err == nil {
				out, err = event(k, ev)
			}
			if err != nil {
				// Not a sentinel error, so a 500: the Reflector relists.
				out = watch.Event{Type: watch.Error, Object: statusOf(err)}
			}
			if !emit(out) || out.Type == watch.Error {
				return
			}
		}
	}, nil
}

// event decodes a wire event into one carrying a typed object of kind k.
func event(k *resource.Kind, ev client.Event) (watch.Event, error) {
	switch t := watch.EventType(ev.Type); t {
	case watch.Added, watch.Modified, watch.Deleted, watch.Bookmark:
		obj := k.New()
		if err := json.Unmarshal(ev.Object, obj); err != nil {
			return watch.Event{}, fmt.Errorf("informer: decode %s %s event: %w", k, t, err)
		}
		obj.GetObjectKind().SetGroupVersionKind(k.GVK())
		return watch.Event{Type: t, Object: obj}, nil
	case watch.Error:
		return watch.Event{Type: t, Object: statusOf(ev.Err())}, nil
	default:
		return watch.Event{}, fmt.Errorf("informer: %s watch event of unknown type %q", k, ev.Type)
	}
}
