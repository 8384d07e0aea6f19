package xds

import (
	"cmp"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/sluice/sluice/internal/resource"
)

// Route kinds, as parentRefs and allowedRoutes name them.
const (
	kindHTTPRoute = "HTTPRoute"
	kindGRPCRoute = "GRPCRoute"
)

// routeObj is an HTTPRoute or a GRPCRoute.
type routeObj struct {
	http *gatewayv1.HTTPRoute
	grpc *gatewayv1.GRPCRoute
}

func (r routeObj) meta() metav1.Object {
	if r.http != nil {
		return r.http
	}
	return r.grpc
}

func (r routeObj) kind() string {
	if r.http != nil {
		return kindHTTPRoute
	}
	return kindGRPCRoute
}

func (r routeObj) parentRefs() []gatewayv1.ParentReference {
	if r.http != nil {
		return r.http.Spec.ParentRefs
	}
	return r.grpc.Spec.ParentRefs
}

func (r routeObj) hostnames() []string {
	var hs []gatewayv1.Hostname
	if r.http != nil {
		hs = r.http.Spec.Hostnames
	} else {
		hs = r.grpc.Spec.Hostnames
	}
	out := make([]string, len(hs))
	for i, h := range hs {
		out[i] = string(h)
	}
	return out
}

// routes returns every HTTPRoute and GRPCRoute, sorted by kind, namespace
// and name.
func (t *translation) routes() []routeObj {
	var out []routeObj
	for _, r := range sortedByKey(t.in.GRPCRoutes) {
		out = append(out, routeObj{grpc: r})
	}
	for _, r := range sortedByKey(t.in.HTTPRoutes) {
		out = append(out, routeObj{http: r})
	}
	return out
}

// attachedRoute is a route attached to a parent (a Service port, or the
// listeners of a Gateway on one port) with the hostnames it serves there.
type attachedRoute struct {
	route     routeObj
	hostnames []string
}

// acceptRoutes returns the routes of one parent that can be attached
// together. The Gateway API forbids an HTTPRoute and a GRPCRoute to share
// a hostname on one listener and keeps the older (then the first by
// namespace/name); on a mesh parent every route has every hostname, so the
// oldest route decides which kind routes a Service port.
func acceptRoutes(candidates []attachedRoute) []attachedRoute {
	candidates = slices.Clone(candidates)
	slices.SortFunc(candidates, func(a, b attachedRoute) int {
		return cmp.Or(olderFirst(a.route.meta(), b.route.meta()), cmp.Compare(a.route.kind(), b.route.kind()))
	})
	var out []attachedRoute
	for _, c := range candidates {
		conflict := slices.ContainsFunc(out, func(a attachedRoute) bool {
			return a.route.kind() != c.route.kind() && hostnamesIntersect(a.hostnames, c.hostnames)
		})
		if !conflict {
			out = append(out, c)
		}
	}
	return out
}

// routeOptions says what the routes are for.
type routeOptions struct {
	// mesh routes are also read by proxyless gRPC clients, which NACK a
	// whole RouteConfiguration holding a path_separated_prefix match and
	// read the timeout from max_stream_duration.
	mesh bool
	// clusters, when not nil, collects every cluster the routes use.
	clusters map[string]bool
}

// entries translates every match of every rule of an attached route.
func (t *translation) entries(a attachedRoute, opts routeOptions) []routeEntry {
	m := a.route.meta()
	created, key := m.GetCreationTimestamp().Time, m.GetNamespace()+"/"+m.GetName()
	var out []routeEntry
	if r := a.route.http; r != nil {
		for i := range r.Spec.Rules {
			rule := &r.Spec.Rules[i]
			matches := rule.Matches
			if len(matches) == 0 {
				matches = []gatewayv1.HTTPRouteMatch{{}}
			}
			for j, match := range matches {
				rk := httpRank(match)
				rk.created, rk.route, rk.rule, rk.match = created, key, i, j
				name := fmt.Sprintf("%s/%s/%s/rule/%d/match/%d", kindHTTPRoute, r.Namespace, r.Name, i, j)
				e := routeEntry{rank: rk, hostnames: a.hostnames}
				for _, rm := range httpMatches(match, opts.mesh) {
					route := &routev3.Route{Name: name, Match: rm}
					t.httpAction(route, r.Namespace, rule, match, opts)
					e.routes = append(e.routes, route)
				}
				out = append(out, e)
			}
		}
		return out
	}
	r := a.route.grpc
	for i := range r.Spec.Rules {
		rule := &r.Spec.Rules[i]
		matches := rule.Matches
		if len(matches) == 0 {
			matches = []gatewayv1.GRPCRouteMatch{{}}
		}
		for j, match := range matches {
			rk := grpcRank(match)
			rk.created, rk.route, rk.rule, rk.match = created, key, i, j
			route := &routev3.Route{
				Name:  fmt.Sprintf("%s/%s/%s/rule/%d/match/%d", kindGRPCRoute, r.Namespace, r.Name, i, j),
				Match: grpcMatch(match),
			}
			t.grpcAction(route, r.Namespace, rule, opts)
			out = append(out, routeEntry{rank: rk, hostnames: a.hostnames, routes: []*routev3.Route{route}})
		}
	}
	return out
}

