package kv

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/sluice/sluice/internal/resource"
)

// EventType says what an Event is.
type EventType string

// Event types.
const (
	Put    EventType = "PUT"
	Delete EventType = "DELETE"
	Error  EventType = "ERROR"
)

// Event is one change seen by Watch. A DELETE carries the Key and, as
// ModifyIndex, the revision of the delete; an ERROR carries Err and ends the
// watch.
type Event struct {
	Type  EventType
	Entry Entry
	Err   error
}

// watchBuffer is how many events a watcher may have queued before it waits.
const watchBuffer = 64

// watchTarget checks what a watch or wait follows and returns its etcd key.
func watchTarget(key string, prefix bool) (string, error) {
	if prefix {
		return valueKey(key), ValidatePrefix(key)
	}
	return valueKey(key), ValidateKey(key)
}

// Watch follows a key, or with prefix every key that begins with it. With
// afterIndex 0 it first sends the current entries as PUT events, then the
// changes; with afterIndex > 0 the changes after that revision. A revision
// etcd has compacted away gets one ERROR event wrapping resource.ErrExpired:
// read again and watch from the revision of the read. The channel closes
// when ctx ends or after an ERROR event.
func (s *Store) Watch(ctx context.Context, key string, prefix bool, afterIndex int64) (<-chan Event, error) {
	etcdKey, err := watchTarget(key, prefix)
	if err != nil {
		return nil, err
	}
	if afterIndex < 0 {
		return nil, fmt.Errorf("%w: index %d is negative", resource.ErrBadRequest, afterIndex)
	}
	var initial []Entry
	rev := afterIndex
	if rev == 0 {
		if initial, rev, err = s.snapshot(ctx, key, prefix); err != nil {
			return nil, err
		}
	} else if err := s.checkHistory(ctx, rev); err != nil {
		if !errors.Is(err, resource.ErrExpired) {
			return nil, err
		}
		out := make(chan Event, 1)
		out <- Event{Type: Error, Err: err}
		close(out)
		return out, nil
	}
	out := make(chan Event, watchBuffer)
	go func() {
		defer close(out)
		send := func(ev Event) bool {
			select {
			case out <- ev:
				return true
			case <-ctx.Done():
				return false
			}
		}
		for _, e := range initial {
			if !send(Event{Type: Put, Entry: e}) {
				return
			}
		}
		wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
		defer cancel()
		for resp := range s.client.Watch(wctx, etcdKey, watchOptions(prefix, rev)...) {
			if err := watchError(resp); err != nil {
				send(Event{Type: Error, Err: err})
				return
			}
			for _, ev := range resp.Events {
				if !send(eventOf(ev)) {
					return
				}
			}
		}
		if ctx.Err() == nil {
			send(Event{Type: Error, Err: fmt.Errorf("%w: the etcd watch ended", resource.ErrUnavailable)})
		}
	}()
	return out, nil
}

// snapshot reads what a watch from now starts with: the entries under
// prefix, or the key's entry if it has one.
func (s *Store) snapshot(ctx context.Context, key string, prefix bool) ([]Entry, int64, error) {
	if prefix {
		return s.List(ctx, key)
	}
	e, rev, err := s.Get(ctx, key)
	switch {
	case errors.Is(err, resource.ErrNotFound):
		return nil, rev, nil
	case err != nil:
		return nil, 0, err
	}
	return []Entry{e}, rev, nil
}

func watchOptions(prefix bool, after int64) []clientv3.OpOption {
	opts := []clientv3.OpOption{clientv3.WithRev(after + 1)}
	if prefix {
		opts = append(opts, clientv3.WithPrefix())
	}
	return opts
}

func eventOf(ev *clientv3.Event) Event {
	if ev.Type == mvccpb.DELETE {
		return Event{Type: Delete, Entry: Entry{
			Key:         string(ev.Kv.Key[len(ValuePrefix):]),
			ModifyIndex: ev.Kv.ModRevision,
		}}
	}
	return Event{Type: Put, Entry: entryOf(ev.Kv)}
}

// expired is the error of a watch or wait after a compacted revision.
func expired(rev int64) error {
	return fmt.Errorf("%w: index %d has been compacted; read again and watch from the index of the read", resource.ErrExpired, rev)
}

// checkHistory fails with ErrExpired when etcd no longer holds the changes
// after rev, so that a watch from it fails at once rather than in its stream.
func (s *Store) checkHistory(ctx context.Context, rev int64) error {
	_, err := s.client.Get(ctx, ValuePrefix, clientv3.WithRev(rev+1), clientv3.WithCountOnly(), clientv3.WithSerializable())
	switch {
	case err == nil, errors.Is(err, rpctypes.ErrFutureRev):
		return nil
	case errors.Is(err, rpctypes.ErrCompacted):
		return expired(rev)
	}
	return etcdError("watch", err)
}

