package xds

import (
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/sluice/sluice/internal/resource"
)

// Mesh (east-west) routing follows GAMMA: a route whose parentRef is a
// Service routes the requests clients send to that Service. Hostnames of
// such routes do not apply: the client already chose the Service.

// meshAttachment is a route attached to a Service, on one port or, when
// port is 0, on all.
type meshAttachment struct {
	route routeObj
	port  int32
}

// indexRoutes finds the parents every route attaches to.
func (t *translation) indexRoutes() {
	for _, r := range t.routes() {
		ns := r.meta().GetNamespace()
		for _, ref := range r.parentRefs() {
			k := objKey{ns, string(ref.Name)}
			if ref.Namespace != nil && *ref.Namespace != "" {
				k.namespace = string(*ref.Namespace)
			}
			switch {
			case isServiceParent(ref):
				a := meshAttachment{route: r}
				if ref.Port != nil {
					a.port = *ref.Port
				}
				t.meshAttached[k] = append(t.meshAttached[k], a)
			case isGatewayParent(ref):
				if rs := t.gatewayAttached[k]; len(rs) == 0 || rs[len(rs)-1] != r {
					t.gatewayAttached[k] = append(rs, r)
				}
			}
		}
	}
}

func isServiceParent(ref gatewayv1.ParentReference) bool {
	return ref.Kind != nil && *ref.Kind == "Service" && ref.Group != nil && (*ref.Group == "" || *ref.Group == resource.Group)
}

func isGatewayParent(ref gatewayv1.ParentReference) bool {
	return ref.Kind != nil && *ref.Kind == "Gateway" && ref.Group != nil && *ref.Group == gatewayv1.GroupName
}

// meshRoutes are the routes of a Service port: those of the routes attached
// to it, in precedence order, or the default route when none is.
func (t *translation) meshRoutes(svc *resource.Service, port resource.ServicePort) []*routev3.Route {
	opts := routeOptions{mesh: true}
	name := servicePortName(svc.Namespace, svc.Name, port.Port)
	var candidates []attachedRoute
	seen := map[routeObj]bool{}
	for _, a := range t.meshAttached[keyOf(svc)] {
		if (a.port == 0 || a.port == port.Port) && !seen[a.route] {
			seen[a.route] = true
			candidates = append(candidates, attachedRoute{route: a.route, hostnames: []string{"*"}})
		}
	}
	accepted := acceptRoutes(candidates)
	for _, a := range accepted {
		if t.decided.meshAttached[a.route] == nil {
			t.decided.meshAttached[a.route] = map[objKey]bool{}
		}
		t.decided.meshAttached[a.route][keyOf(svc)] = true
	}
	if len(accepted) == 0 {
		return t.validRoutes(name, []routeEntry{{routes: []*routev3.Route{t.defaultRoute(svc, port.Port, opts)}}})
	}
	var entries []routeEntry
	for _, a := range accepted {
		entries = append(entries, t.entries(a, opts)...)
	}
	sortEntries(entries)
	return t.validRoutes(name, entries)
}

// addMesh adds the RouteConfiguration and the API listener a proxyless
// client dialing xds:///<name> asks for.
func (t *translation) addMesh(name string, routes []*routev3.Route) {
	t.add(RouteType, name, &routev3.RouteConfiguration{
		Name:         name,
		VirtualHosts: []*routev3.VirtualHost{{Name: name, Domains: []string{"*"}, Routes: routes}},
	})
	t.add(ListenerType, name, t.apiListener(name))
}
