package gateway

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"reflect"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/sluice/sluice/internal/grpctest"
	"github.com/sluice/sluice/internal/probe"
)

func TestParseHealthChecks(t *testing.T) {
	base := func(checker func(*corev3.HealthCheck)) *clusterv3.Cluster {
		hc := &corev3.HealthCheck{
			Interval: durationpb.New(200 * time.Millisecond), Timeout: durationpb.New(100 * time.Millisecond),
			HealthyThreshold: wrapperspb.UInt32(2), UnhealthyThreshold: wrapperspb.UInt32(3),
		}
		checker(hc)
		return &clusterv3.Cluster{
			Name:                 "web.default",
			ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_EDS},
			HealthChecks:         []*corev3.HealthCheck{hc},
		}
	}
	header := func(k, v string) *corev3.HeaderValueOption {
		return &corev3.HeaderValueOption{Header: &corev3.HeaderValue{Key: k, Value: v}, AppendAction: corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD}
	}
	thresholds := func(c probe.Check) *HealthCheckPolicy {
		c.Timeout, c.UserAgent = 100*time.Millisecond, HealthCheckUserAgent
		return &HealthCheckPolicy{Interval: 200 * time.Millisecond, Timeout: 100 * time.Millisecond, HealthyThreshold: 2, UnhealthyThreshold: 3, Check: c}
	}
	tests := []struct {
		name    string
		cluster *clusterv3.Cluster
		want    *HealthCheckPolicy
		err     string
	}{
		{
			name: "http: Host defaults to the cluster, ranges end before End",
			cluster: base(func(hc *corev3.HealthCheck) {
				hc.HealthChecker = &corev3.HealthCheck_HttpHealthCheck_{HttpHealthCheck: &corev3.HealthCheck_HttpHealthCheck{
					Path:                "/healthz",
					ExpectedStatuses:    []*typev3.Int64Range{{Start: 200, End: 205}, {Start: 302, End: 303}},
					RequestHeadersToAdd: []*corev3.HeaderValueOption{header("x-check", "gw")},
				}}
			}),
			want: thresholds(probe.Check{HTTP: &probe.HTTP{
				Path:             "/healthz",
				ExpectedStatuses: []probe.StatusRange{{Start: 200, End: 204}, {Start: 302, End: 302}},
				Headers:          map[string]string{"Host": "web.default", "X-Check": "gw"},
			}}),
		},
		{
			name: "http: host and Envoy's default 200",
			cluster: base(func(hc *corev3.HealthCheck) {
				hc.HealthChecker = &corev3.HealthCheck_HttpHealthCheck_{HttpHealthCheck: &corev3.HealthCheck_HttpHealthCheck{Path: "/", Host: "web.internal"}}
			}),
			want: thresholds(probe.Check{HTTP: &probe.HTTP{
				Path: "/", ExpectedStatuses: []probe.StatusRange{{Start: 200, End: 200}}, Headers: map[string]string{"Host": "web.internal"},
			}}),
		},
		{
			name: "tcp",
			cluster: base(func(hc *corev3.HealthCheck) {
				hc.HealthChecker = &corev3.HealthCheck_TcpHealthCheck_{TcpHealthCheck: &corev3.HealthCheck_TcpHealthCheck{}}
			}),
			want: thresholds(probe.Check{TCP: &probe.TCP{}}),
		},
		{
			name: "grpc",
			cluster: base(func(hc *corev3.HealthCheck) {
				hc.HealthChecker = &corev3.HealthCheck_GrpcHealthCheck_{GrpcHealthCheck: &corev3.HealthCheck_GrpcHealthCheck{ServiceName: "helloworld.Greeter"}}
			}),
			want: thresholds(probe.Check{GRPC: &probe.GRPC{Service: "helloworld.Greeter"}}),
		},
		{
			name: "tcp payloads",
			cluster: base(func(hc *corev3.HealthCheck) {
				hc.HealthChecker = &corev3.HealthCheck_TcpHealthCheck_{TcpHealthCheck: &corev3.HealthCheck_TcpHealthCheck{
					Send: &corev3.HealthCheck_Payload{Payload: &corev3.HealthCheck_Payload_Text{Text: "50494e47"}},
				}}
			}),
			err: "send and receive payloads are not supported",
		},
		{
			name: "Host among the added headers",
			cluster: base(func(hc *corev3.HealthCheck) {
				hc.HealthChecker = &corev3.HealthCheck_HttpHealthCheck_{HttpHealthCheck: &corev3.HealthCheck_HttpHealthCheck{
					Path: "/", RequestHeadersToAdd: []*corev3.HeaderValueOption{header("host", "x")},
				}}
			}),
			err: `header "host" cannot be modified`,
		},
		{
			name: "two checks",
			cluster: func() *clusterv3.Cluster {
				c := base(func(hc *corev3.HealthCheck) {
					hc.HealthChecker = &corev3.HealthCheck_TcpHealthCheck_{TcpHealthCheck: &corev3.HealthCheck_TcpHealthCheck{}}
				})
				c.HealthChecks = append(c.HealthChecks, c.HealthChecks[0])
				return c
			}(),
			err: "2 health checks: the gateway runs at most one",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := parseCluster(tt.cluster)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("parseCluster error = %v, want one containing %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := c.HealthCheck; !reflect.DeepEqual(got, tt.want) {
				t.Errorf("health check:\n got %s\nwant %s", describePolicy(got), describePolicy(tt.want))
			}
		})
	}
	t.Run("none", func(t *testing.T) {
		c, err := parseCluster(&clusterv3.Cluster{Name: "c", ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_EDS}})
		if err != nil || c.HealthCheck != nil {
			t.Fatalf("parseCluster = %+v, %v; want no health check", c.HealthCheck, err)
		}
	})
}

