package xds

import (
	"context"
	"net"
	"strings"
	"testing"
	"time"

	cluster "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	grpcstatus "google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"
)

// startServer runs an ADS server on loopback and returns it with a client
// connection to it.
func startServer(t *testing.T) (*Server, *grpc.ClientConn) {
	t.Helper()
	s := NewServer(ServerOptions{})
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx, lis) }()
	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		conn.Close()
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	})
	return s, conn
}

// clusters builds a snapshot of clusters, each named and with a connect
// timeout in seconds (changing it changes the cluster's version).
func clusters(t *testing.T, timeouts map[string]int64) *Snapshot {
	t.Helper()
	snap := NewSnapshot()
	for name, secs := range timeouts {
		r, err := NewResource(name, &cluster.Cluster{Name: name, ConnectTimeout: durationpb.New(time.Duration(secs) * time.Second)})
		if err != nil {
			t.Fatal(err)
		}
		snap.Add(ClusterType, r)
	}
	return snap
}

type sotwClient struct {
	t      *testing.T
	stream discovery.AggregatedDiscoveryService_StreamAggregatedResourcesClient
	node   *core.Node
	resps  chan *discovery.DiscoveryResponse
	errs   chan error
}

func newSotw(t *testing.T, conn *grpc.ClientConn, nodeID string) *sotwClient {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	stream, err := discovery.NewAggregatedDiscoveryServiceClient(conn).StreamAggregatedResources(ctx)
	if err != nil {
		t.Fatal(err)
	}
	c := &sotwClient{t: t, stream: stream, node: &core.Node{Id: nodeID, UserAgentName: "test-client"},
		resps: make(chan *discovery.DiscoveryResponse, 16), errs: make(chan error, 1)}
	go func() {
		for {
			resp, err := stream.Recv()
			if err != nil {
				c.errs <- err
				return
			}
			c.resps <- resp
		}
	}()
	return c
}

func (c *sotwClient) send(req *discovery.DiscoveryRequest) {
	c.t.Helper()
	req.Node = c.node
	if req.TypeUrl == "" {
		req.TypeUrl = ClusterType
	}
	if err := c.stream.Send(req); err != nil {
		c.t.Fatal(err)
	}
}

func (c *sotwClient) recv() *discovery.DiscoveryResponse {
	c.t.Helper()
	select {
	case r := <-c.resps:
		return r
	case err := <-c.errs:
		c.t.Fatalf("stream ended: %v", err)
	case <-time.After(5 * time.Second):
		c.t.Fatal("no response within 5s")
	}
	return nil
}

// quiet checks that no response comes for a while.
func (c *sotwClient) quiet(d time.Duration) {
	c.t.Helper()
	select {
	case r := <-c.resps:
		c.t.Fatalf("unexpected response version %s with %d resources", r.VersionInfo, len(r.Resources))
	case <-time.After(d):
	}
}

func names(resp *discovery.DiscoveryResponse) string {
	var out []string
	for _, a := range resp.Resources {
		var c cluster.Cluster
		if err := a.UnmarshalTo(&c); err == nil {
			out = append(out, c.Name)
		}
	}
	return strings.Join(out, ",")
}

