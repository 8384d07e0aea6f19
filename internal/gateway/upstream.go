package gateway

import (
	"cmp"
	"hash/fnv"
	"math"
	"math/rand/v2"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
)

// balancer picks endpoints by smooth weighted round-robin (nginx's): every
// pick adds each endpoint's weight to its credit and takes the endpoint
// with the most, which then pays the total. Picks interleave in proportion
// to the weights. A least-request balancer picks the less loaded of two
// random endpoints (requests in flight over weight), as Envoy does.
type balancer struct {
	eps          []Endpoint
	leastRequest bool
	inflight     []atomic.Int64
	// ring, for a ring-hash balancer, holds points on a hash ring, about
	// ringSize of them shared by weight, sorted by hash.
	ring []ringPoint

	mu     sync.Mutex // guards credit
	credit []float64
	total  float64
}

type ringPoint struct {
	hash uint64
	ep   int
}

const ringSize = 1024

func newBalancer(eps []Endpoint, policy LBPolicy) *balancer {
	b := &balancer{eps: eps, leastRequest: policy == LeastRequest, credit: make([]float64, len(eps)), inflight: make([]atomic.Int64, len(eps))}
	for _, e := range eps {
		b.total += e.Weight
	}
	if policy == RingHash {
		for i, e := range eps {
			n := max(1, int(math.Round(ringSize*e.Weight/b.total)))
			for k := range n {
				b.ring = append(b.ring, ringPoint{hash: hashString(e.Addr + "#" + strconv.Itoa(k)), ep: i})
			}
		}
		slices.SortFunc(b.ring, func(x, y ringPoint) int { return cmp.Compare(x.hash, y.hash) })
	}
	return b
}

// hashString is FNV-1a finished with splitmix64's mixer: FNV alone keeps
// strings that differ in their last bytes (ports, user ids) close on the
// ring. It is the same in every process, so replicas agree.
func hashString(s string) uint64 {
	h := fnv.New64a()
	h.Write([]byte(s))
	z := h.Sum64()
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return z ^ (z >> 31)
}

// byHash is the endpoint the ring maps hash to: the first point at or after
// it, the next usable one if skipped.
func (b *balancer) byHash(hash uint64, skip map[string]bool) int {
	start, _ := slices.BinarySearchFunc(b.ring, hash, func(p ringPoint, h uint64) int { return cmp.Compare(p.hash, h) })
	for k := range b.ring {
		p := b.ring[(start+k)%len(b.ring)]
		if b.usable(p.ep, skip) {
			return p.ep
		}
	}
	return b.ring[start%len(b.ring)].ep
}

// pick returns an endpoint address, avoiding the ones in skip when there is
// another; false when the cluster has no endpoints.
func (b *balancer) pick(skip map[string]bool) (string, bool) {
	if len(b.eps) == 0 {
		return "", false
	}
	return b.eps[b.roundRobin(skip)].Addr, true
}

// acquire picks an endpoint, avoiding skip, and counts a request to it in
// flight until release(i). hash, when hashed, is the request's hash for a
// ring-hash balancer.
func (b *balancer) acquire(skip map[string]bool, hash uint64, hashed bool) (i int, ok bool) {
	if len(b.eps) == 0 {
		return 0, false
	}
	if len(b.ring) > 0 && hashed {
		i = b.byHash(hash, skip)
	} else if b.leastRequest && len(b.eps) > 1 {
		i = b.twoChoices(skip)
	} else {
		i = b.roundRobin(skip)
	}
	b.inflight[i].Add(1)
	return i, true
}

// release ends a request acquire counted.
func (b *balancer) release(i int) { b.inflight[i].Add(-1) }

// usable says whether endpoint i may be picked: not skipped, unless every
// endpoint is.
func (b *balancer) usable(i int, skip map[string]bool) bool {
	return !skip[b.eps[i].Addr] || len(skip) >= len(b.eps)
}

func (b *balancer) roundRobin(skip map[string]bool) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	best := -1
	for i, e := range b.eps {
		b.credit[i] += e.Weight
		if !b.usable(i, skip) {
			continue
		}
		if best < 0 || b.credit[i] > b.credit[best] {
			best = i
		}
	}
	if best < 0 {
		best = 0
	}
	b.credit[best] -= b.total
	return best
}

// twoChoices picks the less loaded of two random usable endpoints.
func (b *balancer) twoChoices(skip map[string]bool) int {
	var usable []int
	for i := range b.eps {
		if b.usable(i, skip) {
			usable = append(usable, i)
		}
	}
	if len(usable) == 0 {
		return 0
	}
	if len(usable) == 1 {
		return usable[0]
	}
	x := rand.IntN(len(usable))
	y := rand.IntN(len(usable) - 1)
	if y >= x {
		y++
	}
	i, j := usable[x], usable[y]
	if float64(b.inflight[j].Load())/b.eps[j].Weight < float64(b.inflight[i].Load())/b.eps[i].Weight {
		return j
	}
	return i
}

// transports keeps one connection pool per cluster and protocol, across
// config swaps, so a new config does not drop the connections upstream.
type transports struct {
	mu sync.Mutex // guards byKey
	// byKey is by cluster name, with "|h2" for HTTP/2 clusters.
	byKey map[string]*pool
}

func newTransports() *transports {
	return &transports{byKey: map[string]*pool{}}
}

// get returns c's pool, under the limits of c's config.
func (ts *transports) get(c *Cluster) *pool {
	key := c.Name
	if c.HTTP2 {
		key += "|h2"
	}
	ts.mu.Lock()
	defer ts.mu.Unlock()
	p, ok := ts.byKey[key]
	if !ok {
		p = newPool(c.HTTP2)
		ts.byKey[key] = p
	}
	if l := p.limits.Load(); *l != c.Limits {
		limits := c.Limits
		p.limits.Store(&limits)
	}
	return p
}

// prune closes the idle connections of the transports of clusters cfg no
// longer has and forgets them (requests in flight keep theirs).
func (ts *transports) prune(cfg *Config) {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	for key, p := range ts.byKey {
		name, h2 := key, false
		if len(key) > 3 && key[len(key)-3:] == "|h2" {
			name, h2 = key[:len(key)-3], true
		}
		if c, ok := cfg.Clusters[name]; !ok || c.HTTP2 != h2 {
			p.t.CloseIdleConnections()
			delete(ts.byKey, key)
		}
	}
}

func (ts *transports) closeAll() {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	for key, p := range ts.byKey {
		p.t.CloseIdleConnections()
		delete(ts.byKey, key)
	}
}

// active counts the requests in flight per cluster, across config swaps,
// for the clusters' circuit breakers.
type active struct {
	mu        sync.Mutex // guards byCluster
	byCluster map[string]*atomic.Int64
}

func newActive() *active { return &active{byCluster: map[string]*atomic.Int64{}} }

// counter is the count of requests in flight to the cluster name.
func (a *active) counter(name string) *atomic.Int64 {
	a.mu.Lock()
	defer a.mu.Unlock()
	n := a.byCluster[name]
	if n == nil {
		n = new(atomic.Int64)
		a.byCluster[name] = n
	}
	return n
}

// acquireRequest counts a request to c in; false (and nothing counted)
// when c's max_requests are already in flight. releaseRequest must follow
// a true.
func acquireRequest(c *Cluster) bool {
	if c.MaxRequests == 0 {
		return true
	}
	if c.inflight.Add(1) > int64(c.MaxRequests) {
		c.inflight.Add(-1)
		return false
	}
	return true
}

func releaseRequest(c *Cluster) {
	if c.MaxRequests != 0 {
		c.inflight.Add(-1)
	}
}
