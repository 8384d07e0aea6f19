package gatewaye2e

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/sluice/sluice/internal/client"
	"github.com/sluice/sluice/internal/gateway"
	"github.com/sluice/sluice/internal/resource"
)

var backendPolicies = client.ResourceOf(resource.BackendPolicyKind)

// addPool applies a Service selecting app=name and an Endpoint per
// upstream, named after it.
func (e *env) addPool(name string, ups ...*echo) {
	e.t.Helper()
	e.apply(services, name, serviceObj(name, "http"))
	for _, u := range ups {
		ep := endpointObj(u.name, u.port)
		ep["metadata"].(map[string]any)["labels"] = map[string]string{"app": name}
		e.apply(endpoints, u.name, ep)
	}
}

// routePrefix applies an HTTPRoute sending a path prefix to a Service.
func (e *env) routePrefix(name, prefix, service string) {
	e.t.Helper()
	e.apply(httpRoutes, name, httpRoute(name, nil, map[string]any{
		"matches":     []any{map[string]any{"path": map[string]any{"type": "PathPrefix", "value": prefix}}},
		"backendRefs": []any{backend(service, 1)},
	}))
}

// waitCluster waits until the gateway's config has a cluster for which
// cond holds.
func (e *env) waitCluster(name, what string, cond func(*gateway.Cluster) bool) {
	e.t.Helper()
	e.waitFor(what, 10*time.Second, func() (bool, string) {
		c := e.gw.Config().Clusters[name]
		return c != nil && cond(c), fmt.Sprintf("%+v", c)
	})
}

// backendPolicy is a BackendPolicy named like the Service it targets,
// with one field of its spec.
func backendPolicy(service, field string, value map[string]any) map[string]any {
	return map[string]any{
		"apiVersion": "sluice.io/v1alpha1",
		"kind":       "BackendPolicy",
		"metadata":   map[string]any{"name": service, "namespace": namespace},
		"spec":       map[string]any{"targetRefs": []any{map[string]any{"name": service}}, field: value},
	}
}

// TestOutlierDetection: with a BackendPolicy's outlier detection, an
// Endpoint that answers 500 is ejected after consecutive5xx of them and
// gets no more requests; its healthy peer serves the rest.
func TestOutlierDetection(t *testing.T) {
	e := startEnv(t)
	good, bad := startEcho(t, "pool-good"), startEcho(t, "pool-bad")
	bad.status = 500
	e.addPool("pool", good, bad)
	e.apply(backendPolicies, "pool", backendPolicy("pool", "outlierDetection", map[string]any{"consecutive5xx": 3, "baseEjectionTime": "1m", "maxEjectionPercent": 50}))
	e.routePrefix("pool", "/pool", "pool")
	e.waitCluster("pool.default", "both pool endpoints in the gateway's config", func(c *gateway.Cluster) bool { return len(c.Endpoints) == 2 && c.Outlier != nil })
	const n = 200
	failed := 0
	for range n {
		r, err := e.do("GET", "/pool", "", nil, "")
		if err != nil {
			t.Fatal(err)
		}
		if r.status != 200 {
			failed++
		}
	}
	t.Logf("%d requests, %d answered 500 before pool-bad was ejected; pool-bad got %d", n, failed, len(bad.requests("/pool")))
	if failed != 3 {
		t.Errorf("%d of %d requests failed, want 3 (consecutive5xx, then pool-bad ejected)", failed, n)
	}
	if got := len(good.requests("/pool")); got != n-failed {
		t.Errorf("pool-good served %d requests, want %d", got, n-failed)
	}
}

