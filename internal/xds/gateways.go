package xds

import (
	"cmp"
	"fmt"
	"slices"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"
)

// addGateway adds a Gateway's Listener and RouteConfiguration for each port
// its listeners use, and records its scope: what it gets when it subscribes
// to everything.
//
// Listeners of one port must share a protocol; the first listener's wins
// and the others are left out. Only HTTP and HTTPS are served so far.
func (t *translation) addGateway(gw *gatewayv1.Gateway) {
	byPort := map[int32][]*gatewayv1.Listener{}
	var ports []int32
	for i := range gw.Spec.Listeners {
		l := &gw.Spec.Listeners[i]
		if _, ok := byPort[l.Port]; !ok {
			ports = append(ports, l.Port)
		}
		byPort[l.Port] = append(byPort[l.Port], l)
	}
	slices.Sort(ports)

	var names []string
	clusters, secrets := map[string]bool{}, map[string]bool{}
	for _, port := range ports {
		ls := byPort[port]
		protocol := ls[0].Protocol
		if protocol != gatewayv1.HTTPProtocolType && protocol != gatewayv1.HTTPSProtocolType {
			continue
		}
		ls = slices.DeleteFunc(slices.Clone(ls), func(l *gatewayv1.Listener) bool {
			d := t.listenerDecision(gw, l)
			d.Supported = l.Protocol == gatewayv1.HTTPProtocolType || l.Protocol == gatewayv1.HTTPSProtocolType
			d.Conflicted = l.Protocol != protocol
			return d.Conflicted
		})
		name := gatewayName(gw.Namespace, gw.Name, port)
		listener := t.gatewayListener(gw, name, port, ls, secrets)
		if len(listener.FilterChains) == 0 {
			// Envoy refuses a listener without filter chains. Routes
			// still attach (and are counted) as the Gateway API asks.
			t.problems = append(t.problems, fmt.Sprintf("Gateway %s/%s port %d: no listener has a valid certificate; the port is not served", gw.Namespace, gw.Name, port))
			t.gatewayRoutes(gw, name, ls, map[string]bool{})
			continue
		}
		t.add(ListenerType, name, listener)
		t.add(RouteType, name, t.gatewayRoutes(gw, name, ls, clusters))
		names = append(names, name)
	}
	scope := gw.Namespace + "/" + gw.Name
	for _, s := range []struct {
		types []string
		names []string
	}{
		{[]string{ListenerType, RouteType}, names},
		{[]string{ClusterType, EndpointType}, sortedSet(clusters)},
		{[]string{SecretType}, sortedSet(secrets)},
	} {
		if len(s.names) == 0 {
			continue
		}
		for _, typ := range s.types {
			t.snap.AddScope(scope, typ, s.names...)
		}
	}
}

