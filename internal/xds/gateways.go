package xds

import (
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
		ls = slices.DeleteFunc(slices.Clone(ls), func(l *gatewayv1.Listener) bool { return l.Protocol != protocol })
		name := gatewayName(gw.Namespace, gw.Name, port)
		t.add(ListenerType, name, t.gatewayListener(gw, name, port, ls, secrets))
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
// one port: a virtual host per hostname the attached routes serve. A
// virtual host holds the routes of its own hostname, then those of the
// wildcards that cover it, then those of "*", which is the Gateway API's
// hostname precedence. clusters collects the clusters the routes use.
func (t *translation) gatewayRoutes(gw *gatewayv1.Gateway, name string, ls []*gatewayv1.Listener, clusters map[string]bool) *routev3.RouteConfiguration {
	hostnames := map[routeObj][]string{}
	var attached []routeObj
	for _, l := range ls {
		listenerHost := ""
		if l.Hostname != nil {
			listenerHost = string(*l.Hostname)
		}
		var candidates []attachedRoute
		for _, r := range t.gatewayAttached[keyOf(gw)] {
			if !routeAllowed(gw, l, r) || !refersTo(r, gw, l) {
				continue
			}
			if hs := intersectHostnames(listenerHost, r.hostnames()); len(hs) > 0 {
				candidates = append(candidates, attachedRoute{route: r, hostnames: hs})
			}
		}
		for _, a := range acceptRoutes(candidates) {
			if _, ok := hostnames[a.route]; !ok {
				attached = append(attached, a.route)
			}
			hostnames[a.route] = append(hostnames[a.route], a.hostnames...)
		}
	}

	opts := routeOptions{clusters: clusters}
	var entries []routeEntry
	all := map[string]bool{}
	for _, r := range attached {
		hs := slices.Compact(slices.Sorted(slices.Values(hostnames[r])))
		for _, h := range hs {
			all[h] = true
		}
		entries = append(entries, t.entries(attachedRoute{route: r, hostnames: hs}, opts)...)
	}
	rc := &routev3.RouteConfiguration{Name: name}
	for _, host := range sortedSet(all) {
		var inHost []routeEntry
		for _, e := range entries {
			if exact, length, ok := hostRank(e.hostnames, host); ok {
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

// refersTo says whether a parentRef of r names listener l of gw: by
// sectionName and port when they are set.
func refersTo(r routeObj, gw *gatewayv1.Gateway, l *gatewayv1.Listener) bool {
	for _, ref := range r.parentRefs() {
		ns := r.meta().GetNamespace()
		if ref.Namespace != nil && *ref.Namespace != "" {
			ns = string(*ref.Namespace)
		}
		if !isGatewayParent(ref) || string(ref.Name) != gw.Name || ns != gw.Namespace {
			continue
		}
		if (ref.SectionName == nil || *ref.SectionName == l.Name) && (ref.Port == nil || *ref.Port == l.Port) {
			return true
		}
	}
	return false
}

// routeAllowed applies a listener's allowedRoutes to r. Namespaces by
// Selector would need the labels of namespaces, which Sluice does not keep
// (namespaces are implicit): such a listener allows no route for now.
func routeAllowed(gw *gatewayv1.Gateway, l *gatewayv1.Listener, r routeObj) bool {
	from := gatewayv1.NamespacesFromSame
	if ar := l.AllowedRoutes; ar != nil && ar.Namespaces != nil && ar.Namespaces.From != nil {
		from = *ar.Namespaces.From
	}
	switch from {
	case gatewayv1.NamespacesFromAll:
	case gatewayv1.NamespacesFromSame:
		if r.meta().GetNamespace() != gw.Namespace {
			return false
		}
	default:
		return false
	}
	if l.AllowedRoutes == nil || len(l.AllowedRoutes.Kinds) == 0 {
		// HTTP and HTTPS listeners take both route kinds.
		return true
	}
	for _, k := range l.AllowedRoutes.Kinds {
		group := gatewayv1.GroupName
		if k.Group != nil {
			group = string(*k.Group)
		}
		if group == gatewayv1.GroupName && string(k.Kind) == r.kind() {
			return true
		}
	}
	return false
}
