package registry_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/sluice/sluice/internal/registry"
	"github.com/sluice/sluice/internal/resource"
	"github.com/sluice/sluice/internal/servertest"
	"github.com/sluice/sluice/internal/store"
)

// replica is one server replica's registry. It reaches etcd through a TCP
// relay of its own, so that a test can cut it off as a crashed process
// would be: nothing it sends (such as revoking its lease) arrives any more.
type replica struct {
	reg    *registry.Registry
	store  *store.Store
	client *clientv3.Client
	relay  *relay
	cancel context.CancelFunc
	done   chan struct{}
}

// relay forwards TCP connections to etcd until it is cut.
type relay struct {
	ln    net.Listener
	mu    sync.Mutex
	conns []net.Conn
}

func newRelay(t *testing.T, target string) *relay {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r := &relay{ln: ln}
	go func() {
		for {
			in, err := ln.Accept()
			if err != nil {
				return
			}
			out, err := net.Dial("tcp", target)
			if err != nil {
				in.Close()
				continue
			}
			r.mu.Lock()
			r.conns = append(r.conns, in, out)
			r.mu.Unlock()
			go func() { io.Copy(out, in); out.Close() }()
			go func() { io.Copy(in, out); in.Close() }()
		}
	}()
	t.Cleanup(r.cut)
	return r
}

func (r *relay) cut() {
	r.ln.Close()
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, c := range r.conns {
		c.Close()
	}
}

