package registry

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/sluice/sluice/internal/informer"
	"github.com/sluice/sluice/internal/probe"
	"github.com/sluice/sluice/internal/resource"
	"github.com/sluice/sluice/internal/store"
)

// Options configure a Registry.
type Options struct {
	// ReplicaID names this server replica among those sharing the etcd.
	ReplicaID string
	// SessionTTL bounds how long the checks of a replica that dies stay
	// unowned before another replica takes them (whole seconds, default 5s).
	SessionTTL time.Duration
	// Resync is how often every Endpoint is reconciled even without a
	// change (default 10s).
	Resync time.Duration
	// OutputRefresh is how often a check whose state has not changed may
	// rewrite its output in the Endpoint's status (default 30s): outputs
	// change on every check, state changes are written at once.
	OutputRefresh time.Duration
	// Logger receives the registry's logs (nil: none).
	Logger *slog.Logger
	// Registerer receives the registry's metrics (nil: none).
	Registerer prometheus.Registerer
}

// Registry keeps the health of Endpoints: it takes TTL heartbeats, runs
// active health checks on the Endpoints this replica owns, and writes what
// they find to the Endpoints' status.
type Registry struct {
	store   *store.Store
	client  *clientv3.Client
	id      string
	opts    Options
	log     *slog.Logger
	metrics *metrics

	endpoints *informer.Informer
	ctrl      *informer.Controller
	own       *ownership
	markers   *mirror

	leasesMu sync.Mutex
	leases   map[string]leaseEntry // namespace/name → the marker's lease, as last seen here

	checksMu sync.Mutex
	checks   map[string]*checker // namespace/name → the active check this replica runs
}

// New returns a registry over the store's Endpoints. It starts nothing.
func New(st *store.Store, opts Options) *Registry {
	if opts.SessionTTL < time.Second {
		opts.SessionTTL = 5 * time.Second
	}
	if opts.Resync <= 0 {
		opts.Resync = 10 * time.Second
	}
	if opts.OutputRefresh <= 0 {
		opts.OutputRefresh = 30 * time.Second
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	r := &Registry{
		store: st, client: st.Client(), id: opts.ReplicaID, opts: opts, log: opts.Logger,
		metrics: newMetrics(opts.Registerer),
		leases:  map[string]leaseEntry{}, checks: map[string]*checker{},
	}
	r.endpoints = informer.New(informer.NewStoreSource(st, resource.EndpointKind, informer.Scope{}), informer.Options{Logger: r.log})
	// Each reconcile waits on etcd round trips (a claim, a status write):
	// enough workers keep etcd busy when registrations come in bursts.
	r.ctrl = informer.NewController(r.endpoints, r.reconcile, informer.ControllerOptions{Workers: 16, Logger: r.log})
	r.own = newOwnership(r.client, r.id, opts.SessionTTL, r.enqueueAll, r.ctrl.Enqueue, r.log)
	r.markers = newMirror(r.client, markersPrefix, r.ctrl.Enqueue, r.log)
	return r
}

// Run takes ownership of checks and keeps Endpoint health until ctx ends.
func (r *Registry) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	wg.Go(func() { r.endpoints.Run(ctx) })
	wg.Go(func() { r.markers.run(ctx) })
	wg.Go(func() { r.own.run(ctx, r.stopAllChecks) })
	wg.Go(func() {
		t := time.NewTicker(r.opts.Resync)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				r.enqueueAll()
			}
		}
	})
	// Reconciling before the markers and claims are known would take a
	// live Endpoint for an expired one.
	select {
	case <-r.markers.synced:
	case <-ctx.Done():
	}
	select {
	case <-r.own.claims.synced:
	case <-ctx.Done():
	}
	err := r.ctrl.Run(ctx)
	// Checks stop first: the session's hand-over may wait on etcd.
	r.stopAllChecks()
	wg.Wait()
	return err
}

func (r *Registry) enqueueAll() {
	for _, obj := range r.endpoints.List("") {
		r.ctrl.Enqueue(obj.GetNamespace() + "/" + obj.GetName())
	}
}

