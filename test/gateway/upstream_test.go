package gatewaye2e

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/sluice/sluice/internal/client"
	"github.com/sluice/sluice/internal/resource"
)

var backendPolicies = client.ResourceOf(resource.BackendPolicyKind)

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
	svc := serviceObj("pool", "http")
	e.apply(services, "pool", svc)
	for name, u := range map[string]*echo{"pool-good": good, "pool-bad": bad} {
		ep := endpointObj(name, u.port)
		ep["metadata"].(map[string]any)["labels"] = map[string]string{"app": "pool"}
		e.apply(endpoints, name, ep)
	}
	e.apply(backendPolicies, "pool", backendPolicy("pool", "outlierDetection", map[string]any{"consecutive5xx": 3, "baseEjectionTime": "1m", "maxEjectionPercent": 50}))
	e.apply(httpRoutes, "pool", httpRoute("pool", nil, map[string]any{
		"matches":     []any{map[string]any{"path": map[string]any{"type": "PathPrefix", "value": "/pool"}}},
		"backendRefs": []any{backend("pool", 1)},
	}))
	e.waitFor("both pool endpoints in the gateway's config", 10*time.Second, func() (bool, string) {
		c := e.gw.Config().Clusters["pool.default"]
		return c != nil && len(c.Endpoints) == 2 && c.Outlier != nil, "not yet"
	})
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
	e := startEnv(t)
	e.apply(backendPolicies, "echo-b", backendPolicy("echo-b", "circuitBreaker", map[string]any{"maxRequests": 2}))
	e.apply(httpRoutes, "cb", httpRoute("cb", nil, map[string]any{
		"matches":     []any{map[string]any{"path": map[string]any{"type": "PathPrefix", "value": "/cb"}}},
		"backendRefs": []any{backend("echo-b", 1)},
	}))
	e.waitFor("the circuit breaker in the gateway's config", 10*time.Second, func() (bool, string) {
		c := e.gw.Config().Clusters["echo-b.default"]
		return c != nil && c.MaxRequests == 2 && len(c.Endpoints) == 1, fmt.Sprintf("%+v", c)
	})
	e.waitRoute("/cb", "")
	const n = 6
	statuses := make(chan int, n)
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			r, err := e.do("GET", "/cb?sleep=500ms", "", nil, "")
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