// httpRank ranks an HTTPRoute match by the HTTPRouteRule precedence.
func httpRank(m gatewayv1.HTTPRouteMatch) rank {
	rk := rank{pathKind: pathPrefix, method: m.Method != nil, headers: len(m.Headers), queries: len(m.QueryParams)}
	if p := m.Path; p != nil && p.Value != nil {
		switch pathType(p) {
		case gatewayv1.PathMatchExact:
			rk.pathKind, rk.pathLen = pathExact, len(*p.Value)
		case gatewayv1.PathMatchRegularExpression:
			rk.pathKind, rk.pathLen = pathRegex, len(*p.Value)
		default:
			rk.pathLen = len(strings.TrimRight(*p.Value, "/"))
		}
	}
	return rk
}

// grpcRank ranks a GRPCRoute match by the GRPCRouteRule precedence.
func grpcRank(m gatewayv1.GRPCRouteMatch) rank {
	rk := rank{grpc: true, grpcKind: grpcAny, headers: len(m.Headers)}
	if mm := m.Method; mm != nil && (mm.Service != nil || mm.Method != nil) {
		rk.grpcKind = grpcExact
		if mm.Type != nil && *mm.Type == gatewayv1.GRPCMethodMatchRegularExpression {
			rk.grpcKind = grpcRegex
		}
		if mm.Service != nil {
			rk.serviceLen = len(*mm.Service)
			if rk.grpcKind == grpcExact {
				rk.serviceLen = len(strings.TrimPrefix(*mm.Service, "."))
			}
		}
		if mm.Method != nil {
			rk.methodLen = len(*mm.Method)
		}
	}
	return rk
}

func pathType(p *gatewayv1.HTTPPathMatch) gatewayv1.PathMatchType {
	if p.Type == nil {
		return gatewayv1.PathMatchPathPrefix
	}
	return *p.Type
}

// matchedPrefix is the path prefix a match matches on, without trailing
// slashes ("" for "/"), and whether it is a PathPrefix match.
func matchedPrefix(m gatewayv1.HTTPRouteMatch) (string, bool) {
	if m.Path == nil || m.Path.Value == nil {
		return "", true
	}
	if pathType(m.Path) != gatewayv1.PathMatchPathPrefix {
		return "", false
	}
	return strings.TrimRight(*m.Path.Value, "/"), true
}

// httpMatches translates an HTTPRoute match. A PathPrefix matches whole
// path elements ("/foo" matches "/foo" and "/foo/bar", not "/foobar"), as
// Envoy's path_separated_prefix does; that field forbids a trailing slash,
// which the Gateway API ignores anyway, so "/" is the plain prefix "/". In
// mesh routes, which gRPC clients read, the same match is two routes, the
// exact path and the prefix with a slash.
func httpMatches(m gatewayv1.HTTPRouteMatch, mesh bool) []*routev3.RouteMatch {
	var paths []*routev3.RouteMatch
	prefix, isPrefix := matchedPrefix(m)
	switch {
	case isPrefix && prefix == "":
		paths = append(paths, &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}})
	case isPrefix && mesh:
		paths = append(paths,
			&routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Path{Path: prefix}},
			&routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: prefix + "/"}})
	case isPrefix:
		paths = append(paths, &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_PathSeparatedPrefix{PathSeparatedPrefix: prefix}})
	case pathType(m.Path) == gatewayv1.PathMatchExact:
		paths = append(paths, &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Path{Path: *m.Path.Value}})
	default:
		paths = append(paths, &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_SafeRegex{SafeRegex: regex(*m.Path.Value)}})
	}
	for _, rm := range paths {
		if m.Method != nil {
			rm.Headers = append(rm.Headers, headerMatcher(":method", string(*m.Method), false))
		}
		for _, h := range m.Headers {
			rm.Headers = append(rm.Headers, headerMatcher(string(h.Name), h.Value, h.Type != nil && *h.Type == gatewayv1.HeaderMatchRegularExpression))
		}
		for _, q := range m.QueryParams {
			rm.QueryParameters = append(rm.QueryParameters, &routev3.QueryParameterMatcher{
				Name: string(q.Name),
				QueryParameterMatchSpecifier: &routev3.QueryParameterMatcher_StringMatch{
					StringMatch: stringMatcher(q.Value, q.Type != nil && *q.Type == gatewayv1.QueryParamMatchRegularExpression),
				},
			})
		}
	}
	return paths
}

