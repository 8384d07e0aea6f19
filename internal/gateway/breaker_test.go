package gateway

import (
	"context"
	"math"
	"testing"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// TestParseLimits: a cluster's circuit breaker is the default priority's
// thresholds, Envoy's defaults for those unset, no limit (0) for the
// largest value (what the server sends for a BackendPolicy's 0).
func TestParseLimits(t *testing.T) {
	u32 := wrapperspb.UInt32
	for _, tc := range []struct {
		name string
		cb   *clusterv3.CircuitBreakers
		want Limits
	}{
		{"none", nil, Limits{1024, 1024, 1024, 3}},
		{"all set", &clusterv3.CircuitBreakers{Thresholds: []*clusterv3.CircuitBreakers_Thresholds{{
			MaxConnections: u32(2), MaxPendingRequests: u32(1), MaxRequests: u32(5), MaxRetries: u32(0),
		}}}, Limits{2, 1, 5, 0}},
		{"some set, some unlimited", &clusterv3.CircuitBreakers{Thresholds: []*clusterv3.CircuitBreakers_Thresholds{{
			MaxConnections: u32(2), MaxRequests: u32(math.MaxUint32),
		}}}, Limits{2, 1024, 0, 3}},
		{"high priority ignored", &clusterv3.CircuitBreakers{Thresholds: []*clusterv3.CircuitBreakers_Thresholds{{
			Priority: corev3.RoutingPriority_HIGH, MaxConnections: u32(7),
		}}}, Limits{1024, 1024, 1024, 3}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := parseCluster(&clusterv3.Cluster{Name: "c", ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_EDS}, CircuitBreakers: tc.cb})
			if err != nil {
				t.Fatal(err)
			}
			if c.Limits != tc.want {
				t.Errorf("limits %+v, want %+v", c.Limits, tc.want)
			}
		})
	}
}

// TestPoolPending: an HTTP/1.1 pool with max_connections 1 and
// max_pending_requests 1 gives its connection, lets one request wait for
// it, refuses the next at once, and hands the connection to the waiter
// when it is given back.
func TestPoolPending(t *testing.T) {
	p := newPool(false)
	p.limits.Store(&Limits{MaxConnections: 1, MaxPendingRequests: 1})
	ctx := context.Background()
	_, err := p.connection(ctx)
	if err != nil {
		t.Fatalf("first: %v, want the connection", err)
	}
	got := make(chan error, 1)
	go func() {
		_, err := p.connection(ctx)
		if err == nil {
			p.releaseConnection()
		}
		got <- err
	}()
	deadline := time.Now().Add(5 * time.Second)
	for p.pending.Load() != 1 {
		if time.Now().After(deadline) {
			t.Fatal("the second request does not wait as pending")
		}
		time.Sleep(time.Millisecond)
	}
	if _, err := p.connection(ctx); err != errPendingOverflow {
		t.Errorf("third: %v, want errPendingOverflow", err)
	}
	p.releaseConnection()
	if err := <-got; err != nil {
		t.Errorf("second, after the first gave back its connection: %v, want the connection", err)
	}
	if p.pending.Load() != 0 {
		t.Errorf("%d pending at the end, want 0", p.pending.Load())
	}
}
