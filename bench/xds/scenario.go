package main

import (
	"context"
	"fmt"
	"strconv"

	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	"github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/sluice/sluice/internal/client"
	"github.com/sluice/sluice/internal/resource"
	"github.com/sluice/sluice/internal/xds"
)

// The scenario: every client is a proxyless gRPC client of one Service,
// dialing xds:///greeter.default. Sluice translates the Service and its
// Endpoints into one API Listener, one RouteConfiguration, one Cluster and
// one ClusterLoadAssignment, all named greeter.default. A change sets the
// weight of one Endpoint, so the ClusterLoadAssignment every client watches
// changes and nothing else does.
const (
	namespace   = "default"
	serviceName = "greeter"
	listenerFor = serviceName + "." + namespace
)

// scenario holds the objects as the API last returned them.
type scenario struct {
	service   *resource.Service
	endpoints []*resource.Endpoint
	memo      *memo
}

func newService() *resource.Service {
	return &resource.Service{
		TypeMeta:   metav1.TypeMeta{APIVersion: resource.ServiceKind.APIVersion(), Kind: resource.ServiceKind.Kind},
		ObjectMeta: metav1.ObjectMeta{Name: serviceName, Namespace: namespace},
		Spec: resource.ServiceSpec{
			Selector: map[string]string{"app": serviceName},
			Ports:    []resource.ServicePort{{Name: "grpc", Port: 50051, Protocol: resource.ProtocolGRPC}},
		},
	}
}

func newEndpoint(i int) *resource.Endpoint {
	return &resource.Endpoint{
		TypeMeta: metav1.TypeMeta{APIVersion: resource.EndpointKind.APIVersion(), Kind: resource.EndpointKind.Kind},
		ObjectMeta: metav1.ObjectMeta{
			Name: fmt.Sprintf("%s-%d", serviceName, i), Namespace: namespace,
			Labels: map[string]string{"app": serviceName, "version": "v1", "zone": []string{"a", "b", "c"}[i%3]},
		},
		Spec: resource.EndpointSpec{
			Address: fmt.Sprintf("10.0.%d.%d", i/250, 1+i%250),
			Ports:   []resource.EndpointPort{{Name: "grpc", Port: 50051}},
		},
	}
}

// createScenario writes the Service and n Endpoints through the REST API.
func createScenario(ctx context.Context, api *client.Client, n int) (*scenario, error) {
	sc := &scenario{service: &resource.Service{}, memo: newMemo()}
	if err := api.Create(ctx, client.ResourceOf(resource.ServiceKind), namespace, newService(), sc.service, false); err != nil {
		return nil, fmt.Errorf("creating the Service: %w", err)
	}
	for i := range n {
		ep := &resource.Endpoint{}
		if err := api.Create(ctx, client.ResourceOf(resource.EndpointKind), namespace, newEndpoint(i), ep, false); err != nil {
			return nil, fmt.Errorf("creating Endpoint %d: %w", i, err)
		}
		sc.endpoints = append(sc.endpoints, ep)
	}
	return sc, nil
}

// weight is the current weight of the Endpoint the changes set.
func (sc *scenario) weight() int32 { return *sc.endpoints[0].Spec.Weight }

// withWeight returns the changed Endpoint with a new weight.
func (sc *scenario) withWeight(w int32) *resource.Endpoint {
	ep := sc.endpoints[0].DeepCopy()
	ep.Spec.Weight = &w
	return ep
}

// translate runs Sluice's translation on the scenario with the changed
// Endpoint at weight w, exactly as the server does on its informers' objects.
func (sc *scenario) translate(w int32) (*xds.Snapshot, error) {
	in := &xds.Inputs{Services: []*resource.Service{sc.service}}
	in.Endpoints = append(in.Endpoints, sc.withWeight(w))
	in.Endpoints = append(in.Endpoints, sc.endpoints[1:]...)
	return xds.Translate(in)
}

// view is what a client of the scenario gets: per type, the resources it
// follows from the Listener, and the state it holds once in sync.
type view struct {
	resources map[string][]*xds.Resource
	want      state
}

// clientView follows, in snap, the names a client dialing the scenario's
// Listener subscribes to, the same way the simulated clients do.
func (sc *scenario) clientView(snap *xds.Snapshot) (*view, error) {
	v := &view{resources: map[string][]*xds.Resource{}, want: state{}}
	names := []string{listenerFor}
	for _, t := range chain {
		held := map[string]*resInfo{}
		for _, name := range names {
			r, ok := snap.Get(t, name)
			if !ok {
				return nil, fmt.Errorf("the translation has no %s %q", shortType(t), name)
			}
			info, err := sc.memo.get(t, r.Any.GetValue())
			if err != nil {
				return nil, err
			}
			held[name] = info
			v.resources[t] = append(v.resources[t], r)
		}
		v.want[t] = typeDigest(held)
		names = refsOf(held)
	}
	return v, nil
}

// view translates the scenario at weight w and returns what clients get.
func (sc *scenario) view(w int32) (*view, error) {
	snap, err := sc.translate(w)
	if err != nil {
		return nil, err
	}
	return sc.clientView(snap)
}

// snapshotCacheSnapshot is the go-control-plane Snapshot of a view: the
// same resources (the same proto messages) with one version per type, a
// hash of the type's content, so that a change to endpoints changes only
// the EDS version and SnapshotCache re-sends only EDS. (cache.NewSnapshot
// with one version for everything would re-send all four types on every
// change.)
func (v *view) snapshotCacheSnapshot() *cache.Snapshot {
	snap := &cache.Snapshot{}
	for _, t := range chain {
		items := make([]types.Resource, 0, len(v.resources[t]))
		for _, r := range v.resources[t] {
			items = append(items, r.Message)
		}
		snap.Resources[cache.GetResponseType(t)] = cache.NewResources(strconv.FormatUint(v.want[t], 16), items)
	}
	return snap
}

// edsWant is the part of a view a change is measured by: the
// ClusterLoadAssignment every client watches.
func (v *view) edsWant() state {
	return state{xds.EndpointType: v.want[xds.EndpointType]}
}
