package gatewaye2e

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sluice/sluice/internal/gateway"
)

// concurrently sends n GETs of path through the gateway at once and
// returns their responses (status -1 for a failed request) with how long
// each took.
func (e *env) concurrently(n int, path string) ([]response, []time.Duration) {
	resps, took := make([]response, n), make([]time.Duration, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			start := time.Now()
			r, err := e.do("GET", path, "", nil, "")
			if err != nil {
				r.status = -1
			}
			resps[i], took[i] = r, time.Since(start)
		})
	}
	wg.Wait()
	return resps, took
}

// startBreaker starts an env with a BackendPolicy circuit breaker cb on
// echo-b and a route of prefix to it, once the gateway's config has the
// cluster for which cond holds.
func startBreaker(t *testing.T, prefix string, cb map[string]any, cond func(*gateway.Cluster) bool) *env {
	t.Helper()
	e := startEnv(t)
	e.apply(backendPolicies, "echo-b", backendPolicy("echo-b", "circuitBreaker", cb))
	e.routePrefix(strings.TrimPrefix(prefix, "/"), prefix, "echo-b")
	e.waitCluster("echo-b.default", fmt.Sprintf("the circuit breaker %v in the gateway's config", cb), func(c *gateway.Cluster) bool { return cond(c) && len(c.Endpoints) == 1 })
	e.waitRoute(prefix, "")
	return e
}

// TestMaxConnections: with a BackendPolicy's maxConnections 2, the
// cluster's pool never holds more than 2 connections to the upstream, and
// the requests beyond them wait (pending) instead of failing.
func TestMaxConnections(t *testing.T) {
	e := startBreaker(t, "/mc", map[string]any{"maxConnections": 2}, func(c *gateway.Cluster) bool { return c.MaxConnections == 2 })
	up := e.upstream["echo-b"]
	up.resetMaxOpen()
	const n = 8
	resps, _ := e.concurrently(n, "/mc?sleep=200ms")
	ok := 0
	for _, r := range resps {
		if r.status == 200 {
			ok++
		}
	}
	t.Logf("%d concurrent requests with maxConnections 2: %d × 200, at most %d connections upstream", n, ok, up.mostOpen())
	if ok != n {
		t.Errorf("%d of %d requests answered 200, want all (the excess waits for a connection)", ok, n)
	}
	if got := up.mostOpen(); got > 2 {
		t.Errorf("the upstream held %d connections at once, want at most 2", got)
	}
}

// TestMaxPendingRequests: with maxConnections 1 and maxPendingRequests 1,
// of 4 concurrent requests one is served, one waits for the connection and
// is served after it, and two are answered 503 with x-envoy-overloaded at
// once, counted in /stats.
func TestMaxPendingRequests(t *testing.T) {
	e := startBreaker(t, "/mp", map[string]any{"maxConnections": 1, "maxPendingRequests": 1}, func(c *gateway.Cluster) bool {
		return c.MaxConnections == 1 && c.MaxPendingRequests == 1
	})
	const n = 4
	resps, took := e.concurrently(n, "/mp?sleep=1s")
	count := map[int]int{}
	for i, r := range resps {
		count[r.status]++
		if r.status == 503 {
			if r.header.Get("X-Envoy-Overloaded") != "true" {
				t.Errorf("a 503 with x-envoy-overloaded %q, want \"true\"", r.header.Get("X-Envoy-Overloaded"))
			}
			if took[i] > 500*time.Millisecond {
				t.Errorf("a 503 after %v, want it at once (the upstream holds requests 1s)", took[i])
			}
		}
	}
	t.Logf("%d concurrent requests with maxConnections 1, maxPendingRequests 1: %v", n, count)
	if count[200] != 2 || count[503] != 2 {
		t.Errorf("statuses %v, want 2 × 200 and 2 × 503", count)
	}
	const stat = `sluice_gateway_circuit_breaker_overflows_total{cluster="echo-b.default",limit="pending"} 2`
	if stats := e.adminGet("/stats"); !strings.Contains(stats, stat) {
		t.Errorf("/stats has no %q", stat)
	}
}

// TestMaxRetries: with maxRetries 1, a retry in flight takes the
// cluster's only place, so a second request failing meanwhile is not
// retried: its 503 comes back as it is. Request A fails after 1s and its
// retry holds until 2s; B fails at 1.5s.
func TestMaxRetries(t *testing.T) {
	e := startEnv(t)
	e.apply(backendPolicies, "echo-b", backendPolicy("echo-b", "circuitBreaker", map[string]any{"maxRetries": 1}))
	e.apply(httpRoutes, "mr", httpRoute("mr", nil, map[string]any{
		"matches":     []any{map[string]any{"path": map[string]any{"type": "PathPrefix", "value": "/mr"}}},
		"retry":       map[string]any{"codes": []any{503}, "attempts": 2, "backoff": "10ms"},
		"backendRefs": []any{backend("echo-b", 1)},
	}))
	e.waitCluster("echo-b.default", "maxRetries 1 in the gateway's config", func(c *gateway.Cluster) bool { return c.MaxRetries == 1 && len(c.Endpoints) == 1 })
	e.waitRoute("/mr", "")
	var a, b response
	var wg sync.WaitGroup
	wg.Go(func() { a, _ = e.do("GET", "/mr?fail=a&sleep=1s", "", nil, "") })
	wg.Go(func() { b, _ = e.do("GET", "/mr?fail=b&sleep=1500ms", "", nil, "") })
	wg.Wait()
	t.Logf("maxRetries 1: A (retried) %d, B (failing while A's retry is in flight) %d", a.status, b.status)
	if a.status != 200 {
		t.Errorf("A: status %d, want 200 (its retry)", a.status)
	}
	if b.status != 503 || b.echo == nil {
		t.Errorf("B: status %d (from the upstream: %v), want the upstream's 503, not retried", b.status, b.echo != nil)
	}
	if got := len(e.upstream["echo-b"].requests("/mr")); got < 3 {
		t.Errorf("echo-b got %d requests on /mr, want A's two and B's one (at least 3)", got)
	}
	const stat = `sluice_gateway_circuit_breaker_overflows_total{cluster="echo-b.default",limit="retries"} 1`
	if stats := e.adminGet("/stats"); !strings.Contains(stats, stat) {
		t.Errorf("/stats has no %q", stat)
	}
	// With the retry done, a failure is retried again.
	if r, _ := e.do("GET", "/mr?fail=c", "", nil, ""); r.status != 200 {
		t.Errorf("C after the retries: status %d, want 200 (retried)", r.status)
	}
}
