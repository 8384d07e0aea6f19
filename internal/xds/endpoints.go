package xds

import (
	"cmp"
	"slices"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/sluice/sluice/internal/resource"
)

// Endpoint labels that place an Endpoint in a locality.
const (
	zoneLabel   = "zone"
	regionLabel = "region"
)

// loadAssignment lists the healthy Endpoints a Service selects on one of
// its ports, by locality. It is emitted even when empty, so that clients
// learn the cluster has no endpoints rather than wait for them. When the
// Service's BackendPolicy has a health check on another port, each
// endpoint's health_check_config says which.
func (t *translation) loadAssignment(name string, svc *resource.Service, port resource.ServicePort, policy *resource.BackendPolicy) *endpointv3.ClusterLoadAssignment {
	type member struct {
		ep   *resource.Endpoint
		port int32
	}
	var members []member
	for _, ep := range t.endpoints[svc.Namespace] {
		if ep.Status.Health != resource.HealthHealthy || !selects(svc.Spec.Selector, ep.Labels) {
			continue
		}
		if p, ok := endpointPort(ep, port.Name); ok {
			members = append(members, member{ep, p})
		}
	}
	// Endpoints come sorted by name; a stable sort by address keeps that
	// order among Endpoints with the same address and port, of which only
	// the first is kept: gRPC clients NACK an assignment that lists an
	// address twice.
	slices.SortStableFunc(members, func(a, b member) int {
		return cmp.Or(cmp.Compare(a.ep.Spec.Address, b.ep.Spec.Address), cmp.Compare(a.port, b.port))
	})
	members = slices.CompactFunc(members, func(a, b member) bool {
		return a.ep.Spec.Address == b.ep.Spec.Address && a.port == b.port
	})

	type locality struct{ region, zone string }
	byLocality := map[locality]*endpointv3.LocalityLbEndpoints{}
	for _, m := range members {
		l := locality{m.ep.Labels[regionLabel], m.ep.Labels[zoneLabel]}
		lle := byLocality[l]
		if lle == nil {
			// The weight is set even when there is one locality: gRPC
			// clients ignore a locality without one.
			lle = &endpointv3.LocalityLbEndpoints{
				Locality:            &corev3.Locality{Region: l.region, Zone: l.zone},
				LoadBalancingWeight: wrapperspb.UInt32(0),
			}
			byLocality[l] = lle
		}
		weight := uint32(1)
		if w := m.ep.Spec.Weight; w != nil && *w > 0 {
			weight = uint32(*w)
		}
		lle.LoadBalancingWeight.Value += weight
		e := &endpointv3.Endpoint{Address: socketAddress(m.ep.Spec.Address, m.port)}
		if hp := t.healthCheckPort(policy, m.ep); hp != 0 {
			e.HealthCheckConfig = &endpointv3.Endpoint_HealthCheckConfig{PortValue: hp}
		}
		lle.LbEndpoints = append(lle.LbEndpoints, &endpointv3.LbEndpoint{
			HostIdentifier:      &endpointv3.LbEndpoint_Endpoint{Endpoint: e},
			LoadBalancingWeight: wrapperspb.UInt32(weight),
		})
	}
	cla := &endpointv3.ClusterLoadAssignment{ClusterName: name, Endpoints: []*endpointv3.LocalityLbEndpoints{}}
	for _, lle := range byLocality {
		cla.Endpoints = append(cla.Endpoints, lle)
	}
	slices.SortFunc(cla.Endpoints, func(a, b *endpointv3.LocalityLbEndpoints) int {
		return cmp.Or(cmp.Compare(a.Locality.Region, b.Locality.Region), cmp.Compare(a.Locality.Zone, b.Locality.Zone))
	})
	return cla
}

// selects says whether a Service selector selects labels, with Kubernetes
// semantics, except that an empty selector selects nothing (a Service
// without a selector has no Endpoints, not all of them).
func selects(selector, labels map[string]string) bool {
	if len(selector) == 0 {
		return false
	}
	for k, v := range selector {
		if got, ok := labels[k]; !ok || got != v {
			return false
		}
	}
	return true
}

// endpointPort is the port of ep that serves the Service port named name:
// the Endpoint port of the same name or, when the Endpoint has a single
// unnamed port, that one.
func endpointPort(ep *resource.Endpoint, name string) (int32, bool) {
	for _, p := range ep.Spec.Ports {
		if p.Name == name {
			return p.Port, true
		}
	}
	if len(ep.Spec.Ports) == 1 && ep.Spec.Ports[0].Name == "" {
		return ep.Spec.Ports[0].Port, true
	}
	return 0, false
}

func socketAddress(address string, port int32) *corev3.Address {
	return &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
		Address:       address,
		PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: uint32(port)},
	}}}
}