// grpcMatch translates a GRPCRoute match to a match on the request path,
// "/<service>/<method>".
func grpcMatch(m gatewayv1.GRPCRouteMatch) *routev3.RouteMatch {
	rm := &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}}
	if mm := m.Method; mm != nil && (mm.Service != nil || mm.Method != nil) {
		var service, method string
		if mm.Service != nil {
			service = *mm.Service
		}
		if mm.Method != nil {
			method = *mm.Method
		}
		if mm.Type != nil && *mm.Type == gatewayv1.GRPCMethodMatchRegularExpression {
			part := func(expr string) string {
				if expr == "" {
					return "[^/]+"
				}
				return "(?:" + expr + ")"
			}
			rm.PathSpecifier = &routev3.RouteMatch_SafeRegex{SafeRegex: regex("/" + part(service) + "/" + part(method))}
		} else {
			// A leading dot makes a proto name fully qualified; request
			// paths never have it.
			service = strings.TrimPrefix(service, ".")
			switch {
			case service != "" && method != "":
				rm.PathSpecifier = &routev3.RouteMatch_Path{Path: "/" + service + "/" + method}
			case service != "":
				rm.PathSpecifier = &routev3.RouteMatch_Prefix{Prefix: "/" + service + "/"}
			default:
				rm.PathSpecifier = &routev3.RouteMatch_SafeRegex{SafeRegex: regex("/[^/]+/" + regexp.QuoteMeta(method))}
			}
		}
	}
	for _, h := range m.Headers {
		rm.Headers = append(rm.Headers, headerMatcher(string(h.Name), h.Value, h.Type != nil && *h.Type == gatewayv1.GRPCHeaderMatchRegularExpression))
	}
	return rm
}

func regex(expr string) *matcherv3.RegexMatcher { return &matcherv3.RegexMatcher{Regex: expr} }

func stringMatcher(value string, isRegex bool) *matcherv3.StringMatcher {
	if isRegex {
		return &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_SafeRegex{SafeRegex: regex(value)}}
	}
	return &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: value}}
}

func headerMatcher(name, value string, isRegex bool) *routev3.HeaderMatcher {
	return &routev3.HeaderMatcher{
		Name:                 name,
		HeaderMatchSpecifier: &routev3.HeaderMatcher_StringMatch{StringMatch: stringMatcher(value, isRegex)},
	}
}

// headerMutation is what a RequestHeaderModifier or ResponseHeaderModifier
// filter does to one direction.
type headerMutation struct {
	add    []*corev3.HeaderValueOption
	remove []string
	// host is the value a RequestHeaderModifier sets Host to. Envoy rejects
	// a whole RouteConfiguration that adds, sets or removes Host as a
	// header, so setting it becomes a host rewrite and the rest is left out.
	host string
}

func (h *headerMutation) apply(f *gatewayv1.HTTPHeaderFilter) {
	if f == nil {
		return
	}
	isHost := func(name string) bool { return strings.EqualFold(name, "host") }
	option := func(hdr gatewayv1.HTTPHeader, action corev3.HeaderValueOption_HeaderAppendAction) *corev3.HeaderValueOption {
		return &corev3.HeaderValueOption{Header: &corev3.HeaderValue{Key: string(hdr.Name), Value: hdr.Value}, AppendAction: action}
	}
	for _, s := range f.Set {
		if isHost(string(s.Name)) {
			h.host = s.Value
			continue
		}
		h.add = append(h.add, option(s, corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD))
	}
	for _, a := range f.Add {
		if !isHost(string(a.Name)) {
			h.add = append(h.add, option(a, corev3.HeaderValueOption_APPEND_IF_EXISTS_OR_ADD))
		}
	}
	for _, name := range f.Remove {
		if !isHost(name) {
			h.remove = append(h.remove, name)
		}
	}
}

// backend is one backendRef of a rule, resolved.
type backend struct {
	cluster  string
	service  objKey
	weight   uint32
	request  headerMutation
	response headerMutation
	// hostRewrite is a backendRef URLRewrite's hostname.
	hostRewrite string
}

