package store

import (
	"context"
	"errors"
	"sync"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"
	"k8s.io/apimachinery/pkg/watch"

	"github.com/sluice/sluice/internal/resource"
)

// hubRing is how many recent changes a hub keeps for watchers that join
// late or read slowly.
const hubRing = 1024

// A hub fans one etcd watch of a kind out to every watcher of that kind: each
// change is decoded once (its previous value only if a watcher needs it) and
// encoded to JSON once, however many watchers there are. The hub keeps the
// last hubRing changes in a ring; each watcher reads the ring at its own pace
// from the first change after its revision. A watcher that falls more than
// the ring behind is ended, and resumes (from its last revision, with an etcd
// watch of its own if the ring no longer holds it).
//
// A hub starts with its first watcher and stops with its last.
type hub struct {
	s      *Store
	k      *resource.Kind
	cancel context.CancelFunc
	refs   int // guarded by Store.hubsMu

	mu    sync.Mutex // guards the fields below
	ring  [hubRing]entry
	next  int64         // sequence number of the next entry
	floor int64         // every change after this revision is in the ring or still to come
	wake  chan struct{} // closed and replaced when entries are added or the hub ends
	ended bool
	err   error // why the hub ended, if it failed
}

// entry is a change, or a bookmark when c is nil.
type entry struct {
	rev int64
	c   *change
}

// subscribe joins the hub of kind k for a watcher resuming after rev,
// starting the hub if there is none. It returns nil when the hub cannot serve
// that revision.
func (s *Store) subscribe(k *resource.Kind, rev int64) (*hub, *subscription) {
	s.hubsMu.Lock()
	defer s.hubsMu.Unlock()
	h := s.hubs[k]
	if h == nil {
		h = s.startHub(k, rev)
		s.hubs[k] = h
	}
	sub, ok := h.join(rev)
	if !ok {
		return nil, nil
	}
	h.refs++
	return h, sub
}

// unsubscribe leaves a hub, stopping it after its last watcher.
func (s *Store) unsubscribe(h *hub) {
	s.hubsMu.Lock()
	defer s.hubsMu.Unlock()
	h.refs--
	if h.refs == 0 {
		h.cancel()
		if s.hubs[h.k] == h {
			delete(s.hubs, h.k)
		}
	}
}

func (s *Store) startHub(k *resource.Kind, rev int64) *hub {
	ctx, cancel := context.WithCancel(context.Background())
	h := &hub{s: s, k: k, cancel: cancel, floor: rev, wake: make(chan struct{})}
	wch := s.etcdWatch(ctx, kindKey(k), rev)
	go h.run(wch)
	return h
}

// join returns a subscription for a watcher resuming after rev, if the hub
// holds every change after it.
func (h *hub) join(rev int64) (*subscription, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.ended || rev < h.floor {
		return nil, false
	}
	// Entries are in revision order; start at the first one after rev.
	seq := h.next
	for seq > h.oldest() && h.ring[(seq-1)%hubRing].rev > rev {
		seq--
	}
	return &subscription{h: h, seq: seq, start: rev, after: rev}, true
}

// oldest is the sequence number of the oldest entry still in the ring.
func (h *hub) oldest() int64 { return max(0, h.next-hubRing) }

func (h *hub) run(wch clientv3.WatchChan) {
	var err error
	for resp := range wch {
		if err = watchError(resp); err != nil {
			break
		}
		if resp.IsProgressNotify() {
			h.add([]entry{{rev: resp.Header.Revision}})
			continue
		}
		entries := make([]entry, 0, len(resp.Events))
		for _, ev := range resp.Events {
			var c *change
			if c, err = decodeChange(h.k, ev); err != nil {
				break
			}
			h.s.rememberChange(ev, c)
			entries = append(entries, entry{rev: c.rev, c: c})
		}
		h.add(entries)
		if err != nil {
			break
		}
	}
	h.end(err)
}

func (h *hub) add(entries []entry) {
	if len(entries) == 0 {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, e := range entries {
		if h.next >= hubRing {
			// The entry overwritten is the oldest: the ring no longer holds
			// the changes up to its revision.
			h.floor = max(h.floor, h.ring[h.next%hubRing].rev)
		}
		h.ring[h.next%hubRing] = e
		h.next++
	}
	close(h.wake)
	h.wake = make(chan struct{})
}

func (h *hub) end(err error) {
	h.s.hubsMu.Lock()
	if h.s.hubs[h.k] == h {
		delete(h.s.hubs, h.k)
	}
	h.s.hubsMu.Unlock()
	h.mu.Lock()
	defer h.mu.Unlock()
	h.ended, h.err = true, err
	close(h.wake)
}

// subscription is one watcher's place in a hub.
type subscription struct {
	h   *hub
	seq int64 // next entry to read
	// start is the watcher's revision: entries up to it are skipped (the
	// hub's etcd watch may not have reached it when the watcher joined).
	start int64
	after int64 // the revision of the last entry read, or start
}

// run sends the watcher every change it wants, until the hub ends, ctx ends,
// send fails or the watcher falls behind the ring.
func (sub *subscription) run(ctx context.Context, f filter, send func(Event) bool) {
	h := sub.h
	var batch []entry
	for {
		h.mu.Lock()
		if sub.seq < h.oldest() {
			h.mu.Unlock()
			h.s.log.Debug("watcher fell behind its hub; ending it so it resumes", "kind", h.k.Kind)
			return
		}
		batch = batch[:0]
		for ; sub.seq < h.next; sub.seq++ {
			batch = append(batch, h.ring[sub.seq%hubRing])
		}
		wake, ended, hubErr := h.wake, h.ended, h.err
		h.mu.Unlock()

		for _, e := range batch {
			// Not e.rev <= sub.after: one etcd transaction may change
			// several objects, whose entries share a revision.
			if e.rev <= sub.start {
				continue
			}
			sub.after = e.rev
			if e.c == nil {
				if !send(bookmark(h.k, e.rev)) {
					return
				}
				continue
			}
			ev, ok, err := e.c.eventFor(f)
			if err != nil {
				send(Event{Type: watch.Error, Err: err})
				return
			}
			if ok && !send(ev) {
				return
			}
		}
		if len(batch) > 0 {
			continue
		}
		if ended {
			if hubErr != nil && !sub.unaffected(hubErr) {
				send(Event{Type: watch.Error, Err: hubErr})
			}
			return
		}
		select {
		case <-wake:
		case <-ctx.Done():
			return
		}
	}
}

// unaffected says whether the hub's failure leaves this watcher able to
// resume: a hub started from a compacted revision fails, but a watcher that
// joined it from a later revision can resume with a watch of its own.
func (sub *subscription) unaffected(err error) bool {
	var ce *compactedError
	return errors.As(err, &ce) && sub.after+1 >= ce.rev
}

// rememberChange keeps what a change says about its key's current value,
// so updates based on it skip a read.
func (s *Store) rememberChange(ev *clientv3.Event, c *change) {
	key := string(ev.Kv.Key)
	if ev.Type == mvccpb.DELETE {
		s.recent.Remove(key)
		return
	}
	// The change's object is shared and never modified, like every stored obj.
	s.recent.Add(key, &stored{obj: c.obj, data: ev.Kv.Value, modRev: c.rev})
}
