package gateway

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	statuspb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/types/known/anypb"
)

// updateFunc applies the resources of one type from a response; it returns
// the names of RDS, CDS, EDS and SDS to subscribe to, or why the resources cannot be
// applied (the response is then NACKed with that text).
type updateFunc func(typeURL, version string, resources []*anypb.Any) (map[string][]string, error)

// xdsClient speaks ADS, State of the World, over one gRPC stream: LDS as a
// wildcard (the server scopes it to the node's Gateway), RDS, CDS and EDS
// by the names the accepted listeners, routes and clusters use (as
// proxyless gRPC does; Envoy asks CDS as a wildcard). It reconnects
// with backoff; what it accepted stays in force meanwhile.
type xdsClient struct {
	addr    string
	node    *corev3.Node
	log     *slog.Logger
	update  updateFunc
	metrics *metrics

	// Owned by the run goroutine.
	versions map[string]string   // accepted version per type
	names    map[string][]string // subscribed names of the named types
}

// wildcardTypes are asked for with no names; namedTypes by name, once a
// listener, a route or a cluster refers to some.
var (
	wildcardTypes = []string{ListenerType}
	namedTypes    = []string{RouteType, ClusterType, EndpointType, SecretType}
)

func newXDSClient(addr string, node *corev3.Node, log *slog.Logger, update updateFunc, m *metrics) *xdsClient {
	return &xdsClient{addr: addr, node: node, log: log, update: update, metrics: m,
		versions: map[string]string{}, names: map[string][]string{}}
}

// run keeps a stream open until ctx ends.
func (c *xdsClient) run(ctx context.Context) error {
	conn, err := grpc.NewClient(c.addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return fmt.Errorf("gateway: xds client %s: %w", c.addr, err)
	}
	defer conn.Close()
	const minBackoff, maxBackoff = 100 * time.Millisecond, 5 * time.Second
	backoff := minBackoff
	for {
		start := time.Now()
		err := c.stream(ctx, conn)
		if ctx.Err() != nil {
			return nil
		}
		if time.Since(start) > 10*time.Second {
			backoff = minBackoff
		}
		wait := backoff/2 + rand.N(backoff/2+1)
		c.log.Warn("xds stream ended, serving the last good config", "server", c.addr, "err", err, "retry_in", wait.Round(time.Millisecond))
		select {
		case <-time.After(wait):
		case <-ctx.Done():
			return nil
		}
		backoff = min(backoff*2, maxBackoff)
	}
}

// stream runs one ADS stream until it fails.
func (c *xdsClient) stream(ctx context.Context, conn *grpc.ClientConn) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	st, err := discoveryv3.NewAggregatedDiscoveryServiceClient(conn).StreamAggregatedResources(ctx)
	if err != nil {
		return err
	}
	nonces := map[string]string{}
	send := func(typeURL string, nack error) error {
		req := &discoveryv3.DiscoveryRequest{
			Node:          c.node,
			TypeUrl:       typeURL,
			ResourceNames: c.names[typeURL],
			VersionInfo:   c.versions[typeURL],
			ResponseNonce: nonces[typeURL],
		}
		if nack != nil {
			req.ErrorDetail = &statuspb.Status{Code: int32(codes.InvalidArgument), Message: nack.Error()}
		}
		c.log.Debug("xds request", "type", typeNames[typeURL], "names", len(req.ResourceNames), "version", req.VersionInfo, "nonce", req.ResponseNonce, "nack", nack != nil)
		return st.Send(req)
	}
	for _, t := range wildcardTypes {
		if err := send(t, nil); err != nil {
			return err
		}
	}
	for _, t := range namedTypes {
		if len(c.names[t]) > 0 {
			if err := send(t, nil); err != nil {
				return err
			}
		}
	}
	for {
		resp, err := st.Recv()
		if err != nil {
			return err
		}
		t := resp.GetTypeUrl()
		c.log.Debug("xds response", "type", typeNames[t], "resources", len(resp.GetResources()), "version", resp.GetVersionInfo(), "nonce", resp.GetNonce())
		nonces[t] = resp.GetNonce()
		subs, err := c.update(t, resp.GetVersionInfo(), resp.GetResources())
		if err != nil {
			c.metrics.updates.WithLabelValues(typeNames[t], "nack").Inc()
			c.log.Warn("xds config rejected", "type", typeNames[t], "version", resp.GetVersionInfo(), "err", err)
			if err := send(t, err); err != nil {
				return err
			}
			continue
		}
		c.metrics.updates.WithLabelValues(typeNames[t], "ack").Inc()
		c.versions[t] = resp.GetVersionInfo()
		if err := send(t, nil); err != nil {
			return err
		}
		for _, nt := range namedTypes {
			names, ok := subs[nt]
			if !ok || slices.Equal(names, c.names[nt]) {
				continue
			}
			c.names[nt] = names
			if err := send(nt, nil); err != nil {
				return err
			}
		}
	}
}