// reconcile makes the status of one Endpoint match its checks, on the
// replica that owns them.
func (r *Registry) reconcile(ctx context.Context, key string) error {
	obj, ok := r.endpoints.Get(key)
	if !ok {
		return r.gone(ctx, key)
	}
	ep := obj.(*resource.Endpoint)
	if ep.Spec.TTL == nil && ep.Spec.HealthCheck == nil {
		r.stopChecker(key)
		if owner, ok := r.own.owner(key); ok && owner == r.id {
			if err := r.own.release(ctx, key); err != nil {
				return err
			}
		}
		// Checks were removed from the spec: the Endpoint is healthy again.
		// (A status without checks is someone else's to write: an external
		// health checker may set it through the API.) One replica writes it;
		// any would do, the write is idempotent.
		if len(ep.Status.Checks) > 0 && r.own.ranksFirst(key) {
			return r.writeStatus(ctx, ep, resource.EndpointStatus{Health: resource.HealthHealthy})
		}
		return nil
	}
	owner, claimed := r.own.owner(key)
	switch {
	case !claimed:
		if !r.own.shouldClaim(key, time.Now()) {
			r.stopChecker(key)
			return nil
		}
		held, err := r.own.claim(ctx, key)
		if err != nil || !held {
			r.stopChecker(key)
			return err
		}
		r.log.Debug("claimed the checks of an endpoint", "endpoint", key)
	case owner != r.id:
		r.own.settled(key)
		r.stopChecker(key)
		return nil
	case r.own.shouldHandOver(key):
		r.stopChecker(key)
		r.log.Debug("handing the checks of an endpoint to the replica that ranks first", "endpoint", key)
		return r.own.release(ctx, key)
	}
	r.metrics.reconciles.Inc()
	if hc := ep.Spec.HealthCheck; hc != nil {
		r.ensureChecker(key, ep)
	} else {
		r.stopChecker(key)
	}
	status, expired := r.desiredStatus(ctx, key, ep)
	if expired && ep.Spec.OnTTLExpiry == resource.TTLExpiryRemove {
		r.log.Info("removing an endpoint whose heartbeats stopped", "endpoint", key, "ttl", ep.Spec.TTL.Duration)
		_, err := r.store.Delete(ctx, resource.EndpointKind, ep.Namespace, ep.Name, store.Preconditions{UID: ep.UID}, store.WriteOptions{})
		if errors.Is(err, resource.ErrNotFound) || errors.Is(err, resource.ErrConflict) {
			return nil
		}
		return err
	}
	if !statusChanged(ep.Status, status) {
		return nil
	}
	if onlyOutputChanged(ep.Status, status) && ep.Status.LastCheckTime != nil &&
		time.Since(ep.Status.LastCheckTime.Time) < r.opts.OutputRefresh {
		return nil // the resync writes it once the refresh interval has passed
	}
	return r.writeStatus(ctx, ep, status)
}

// gone cleans up after a deleted Endpoint: its check stops, its claim is
// released and its heartbeat lease revoked.
func (r *Registry) gone(ctx context.Context, key string) error {
	r.stopChecker(key)
	r.forgetLease(key, 0)
	owner, ok := r.own.owner(key)
	if !ok || owner != r.id {
		r.own.settled(key)
		return nil
	}
	if kv, ok := r.markers.get(key); ok && kv.Lease != 0 {
		if _, err := r.client.Revoke(ctx, clientv3.LeaseID(kv.Lease)); err != nil && !errors.Is(err, rpctypes.ErrLeaseNotFound) {
			return err
		}
	}
	return r.own.release(ctx, key)
}