func TestSotwSendsOnlyChanges(t *testing.T) {
	s, conn := startServer(t)
	s.Cache.SetSnapshot(clusters(t, map[string]int64{"a": 1, "b": 1, "c": 1}), time.Time{})
	c := newSotw(t, conn, "node-1")

	c.send(&discovery.DiscoveryRequest{ResourceNames: []string{"a", "b"}})
	r := c.recv()
	if names(r) != "a,b" {
		t.Fatalf("first response holds %q, want a,b (only what was asked for)", names(r))
	}
	c.send(&discovery.DiscoveryRequest{ResourceNames: []string{"a", "b"}, VersionInfo: r.VersionInfo, ResponseNonce: r.Nonce})
	c.quiet(200 * time.Millisecond) // an ACK gets no answer

	// A change to a cluster the client does not watch is not sent.
	s.Cache.SetSnapshot(clusters(t, map[string]int64{"a": 1, "b": 1, "c": 2}), time.Time{})
	c.quiet(200 * time.Millisecond)

	s.Cache.SetSnapshot(clusters(t, map[string]int64{"a": 2, "b": 1, "c": 2}), time.Time{})
	r2 := c.recv()
	if names(r2) != "a,b" || r2.VersionInfo == r.VersionInfo {
		t.Fatalf("after a change: %q version %s (was %s)", names(r2), r2.VersionInfo, r.VersionInfo)
	}

	// NACK: the client keeps its old version; the server does not resend.
	c.send(&discovery.DiscoveryRequest{ResourceNames: []string{"a", "b"}, VersionInfo: r.VersionInfo, ResponseNonce: r2.Nonce,
		ErrorDetail: &status.Status{Code: int32(codes.InvalidArgument), Message: "cluster a: bad timeout"}})
	c.quiet(300 * time.Millisecond)

	// The proxy shows as NACKed with the client's text.
	ps := s.Proxies.List()
	if len(ps) != 1 || ps[0].Node != "node-1" || ps[0].Client != "test-client" {
		t.Fatalf("proxies: %+v", ps)
	}
	cds := ps[0].Types["CDS"]
	if cds.State != NACKed || cds.LastNACK == nil || cds.LastNACK.Error != "cluster a: bad timeout" || cds.LastNACK.Version != r2.VersionInfo || cds.Acked != r.VersionInfo {
		t.Fatalf("CDS status %+v (nack %+v)", cds, cds.LastNACK)
	}

	// The next change is sent, and its ACK syncs the proxy.
	s.Cache.SetSnapshot(clusters(t, map[string]int64{"a": 3, "b": 1}), time.Time{})
	r3 := c.recv()
	c.send(&discovery.DiscoveryRequest{ResourceNames: []string{"a", "b"}, VersionInfo: r3.VersionInfo, ResponseNonce: r3.Nonce})
	deadline := time.Now().Add(5 * time.Second)
	for s.Proxies.List()[0].Types["CDS"].State != Synced {
		if time.Now().After(deadline) {
			t.Fatalf("CDS not SYNCED after an ACK: %+v", s.Proxies.List()[0].Types["CDS"])
		}
		time.Sleep(10 * time.Millisecond)
	}

	// Subscribing to more names answers at once with the new set.
	c.send(&discovery.DiscoveryRequest{ResourceNames: []string{"a", "b", "c"}, VersionInfo: r3.VersionInfo, ResponseNonce: r3.Nonce})
	if r4 := c.recv(); names(r4) != "a,b" {
		t.Fatalf("c was deleted; response holds %q", names(r4))
	}
}

func TestSotwUnknownResourcesAnswerOnceEmpty(t *testing.T) {
	s, conn := startServer(t)
	s.Cache.SetSnapshot(clusters(t, map[string]int64{"a": 1}), time.Time{})
	c := newSotw(t, conn, "node-1")
	c.send(&discovery.DiscoveryRequest{ResourceNames: []string{"missing"}})
	r := c.recv()
	if len(r.Resources) != 0 {
		t.Fatalf("response for an unknown name holds %d resources", len(r.Resources))
	}
	for range 5 {
		c.send(&discovery.DiscoveryRequest{ResourceNames: []string{"missing"}, VersionInfo: r.VersionInfo, ResponseNonce: r.Nonce})
	}
	c.quiet(300 * time.Millisecond)
	// It appears later: sent.
	s.Cache.SetSnapshot(clusters(t, map[string]int64{"a": 1, "missing": 1}), time.Time{})
	if r2 := c.recv(); names(r2) != "missing" {
		t.Fatalf("got %q, want the resource once it exists", names(r2))
	}
}

func TestNodeWithoutIDIsRefused(t *testing.T) {
	_, conn := startServer(t)
	c := newSotw(t, conn, "")
	c.send(&discovery.DiscoveryRequest{ResourceNames: []string{"a"}})
	select {
	case err := <-c.errs:
		if grpcstatus.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "node id") {
			t.Fatalf("error %v, want InvalidArgument naming the node id", err)
		}
	case r := <-c.resps:
		t.Fatalf("a node without id got a response: %v", r)
	case <-time.After(5 * time.Second):
		t.Fatal("stream of a node without id not closed")
	}
}

