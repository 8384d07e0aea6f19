package xds

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"sort"
	"sync"
	"time"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	serverv3 "github.com/envoyproxy/go-control-plane/pkg/server/v3"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
)

// Sync states of one resource type of a proxy, as `sluice proxies` shows them.
const (
	// Synced: the proxy ACKed the last version sent.
	Synced = "SYNCED"
	// Stale: a version was sent and is not ACKed (yet).
	Stale = "STALE"
	// NACKed: the proxy rejected the last version sent; it runs its last good one.
	NACKed = "NACKED"
	// NotSent: the proxy asked for the type and has been sent nothing yet.
	NotSent = "NOT SENT"
)

// ProxyStatus is what the server knows of one connected xDS client.
type ProxyStatus struct {
	Node string `json:"node"`
	// Server is the API URL of the sluice server replica the proxy is
	// connected to.
	Server         string                 `json:"server,omitempty"`
	Address        string                 `json:"address"`
	Client         string                 `json:"client"`
	ClientVersion  string                 `json:"clientVersion,omitempty"`
	Protocol       string                 `json:"protocol"` // "sotw" or "delta"
	ConnectedSince time.Time              `json:"connectedSince"`
	Types          map[string]*TypeStatus `json:"types"` // by LDS, RDS, CDS, EDS, SDS
}

// TypeStatus is the sync state of one resource type of a proxy.
type TypeStatus struct {
	State  string    `json:"state"`
	Sent   string    `json:"sent,omitempty"`
	SentAt time.Time `json:"sentAt,omitzero"`
	Acked  string    `json:"acked,omitempty"`
	// Resources is how many resources of the type the proxy asked for by
	// name (0 for a wildcard subscription).
	Resources int   `json:"resources"`
	LastNACK  *NACK `json:"lastNACK,omitempty"`
}

// NACK is a response a proxy rejected.
type NACK struct {
	Version string    `json:"version"`
	Error   string    `json:"error"`
	Time    time.Time `json:"time"`
}

// Proxies tracks every xDS stream from the server's callbacks.
type Proxies struct {
	metrics *metrics
	now     func() time.Time

	mu      sync.RWMutex // guards streams; each proxy guards its own state
	streams map[streamKey]*proxy
}

// streamKey tells streams apart: go-control-plane numbers State-of-the-World
// and Delta streams separately.
type streamKey struct {
	delta bool
	id    int64
}

type proxy struct {
	mu     sync.Mutex // guards status, sent
	status ProxyStatus
	// sent is, per type, the nonce and version of the last response: an
	// ACK or NACK of it names that version (one of an older response is
	// stale, and servers ignore it).
	sent map[string]sentResponse
}

type sentResponse struct{ nonce, version string }

// NewProxies returns an empty tracker.
func NewProxies(m *metrics) *Proxies {
	if m == nil {
		m = newMetrics(nil)
	}
	return &Proxies{metrics: m, now: time.Now, streams: map[streamKey]*proxy{}}
}

var _ serverv3.Callbacks = (*Proxies)(nil)

// List returns every connected proxy, sorted by node id.
func (p *Proxies) List() []ProxyStatus {
	p.mu.RLock()
	defer p.mu.RUnlock()
	out := make([]ProxyStatus, 0, len(p.streams))
	for _, s := range p.streams {
		s.mu.Lock()
		st := s.status
		st.Types = make(map[string]*TypeStatus, len(s.status.Types))
		for k, v := range s.status.Types {
			c := *v
			st.Types[k] = &c
		}
		s.mu.Unlock()
		out = append(out, st)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Node != out[j].Node {
			return out[i].Node < out[j].Node
		}
		return out[i].ConnectedSince.Before(out[j].ConnectedSince)
	})
	return out
}

// stream returns the proxy of a stream, locked; nil if it is not open.
func (p *Proxies) stream(key streamKey) *proxy {
	p.mu.RLock()
	s := p.streams[key]
	p.mu.RUnlock()
	if s != nil {
		s.mu.Lock()
	}
	return s
}

