package xds

import (
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strconv"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/sluice/sluice/internal/resource"
)

// healthChecks is a BackendPolicy's healthCheck as a cluster's
// health_checks: the active health check the proxies (Envoy, sluice
// gateway) run against every endpoint of the cluster. Proxyless gRPC
// clients ignore it. hc has been defaulted by the store.
func healthChecks(hc *resource.HealthCheck) []*corev3.HealthCheck {
	if hc == nil {
		return nil
	}
	out := &corev3.HealthCheck{
		HealthyThreshold:   wrapperspb.UInt32(uint32(hc.HealthyThreshold)),
		UnhealthyThreshold: wrapperspb.UInt32(uint32(hc.UnhealthyThreshold)),
	}
	if hc.Interval != nil {
		out.Interval = durationpb.New(hc.Interval.Duration)
	}
	if hc.Timeout != nil {
		out.Timeout = durationpb.New(hc.Timeout.Duration)
	}
	switch {
	case hc.HTTP != nil:
		h := &corev3.HealthCheck_HttpHealthCheck{Path: hc.HTTP.Path}
		for _, r := range hc.HTTP.ExpectedStatuses {
			// Envoy's ranges end before End; Sluice's include it.
			h.ExpectedStatuses = append(h.ExpectedStatuses, &typev3.Int64Range{Start: int64(r.Start), End: int64(r.End) + 1})
		}
		// Sorted, so that equal policies give equal bytes. A Host header
		// is the check's host (Envoy sends the cluster name otherwise):
		// Envoy does not let request_headers_to_add set it.
		for _, k := range slices.Sorted(maps.Keys(hc.HTTP.Headers)) {
			v := hc.HTTP.Headers[k]
			if http.CanonicalHeaderKey(k) == "Host" {
				h.Host = v
				continue
			}
			h.RequestHeadersToAdd = append(h.RequestHeadersToAdd, &corev3.HeaderValueOption{
				Header:       &corev3.HeaderValue{Key: k, Value: v},
				AppendAction: corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD,
			})
		}
		out.HealthChecker = &corev3.HealthCheck_HttpHealthCheck_{HttpHealthCheck: h}
	case hc.TCP != nil:
		out.HealthChecker = &corev3.HealthCheck_TcpHealthCheck_{TcpHealthCheck: &corev3.HealthCheck_TcpHealthCheck{}}
	case hc.GRPC != nil:
		out.HealthChecker = &corev3.HealthCheck_GrpcHealthCheck_{GrpcHealthCheck: &corev3.HealthCheck_GrpcHealthCheck{ServiceName: hc.GRPC.Service}}
	}
	return []*corev3.HealthCheck{out}
}

// healthCheckPort is the port the policy's health check reaches ep on, for
// its LbEndpoint's health_check_config; 0 for the traffic port. The port is
// an Endpoint's port of that name (as a Service port's name resolves, see
// endpointPort), else a port number. An Endpoint that has no such port is
// checked on its traffic port, and the translation's problems say so: a
// typo in a policy then does not take every Endpoint out of traffic.
func (t *translation) healthCheckPort(policy *resource.BackendPolicy, ep *resource.Endpoint) uint32 {
	if policy == nil || policy.Spec.HealthCheck == nil || policy.Spec.HealthCheck.Port == "" {
		return 0
	}
	name := policy.Spec.HealthCheck.Port
	if p, ok := endpointPort(ep, name); ok {
		return uint32(p)
	}
	if n, err := strconv.Atoi(name); err == nil && n >= 1 && n <= 65535 {
		return uint32(n)
	}
	t.problemOnce(fmt.Sprintf("BackendPolicy %s/%s: health check port %q is no port of Endpoint %s/%s and no port number; the Endpoint is checked on its traffic port",
		policy.Namespace, policy.Name, name, ep.Namespace, ep.Name))
	return 0
}

// problemOnce adds a problem unless it is there already (a Service with
// several ports reaches the same Endpoint from several clusters).
func (t *translation) problemOnce(p string) {
	if !slices.Contains(t.problems, p) {
		t.problems = append(t.problems, p)
	}
}