func startReplica(t *testing.T, e *servertest.Etcd, id string, ttl time.Duration) *replica {
	t.Helper()
	rl := newRelay(t, strings.TrimPrefix(e.Embedded.Endpoint(), "http://"))
	c, err := clientv3.New(clientv3.Config{Endpoints: []string{"http://" + rl.ln.Addr().String()}, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	st := store.New(c, resource.Builtin(), store.Options{})
	reg := registry.New(st, registry.Options{ReplicaID: id, SessionTTL: ttl, Resync: time.Second, Logger: servertest.Logger()})
	ctx, cancel := context.WithCancel(context.Background())
	r := &replica{reg: reg, store: st, client: c, relay: rl, cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(r.done)
		reg.Run(ctx)
	}()
	t.Cleanup(r.stop)
	return r
}

// stop shuts the replica down cleanly (it hands its checks over at once).
func (r *replica) stop() {
	r.cancel()
	<-r.done
	r.client.Close()
}

// crash makes the replica vanish without a word: its way to etcd is cut
// first, so its session lease is neither revoked nor kept alive.
func (r *replica) crash() {
	r.relay.cut()
	r.cancel()
}

func endpoint(name string, mutate func(*resource.Endpoint)) *resource.Endpoint {
	ep := &resource.Endpoint{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default", Labels: map[string]string{"app": "web"}},
		Spec:       resource.EndpointSpec{Address: "127.0.0.1", Ports: []resource.EndpointPort{{Port: 8080}}},
	}
	ep.GetObjectKind().SetGroupVersionKind(resource.EndpointKind.GVK())
	if mutate != nil {
		mutate(ep)
	}
	return ep
}

func ttl(d time.Duration) func(*resource.Endpoint) {
	return func(ep *resource.Endpoint) { ep.Spec.TTL = &metav1.Duration{Duration: d} }
}

func create(t *testing.T, st *store.Store, ep *resource.Endpoint) *resource.Endpoint {
	t.Helper()
	obj, err := st.Create(context.Background(), ep, store.WriteOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return obj.(*resource.Endpoint)
}

// waitFor polls the Endpoint until cond holds, failing after timeout.
func waitFor(t *testing.T, st *store.Store, name, what string, timeout time.Duration, cond func(*resource.Endpoint) bool) *resource.Endpoint {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var last *resource.Endpoint
	for {
		obj, err := st.Get(context.Background(), resource.EndpointKind, "default", name)
		if err == nil {
			last = obj.(*resource.Endpoint)
			if cond(last) {
				return last
			}
		} else if !errors.Is(err, resource.ErrNotFound) {
			t.Fatal(err)
		} else {
			last = nil
			if cond(nil) {
				return nil
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("endpoint %s: not %s after %s; last seen: %+v", name, what, timeout, statusOf(last))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func statusOf(ep *resource.Endpoint) any {
	if ep == nil {
		return "deleted"
	}
	return ep.Status
}

func health(h resource.Health) func(*resource.Endpoint) bool {
	return func(ep *resource.Endpoint) bool { return ep != nil && ep.Status.Health == h }
}

func check(ep *resource.Endpoint, name string) resource.CheckStatus {
	for _, c := range ep.Status.Checks {
		if c.Name == name {
			return c
		}
	}
	return resource.CheckStatus{}
}

func TestTTLHeartbeatsThenExpiry(t *testing.T) {
	e := servertest.StartEtcd(t)
	r := startReplica(t, e, "a", 2*time.Second)
	ctx := context.Background()
	create(t, r.store, endpoint("web-1", ttl(2*time.Second)))

	// Before the first heartbeat the Endpoint is not in traffic.
	ep := waitFor(t, r.store, "web-1", "waiting for a heartbeat", 5*time.Second, func(ep *resource.Endpoint) bool {
		return ep != nil && check(ep, resource.CheckTTL).Output == "waiting for the first heartbeat"
	})
	if ep.Status.Health != resource.HealthUnknown {
		t.Fatalf("health before any heartbeat = %s, want unknown", ep.Status.Health)
	}

	if err := r.reg.Heartbeat(ctx, "default", "web-1", resource.CheckPassing, "all good"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, r.store, "web-1", "healthy", 3*time.Second, health(resource.HealthHealthy))

	// Heartbeats every half TTL keep it healthy for several TTLs.
	stop := time.Now().Add(5 * time.Second)
	for time.Now().Before(stop) {
		time.Sleep(time.Second)
		if err := r.reg.Heartbeat(ctx, "default", "web-1", resource.CheckPassing, "all good"); err != nil {
			t.Fatal(err)
		}
		obj, _ := r.store.Get(ctx, resource.EndpointKind, "default", "web-1")
		if h := obj.(*resource.Endpoint).Status.Health; h != resource.HealthHealthy {
			t.Fatalf("health while heartbeating = %s, want healthy", h)
		}
	}

	// Heartbeats stop: unhealthy after the TTL, with the reason.
	stopped := time.Now()
	ep = waitFor(t, r.store, "web-1", "unhealthy", 6*time.Second, health(resource.HealthUnhealthy))
	t.Logf("marked unhealthy %s after the last heartbeat (TTL 2s)", time.Since(stopped).Round(10*time.Millisecond))
	if c := check(ep, resource.CheckTTL); c.State != resource.CheckCritical || !strings.Contains(c.Output, "TTL expired") {
		t.Errorf("ttl check = %+v, want critical with TTL expired", c)
	}

	// A heartbeat brings it back.
	if err := r.reg.Heartbeat(ctx, "default", "web-1", resource.CheckPassing, ""); err != nil {
		t.Fatal(err)
	}
	waitFor(t, r.store, "web-1", "healthy again", 3*time.Second, health(resource.HealthHealthy))
}

func TestTTLExpiryRemoves(t *testing.T) {
	e := servertest.StartEtcd(t)
	r := startReplica(t, e, "a", 2*time.Second)
	create(t, r.store, endpoint("web-1", func(ep *resource.Endpoint) {
		ttl(time.Second)(ep)
		ep.Spec.OnTTLExpiry = resource.TTLExpiryRemove
	}))
	if err := r.reg.Heartbeat(context.Background(), "default", "web-1", resource.CheckPassing, ""); err != nil {
		t.Fatal(err)
	}
	waitFor(t, r.store, "web-1", "healthy", 3*time.Second, health(resource.HealthHealthy))
	waitFor(t, r.store, "web-1", "removed", 6*time.Second, func(ep *resource.Endpoint) bool { return ep == nil })
	err := r.reg.Heartbeat(context.Background(), "default", "web-1", resource.CheckPassing, "")
	if !errors.Is(err, resource.ErrNotFound) {
		t.Errorf("heartbeat of a removed endpoint: %v, want not found", err)
	}
}

func TestHeartbeatStates(t *testing.T) {
	e := servertest.StartEtcd(t)
	r := startReplica(t, e, "a", 2*time.Second)
	ctx := context.Background()
	create(t, r.store, endpoint("web-1", ttl(30*time.Second)))
	create(t, r.store, endpoint("plain", nil))

	steps := []struct {
		state  resource.CheckState
		output string
		health resource.Health
	}{
		{resource.CheckWarning, "disk 91% full", resource.HealthHealthy},
		{resource.CheckCritical, "database down", resource.HealthUnhealthy},
		{resource.CheckPassing, "", resource.HealthHealthy},
	}
	for _, s := range steps {
		if err := r.reg.Heartbeat(ctx, "default", "web-1", s.state, s.output); err != nil {
			t.Fatal(err)
		}
		ep := waitFor(t, r.store, "web-1", string(s.state), 3*time.Second, func(ep *resource.Endpoint) bool {
			return ep != nil && check(ep, resource.CheckTTL).State == s.state
		})
		if c := check(ep, resource.CheckTTL); c.Output != s.output || ep.Status.Health != s.health {
			t.Errorf("after %s: check %+v health %s, want output %q health %s", s.state, c, ep.Status.Health, s.output, s.health)
		}
	}

	for _, tc := range []struct {
		name, ep string
		state    resource.CheckState
		want     error
	}{
		{"unknown endpoint", "nope", resource.CheckPassing, resource.ErrNotFound},
		{"no ttl", "plain", resource.CheckPassing, resource.ErrBadRequest},
		{"bad state", "web-1", "fine", resource.ErrBadRequest},
	} {
		if err := r.reg.Heartbeat(ctx, "default", tc.ep, tc.state, ""); !errors.Is(err, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.want)
		}
	}
}

// flipper is an HTTP server whose health answer can be flipped, counting
// the checks it receives per path.
type flipper struct {
	srv  *httptest.Server
	code atomic.Int32
	mu   sync.Mutex
	hits map[string][]time.Time
}

func newFlipper(t *testing.T) *flipper {
	f := &flipper{hits: map[string][]time.Time{}}
	f.code.Store(http.StatusOK)
	f.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		f.hits[r.URL.Path] = append(f.hits[r.URL.Path], time.Now())
		f.mu.Unlock()
		w.WriteHeader(int(f.code.Load()))
		fmt.Fprintf(w, "status %d", f.code.Load())
	}))
	t.Cleanup(f.srv.Close)
	return f
}

func (f *flipper) port(t *testing.T) int32 {
	var p int32
	if _, err := fmt.Sscanf(f.srv.Listener.Addr().String(), "127.0.0.1:%d", &p); err != nil {
		t.Fatal(err)
	}
	return p
}

func (f *flipper) hitsOf(path string) []time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]time.Time(nil), f.hits[path]...)
}

