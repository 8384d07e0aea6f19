package main

import (
	"context"
	"fmt"
	"hash/fnv"
	"maps"
	"slices"
	"strconv"
	"sync"
	"time"

	cluster "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpoint "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listener "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	route "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	hcm "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"golang.org/x/sys/unix"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/proto"

	"github.com/sluice/sluice/internal/xds"
)

// A simulated client behaves like a proxyless gRPC client of one service
// (grpc-go's xDS client, State of the World; or the same walk over Delta):
// on its own gRPC connection it opens one ADS stream, subscribes by name to
// the Listener it dials, then to the RouteConfiguration, Clusters and
// ClusterLoadAssignments the responses reference, and ACKs every response
// (State of the World: version_info and response_nonce; Delta:
// response_nonce). After each ACK it records, in its fleet, what it now
// holds of that type and when the ACK went out.

// Protocols.
const (
	sotw  = "sotw"
	delta = "delta"
)

// chain is the order in which a client learns names: each type's resources
// name the resources of the next.
var chain = []string{xds.ListenerType, xds.RouteType, xds.ClusterType, xds.EndpointType}

func nextType(typeURL string) string {
	i := slices.Index(chain, typeURL)
	if i < 0 || i == len(chain)-1 {
		return ""
	}
	return chain[i+1]
}

func shortType(typeURL string) string {
	switch typeURL {
	case xds.ListenerType:
		return "LDS"
	case xds.RouteType:
		return "RDS"
	case xds.ClusterType:
		return "CDS"
	case xds.EndpointType:
		return "EDS"
	}
	return typeURL
}

// state is what a client holds when in sync: per type URL, the digest of
// the names and contents of its resources of that type (typeDigest).
type state map[string]uint64

// matches says whether held has every type of want with the same digest.
func (want state) matches(held state) bool {
	for t, d := range want {
		if h, ok := held[t]; !ok || h != d {
			return false
		}
	}
	return true
}

// typeDigest hashes a set of resources of one type: their names and the
// hashes of their serialized contents, in name order.
func typeDigest(held map[string]*resInfo) uint64 {
	names := make([]string, 0, len(held))
	for n := range held {
		names = append(names, n)
	}
	slices.Sort(names)
	h := fnv.New64a()
	var buf [8]byte
	for _, n := range names {
		h.Write([]byte(n))
		h.Write([]byte{0})
		v := held[n].hash
		for i := range buf {
			buf[i] = byte(v >> (8 * i))
		}
		h.Write(buf[:])
	}
	return h.Sum64()
}

// resInfo is what a client needs of one serialized resource.
type resInfo struct {
	name string
	hash uint64 // FNV-1a of the serialized resource
	// refs are the names of the next type in the chain it refers to.
	refs []string
}

// memo decodes each distinct serialized resource once for all the clients
// of a process, so that thousands of simulated clients cost the machine
// little CPU beyond their gRPC connections: the server under test shares
// the same cores.
type memo struct {
	mu sync.RWMutex                   // guards m
	m  map[string]map[string]*resInfo // by type URL, then serialized bytes
}

func newMemo() *memo { return &memo{m: map[string]map[string]*resInfo{}} }

