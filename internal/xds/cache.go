package xds

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"log/slog"
	"maps"
	"slices"
	"sort"
	"sync"
	"time"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	"google.golang.org/protobuf/types/known/anypb"
)

// GatewayMetadataKey is the node metadata field that names the Gateway
// ("namespace/name") a proxy serves; a wildcard request from such a node gets
// that Gateway's resources.
const GatewayMetadataKey = "sluice.io/gateway"

// Cache serves the current snapshot to xDS streams. It implements
// go-control-plane's cache.ConfigWatcher for State of the World and Delta,
// with two rules go-control-plane's own caches do not follow:
//
//   - a stream is sent a response only when what it would receive differs
//     from what it last received (the subscription's returned resources), or
//     when it has not received anything of that type yet. An ACK waits for
//     the next change; so does a NACK, so a rejected version is never sent
//     again in a loop, and the client keeps its last good config;
//   - a client gets exactly the resources it names (or, for a wildcard
//     request, its scope), never the whole mesh;
//   - a Secret goes only to the nodes of a Gateway whose scope holds it,
//     even when another node asks for it by name: to any other node it does
//     not exist. (The Gateway a node serves is what its metadata says; the
//     xDS address is loopback unless --insecure, until xDS has mTLS.)
//
// A response goes out at most once per watch: the server opens a new watch
// with the client's next request.
//
// Until the first snapshot is set, requests wait: a proxy that reconnects to
// a server that has just started must keep its config, not be sent the
// empty one the server holds before its first translation.
type Cache struct {
	log     *slog.Logger
	metrics *metrics

	mu    sync.Mutex // guards the fields below
	ready bool       // a snapshot has been set
	snap  *Snapshot
	at    time.Time // when the changes in snap were first seen, for push latency
	sotw  watchIndex[*sotwWatch]
	delta watchIndex[*deltaWatch]
	// contents memoizes, for the current snapshot, the State-of-the-World
	// content of each distinct subscription (see sotwWatch.contentKey): the
	// ACKs of thousands of clients of one service need it built once.
	contents map[string]*sotwContent
}

// NewCache returns a cache holding an empty snapshot, which it serves to
// nobody: watches wait for SetSnapshot.
func NewCache(log *slog.Logger, m *metrics) *Cache {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if m == nil {
		m = newMetrics(nil)
	}
	return &Cache{
		log:      log,
		metrics:  m,
		snap:     NewSnapshot(),
		contents: map[string]*sotwContent{},
		sotw:     newWatchIndex[*sotwWatch](),
		delta:    newWatchIndex[*deltaWatch](),
	}
}

var _ cache.ConfigWatcher = (*Cache)(nil)

// Snapshot returns the snapshot being served.
func (c *Cache) Snapshot() *Snapshot {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.snap
}

// SetSnapshot serves snap from now on and answers every waiting watch whose
// resources changed. changedAt is when the first change it holds was seen,
// for the push latency metric.
func (c *Cache) SetSnapshot(snap *Snapshot, changedAt time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	old := c.snap
	c.snap, c.at = snap, changedAt
	c.contents = map[string]*sotwContent{}
	first := !c.ready
	c.ready = true
	scopesChanged := !sameScopes(old, snap)
	for _, t := range Types {
		changed := changedNames(old, snap, t)
		if first {
			// Every watch so far waited for this snapshot, also those
			// asking for names it does not hold (they learn that now).
			for name := range c.sotw.byName[t] {
				changed[name] = true
			}
			for name := range c.delta.byName[t] {
				changed[name] = true
			}
		}
		if scopesChanged && t == SecretType {
			// A Secret may have entered or left a Gateway's scope without
			// changing: every watch naming one must look again.
			for _, s := range []*Snapshot{old, snap} {
				for name := range s.resources[SecretType] {
					changed[name] = true
				}
			}
		}
		if len(changed) == 0 && !scopesChanged {
			continue
		}
		// Watches asking for the same names get the same content, built
		// once (at 10,000 proxyless clients of one service, once in all).
		for _, w := range c.sotw.affected(t, changed) {
			content := c.sotwContent(w.req, w.sub)
			if (first && w.req.GetResponseNonce() == "") || !sameVersions(content.returned, w.sub.ReturnedResources()) {
				c.send(w, content.response(w.req))
			}
		}
		for _, w := range c.delta.affected(t, changed) {
			if resp, ok := c.deltaResponse(w.req, w.sub); ok {
				c.sendDelta(w, resp)
			}
		}
	}
}