// desiredStatus computes an Endpoint's status from its heartbeat marker and
// its active check. expired says the heartbeats of a TTL Endpoint that had
// been alive have stopped.
func (r *Registry) desiredStatus(ctx context.Context, key string, ep *resource.Endpoint) (resource.EndpointStatus, bool) {
	prev := map[string]resource.CheckStatus{}
	for _, c := range ep.Status.Checks {
		prev[c.Name] = c
	}
	var checks []resource.CheckStatus
	expired := false
	if ep.Spec.TTL != nil {
		c := resource.CheckStatus{Name: resource.CheckTTL}
		m, alive := r.marker(ctx, key, ep)
		switch {
		case alive:
			c.State, c.Output = m.State, m.Output
		case prev[resource.CheckTTL].State != "":
			c.State = resource.CheckCritical
			c.Output = fmt.Sprintf("TTL expired: no heartbeat within %s", ep.Spec.TTL.Duration)
			expired = true
		default:
			c.Output = "waiting for the first heartbeat"
		}
		checks = append(checks, c)
	}
	if ep.Spec.HealthCheck != nil {
		c := resource.CheckStatus{Name: resource.CheckActive}
		if res, ok := r.result(key, ep); ok {
			c.State, c.Output = res.State, res.Output
		} else if p, ok := prev[resource.CheckActive]; ok {
			// A replica taking over keeps the last result until its own.
			c.State, c.Output = p.State, p.Output
		} else {
			c.Output = "waiting for the first check"
		}
		checks = append(checks, c)
	}
	now := metav1.NewTime(time.Now().UTC().Truncate(time.Second))
	st := resource.EndpointStatus{Health: resource.HealthHealthy, Checks: checks, LastCheckTime: &now}
	for i := range st.Checks {
		c := &st.Checks[i]
		if p, ok := prev[c.Name]; ok && p.State == c.State && p.LastTransitionTime != nil {
			c.LastTransitionTime = p.LastTransitionTime
		} else if c.State != "" {
			c.LastTransitionTime = &now
		}
		switch {
		case c.State == resource.CheckCritical:
			st.Health = resource.HealthUnhealthy
			st.Message = c.Name + " check: " + c.Output
		case c.State == "" && st.Health != resource.HealthUnhealthy:
			st.Health = resource.HealthUnknown
			st.Message = c.Name + " check: " + c.Output
		}
	}
	if st.Message == "" && len(st.Checks) > 0 {
		st.Message = st.Checks[0].Name + " check: " + st.Checks[0].Output
	}
	st.Message = probe.Clip(st.Message, 256)
	if st.Health == ep.Status.Health {
		st.LastTransitionTime = ep.Status.LastTransitionTime
	} else {
		st.LastTransitionTime = &now
	}
	return st, expired
}

// marker returns the heartbeat marker of a TTL Endpoint and whether it is
// alive. A marker left by an earlier Endpoint of the same name is revoked.
func (r *Registry) marker(ctx context.Context, key string, ep *resource.Endpoint) (marker, bool) {
	kv, ok := r.markers.get(key)
	if !ok {
		return marker{}, false
	}
	var m marker
	if err := json.Unmarshal(kv.Value, &m); err != nil || m.UID != ep.UID {
		if kv.Lease != 0 {
			r.client.Revoke(ctx, clientv3.LeaseID(kv.Lease))
		}
		return marker{}, false
	}
	return m, true
}

func (r *Registry) writeStatus(ctx context.Context, ep *resource.Endpoint, st resource.EndpointStatus) error {
	next := ep.DeepCopy()
	next.Status = st
	_, err := r.store.UpdateStatus(ctx, next, store.WriteOptions{})
	switch {
	case err == nil:
		r.metrics.statusWrites.Inc()
		if ep.Status.Health != st.Health {
			r.log.Info("endpoint health changed", "endpoint", ep.Namespace+"/"+ep.Name, "from", ep.Status.Health, "to", st.Health, "message", st.Message)
		}
		return nil
	case errors.Is(err, resource.ErrNotFound):
		return nil
	}
	// A conflict means the Endpoint changed meanwhile: its change is queued.
	return err
}

// statusChanged compares what the registry decides, not when it decided it.
func statusChanged(a, b resource.EndpointStatus) bool {
	if a.Health != b.Health || a.Message != b.Message || len(a.Checks) != len(b.Checks) {
		return true
	}
	for i := range a.Checks {
		if a.Checks[i].Name != b.Checks[i].Name || a.Checks[i].State != b.Checks[i].State || a.Checks[i].Output != b.Checks[i].Output {
			return true
		}
	}
	return false
}

// onlyOutputChanged reports whether a and b differ only in check outputs
// (and the message that repeats them).
func onlyOutputChanged(a, b resource.EndpointStatus) bool {
	if a.Health != b.Health || len(a.Checks) != len(b.Checks) {
		return false
	}
	for i := range a.Checks {
		if a.Checks[i].Name != b.Checks[i].Name || a.Checks[i].State != b.Checks[i].State {
			return false
		}
	}
	return true
}
