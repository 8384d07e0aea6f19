package xds

import (
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
}