func (b *backend) hasFilters() bool {
	return len(b.request.add)+len(b.request.remove)+len(b.response.add)+len(b.response.remove) > 0 || b.hostRewrite != ""
}

// resolveBackend resolves a backendRef of a route in namespace ns and
// records its cluster.
func (t *translation) resolveBackend(ns string, ref gatewayv1.BackendRef, opts routeOptions) backend {
	svc, port := backendRefKey(ns, ref.BackendObjectReference)
	b := backend{cluster: t.backendCluster(svc.namespace, svc.name, port), service: svc, weight: 1}
	if ref.Weight != nil {
		b.weight = uint32(max(*ref.Weight, 0))
	}
	if b.weight > 0 && opts.clusters != nil {
		opts.clusters[b.cluster] = true
	}
	return b
}

// setClusters points a route action at its backends: route.cluster for
// one backend without filters, weighted_clusters otherwise (backends of
// weight 0 left out). It returns false when no backend can take traffic.
func setClusters(a *routev3.RouteAction, backends []backend) bool {
	backends = slices.DeleteFunc(slices.Clone(backends), func(b backend) bool { return b.weight == 0 })
	switch {
	case len(backends) == 0:
		return false
	case len(backends) == 1 && !backends[0].hasFilters():
		a.ClusterSpecifier = &routev3.RouteAction_Cluster{Cluster: backends[0].cluster}
		return true
	}
	wc := &routev3.WeightedCluster{}
	for _, b := range backends {
		cw := &routev3.WeightedCluster_ClusterWeight{
			Name:                    b.cluster,
			Weight:                  wrapperspb.UInt32(b.weight),
			RequestHeadersToAdd:     b.request.add,
			RequestHeadersToRemove:  b.request.remove,
			ResponseHeadersToAdd:    b.response.add,
			ResponseHeadersToRemove: b.response.remove,
		}
		if b.hostRewrite != "" {
			cw.HostRewriteSpecifier = &routev3.WeightedCluster_ClusterWeight_HostRewriteLiteral{HostRewriteLiteral: b.hostRewrite}
		}
		wc.Clusters = append(wc.Clusters, cw)
	}
	a.ClusterSpecifier = &routev3.RouteAction_WeightedClusters{WeightedClusters: wc}
	return true
}

// backendPolicy is the BackendPolicy of the one Service every backend that
// takes traffic goes to, if there is one. Timeouts and retries are a
// route's, so a policy's apply only where it is not in doubt which policy
// is meant.
func (t *translation) backendPolicy(backends []backend) *resource.BackendPolicy {
	var svc *objKey
	for i := range backends {
		switch b := &backends[i]; {
		case b.weight == 0:
		case svc == nil:
			svc = &b.service
		case *svc != b.service:
			return nil
		}
	}
	if svc == nil {
		return nil
	}
	return t.policies[*svc]
}

// hashPolicies are what RingHash clusters hash on: the hashOn of each
// backend Service whose BackendPolicy asks for RingHash, without repeats.
func (t *translation) hashPolicies(backends []backend) []*routev3.RouteAction_HashPolicy {
	var out []*routev3.RouteAction_HashPolicy
	seen := map[resource.HashOn]bool{}
	for _, b := range backends {
		p := t.policies[b.service]
		if b.weight == 0 || p == nil || p.Spec.LoadBalancer == nil || p.Spec.LoadBalancer.Type != resource.LoadBalancerRingHash || p.Spec.LoadBalancer.HashOn == nil {
			continue
		}
		on := *p.Spec.LoadBalancer.HashOn
		if seen[on] {
			continue
		}
		seen[on] = true
		switch {
		case on.Header != "":
			out = append(out, &routev3.RouteAction_HashPolicy{PolicySpecifier: &routev3.RouteAction_HashPolicy_Header_{
				Header: &routev3.RouteAction_HashPolicy_Header{HeaderName: on.Header}}})
		case on.Cookie != "":
			out = append(out, &routev3.RouteAction_HashPolicy{PolicySpecifier: &routev3.RouteAction_HashPolicy_Cookie_{
				Cookie: &routev3.RouteAction_HashPolicy_Cookie{Name: on.Cookie}}})
		case on.SourceIP:
			out = append(out, &routev3.RouteAction_HashPolicy{PolicySpecifier: &routev3.RouteAction_HashPolicy_ConnectionProperties_{
				ConnectionProperties: &routev3.RouteAction_HashPolicy_ConnectionProperties{SourceIp: true}}})
		}
	}
	return out
}

