package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/watch"

	"github.com/sluice/sluice/internal/resource"
)

// Event is one change seen by a watch. Object is nil for an ERROR event,
// whose Err says why the watch ended; a BOOKMARK's Object carries only a
// resourceVersion.
//
// Objects in events are shared by every watcher of the kind: they must not
// be modified (copy them first).
type Event struct {
	Type   watch.EventType
	Object resource.Object
	Err    error

	// enc, when set, holds Object's JSON, encoded once for all watchers.
	enc *encoding
}

// ObjectJSON returns the JSON of the event's object, encoded once however
// many watchers send it.
func (e Event) ObjectJSON() ([]byte, error) {
	if e.enc == nil {
		return json.Marshal(e.Object)
	}
	return e.enc.json()
}

// encoding is an object's JSON, made on first use.
type encoding struct {
	obj  resource.Object
	once sync.Once
	data []byte
	err  error
}

func (e *encoding) json() ([]byte, error) {
	e.once.Do(func() { e.data, e.err = json.Marshal(e.obj) })
	return e.data, e.err
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

// watchBuffer is how many events a watcher may have queued before it waits.
const watchBuffer = 64

// Watch follows the objects of a kind in a namespace (all when empty). The
// channel closes when ctx ends or the watch breaks; after an ERROR event of
// ErrExpired the caller must list again, after a plain close it can resume
// from the last resourceVersion it saw.
//
// Watches of a kind share one etcd watch (see hub), which decodes and
// encodes each change once for all of them; a watch that resumes from a
// revision older than the hub holds gets an etcd watch of its own.
func (s *Store) Watch(ctx context.Context, k *resource.Kind, namespace string, opts WatchOptions) (<-chan Event, error) {
	var initial []resource.Object
	rev := opts.ResourceVersion
	if rev == 0 {
		objs, listRev, err := s.List(ctx, k, namespace, opts.Selector)
		if err != nil {
			return nil, err
		}
		initial, rev = objs, listRev
	} else if err := s.checkHistory(ctx, rev); err != nil {
		var ce *compactedError
		if !errors.As(err, &ce) {
			return nil, err
		}
		out := make(chan Event, 1)
		out <- Event{Type: watch.Error, Err: err}
		close(out)
		return out, nil
	}
	out := make(chan Event, watchBuffer)
	f := filter{namespace: namespace, sel: opts.Selector}
	h, sub := s.subscribe(k, rev)
	s.metrics.watchers.Inc()
	s.watches.Add(1)
	go func() {
		defer s.watches.Add(-1)
		defer s.metrics.watchers.Dec()
		defer close(out)
		send := func(ev Event) bool {
			select {
			case out <- ev:
				return true
			case <-ctx.Done():
				return false
			}
		}
		for _, obj := range initial {
			if !send(Event{Type: watch.Added, Object: obj}) {
				return
			}
		}
		if h != nil {
			defer s.unsubscribe(h)
			sub.run(ctx, f, send)
			return
		}
		s.watchDirect(ctx, k, rev, f, send)
	}()
	return out, nil
}

// filter is what one watcher wants to see.
type filter struct {
	namespace string
	sel       labels.Selector
}

func (f filter) matches(obj resource.Object) bool {
	return obj != nil && (f.namespace == "" || obj.GetNamespace() == f.namespace) &&
		(f.sel == nil || f.sel.Matches(labels.Set(obj.GetLabels())))
}

// change is one etcd event of a kind, decoded.
type change struct {
	k   *resource.Kind
	rev int64
	// del says the key was deleted; obj is then the deleted object, with
	// the deletion's revision.
	del bool
	obj resource.Object
	enc *encoding

	prevOnce sync.Once
	prevKV   *mvccpb.KeyValue
	prev     resource.Object
	prevErr  error
}

// decodeChange decodes an etcd event. A change whose previous value etcd
// could not send (it was compacted in the very revision of the event) cannot
// be reported: a delete would have no object, a change no classification
// against a selector; that is ErrExpired, and the client lists again.
func decodeChange(k *resource.Kind, ev *clientv3.Event) (*change, error) {
	c := &change{k: k, rev: ev.Kv.ModRevision, prevKV: ev.PrevKv}
	if ev.PrevKv == nil && (ev.Type == mvccpb.DELETE || !ev.IsCreate()) {
		return nil, fmt.Errorf("%w: the previous version of %s at revision %d has been compacted; list again",
			resource.ErrExpired, ev.Kv.Key, ev.Kv.ModRevision)
	}
	if ev.Type == mvccpb.DELETE {
		prev, err := c.previous()
		if err != nil {
			return nil, err
		}
		c.del = true
		c.obj = copyOf(prev)
		c.obj.SetResourceVersion(formatRev(c.rev))
	} else {
		obj, err := decode(k, ev.Kv.Value, ev.Kv.ModRevision)
		if err != nil {
			return nil, err
		}
		c.obj = obj
	}
	c.enc = &encoding{obj: c.obj}
	return c, nil
}

// previous decodes the previous value once, and only for the watchers that
// need it (deletes and label selectors).
func (c *change) previous() (resource.Object, error) {
	c.prevOnce.Do(func() {
		if c.prevKV != nil {
			c.prev, c.prevErr = decode(c.k, c.prevKV.Value, c.prevKV.ModRevision)
		}
	})
	return c.prev, c.prevErr
}

// eventFor says what a watcher with filter f sees of the change, if anything.
func (c *change) eventFor(f filter) (Event, bool, error) {
	if c.del {
		if !f.matches(c.obj) {
			return Event{}, false, nil
		}
		return Event{Type: watch.Deleted, Object: c.obj, enc: c.enc}, true, nil
	}
	is := f.matches(c.obj)
	was := is
	if f.sel != nil || c.prevKV == nil {
		// Only a selector can make the match differ between versions (the
		// namespace never changes); without a previous value it is a create.
		prev, err := c.previous()
		if err != nil {
			return Event{}, false, err
		}
		was = f.matches(prev)
	}
	switch {
	case is && was:
		return Event{Type: watch.Modified, Object: c.obj, enc: c.enc}, true, nil
	case is:
		return Event{Type: watch.Added, Object: c.obj, enc: c.enc}, true, nil
	case was:
		return Event{Type: watch.Deleted, Object: c.obj, enc: c.enc}, true, nil
	}
	return Event{}, false, nil
}

// compactedError says a watch started before the compacted revision rev.
type compactedError struct{ rev int64 }

func (e *compactedError) Error() string {
	return fmt.Sprintf("%v: revision %d has been compacted; list again", resource.ErrExpired, e.rev)
}

func (e *compactedError) Unwrap() error { return resource.ErrExpired }

func bookmark(k *resource.Kind, rev int64) Event {
	bm := k.New()
	bm.SetResourceVersion(formatRev(rev))
	return Event{Type: watch.Bookmark, Object: bm}
}

// etcdWatch opens an etcd watch of the keys under prefix after rev.
func (s *Store) etcdWatch(ctx context.Context, prefix string, rev int64) clientv3.WatchChan {
	return s.client.Watch(clientv3.WithRequireLeader(ctx), prefix,
		clientv3.WithPrefix(), clientv3.WithRev(rev+1), clientv3.WithPrevKV(), clientv3.WithProgressNotify())
}

// watchDirect serves one watcher from an etcd watch of its own, for a
// revision older than its kind's hub holds.
func (s *Store) watchDirect(ctx context.Context, k *resource.Kind, rev int64, f filter, send func(Event) bool) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	for resp := range s.etcdWatch(ctx, prefixFor(k, f.namespace), rev) {
		if err := watchError(resp); err != nil {
			send(Event{Type: watch.Error, Err: err})
			return
		}
		if resp.IsProgressNotify() {
			if !send(bookmark(k, resp.Header.Revision)) {
				return
			}
			continue
		}
		for _, ev := range resp.Events {
			c, err := decodeChange(k, ev)
			if err != nil {
				send(Event{Type: watch.Error, Err: err})
				return
			}
			out, ok, err := c.eventFor(f)
			if err != nil {
				send(Event{Type: watch.Error, Err: err})
				return
			}
			if ok && !send(out) {
				return
			}
		}
	}
}

// checkHistory fails with a compactedError when etcd no longer holds the
// changes after rev. The kind's hub may still have them in its ring, but a
// resume must fail exactly as an etcd watch would: otherwise it would succeed
// on a replica whose hub is old and fail on one whose hub is new.
func (s *Store) checkHistory(ctx context.Context, rev int64) error {
	_, err := s.client.Get(ctx, compactKey, clientv3.WithRev(rev+1), clientv3.WithCountOnly(), clientv3.WithSerializable())
	switch {
	case err == nil, errors.Is(err, rpctypes.ErrFutureRev):
		return nil
	case errors.Is(err, rpctypes.ErrCompacted):
		return &compactedError{rev: rev + 1}
	}
	return EtcdError("watch", err)
}

// watchError is the error an etcd watch response ends the watch with, if any.
func watchError(resp clientv3.WatchResponse) error {
	if resp.CompactRevision != 0 {
		return &compactedError{rev: resp.CompactRevision}
	}
	if err := resp.Err(); err != nil {
		return EtcdError("watch", err)
	}
	return nil
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