func sortedSet(set map[string]bool) []string {
	out := make([]string, 0, len(set))
	for k := range set {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// gatewayRoutes is the RouteConfiguration of a Gateway's listeners ls on
// one port, with a virtual host per hostname: each listener's, and each
// that an attached route serves. Requests for a hostname belong to the
// listener whose hostname matches it most precisely, so its virtual host
// holds only routes attached to that listener: first those of its own
// hostname, then of the wildcards that cover it, then of "*" (the Gateway
// API's hostname precedence). A virtual host may be empty, so that its
// requests get 404 instead of going to a wider one. clusters collects the
// clusters the routes use.
func (t *translation) gatewayRoutes(gw *gatewayv1.Gateway, name string, ls []*gatewayv1.Listener, clusters map[string]bool) *routev3.RouteConfiguration {
	// hostnames[r][l] is what route r serves on listener l.
	hostnames := map[routeObj]map[*gatewayv1.Listener][]string{}
	var attached []routeObj
	all := map[string]bool{}
	for _, l := range ls {
		if l.Hostname != nil {
			all[string(*l.Hostname)] = true
		}
		var candidates []attachedRoute
		for _, r := range t.gatewayAttached[keyOf(gw)] {
			if !refersTo(r, gw, l) {
				continue
			}
			if ok, why := routeAllowed(gw, l, r); !ok {
				t.recordOutcome(r, gw, l, outcomeNotAllowed, why)
				continue
			}
			hs := intersectHostnames(listenerHostname(l), r.hostnames())
			if len(hs) == 0 {
				t.recordOutcome(r, gw, l, outcomeNoHostname, "its hostname "+cmp.Or(listenerHostname(l), "*")+" matches none of the route's")
				continue
			}
			candidates = append(candidates, attachedRoute{route: r, hostnames: hs})
		}
		accepted := acceptRoutes(candidates)
		for _, c := range candidates {
			if !slices.ContainsFunc(accepted, func(a attachedRoute) bool { return a.route == c.route }) {
				t.recordOutcome(c.route, gw, l, outcomeNotAllowed, "an older route of the other kind (HTTPRoute, GRPCRoute) serves the same hostnames there")
			}
		}
		for _, a := range accepted {
			t.recordOutcome(a.route, gw, l, outcomeAttached, "")
			if hostnames[a.route] == nil {
				hostnames[a.route] = map[*gatewayv1.Listener][]string{}
				attached = append(attached, a.route)
			}
			hostnames[a.route][l] = a.hostnames
			for _, h := range a.hostnames {
				all[h] = true
			}
		}
	}

	opts := routeOptions{clusters: clusters}
	entries := map[routeObj][]routeEntry{}
	for _, r := range attached {
		entries[r] = t.entries(attachedRoute{route: r}, opts)
	}
	rc := &routev3.RouteConfiguration{Name: name}
	for _, host := range sortedSet(all) {
		l := listenerFor(host, ls)
		var inHost []routeEntry
		for _, r := range attached {
			exact, length, ok := hostRank(hostnames[r][l], host)
			if !ok {
				continue
			}
			for _, e := range entries[r] {
				e.rank.hostExact, e.rank.hostLen = exact, length
				inHost = append(inHost, e)
			}
		}
		sortEntries(inHost)
		rc.VirtualHosts = append(rc.VirtualHosts, &routev3.VirtualHost{
			Name:    host,
			Domains: []string{host},
			Routes:  t.validRoutes(name, inHost),
		})
	}
	return rc
}

// listenerHostname is a listener's hostname, "" for none.
func listenerHostname(l *gatewayv1.Listener) string {
	if l.Hostname == nil {
		return ""
	}
	return string(*l.Hostname)
}

// listenerFor is the listener of ls that gets requests for host: the one
// whose hostname matches it most precisely, a listener without one last.
func listenerFor(host string, ls []*gatewayv1.Listener) *gatewayv1.Listener {
	var best *gatewayv1.Listener
	bestExact, bestLen := -1, -1
	for _, l := range ls {
		h := listenerHostname(l)
		if h == "" {
			h = "*"
		}
		if exact, length, ok := hostRank([]string{h}, host); ok && (exact > bestExact || (exact == bestExact && length > bestLen)) {
			best, bestExact, bestLen = l, exact, length
		}
	}
	return best
}

// refersTo says whether a parentRef of r names listener l of gw.
func refersTo(r routeObj, gw *gatewayv1.Gateway, l *gatewayv1.Listener) bool {
	return slices.ContainsFunc(r.parentRefs(), func(ref gatewayv1.ParentReference) bool { return refSelects(r, ref, gw, l) })
}

// refSelects says whether parentRef ref of r names listener l of gw: by
// sectionName and port when they are set.
func refSelects(r routeObj, ref gatewayv1.ParentReference, gw *gatewayv1.Gateway, l *gatewayv1.Listener) bool {
	ns := r.meta().GetNamespace()
	if ref.Namespace != nil && *ref.Namespace != "" {
		ns = string(*ref.Namespace)
	}
	if !isGatewayParent(ref) || string(ref.Name) != gw.Name || ns != gw.Namespace {
		return false
	}
	return (ref.SectionName == nil || *ref.SectionName == l.Name) && (ref.Port == nil || *ref.Port == l.Port)
}

// routeAllowed applies a listener's allowedRoutes to r, and says why not.
// Namespaces by Selector would need the labels of namespaces, which Sluice
// does not keep (namespaces are implicit): such a listener allows no route
// for now.
func routeAllowed(gw *gatewayv1.Gateway, l *gatewayv1.Listener, r routeObj) (bool, string) {
	from := gatewayv1.NamespacesFromSame
	if ar := l.AllowedRoutes; ar != nil && ar.Namespaces != nil && ar.Namespaces.From != nil {
		from = *ar.Namespaces.From
	}
	switch from {
	case gatewayv1.NamespacesFromAll:
	case gatewayv1.NamespacesFromSame:
		if r.meta().GetNamespace() != gw.Namespace {
			return false, "allowedRoutes takes routes of namespace " + gw.Namespace + " only"
		}
	default:
		return false, "allowedRoutes selects namespaces by labels, which Sluice does not support yet"
	}
	if l.AllowedRoutes == nil || len(l.AllowedRoutes.Kinds) == 0 {
		// HTTP and HTTPS listeners take both route kinds.
		return true, ""
	}
	for _, k := range l.AllowedRoutes.Kinds {
		group := gatewayv1.GroupName
		if k.Group != nil {
			group = string(*k.Group)
		}
		if group == gatewayv1.GroupName && string(k.Kind) == r.kind() {
			return true, ""
		}
	}
	return false, "allowedRoutes.kinds does not list " + r.kind()
}
