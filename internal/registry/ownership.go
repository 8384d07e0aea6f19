package registry

import (
	"context"
	"errors"
	"hash/fnv"
	"log/slog"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"
)

// Keys of the registry's coordination state in etcd.
const (
	membersPrefix = "/sluice/registry/members/" // <replica id>, under the replica's session lease
	claimsPrefix  = "/sluice/registry/owners/"  // <namespace>/<name> = owner replica id, under its lease
)

// ownership decides which replica runs the checks of an Endpoint. Each
// replica holds an etcd session (a lease it keeps alive) and registers
// under it; an Endpoint's checks belong to the replica that holds its claim
// key, which is bound to that replica's lease. A claim is exclusive (an etcd
// create-if-absent), so a check runs on exactly one replica; when a replica
// dies its lease expires, its claims vanish with it, and the others claim
// them. Replicas claim the Endpoints for which they rank first by
// rendezvous hashing over the live members, so checks spread evenly and
// move as little as possible when members come and go.
type ownership struct {
	client *clientv3.Client
	id     string
	ttl    time.Duration
	log    *slog.Logger

	members *mirror
	claims  *mirror

	mu    sync.Mutex
	lease clientv3.LeaseID // of the current session; 0 when there is none
	// unclaimed is when each unclaimed key was first seen unclaimed by a
	// replica that does not rank first: past the grace, it claims anyway,
	// so a member that is alive but not claiming cannot strand a check.
	unclaimed map[string]time.Time
}

func newOwnership(client *clientv3.Client, id string, ttl time.Duration, onMembers func(), onClaim func(key string), log *slog.Logger) *ownership {
	o := &ownership{client: client, id: id, ttl: ttl, log: log, unclaimed: map[string]time.Time{}}
	o.members = newMirror(client, membersPrefix, func(string) { onMembers() }, log)
	o.claims = newMirror(client, claimsPrefix, onClaim, log)
	return o
}

// run keeps a session and the mirrors until ctx ends; onSession is told
// when a session ends (every claim held under it is gone).
func (o *ownership) run(ctx context.Context, onSessionLost func()) {
	var wg sync.WaitGroup
	wg.Go(func() { o.members.run(ctx) })
	wg.Go(func() { o.claims.run(ctx) })
	defer wg.Wait()
	for ctx.Err() == nil {
		err := o.session(ctx)
		o.mu.Lock()
		o.lease = 0
		o.mu.Unlock()
		onSessionLost()
		if ctx.Err() != nil {
			return
		}
		o.log.Warn("registry session lost; starting a new one", "err", err)
		select {
		case <-ctx.Done():
		case <-time.After(time.Second):
		}
	}
}

func (o *ownership) session(ctx context.Context) error {
	s, err := concurrency.NewSession(o.client, concurrency.WithTTL(int(o.ttl/time.Second)), concurrency.WithContext(ctx))
	if err != nil {
		return err
	}
	defer func() {
		// Revoking at once hands this replica's checks over now, not after the TTL.
		rctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		s.Client().Revoke(rctx, s.Lease())
	}()
	// The lease first: the member key's event makes every replica
	// reconcile, and this one can claim only with a lease.
	o.mu.Lock()
	o.lease = s.Lease()
	o.mu.Unlock()
	if _, err := o.client.Put(ctx, membersPrefix+o.id, o.id, clientv3.WithLease(s.Lease())); err != nil {
		return err
	}
	select {
	case <-s.Done():
		return errors.New("the session's lease expired")
	case <-ctx.Done():
		return nil
	}
}

// owner returns the replica holding key's claim, if any.
func (o *ownership) owner(key string) (string, bool) {
	kv, ok := o.claims.get(key)
	if !ok {
		return "", false
	}
	return string(kv.Value), true
}

// ranksFirst reports whether this replica ranks first for key among the live
// members (rendezvous hashing).
func (o *ownership) ranksFirst(key string) bool {
	best, bestScore := "", uint64(0)
	for _, m := range o.members.keys() {
		if s := score(m, key); best == "" || s > bestScore || (s == bestScore && m > best) {
			best, bestScore = m, s
		}
	}
	return best == o.id
}

func score(member, key string) uint64 {
	h := fnv.New64a()
	h.Write([]byte(member))
	h.Write([]byte{0})
	h.Write([]byte(key))
	// FNV alone barely mixes inputs that differ in one early byte (member
	// ids that share a prefix), so that one member would outrank the others
	// for most keys; a splitmix64 finalizer spreads it.
	x := h.Sum64()
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return x
}

// shouldClaim reports whether this replica should try to claim the
// unclaimed key now.
func (o *ownership) shouldClaim(key string, now time.Time) bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.lease == 0 {
		return false
	}
	if o.ranksFirst(key) {
		delete(o.unclaimed, key)
		return true
	}
	first, ok := o.unclaimed[key]
	if !ok {
		o.unclaimed[key] = now
		return false
	}
	return now.Sub(first) >= o.ttl
}

// shouldHandOver reports whether this replica, which holds key, should
// release it because another live member ranks first for it (a replica
// that joined). A replica that is not registered itself hands nothing over.
func (o *ownership) shouldHandOver(key string) bool {
	if _, ok := o.members.get(o.id); !ok {
		return false
	}
	return !o.ranksFirst(key)
}

// settled forgets the grace timer of a key that is claimed or gone.
func (o *ownership) settled(key string) {
	o.mu.Lock()
	delete(o.unclaimed, key)
	o.mu.Unlock()
}

// claim tries to take key; it reports whether this replica holds it now.
func (o *ownership) claim(ctx context.Context, key string) (bool, error) {
	o.mu.Lock()
	lease := o.lease
	o.mu.Unlock()
	if lease == 0 {
		return false, nil
	}
	k := claimsPrefix + key
	resp, err := o.client.Txn(ctx).
		If(clientv3.Compare(clientv3.CreateRevision(k), "=", 0)).
		Then(clientv3.OpPut(k, o.id, clientv3.WithLease(lease))).
		Else(clientv3.OpGet(k)).
		Commit()
	if err != nil {
		return false, err
	}
	if resp.Succeeded {
		o.settled(key)
		return true, nil
	}
	kvs := resp.Responses[0].GetResponseRange().Kvs
	return len(kvs) == 1 && string(kvs[0].Value) == o.id, nil
}

// release gives key up if this replica holds it.
func (o *ownership) release(ctx context.Context, key string) error {
	k := claimsPrefix + key
	_, err := o.client.Txn(ctx).
		If(clientv3.Compare(clientv3.Value(k), "=", o.id)).
		Then(clientv3.OpDelete(k)).
		Commit()
	return err
}
