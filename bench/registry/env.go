package main

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/consul/api"
	"github.com/prometheus/client_golang/prometheus"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/sluice/sluice/bench/internal/harness"
	"github.com/sluice/sluice/internal/client"
	"github.com/sluice/sluice/internal/resource"
	"github.com/sluice/sluice/internal/server"
	"github.com/sluice/sluice/internal/store"
)

// env is one embedded etcd and the ways in that the benchmark compares: a
// raw etcd client, and a Sluice server (with its own etcd client) serving
// the REST API and the Consul-compatible API on loopback.
type env struct {
	etcd *store.Embedded
	raw  *clientv3.Client
	// api is internal/client, as the CLI uses it.
	api    *client.Client
	apiURL string
	// consulAddr is the server's Consul-compatible listener; consulClients
	// are the official client's, one per namespace (see consul), over
	// consulTransport.
	consulAddr      string
	consulClients   map[string]*api.Client
	consulTransport *http.Transport
	// payload is the JSON the store keeps for a native registration
	// (benchEndpoint), written by the raw etcd baseline.
	payload []byte

	// heartbeated holds, per heartbeat path, what its workers keep alive,
	// made once per phase (see ratePath.shared).
	heartbeated map[string][]string
	// leases are the raw baseline's leases, granted once per phase.
	leases []clientv3.LeaseID
	// quietFor is how long etcd's revision must stay the same for the
	// server to count as done with the work a measurement left it (see
	// config.Quiet).
	quietFor time.Duration

	stopServer context.CancelFunc
	serverDone chan error
}

