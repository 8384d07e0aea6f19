package xds

import (
	"fmt"
	"slices"
	"strings"

	"k8s.io/apimachinery/pkg/types"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/sluice/sluice/internal/resource"
)

// Decisions are what a translation decided about Gateways and routes: which
// listener a route attached to and why not, which references resolved. The
// route and Gateway status a controller writes comes from them, so what
// users read in status is what the proxies were sent.
type Decisions struct {
	// Gateways holds every Gateway of class sluice.
	Gateways map[types.NamespacedName]*GatewayDecision
	// Routes holds every HTTPRoute and GRPCRoute.
	Routes map[RouteKey]*RouteDecision
}

// RouteKey names a route: its kind (HTTPRoute or GRPCRoute), namespace and name.
type RouteKey struct {
	Kind      string
	Namespace string
	Name      string
}

// GatewayDecision is what became of a Gateway's listeners, by name.
type GatewayDecision struct {
	Listeners map[gatewayv1.SectionName]*ListenerDecision
}

// ListenerDecision is what became of one Gateway listener.
type ListenerDecision struct {
	// Supported says Sluice serves the protocol (HTTP, HTTPS).
	Supported bool
	// Conflicted says another listener of the port has another protocol
	// and was first: this one is left out.
	Conflicted bool
	// Programmed says the listener is served: on an HTTPS port, it has a
	// filter chain with at least one valid certificate.
	Programmed bool
	// AttachedRoutes counts the routes attached to it.
	AttachedRoutes int32
	// CertificateProblems says why certificateRefs cannot serve.
	CertificateProblems []string
}

// RouteDecision is what became of a route: per parentRef Sluice answers
// for, in the order of spec.parentRefs, and of its backendRefs.
type RouteDecision struct {
	Parents []ParentDecision
	// ResolvedRefs is false when a backendRef does not resolve; Reason is
	// BackendNotFound or InvalidKind and Message says which.
	ResolvedRefs bool
	Reason       string
	Message      string
}

// ParentDecision is whether a route attached to one of its parentRefs.
type ParentDecision struct {
	// Index is the parentRef's index in spec.parentRefs.
	Index    int
	Accepted bool
	// Reason is Accepted, NotAllowedByListeners, NoMatchingListenerHostname
	// or NoMatchingParent; Message says why in words.
	Reason  string
	Message string
}

// Decide translates in and returns its decisions. It is pure, as Translate.
func Decide(in *Inputs) *Decisions {
	return translate(in).decisions()
}

// outcome is what became of a route on one listener (or Service).
type outcome int

// Outcomes, worst first: a parentRef's reason is that of the best outcome
// among the listeners it selects.
const (
	outcomeNotAllowed outcome = iota + 1
	outcomeNoHostname
	outcomeAttached
)

// listenerKey names a Gateway listener.
type listenerKey struct {
	gateway objKey
	name    gatewayv1.SectionName
}

// decided records, while translating, what the decisions are built from.
type decided struct {
	listeners map[listenerKey]*ListenerDecision
	// outcomes[r][l] is what became of route r on listener l, and why.
	outcomes map[routeObj]map[listenerKey]outcomeWhy
	// meshAttached[r] holds the Services r attached to.
	meshAttached map[routeObj]map[objKey]bool
}

func (t *translation) listenerDecision(gw *gatewayv1.Gateway, l *gatewayv1.Listener) *ListenerDecision {
	k := listenerKey{keyOf(gw), l.Name}
	d := t.decided.listeners[k]
	if d == nil {
		d = &ListenerDecision{}
		t.decided.listeners[k] = d
	}
	return d
}

// outcomeWhy is an outcome and, when the route did not attach, why.
type outcomeWhy struct {
	outcome outcome
	why     string
}

