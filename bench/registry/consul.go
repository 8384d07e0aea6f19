package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptrace"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/sluice/sluice/internal/resource"
)

// The official Consul client against the server's Consul-compatible
// listener. Sluice maps Consul Enterprise's namespaces (?ns=) to its own,
// so every measurement's namespace has a client of its own; they share one
// transport, which keeps a connection per concurrent request.

// consul returns a Consul client of namespace ns.
func (e *env) consul(ns string) *api.Client {
	if c := e.consulClients[ns]; c != nil {
		return c
	}
	c, err := api.NewClient(&api.Config{Address: e.consulAddr, Scheme: "http", Namespace: ns, Transport: e.consulTransport})
	if err != nil {
		// NewClient fails only on TLS settings and addresses it cannot
		// parse; neither comes from outside.
		panic(fmt.Sprintf("consul client: %v", err))
	}
	e.consulClients[ns] = c
	return c
}

// consulRegistration is a Consul registration of an instance of
// benchService as an application sends it: an ID, an address and port, a
// tag, a meta pair, and a TTL check (none when ttl is 0).
func consulRegistration(id string, seq int, ttl time.Duration) *api.AgentServiceRegistration {
	reg := &api.AgentServiceRegistration{
		ID:      id,
		Name:    benchService,
		Address: instanceAddress(seq),
		Port:    8080,
		Tags:    []string{"v1"},
		Meta:    map[string]string{"zone": "zone-a"},
	}
	if ttl > 0 {
		reg.Check = &api.AgentServiceCheck{TTL: ttl.String()}
	}
	return reg
}

// consulRegisterPath registers through Agent().ServiceRegister.
var consulRegisterPath = ratePath{
	name: "Consul (ServiceRegister)", short: "consul",
	prepare: perWorker(func(e *env, ns string, w int) opFunc {
		agent := e.consul(ns).Agent()
		return func(ctx context.Context, i int) error {
			return agent.ServiceRegisterOpts(consulRegistration(objName("c", w, i), w<<18|i, registrationTTL), api.ServiceRegisterOpts{}.WithContext(ctx))
		}
	}),
}

// consulHeartbeatPath passes the TTL checks of services registered through
// Consul with Agent().PassTTL("service:<id>", "").
var consulHeartbeatPath = ratePath{
	name: "Consul (PassTTL)", short: "consul", shared: true,
	prepare: func(ctx context.Context, e *env, cfg config, ns string, c int) ([]opFunc, error) {
		ids, err := e.consulHeartbeated(ctx, ns, cfg.Endpoints)
		if err != nil {
			return nil, err
		}
		agent := e.consul(ns).Agent()
		return spread(ids, c, func(id string) func(context.Context) error {
			check := "service:" + id
			return func(context.Context) error { return agent.PassTTL(check, "") }
		}), nil
	},
}

// consulHeartbeated returns the IDs of n services registered through
// Consul in namespace ns with a TTL check that has passed once,
// registering them the first time.
func (e *env) consulHeartbeated(ctx context.Context, ns string, n int) ([]string, error) {
	agent := e.consul(ns).Agent()
	return e.heartbeatedSet(ctx, ns, n, func(ctx context.Context, id string, i int) error {
		if err := agent.ServiceRegisterOpts(consulRegistration(id, i, heartbeatTTL), api.ServiceRegisterOpts{}.WithContext(ctx)); err != nil {
			return err
		}
		return agent.PassTTL("service:"+id, "")
	})
}

// consulStoredSize registers one service through Consul and returns the
// size of the Endpoint the store keeps for it.
func (e *env) consulStoredSize(ctx context.Context) (int, error) {
	const ns, id = "bench-layout-consul", "probe"
	if err := e.consul(ns).Agent().ServiceRegisterOpts(consulRegistration(id, 1, registrationTTL), api.ServiceRegisterOpts{}.WithContext(ctx)); err != nil {
		return 0, fmt.Errorf("consul layout probe: %w", err)
	}
	defer e.reset(ctx, ns)
	resp, err := e.raw.Get(ctx, kindPrefix(resource.EndpointKind, ns)+id)
	if err != nil {
		return 0, fmt.Errorf("consul layout probe: %w", err)
	}
	if len(resp.Kvs) != 1 {
		return 0, fmt.Errorf("consul layout probe: the registration %s did not become the Endpoint %s/%s", id, ns, id)
	}
	return len(resp.Kvs[0].Value), nil
}

