package gateway

import (
	"context"
	"log/slog"
	"net"
	"reflect"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sluice/sluice/internal/probe"
)

// HealthCheckUserAgent is the User-Agent of the gateway's health checks
// (HTTP and gRPC), unless the cluster's health check sets its own.
const HealthCheckUserAgent = "sluice-gateway-healthcheck"

// HealthCheckPolicy is a cluster's active health check (its CDS
// health_checks): every endpoint is probed every Interval, each attempt
// bounded by Timeout.
//
// The semantics, decided for the gateway:
//   - a new endpoint is checked at once and its first result decides its
//     state at once; after that the state flips only after
//     HealthyThreshold successes, or UnhealthyThreshold failures, in a row;
//   - as in Envoy, an attempt succeeds only when it passes: an HTTP status
//     outside the expected ranges (429 included) is a failure;
//   - an endpoint failing its checks gets no requests; a pending endpoint
//     (no result yet) gets requests only while no endpoint of the cluster
//     is healthy, so that a new cluster does not answer 503 while its first
//     checks run;
//   - when every endpoint fails, requests get 503 "no healthy upstream":
//     there is no panic mode;
//   - a check counts against nothing else: not the circuit breaker, not
//     outlier detection, and it uses a connection of its own.
type HealthCheckPolicy struct {
	Interval           time.Duration
	Timeout            time.Duration
	HealthyThreshold   int
	UnhealthyThreshold int
	// Check is the attempt, its Timeout set; an HTTP check's Host is the
	// cluster's name unless the config names one.
	Check probe.Check
}

// endpointState is what an endpoint's health check says of it.
type endpointState int

const (
	pending endpointState = iota // no result yet
	healthy
	unhealthy
)

func (s endpointState) String() string {
	switch s {
	case healthy:
		return "healthy"
	case unhealthy:
		return "unhealthy"
	}
	return "pending"
}

// healthCheckers runs the active health checks of every cluster that has
// one, across config swaps: one loop per (cluster, endpoint).
type healthCheckers struct {
	log     *slog.Logger
	metrics *metrics
	ctx     context.Context // ends every loop when closed
	stop    context.CancelFunc
	loops   sync.WaitGroup
	running atomic.Int64 // loops running, for tests

	mu        sync.Mutex // guards byCluster, closed
	byCluster map[string]*clusterHealth
	closed    bool
}

func newHealthCheckers(log *slog.Logger, m *metrics) *healthCheckers {
	ctx, stop := context.WithCancel(context.Background())
	return &healthCheckers{log: log, metrics: m, ctx: ctx, stop: stop, byCluster: map[string]*clusterHealth{}}
}

// clusterHealth is the health of one cluster's endpoints.
type clusterHealth struct {
	name   string
	policy *HealthCheckPolicy

	// unusable is the immutable set of endpoints no request may go to now
	// (failing, and pending while some endpoint is healthy); nil for none.
	// The loops replace it whenever a state changes, so that the request
	// path reads it with one atomic load.
	unusable atomic.Pointer[map[string]bool]
	// allFailing says every endpoint fails its check: requests then get
	// errNoEndpoints, where the balancer would pick among skipped ones.
	allFailing atomic.Bool

	mu  sync.Mutex // guards eps
	eps map[string]*endpointCheck
}

// endpointCheck is one endpoint's loop and state.
type endpointCheck struct {
	addr   string // the endpoint, as the balancer knows it
	target string // where the checks go
	cancel context.CancelFunc
	// state, successes and failures are guarded by clusterHealth.mu.
	state               endpointState
	successes, failures int
}

// update starts, restarts and stops loops so that they match cfg, and
// links each cluster of cfg to its health (Cluster.health). It is called
// before cfg is put in force. Stopped loops are cancelled, not waited for:
// they end as soon as their attempt in flight sees the cancel.
func (h *healthCheckers) update(cfg *Config) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return
	}
	for name, ch := range h.byCluster {
		if c := cfg.Clusters[name]; c == nil || c.HealthCheck == nil {
			ch.stopAll()
			delete(h.byCluster, name)
			h.metrics.forgetHealth(name)
		}
	}
	for name, c := range cfg.Clusters {
		if c.HealthCheck == nil {
			continue
		}
		ch := h.byCluster[name]
		if ch == nil {
			ch = &clusterHealth{name: name, eps: map[string]*endpointCheck{}}
			h.byCluster[name] = ch
		}
		h.sync(ch, c)
		c.health = ch
	}
}

