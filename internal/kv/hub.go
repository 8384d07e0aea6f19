package kv

import (
	"sort"
	"strings"
	"sync"
)

// ringSize is how many of the latest changes the hub remembers, so that a
// wait from a revision it has already passed is answered from memory.
const ringSize = 4096

// change is one changed key, as the hub remembers it.
type change struct {
	key string
	rev int64
}

// waiter is one WaitIndex call served by the hub.
type waiter struct {
	key    string
	prefix bool
	after  int64
	// done receives, once, the revision of the change, or 0 when the hub
	// lost track of changes and the waiter must read the revision itself.
	done chan int64
}

func (w *waiter) matches(key string) bool {
	if w.prefix {
		return strings.HasPrefix(key, w.key)
	}
	return key == w.key
}

// hub serves WaitIndex from the one etcd watch Store.Run keeps: it wakes
// the waiters of each change, found by key in a map (prefix waiters by a
// scan), and remembers the latest changes in a ring.
type hub struct {
	mu sync.Mutex // guards every field below
	// running says Run follows etcd; when it does not, waits go direct.
	running bool
	// covered is the revision after which every change is in the ring.
	covered int64
	// seen is the revision up to which every change has been published.
	seen     int64
	ring     ring
	keys     map[string]map[*waiter]struct{}
	prefixes map[*waiter]struct{}
}

func newHub() *hub {
	return &hub{keys: map[string]map[*waiter]struct{}{}, prefixes: map[*waiter]struct{}{}}
}

// add registers a wait for a change of key (or under it) after after. It
// returns nil when the hub cannot serve the wait: it is not running, or its
// ring does not reach back to after. A change the ring already holds
// completes the waiter at once.
func (h *hub) add(key string, prefix bool, after int64) *waiter {
	h.mu.Lock()
	defer h.mu.Unlock()
	if !h.running || after < h.covered {
		return nil
	}
	w := &waiter{key: key, prefix: prefix, after: after, done: make(chan int64, 1)}
	if rev := h.ring.firstAfter(after, w.matches); rev > 0 {
		w.done <- rev
		return w
	}
	if prefix {
		h.prefixes[w] = struct{}{}
	} else {
		ws := h.keys[key]
		if ws == nil {
			ws = map[*waiter]struct{}{}
			h.keys[key] = ws
		}
		ws[w] = struct{}{}
	}
	return w
}

// remove unregisters w. If w was woken meanwhile it returns the revision it
// was woken with.
func (h *hub) remove(w *waiter) int64 {
	h.mu.Lock()
	h.unregister(w)
	h.mu.Unlock()
	select {
	case rev := <-w.done:
		return rev
	default:
		return 0
	}
}

// unregister forgets w; h.mu must be held.
func (h *hub) unregister(w *waiter) {
	if w.prefix {
		delete(h.prefixes, w)
		return
	}
	if ws := h.keys[w.key]; ws != nil {
		delete(ws, w)
		if len(ws) == 0 {
			delete(h.keys, w.key)
		}
	}
}

// publish records changes, wakes their waiters, and notes that everything
// up to seen has been published.
func (h *hub) publish(changes []change, seen int64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, c := range changes {
		if old, evicted := h.ring.push(c); evicted {
			h.covered = old.rev
		}
		// A waiter from a revision still ahead of the change waits on.
		for w := range h.keys[c.key] {
			if c.rev > w.after {
				w.done <- c.rev
				h.unregister(w)
			}
		}
		for w := range h.prefixes {
			if c.rev > w.after && w.matches(c.key) {
				w.done <- c.rev
				delete(h.prefixes, w)
			}
		}
	}
	h.seen = max(h.seen, seen)
}

// start begins serving waits after rev, with an empty ring.
func (h *hub) start(rev int64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.running, h.covered, h.seen = true, rev, rev
	h.ring = ring{}
}

// resumeFrom is the revision to follow etcd after, if the hub is running.
func (h *hub) resumeFrom() (int64, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.seen, h.running
}

// lose stops serving waits and wakes every waiter with 0: changes may have
// been missed, so each must read the current revision.
func (h *hub) lose() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.running = false
	h.ring = ring{}
	for _, ws := range h.keys {
		for w := range ws {
			w.done <- 0
		}
	}
	for w := range h.prefixes {
		w.done <- 0
	}
	clear(h.keys)
	clear(h.prefixes)
}

// stop is lose, when Run ends.
func (h *hub) stop() { h.lose() }

// waiters counts the registered waiters, for tests.
func (h *hub) waiters() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	n := len(h.prefixes)
	for _, ws := range h.keys {
		n += len(ws)
	}
	return n
}

// ring holds the latest ringSize changes, oldest first, in revision order.
type ring struct {
	buf     []change
	head, n int
}

func (r *ring) at(i int) change { return r.buf[(r.head+i)%len(r.buf)] }

// push appends c and returns the change it evicted, if it was full.
func (r *ring) push(c change) (change, bool) {
	if r.buf == nil {
		r.buf = make([]change, ringSize)
	}
	if r.n < len(r.buf) {
		r.buf[(r.head+r.n)%len(r.buf)] = c
		r.n++
		return change{}, false
	}
	old := r.buf[r.head]
	r.buf[r.head] = c
	r.head = (r.head + 1) % len(r.buf)
	return old, true
}

// firstAfter returns the revision of the first change after rev whose key
// matches, or 0.
func (r *ring) firstAfter(rev int64, match func(string) bool) int64 {
	i := sort.Search(r.n, func(i int) bool { return r.at(i).rev > rev })
	for ; i < r.n; i++ {
		if c := r.at(i); match(c.key) {
			return c.rev
		}
	}
	return 0
}