// TestCircuitBreaker: with a BackendPolicy's circuitBreaker.maxRequests,
// requests over that many in flight to the Service get 503 at once.
func TestCircuitBreaker(t *testing.T) {
	e := startBreaker(t, "/cb", map[string]any{"maxRequests": 2}, func(c *gateway.Cluster) bool { return c.MaxRequests == 2 })
	const n = 6
	statuses := make(chan int, n)
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			r, err := e.do("GET", "/cb?sleep=2s", "", nil, "")
			if err != nil {
				statuses <- -1
				return
			}
			statuses <- r.status
		})
	}
	wg.Wait()
	close(statuses)
	count := map[int]int{}
	for s := range statuses {
		count[s]++
	}
	t.Logf("%d concurrent requests with maxRequests 2: %v", n, count)
	if count[200] != 2 || count[503] != n-2 {
		t.Errorf("statuses %v, want 2 × 200 and %d × 503", count, n-2)
	}
}

// TestLeastRequest: with a BackendPolicy's LeastRequest balancer, a slow
// Endpoint (more requests in flight) gets fewer requests than a fast one;
// round-robin would split them evenly.
func TestLeastRequest(t *testing.T) {
	e := startEnv(t)
	fast, slow := startEcho(t, "lr-fast"), startEcho(t, "lr-slow")
	slow.delay = 50 * time.Millisecond
	e.addPool("lr", fast, slow)
	e.apply(backendPolicies, "lr", backendPolicy("lr", "loadBalancer", map[string]any{"type": "LeastRequest"}))
	e.routePrefix("lr", "/lr", "lr")
	e.waitCluster("lr.default", "least-request on both endpoints in the gateway's config", func(c *gateway.Cluster) bool { return c.LB == gateway.LeastRequest && len(c.Endpoints) == 2 })
	l := e.startLoad("/lr", 8)
	e.waitRequests(l, 400)
	l.finish(t, "least-request")
	f, s := len(fast.requests("/lr")), len(slow.requests("/lr"))
	t.Logf("lr-fast served %d, lr-slow (50 ms slower) %d", f, s)
	if f < 4*s {
		t.Errorf("lr-fast served %d requests and lr-slow %d, want the fast one at least 4 times as many", f, s)
	}
}

// TestRingHash: with a BackendPolicy's RingHash balancer hashing on a
// header, every request of one header value goes to one Endpoint, and the
// values spread over both.
func TestRingHash(t *testing.T) {
	e := startEnv(t)
	one, two := startEcho(t, "rh-1"), startEcho(t, "rh-2")
	e.addPool("rh", one, two)
	e.apply(backendPolicies, "rh", backendPolicy("rh", "loadBalancer", map[string]any{"type": "RingHash", "hashOn": map[string]any{"header": "x-user"}}))
	e.routePrefix("rh", "/rh", "rh")
	e.waitCluster("rh.default", "ring hash on both endpoints in the gateway's config", func(c *gateway.Cluster) bool { return c.LB == gateway.RingHash && len(c.Endpoints) == 2 })
	e.waitFor("the route hashing on x-user", 10*time.Second, func() (bool, string) {
		l := e.gw.Config().Listeners[e.port]
		for _, vh := range l.Routes.VirtualHosts {
			for _, r := range vh.Routes {
				if r.Forward != nil && r.Forward.Clusters[0].Name == "rh.default" && len(r.Forward.Hash) == 1 {
					return true, ""
				}
			}
		}
		return false, "no hash policy yet"
	})
	byUser := map[string]map[string]int{}
	served := map[string]int{}
	for u := range 20 {
		user := fmt.Sprintf("user-%d", u)
		byUser[user] = map[string]int{}
		for range 5 {
			r, err := e.do("GET", "/rh", "", map[string]string{"x-user": user}, "")
			if err != nil || r.echo == nil {
				t.Fatalf("user %s: %v %d %s", user, err, r.status, r.body)
			}
			byUser[user][r.echo.Upstream]++
			served[r.echo.Upstream]++
		}
	}
	for user, ups := range byUser {
		if len(ups) != 1 {
			t.Errorf("%s went to %v, want one endpoint", user, ups)
		}
	}
	t.Logf("20 users × 5 requests: %v", served)
	if served["rh-1"] == 0 || served["rh-2"] == 0 {
		t.Errorf("every user went to one endpoint: %v", served)
	}
}