// Blocking queries.

// errNotServed says the server does not serve a path yet: the run leaves
// it out and says so.
var errNotServed = errors.New("not served by this server")

// trackSent counts a waiter in w.sent once its first request is written.
func trackSent(ctx context.Context, w *wakes) context.Context {
	counted := false
	return httptrace.WithClientTrace(ctx, &httptrace.ClientTrace{
		WroteRequest: func(httptrace.WroteRequestInfo) {
			if !counted {
				counted = true
				w.sent.Add(1)
			}
		},
	})
}

// blockingWaiter runs a Consul blocking query from index until it returns
// with a new index after the change was issued.
func blockingWaiter(query func(q *api.QueryOptions) (uint64, error), index uint64) func(ctx context.Context, i int, w *wakes) {
	return func(ctx context.Context, i int, w *wakes) {
		ctx = trackSent(ctx, w)
		for {
			next, err := query((&api.QueryOptions{WaitIndex: index, WaitTime: time.Minute}).WithContext(ctx))
			if err != nil {
				if ctx.Err() == nil {
					w.fail(err)
				}
				return
			}
			if next != index && w.issued.Load() {
				w.woke(i)
				return
			}
			index = next
		}
	}
}

// blockingTarget is what Consul blocking queries wait on: query reads from
// an index (0: at once) and returns the index of its answer; change makes
// the k-th change.
func blockingTarget(query func(q *api.QueryOptions) (uint64, error), change func(ctx context.Context, k int) error) wakeTarget {
	return wakeTarget{
		arm: func(ctx context.Context) (func(context.Context, int, *wakes), error) {
			index, err := query((&api.QueryOptions{}).WithContext(ctx))
			return blockingWaiter(query, index), err
		},
		change: change,
	}
}

// consulHealthPath is Health().Service(name, "", false) blocking queries,
// woken by the registration of another instance of the service.
var consulHealthPath = wakePath{
	name: "Consul health (Health().Service)", short: "health",
	setup: func(ctx context.Context, e *env, ns string) (wakeTarget, error) {
		c := e.consul(ns)
		const service = "wake"
		register := func(ctx context.Context, k int) error {
			reg := consulRegistration(objName(service, 0, k), k, 0)
			reg.Name = service
			return c.Agent().ServiceRegisterOpts(reg, api.ServiceRegisterOpts{}.WithContext(ctx))
		}
		if err := register(ctx, 0); err != nil {
			return wakeTarget{}, err
		}
		return blockingTarget(func(q *api.QueryOptions) (uint64, error) {
			_, meta, err := c.Health().Service(service, "", false, q)
			if err != nil {
				return 0, err
			}
			return meta.LastIndex, nil
		}, func(ctx context.Context, k int) error { return register(ctx, k+1) }), nil
	},
}

// consulKVPath is KV().Get(key) blocking queries, woken by a KV().Put of
// the key.
var consulKVPath = wakePath{
	name: "Consul KV (KV().Get)", short: "kv",
	setup: func(ctx context.Context, e *env, ns string) (wakeTarget, error) {
		kv := e.consul(ns).KV()
		key := "bench/" + ns + "/wake"
		put := func(ctx context.Context, _ int) error {
			_, err := kv.Put(&api.KVPair{Key: key, Value: e.payload}, (&api.WriteOptions{}).WithContext(ctx))
			var se api.StatusError
			if errors.As(err, &se) && se.Code == http.StatusNotImplemented {
				return fmt.Errorf("consul KV: %w", errNotServed)
			}
			return err
		}
		if err := put(ctx, 0); err != nil {
			return wakeTarget{}, err
		}
		return blockingTarget(func(q *api.QueryOptions) (uint64, error) {
			_, meta, err := kv.Get(key, q)
			if err != nil {
				return 0, err
			}
			return meta.LastIndex, nil
		}, put), nil
	},
}

// consulKVPrefix is where the KV path's keys live in etcd (package kv's
// key spaces /sluice/kv/ and /sluice/kvhistory/); the history of a key
// outlives it, so a reset does not wait for these to go.
const consulKVPrefix = "/sluice/kv"
