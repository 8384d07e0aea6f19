package xds

import (
	"math"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	randomv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/load_balancing_policies/random/v3"
	roundrobinv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/load_balancing_policies/round_robin/v3"
	wrrlocalityv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/load_balancing_policies/wrr_locality/v3"
	httpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/sluice/sluice/internal/resource"
)

// addService adds everything a Service gives: per port, its clusters with
// their endpoints, and the mesh RouteConfigurations and API listeners
// proxyless clients dial.
func (t *translation) addService(svc *resource.Service) {
	policy := t.policies[keyOf(svc)]
	for i, port := range svc.Spec.Ports {
		var clusters, mesh []string
		if i == 0 {
			clusters = append(clusters, serviceName(svc.Namespace, svc.Name))
			mesh = append(mesh, serviceName(svc.Namespace, svc.Name))
		}
		if len(svc.Spec.Ports) > 1 {
			clusters = append(clusters, servicePortName(svc.Namespace, svc.Name, port.Port))
		}
		mesh = append(mesh, servicePortName(svc.Namespace, svc.Name, port.Port))

		for _, name := range clusters {
			t.add(ClusterType, name, t.cluster(name, port, policy))
			t.add(EndpointType, name, t.loadAssignment(name, svc, port, policy))
		}
		routes := t.meshRoutes(svc, port)
		for _, name := range mesh {
			t.addMesh(name, routes)
		}
	}
}

// cluster is the EDS cluster of one Service port, shaped by the Service's
// BackendPolicy.
func (t *translation) cluster(name string, port resource.ServicePort, policy *resource.BackendPolicy) *clusterv3.Cluster {
	c := &clusterv3.Cluster{
		Name:                 name,
		ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_EDS},
		// No service_name: the cluster's name is its ClusterLoadAssignment's.
		EdsClusterConfig: &clusterv3.Cluster_EdsClusterConfig{EdsConfig: adsSource()},
		LbPolicy:         clusterv3.Cluster_ROUND_ROBIN,
	}
	if port.Protocol == resource.ProtocolGRPC || port.Protocol == resource.ProtocolHTTP2 {
		// Envoy speaks HTTP/1.1 upstream unless told otherwise; gRPC needs
		// HTTP/2. Proxyless gRPC clients ignore the option.
		c.TypedExtensionProtocolOptions = map[string]*anypb.Any{
			"envoy.extensions.upstreams.http.v3.HttpProtocolOptions": t.toAny(&httpv3.HttpProtocolOptions{
				UpstreamProtocolOptions: &httpv3.HttpProtocolOptions_ExplicitHttpConfig_{
					ExplicitHttpConfig: &httpv3.HttpProtocolOptions_ExplicitHttpConfig{
						ProtocolConfig: &httpv3.HttpProtocolOptions_ExplicitHttpConfig_Http2ProtocolOptions{
							Http2ProtocolOptions: &corev3.Http2ProtocolOptions{},
						},
					},
				},
			}),
		}
	}
	if policy == nil {
		return c
	}
	spec := &policy.Spec
	if lb := spec.LoadBalancer; lb != nil {
		switch lb.Type {
		case resource.LoadBalancerLeastRequest:
			c.LbPolicy = clusterv3.Cluster_LEAST_REQUEST
		case resource.LoadBalancerRingHash:
			c.LbPolicy = clusterv3.Cluster_RING_HASH
		case resource.LoadBalancerRandom:
			c.LoadBalancingPolicy = t.randomPolicy()
		}
	}
	if to := spec.Timeouts; to != nil && to.Connect != nil {
		c.ConnectTimeout = durationpb.New(to.Connect.Duration)
	}
	if cb := spec.CircuitBreaker; cb != nil {
		c.CircuitBreakers = &clusterv3.CircuitBreakers{Thresholds: []*clusterv3.CircuitBreakers_Thresholds{{
			Priority:           corev3.RoutingPriority_DEFAULT,
			MaxConnections:     limit(cb.MaxConnections),
			MaxPendingRequests: limit(cb.MaxPendingRequests),
			MaxRequests:        limit(cb.MaxRequests),
			MaxRetries:         limit(cb.MaxRetries),
		}}}
	}
	if od := spec.OutlierDetection; od != nil {
		c.OutlierDetection = &clusterv3.OutlierDetection{
			Consecutive_5Xx: wrapperspb.UInt32(uint32(od.Consecutive5xx)),
			// Connection failures are what Envoy calls local-origin errors
			// (connect failure, timeout, reset). Splitting them from 5xx
			// responses gives each Sluice counter exactly its meaning:
			// consecutive_5xx then counts only 5xx the Endpoint sent. The
			// nearest alternative, consecutive_gateway_failure, also counts
			// 502/503/504 responses and is not enforced by default.
			SplitExternalLocalOriginErrors: true,
			ConsecutiveLocalOriginFailure:  wrapperspb.UInt32(uint32(od.ConsecutiveConnectFailures)),
			MaxEjectionPercent:             wrapperspb.UInt32(uint32(od.MaxEjectionPercent)),
		}
		if od.Interval != nil {
			c.OutlierDetection.Interval = durationpb.New(od.Interval.Duration)
		}
		if od.BaseEjectionTime != nil {
			c.OutlierDetection.BaseEjectionTime = durationpb.New(od.BaseEjectionTime.Duration)
		}
	}
	c.HealthChecks = healthChecks(spec.HealthCheck)
	return c
}

// limit is a circuit breaker threshold. Zero means no limit in a
// BackendPolicy, but an unset Envoy threshold means 1024: spell out the
// largest value instead.
func limit(n int32) *wrapperspb.UInt32Value {
	if n <= 0 {
		return wrapperspb.UInt32(math.MaxUint32)
	}
	return wrapperspb.UInt32(uint32(n))
}

// randomPolicy is Random load balancing. The lb_policy enum has RANDOM, but
// proxyless gRPC clients NACK a cluster that uses it; load_balancing_policy
// lists alternatives in order and each client takes the first it supports,
// so Envoy picks at random and gRPC falls back to weighted round robin over
// localities (what lb_policy ROUND_ROBIN means to it).
func (t *translation) randomPolicy() *clusterv3.LoadBalancingPolicy {
	policy := func(name string, a *anypb.Any) *clusterv3.LoadBalancingPolicy_Policy {
		return &clusterv3.LoadBalancingPolicy_Policy{TypedExtensionConfig: &corev3.TypedExtensionConfig{Name: name, TypedConfig: a}}
	}
	roundRobin := &clusterv3.LoadBalancingPolicy{Policies: []*clusterv3.LoadBalancingPolicy_Policy{
		policy("envoy.load_balancing_policies.round_robin", t.toAny(&roundrobinv3.RoundRobin{})),
	}}
	return &clusterv3.LoadBalancingPolicy{Policies: []*clusterv3.LoadBalancingPolicy_Policy{
		policy("envoy.load_balancing_policies.random", t.toAny(&randomv3.Random{})),
		policy("envoy.load_balancing_policies.wrr_locality", t.toAny(&wrrlocalityv3.WrrLocality{EndpointPickingPolicy: roundRobin})),
	}}
}