// timing is a route's timeouts and retries; nil means unset.
type timing struct {
	request  *time.Duration
	perTry   *time.Duration
	retryOn  string
	codes    []uint32
	attempts *int
	backoff  *time.Duration
	retry    bool
}

// fromPolicy fills what t leaves unset from a BackendPolicy.
func (tm *timing) fromPolicy(p *resource.BackendPolicy) {
	if p == nil {
		return
	}
	if to := p.Spec.Timeouts; tm.request == nil && to != nil && to.Request != nil {
		tm.request = &to.Request.Duration
	}
	r := p.Spec.Retry
	if r == nil {
		return
	}
	if tm.perTry == nil && r.PerTryTimeout != nil {
		tm.perTry = &r.PerTryTimeout.Duration
	}
	if !tm.retry {
		attempts := int(r.Attempts)
		tm.retry, tm.retryOn, tm.attempts = true, strings.Join(r.RetryOn, ","), &attempts
		if r.Backoff != nil {
			tm.backoff = &r.Backoff.Duration
		}
	}
}

// apply sets timing on a route action. Retries with attempts 0 are no
// retries: gRPC clients NACK num_retries 0, so no retry policy is set and
// a per-try timeout, which then bounds the only try, becomes the route
// timeout if shorter.
func (tm timing) apply(a *routev3.RouteAction, mesh bool) {
	request := tm.request
	if tm.retry && (tm.attempts == nil || *tm.attempts > 0) {
		rp := &routev3.RetryPolicy{RetryOn: tm.retryOn, RetriableStatusCodes: tm.codes}
		if tm.attempts != nil {
			rp.NumRetries = wrapperspb.UInt32(uint32(*tm.attempts))
		}
		if tm.perTry != nil && *tm.perTry > 0 {
			rp.PerTryTimeout = durationpb.New(*tm.perTry)
		}
		if tm.backoff != nil && *tm.backoff > 0 {
			rp.RetryBackOff = &routev3.RetryPolicy_RetryBackOff{BaseInterval: durationpb.New(*tm.backoff)}
		}
		a.RetryPolicy = rp
	} else if tm.perTry != nil && *tm.perTry > 0 && (request == nil || *request == 0 || *tm.perTry < *request) {
		request = tm.perTry
	}
	if request == nil {
		return
	}
	// Zero disables the timeout, for Envoy as for the Gateway API.
	a.Timeout = durationpb.New(*request)
	if mesh && *request > 0 {
		// gRPC clients take the deadline from max_stream_duration, not timeout.
		a.MaxStreamDuration = &routev3.RouteAction_MaxStreamDuration{MaxStreamDuration: durationpb.New(*request)}
	}
}

// gatewayDuration parses a Gateway API duration, validated on write.
func gatewayDuration(d *gatewayv1.Duration) *time.Duration {
	if d == nil {
		return nil
	}
	v, err := time.ParseDuration(string(*d))
	if err != nil {
		return nil
	}
	return &v
}

// ruleFilters is what the filters of a rule (or of a backendRef) do.
type ruleFilters struct {
	request, response headerMutation
	redirect          *gatewayv1.HTTPRequestRedirectFilter
	rewrite           *gatewayv1.HTTPURLRewriteFilter
	mirrors           []*routev3.RouteAction_RequestMirrorPolicy
}

// filters reads the filters of a rule in namespace ns, in order.
func (t *translation) filters(ns string, filters []gatewayv1.HTTPRouteFilter, opts routeOptions) ruleFilters {
	var rf ruleFilters
	for _, f := range filters {
		switch f.Type {
		case gatewayv1.HTTPRouteFilterRequestHeaderModifier:
			rf.request.apply(f.RequestHeaderModifier)
		case gatewayv1.HTTPRouteFilterResponseHeaderModifier:
			rf.response.apply(f.ResponseHeaderModifier)
		case gatewayv1.HTTPRouteFilterRequestMirror:
			if f.RequestMirror != nil {
				rf.mirrors = append(rf.mirrors, t.mirror(ns, f.RequestMirror, opts))
			}
		case gatewayv1.HTTPRouteFilterRequestRedirect:
			rf.redirect = f.RequestRedirect
		case gatewayv1.HTTPRouteFilterURLRewrite:
			rf.rewrite = f.URLRewrite
		}
	}
	return rf
}

