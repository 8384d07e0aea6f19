package registry

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"

	"github.com/sluice/sluice/internal/probe"
	"github.com/sluice/sluice/internal/resource"
)

// This file adapts an Endpoint's spec.healthCheck to package probe, which
// takes plain parameters: where to send an attempt, with which defaults, and
// what its result means in the Endpoint's status.

// errNoPort is returned by target when the Endpoint has no port to check.
var errNoPort = errors.New("no such port")

// target resolves where to check: the address and port of the Endpoint's
// port named by spec.healthCheck.port, or its first port when that is empty
// or the Endpoint has no health check. The result is "host:port", an IPv6
// address in brackets. It fails, wrapping errNoPort, when the port name
// names no port.
func target(ep *resource.Endpoint) (addr string, err error) {
	if ep == nil {
		return "", errors.New("probe: no endpoint")
	}
	if ep.Spec.Address == "" {
		return "", fmt.Errorf("probe: endpoint %s/%s: no address", ep.Namespace, ep.Name)
	}
	name := ""
	if hc := ep.Spec.HealthCheck; hc != nil {
		name = hc.Port
	}
	port, ok := findPort(ep.Spec.Ports, name)
	if !ok {
		if name == "" {
			return "", fmt.Errorf("probe: endpoint %s/%s has no ports: %w", ep.Namespace, ep.Name, errNoPort)
		}
		return "", fmt.Errorf("probe: endpoint %s/%s: health check port %q: %w", ep.Namespace, ep.Name, name, errNoPort)
	}
	if port < 1 || port > 65535 {
		return "", fmt.Errorf("probe: endpoint %s/%s: port %d out of range", ep.Namespace, ep.Name, port)
	}
	return net.JoinHostPort(ep.Spec.Address, strconv.Itoa(int(port))), nil
}

func findPort(ports []resource.EndpointPort, name string) (int32, bool) {
	if name == "" {
		if len(ports) == 0 {
			return 0, false
		}
		return ports[0].Port, true
	}
	for _, p := range ports {
		if p.Name == name {
			return p.Port, true
		}
	}
	// A number that names no port is the port to check (a health port that
	// serves no traffic).
	if n, err := strconv.ParseInt(name, 10, 32); err == nil {
		return int32(n), true
	}
	return 0, false
}

// runProbe performs one attempt of hc against addr. hc need not be
// defaulted: a defaulted copy is used, through the resource package's own
// defaulting, so that a check that has not been through the store behaves
// like one that has and the defaults live in one place.
func runProbe(ctx context.Context, addr string, hc *resource.HealthCheck) checkResult {
	if hc == nil {
		return checkResult{State: resource.CheckCritical, Output: "no health check"}
	}
	res := probe.Run(ctx, addr, probeCheck(withDefaults(hc)))
	return checkResult{State: resource.CheckState(res.State), Output: res.Output}
}

// checkResult is the outcome of an attempt in an Endpoint's terms.
type checkResult struct {
	State  resource.CheckState
	Output string // at most probe.MaxOutput bytes, which fit resource.MaxCheckOutput
}

// probeCheck is hc (defaulted) in package probe's terms.
func probeCheck(hc *resource.HealthCheck) probe.Check {
	c := probe.Check{Timeout: hc.Timeout.Duration}
	if h := hc.HTTP; h != nil {
		c.HTTP = &probe.HTTP{Path: h.Path, Headers: h.Headers}
		for _, r := range h.ExpectedStatuses {
			c.HTTP.ExpectedStatuses = append(c.HTTP.ExpectedStatuses, probe.StatusRange{Start: int(r.Start), End: int(r.End)})
		}
	}
	if hc.TCP != nil {
		c.TCP = &probe.TCP{}
	}
	if g := hc.GRPC; g != nil {
		c.GRPC = &probe.GRPC{Service: g.Service}
	}
	return c
}

// withDefaults returns a defaulted copy of hc.
func withDefaults(hc *resource.HealthCheck) *resource.HealthCheck {
	ep := &resource.Endpoint{Spec: resource.EndpointSpec{HealthCheck: hc.DeepCopy()}}
	resource.EndpointKind.Default(ep)
	return ep.Spec.HealthCheck
}
