package xds

import (
	"context"
	"log/slog"
	"net"
	"time"

	discoverygrpc "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	sotw "github.com/envoyproxy/go-control-plane/pkg/server/sotw/v3"
	serverv3 "github.com/envoyproxy/go-control-plane/pkg/server/v3"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	"google.golang.org/grpc/keepalive"
)

// ServerOptions configure the ADS server.
type ServerOptions struct {
	Logger *slog.Logger
	// Registerer receives the xDS metrics (none when nil).
	Registerer prometheus.Registerer
}

// Server is the ADS endpoint: State-of-the-World and Delta streams served
// from a Cache, every stream tracked in Proxies.
type Server struct {
	Cache   *Cache
	Proxies *Proxies

	log     *slog.Logger
	metrics *metrics
}

// NewServer returns an ADS server with an empty cache.
func NewServer(opts ServerOptions) *Server {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	m := newMetrics(opts.Registerer)
	return &Server{
		Cache:   NewCache(opts.Logger, m),
		Proxies: NewProxies(m),
		log:     opts.Logger,
		metrics: m,
	}
}

// Serve answers ADS on lis until ctx ends, then ends every stream and stops.
func (s *Server) Serve(ctx context.Context, lis net.Listener) error {
	streams, stopStreams := context.WithCancel(context.Background())
	defer stopStreams()
	gs := grpc.NewServer(
		// A proxy reconnects when the server goes; these keep dead peers
		// from holding streams and let clients keep idle streams alive.
		grpc.KeepaliveParams(keepalive.ServerParameters{Time: 30 * time.Second, Timeout: 10 * time.Second}),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 10 * time.Second, PermitWithoutStream: true}),
		// Small per-connection buffers: thousands of mostly idle proxies
		// should cost little memory each.
		grpc.ReadBufferSize(8<<10),
		grpc.WriteBufferSize(8<<10),
	)
	// Ordered ADS: one response channel per stream, answered in the order
	// the cache hands responses out (clusters before routes, as Envoy
	// wants), and no reflect.Select over a channel per type.
	discoverygrpc.RegisterAggregatedDiscoveryServiceServer(gs, serverv3.NewServer(streams, s.Cache, s.Proxies, sotw.WithOrderedADS()))
	errc := make(chan error, 1)
	go func() { errc <- gs.Serve(lis) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	// Streams never end by themselves: end them, then stop gracefully.
	stopStreams()
	done := make(chan struct{})
	go func() {
		gs.GracefulStop()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		gs.Stop()
	}
	return nil
}