func TestMalformedRequestClosesOnlyItsStream(t *testing.T) {
	s, conn := startServer(t)
	s.Cache.SetSnapshot(clusters(t, map[string]int64{"a": 1}), time.Time{})
	good := newSotw(t, conn, "good")
	bad := newSotw(t, conn, "bad")
	good.send(&discovery.DiscoveryRequest{ResourceNames: []string{"a"}})
	r := good.recv()
	bad.node = &core.Node{Id: "bad"}
	if err := bad.stream.Send(&discovery.DiscoveryRequest{Node: bad.node}); err != nil { // no type URL on ADS
		t.Fatal(err)
	}
	select {
	case err := <-bad.errs:
		if grpcstatus.Code(err) != codes.InvalidArgument {
			t.Fatalf("bad stream error %v, want InvalidArgument", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("malformed request did not close its stream")
	}
	good.send(&discovery.DiscoveryRequest{ResourceNames: []string{"a"}, VersionInfo: r.VersionInfo, ResponseNonce: r.Nonce})
	s.Cache.SetSnapshot(clusters(t, map[string]int64{"a": 2}), time.Time{})
	if names(good.recv()) != "a" {
		t.Fatal("the good stream stopped working")
	}
}

type deltaClient struct {
	t      *testing.T
	stream discovery.AggregatedDiscoveryService_DeltaAggregatedResourcesClient
	resps  chan *discovery.DeltaDiscoveryResponse
}

func newDelta(t *testing.T, conn *grpc.ClientConn) *deltaClient {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	stream, err := discovery.NewAggregatedDiscoveryServiceClient(conn).DeltaAggregatedResources(ctx)
	if err != nil {
		t.Fatal(err)
	}
	c := &deltaClient{t: t, stream: stream, resps: make(chan *discovery.DeltaDiscoveryResponse, 16)}
	go func() {
		for {
			resp, err := stream.Recv()
			if err != nil {
				close(c.resps)
				return
			}
			c.resps <- resp
		}
	}()
	return c
}

func (c *deltaClient) send(req *discovery.DeltaDiscoveryRequest) {
	c.t.Helper()
	req.Node = &core.Node{Id: "delta-node"}
	req.TypeUrl = ClusterType
	if err := c.stream.Send(req); err != nil {
		c.t.Fatal(err)
	}
}

func (c *deltaClient) recv() *discovery.DeltaDiscoveryResponse {
	c.t.Helper()
	select {
	case r, ok := <-c.resps:
		if !ok {
			c.t.Fatal("delta stream ended")
		}
		return r
	case <-time.After(5 * time.Second):
		c.t.Fatal("no delta response within 5s")
	}
	return nil
}

func (c *deltaClient) quiet(d time.Duration) {
	c.t.Helper()
	select {
	case r := <-c.resps:
		c.t.Fatalf("unexpected delta response %v", r)
	case <-time.After(d):
	}
}

func (c *deltaClient) ack(r *discovery.DeltaDiscoveryResponse) {
	c.t.Helper()
	c.send(&discovery.DeltaDiscoveryRequest{ResponseNonce: r.Nonce})
}

func deltaNames(r *discovery.DeltaDiscoveryResponse) (changed, removed string) {
	var ch []string
	for _, res := range r.Resources {
		ch = append(ch, res.Name)
	}
	return strings.Join(ch, ","), strings.Join(r.RemovedResources, ",")
}

func TestDelta(t *testing.T) {
	s, conn := startServer(t)
	s.Cache.SetSnapshot(clusters(t, map[string]int64{"a": 1, "b": 1, "c": 1}), time.Time{})
	c := newDelta(t, conn)

	c.send(&discovery.DeltaDiscoveryRequest{ResourceNamesSubscribe: []string{"a", "b"}})
	r := c.recv()
	if ch, rm := deltaNames(r); ch != "a,b" || rm != "" {
		t.Fatalf("subscribe: changed %q removed %q", ch, rm)
	}
	versionA := r.Resources[0].Version
	c.ack(r)
	c.quiet(200 * time.Millisecond)

	// Only the changed resource is sent.
	s.Cache.SetSnapshot(clusters(t, map[string]int64{"a": 1, "b": 2, "c": 1}), time.Time{})
	r = c.recv()
	if ch, rm := deltaNames(r); ch != "b" || rm != "" {
		t.Fatalf("change of b: changed %q removed %q", ch, rm)
	}
	c.ack(r)

	// Unsubscribe b: its changes are no longer sent.
	c.send(&discovery.DeltaDiscoveryRequest{ResourceNamesUnsubscribe: []string{"b"}})
	c.quiet(200 * time.Millisecond)
	s.Cache.SetSnapshot(clusters(t, map[string]int64{"a": 1, "b": 3, "c": 1}), time.Time{})
	c.quiet(200 * time.Millisecond)

	// A subscribed resource that goes away is reported removed.
	s.Cache.SetSnapshot(clusters(t, map[string]int64{"b": 3, "c": 1}), time.Time{})
	r = c.recv()
	if ch, rm := deltaNames(r); ch != "" || rm != "a" {
		t.Fatalf("removal of a: changed %q removed %q", ch, rm)
	}
	c.ack(r)

	// A NACK is not answered with the same content again.
	s.Cache.SetSnapshot(clusters(t, map[string]int64{"a": 5, "b": 3, "c": 1}), time.Time{})
	r = c.recv()
	c.send(&discovery.DeltaDiscoveryRequest{ResponseNonce: r.Nonce, ErrorDetail: &status.Status{Message: "rejected"}})
	c.quiet(300 * time.Millisecond)
	if ts := s.Proxies.List()[0].Types["CDS"]; ts.State != NACKed || ts.LastNACK.Error != "rejected" {
		t.Fatalf("delta NACK status %+v", ts)
	}

	// A new stream that says what it has is sent only the difference.
	c2 := newDelta(t, conn)
	c2.send(&discovery.DeltaDiscoveryRequest{
		ResourceNamesSubscribe:  []string{"a", "c"},
		InitialResourceVersions: map[string]string{"a": versionA, "c": s.Cache.Snapshot().resources[ClusterType]["c"].Version},
	})
	r = c2.recv()
	if ch, rm := deltaNames(r); ch != "a" || rm != "" {
		t.Fatalf("reconnect with initial versions: changed %q removed %q, want only a (c is current)", ch, rm)
	}
}

// TestNothingBeforeTheFirstSnapshot: a proxy that connects before the
// server's first translation (a server that has just restarted) is sent
// nothing until it, rather than an empty config; then it gets what it asked
// for, also a name the snapshot lacks (answered empty).
func TestNothingBeforeTheFirstSnapshot(t *testing.T) {
	s, conn := startServer(t)
	c := newSotw(t, conn, "node-1")
	c.send(&discovery.DiscoveryRequest{ResourceNames: []string{"a", "missing"}})
	wild := newSotw(t, conn, "node-2")
	wild.send(&discovery.DiscoveryRequest{TypeUrl: ClusterType})
	c.quiet(300 * time.Millisecond)
	wild.quiet(0)

	s.Cache.SetSnapshot(clusters(t, map[string]int64{"a": 1, "b": 1}), time.Time{})
	if r := c.recv(); names(r) != "a" {
		t.Errorf("after the first snapshot: %q, want a", names(r))
	}
	if r := wild.recv(); names(r) != "a,b" {
		t.Errorf("wildcard after the first snapshot: %q, want a,b", names(r))
	}

	other := newSotw(t, conn, "node-3")
	other.send(&discovery.DiscoveryRequest{ResourceNames: []string{"missing"}})
	if r := other.recv(); len(r.Resources) != 0 {
		t.Errorf("a name the snapshot lacks: %d resources, want an empty answer", len(r.Resources))
	}
}