// backends resolves the backendRefs of a rule in namespace ns. Of a
// backendRef's filters, Envoy applies per backend only header changes and a
// host rewrite; the others (mirrors, redirects, path rewrites) are not
// supported there and left out.
func (t *translation) backends(ns string, refs []gatewayv1.HTTPBackendRef, opts routeOptions) []backend {
	var out []backend
	for _, ref := range refs {
		b := t.resolveBackend(ns, ref.BackendRef, opts)
		rf := t.filters(ns, ref.Filters, routeOptions{mesh: opts.mesh})
		b.request, b.response = rf.request, rf.response
		b.hostRewrite = rf.request.host
		if rf.rewrite != nil && rf.rewrite.Hostname != nil {
			b.hostRewrite = string(*rf.rewrite.Hostname)
		}
		out = append(out, b)
	}
	return out
}

// httpFilters are GRPCRoute filters as the HTTPRoute filters they are the
// same as (same types, same type names).
func httpFilters(filters []gatewayv1.GRPCRouteFilter) []gatewayv1.HTTPRouteFilter {
	out := make([]gatewayv1.HTTPRouteFilter, len(filters))
	for i, f := range filters {
		out[i] = gatewayv1.HTTPRouteFilter{
			Type:                   gatewayv1.HTTPRouteFilterType(f.Type),
			RequestHeaderModifier:  f.RequestHeaderModifier,
			ResponseHeaderModifier: f.ResponseHeaderModifier,
			RequestMirror:          f.RequestMirror,
			ExtensionRef:           f.ExtensionRef,
		}
	}
	return out
}

// httpBackendRefs are GRPCRoute backendRefs as HTTPRoute ones.
func httpBackendRefs(refs []gatewayv1.GRPCBackendRef) []gatewayv1.HTTPBackendRef {
	out := make([]gatewayv1.HTTPBackendRef, len(refs))
	for i, r := range refs {
		out[i] = gatewayv1.HTTPBackendRef{BackendRef: r.BackendRef, Filters: httpFilters(r.Filters)}
	}
	return out
}

// httpAction sets the action of the route translating match m of an
// HTTPRoute rule, in namespace ns.
func (t *translation) httpAction(route *routev3.Route, ns string, rule *gatewayv1.HTTPRouteRule, m gatewayv1.HTTPRouteMatch, opts routeOptions) {
	rf := t.filters(ns, rule.Filters, opts)
	route.RequestHeadersToAdd, route.RequestHeadersToRemove = rf.request.add, rf.request.remove
	route.ResponseHeadersToAdd, route.ResponseHeadersToRemove = rf.response.add, rf.response.remove
	prefix, isPrefix := matchedPrefix(m)

	if rf.redirect != nil {
		route.Action = &routev3.Route_Redirect{Redirect: redirectAction(rf.redirect, prefix, isPrefix, opts.mesh)}
		return
	}
	backends := t.backends(ns, rule.BackendRefs, opts)
	// An invalid backend answers 500, as the Gateway API asks of HTTPRoutes.
	a := &routev3.RouteAction{ClusterNotFoundResponseCode: routev3.RouteAction_INTERNAL_SERVER_ERROR}
	if !setClusters(a, backends) {
		route.Action = &routev3.Route_DirectResponse{DirectResponse: &routev3.DirectResponseAction{Status: 500}}
		return
	}
	if rf.request.host != "" {
		a.HostRewriteSpecifier = &routev3.RouteAction_HostRewriteLiteral{HostRewriteLiteral: rf.request.host}
	}
	if rw := rf.rewrite; rw != nil {
		if rw.Hostname != nil {
			a.HostRewriteSpecifier = &routev3.RouteAction_HostRewriteLiteral{HostRewriteLiteral: string(*rw.Hostname)}
		}
		if p := rw.Path; p != nil {
			switch {
			case p.Type == gatewayv1.FullPathHTTPPathModifier && p.ReplaceFullPath != nil:
				a.RegexRewrite = &matcherv3.RegexMatchAndSubstitute{Pattern: regex("^/.*$"), Substitution: *p.ReplaceFullPath}
			case p.Type == gatewayv1.PrefixMatchHTTPPathModifier && p.ReplacePrefixMatch != nil && isPrefix:
				a.PrefixRewrite, a.RegexRewrite = prefixRewrite(prefix, *p.ReplacePrefixMatch, opts.mesh)
			}
		}
	}
	a.RequestMirrorPolicies = rf.mirrors
	a.HashPolicy = t.hashPolicies(backends)

	var tm timing
	if to := rule.Timeouts; to != nil {
		tm.request, tm.perTry = gatewayDuration(to.Request), gatewayDuration(to.BackendRequest)
	}
	if r := rule.Retry; r != nil {
		// The Gateway API asks to retry connection errors whenever a retry
		// stanza is set, and the listed status codes.
		tm.retry, tm.retryOn, tm.attempts, tm.backoff = true, "connect-failure,refused-stream,reset", r.Attempts, gatewayDuration(r.Backoff)
		if len(r.Codes) > 0 {
			tm.retryOn += ",retriable-status-codes"
			for _, c := range r.Codes {
				tm.codes = append(tm.codes, uint32(c))
			}
		}
	}
	tm.fromPolicy(t.backendPolicy(backends))
	tm.apply(a, opts.mesh)
	route.Action = &routev3.Route_Route{Route: a}
}

