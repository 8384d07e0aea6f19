package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/sluice/sluice/bench/internal/harness"
	"github.com/sluice/sluice/internal/client"
	"github.com/sluice/sluice/internal/resource"
	"github.com/sluice/sluice/internal/store"
)

// opFunc is one timed operation of a worker; i counts the worker's operations.
type opFunc func(ctx context.Context, i int) error

// A writePath is one way to write a Service. create returns worker w's
// create operation in namespace ns (nil: the path does not create); update
// writes worker w's object in ns (untimed) and returns the operation that
// updates it.
type writePath struct {
	name   string
	short  string // for namespace names
	create func(e *env, ns string, w int) opFunc
	update func(ctx context.Context, e *env, ns string, w int) (opFunc, error)
}

// baselinePath is the path the ratios compare with.
const baselinePath = "etcd txn"

var (
	svcResource = client.ResourceOf(resource.ServiceKind)

	// etcdPut is a plain Put of the stored JSON: etcd's floor.
	etcdPut = writePath{
		name: "etcd put", short: "put",
		create: func(e *env, ns string, w int) opFunc {
			return func(ctx context.Context, i int) error {
				_, err := e.raw.Put(ctx, serviceKey(ns, objName(w, i)), string(e.payload))
				return err
			}
		},
		update: updateWith(putUpdater),
	}

	// etcdTxn writes the stored JSON in the transaction the store uses: a
	// create holds only if the key does not exist, an update only if the
	// key is still at the revision last written. The fair baseline.
	etcdTxn = writePath{
		name: baselinePath, short: "txn",
		create: func(e *env, ns string, w int) opFunc {
			return func(ctx context.Context, i int) error {
				key := serviceKey(ns, objName(w, i))
				resp, err := e.raw.Txn(ctx).
					If(clientv3.Compare(clientv3.CreateRevision(key), "=", 0)).
					Then(clientv3.OpPut(key, string(e.payload))).
					Commit()
				if err == nil && !resp.Succeeded {
					err = fmt.Errorf("create %s: the key exists", key)
				}
				return err
			}
		},
		update: func(ctx context.Context, e *env, ns string, w int) (opFunc, error) {
			key := serviceKey(ns, objName(w, 0))
			resp, err := e.raw.Put(ctx, key, string(e.payload))
			if err != nil {
				return nil, err
			}
			rev := resp.Header.Revision
			return func(ctx context.Context, i int) error {
				resp, err := e.raw.Txn(ctx).
					If(clientv3.Compare(clientv3.ModRevision(key), "=", rev)).
					Then(clientv3.OpPut(key, string(e.payload))).
					Commit()
				if err != nil {
					return err
				}
				if !resp.Succeeded {
					return fmt.Errorf("update %s: not at revision %d", key, rev)
				}
				rev = resp.Header.Revision
				return nil
			}, nil
		},
	}

	// etcdGetTxn reads the key, then writes it in the baseline's
	// transaction: the etcd round trips of a store update without any of
	// Sluice's work. Updates only.
	etcdGetTxn = getTxnPath("etcd get+txn", "gettxn")

	// etcdSerialGetTxn is etcdGetTxn with a serializable read, which etcd
	// answers from the member's state without a raft round. Updates only.
	etcdSerialGetTxn = getTxnPath("etcd serializable get+txn", "sgettxn", clientv3.WithSerializable())

	// storePath calls the store in-process, over the same etcd client.
	storePath = writePath{
		name: "store", short: "store",
		create: func(e *env, ns string, w int) opFunc {
			return func(ctx context.Context, i int) error {
				_, err := e.store.Create(ctx, benchService(ns, objName(w, i), i), store.WriteOptions{})
				return err
			}
		},
		update: updateWith(storeUpdater),
	}

	// apiPath is the REST API over loopback HTTP with keep-alive: POST, and
	// PUT with the resourceVersion of the last response, each response
	// decoded into a Service as a client would.
	apiPath = writePath{
		name: "api", short: "api",
		create: func(e *env, ns string, w int) opFunc {
			return func(ctx context.Context, i int) error {
				var out resource.Service
				return e.apiWrite(ctx, http.MethodPost, svcResource.Path(ns, "", ""), benchService(ns, objName(w, i), i), &out, http.StatusCreated)
			}
		},
		update: updateWith(apiUpdater),
	}

	// clientPath is the REST API through internal/client, whose
	// http.Client uses http.DefaultTransport.
	clientPath = writePath{
		name: "api (internal/client)", short: "client",
		create: func(e *env, ns string, w int) opFunc {
			return func(ctx context.Context, i int) error {
				var out resource.Service
				return e.api.Create(ctx, svcResource, ns, benchService(ns, objName(w, i), i), &out, false)
			}
		},
		update: updateWith(clientUpdater),
	}
)

