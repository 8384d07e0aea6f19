// Package replica keeps the membership of the sluice server replicas that
// share one etcd: each replica registers itself under a lease while it runs,
// so any replica can find the others (for views that span replicas, such as
// the connected xDS proxies) and a replica that dies drops out within the
// lease's TTL.
package replica

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"time"

	"github.com/google/uuid"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// prefix is where replicas register.
const prefix = "/sluice/replicas/"

// TTL is how long a dead replica stays registered.
const TTL = 10 * time.Second

// Info describes a replica.
type Info struct {
	ID string `json:"id"`
	// API is the base URL of the replica's REST API.
	API       string    `json:"api"`
	StartedAt time.Time `json:"startedAt"`
}

// Membership registers this replica and lists the others.
type Membership struct {
	client *clientv3.Client
	self   Info
	log    *slog.Logger
}

// New returns the membership of a replica serving its API at apiURL.
func New(client *clientv3.Client, apiURL string, log *slog.Logger) *Membership {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Membership{
		client: client,
		self:   Info{ID: uuid.NewString(), API: apiURL, StartedAt: time.Now().UTC()},
		log:    log,
	}
}

// Self describes this replica.
func (m *Membership) Self() Info { return m.self }

// Run keeps this replica registered until ctx ends, then deregisters it. If
// etcd loses the lease (a long partition), it registers again.
func (m *Membership) Run(ctx context.Context) {
	for ctx.Err() == nil {
		if err := m.register(ctx); err != nil && ctx.Err() == nil {
			m.log.Warn("replica registration lost; registering again", "err", err)
			select {
			case <-ctx.Done():
			case <-time.After(time.Second):
			}
		}
	}
}

func (m *Membership) register(ctx context.Context) error {
	lease, err := m.client.Grant(ctx, int64(TTL/time.Second))
	if err != nil {
		return err
	}
	defer func() {
		// Leave at once rather than after the TTL.
		rctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		m.client.Revoke(rctx, lease.ID)
	}()
	data, err := json.Marshal(m.self)
	if err != nil {
		return err
	}
	if _, err := m.client.Put(ctx, prefix+m.self.ID, string(data), clientv3.WithLease(lease.ID)); err != nil {
		return err
	}
	alive, err := m.client.KeepAlive(ctx, lease.ID)
	if err != nil {
		return err
	}
	for range alive {
	}
	if ctx.Err() != nil {
		return nil
	}
	return fmt.Errorf("replica: lease %x expired", lease.ID)
}

// Peers returns the other registered replicas.
func (m *Membership) Peers(ctx context.Context) ([]Info, error) {
	resp, err := m.client.Get(ctx, prefix, clientv3.WithPrefix())
	if err != nil {
		return nil, fmt.Errorf("replica: list: %w", err)
	}
	var peers []Info
	for _, kv := range resp.Kvs {
		var info Info
		if err := json.Unmarshal(kv.Value, &info); err != nil {
			m.log.Warn("ignoring a malformed replica registration", "key", string(kv.Key), "err", err)
			continue
		}
		if info.ID != m.self.ID {
			peers = append(peers, info)
		}
	}
	return peers, nil
}