// grpcAction sets the action of a route translating a GRPCRoute rule.
// GRPCRoute has no timeouts or retries of its own: those of the
// BackendPolicy of the Service its backends go to apply.
func (t *translation) grpcAction(route *routev3.Route, ns string, rule *gatewayv1.GRPCRouteRule, opts routeOptions) {
	rf := t.filters(ns, httpFilters(rule.Filters), opts)
	route.RequestHeadersToAdd, route.RequestHeadersToRemove = rf.request.add, rf.request.remove
	route.ResponseHeadersToAdd, route.ResponseHeadersToRemove = rf.response.add, rf.response.remove
	backends := t.backends(ns, httpBackendRefs(rule.BackendRefs), opts)
	a := &routev3.RouteAction{}
	if !setClusters(a, backends) {
		// The Gateway API asks for UNAVAILABLE. gRPC maps HTTP 503 to it,
		// and proxyless gRPC clients fail an RPC matching a route that
		// does not forward with UNAVAILABLE too. Leaving the rule out
		// instead would let its requests fall through to other rules.
		route.Action = &routev3.Route_DirectResponse{DirectResponse: &routev3.DirectResponseAction{Status: 503}}
		return
	}
	if rf.request.host != "" {
		a.HostRewriteSpecifier = &routev3.RouteAction_HostRewriteLiteral{HostRewriteLiteral: rf.request.host}
	}
	a.RequestMirrorPolicies = rf.mirrors
	a.HashPolicy = t.hashPolicies(backends)
	var tm timing
	tm.fromPolicy(t.backendPolicy(backends))
	tm.apply(a, opts.mesh)
	route.Action = &routev3.Route_Route{Route: a}
}

// mirror translates a RequestMirror filter.
func (t *translation) mirror(ns string, f *gatewayv1.HTTPRequestMirrorFilter, opts routeOptions) *routev3.RouteAction_RequestMirrorPolicy {
	svc, port := backendRefKey(ns, f.BackendRef)
	cluster := t.backendCluster(svc.namespace, svc.name, port)
	if opts.clusters != nil {
		opts.clusters[cluster] = true
	}
	p := &routev3.RouteAction_RequestMirrorPolicy{Cluster: cluster}
	var fraction *typev3.FractionalPercent
	switch {
	case f.Percent != nil:
		fraction = &typev3.FractionalPercent{Numerator: uint32(*f.Percent), Denominator: typev3.FractionalPercent_HUNDRED}
	case f.Fraction != nil:
		fraction = fractionalPercent(f.Fraction)
	}
	if fraction != nil {
		p.RuntimeFraction = &corev3.RuntimeFractionalPercent{DefaultValue: fraction}
	}
	return p
}

// fractionalPercent is a Gateway API fraction in one of Envoy's three
// denominators: exact when the denominator is one of them, else in
// millionths, rounded down.
func fractionalPercent(f *gatewayv1.Fraction) *typev3.FractionalPercent {
	den := int32(100)
	if f.Denominator != nil && *f.Denominator > 0 {
		den = *f.Denominator
	}
	num := uint32(max(f.Numerator, 0))
	switch den {
	case 100:
		return &typev3.FractionalPercent{Numerator: num, Denominator: typev3.FractionalPercent_HUNDRED}
	case 10000:
		return &typev3.FractionalPercent{Numerator: num, Denominator: typev3.FractionalPercent_TEN_THOUSAND}
	case 1000000:
		return &typev3.FractionalPercent{Numerator: num, Denominator: typev3.FractionalPercent_MILLION}
	}
	return &typev3.FractionalPercent{Numerator: uint32(uint64(num) * 1000000 / uint64(den)), Denominator: typev3.FractionalPercent_MILLION}
}