// An updater writes a new Service called name and returns its revision and
// the operation that updates it: call i sets the object's seq annotation to
// i+1 and writes it with the resourceVersion of the previous write, as a
// controller does.
type updater func(ctx context.Context, e *env, ns, name string) (rev int64, update opFunc, err error)

// updateWith makes an updater the update of a write path, one object per worker.
func updateWith(u updater) func(context.Context, *env, string, int) (opFunc, error) {
	return func(ctx context.Context, e *env, ns string, w int) (opFunc, error) {
		_, update, err := u(ctx, e, ns, objName(w, 0))
		return update, err
	}
}

// putUpdater writes the stored JSON with plain Puts.
func putUpdater(ctx context.Context, e *env, ns, name string) (int64, opFunc, error) {
	key := serviceKey(ns, name)
	resp, err := e.raw.Put(ctx, key, string(e.payload))
	if err != nil {
		return 0, nil, err
	}
	return resp.Header.Revision, func(ctx context.Context, i int) error {
		_, err := e.raw.Put(ctx, key, string(e.payload))
		return err
	}, nil
}

// storeUpdater calls the store in-process.
func storeUpdater(ctx context.Context, e *env, ns, name string) (int64, opFunc, error) {
	cur, err := e.store.Create(ctx, benchService(ns, name, 0), store.WriteOptions{})
	if err != nil {
		return 0, nil, err
	}
	rev, err := store.ParseResourceVersion(cur.GetResourceVersion())
	return rev, func(ctx context.Context, i int) error {
		cur.SetAnnotations(map[string]string{seqAnnotation: strconv.Itoa(i + 1)})
		next, err := e.store.Update(ctx, cur, store.WriteOptions{})
		if err != nil {
			return err
		}
		cur = next
		return nil
	}, err
}

// apiUpdater POSTs, then PUTs, through the tuned HTTP client.
func apiUpdater(ctx context.Context, e *env, ns, name string) (int64, opFunc, error) {
	cur := &resource.Service{}
	if err := e.apiWrite(ctx, http.MethodPost, svcResource.Path(ns, "", ""), benchService(ns, name, 0), cur, http.StatusCreated); err != nil {
		return 0, nil, err
	}
	path := svcResource.Path(ns, name, "")
	rev, err := store.ParseResourceVersion(cur.ResourceVersion)
	return rev, func(ctx context.Context, i int) error {
		cur.Annotations = map[string]string{seqAnnotation: strconv.Itoa(i + 1)}
		next := &resource.Service{}
		if err := e.apiWrite(ctx, http.MethodPut, path, cur, next, http.StatusOK); err != nil {
			return err
		}
		cur = next
		return nil
	}, err
}

// clientUpdater creates and updates through internal/client.
func clientUpdater(ctx context.Context, e *env, ns, name string) (int64, opFunc, error) {
	cur := &resource.Service{}
	if err := e.api.Create(ctx, svcResource, ns, benchService(ns, name, 0), cur, false); err != nil {
		return 0, nil, err
	}
	rev, err := store.ParseResourceVersion(cur.ResourceVersion)
	return rev, func(ctx context.Context, i int) error {
		cur.Annotations = map[string]string{seqAnnotation: strconv.Itoa(i + 1)}
		next := &resource.Service{}
		if err := e.api.Update(ctx, svcResource, ns, name, cur, next, false); err != nil {
			return err
		}
		cur = next
		return nil
	}, err
}

// prepareWorkers returns n workers' operations: creates, or updates of
// objects written now.
func prepareWorkers(ctx context.Context, e *env, p writePath, op, ns string, n int) ([]opFunc, error) {
	ops := make([]opFunc, n)
	for w := range ops {
		if op == "create" {
			ops[w] = p.create(e, ns, w)
			continue
		}
		var err error
		if ops[w], err = p.update(ctx, e, ns, w); err != nil {
			return nil, fmt.Errorf("preparing %s: %w", op, err)
		}
	}
	return ops, nil
}

// getTxnPath is an update that reads the key with opts before its
// transaction, as the store does.
func getTxnPath(name, short string, opts ...clientv3.OpOption) writePath {
	return writePath{
		name: name, short: short,
		update: func(ctx context.Context, e *env, ns string, w int) (opFunc, error) {
			key := serviceKey(ns, objName(w, 0))
			if _, err := e.raw.Put(ctx, key, string(e.payload)); err != nil {
				return nil, err
			}
			return func(ctx context.Context, i int) error {
				cur, err := e.raw.Get(ctx, key, opts...)
				if err != nil {
					return err
				}
				if len(cur.Kvs) != 1 {
					return fmt.Errorf("update %s: not found", key)
				}
				rev := cur.Kvs[0].ModRevision
				resp, err := e.raw.Txn(ctx).
					If(clientv3.Compare(clientv3.ModRevision(key), "=", rev)).
					Then(clientv3.OpPut(key, string(e.payload))).
					Commit()
				if err == nil && !resp.Succeeded {
					err = fmt.Errorf("update %s: not at revision %d", key, rev)
				}
				return err
			}, nil
		},
	}
}