// startEnv starts etcd in dir and the server over it. conns is how many
// connections the benchmark may hold open to the server at once.
func startEnv(ctx context.Context, dir string, conns int, quietFor time.Duration, log *slog.Logger) (_ *env, err error) {
	e := &env{heartbeated: map[string][]string{}, consulClients: map[string]*api.Client{}, quietFor: quietFor}
	defer func() {
		if err != nil {
			e.close()
		}
	}()
	// The embedded etcd's defaults keep fsync on, as in production.
	if e.etcd, err = store.StartEmbedded(ctx, store.EmbedConfig{Dir: filepath.Join(dir, "etcd"), Logger: log}); err != nil {
		return nil, err
	}
	endpoint := e.etcd.Endpoint()
	e.raw, err = clientv3.New(clientv3.Config{Endpoints: []string{endpoint}, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		return nil, fmt.Errorf("etcd client: %w", err)
	}

	srvCtx, stop := context.WithCancel(context.Background())
	srv := server.New(server.Config{
		EtcdEndpoints: []string{endpoint},
		HTTPAddr:      "127.0.0.1:0",
		XDSAddr:       "127.0.0.1:0",
		ConsulAddr:    "127.0.0.1:0",
		Logger:        log,
	})
	e.stopServer, e.serverDone = stop, make(chan error, 1)
	go func() { e.serverDone <- srv.Run(srvCtx) }()
	select {
	case <-srv.Ready():
	case err := <-e.serverDone:
		e.stopServer, e.serverDone = nil, nil
		stop()
		return nil, fmt.Errorf("sluice server: %w", err)
	case <-time.After(60 * time.Second):
		return nil, fmt.Errorf("sluice server not ready after 60s")
	}
	e.apiURL = "http://" + srv.HTTPAddr()
	if e.api, err = client.New(e.apiURL, ""); err != nil {
		return nil, err
	}
	e.consulAddr, e.consulTransport = srv.ConsulAddr(), pooledTransport(conns)
	if e.payload, err = e.storedForm(ctx); err != nil {
		return nil, err
	}
	return e, nil
}

// close stops the server, then etcd.
func (e *env) close() {
	if e.consulTransport != nil {
		e.consulTransport.CloseIdleConnections()
	}
	if e.stopServer != nil {
		e.stopServer()
		<-e.serverDone
	}
	if e.raw != nil {
		e.raw.Close()
	}
	if e.etcd != nil {
		e.etcd.Close()
	}
}

// pooledTransport is an HTTP transport that keeps a connection per
// concurrent request to one host: every worker or waiter has its own, as
// separate applications would.
func pooledTransport(conns int) *http.Transport {
	return &http.Transport{
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:        0,
		MaxIdleConnsPerHost: conns + 16,
		IdleConnTimeout:     90 * time.Second,
	}
}

// Registrations: what the native path creates and the baseline writes.

// benchService is the service every registration belongs to.
const benchService = "bench"

// registrationTTL is the TTL of a registration that is not heartbeated;
// heartbeatTTL that of the ones the heartbeat phase keeps alive, long
// enough that none expires between two measurements.
const (
	registrationTTL = 30 * time.Second
	heartbeatTTL    = 5 * time.Minute
)

var endpointResource = client.ResourceOf(resource.EndpointKind)

// benchEndpoint is a native registration: an instance of benchService with
// an address, a port, a few labels and a TTL.
func benchEndpoint(namespace, name string, seq int, ttl time.Duration) *resource.Endpoint {
	return &resource.Endpoint{
		TypeMeta: metav1.TypeMeta{APIVersion: resource.EndpointKind.APIVersion(), Kind: resource.EndpointKind.Kind},
		ObjectMeta: metav1.ObjectMeta{
			Name:      name,
			Namespace: namespace,
			Labels:    map[string]string{"app": benchService, "version": "v1", "zone": "zone-a"},
		},
		Spec: resource.EndpointSpec{
			Address: instanceAddress(seq),
			Ports:   []resource.EndpointPort{{Name: "http", Port: 8080}},
			TTL:     &metav1.Duration{Duration: ttl},
		},
	}
}

// instanceAddress gives every instance an address of its own.
func instanceAddress(seq int) string {
	return fmt.Sprintf("10.%d.%d.%d", seq>>16&0xff, seq>>8&0xff, seq&0xff)
}

func objName(prefix string, w, i int) string {
	return prefix + "-" + strconv.Itoa(w) + "-" + strconv.Itoa(i)
}

// rawPrefix is where the raw etcd baseline writes: a key space of its own,
// so that none of the server's watchers (the registry's, xDS's) sees it.
const rawPrefix = "/bench/registry/"

func rawKey(ns, name string) string { return rawPrefix + ns + "/" + name }

// storedForm creates one registration through the API and returns the
// bytes the store keeps for it in etcd, for the raw baseline to write.
func (e *env) storedForm(ctx context.Context) ([]byte, error) {
	const ns, name = "bench-layout", "probe"
	if err := e.api.Create(ctx, endpointResource, ns, benchEndpoint(ns, name, 1, registrationTTL), nil, false); err != nil {
		return nil, fmt.Errorf("layout probe: %w", err)
	}
	defer e.reset(ctx, ns)
	resp, err := e.raw.Get(ctx, store.Prefix, clientv3.WithPrefix())
	if err != nil {
		return nil, fmt.Errorf("layout probe: %w", err)
	}
	want := kindPrefix(resource.EndpointKind, ns) + name
	for _, kv := range resp.Kvs {
		if string(kv.Key) == want {
			return kv.Value, nil
		}
	}
	return nil, fmt.Errorf("layout probe: the store did not write the Endpoint %s/%s at %s: cleaning up would miss what it writes", ns, name, want)
}

// kindPrefix is the etcd key prefix of the objects of a kind in a
// namespace, as documented in DESIGN.md; storedForm checks that the store
// agrees.
func kindPrefix(k *resource.Kind, ns string) string {
	group := k.Group
	if group == "" {
		group = "core"
	}
	return store.Prefix + group + "/" + k.Kind + "/" + ns + "/"
}

// deleteNamespace removes what a measurement wrote in namespace ns: the
// raw baseline's keys, and the Services and Endpoints of the namespace,
// straight from etcd, one etcd transaction each, as separate deletions
// through the API would be (the server sees them through its watches).
func (e *env) deleteNamespace(ctx context.Context, ns string) error {
	if _, err := e.raw.Delete(ctx, rawPrefix+ns+"/", clientv3.WithPrefix()); err != nil {
		return fmt.Errorf("cleaning up %s: %w", ns, err)
	}
	var keys []string
	for _, k := range []*resource.Kind{resource.EndpointKind, resource.ServiceKind} {
		resp, err := e.raw.Get(ctx, kindPrefix(k, ns), clientv3.WithPrefix(), clientv3.WithKeysOnly())
		if err != nil {
			return fmt.Errorf("cleaning up %s: %w", ns, err)
		}
		for _, kv := range resp.Kvs {
			keys = append(keys, string(kv.Key))
		}
	}
	return parallel(len(keys), func(i int) error {
		_, err := e.raw.Delete(ctx, keys[i])
		return err
	})
}

// reset deletes a measurement's namespace, waits until the server has done
// what that makes it do (the registry releases the claims of the deleted
// registrations: no key in etcd names the namespace any more) and the
// server is quiet, then compacts etcd's history, as a server's periodic
// compaction would, so that every measurement starts with the same data
// in etcd.
func (e *env) reset(ctx context.Context, ns string) error {
	if err := e.deleteNamespace(ctx, ns); err != nil {
		return err
	}
	deadline := time.Now().Add(settleTimeout)
	for {
		resp, err := e.raw.Get(ctx, "/", clientv3.WithPrefix(), clientv3.WithKeysOnly())
		if err != nil {
			return fmt.Errorf("cleaning up %s: %w", ns, err)
		}
		left := 0
		for _, kv := range resp.Kvs {
			if key := string(kv.Key); strings.Contains(key, "/"+ns+"/") && !strings.HasPrefix(key, consulKVPrefix) {
				left++
			}
		}
		if left == 0 {
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("cleaning up %s: %d keys still name it after %v", ns, left, settleTimeout)
		}
		select {
		case <-time.After(25 * time.Millisecond):
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	q, err := e.quiesce(ctx)
	if err != nil {
		return err
	}
	if _, err := e.raw.Compact(ctx, q.rev, clientv3.WithCompactPhysical()); err != nil {
		return fmt.Errorf("compacting etcd after %s: %w", ns, err)
	}
	return nil
}

// Waiting for the server to settle.

// settleTimeout bounds every wait for the server to settle.
const settleTimeout = 2 * time.Minute

// quiet is when etcd's revision last changed, and the process's CPU time
// then; polls counts the reads of the revision that found it.
type quiet struct {
	rev   int64
	at    time.Time
	cpu   time.Duration
	polls int
}

func (e *env) revision(ctx context.Context) (int64, error) {
	resp, err := e.raw.Get(ctx, rawPrefix+"\x00revision", clientv3.WithCountOnly())
	if err != nil {
		return 0, fmt.Errorf("reading etcd's revision: %w", err)
	}
	return resp.Header.Revision, nil
}

// quiesce waits until the server is done with the work a measurement left
// it: etcd's revision has not changed for e.quietFor, and the process has
// been idle meanwhile (the registry may take a while to react to a
// thousand deletions before it writes anything). It returns when the
// revision last changed.
func (e *env) quiesce(ctx context.Context) (quiet, error) {
	var (
		q quiet
		// The idle window: since when the process's CPU time is counted.
		since    time.Time
		cpuSince time.Duration
	)
	deadline := time.Now().Add(settleTimeout)
	for polls := 1; ; polls++ {
		rev, err := e.revision(ctx)
		if err != nil {
			return q, err
		}
		cpu, err := harness.CPUTime()
		if err != nil {
			return q, err
		}
		now := time.Now()
		q.polls = polls
		switch {
		case rev != q.rev:
			q = quiet{rev: rev, at: now, cpu: cpu, polls: polls}
			since, cpuSince = now, cpu
		case now.Sub(since) >= e.quietFor:
			if float64(cpu-cpuSince) < idleCPU*float64(now.Sub(since)) {
				return q, nil
			}
			// Busy without writing: measure the next window.
			since, cpuSince = now, cpu
		}
		if now.After(deadline) {
			return q, fmt.Errorf("the server still busy after %v (etcd at revision %d)", settleTimeout, rev)
		}
		select {
		case <-time.After(25 * time.Millisecond):
		case <-ctx.Done():
			return q, ctx.Err()
		}
	}
}

// etcdCounts are counters of the embedded etcd, which runs in this
// process and registers its metrics with Prometheus's default registry.
type etcdCounts struct {
	// reads are Range requests served (linearizable reads cost a round of
	// the raft leader's read index, no disk write).
	reads float64
	// proposals are raft entries committed: every write, including a
	// transaction whose compare failed, a lease grant or revoke, each
	// written to the WAL with an fsync.
	proposals float64
}

func (c etcdCounts) sub(o etcdCounts) etcdCounts {
	return etcdCounts{reads: c.reads - o.reads, proposals: c.proposals - o.proposals}
}

func readEtcdCounts() (etcdCounts, error) {
	mfs, err := prometheus.DefaultGatherer.Gather()
	if err != nil {
		return etcdCounts{}, fmt.Errorf("reading etcd's metrics: %w", err)
	}
	var c etcdCounts
	for _, mf := range mfs {
		switch mf.GetName() {
		case "grpc_server_handled_total":
			for _, m := range mf.GetMetric() {
				for _, l := range m.GetLabel() {
					if l.GetName() == "grpc_method" && l.GetValue() == "Range" {
						c.reads += m.GetCounter().GetValue()
					}
				}
			}
		case "etcd_server_proposals_committed_total":
			for _, m := range mf.GetMetric() {
				c.proposals += m.GetGauge().GetValue()
			}
		}
	}
	return c, nil
}

// idleCPU is the share of one core under which the process counts as
// idle; idleWindow the interval over which it is measured.
const (
	idleCPU    = 0.10
	idleWindow = 100 * time.Millisecond
)

// awaitIdle waits until this process (etcd, server and load generator)
// spends less than idleCPU of a core over idleWindow: the requests just
// sent have been taken in and every waiter is parked.
func awaitIdle(ctx context.Context) error {
	deadline := time.Now().Add(settleTimeout)
	prev, err := harness.CPUTime()
	if err != nil {
		return err
	}
	for {
		start := time.Now()
		select {
		case <-time.After(idleWindow):
		case <-ctx.Done():
			return ctx.Err()
		}
		cpu, err := harness.CPUTime()
		if err != nil {
			return err
		}
		if float64(cpu-prev) < idleCPU*float64(time.Since(start)) {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the process did not go idle within %v", settleTimeout)
		}
		prev = cpu
	}
}

// raiseFileLimit makes sure the process may open need file descriptors,
// and says what to do when the hard limit is too low.
func raiseFileLimit(need uint64) error {
	hard, err := harness.RaiseFileLimit(need)
	if err == nil && hard < need {
		err = fmt.Errorf("this run needs about %d open files but the hard limit is %d: raise it (ulimit -Hn) or pass fewer -waiters", need, hard)
	}
	return err
}