func describePolicy(p *HealthCheckPolicy) string {
	if p == nil {
		return "none"
	}
	return fmt.Sprintf("%+v http=%+v tcp=%+v grpc=%+v", *p, p.Check.HTTP, p.Check.TCP, p.Check.GRPC)
}

func TestParseEndpointsHealthPort(t *testing.T) {
	le := func(port, health uint32) *endpointv3.LbEndpoint {
		e := &endpointv3.Endpoint{Address: &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
			Address: "10.0.0.1", PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: port},
		}}}}
		if health != 0 {
			e.HealthCheckConfig = &endpointv3.Endpoint_HealthCheckConfig{PortValue: health}
		}
		return &endpointv3.LbEndpoint{HostIdentifier: &endpointv3.LbEndpoint_Endpoint{Endpoint: e}}
	}
	eps, err := parseEndpoints(&endpointv3.ClusterLoadAssignment{ClusterName: "c", Endpoints: []*endpointv3.LocalityLbEndpoints{{
		LbEndpoints: []*endpointv3.LbEndpoint{le(8080, 9901), le(8081, 0)},
	}}})
	if err != nil {
		t.Fatal(err)
	}
	if len(eps) != 2 || eps[0].HealthPort != 9901 || eps[1].HealthPort != 0 {
		t.Fatalf("endpoints = %+v, want health ports 9901 and none", eps)
	}
	if got := healthTarget(eps[0]); got != "10.0.0.1:9901" {
		t.Errorf("healthTarget = %q, want 10.0.0.1:9901", got)
	}
	if got := healthTarget(Endpoint{Addr: "[fd00::1]:80", HealthPort: 81}); got != "[fd00::1]:81" {
		t.Errorf("healthTarget = %q, want [fd00::1]:81", got)
	}
}

// healthServer is an HTTP upstream whose /healthz answers the status it is
// set to, and / its name.
type healthServer struct {
	name   string
	addr   string
	status atomic.Int32
	checks atomic.Int32 // health checks received
	// hang makes /healthz never answer (until the test ends).
	hang atomic.Bool

	mu        sync.Mutex // guards userAgent, host
	userAgent string
	host      string
}

