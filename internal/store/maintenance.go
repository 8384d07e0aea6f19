package store

import (
	"context"
	"errors"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// compactKey is written once per compaction interval; the replica whose
// transaction on it succeeds compacts, so several servers over one etcd do
// not all compact (the scheme Kubernetes' API server uses).
const compactKey = "/sluice/compact_rev_key"

// MaintenanceOptions configure periodic compaction and defragmentation.
type MaintenanceOptions struct {
	// CompactInterval is how often history older than one interval is
	// compacted away (0: never). Watches older than that get 410 Gone.
	CompactInterval time.Duration
	// DefragInterval is how often the database is checked for free space to
	// reclaim (0: never). Only for an etcd this process owns: defragmenting
	// blocks the member.
	DefragInterval time.Duration
	// DefragThreshold is how many free bytes make a defragmentation worthwhile.
	DefragThreshold int64
}

// RunMaintenance compacts and defragments until ctx ends.
func (s *Store) RunMaintenance(ctx context.Context, opts MaintenanceOptions) {
	var compactC, defragC <-chan time.Time
	if opts.CompactInterval > 0 {
		t := time.NewTicker(opts.CompactInterval)
		defer t.Stop()
		compactC = t.C
	}
	if opts.DefragInterval > 0 {
		t := time.NewTicker(opts.DefragInterval)
		defer t.Stop()
		defragC = t.C
	}
	var c compactor
	for {
		select {
		case <-ctx.Done():
			return
		case <-compactC:
			if err := c.tick(ctx, s); err != nil && ctx.Err() == nil {
				s.log.Warn("etcd compaction failed", "err", err)
			}
		case <-defragC:
			if _, err := s.DefragmentIfWorthwhile(ctx, opts.DefragThreshold); err != nil && ctx.Err() == nil {
				s.log.Warn("etcd defragmentation failed", "err", err)
			}
		}
	}
}

// compactor remembers, between ticks, the revision to compact to next and
// the version of the compaction key it last saw.
type compactor struct {
	version int64
	rev     int64
}

func (c *compactor) tick(ctx context.Context, s *Store) error {
	resp, err := s.client.Txn(ctx).
		If(clientv3.Compare(clientv3.Version(compactKey), "=", c.version)).
		Then(clientv3.OpPut(compactKey, "")).
		Else(clientv3.OpGet(compactKey)).
		Commit()
	if err != nil {
		return err
	}
	if !resp.Succeeded {
		// Another replica compacted this interval; follow its version.
		c.version = resp.Responses[0].GetResponseRange().Kvs[0].Version
		c.rev = 0
		return nil
	}
	c.version++
	prev := c.rev
	c.rev = resp.Header.Revision
	if prev == 0 {
		return nil
	}
	return s.Compact(ctx, prev)
}

// Compact discards history before rev. Watches that resume before it get 410.
func (s *Store) Compact(ctx context.Context, rev int64) error {
	_, err := s.client.Compact(ctx, rev, clientv3.WithCompactPhysical())
	if errors.Is(err, rpctypes.ErrCompacted) {
		return nil
	}
	if err != nil {
		return err
	}
	s.metrics.compactions.Inc()
	s.log.Info("etcd compacted", "revision", rev)
	return nil
}

// DefragmentIfWorthwhile defragments every endpoint whose database holds at
// least threshold free bytes, and says whether it did.
func (s *Store) DefragmentIfWorthwhile(ctx context.Context, threshold int64) (bool, error) {
	did := false
	for _, ep := range s.client.Endpoints() {
		st, err := s.client.Status(ctx, ep)
		if err != nil {
			return did, err
		}
		s.metrics.dbSize.Set(float64(st.DbSize))
		s.metrics.dbSizeInUse.Set(float64(st.DbSizeInUse))
		if st.DbSize-st.DbSizeInUse < threshold {
			continue
		}
		start := time.Now()
		if _, err := s.client.Defragment(ctx, ep); err != nil {
			return did, err
		}
		did = true
		s.metrics.defrags.Inc()
		s.log.Info("etcd defragmented", "endpoint", ep, "freed_bytes", st.DbSize-st.DbSizeInUse, "took", time.Since(start))
	}
	return did, nil
}