// changedNames lists the names of typeURL added, changed or removed between
// two snapshots.
func changedNames(old, cur *Snapshot, typeURL string) map[string]bool {
	out := map[string]bool{}
	for name, r := range cur.resources[typeURL] {
		if o, ok := old.resources[typeURL][name]; !ok || o.Version != r.Version {
			out[name] = true
		}
	}
	for name := range old.resources[typeURL] {
		if _, ok := cur.resources[typeURL][name]; !ok {
			out[name] = true
		}
	}
	return out
}

func sameScopes(a, b *Snapshot) bool {
	if len(a.scopes) != len(b.scopes) {
		return false
	}
	for gw, types := range a.scopes {
		// A type only b scopes (a Gateway's first route adds its
		// clusters) is a change too.
		if len(types) != len(b.scopes[gw]) {
			return false
		}
		for t, names := range types {
			other, ok := b.scopes[gw][t]
			if !ok || len(other) != len(names) {
				return false
			}
			for i := range names {
				if names[i] != other[i] {
					return false
				}
			}
		}
	}
	return true
}

// CreateWatch answers a State-of-the-World request now if the client should
// get something, and otherwise waits for a snapshot that changes what it
// would get.
func (c *Cache) CreateWatch(req *discovery.DiscoveryRequest, sub cache.Subscription, ch chan cache.Response) (func(), error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.ready {
		content := c.sotwContent(req, sub)
		// The first request of a type is answered even when there is
		// nothing to send: the client learns that what it asked for does
		// not exist.
		if req.GetResponseNonce() == "" || !sameVersions(content.returned, sub.ReturnedResources()) {
			ch <- content.response(req) // the server's channel has room for one response per type
			return func() {}, nil
		}
	}
	w := &sotwWatch{req: req, sub: sub, ch: ch}
	c.sotw.add(w, req.GetTypeUrl(), sub)
	return func() {
		c.mu.Lock()
		c.sotw.remove(w)
		c.mu.Unlock()
	}, nil
}

// CreateDeltaWatch answers a Delta request now if some resource the client
// should have differs from what it has, and otherwise waits.
func (c *Cache) CreateDeltaWatch(req *discovery.DeltaDiscoveryRequest, sub cache.Subscription, ch chan cache.DeltaResponse) (func(), error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if resp, ok := c.deltaResponse(req, sub); ok && c.ready {
		ch <- resp
		return func() {}, nil
	}
	w := &deltaWatch{req: req, sub: sub, ch: ch}
	c.delta.add(w, req.GetTypeUrl(), sub)
	return func() {
		c.mu.Lock()
		c.delta.remove(w)
		c.mu.Unlock()
	}, nil
}

// Fetch serves REST (polling) requests, which Sluice does not offer.
func (c *Cache) Fetch(context.Context, *discovery.DiscoveryRequest) (cache.Response, error) {
	return nil, errFetchUnsupported
}

// send hands a response to a waiting watch and retires the watch. The
// channel has room: a stream has at most one outstanding response per type.
func (c *Cache) send(w *sotwWatch, resp cache.Response) {
	c.sotw.remove(w)
	c.metrics.pushed(w.req.GetTypeUrl(), c.at)
	select {
	case w.ch <- resp:
	default:
		c.log.Warn("xds stream has no room for a response; it gets the change with its next request", "type", w.req.GetTypeUrl(), "node", w.req.GetNode().GetId())
	}
}

func (c *Cache) sendDelta(w *deltaWatch, resp cache.DeltaResponse) {
	c.delta.remove(w)
	c.metrics.pushed(w.req.GetTypeUrl(), c.at)
	select {
	case w.ch <- resp:
	default:
		c.log.Warn("xds delta stream has no room for a response", "type", w.req.GetTypeUrl(), "node", w.req.GetNode().GetId())
	}
}

// namesFor lists the names a subscription gets from the current snapshot:
// those it names, or for a wildcard subscription its node's scope.
func (c *Cache) namesFor(typeURL string, node *core.Node, sub cache.Subscription) []string {
	var names []string
	if sub.IsWildcard() {
		if gw := gatewayOf(node); gw != "" {
			names = append(names, c.snap.Scope(gw, typeURL)...)
		} else if typeURL == ClusterType || typeURL == EndpointType {
			// A mesh proxy (a sidecar Envoy) may use any cluster. API
			// listeners are for proxyless clients, which name them.
			names = c.snap.Names(typeURL)
		}
	}
	for name := range sub.SubscribedResources() {
		names = append(names, name)
	}
	sort.Strings(names)
	return names
}

