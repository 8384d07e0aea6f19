package main

import (
	"context"
	"fmt"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/sluice/sluice/internal/resource"
)

// registerBaseline is the registration path the ratios compare with.
const registerBaseline = "etcd txn"

// registerPaths are the ways to register, in report order.
var registerPaths = []ratePath{
	{
		// A plain Put of the stored JSON of a registration: etcd's floor.
		name: "etcd put", short: "put",
		prepare: perWorker(func(e *env, ns string, w int) opFunc {
			return func(ctx context.Context, i int) error {
				_, err := e.raw.Put(ctx, rawKey(ns, objName("r", w, i)), string(e.payload))
				return err
			}
		}),
	},
	{
		// The stored JSON written only if the key is absent, as the store
		// creates: what a registration is to etcd. The fair baseline.
		name: registerBaseline, short: "txn",
		prepare: perWorker(func(e *env, ns string, w int) opFunc {
			return func(ctx context.Context, i int) error {
				key := rawKey(ns, objName("r", w, i))
				resp, err := e.raw.Txn(ctx).
					If(clientv3.Compare(clientv3.CreateRevision(key), "=", 0)).
					Then(clientv3.OpPut(key, string(e.payload))).
					Commit()
				if err == nil && !resp.Succeeded {
					err = fmt.Errorf("create %s: the key exists", key)
				}
				return err
			}
		}),
	},
	{
		// An Endpoint with spec.ttl created through the REST API with
		// internal/client, the answer decoded as the CLI does.
		name: "native (REST API)", short: "native",
		prepare: perWorker(func(e *env, ns string, w int) opFunc {
			return func(ctx context.Context, i int) error {
				var out resource.Endpoint
				return e.api.Create(ctx, endpointResource, ns, benchEndpoint(ns, objName("r", w, i), w<<18|i, registrationTTL), &out, false)
			}
		}),
	},
	consulRegisterPath,
}

// perWorker prepares c workers that each make their own operation.
func perWorker(op func(e *env, ns string, w int) opFunc) func(context.Context, *env, config, string, int) ([]opFunc, error) {
	return func(_ context.Context, e *env, _ config, ns string, c int) ([]opFunc, error) {
		ops := make([]opFunc, c)
		for w := range ops {
			ops[w] = op(e, ns, w)
		}
		return ops, nil
	}
}
