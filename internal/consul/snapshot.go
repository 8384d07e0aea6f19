package consul

import (
	"context"
	"strconv"
	"sync"

	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/watch"

	"github.com/sluice/sluice/internal/resource"
	"github.com/sluice/sluice/internal/store"
)

// snapshot is what the read endpoints answer from: a namespace's Services
// and Endpoints. Its objects are shared between requests and never modified.
type snapshot struct {
	services  []*resource.Service
	endpoints []*resource.Endpoint
	// index is the revision the Services were listed at; the Endpoints were
	// listed at it or later. Every change after index may be missing, so a
	// waiter from index misses none.
	index int64
	// answers holds the encoded answers made from this snapshot, by path
	// and query (see Facade.read): json.RawMessage values.
	answers sync.Map
}

// snapshot returns the Services and Endpoints of ns, reflecting at least
// revision minRev: afresh with minRev 0, else shared with the other
// blocking queries woken by the same change (see sharedReads).
func (f *Facade) snapshot(ctx context.Context, ns string, minRev int64) (*snapshot, error) {
	snap, _, err := f.snaps.read(ctx, ns, minRev, func(ctx context.Context) (*snapshot, int64, error) {
		s, err := f.readSnapshot(ctx, ns)
		if err != nil {
			return nil, 0, err
		}
		return s, s.index, nil
	})
	return snap, err
}

func (f *Facade) readSnapshot(ctx context.Context, ns string) (*snapshot, error) {
	f.snapReads.Add(1)
	svcs, rev, err := f.store.List(ctx, resource.ServiceKind, ns, nil)
	if err != nil {
		return nil, err
	}
	eps, _, err := f.store.List(ctx, resource.EndpointKind, ns, nil)
	if err != nil {
		return nil, err
	}
	s := &snapshot{index: rev, services: make([]*resource.Service, 0, len(svcs)), endpoints: make([]*resource.Endpoint, 0, len(eps))}
	for _, o := range svcs {
		s.services = append(s.services, o.(*resource.Service))
	}
	for _, o := range eps {
		s.endpoints = append(s.endpoints, o.(*resource.Endpoint))
	}
	return s, nil
}

// service returns the Service called name, if there is one.
func (s *snapshot) service(name string) *resource.Service {
	for _, svc := range s.services {
		if svc.Name == name {
			return svc
		}
	}
	return nil
}

// selected returns the Endpoints svc selects. An empty selector selects none.
func (s *snapshot) selected(svc *resource.Service) []*resource.Endpoint {
	if len(svc.Spec.Selector) == 0 {
		return nil
	}
	sel := labels.SelectorFromSet(svc.Spec.Selector)
	var out []*resource.Endpoint
	for _, ep := range s.endpoints {
		if sel.Matches(labels.Set(ep.Labels)) {
			out = append(out, ep)
		}
	}
	return out
}

// waitServices is the waitFunc of catalog and health reads: it returns at
// the first change after a revision to the namespace's Services, or to its
// Endpoints (with a name: to the Service of that name, or to the Endpoints
// its selector selects now — if the selector changed since, the Service
// did too). Both watches go through the store's per-kind hub.
func (f *Facade) waitServices(ns, name string) waitFunc {
	return func(ctx context.Context, after int64) (int64, error) {
		ctx, cancel := context.WithCancel(ctx)
		defer cancel()
		opts := store.WatchOptions{ResourceVersion: after}
		svcs, err := f.store.Watch(ctx, resource.ServiceKind, ns, opts)
		if err != nil {
			return 0, err
		}
		var eps <-chan store.Event
		watchEndpoints := true
		if name != "" {
			watchEndpoints = false
			obj, err := f.store.Get(ctx, resource.ServiceKind, ns, name)
			if err == nil {
				if sel := obj.(*resource.Service).Spec.Selector; len(sel) > 0 {
					opts.Selector = labels.SelectorFromSet(sel)
					watchEndpoints = true
				}
			}
		}
		if watchEndpoints {
			if eps, err = f.store.Watch(ctx, resource.EndpointKind, ns, opts); err != nil {
				return 0, err
			}
		}
		for {
			var ev store.Event
			var ok bool
			select {
			case ev, ok = <-svcs:
				if ok && name != "" && ev.Type != watch.Error && ev.Object.GetName() != name {
					continue
				}
			case ev, ok = <-eps:
			}
			switch {
			case !ok:
				// The watch ended: the request is over, or the watch broke
				// and a fresh read answers.
				if err := ctx.Err(); err != nil {
					return 0, err
				}
				return 0, nil
			case ev.Type == watch.Bookmark:
				continue
			case ev.Type == watch.Error:
				return 0, nil // e.g. compacted: read afresh
			}
			rev, _ := strconv.ParseInt(ev.Object.GetResourceVersion(), 10, 64)
			return rev, nil
		}
	}
}