func (p *Proxies) open(ctx context.Context, key streamKey) {
	st := ProxyStatus{ConnectedSince: p.now().UTC(), Protocol: "sotw", Types: map[string]*TypeStatus{}}
	if key.delta {
		st.Protocol = "delta"
	}
	if pr, ok := peer.FromContext(ctx); ok {
		st.Address = pr.Addr.String()
	}
	if md, ok := metadata.FromIncomingContext(ctx); ok {
		if ua := md.Get("user-agent"); len(ua) > 0 {
			st.Client = ua[0]
		}
	}
	p.mu.Lock()
	p.streams[key] = &proxy{status: st, sent: map[string]sentResponse{}}
	p.mu.Unlock()
	p.metrics.proxies.Inc()
}

func (p *Proxies) close(key streamKey) {
	p.mu.Lock()
	_, ok := p.streams[key]
	delete(p.streams, key)
	p.mu.Unlock()
	if ok {
		p.metrics.proxies.Dec()
	}
}

// errNoNodeID refuses a stream whose client did not say who it is.
var errNoNodeID = status.Error(codes.InvalidArgument,
	"xds: the request has no node id; set node.id in the client's bootstrap (GRPC_XDS_BOOTSTRAP) or Envoy's --service-node")

// request records a request: the node's identity, and the ACK or NACK it
// carries for the response whose nonce it names.
func (p *Proxies) request(key streamKey, node *core.Node, typeURL string, names int, nonce, errText string) error {
	s := p.stream(key)
	if s == nil {
		return nil
	}
	defer s.mu.Unlock()
	if node != nil {
		if node.GetId() == "" {
			return errNoNodeID
		}
		s.status.Node = node.GetId()
		if name := node.GetUserAgentName(); name != "" {
			s.status.Client = name
		}
		s.status.ClientVersion = node.GetUserAgentVersion()
	} else if s.status.Node == "" {
		return errNoNodeID
	}
	t := shortType(typeURL)
	ts := s.status.Types[t]
	if ts == nil {
		ts = &TypeStatus{State: NotSent}
		s.status.Types[t] = ts
	}
	ts.Resources = names
	last := s.sent[t]
	if nonce == "" || nonce != last.nonce {
		return nil
	}
	delete(s.sent, t)
	if errText != "" {
		ts.LastNACK = &NACK{Version: last.version, Error: errText, Time: p.now().UTC()}
		p.metrics.nacks.WithLabelValues(t).Inc()
	} else {
		ts.Acked = last.version
	}
	ts.State = stateOf(ts)
	return nil
}

// response records a response about to be sent.
func (p *Proxies) response(key streamKey, typeURL, version, nonce string) {
	s := p.stream(key)
	if s == nil {
		return
	}
	defer s.mu.Unlock()
	t := shortType(typeURL)
	ts := s.status.Types[t]
	if ts == nil {
		ts = &TypeStatus{}
		s.status.Types[t] = ts
	}
	ts.Sent, ts.SentAt = version, p.now().UTC()
	ts.State = stateOf(ts)
	s.sent[t] = sentResponse{nonce: nonce, version: version}
}

func stateOf(ts *TypeStatus) string {
	switch {
	case ts.Sent == "":
		return NotSent
	case ts.Acked == ts.Sent:
		return Synced
	case ts.LastNACK != nil && ts.LastNACK.Version == ts.Sent:
		return NACKed
	default:
		return Stale
	}
}

// The go-control-plane callbacks.

func (p *Proxies) OnStreamOpen(ctx context.Context, id int64, _ string) error {
	p.open(ctx, streamKey{id: id})
	return nil
}

func (p *Proxies) OnStreamClosed(id int64, _ *core.Node) { p.close(streamKey{id: id}) }

func (p *Proxies) OnStreamRequest(id int64, req *discovery.DiscoveryRequest) error {
	return p.request(streamKey{id: id}, req.GetNode(), req.GetTypeUrl(), len(req.GetResourceNames()),
		req.GetResponseNonce(), req.GetErrorDetail().GetMessage())
}

func (p *Proxies) OnStreamResponse(_ context.Context, id int64, req *discovery.DiscoveryRequest, resp *discovery.DiscoveryResponse) {
	p.response(streamKey{id: id}, resp.GetTypeUrl(), resp.GetVersionInfo(), resp.GetNonce())
}

