package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/sluice/sluice/internal/registry"
	"github.com/sluice/sluice/internal/resource"
)

// heartbeatBaseline is the heartbeat path the ratios compare with.
const heartbeatBaseline = "etcd KeepAliveOnce"

// heartbeatPaths are the ways to heartbeat, in report order. Each keeps
// cfg.Endpoints registrations alive; worker w of c takes every c-th one.
var heartbeatPaths = []ratePath{
	{
		// One KeepAliveOnce on a lease per heartbeat: what a heartbeat is
		// to etcd, and what the registry does for one whose state did not
		// change.
		name: heartbeatBaseline, short: "keepalive", shared: true,
		prepare: func(ctx context.Context, e *env, cfg config, ns string, c int) ([]opFunc, error) {
			if err := e.grantLeases(ctx, cfg.Endpoints); err != nil {
				return nil, err
			}
			return spread(e.leases, c, func(lease clientv3.LeaseID) func(context.Context) error {
				return func(ctx context.Context) error {
					_, err := e.raw.KeepAliveOnce(ctx, lease)
					return err
				}
			}), nil
		},
	},
	{
		// POST .../endpoints/{name}/heartbeat through internal/client,
		// with no body (a passing heartbeat).
		name: "native (REST API)", short: "native", shared: true,
		prepare: func(ctx context.Context, e *env, cfg config, ns string, c int) ([]opFunc, error) {
			names, err := e.nativeHeartbeated(ctx, ns, cfg.Endpoints)
			if err != nil {
				return nil, err
			}
			return spread(names, c, func(name string) func(context.Context) error {
				path := heartbeatPath(ns, name)
				return func(ctx context.Context) error {
					_, err := e.api.Do(ctx, http.MethodPost, path, nil, nil, "", nil)
					return err
				}
			}), nil
		},
	},
	consulHeartbeatPath,
}

// spread gives worker w of c the items w, w+c, w+2c, …, which it
// heartbeats in turn.
func spread[T any](items []T, c int, beat func(T) func(context.Context) error) []opFunc {
	ops := make([]opFunc, c)
	for w := range ops {
		var mine []func(context.Context) error
		for i := w; i < len(items); i += c {
			mine = append(mine, beat(items[i]))
		}
		ops[w] = func(ctx context.Context, i int) error { return mine[i%len(mine)](ctx) }
	}
	return ops
}

// heartbeatPath is the path of an Endpoint's heartbeat, from the route
// the registry serves.
func heartbeatPath(ns, name string) string {
	_, pattern, _ := strings.Cut(registry.HeartbeatPath, " ")
	return strings.NewReplacer("{namespace}", url.PathEscape(ns), "{name}", url.PathEscape(name)).Replace(pattern)
}

// grantLeases grants the raw baseline's n leases, once per run.
func (e *env) grantLeases(ctx context.Context, n int) error {
	for len(e.leases) < n {
		resp, err := e.raw.Grant(ctx, int64(heartbeatTTL/time.Second))
		if err != nil {
			return fmt.Errorf("granting a lease: %w", err)
		}
		e.leases = append(e.leases, resp.ID)
	}
	return nil
}

// release removes what a shared path prepared in namespace ns: its
// registrations, and the raw baseline's leases.
func (e *env) release(ctx context.Context, ns string) error {
	delete(e.heartbeated, ns)
	for _, lease := range e.leases {
		if _, err := e.raw.Revoke(ctx, lease); err != nil {
			return fmt.Errorf("revoking a lease: %w", err)
		}
	}
	e.leases = nil
	return e.reset(ctx, ns)
}

// nativeHeartbeated returns the names of n TTL Endpoints in namespace ns
// that have had their first heartbeat, creating them the first time.
func (e *env) nativeHeartbeated(ctx context.Context, ns string, n int) ([]string, error) {
	return e.heartbeatedSet(ctx, ns, n, func(ctx context.Context, name string, i int) error {
		if err := e.api.Create(ctx, endpointResource, ns, benchEndpoint(ns, name, i, heartbeatTTL), nil, false); err != nil {
			return err
		}
		_, err := e.api.Do(ctx, http.MethodPost, heartbeatPath(ns, name), nil, nil, "", nil)
		return err
	})
}

// heartbeatedSet returns the names of n registrations in namespace ns that
// have had their first heartbeat and whose status says so, making them
// with start (register, then heartbeat once) the first time: the
// measurements then time only heartbeats that keep a known lease alive.
func (e *env) heartbeatedSet(ctx context.Context, ns string, n int, start func(ctx context.Context, name string, i int) error) ([]string, error) {
	if names := e.heartbeated[ns]; len(names) >= n {
		return names, nil
	}
	names := make([]string, n)
	for i := range names {
		names[i] = objName("hb", 0, i)
	}
	if err := parallel(n, func(i int) error { return start(ctx, names[i], i) }); err != nil {
		return nil, err
	}
	if err := e.awaitHealthy(ctx, ns, n); err != nil {
		return nil, err
	}
	if _, err := e.quiesce(ctx); err != nil {
		return nil, err
	}
	e.heartbeated[ns] = names
	return names, nil
}

// awaitHealthy waits until namespace ns holds n Endpoints, all healthy.
func (e *env) awaitHealthy(ctx context.Context, ns string, n int) error {
	deadline := time.Now().Add(settleTimeout)
	for {
		var list resource.EndpointList
		if err := e.api.List(ctx, endpointResource, ns, "", &list); err != nil {
			return err
		}
		healthy := 0
		for _, ep := range list.Items {
			if ep.Status.Health == resource.HealthHealthy {
				healthy++
			}
		}
		if healthy >= n {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%d of %d Endpoints in %s healthy after %v", healthy, n, ns, settleTimeout)
		}
		select {
		case <-time.After(100 * time.Millisecond):
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// parallel calls f for 0 … n-1, at most setupConcurrency at once, and
// returns the errors.
func parallel(n int, f func(i int) error) error {
	const setupConcurrency = 16
	var (
		mu   sync.Mutex // guards errs
		errs error
		wg   sync.WaitGroup
	)
	sem := make(chan struct{}, setupConcurrency)
	for i := range n {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			if err := f(i); err != nil {
				mu.Lock()
				errs = errors.Join(errs, err)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	return errs
}