func (m *memo) get(typeURL string, value []byte) (*resInfo, error) {
	m.mu.RLock()
	info := m.m[typeURL][string(value)]
	m.mu.RUnlock()
	if info != nil {
		return info, nil
	}
	info, err := decode(typeURL, value)
	if err != nil {
		return nil, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.m[typeURL] == nil {
		m.m[typeURL] = map[string]*resInfo{}
	}
	m.m[typeURL][string(value)] = info
	return info, nil
}

// decode reads a resource's name and the names it refers to, the way
// grpc-go's xDS client follows them: the Listener's HttpConnectionManager
// names its RouteConfiguration (RDS), routes name clusters, an EDS cluster
// names its ClusterLoadAssignment.
func decode(typeURL string, value []byte) (*resInfo, error) {
	h := fnv.New64a()
	h.Write(value)
	info := &resInfo{hash: h.Sum64()}
	switch typeURL {
	case xds.ListenerType:
		var l listener.Listener
		if err := proto.Unmarshal(value, &l); err != nil {
			return nil, fmt.Errorf("decode Listener: %w", err)
		}
		info.name = l.GetName()
		var m hcm.HttpConnectionManager
		if err := l.GetApiListener().GetApiListener().UnmarshalTo(&m); err != nil {
			return nil, fmt.Errorf("listener %s: not an API listener with an HttpConnectionManager: %w", info.name, err)
		}
		name := m.GetRds().GetRouteConfigName()
		if name == "" {
			return nil, fmt.Errorf("listener %s: no RDS route configuration name (inline routes are not simulated)", info.name)
		}
		info.refs = []string{name}
	case xds.RouteType:
		var rc route.RouteConfiguration
		if err := proto.Unmarshal(value, &rc); err != nil {
			return nil, fmt.Errorf("decode RouteConfiguration: %w", err)
		}
		info.name = rc.GetName()
		for _, vh := range rc.GetVirtualHosts() {
			for _, r := range vh.GetRoutes() {
				a := r.GetRoute()
				if c := a.GetCluster(); c != "" {
					info.refs = append(info.refs, c)
				}
				for _, wc := range a.GetWeightedClusters().GetClusters() {
					info.refs = append(info.refs, wc.GetName())
				}
			}
		}
		info.refs = sortedUnique(info.refs)
	case xds.ClusterType:
		var c cluster.Cluster
		if err := proto.Unmarshal(value, &c); err != nil {
			return nil, fmt.Errorf("decode Cluster: %w", err)
		}
		info.name = c.GetName()
		if c.GetType() == cluster.Cluster_EDS {
			name := c.GetEdsClusterConfig().GetServiceName()
			if name == "" {
				name = c.GetName()
			}
			info.refs = []string{name}
		}
	case xds.EndpointType:
		var cla endpoint.ClusterLoadAssignment
		if err := proto.Unmarshal(value, &cla); err != nil {
			return nil, fmt.Errorf("decode ClusterLoadAssignment: %w", err)
		}
		info.name = cla.GetClusterName()
	default:
		return nil, fmt.Errorf("unexpected resource type %s", typeURL)
	}
	return info, nil
}

func sortedUnique(names []string) []string {
	slices.Sort(names)
	return slices.Compact(names)
}

// monoNow reads CLOCK_MONOTONIC, which is one clock for every process of
// the machine: the server process and the clients' process compare times.
func monoNow() int64 {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		panic(err) // cannot fail on Linux
	}
	return ts.Nano()
}

// clientConfig is what a fleet of simulated clients is told.
type clientConfig struct {
	Addr     string `json:"addr"`
	N        int    `json:"n"`
	Protocol string `json:"protocol"`
	// NodePrefix is followed by the client's index to make its node id.
	NodePrefix string `json:"nodePrefix"`
	// Listener is the name every client dials (xds:///greeter.default).
	Listener string `json:"listener"`
	// Concurrency bounds the clients that are connecting at once (dialed
	// but without a first response yet), so the server's listen backlog
	// does not overflow into SYN retransmits.
	Concurrency int `json:"concurrency"`
}

// fleet is N simulated clients and what each one holds.
type fleet struct {
	cfg  clientConfig
	memo *memo

	mu   sync.Mutex // guards held, wait, err, responses
	held []state    // per client: what it has ACKed, by type
	wait *waiter
	// responses counts the responses every client received, by type.
	responses map[string]int
	err       error // the first client failure
	fail      chan struct{}

	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// waiter follows the clients until each has ACKed a wanted state.
type waiter struct {
	want state
	// times[i] is when client i sent the ACK that gave it want (CLOCK_MONOTONIC ns).
	times    []int64
	reached  int
	complete chan struct{}
}

func newFleet(cfg clientConfig) *fleet {
	f := &fleet{cfg: cfg, memo: newMemo(), held: make([]state, cfg.N), fail: make(chan struct{}), responses: map[string]int{}}
	for i := range f.held {
		f.held[i] = state{}
	}
	return f
}

// arm starts following the clients until each holds want. A client that
// already holds it counts as reaching it now.
func (f *fleet) arm(want state) *waiter {
	w := &waiter{want: want, times: make([]int64, f.cfg.N), complete: make(chan struct{})}
	now := monoNow()
	f.mu.Lock()
	defer f.mu.Unlock()
	for i, h := range f.held {
		if want.matches(h) {
			w.times[i] = now
			w.reached++
		}
	}
	if w.reached == f.cfg.N {
		close(w.complete)
	}
	f.wait = w
	return w
}

// responseCounts returns the responses received so far, by type.
func (f *fleet) responseCounts() map[string]int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return maps.Clone(f.responses)
}