// sync makes ch's loops those of c's endpoints with c's policy. A loop
// whose policy or target changes restarts from the endpoint's state, as a
// check that changes does not make an endpoint new.
func (h *healthCheckers) sync(ch *clusterHealth, c *Cluster) {
	ch.mu.Lock()
	defer ch.mu.Unlock()
	restart := ch.policy != nil && !reflect.DeepEqual(ch.policy, c.HealthCheck)
	ch.policy = c.HealthCheck
	want := map[string]string{}
	for _, e := range c.Endpoints {
		want[e.Addr] = healthTarget(e)
	}
	for addr, ec := range ch.eps {
		if target, ok := want[addr]; !ok || restart || target != ec.target {
			ec.cancel()
			if !ok {
				delete(ch.eps, addr)
			}
		}
	}
	for addr, target := range want {
		ec := ch.eps[addr]
		if ec != nil && !restart && ec.target == target {
			continue
		}
		next := &endpointCheck{addr: addr, target: target}
		if ec != nil {
			next.state = ec.state
		}
		ctx, cancel := context.WithCancel(h.ctx)
		next.cancel = cancel
		ch.eps[addr] = next
		h.loops.Add(1)
		h.running.Add(1)
		go func() {
			defer h.loops.Done()
			defer h.running.Add(-1)
			h.loop(ctx, ch, next, c.HealthCheck)
		}()
	}
	ch.publishLocked(h.metrics)
}

// healthTarget is where e's checks go: its address, at its health check
// port when EDS gives one.
func healthTarget(e Endpoint) string {
	if e.HealthPort == 0 {
		return e.Addr
	}
	host, _, err := net.SplitHostPort(e.Addr)
	if err != nil {
		return e.Addr
	}
	return net.JoinHostPort(host, strconv.Itoa(int(e.HealthPort)))
}

// loop probes ec every p.Interval, the first time at once, until ctx ends.
func (h *healthCheckers) loop(ctx context.Context, ch *clusterHealth, ec *endpointCheck, p *HealthCheckPolicy) {
	t := time.NewTicker(p.Interval)
	defer t.Stop()
	for {
		res := probe.Run(ctx, ec.target, p.Check)
		if ctx.Err() != nil {
			return
		}
		h.record(ctx, ch, ec, p, res)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// record applies one result to ec's state and, when the state changes,
// publishes the cluster's new unusable set and logs the change.
func (h *healthCheckers) record(ctx context.Context, ch *clusterHealth, ec *endpointCheck, p *HealthCheckPolicy, res probe.Result) {
	ch.mu.Lock()
	defer ch.mu.Unlock()
	if ctx.Err() != nil {
		return // stopped while the attempt ran: its result is stale
	}
	ok := res.State == probe.Passing
	result := "failure"
	if ok {
		result = "success"
	}
	h.metrics.healthChecks.WithLabelValues(ch.name, result).Inc()
	if ok {
		ec.successes, ec.failures = ec.successes+1, 0
	} else {
		ec.successes, ec.failures = 0, ec.failures+1
	}
	prev := ec.state
	switch {
	case prev == pending && ok, prev == unhealthy && ec.successes >= p.HealthyThreshold:
		ec.state = healthy
	case prev == pending && !ok, prev == healthy && ec.failures >= p.UnhealthyThreshold:
		ec.state = unhealthy
	}
	if ec.state == prev {
		return
	}
	h.log.Info("health check state changed", "cluster", ch.name, "endpoint", ec.addr, "state", ec.state.String(), "output", res.Output)
	ch.publishLocked(h.metrics)
}

// publishLocked recomputes the unusable set and the unhealthy gauge.
func (ch *clusterHealth) publishLocked(m *metrics) {
	anyHealthy, failing := false, 0
	for _, ec := range ch.eps {
		switch ec.state {
		case healthy:
			anyHealthy = true
		case unhealthy:
			failing++
		}
	}
	m.unhealthy.WithLabelValues(ch.name).Set(float64(failing))
	ch.allFailing.Store(failing > 0 && failing == len(ch.eps))
	var set map[string]bool
	for addr, ec := range ch.eps {
		if ec.state == unhealthy || (ec.state == pending && anyHealthy) {
			if set == nil {
				set = map[string]bool{}
			}
			set[addr] = true
		}
	}
	if set == nil {
		ch.unusable.Store(nil)
		return
	}
	ch.unusable.Store(&set)
}

// stopAll cancels every loop of ch.
func (ch *clusterHealth) stopAll() {
	ch.mu.Lock()
	defer ch.mu.Unlock()
	for addr, ec := range ch.eps {
		ec.cancel()
		delete(ch.eps, addr)
	}
	ch.unusable.Store(nil)
	ch.allFailing.Store(false)
}

// close stops every loop and waits for them; update does nothing after it.
func (h *healthCheckers) close() {
	h.mu.Lock()
	h.closed = true
	for name, ch := range h.byCluster {
		ch.stopAll()
		delete(h.byCluster, name)
	}
	h.mu.Unlock()
	h.stop()
	h.loops.Wait()
}
