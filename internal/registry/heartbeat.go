package registry

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"k8s.io/apimachinery/pkg/types"

	"github.com/sluice/sluice/internal/apiserver"
	"github.com/sluice/sluice/internal/probe"
	"github.com/sluice/sluice/internal/resource"
	"github.com/sluice/sluice/internal/store"
)

// markersPrefix holds one marker per live TTL Endpoint,
// <namespace>/<name>, bound to a lease of the Endpoint's TTL: etcd deletes
// it when heartbeats stop. The marker carries the last heartbeat's state,
// which the Endpoint's owner copies into its status.
const markersPrefix = "/sluice/registry/ttl/"

// marker is the value of a heartbeat marker.
type marker struct {
	UID    types.UID           `json:"uid"`
	State  resource.CheckState `json:"state"`
	Output string              `json:"output,omitempty"`
}

// leaseEntry is what a replica remembers of a marker it kept alive, so that
// a heartbeat with nothing new costs one etcd KeepAliveOnce.
type leaseEntry struct {
	lease  clientv3.LeaseID
	marker marker
}

// Heartbeat records a heartbeat of the TTL Endpoint namespace/name with a
// check state and output (Consul's pass, warn and fail): it keeps the
// Endpoint's lease alive, or starts a new one when the last has expired.
// Any replica takes heartbeats for any Endpoint.
func (r *Registry) Heartbeat(ctx context.Context, namespace, name string, state resource.CheckState, output string) error {
	switch state {
	case resource.CheckPassing, resource.CheckWarning, resource.CheckCritical:
	default:
		return fmt.Errorf("%w: state %q: must be passing, warning or critical", resource.ErrBadRequest, state)
	}
	output = probe.Clip(output, resource.MaxCheckOutput)
	key := namespace + "/" + name
	r.metrics.heartbeats.Inc()
	// Known lease: keep it alive, and write the marker only when the state
	// or output changed.
	if e, ok := r.cachedLease(key); ok {
		if _, err := r.client.KeepAliveOnce(ctx, e.lease); err == nil {
			if e.marker.State == state && e.marker.Output == output {
				return nil
			}
			m := marker{UID: e.marker.UID, State: state, Output: output}
			return r.putMarker(ctx, key, e.lease, m, 0)
		} else if !errors.Is(err, rpctypes.ErrLeaseNotFound) {
			return store.EtcdError("heartbeat", err)
		}
		r.forgetLease(key, e.lease)
	}
	// Otherwise the Endpoint must exist and be a TTL registration; a marker
	// another replica made is reused if its lease is alive.
	obj, err := r.store.Get(ctx, resource.EndpointKind, namespace, name)
	if err != nil {
		return err
	}
	ep := obj.(*resource.Endpoint)
	if ep.Spec.TTL == nil {
		return fmt.Errorf("%w: endpoint %s has no spec.ttl: heartbeats are for TTL registrations", resource.ErrBadRequest, key)
	}
	m := marker{UID: ep.UID, State: state, Output: output}
	resp, err := r.client.Get(ctx, markersPrefix+key)
	if err != nil {
		return store.EtcdError("heartbeat", err)
	}
	if len(resp.Kvs) == 1 {
		kv := resp.Kvs[0]
		var old marker
		if json.Unmarshal(kv.Value, &old) == nil && old.UID == ep.UID && kv.Lease != 0 {
			lease := clientv3.LeaseID(kv.Lease)
			if _, err := r.client.KeepAliveOnce(ctx, lease); err == nil {
				if old == m {
					r.rememberLease(key, leaseEntry{lease: lease, marker: m})
					return nil
				}
				return r.putMarker(ctx, key, lease, m, kv.ModRevision)
			}
		}
	}
	// A new lease. The marker is created only if no other replica made one
	// meanwhile (that one then wins, and this heartbeat retries on it).
	grant, err := r.client.Grant(ctx, int64(ep.Spec.TTL.Duration/time.Second))
	if err != nil {
		return store.EtcdError("heartbeat", err)
	}
	mod := int64(0)
	if len(resp.Kvs) == 1 {
		mod = resp.Kvs[0].ModRevision
	}
	if err := r.putMarker(ctx, key, grant.ID, m, mod); err != nil {
		r.client.Revoke(context.WithoutCancel(ctx), grant.ID)
		return err
	}
	return nil
}

// putMarker writes the marker of key under lease. With mod > 0 the write
// happens only if the marker is still at that revision; with mod 0 from a
// fresh lease, only if there is no marker.
func (r *Registry) putMarker(ctx context.Context, key string, lease clientv3.LeaseID, m marker, mod int64) error {
	data, err := json.Marshal(m)
	if err != nil {
		return err
	}
	k := markersPrefix + key
	txn := r.client.Txn(ctx)
	if mod > 0 {
		txn = txn.If(clientv3.Compare(clientv3.ModRevision(k), "=", mod))
	}
	resp, err := txn.Then(clientv3.OpPut(k, string(data), clientv3.WithLease(lease))).Commit()
	if err != nil {
		return store.EtcdError("heartbeat", err)
	}
	if !resp.Succeeded {
		return fmt.Errorf("%w: endpoint %s: a concurrent heartbeat changed its lease; retry", resource.ErrConflict, key)
	}
	r.rememberLease(key, leaseEntry{lease: lease, marker: m})
	return nil
}

func (r *Registry) cachedLease(key string) (leaseEntry, bool) {
	r.leasesMu.Lock()
	defer r.leasesMu.Unlock()
	e, ok := r.leases[key]
	return e, ok
}

func (r *Registry) rememberLease(key string, e leaseEntry) {
	r.leasesMu.Lock()
	defer r.leasesMu.Unlock()
	r.leases[key] = e
}

func (r *Registry) forgetLease(key string, lease clientv3.LeaseID) {
	r.leasesMu.Lock()
	defer r.leasesMu.Unlock()
	if e, ok := r.leases[key]; ok && (lease == 0 || e.lease == lease) {
		delete(r.leases, key)
	}
}

// HeartbeatRequest is the optional body of a heartbeat.
type HeartbeatRequest struct {
	// State is passing (the default), warning or critical.
	State resource.CheckState `json:"state,omitempty"`
	// Output is shown in the Endpoint's status.
	Output string `json:"output,omitempty"`
}

// HeartbeatPath is the route of HeartbeatHandler on the API server.
const HeartbeatPath = "POST /apis/" + resource.Group + "/" + resource.Version + "/namespaces/{namespace}/endpoints/{name}/heartbeat"

// HeartbeatHandler serves heartbeats at HeartbeatPath. The body is empty (a
// passing heartbeat) or a HeartbeatRequest.
func (r *Registry) HeartbeatHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		var hb HeartbeatRequest
		body, err := io.ReadAll(io.LimitReader(req.Body, 2*resource.MaxCheckOutput))
		if err != nil {
			apiserver.WriteError(w, fmt.Errorf("%w: reading the body: %v", resource.ErrBadRequest, err))
			return
		}
		if len(body) > 0 {
			if err := json.Unmarshal(body, &hb); err != nil {
				apiserver.WriteError(w, fmt.Errorf("%w: heartbeat body: %v", resource.ErrBadRequest, err))
				return
			}
		}
		if hb.State == "" {
			hb.State = resource.CheckPassing
		}
		if err := r.Heartbeat(req.Context(), req.PathValue("namespace"), req.PathValue("name"), hb.State, hb.Output); err != nil {
			apiserver.WriteError(w, err)
			return
		}
		apiserver.WriteJSON(w, http.StatusOK, hb)
	})
}