func newHealthServer(t *testing.T, name string) *healthServer {
	t.Helper()
	s := &healthServer{name: name}
	s.status.Store(http.StatusOK)
	released := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/healthz" {
			s.checks.Add(1)
			s.mu.Lock()
			s.userAgent, s.host = r.UserAgent(), r.Host
			s.mu.Unlock()
			if s.hang.Load() {
				select {
				case <-r.Context().Done():
				case <-released:
				}
				return
			}
			w.WriteHeader(int(s.status.Load()))
			return
		}
		io.WriteString(w, s.name)
	}))
	t.Cleanup(srv.Close)
	t.Cleanup(func() { close(released) }) // first: Close waits for the handlers
	s.addr = srv.Listener.Addr().String()
	return s
}

// checkedConfig is a Config with one cluster "up" of the endpoints at
// addrs, health checked by p, and a route to it on port 80.
func checkedConfig(p *HealthCheckPolicy, addrs ...string) *Config {
	c := &Cluster{Name: "up", Loaded: true, HealthCheck: p}
	for _, a := range addrs {
		c.Endpoints = append(c.Endpoints, Endpoint{Addr: a, Weight: 1})
	}
	c.balancer = newBalancer(c.Endpoints, RoundRobin)
	route := &Route{Name: "all", Match: Match{PathKind: PathPrefix, Path: "/", CaseSensitive: true},
		Forward: &Forward{Clusters: []WeightedCluster{{Name: "up", Weight: 1}}, TotalWeight: 1, NotFoundStatus: 503}}
	return &Config{
		Listeners: map[int]*Listener{80: {Name: "l", Port: 80, Routes: &RouteTable{VirtualHosts: []*VirtualHost{{Name: "*", Domains: []string{"*"}, Routes: []*Route{route}}}}}},
		Clusters:  map[string]*Cluster{"up": c},
		Complete:  true,
	}
}

func httpPolicy(interval time.Duration, healthy, unhealthy int) *HealthCheckPolicy {
	return &HealthCheckPolicy{
		Interval: interval, Timeout: time.Second, HealthyThreshold: healthy, UnhealthyThreshold: unhealthy,
		Check: probe.Check{
			Timeout: time.Second, UserAgent: HealthCheckUserAgent,
			HTTP: &probe.HTTP{Path: "/healthz", ExpectedStatuses: []probe.StatusRange{{Start: 200, End: 200}}, Headers: map[string]string{"Host": "up"}},
		},
	}
}

// testGateway is a Gateway without xDS whose health checkers stop when the
// test ends, and whose configs go in force through swapLocked.
func testGateway(t *testing.T) *Gateway {
	t.Helper()
	g, err := New(Options{XDSServer: "unused:1", Gateway: "default/test"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		g.health.close()
		g.transports.closeAll()
	})
	return g
}

func (g *Gateway) swap(cfg *Config) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.swapLocked(cfg)
}

// unusableNow is what a request to cluster up would skip now.
func (g *Gateway) unusableNow() map[string]bool {
	return g.unusable(g.cfg.Load().Clusters["up"])
}

// eventually polls cond until it holds or the deadline passes.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// get sends GET / through g's port 80 and returns the status and body.
func get(g *Gateway) (int, string) {
	w := httptest.NewRecorder()
	g.handler(80).ServeHTTP(w, httptest.NewRequest("GET", "http://example.com/", nil))
	return w.Code, strings.TrimSpace(w.Body.String())
}

