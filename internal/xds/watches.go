package xds

import (
	"maps"
	"slices"
	"strings"

	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/v3"
)

// watchIndex finds the waiting watches a change affects without visiting the
// others: by type, the watches subscribed to each name, and those subscribed
// to everything.
type watchIndex[W interface {
	comparable
	entry() *watchEntry
}] struct {
	byName   map[string]map[string]map[W]struct{} // type → name → watches
	wildcard map[string]map[W]struct{}            // type → watches
}

// watchEntry is what the index keeps of a watch, to remove it again.
type watchEntry struct {
	typeURL  string
	names    []string
	wildcard bool
}

func newWatchIndex[W interface {
	comparable
	entry() *watchEntry
}]() watchIndex[W] {
	return watchIndex[W]{byName: map[string]map[string]map[W]struct{}{}, wildcard: map[string]map[W]struct{}{}}
}

func (x watchIndex[W]) add(w W, typeURL string, sub cache.Subscription) {
	e := w.entry()
	e.typeURL, e.wildcard = typeURL, sub.IsWildcard()
	if e.wildcard {
		set := x.wildcard[typeURL]
		if set == nil {
			set = map[W]struct{}{}
			x.wildcard[typeURL] = set
		}
		set[w] = struct{}{}
	}
	byName := x.byName[typeURL]
	if byName == nil {
		byName = map[string]map[W]struct{}{}
		x.byName[typeURL] = byName
	}
	for name := range sub.SubscribedResources() {
		e.names = append(e.names, name)
		set := byName[name]
		if set == nil {
			set = map[W]struct{}{}
			byName[name] = set
		}
		set[w] = struct{}{}
	}
}

func (x watchIndex[W]) remove(w W) {
	e := w.entry()
	if e.wildcard {
		delete(x.wildcard[e.typeURL], w)
	}
	byName := x.byName[e.typeURL]
	for _, name := range e.names {
		delete(byName[name], w)
		if len(byName[name]) == 0 {
			delete(byName, name)
		}
	}
}

// affected returns the watches of typeURL subscribed to a changed name, and
// every wildcard watch of that type (its scope may have changed too).
func (x watchIndex[W]) affected(typeURL string, changed map[string]bool) []W {
	seen := map[W]struct{}{}
	var out []W
	for w := range x.wildcard[typeURL] {
		seen[w] = struct{}{}
		out = append(out, w)
	}
	for name := range changed {
		for w := range x.byName[typeURL][name] {
			if _, dup := seen[w]; !dup {
				seen[w] = struct{}{}
				out = append(out, w)
			}
		}
	}
	return out
}

type sotwWatch struct {
	req *discovery.DiscoveryRequest
	sub cache.Subscription
	ch  chan cache.Response
	watchEntry
}

func (w *sotwWatch) entry() *watchEntry { return &w.watchEntry }

// contentKey names what a request would be sent: requests with equal keys
// get equal content from one snapshot.
func contentKey(req *discovery.DiscoveryRequest, sub cache.Subscription) string {
	names := slices.Sorted(maps.Keys(sub.SubscribedResources()))
	scope := ""
	if sub.IsWildcard() || req.GetTypeUrl() == SecretType {
		// What a wildcard request gets, and which Secrets a node may have,
		// depend on the node's Gateway.
		scope = "*" + gatewayOf(req.GetNode())
	}
	return req.GetTypeUrl() + "\x00" + scope + "\x00" + strings.Join(names, "\x00")
}

type deltaWatch struct {
	req *discovery.DeltaDiscoveryRequest
	sub cache.Subscription
	ch  chan cache.DeltaResponse
	watchEntry
}

func (w *deltaWatch) entry() *watchEntry { return &w.watchEntry }