// recordOutcome keeps the best outcome of route r on listener l of gw.
func (t *translation) recordOutcome(r routeObj, gw *gatewayv1.Gateway, l *gatewayv1.Listener, o outcome, why string) {
	m := t.decided.outcomes[r]
	if m == nil {
		m = map[listenerKey]outcomeWhy{}
		t.decided.outcomes[r] = m
	}
	k := listenerKey{keyOf(gw), l.Name}
	if o > m[k].outcome {
		m[k] = outcomeWhy{o, why}
	}
	if o == outcomeAttached {
		t.listenerDecision(gw, l).AttachedRoutes++
	}
}

// decisions builds the Decisions from what the translation recorded.
func (t *translation) decisions() *Decisions {
	d := &Decisions{Gateways: map[types.NamespacedName]*GatewayDecision{}, Routes: map[RouteKey]*RouteDecision{}}
	gateways := map[objKey]*gatewayv1.Gateway{}
	for _, gw := range t.in.Gateways {
		gateways[keyOf(gw)] = gw
		if gw.Spec.GatewayClassName != resource.GatewayClassName {
			continue
		}
		gd := &GatewayDecision{Listeners: map[gatewayv1.SectionName]*ListenerDecision{}}
		for i := range gw.Spec.Listeners {
			gd.Listeners[gw.Spec.Listeners[i].Name] = t.listenerDecision(gw, &gw.Spec.Listeners[i])
		}
		d.Gateways[types.NamespacedName{Namespace: gw.Namespace, Name: gw.Name}] = gd
	}
	for _, r := range t.routes() {
		m := r.meta()
		rd := &RouteDecision{ResolvedRefs: true, Reason: "ResolvedRefs"}
		for i, ref := range r.parentRefs() {
			pd, ok := t.parentDecision(r, ref, gateways)
			if !ok {
				continue
			}
			pd.Index = i
			rd.Parents = append(rd.Parents, pd)
		}
		t.resolveRefs(r, rd)
		d.Routes[RouteKey{Kind: r.kind(), Namespace: m.GetNamespace(), Name: m.GetName()}] = rd
	}
	return d
}

// parentDecision decides one parentRef of r; false for a parent Sluice does
// not answer for (a Gateway of another class).
func (t *translation) parentDecision(r routeObj, ref gatewayv1.ParentReference, gateways map[objKey]*gatewayv1.Gateway) (ParentDecision, bool) {
	k := objKey{r.meta().GetNamespace(), string(ref.Name)}
	if ref.Namespace != nil && *ref.Namespace != "" {
		k.namespace = string(*ref.Namespace)
	}
	notAccepted := func(reason, format string, args ...any) (ParentDecision, bool) {
		return ParentDecision{Reason: reason, Message: fmt.Sprintf(format, args...)}, true
	}
	switch {
	case isServiceParent(ref):
		svc, ok := t.services[k]
		if !ok {
			return notAccepted("NoMatchingParent", "Service %s/%s does not exist", k.namespace, k.name)
		}
		if ref.Port != nil && !slices.ContainsFunc(svc.Spec.Ports, func(p resource.ServicePort) bool { return p.Port == *ref.Port }) {
			return notAccepted("NoMatchingParent", "Service %s/%s has no port %d", k.namespace, k.name, *ref.Port)
		}
		if !t.decided.meshAttached[r][k] {
			return notAccepted("NotAllowedByListeners", "an older route of the other kind routes Service %s/%s", k.namespace, k.name)
		}
		return ParentDecision{Accepted: true, Reason: "Accepted", Message: "attached to Service " + k.namespace + "/" + k.name}, true
	case isGatewayParent(ref):
		gw, ok := gateways[k]
		if !ok {
			return notAccepted("NoMatchingParent", "Gateway %s/%s does not exist", k.namespace, k.name)
		}
		if gw.Spec.GatewayClassName != resource.GatewayClassName {
			return ParentDecision{}, false
		}
		best, selected := outcome(0), 0
		var attached, whys []string
		for i := range gw.Spec.Listeners {
			l := &gw.Spec.Listeners[i]
			if !refSelects(r, ref, gw, l) {
				continue
			}
			selected++
			o := t.decided.outcomes[r][listenerKey{k, l.Name}]
			best = max(best, o.outcome)
			switch ld := t.decided.listeners[listenerKey{k, l.Name}]; {
			case o.outcome == outcomeAttached:
				attached = append(attached, string(l.Name))
			case o.why != "":
				whys = append(whys, fmt.Sprintf("listener %s: %s", l.Name, o.why))
			case ld != nil && ld.Conflicted:
				whys = append(whys, fmt.Sprintf("listener %s: left out, an earlier listener on port %d has another protocol", l.Name, l.Port))
			default:
				whys = append(whys, fmt.Sprintf("listener %s: protocol %s is not served (Sluice serves HTTP and HTTPS)", l.Name, l.Protocol))
			}
		}
		switch {
		case selected == 0:
			return notAccepted("NoMatchingParent", "Gateway %s/%s has no listener %s", k.namespace, k.name, sectionText(ref))
		case best == outcomeAttached:
			return ParentDecision{Accepted: true, Reason: "Accepted", Message: fmt.Sprintf("attached to listeners %v", attached)}, true
		case best == outcomeNoHostname:
			return notAccepted("NoMatchingListenerHostname", "Gateway %s/%s: %s", k.namespace, k.name, strings.Join(whys, "; "))
		default:
			return notAccepted("NotAllowedByListeners", "Gateway %s/%s: %s", k.namespace, k.name, strings.Join(whys, "; "))
		}
	}
	return notAccepted("NoMatchingParent", "parentRef kind %v is neither Gateway nor Service", ref.Kind)
}