// await waits until every client holds w's state, a client fails, ctx ends
// or timeout passes.
func (f *fleet) await(ctx context.Context, w *waiter, timeout time.Duration) ([]int64, error) {
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-w.complete:
		return w.times, nil
	case <-f.fail:
		f.mu.Lock()
		defer f.mu.Unlock()
		return nil, f.err
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-t.C:
		f.mu.Lock()
		defer f.mu.Unlock()
		return nil, fmt.Errorf("after %v, %d of %d clients had ACKed the expected resources; %s", timeout, w.reached, f.cfg.N, f.describeLocked(w.want))
	}
}

// describeLocked says, for a timeout, what the clients hold instead.
func (f *fleet) describeLocked(want state) string {
	counts := map[string]int{}
	for _, h := range f.held {
		var k string
		for _, t := range chain {
			if _, ok := want[t]; !ok {
				continue
			}
			mark := "missing"
			if d, ok := h[t]; ok {
				mark = "other"
				if d == want[t] {
					mark = "expected"
				}
			}
			k += shortType(t) + " " + mark + " "
		}
		counts[k]++
	}
	return fmt.Sprintf("what the clients hold: %v", counts)
}

// acked records that client i sent an ACK at time at, after which it holds
// resources of typeURL with this digest.
func (f *fleet) acked(i int, typeURL string, digest uint64, at int64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.responses[shortType(typeURL)]++
	h := f.held[i]
	h[typeURL] = digest
	w := f.wait
	if w == nil || w.times[i] != 0 || !w.want.matches(h) {
		return
	}
	w.times[i] = at
	w.reached++
	if w.reached == f.cfg.N {
		close(w.complete)
	}
}

func (f *fleet) failed(err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err == nil {
		f.err = err
		close(f.fail)
	}
}

// start connects the clients, at most cfg.Concurrency connecting at once.
// They run until stop.
func (f *fleet) start() {
	ctx, cancel := context.WithCancel(context.Background())
	f.cancel = cancel
	sem := make(chan struct{}, max(f.cfg.Concurrency, 1))
	f.wg.Go(func() {
		for i := range f.cfg.N {
			select {
			case sem <- struct{}{}:
			case <-ctx.Done():
				return
			}
			f.wg.Go(func() {
				var once sync.Once
				release := func() { once.Do(func() { <-sem }) }
				defer release()
				if err := f.run(ctx, i, release); err != nil && ctx.Err() == nil {
					f.failed(fmt.Errorf("client %d: %w", i, err))
				}
			})
		}
	})
}

// stop ends every client and waits for them.
func (f *fleet) stop() {
	if f.cancel != nil {
		f.cancel()
	}
	f.wg.Wait()
}

// dialOptions keep the clients' side small: the memory that matters is the
// server's, and thousands of clients share the machine with it.
var dialOptions = []grpc.DialOption{
	grpc.WithTransportCredentials(insecure.NewCredentials()),
	grpc.WithReadBufferSize(8 << 10),
	grpc.WithWriteBufferSize(8 << 10),
}

// run is one client: its own gRPC connection and one ADS stream.
func (f *fleet) run(ctx context.Context, i int, connected func()) error {
	conn, err := grpc.NewClient(f.cfg.Addr, dialOptions...)
	if err != nil {
		return err
	}
	defer conn.Close()
	ads := discovery.NewAggregatedDiscoveryServiceClient(conn)
	node := &core.Node{Id: f.cfg.NodePrefix + strconv.Itoa(i), UserAgentName: "sluice-bench-xds"}
	c := &simClient{f: f, i: i, node: node, connected: connected}
	switch f.cfg.Protocol {
	case sotw:
		stream, err := ads.StreamAggregatedResources(ctx, grpc.WaitForReady(true))
		if err != nil {
			return err
		}
		return c.sotw(stream)
	case delta:
		stream, err := ads.DeltaAggregatedResources(ctx, grpc.WaitForReady(true))
		if err != nil {
			return err
		}
		return c.delta(stream)
	}
	return fmt.Errorf("unknown protocol %q", f.cfg.Protocol)
}

type simClient struct {
	f         *fleet
	i         int
	node      *core.Node
	connected func()
}