// TestHealthCheckThresholds: after its first result, an endpoint turns
// unhealthy after unhealthy_threshold failures in a row and healthy again
// after healthy_threshold successes; meanwhile requests go to the other.
func TestHealthCheckThresholds(t *testing.T) {
	g := testGateway(t)
	a, b := newHealthServer(t, "a"), newHealthServer(t, "b")
	g.swap(checkedConfig(httpPolicy(20*time.Millisecond, 2, 3), a.addr, b.addr))
	eventually(t, "both endpoints checked", func() bool { return a.checks.Load() > 0 && b.checks.Load() > 0 })
	eventually(t, "both endpoints healthy", func() bool { return len(g.unusableNow()) == 0 })

	a.mu.Lock()
	ua, host := a.userAgent, a.host
	a.mu.Unlock()
	if ua != HealthCheckUserAgent || host != "up" {
		t.Errorf("health check User-Agent %q, Host %q; want %q, %q", ua, host, HealthCheckUserAgent, "up")
	}

	a.status.Store(http.StatusServiceUnavailable)
	before := a.checks.Load()
	eventually(t, "a unhealthy", func() bool { return g.unusableNow()[a.addr] })
	if n := a.checks.Load() - before; n < 3 {
		t.Errorf("a turned unhealthy after %d failed checks, want at least the threshold 3", n)
	}
	if got := metricValue(t, g, "sluice_gateway_unhealthy_endpoints", "cluster", "up"); got != 1 {
		t.Errorf("unhealthy endpoints gauge = %v, want 1", got)
	}
	if got := metricValue(t, g, "sluice_gateway_health_checks_total", "cluster", "up", "result", "failure"); got < 3 {
		t.Errorf("failed checks counted = %v, want at least 3", got)
	}
	for i := range 10 {
		if code, body := get(g); code != 200 || body != "b" {
			t.Fatalf("request %d with a unhealthy: %d %q, want 200 from b", i, code, body)
		}
	}

	b.status.Store(http.StatusInternalServerError)
	eventually(t, "b unhealthy too", func() bool { return g.unusableNow()[b.addr] })
	if !g.noHealthyEndpoints(g.cfg.Load().Clusters["up"]) {
		t.Error("every endpoint unhealthy, but noHealthyEndpoints is false")
	}

	a.status.Store(http.StatusOK)
	before = a.checks.Load()
	eventually(t, "a healthy again", func() bool { return !g.unusableNow()[a.addr] })
	if n := a.checks.Load() - before; n < 2 {
		t.Errorf("a turned healthy after %d passing checks, want at least the threshold 2", n)
	}
	if g.noHealthyEndpoints(g.cfg.Load().Clusters["up"]) {
		t.Error("a recovered, but noHealthyEndpoints is true")
	}
	if code, body := get(g); code != 200 || body != "a" {
		t.Errorf("after a recovered: %d %q, want 200 from a", code, body)
	}
}

// TestHealthCheckFirstResultDecides: a new endpoint's first result decides
// its state at once, whatever the thresholds. The interval is an hour, so
// exactly one check runs.
func TestHealthCheckFirstResultDecides(t *testing.T) {
	g := testGateway(t)
	up, down := newHealthServer(t, "up"), newHealthServer(t, "down")
	down.status.Store(http.StatusServiceUnavailable)
	g.swap(checkedConfig(httpPolicy(time.Hour, 5, 5), up.addr, down.addr))
	// The two first checks run concurrently: wait for both.
	eventually(t, "both endpoints checked", func() bool { return up.checks.Load() > 0 && down.checks.Load() > 0 })
	eventually(t, "down unhealthy after its first check", func() bool { return g.unusableNow()[down.addr] })
	if got := g.unusableNow(); got[up.addr] {
		t.Errorf("unusable = %v, want up healthy after its first check", got)
	}
	if n := up.checks.Load() + down.checks.Load(); n != 2 {
		t.Errorf("%d checks ran, want one per endpoint", n)
	}
}

// TestHealthCheckPending: endpoints with no result yet get requests while no
// endpoint is healthy, and none once one is.
func TestHealthCheckPending(t *testing.T) {
	g := testGateway(t)
	h := newHealthServer(t, "hanging")
	h.hang.Store(true) // its checks never finish within the test
	hanging := h.addr
	p := httpPolicy(time.Hour, 1, 1)
	p.Timeout, p.Check.Timeout = time.Hour, time.Hour
	g.swap(checkedConfig(p, hanging))
	eventually(t, "the check of the pending endpoint in flight", func() bool { return g.health.running.Load() == 1 })
	if got := g.unusableNow(); got != nil {
		t.Fatalf("unusable = %v with every endpoint pending, want nil", got)
	}

	ok := newHealthServer(t, "ok")
	g.swap(checkedConfig(p, hanging, ok.addr))
	eventually(t, "the pending endpoint out of traffic once another is healthy", func() bool { return g.unusableNow()[hanging] })
	if got := g.unusableNow(); got[ok.addr] {
		t.Errorf("unusable = %v, want the healthy endpoint usable", got)
	}
	for i := range 5 {
		if code, body := get(g); code != 200 || body != "ok" {
			t.Fatalf("request %d: %d %q, want 200 from ok", i, code, body)
		}
	}
}