// prefixRewrite replaces the matched path prefix (without trailing
// slashes) with with. Envoy's prefix_rewrite swaps the prefix the route
// matched, which is right for a path_separated_prefix match but leaves
// "//x" when with is "/" and drops a slash after the "<prefix>/" routes of
// mesh matches: a regular expression anchored at the start does those.
func prefixRewrite(prefix, with string, mesh bool) (string, *matcherv3.RegexMatchAndSubstitute) {
	with = strings.TrimRight(with, "/")
	switch {
	case with == "":
		return "", &matcherv3.RegexMatchAndSubstitute{Pattern: regex("^" + regexp.QuoteMeta(prefix) + "/*"), Substitution: "/"}
	case prefix == "":
		return "", &matcherv3.RegexMatchAndSubstitute{Pattern: regex("^/"), Substitution: with + "/"}
	case mesh:
		return "", &matcherv3.RegexMatchAndSubstitute{Pattern: regex("^" + regexp.QuoteMeta(prefix)), Substitution: with}
	}
	return with, nil
}

// redirectCodes maps the Gateway API's redirect status codes to Envoy's.
var redirectCodes = map[int]routev3.RedirectAction_RedirectResponseCode{
	301: routev3.RedirectAction_MOVED_PERMANENTLY,
	302: routev3.RedirectAction_FOUND,
	303: routev3.RedirectAction_SEE_OTHER,
	307: routev3.RedirectAction_TEMPORARY_REDIRECT,
	308: routev3.RedirectAction_PERMANENT_REDIRECT,
}

// redirectAction translates a RequestRedirect filter of a rule whose match
// matched prefix (when isPrefix).
func redirectAction(f *gatewayv1.HTTPRequestRedirectFilter, prefix string, isPrefix, mesh bool) *routev3.RedirectAction {
	r := &routev3.RedirectAction{ResponseCode: routev3.RedirectAction_FOUND}
	if f.StatusCode != nil {
		if code, ok := redirectCodes[*f.StatusCode]; ok {
			r.ResponseCode = code
		}
	}
	if f.Scheme != nil {
		r.SchemeRewriteSpecifier = &routev3.RedirectAction_SchemeRedirect{SchemeRedirect: *f.Scheme}
	}
	if f.Hostname != nil {
		r.HostRedirect = string(*f.Hostname)
	}
	switch {
	case f.Port != nil:
		r.PortRedirect = uint32(*f.Port)
	case f.Scheme != nil && *f.Scheme == "http":
		// A new scheme without a port takes its well-known port, which
		// Envoy leaves out of the Location.
		r.PortRedirect = 80
	case f.Scheme != nil && *f.Scheme == "https":
		r.PortRedirect = 443
	}
	if p := f.Path; p != nil {
		switch {
		case p.Type == gatewayv1.FullPathHTTPPathModifier && p.ReplaceFullPath != nil:
			r.PathRewriteSpecifier = &routev3.RedirectAction_PathRedirect{PathRedirect: *p.ReplaceFullPath}
		case p.Type == gatewayv1.PrefixMatchHTTPPathModifier && p.ReplacePrefixMatch != nil && isPrefix:
			if rewrite, re := prefixRewrite(prefix, *p.ReplacePrefixMatch, mesh); re != nil {
				r.PathRewriteSpecifier = &routev3.RedirectAction_RegexRewrite{RegexRewrite: re}
			} else {
				r.PathRewriteSpecifier = &routev3.RedirectAction_PrefixRewrite{PrefixRewrite: rewrite}
			}
		}
	}
	return r
}

// defaultRoute is the route of a Service port no route attaches to: all
// requests to the port's own cluster, with its BackendPolicy's timeouts
// and retries.
func (t *translation) defaultRoute(svc *resource.Service, port int32, opts routeOptions) *routev3.Route {
	backends := []backend{{cluster: t.backendCluster(svc.Namespace, svc.Name, port), service: keyOf(svc), weight: 1}}
	a := &routev3.RouteAction{}
	setClusters(a, backends)
	a.HashPolicy = t.hashPolicies(backends)
	var tm timing
	tm.fromPolicy(t.policies[keyOf(svc)])
	tm.apply(a, opts.mesh)
	return &routev3.Route{
		Name:   "default",
		Match:  &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}},
		Action: &routev3.Route_Route{Route: a},
	}
}

// validRoutes returns the routes of the entries, in order, without those
// that fail validation, which are recorded as dropped from config.
func (t *translation) validRoutes(config string, entries []routeEntry) []*routev3.Route {
	var out []*routev3.Route
	for _, e := range entries {
		for _, r := range e.routes {
			if err := r.ValidateAll(); err != nil {
				t.dropped = append(t.dropped, fmt.Sprintf("RouteConfiguration %s: route %s: %v", config, r.Name, err))
				continue
			}
			out = append(out, r)
		}
	}
	return out
}