// sotw runs a State-of-the-World stream as grpc-go does: the node only in
// the first request; every request for a type carries the type's current
// names with the last version and nonce received.
func (c *simClient) sotw(stream discovery.AggregatedDiscoveryService_StreamAggregatedResourcesClient) error {
	subs := map[string][]string{xds.ListenerType: {c.f.cfg.Listener}}
	versions, nonces := map[string]string{}, map[string]string{}
	if err := stream.Send(&discovery.DiscoveryRequest{Node: c.node, TypeUrl: xds.ListenerType, ResourceNames: subs[xds.ListenerType]}); err != nil {
		return err
	}
	for {
		resp, err := stream.Recv()
		if err != nil {
			return err
		}
		c.connected()
		t := resp.GetTypeUrl()
		held := make(map[string]*resInfo, len(resp.GetResources()))
		for _, a := range resp.GetResources() {
			info, err := c.f.memo.get(t, a.GetValue())
			if err != nil {
				return err
			}
			held[info.name] = info
		}
		versions[t], nonces[t] = resp.GetVersionInfo(), resp.GetNonce()
		ack := &discovery.DiscoveryRequest{TypeUrl: t, VersionInfo: resp.GetVersionInfo(), ResponseNonce: resp.GetNonce(), ResourceNames: subs[t]}
		if err := stream.Send(ack); err != nil {
			return err
		}
		c.f.acked(c.i, t, typeDigest(held), monoNow())
		if next, _, ok := follow(t, held, subs); ok {
			req := &discovery.DiscoveryRequest{TypeUrl: next, ResourceNames: subs[next], VersionInfo: versions[next], ResponseNonce: nonces[next]}
			if err := stream.Send(req); err != nil {
				return err
			}
		}
	}
}

// delta runs a Delta stream: subscriptions change by difference, and an
// ACK is the response's nonce.
func (c *simClient) delta(stream discovery.AggregatedDiscoveryService_DeltaAggregatedResourcesClient) error {
	subs := map[string][]string{xds.ListenerType: {c.f.cfg.Listener}}
	held := map[string]map[string]*resInfo{}
	if err := stream.Send(&discovery.DeltaDiscoveryRequest{Node: c.node, TypeUrl: xds.ListenerType, ResourceNamesSubscribe: subs[xds.ListenerType]}); err != nil {
		return err
	}
	for {
		resp, err := stream.Recv()
		if err != nil {
			return err
		}
		c.connected()
		t := resp.GetTypeUrl()
		h := held[t]
		if h == nil {
			h = map[string]*resInfo{}
			held[t] = h
		}
		for _, r := range resp.GetResources() {
			info, err := c.f.memo.get(t, r.GetResource().GetValue())
			if err != nil {
				return err
			}
			if info.name != r.GetName() {
				return fmt.Errorf("delta resource %q holds a resource named %q", r.GetName(), info.name)
			}
			h[r.GetName()] = info
		}
		for _, name := range resp.GetRemovedResources() {
			delete(h, name)
		}
		if err := stream.Send(&discovery.DeltaDiscoveryRequest{TypeUrl: t, ResponseNonce: resp.GetNonce()}); err != nil {
			return err
		}
		c.f.acked(c.i, t, typeDigest(h), monoNow())
		next, old, ok := follow(t, h, subs)
		if !ok {
			continue
		}
		var add, remove []string
		for _, n := range subs[next] {
			if !slices.Contains(old, n) {
				add = append(add, n)
			}
		}
		for _, n := range old {
			if !slices.Contains(subs[next], n) {
				remove = append(remove, n)
			}
		}
		req := &discovery.DeltaDiscoveryRequest{TypeUrl: next, ResourceNamesSubscribe: add, ResourceNamesUnsubscribe: remove}
		if err := stream.Send(req); err != nil {
			return err
		}
	}
}

// follow updates the subscription to the type after t with the names the
// resources held of t refer to. It returns that type and the names it
// subscribed to before, and whether they changed.
func follow(t string, held map[string]*resInfo, subs map[string][]string) (next string, old []string, changed bool) {
	next = nextType(t)
	if next == "" {
		return "", nil, false
	}
	refs := refsOf(held)
	if old = subs[next]; slices.Equal(refs, old) {
		return next, old, false
	}
	subs[next] = refs
	return next, old, true
}

// refsOf lists the names a set of resources refers to, sorted.
func refsOf(held map[string]*resInfo) []string {
	var refs []string
	for _, info := range held {
		refs = append(refs, info.refs...)
	}
	return sortedUnique(refs)
}
