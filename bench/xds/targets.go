package main

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"time"

	discoverygrpc "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	serverv3 "github.com/envoyproxy/go-control-plane/pkg/server/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/keepalive"

	"github.com/sluice/sluice/internal/client"
	"github.com/sluice/sluice/internal/resource"
	"github.com/sluice/sluice/internal/server"
)

// Names of the servers under test.
const (
	targetSluice        = "sluice"
	targetSnapshotCache = "snapshotcache"
)

func targetTitle(name string) string {
	if name == targetSnapshotCache {
		return "SnapshotCache"
	}
	return "Sluice"
}

// A target is an xDS server under test, serving the scenario.
type target interface {
	// addr is where it serves ADS.
	addr() string
	// addNodes prepares for clients with these node ids to connect.
	addNodes(ids []string) error
	// change sets the weight of the scenario's changed Endpoint and returns
	// the time convergence is measured from (CLOCK_MONOTONIC ns).
	change(ctx context.Context, w int32) (int64, error)
	// stop stops the server.
	stop() error
}

// sluiceTarget is a whole Sluice server (server.New, as `sluice server`
// runs it) over the run's etcd. A change is a PUT of the Endpoint through
// the REST API; it is measured from the moment the PUT returns, so the
// store's watch, the informers, the debounce window, the translation and
// the push are all in the measured time.
type sluiceTarget struct {
	sc      *scenario
	api     *client.Client
	xdsAddr string
	cancel  context.CancelFunc
	done    chan error
}

func startSluice(etcdEndpoint string, sc *scenario, debounce time.Duration, log *slog.Logger) (*sluiceTarget, error) {
	ctx, cancel := context.WithCancel(context.Background())
	srv := server.New(server.Config{
		EtcdEndpoints:     []string{etcdEndpoint},
		HTTPAddr:          "127.0.0.1:0",
		XDSAddr:           "127.0.0.1:0",
		XDSDebounceWindow: debounce,
		Logger:            log,
	})
	t := &sluiceTarget{sc: sc, cancel: cancel, done: make(chan error, 1)}
	go func() { t.done <- srv.Run(ctx) }()
	select {
	case <-srv.Ready():
	case err := <-t.done:
		cancel()
		return nil, fmt.Errorf("sluice server: %w", err)
	case <-time.After(60 * time.Second):
		cancel()
		return nil, fmt.Errorf("sluice server not ready after 60s")
	}
	t.xdsAddr = srv.XDSAddr()
	var err error
	if t.api, err = client.New("http://"+srv.HTTPAddr(), ""); err != nil {
		t.stop()
		return nil, err
	}
	return t, nil
}

func (t *sluiceTarget) addr() string { return t.xdsAddr }

// addNodes does nothing: Sluice serves any node the same snapshot.
func (t *sluiceTarget) addNodes([]string) error { return nil }

func (t *sluiceTarget) change(ctx context.Context, w int32) (int64, error) {
	ep := t.sc.withWeight(w)
	out := &resource.Endpoint{}
	if err := t.api.Update(ctx, client.ResourceOf(resource.EndpointKind), namespace, ep.Name, ep, out, false); err != nil {
		return 0, fmt.Errorf("updating Endpoint %s: %w", ep.Name, err)
	}
	at := monoNow()
	t.sc.endpoints[0] = out
	return at, nil
}

func (t *sluiceTarget) stop() error {
	t.cancel()
	return <-t.done
}

// grpcServerOptions are the options internal/xds.Server.Serve gives its
// gRPC server: the baseline gets the same, so that what differs is the
// xDS server and its cache, not gRPC's buffer sizes.
func grpcServerOptions() []grpc.ServerOption {
	return []grpc.ServerOption{
		grpc.KeepaliveParams(keepalive.ServerParameters{Time: 30 * time.Second, Timeout: 10 * time.Second}),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 10 * time.Second, PermitWithoutStream: true}),
		grpc.ReadBufferSize(8 << 10),
		grpc.WriteBufferSize(8 << 10),
	}
}

// snapshotCacheTarget is a plain go-control-plane ADS server
// (server/v3.NewServer, no callbacks) over cache.NewSnapshotCache in ADS
// mode, built as go-control-plane's documentation and example build one.
// SnapshotCache keeps a snapshot per node id: every node gets its snapshot
// with SetSnapshot, and a change is SetSnapshot of the new snapshot for
// every node, in a loop, as a go-control-plane user does it. All nodes
// share one Snapshot value (their content is the same), the cheapest way
// to use it. Consistent() is not called: it misreports API listeners.
//
// A change starts with the translation (Sluice's Translate on the changed
// objects, the baseline's equivalent of building its resources) and is
// measured from its start: the baseline has no store, no watch and no
// debounce window.
type snapshotCacheTarget struct {
	sc     *scenario
	cache  cache.SnapshotCache
	snap   *cache.Snapshot
	nodes  []string
	lis    net.Listener
	gs     *grpc.Server
	cancel context.CancelFunc
	done   chan error
}

func startSnapshotCache(sc *scenario, grpcDefaults bool) (*snapshotCacheTarget, error) {
	v, err := sc.view(sc.weight())
	if err != nil {
		return nil, err
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	t := &snapshotCacheTarget{
		sc:     sc,
		cache:  cache.NewSnapshotCache(true, cache.IDHash{}, nil),
		snap:   v.snapshotCacheSnapshot(),
		lis:    lis,
		cancel: cancel,
		done:   make(chan error, 1),
	}
	var opts []grpc.ServerOption
	if !grpcDefaults {
		opts = grpcServerOptions()
	}
	t.gs = grpc.NewServer(opts...)
	discoverygrpc.RegisterAggregatedDiscoveryServiceServer(t.gs, serverv3.NewServer(ctx, t.cache, nil))
	go func() { t.done <- t.gs.Serve(lis) }()
	return t, nil
}

func (t *snapshotCacheTarget) addr() string { return t.lis.Addr().String() }

func (t *snapshotCacheTarget) addNodes(ids []string) error {
	for _, id := range ids {
		if err := t.cache.SetSnapshot(context.Background(), id, t.snap); err != nil {
			return fmt.Errorf("SetSnapshot %s: %w", id, err)
		}
	}
	t.nodes = append(t.nodes, ids...)
	return nil
}

func (t *snapshotCacheTarget) change(ctx context.Context, w int32) (int64, error) {
	at := monoNow()
	v, err := t.sc.view(w)
	if err != nil {
		return 0, err
	}
	t.snap = v.snapshotCacheSnapshot()
	for _, id := range t.nodes {
		if err := t.cache.SetSnapshot(ctx, id, t.snap); err != nil {
			return 0, fmt.Errorf("SetSnapshot %s: %w", id, err)
		}
	}
	return at, nil
}

func (t *snapshotCacheTarget) stop() error {
	// go-control-plane's streams end when the server's context does.
	t.cancel()
	stopped := make(chan struct{})
	go func() {
		t.gs.GracefulStop()
		close(stopped)
	}()
	select {
	case <-stopped:
	case <-time.After(5 * time.Second):
		t.gs.Stop()
	}
	return <-t.done
}