// TestHealthCheckTCPAndGRPC: the other kinds of check take endpoints out
// and back.
func TestHealthCheckTCPAndGRPC(t *testing.T) {
	t.Run("tcp", func(t *testing.T) {
		g := testGateway(t)
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := ln.Addr().String()
		ln.Close()
		p := &HealthCheckPolicy{Interval: 20 * time.Millisecond, Timeout: time.Second, HealthyThreshold: 1, UnhealthyThreshold: 1,
			Check: probe.Check{TCP: &probe.TCP{}, Timeout: time.Second}}
		g.swap(checkedConfig(p, addr))
		eventually(t, "closed port unhealthy", func() bool { return g.unusableNow()[addr] })
		ln, err = net.Listen("tcp", addr)
		if err != nil {
			t.Skipf("cannot listen on %s again: %v", addr, err)
		}
		t.Cleanup(func() { ln.Close() })
		eventually(t, "listening port healthy", func() bool { return !g.unusableNow()[addr] })
	})
	t.Run("grpc", func(t *testing.T) {
		g := testGateway(t)
		be := grpctest.Start(t, "g1")
		const svc = "grpc.testing.TestService"
		be.Health.SetServingStatus(svc, healthpb.HealthCheckResponse_NOT_SERVING)
		addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(be.Port))
		p := &HealthCheckPolicy{Interval: 20 * time.Millisecond, Timeout: time.Second, HealthyThreshold: 1, UnhealthyThreshold: 1,
			Check: probe.Check{GRPC: &probe.GRPC{Service: svc}, Timeout: time.Second, UserAgent: HealthCheckUserAgent}}
		g.swap(checkedConfig(p, addr))
		eventually(t, "NOT_SERVING unhealthy", func() bool { return g.unusableNow()[addr] })
		be.Health.SetServingStatus(svc, healthpb.HealthCheckResponse_SERVING)
		eventually(t, "SERVING healthy", func() bool { return !g.unusableNow()[addr] })
	})
}

// TestHealthCheckLoopsStop: an endpoint removed from EDS, a cluster removed
// and a health check removed stop their loops, and close stops the rest.
func TestHealthCheckLoopsStop(t *testing.T) {
	base := runtime.NumGoroutine()
	g, err := New(Options{XDSServer: "unused:1", Gateway: "default/test"})
	if err != nil {
		t.Fatal(err)
	}
	a, b := newHealthServer(t, "a"), newHealthServer(t, "b")
	p := httpPolicy(10*time.Millisecond, 1, 1)
	g.swap(checkedConfig(p, a.addr, b.addr))
	eventually(t, "two loops", func() bool { return g.health.running.Load() == 2 })
	eventually(t, "both checked", func() bool { return a.checks.Load() > 0 && b.checks.Load() > 0 })

	g.swap(checkedConfig(p, a.addr))
	eventually(t, "b's loop stopped", func() bool { return g.health.running.Load() == 1 })
	stopped := b.checks.Load()
	time.Sleep(50 * time.Millisecond) // five intervals
	if n := b.checks.Load(); n != stopped {
		t.Errorf("b got %d checks after it left the cluster", n-stopped)
	}

	g.swap(checkedConfig(nil, a.addr))
	eventually(t, "no loop without a health check", func() bool { return g.health.running.Load() == 0 })
	if g.unusableNow() != nil || g.cfg.Load().Clusters["up"].health != nil {
		t.Error("a cluster without a health check still has health state")
	}

	g.swap(checkedConfig(p, a.addr, b.addr))
	eventually(t, "two loops again", func() bool { return g.health.running.Load() == 2 })
	g.swap(&Config{Clusters: map[string]*Cluster{}, Listeners: map[int]*Listener{}})
	eventually(t, "no loop without the cluster", func() bool { return g.health.running.Load() == 0 })
	g.health.mu.Lock()
	if n := len(g.health.byCluster); n != 0 {
		t.Errorf("%d clusters still tracked", n)
	}
	g.health.mu.Unlock()

	g.swap(checkedConfig(p, a.addr, b.addr))
	g.health.close()
	if n := g.health.running.Load(); n != 0 {
		t.Errorf("%d loops after close", n)
	}
	g.swap(checkedConfig(p, a.addr)) // after close: starts nothing
	if n := g.health.running.Load(); n != 0 {
		t.Errorf("%d loops started after close", n)
	}
	g.transports.closeAll()
	eventually(t, "goroutines back to where they were", func() bool {
		return runtime.NumGoroutine() <= base+2 // the test servers' own
	})
}

