package store

import (
	"context"
	"fmt"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/watch"

	"github.com/sluice/sluice/internal/resource"
)

// Event is one change seen by a watch. Object is nil for an ERROR event,
// whose Err says why the watch ended; a BOOKMARK's Object carries only a
// resourceVersion.
type Event struct {
	Type   watch.EventType
	Object resource.Object
	Err    error
}

// WatchOptions select what a watch sees.
type WatchOptions struct {
	// ResourceVersion is the revision to resume after. Zero starts with an
	// ADDED event for every current object, then follows changes.
	ResourceVersion int64
	// Selector filters by labels (nil: everything). An object whose labels
	// stop matching is reported DELETED, and ADDED when they match again.
	Selector labels.Selector
}

// watchBuffer is how many events a watcher may lag before the store waits for it.
const watchBuffer = 128

// Watch follows the objects of a kind in a namespace (all when empty). The
// channel closes when ctx ends or the watch breaks; after an ERROR event of
// ErrExpired the caller must list again, after a plain close it can resume from
// the last resourceVersion it saw.
func (s *Store) Watch(ctx context.Context, k *resource.Kind, namespace string, opts WatchOptions) (<-chan Event, error) {
	out := make(chan Event, watchBuffer)
	var initial []resource.Object
	rev := opts.ResourceVersion
	if rev == 0 {
		objs, listRev, err := s.List(ctx, k, namespace, opts.Selector)
		if err != nil {
			return nil, err
		}
		initial, rev = objs, listRev
	}
	ctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
	wch := s.client.Watch(ctx, prefixFor(k, namespace),
		clientv3.WithPrefix(), clientv3.WithRev(rev+1), clientv3.WithPrevKV(), clientv3.WithProgressNotify())
	s.metrics.watchers.Inc()
	s.watches.Add(1)
	go func() {
		defer s.watches.Add(-1)
		defer s.metrics.watchers.Dec()
		defer close(out)
		defer cancel()
		w := watcher{k: k, sel: opts.Selector, out: out, ctx: ctx}
		for _, obj := range initial {
			if !w.send(Event{Type: watch.Added, Object: obj}) {
				return
			}
		}
		w.run(wch)
	}()
	return out, nil
}

type watcher struct {
	k   *resource.Kind
	sel labels.Selector
	out chan<- Event
	ctx context.Context
}

func (w *watcher) send(ev Event) bool {
	select {
	case w.out <- ev:
		return true
	case <-w.ctx.Done():
		return false
	}
}

func (w *watcher) run(wch clientv3.WatchChan) {
	for resp := range wch {
		if resp.CompactRevision != 0 {
			w.send(Event{Type: watch.Error, Err: fmt.Errorf("%w: revision %d has been compacted; list again", resource.ErrExpired, resp.CompactRevision)})
			return
		}
		if err := resp.Err(); err != nil {
			w.send(Event{Type: watch.Error, Err: etcdError("watch", err)})
			return
		}
		if resp.IsProgressNotify() {
			bm := w.k.New()
			bm.SetResourceVersion(formatRev(resp.Header.Revision))
			if !w.send(Event{Type: watch.Bookmark, Object: bm}) {
				return
			}
			continue
		}
		for _, ev := range resp.Events {
			out, ok, err := w.translate(ev)
			if err != nil {
				w.send(Event{Type: watch.Error, Err: err})
				return
			}
			if ok && !w.send(out) {
				return
			}
		}
	}
}

func (w *watcher) matches(obj resource.Object) bool {
	return obj != nil && (w.sel == nil || w.sel.Matches(labels.Set(obj.GetLabels())))
}

// translate turns an etcd event into the event this watcher reports, if any.
func (w *watcher) translate(ev *clientv3.Event) (Event, bool, error) {
	var prev resource.Object
	if ev.PrevKv != nil {
		var err error
		if prev, err = decode(w.k, ev.PrevKv.Value, ev.PrevKv.ModRevision); err != nil {
			return Event{}, false, err
		}
	} else if ev.Type == mvccpb.DELETE || !ev.IsCreate() {
		// The previous value was compacted away in the very revision of this
		// event: without it a delete cannot be reported, nor a change
		// classified against the selector. The client must list again.
		return Event{}, false, fmt.Errorf("%w: the previous version of %s at revision %d has been compacted; list again",
			resource.ErrExpired, ev.Kv.Key, ev.Kv.ModRevision)
	}
	if ev.Type == mvccpb.DELETE {
		if !w.matches(prev) {
			return Event{}, false, nil
		}
		prev.SetResourceVersion(formatRev(ev.Kv.ModRevision))
		return Event{Type: watch.Deleted, Object: prev}, true, nil
	}
	obj, err := decode(w.k, ev.Kv.Value, ev.Kv.ModRevision)
	if err != nil {
		return Event{}, false, err
	}
	was, is := w.matches(prev), w.matches(obj)
	switch {
	case is && was:
		return Event{Type: watch.Modified, Object: obj}, true, nil
	case is:
		return Event{Type: watch.Added, Object: obj}, true, nil
	case was:
		return Event{Type: watch.Deleted, Object: obj}, true, nil
	}
	return Event{}, false, nil
}

// Run delivers bookmarks to every watch until ctx ends: it asks etcd for a
// progress notification each BookmarkInterval, which tells every watcher the
// revision it has seen everything up to.
func (s *Store) Run(ctx context.Context) {
	t := time.NewTicker(s.bookmarkInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if s.watches.Load() == 0 {
				// Nobody to notify, and the request would open an idle stream.
				continue
			}
			// The request must carry the same metadata as the watches (require
			// leader) to reach their stream.
			if err := s.client.RequestProgress(clientv3.WithRequireLeader(ctx)); err != nil && ctx.Err() == nil {
				s.log.Debug("watch progress request failed", "err", err)
			}
		}
	}
}