func httpCheck(f *flipper, t *testing.T, path string, interval time.Duration, healthy, unhealthy int32) func(*resource.Endpoint) {
	return func(ep *resource.Endpoint) {
		ep.Spec.Ports = []resource.EndpointPort{{Port: f.port(t)}}
		ep.Spec.HealthCheck = &resource.HealthCheck{
			HTTP:               &resource.HTTPHealthCheck{Path: path},
			Interval:           &metav1.Duration{Duration: interval},
			Timeout:            &metav1.Duration{Duration: interval / 2},
			HealthyThreshold:   healthy,
			UnhealthyThreshold: unhealthy,
		}
	}
}

func TestActiveCheckThresholds(t *testing.T) {
	e := servertest.StartEtcd(t)
	r := startReplica(t, e, "a", 2*time.Second)
	f := newFlipper(t)
	create(t, r.store, endpoint("web-1", httpCheck(f, t, "/healthz", 200*time.Millisecond, 2, 3)))

	ep := waitFor(t, r.store, "web-1", "healthy", 3*time.Second, health(resource.HealthHealthy))
	if c := check(ep, resource.CheckActive); c.State != resource.CheckPassing || !strings.Contains(c.Output, "200 OK") {
		t.Errorf("active check = %+v, want passing with the HTTP status", c)
	}

	// Three failures in a row are needed: not unhealthy after the first.
	f.code.Store(http.StatusServiceUnavailable)
	flipped := time.Now()
	ep = waitFor(t, r.store, "web-1", "unhealthy", 5*time.Second, health(resource.HealthUnhealthy))
	if took := time.Since(flipped); took < 400*time.Millisecond {
		t.Errorf("unhealthy %s after the flip, before three checks 200ms apart could fail", took)
	}
	if c := check(ep, resource.CheckActive); c.State != resource.CheckCritical || !strings.Contains(c.Output, "503") {
		t.Errorf("active check = %+v, want critical with 503", c)
	}
	if ep.Status.LastTransitionTime == nil {
		t.Error("no lastTransitionTime")
	}

	f.code.Store(http.StatusOK)
	waitFor(t, r.store, "web-1", "healthy again", 5*time.Second, health(resource.HealthHealthy))

	// Removing the check from the spec makes the Endpoint plainly healthy.
	obj, _ := r.store.Get(context.Background(), resource.EndpointKind, "default", "web-1")
	ep = obj.(*resource.Endpoint).DeepCopy()
	ep.Spec.HealthCheck = nil
	if _, err := r.store.Update(context.Background(), ep, store.WriteOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, r.store, "web-1", "without checks", 3*time.Second, func(ep *resource.Endpoint) bool {
		return ep != nil && len(ep.Status.Checks) == 0 && ep.Status.Health == resource.HealthHealthy
	})
}

