package consul

import (
	"context"
	"sync"
)

// sharedReads lets the blocking queries that one change wakes share one
// read: a thousand waiters woken together cost one store read, not a
// thousand. Reads are keyed by what they read; a read is shared only with
// callers that need no newer state than it has.
type sharedReads[T any] struct {
	mu    sync.Mutex
	calls map[string]*readCall[T] // key → its latest read
}

// readCall is one read, in flight until done closes.
type readCall[T any] struct {
	done  chan struct{}
	val   T
	index int64 // the revision the read reflects
	err   error
}

// read returns what read returns for key, reflecting at least revision
// minRev. With minRev 0 it reads afresh: a plain request must see every
// write acknowledged before it. With minRev > 0 (a blocking query woken by
// the change at minRev, or whose wait passed at that index) it shares the
// latest read of key if that one covers minRev, waiting for it if needed.
func (s *sharedReads[T]) read(ctx context.Context, key string, minRev int64, read func(context.Context) (T, int64, error)) (T, int64, error) {
	for {
		s.mu.Lock()
		if s.calls == nil {
			s.calls = map[string]*readCall[T]{}
		}
		c := s.calls[key]
		if minRev <= 0 || c == nil || c.finished() && (c.err != nil || c.index < minRev) {
			c = &readCall[T]{done: make(chan struct{})}
			s.calls[key] = c
			s.mu.Unlock()
			c.val, c.index, c.err = read(ctx)
			close(c.done)
			return c.val, c.index, c.err
		}
		s.mu.Unlock()
		select {
		case <-c.done:
		case <-ctx.Done():
			var zero T
			return zero, 0, ctx.Err()
		}
		if c.err == nil && c.index >= minRev {
			return c.val, c.index, nil
		}
		// That read was too old or failed: take a newer one, or start it.
	}
}

func (c *readCall[T]) finished() bool {
	select {
	case <-c.done:
		return true
	default:
		return false
	}
}
