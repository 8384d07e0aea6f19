package xds

import (
	corev1 "k8s.io/api/core/v1"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/sluice/sluice/internal/resource"
)

// Inputs are the resources a translation reads: every object of the kinds
// that shape traffic, from the informers' caches. Translate does not modify
// them.
type Inputs struct {
	Services        []*resource.Service
	Endpoints       []*resource.Endpoint
	BackendPolicies []*resource.BackendPolicy
	HTTPRoutes      []*gatewayv1.HTTPRoute
	GRPCRoutes      []*gatewayv1.GRPCRoute
	Gateways        []*gatewayv1.Gateway
	Secrets         []*corev1.Secret
}

// Add appends obj to the inputs of its kind. It returns false for an object
// of a kind translation does not read.
func (in *Inputs) Add(obj any) bool {
	switch o := obj.(type) {
	case *resource.Service:
		in.Services = append(in.Services, o)
	case *resource.Endpoint:
		in.Endpoints = append(in.Endpoints, o)
	case *resource.BackendPolicy:
		in.BackendPolicies = append(in.BackendPolicies, o)
	case *gatewayv1.HTTPRoute:
		in.HTTPRoutes = append(in.HTTPRoutes, o)
	case *gatewayv1.GRPCRoute:
		in.GRPCRoutes = append(in.GRPCRoutes, o)
	case *gatewayv1.Gateway:
		in.Gateways = append(in.Gateways, o)
	case *corev1.Secret:
		in.Secrets = append(in.Secrets, o)
	default:
		return false
	}
	return true
}