// writePaths are the paths cfg selects, in report order.
func writePaths(cfg config) []writePath {
	var paths []writePath
	for _, p := range []writePath{etcdPut, etcdTxn, etcdGetTxn, etcdSerialGetTxn, storePath, apiPath, clientPath} {
		if cfg.wants(p.short) {
			paths = append(paths, p)
		}
	}
	return paths
}

func objName(w, i int) string { return "s-" + strconv.Itoa(w) + "-" + strconv.Itoa(i) }

// apiWrite sends obj as JSON and decodes the answer into out.
func (e *env) apiWrite(ctx context.Context, method, path string, obj, out *resource.Service, want int) error {
	body, err := json.Marshal(obj)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, method, e.apiURL+path, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	resp, err := e.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode != want {
		return fmt.Errorf("%s %s: %s: %s", method, path, resp.Status, bytes.TrimSpace(data))
	}
	return json.Unmarshal(data, out)
}

// writeOps are the operations measured, in report order.
var writeOps = []string{"create", "update"}

// measureWrite runs c workers doing op through p for a tenth of d untimed,
// then for d timed, and returns what they did in the timed part.
func measureWrite(ctx context.Context, e *env, p writePath, op string, c int, ns string, d time.Duration) (sample, error) {
	ops, err := prepareWorkers(ctx, e, p, op, ns, c)
	if err != nil {
		return sample{}, err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		mu       sync.Mutex // guards firstErr, lats, all, finished
		firstErr error
		lats     []time.Duration
		all      int
		finished time.Time
	)
	cpu0, err := harness.CPUTime()
	if err != nil {
		return sample{}, err
	}
	from := time.Now().Add(d / 10)
	until := from.Add(d)
	var wg sync.WaitGroup
	for _, do := range ops {
		wg.Go(func() {
			var mine []time.Duration
			var last time.Time
			i := 0
			for ; ; i++ {
				start := time.Now()
				if !start.Before(until) || ctx.Err() != nil {
					break
				}
				err := do(ctx, i)
				last = time.Now()
				if err != nil {
					mu.Lock()
					if firstErr == nil {
						firstErr = err
					}
					mu.Unlock()
					cancel()
					return
				}
				if !start.Before(from) {
					mine = append(mine, last.Sub(start))
				}
			}
			mu.Lock()
			lats = append(lats, mine...)
			all += i
			if last.After(finished) {
				finished = last
			}
			mu.Unlock()
		})
	}
	wg.Wait()
	cpu1, err := harness.CPUTime()
	if err != nil {
		return sample{}, err
	}
	if firstErr != nil {
		return sample{}, firstErr
	}
	if err := ctx.Err(); err != nil {
		return sample{}, err
	}
	return sample{ops: len(lats), elapsed: finished.Sub(from), lats: lats, cpu: cpu1 - cpu0, allOps: all}, nil
}

// runWrites measures every write path, operation and concurrency level, for
// cfg.Rounds rounds; odd rounds run the paths in reverse order.
func runWrites(ctx context.Context, e *env, cfg config) ([]writeRow, error) {
	paths := writePaths(cfg)
	type key struct {
		op   string
		c    int
		path string
	}
	agg := map[key]*sample{}
	for r := range cfg.Rounds {
		order := harness.RoundOrder(paths, r)
		for _, c := range cfg.Concurrency {
			for _, op := range writeOps {
				for _, p := range order {
					if op == "create" && p.create == nil {
						continue
					}
					ns := fmt.Sprintf("w%d-%s-%s-c%d", r, op, p.short, c)
					s, err := measureWrite(ctx, e, p, op, c, ns, cfg.Duration)
					if err != nil {
						return nil, fmt.Errorf("%s through %s, concurrency %d: %w", op, p.name, c, err)
					}
					if err := e.reset(ctx, ns); err != nil {
						return nil, err
					}
					progress(cfg, "round %d/%d  %-6s c=%-3d %-22s %8.0f ops/s  p50 %-8v p99 %v",
						r+1, cfg.Rounds, op, c, p.name, s.opsPerSec(), s.percentile(50), s.percentile(99))
					k := key{op, c, p.name}
					if agg[k] == nil {
						agg[k] = &sample{}
					}
					agg[k].add(s)
				}
			}
		}
	}
	var rows []writeRow
	for _, op := range writeOps {
		for _, c := range cfg.Concurrency {
			for _, p := range paths {
				if agg[key{op, c, p.name}] == nil {
					continue
				}
				rows = append(rows, writeRow{op: op, c: c, path: p.name, s: *agg[key{op, c, p.name}]})
			}
		}
	}
	return rows, nil
}

func progress(cfg config, format string, args ...any) {
	if cfg.Progress != nil {
		fmt.Fprintf(cfg.Progress, format+"\n", args...)
	}
}