// sectionText describes which listener a parentRef selects.
func sectionText(ref gatewayv1.ParentReference) string {
	switch {
	case ref.SectionName != nil && ref.Port != nil:
		return fmt.Sprintf("named %s on port %d", *ref.SectionName, *ref.Port)
	case ref.SectionName != nil:
		return "named " + string(*ref.SectionName)
	case ref.Port != nil:
		return fmt.Sprintf("on port %d", *ref.Port)
	}
	return "at all"
}

// resolveRefs decides a route's ResolvedRefs from its backendRefs, with
// the Services translation routes to.
func (t *translation) resolveRefs(r routeObj, rd *RouteDecision) {
	var refs []gatewayv1.BackendRef
	if r.http != nil {
		for _, rule := range r.http.Spec.Rules {
			for _, b := range rule.BackendRefs {
				refs = append(refs, b.BackendRef)
			}
		}
	} else {
		for _, rule := range r.grpc.Spec.Rules {
			for _, b := range rule.BackendRefs {
				refs = append(refs, b.BackendRef)
			}
		}
	}
	for _, ref := range refs {
		if !isServiceBackend(ref.BackendObjectReference) {
			rd.ResolvedRefs, rd.Reason, rd.Message = false, "InvalidKind", fmt.Sprintf("backendRef %s is of kind %v, not Service", ref.Name, ref.Kind)
			return
		}
		k, port := backendRefKey(r.meta().GetNamespace(), ref.BackendObjectReference)
		svc, ok := t.services[k]
		if !ok {
			rd.ResolvedRefs, rd.Reason, rd.Message = false, "BackendNotFound", fmt.Sprintf("Service %s/%s does not exist", k.namespace, k.name)
			return
		}
		if !slices.ContainsFunc(svc.Spec.Ports, func(p resource.ServicePort) bool { return p.Port == port }) {
			rd.ResolvedRefs, rd.Reason, rd.Message = false, "BackendNotFound", fmt.Sprintf("Service %s/%s has no port %d", k.namespace, k.name, port)
			return
		}
	}
	rd.Message = "every backendRef resolves"
}

// isServiceBackend says whether a backendRef names a Sluice Service.
func isServiceBackend(ref gatewayv1.BackendObjectReference) bool {
	return (ref.Kind == nil || *ref.Kind == "Service") && (ref.Group == nil || *ref.Group == "" || *ref.Group == resource.Group)
}