// watchError is the error an etcd watch response ends a watch with, if any.
func watchError(resp clientv3.WatchResponse) error {
	if resp.CompactRevision != 0 {
		return expired(resp.CompactRevision - 1)
	}
	if err := resp.Err(); err != nil {
		return etcdError("watch", err)
	}
	return nil
}

// WaitIndex blocks until the key (or with prefix any key under it) changes
// after afterIndex, and returns the etcd revision of that change. When the
// revisions after afterIndex have been compacted away (whether the key
// changed cannot be known, so the caller must read again) it returns the
// current revision. When ctx ends first it returns ctx's error.
func (s *Store) WaitIndex(ctx context.Context, key string, prefix bool, afterIndex int64) (int64, error) {
	etcdKey, err := watchTarget(key, prefix)
	if err != nil {
		return 0, err
	}
	if afterIndex < 0 {
		return 0, fmt.Errorf("%w: index %d is negative", resource.ErrBadRequest, afterIndex)
	}
	w := s.hub.add(key, prefix, afterIndex)
	if w == nil {
		return s.waitDirect(ctx, etcdKey, prefix, afterIndex)
	}
	select {
	case rev := <-w.done:
		if rev == 0 {
			// The hub lost track (it stopped or fell behind etcd's history).
			return s.revision(ctx)
		}
		return rev, nil
	case <-ctx.Done():
		if rev := s.hub.remove(w); rev > 0 {
			return rev, nil
		}
		return 0, ctx.Err()
	}
}

// waitDirect is WaitIndex over an etcd watch of its own.
func (s *Store) waitDirect(ctx context.Context, etcdKey string, prefix bool, afterIndex int64) (int64, error) {
	wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
	defer cancel()
	for resp := range s.client.Watch(wctx, etcdKey, watchOptions(prefix, afterIndex)...) {
		if resp.CompactRevision != 0 {
			break
		}
		if err := resp.Err(); err != nil {
			if ctx.Err() != nil {
				break
			}
			return 0, etcdError("wait", err)
		}
		if len(resp.Events) > 0 {
			return resp.Events[0].Kv.ModRevision, nil
		}
	}
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	return s.revision(ctx)
}

// revision reads etcd's current revision; it answers even when ctx has
// just ended, which is when a wait needs it.
func (s *Store) revision(ctx context.Context) (int64, error) {
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
	defer cancel()
	resp, err := s.client.Get(rctx, ValuePrefix, clientv3.WithCountOnly(), clientv3.WithSerializable())
	if err != nil {
		return 0, etcdError("revision", err)
	}
	return resp.Header.Revision, nil
}

// Run serves WaitIndex from one etcd watch of every key until ctx ends;
// without it, each wait opens an etcd watch of its own.
func (s *Store) Run(ctx context.Context) {
	delay := minRetryDelay
	for ctx.Err() == nil {
		from, ok := s.hub.resumeFrom()
		if !ok {
			rev, err := s.revision(ctx)
			if err != nil {
				s.log.Warn("kv wait hub: reading the revision failed", "err", err)
				if !sleep(ctx, delay) {
					break
				}
				delay = min(2*delay, maxRetryDelay)
				continue
			}
			s.hub.start(rev)
			from = rev
		}
		if s.follow(ctx, from) {
			delay = minRetryDelay
		} else if !sleep(ctx, delay) {
			break
		} else {
			delay = min(2*delay, maxRetryDelay)
		}
	}
	s.hub.stop()
}

// Retry delays of the hub's etcd watch.
const (
	minRetryDelay = 100 * time.Millisecond
	maxRetryDelay = 5 * time.Second
)

func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// follow feeds the hub from an etcd watch of every key after rev until the
// watch breaks, and says whether it delivered anything.
func (s *Store) follow(ctx context.Context, rev int64) bool {
	wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
	defer cancel()
	delivered := false
	for resp := range s.client.Watch(wctx, ValuePrefix, clientv3.WithPrefix(), clientv3.WithRev(rev+1), clientv3.WithProgressNotify()) {
		if resp.CompactRevision != 0 {
			// Changes were missed: every waiter must read again.
			s.log.Warn("kv wait hub: fell behind etcd's compaction; waking every waiter", "compacted", resp.CompactRevision)
			s.hub.lose()
			return true
		}
		if err := resp.Err(); err != nil {
			if ctx.Err() == nil {
				s.log.Warn("kv wait hub: etcd watch failed", "err", err)
			}
			return delivered
		}
		delivered = true
		if resp.IsProgressNotify() {
			s.hub.publish(nil, resp.Header.Revision)
			continue
		}
		// A response's header revision may run ahead of its events while
		// the watch catches up: only the events say what has been seen.
		changes := make([]change, len(resp.Events))
		for i, ev := range resp.Events {
			changes[i] = change{key: string(ev.Kv.Key[len(ValuePrefix):]), rev: ev.Kv.ModRevision}
		}
		if len(changes) > 0 {
			s.hub.publish(changes, changes[len(changes)-1].rev)
		}
	}
	return delivered
}
