package gateway

import (
	"sync"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
)

// OutlierPolicy is a cluster's outlier detection: an endpoint that answers
// Consecutive5xx 5xx in a row, or fails ConsecutiveLocal connections in a
// row, is ejected (gets no requests) for BaseEjection times the number of
// its ejections, while at most MaxEjectionPercent of the cluster is.
type OutlierPolicy struct {
	Consecutive5xx     int
	ConsecutiveLocal   int
	BaseEjection       time.Duration
	MaxEjectionPercent int
}

// parseOutlier reads Envoy's OutlierDetection with Envoy's defaults.
func parseOutlier(od *clusterv3.OutlierDetection) *OutlierPolicy {
	if od == nil {
		return nil
	}
	p := &OutlierPolicy{Consecutive5xx: 5, ConsecutiveLocal: 5, BaseEjection: 30 * time.Second, MaxEjectionPercent: 10}
	if v := od.GetConsecutive_5Xx(); v != nil {
		p.Consecutive5xx = int(v.GetValue())
	}
	if v := od.GetConsecutiveLocalOriginFailure(); v != nil && od.GetSplitExternalLocalOriginErrors() {
		p.ConsecutiveLocal = int(v.GetValue())
	}
	if d := od.GetBaseEjectionTime(); d != nil {
		p.BaseEjection = d.AsDuration()
	}
	if v := od.GetMaxEjectionPercent(); v != nil {
		p.MaxEjectionPercent = int(v.GetValue())
	}
	return p
}

// outliers keeps the outlier state of every endpoint by cluster, across
// config swaps.
type outliers struct {
	now func() time.Time

	mu        sync.Mutex // guards byCluster
	byCluster map[string]map[string]*endpointHealth
}

type endpointHealth struct {
	consec5xx, consecLocal int
	ejections              int
	ejectedUntil           time.Time
}

func newOutliers(now func() time.Time) *outliers {
	return &outliers{now: now, byCluster: map[string]map[string]*endpointHealth{}}
}

// ejected returns the endpoints of c ejected now.
func (o *outliers) ejected(c *Cluster) map[string]bool {
	if c.Outlier == nil {
		return nil
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	now := o.now()
	var out map[string]bool
	for addr, h := range o.byCluster[c.Name] {
		if now.Before(h.ejectedUntil) {
			if out == nil {
				out = map[string]bool{}
			}
			out[addr] = true
		}
	}
	return out
}

// report records the result of a request to an endpoint of c: its status,
// or 0 for a connection failure. It says whether the endpoint got ejected.
func (o *outliers) report(c *Cluster, addr string, status int) bool {
	p := c.Outlier
	if p == nil {
		return false
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	eps := o.byCluster[c.Name]
	if eps == nil {
		eps = map[string]*endpointHealth{}
		o.byCluster[c.Name] = eps
	}
	h := eps[addr]
	if h == nil {
		h = &endpointHealth{}
		eps[addr] = h
	}
	trip := false
	switch {
	case status == 0:
		h.consecLocal++
		trip = p.ConsecutiveLocal > 0 && h.consecLocal >= p.ConsecutiveLocal
	case status >= 500:
		h.consecLocal = 0
		h.consec5xx++
		trip = p.Consecutive5xx > 0 && h.consec5xx >= p.Consecutive5xx
	default:
		h.consecLocal, h.consec5xx = 0, 0
	}
	now := o.now()
	if !trip || now.Before(h.ejectedUntil) {
		return false
	}
	ejected := 0
	for _, other := range eps {
		if now.Before(other.ejectedUntil) {
			ejected++
		}
	}
	if (ejected+1)*100 > p.MaxEjectionPercent*len(c.Endpoints) {
		return false
	}
	h.ejections++
	h.consec5xx, h.consecLocal = 0, 0
	h.ejectedUntil = now.Add(time.Duration(h.ejections) * p.BaseEjection)
	return true
}

// prune forgets the clusters cfg no longer has.
func (o *outliers) prune(cfg *Config) {
	o.mu.Lock()
	defer o.mu.Unlock()
	for name := range o.byCluster {
		if _, ok := cfg.Clusters[name]; !ok {
			delete(o.byCluster, name)
		}
	}
}
