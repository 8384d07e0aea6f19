package xds_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	endpoint "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	"github.com/prometheus/client_golang/prometheus"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/sluice/sluice/internal/informer"
	"github.com/sluice/sluice/internal/resource"
	"github.com/sluice/sluice/internal/servertest"
	"github.com/sluice/sluice/internal/store"
	"github.com/sluice/sluice/internal/xds"
)

type harness struct {
	t     *testing.T
	store *store.Store
	ads   *xds.Server
	reg   *prometheus.Registry
}

// start runs a controller over a real store, with the given debounce.
func start(t *testing.T, window, maxDelay time.Duration) *harness {
	t.Helper()
	e := servertest.StartEtcd(t)
	st := store.New(e.Client, resource.Builtin(), store.Options{})
	reg := prometheus.NewRegistry()
	ads := xds.NewServer(xds.ServerOptions{Registerer: reg})
	ctl := xds.NewController(xds.InputSources(func(k *resource.Kind) informer.Source {
		return informer.NewStoreSource(st, k, informer.Scope{})
	}), ads.Cache, xds.ControllerOptions{Window: window, MaxDelay: maxDelay})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- ctl.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("controller: %v", err)
		}
	})
	return &harness{t: t, store: st, ads: ads, reg: reg}
}

func (h *harness) builds() float64 {
	h.t.Helper()
	mfs, err := h.reg.Gather()
	if err != nil {
		h.t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == "sluice_xds_snapshot_builds_total" {
			return mf.GetMetric()[0].GetCounter().GetValue()
		}
	}
	return 0
}

func (h *harness) apply(obj resource.Object) {
	h.t.Helper()
	if _, _, err := h.store.Apply(context.Background(), obj, store.WriteOptions{}); err != nil {
		h.t.Fatal(err)
	}
}

func service(name string) *resource.Service {
	return &resource.Service{
		TypeMeta:   metav1.TypeMeta{APIVersion: "sluice.io/v1alpha1", Kind: "Service"},
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default"},
		Spec: resource.ServiceSpec{
			Selector: map[string]string{"app": name},
			Ports:    []resource.ServicePort{{Name: "grpc", Port: 50051, Protocol: resource.ProtocolGRPC}},
		},
	}
}

func endpointOf(app, name string, weight int32) *resource.Endpoint {
	return &resource.Endpoint{
		TypeMeta:   metav1.TypeMeta{APIVersion: "sluice.io/v1alpha1", Kind: "Endpoint"},
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default", Labels: map[string]string{"app": app}},
		Spec:       resource.EndpointSpec{Address: "10.0.0.1", Ports: []resource.EndpointPort{{Name: "grpc", Port: 9000}}, Weight: &weight},
	}
}

// weightOf is the weight of the first endpoint of a cluster's assignment in
// the served snapshot, or -1.
func (h *harness) weightOf(cluster string) int64 {
	r, ok := h.ads.Cache.Snapshot().Get(xds.EndpointType, cluster)
	if !ok {
		return -1
	}
	cla := r.Message.(*endpoint.ClusterLoadAssignment)
	if len(cla.Endpoints) == 0 || len(cla.Endpoints[0].LbEndpoints) == 0 {
		return 0
	}
	return int64(cla.Endpoints[0].LbEndpoints[0].GetLoadBalancingWeight().GetValue())
}

func (h *harness) waitFor(what string, cond func() bool) {
	h.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			h.t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestControllerFollowsTheStore(t *testing.T) {
	h := start(t, 20*time.Millisecond, 200*time.Millisecond)
	h.apply(service("greeter"))
	h.apply(endpointOf("greeter", "ep-1", 3))
	h.waitFor("the endpoint in EDS", func() bool { return h.weightOf("greeter.default") == 3 })
	for _, typ := range []string{xds.ListenerType, xds.RouteType, xds.ClusterType} {
		if _, ok := h.ads.Cache.Snapshot().Get(typ, "greeter.default"); !ok {
			t.Errorf("no %s greeter.default in the snapshot", typ)
		}
	}
	h.apply(endpointOf("greeter", "ep-1", 7))
	h.waitFor("the new weight", func() bool { return h.weightOf("greeter.default") == 7 })
	if _, err := h.store.Delete(context.Background(), resource.ServiceKind, "default", "greeter", store.Preconditions{}, store.WriteOptions{}); err != nil {
		t.Fatal(err)
	}
	h.waitFor("the cluster gone", func() bool { return h.weightOf("greeter.default") == -1 })
}

func TestControllerDebouncesBursts(t *testing.T) {
	// A window long enough that 20 sequential writes stay inside it even on
	// a loaded machine.
	h := start(t, time.Second, 10*time.Second)
	h.apply(service("greeter"))
	h.waitFor("the first snapshot", func() bool { return h.weightOf("greeter.default") == 0 })
	before := h.builds()
	// 20 changes, each well inside the window of the previous one.
	for i := range 20 {
		h.apply(endpointOf("greeter", "ep-1", int32(i+1)))
	}
	h.waitFor("the burst's last change", func() bool { return h.weightOf("greeter.default") == 20 })
	if got := h.builds() - before; got > 3 {
		t.Errorf("a burst of 20 changes made %v snapshots; want it debounced into very few", got)
	}
}

func TestControllerMaxDelayBoundsAnEndlessBurst(t *testing.T) {
	h := start(t, 200*time.Millisecond, 400*time.Millisecond)
	h.apply(service("greeter"))
	h.waitFor("the first snapshot", func() bool { return h.weightOf("greeter.default") == 0 })
	// Changes every 50ms never pause for the 200ms window; the 400ms max
	// delay must still push them.
	stop := time.After(2 * time.Second)
	seenMidBurst := false
	for i := 1; ; i++ {
		select {
		case <-stop:
			if !seenMidBurst {
				t.Fatal("no snapshot during 2s of changes every 50ms; the max delay did not apply")
			}
			return
		case <-time.After(50 * time.Millisecond):
		}
		h.apply(endpointOf("greeter", fmt.Sprintf("ep-%d", i), 1))
		if w := h.weightOf("greeter.default"); w > 0 && i > 12 {
			seenMidBurst = true
		}
	}
}