// get returns a resource of the current snapshot that node may have: any
// but a Secret, which only the nodes of a Gateway whose scope holds it get.
func (c *Cache) get(typeURL string, node *core.Node, name string) (*Resource, bool) {
	if typeURL == SecretType {
		gw := gatewayOf(node)
		if gw == "" || !slices.Contains(c.snap.Scope(gw, SecretType), name) {
			return nil, false
		}
	}
	return c.snap.Get(typeURL, name)
}

// gatewayOf returns the Gateway a node serves, from its metadata.
func gatewayOf(node *core.Node) string {
	return node.GetMetadata().GetFields()[GatewayMetadataKey].GetStringValue()
}

// sotwContent is what a State-of-the-World response of some names holds:
// built once, shared by every watch asking for the same names.
type sotwContent struct {
	typeURL   string
	resources []*anypb.Any
	// returned holds the version of each name sent, "" for a name asked
	// for that does not exist: recorded so that asking for a missing name
	// is answered once (the client learns it does not exist) and not again
	// until it appears.
	returned map[string]string
	version  string
}

// sotwContent returns the content a request gets from the current
// snapshot, built once per distinct subscription.
func (c *Cache) sotwContent(req *discovery.DiscoveryRequest, sub cache.Subscription) *sotwContent {
	key := contentKey(req, sub)
	if content, ok := c.contents[key]; ok {
		return content
	}
	typeURL := req.GetTypeUrl()
	content := &sotwContent{typeURL: typeURL, returned: map[string]string{}}
	defer func() { c.contents[key] = content }()
	for _, name := range c.namesFor(typeURL, req.GetNode(), sub) {
		if _, dup := content.returned[name]; dup {
			continue
		}
		if r, ok := c.get(typeURL, req.GetNode(), name); ok {
			content.returned[name] = r.Version
			content.resources = append(content.resources, r.Any)
		} else {
			content.returned[name] = ""
		}
	}
	content.version = versionOf(content.returned)
	return content
}

// response makes the content a response to req. Each response gets its own
// message and map: the server writes the nonce into the message, and the
// stream's subscription keeps (and edits) the map.
func (content *sotwContent) response(req *discovery.DiscoveryRequest) cache.Response {
	return &response{
		req:      req,
		returned: maps.Clone(content.returned),
		out: &discovery.DiscoveryResponse{
			VersionInfo: content.version,
			Resources:   content.resources,
			TypeUrl:     content.typeURL,
		},
	}
}

// deltaResponse builds the Delta response for a request: the resources whose
// version differs from what the client has, and the names it has that are
// gone. Nothing to send, no response.
func (c *Cache) deltaResponse(req *discovery.DeltaDiscoveryRequest, sub cache.Subscription) (cache.DeltaResponse, bool) {
	typeURL := req.GetTypeUrl()
	had := sub.ReturnedResources()
	next := map[string]string{}
	var changed []*discovery.Resource
	for _, name := range c.namesFor(typeURL, req.GetNode(), sub) {
		r, ok := c.get(typeURL, req.GetNode(), name)
		if !ok {
			continue
		}
		next[name] = r.Version
		if had[name] != r.Version {
			changed = append(changed, &discovery.Resource{Name: name, Version: r.Version, Resource: r.Any})
		}
	}
	var removed []string
	for name, v := range had {
		if _, ok := next[name]; !ok && v != "" {
			removed = append(removed, name)
		}
	}
	sort.Strings(removed)
	if len(changed) == 0 && len(removed) == 0 {
		return nil, false
	}
	return &deltaResponse{
		req:  req,
		next: next,
		out: &discovery.DeltaDiscoveryResponse{
			SystemVersionInfo: versionOf(next),
			Resources:         changed,
			RemovedResources:  removed,
			TypeUrl:           typeURL,
		},
	}, true
}

func sameVersions(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if bv, ok := b[k]; !ok || bv != v {
			return false
		}
	}
	return true
}

// versionOf is the version of a set of resources: a hash of their names and
// versions, so the same content has the same version on every replica.
func versionOf(versions map[string]string) string {
	names := make([]string, 0, len(versions))
	for n := range versions {
		names = append(names, n)
	}
	sort.Strings(names)
	h := sha256.New()
	for _, n := range names {
		h.Write([]byte(n))
		h.Write([]byte{0})
		h.Write([]byte(versions[n]))
		h.Write([]byte{0})
	}
	return hex.EncodeToString(h.Sum(nil)[:8])
}