// TestUnusableCheap: a cluster with neither outlier ejections nor endpoints
// kept out costs no allocation, and a caller's additions never reach the
// shared set.
func TestUnusableCheap(t *testing.T) {
	g := testGateway(t)
	plain := &Cluster{Name: "plain", Endpoints: []Endpoint{{Addr: "a"}}}
	if n := testing.AllocsPerRun(100, func() { g.unusable(plain) }); n != 0 {
		t.Errorf("unusable without health checks: %v allocations, want 0", n)
	}
	ch := &clusterHealth{name: "c", eps: map[string]*endpointCheck{"a": {addr: "a", state: healthy}, "b": {addr: "b", state: unhealthy}}}
	c := &Cluster{Name: "c", Endpoints: []Endpoint{{Addr: "a"}, {Addr: "b"}}, health: ch}
	if n := testing.AllocsPerRun(100, func() { g.unusable(c) }); n != 0 {
		t.Errorf("unusable with nothing published: %v allocations, want 0", n)
	}
	ch.publishLocked(g.metrics)
	got := g.unusable(c)
	if len(got) != 1 || !got["b"] {
		t.Fatalf("unusable = %v, want b", got)
	}
	got["a"] = true // as a request marks what it tried
	if again := g.unusable(c); again["a"] {
		t.Error("a caller's addition reached the cluster's set")
	}
}

// metricValue is the value of the series of name with the label pairs
// given, or -1 when there is none.
func metricValue(t *testing.T, g *Gateway, name string, labels ...string) float64 {
	t.Helper()
	mfs, err := g.metrics.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	series:
		for _, m := range mf.GetMetric() {
			got := map[string]string{}
			for _, l := range m.GetLabel() {
				got[l.GetName()] = l.GetValue()
			}
			for i := 0; i+1 < len(labels); i += 2 {
				if got[labels[i]] != labels[i+1] {
					continue series
				}
			}
			if m.GetCounter() != nil {
				return m.GetCounter().GetValue()
			}
			return m.GetGauge().GetValue()
		}
	}
	return -1
}

// TestHealthCheckAllFailing503: with every endpoint failing its check, a
// request gets 503 "no healthy upstream" rather than an unhealthy endpoint
// (no panic mode).
func TestHealthCheckAllFailing503(t *testing.T) {
	g := testGateway(t)
	a := newHealthServer(t, "a")
	a.status.Store(http.StatusServiceUnavailable)
	g.swap(checkedConfig(httpPolicy(time.Hour, 1, 1), a.addr))
	eventually(t, "a unhealthy", func() bool { return g.unusableNow()[a.addr] })
	if code, body := get(g); code != http.StatusServiceUnavailable || body != "no healthy upstream" {
		t.Errorf("every endpoint unhealthy: %d %q, want 503 no healthy upstream", code, body)
	}
	if a.checks.Load() != 1 {
		t.Errorf("a got %d health checks, want 1", a.checks.Load())
	}
}
