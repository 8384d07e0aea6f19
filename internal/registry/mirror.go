package registry

import (
	"context"
	"log/slog"
	"strings"
	"sync"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// A mirror keeps an in-memory copy of the etcd keys under a prefix (the
// registry's heartbeat markers, check claims and members) and reports every
// key that changes. It lists, then watches from the list's revision, and
// lists again when the watch breaks, reporting the keys that differ.
type mirror struct {
	client   *clientv3.Client
	prefix   string
	onChange func(key string) // the key without the prefix
	log      *slog.Logger

	mu     sync.RWMutex
	kvs    map[string]*mvccpb.KeyValue
	synced chan struct{} // closed after the first list
}

func newMirror(client *clientv3.Client, prefix string, onChange func(string), log *slog.Logger) *mirror {
	return &mirror{client: client, prefix: prefix, onChange: onChange, log: log,
		kvs: map[string]*mvccpb.KeyValue{}, synced: make(chan struct{})}
}

// get returns the value of key (without the prefix) and whether it exists.
func (m *mirror) get(key string) (*mvccpb.KeyValue, bool) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	kv, ok := m.kvs[key]
	return kv, ok
}

// keys returns every key held, without the prefix.
func (m *mirror) keys() []string {
	m.mu.RLock()
	defer m.mu.RUnlock()
	out := make([]string, 0, len(m.kvs))
	for k := range m.kvs {
		out = append(out, k)
	}
	return out
}

// run mirrors the prefix until ctx ends.
func (m *mirror) run(ctx context.Context) {
	for ctx.Err() == nil {
		rev, err := m.list(ctx)
		if err == nil {
			err = m.watch(ctx, rev)
		}
		if ctx.Err() != nil {
			return
		}
		m.log.Warn("mirror of etcd keys broke; listing again", "prefix", m.prefix, "err", err)
		select {
		case <-ctx.Done():
		case <-time.After(time.Second):
		}
	}
}

// list replaces the copy with what etcd holds and reports the differences.
func (m *mirror) list(ctx context.Context) (int64, error) {
	resp, err := m.client.Get(ctx, m.prefix, clientv3.WithPrefix())
	if err != nil {
		return 0, err
	}
	fresh := make(map[string]*mvccpb.KeyValue, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		fresh[strings.TrimPrefix(string(kv.Key), m.prefix)] = kv
	}
	m.mu.Lock()
	var changed []string
	for k, kv := range fresh {
		if old, ok := m.kvs[k]; !ok || old.ModRevision != kv.ModRevision {
			changed = append(changed, k)
		}
	}
	for k := range m.kvs {
		if _, ok := fresh[k]; !ok {
			changed = append(changed, k)
		}
	}
	m.kvs = fresh
	m.mu.Unlock()
	select {
	case <-m.synced:
	default:
		close(m.synced)
	}
	for _, k := range changed {
		m.onChange(k)
	}
	return resp.Header.Revision, nil
}

func (m *mirror) watch(ctx context.Context, rev int64) error {
	ctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
	defer cancel()
	for resp := range m.client.Watch(ctx, m.prefix, clientv3.WithPrefix(), clientv3.WithRev(rev+1)) {
		if err := resp.Err(); err != nil {
			return err
		}
		for _, ev := range resp.Events {
			k := strings.TrimPrefix(string(ev.Kv.Key), m.prefix)
			m.mu.Lock()
			if ev.Type == clientv3.EventTypeDelete {
				delete(m.kvs, k)
			} else {
				m.kvs[k] = ev.Kv
			}
			m.mu.Unlock()
			m.onChange(k)
		}
	}
	return ctx.Err()
}