func TestExternalStatusIsLeftAlone(t *testing.T) {
	e := servertest.StartEtcd(t)
	r := startReplica(t, e, "a", 2*time.Second)
	ep := create(t, r.store, endpoint("web-1", nil))
	ep.Status.Health = resource.HealthUnhealthy
	ep.Status.Message = "set by an external checker"
	if _, err := r.store.UpdateStatus(context.Background(), ep, store.WriteOptions{}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(2500 * time.Millisecond) // two resyncs
	obj, _ := r.store.Get(context.Background(), resource.EndpointKind, "default", "web-1")
	if h := obj.(*resource.Endpoint).Status.Health; h != resource.HealthUnhealthy {
		t.Errorf("health = %s: the registry overwrote a status it does not own", h)
	}
}

// TestChecksRunOnOneReplicaAndMoveWhenItDies runs two replicas: every
// Endpoint's check runs on exactly one of them, both take a share, and when
// one crashes the other takes its checks over.
func TestChecksRunOnOneReplicaAndMoveWhenItDies(t *testing.T) {
	e := servertest.StartEtcd(t)
	const ttl, interval = 2 * time.Second, 300 * time.Millisecond
	a := startReplica(t, e, "replica-a", ttl)
	startReplica(t, e, "replica-b", ttl)
	f := newFlipper(t)
	const n = 8
	for i := range n {
		name := fmt.Sprintf("web-%d", i)
		create(t, a.store, endpoint(name, httpCheck(f, t, "/"+name, interval, 1, 1)))
	}
	for i := range n {
		waitFor(t, a.store, fmt.Sprintf("web-%d", i), "healthy", 5*time.Second, health(resource.HealthHealthy))
	}

	owners := func() map[string]string {
		resp, err := e.Client.Get(context.Background(), "/sluice/registry/owners/", clientv3.WithPrefix())
		if err != nil {
			t.Fatal(err)
		}
		m := map[string]string{}
		for _, kv := range resp.Kvs {
			m[strings.TrimPrefix(string(kv.Key), "/sluice/registry/owners/default/")] = string(kv.Value)
		}
		return m
	}
	// Let the claims settle (both replicas registered, hand-overs done).
	time.Sleep(2 * time.Second)
	own := owners()
	perReplica := map[string]int{}
	for _, o := range own {
		perReplica[o]++
	}
	if len(own) != n || perReplica["replica-a"] == 0 || perReplica["replica-b"] == 0 {
		t.Fatalf("claims = %v, want all %d endpoints claimed, by both replicas", own, n)
	}

	// Over a window, each check runs about window/interval times: once,
	// not once per replica.
	window := 3 * time.Second
	start := time.Now()
	time.Sleep(window)
	for i := range n {
		path := fmt.Sprintf("/web-%d", i)
		count := 0
		for _, h := range f.hitsOf(path) {
			if h.After(start) && h.Before(start.Add(window)) {
				count++
			}
		}
		if want := int(window / interval); count < want-3 || count > want+3 {
			t.Errorf("%s checked %d times in %s, want about %d (one replica)", path, count, window, want)
		}
	}

	// Replica a crashes: its lease expires and b takes every check over.
	crashed := time.Now()
	a.crash()
	var moved []string
	for name, o := range own {
		if o == "replica-a" {
			moved = append(moved, name)
		}
	}
	deadline := time.Now().Add(ttl + 5*time.Second)
	for {
		own = owners()
		all := len(own) == n
		for _, o := range own {
			all = all && o == "replica-b"
		}
		if all {
			t.Logf("all claims on replica-b %s after the crash", time.Since(crashed).Round(10*time.Millisecond))
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("claims %v %s after replica a crashed, want all on replica-b", own, time.Since(crashed))
		}
		time.Sleep(50 * time.Millisecond)
	}
	time.Sleep(2 * interval)
	var worst time.Duration
	for _, name := range moved {
		hits := f.hitsOf("/" + name)
		var before, after time.Time
		for _, h := range hits {
			if h.Before(crashed) {
				before = h
			} else if after.IsZero() {
				after = h
			}
		}
		if after.IsZero() {
			t.Fatalf("%s not checked since replica a crashed", name)
		}
		worst = max(worst, after.Sub(before))
	}
	t.Logf("%d checks moved; longest gap between checks across the crash: %s (session TTL %s, interval %s)", len(moved), worst.Round(10*time.Millisecond), ttl, interval)
	if limit := ttl + 2*interval + time.Second; worst > limit {
		t.Errorf("a check went unrun for %s across the crash, want at most the TTL plus about one interval (%s)", worst, limit)
	}
}

// TestHeartbeatsReachAnyReplica: heartbeats alternate between two replicas
// (a client behind a load balancer); the Endpoint stays healthy, and when
// they stop, whichever replica owns it marks it unhealthy.
func TestHeartbeatsReachAnyReplica(t *testing.T) {
	e := servertest.StartEtcd(t)
	a := startReplica(t, e, "replica-a", 2*time.Second)
	b := startReplica(t, e, "replica-b", 2*time.Second)
	ctx := context.Background()
	const n = 4
	for i := range n {
		create(t, a.store, endpoint(fmt.Sprintf("web-%d", i), ttl(2*time.Second)))
	}
	replicas := []*replica{a, b}
	for round := range 8 {
		for i := range n {
			r := replicas[(round+i)%2]
			if err := r.reg.Heartbeat(ctx, "default", fmt.Sprintf("web-%d", i), resource.CheckPassing, ""); err != nil {
				t.Fatal(err)
			}
		}
		if round >= 2 {
			for i := range n {
				obj, _ := a.store.Get(ctx, resource.EndpointKind, "default", fmt.Sprintf("web-%d", i))
				if h := obj.(*resource.Endpoint).Status.Health; h != resource.HealthHealthy {
					t.Fatalf("round %d: web-%d is %s while heartbeating through both replicas", round, i, h)
				}
			}
		}
		time.Sleep(700 * time.Millisecond)
	}
	for i := range n {
		waitFor(t, b.store, fmt.Sprintf("web-%d", i), "unhealthy", 8*time.Second, health(resource.HealthUnhealthy))
	}
}