func (p *Proxies) OnDeltaStreamOpen(ctx context.Context, id int64, _ string) error {
	p.open(ctx, streamKey{delta: true, id: id})
	return nil
}

func (p *Proxies) OnDeltaStreamClosed(id int64, _ *core.Node) {
	p.close(streamKey{delta: true, id: id})
}

func (p *Proxies) OnStreamDeltaRequest(id int64, req *discovery.DeltaDiscoveryRequest) error {
	return p.request(streamKey{delta: true, id: id}, req.GetNode(), req.GetTypeUrl(), len(req.GetResourceNamesSubscribe()),
		req.GetResponseNonce(), req.GetErrorDetail().GetMessage())
}

func (p *Proxies) OnStreamDeltaResponse(id int64, _ *discovery.DeltaDiscoveryRequest, resp *discovery.DeltaDiscoveryResponse) {
	p.response(streamKey{delta: true, id: id}, resp.GetTypeUrl(), resp.GetSystemVersionInfo(), resp.GetNonce())
}

func (p *Proxies) OnFetchRequest(context.Context, *discovery.DiscoveryRequest) error {
	return errFetchUnsupported
}

func (p *Proxies) OnFetchResponse(*discovery.DiscoveryRequest, *discovery.DiscoveryResponse) {}

// ProxyList is the body of GET /apis/sluice.io/v1alpha1/proxies.
type ProxyList struct {
	APIVersion string        `json:"apiVersion"`
	Kind       string        `json:"kind"`
	Items      []ProxyStatus `json:"items"`
	// Unreachable lists the replicas whose proxies are missing because they
	// did not answer.
	Unreachable []string `json:"unreachable,omitempty"`
}

// PeersFunc returns the API URLs of the other server replicas.
type PeersFunc func(context.Context) ([]string, error)

// Handler serves the ProxyList of every replica: the proxies connected to
// this one (whose API is at self), and, unless the request says
// ?scope=local, those of every peer, asked with the caller's credentials.
func (p *Proxies) Handler(self string, peers PeersFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		list := ProxyList{APIVersion: "sluice.io/v1alpha1", Kind: "ProxyList", Items: p.List()}
		for i := range list.Items {
			list.Items[i].Server = self
		}
		if r.URL.Query().Get("scope") != "local" && peers != nil {
			p.addPeers(r, peers, &list)
		}
		sort.SliceStable(list.Items, func(i, j int) bool { return list.Items[i].Node < list.Items[j].Node })
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(list)
	})
}

// peerTimeout bounds how long a peer may take to list its proxies.
const peerTimeout = 3 * time.Second

func (p *Proxies) addPeers(r *http.Request, peers PeersFunc, list *ProxyList) {
	urls, err := peers(r.Context())
	if err != nil {
		list.Unreachable = append(list.Unreachable, "the replica list: "+err.Error())
		return
	}
	type result struct {
		url   string
		items []ProxyStatus
		err   error
	}
	results := make(chan result, len(urls))
	for _, u := range urls {
		go func() {
			items, err := fetchPeer(r, u)
			results <- result{u, items, err}
		}()
	}
	for range urls {
		res := <-results
		if res.err != nil {
			list.Unreachable = append(list.Unreachable, res.url+": "+res.err.Error())
			continue
		}
		list.Items = append(list.Items, res.items...)
	}
	sort.Strings(list.Unreachable)
}

// fetchPeer lists the proxies connected to the replica whose API is at base.
func fetchPeer(r *http.Request, base string) ([]ProxyStatus, error) {
	ctx, cancel := context.WithTimeout(r.Context(), peerTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/apis/sluice.io/v1alpha1/proxies?scope=local", nil)
	if err != nil {
		return nil, err
	}
	if auth := r.Header.Get("Authorization"); auth != "" {
		req.Header.Set("Authorization", auth)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("answered %s", resp.Status)
	}
	var peer ProxyList
	if err := json.NewDecoder(resp.Body).Decode(&peer); err != nil {
		return nil, err
	}
	return peer.Items, nil
}
