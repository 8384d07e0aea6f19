package xds

import (
	"math/rand/v2"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"
)

func ptr[T any](v T) *T { return &v }

func pathMatch(typ gatewayv1.PathMatchType, value string) *gatewayv1.HTTPPathMatch {
	return &gatewayv1.HTTPPathMatch{Type: ptr(typ), Value: ptr(value)}
}

// TestHTTPPrecedence sorts shuffled HTTPRoute matches and expects the
// Gateway API order.
func TestHTTPPrecedence(t *testing.T) {
	old := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	newer := old.Add(time.Hour)
	header := func(n int) []gatewayv1.HTTPHeaderMatch {
		return make([]gatewayv1.HTTPHeaderMatch, n)
	}
	type match struct {
		name    string
		m       gatewayv1.HTTPRouteMatch
		created time.Time
		route   string
		rule    int
	}
	want := []match{
		{name: "exact long", m: gatewayv1.HTTPRouteMatch{Path: pathMatch(gatewayv1.PathMatchExact, "/a/b/c")}},
		{name: "exact short", m: gatewayv1.HTTPRouteMatch{Path: pathMatch(gatewayv1.PathMatchExact, "/a")}},
		{name: "regex", m: gatewayv1.HTTPRouteMatch{Path: pathMatch(gatewayv1.PathMatchRegularExpression, "/a/.*")}},
		{name: "long prefix", m: gatewayv1.HTTPRouteMatch{Path: pathMatch(gatewayv1.PathMatchPathPrefix, "/a/b")}},
		{name: "prefix with method", m: gatewayv1.HTTPRouteMatch{Path: pathMatch(gatewayv1.PathMatchPathPrefix, "/a"), Method: ptr(gatewayv1.HTTPMethodGet)}},
		{name: "prefix with 2 headers", m: gatewayv1.HTTPRouteMatch{Path: pathMatch(gatewayv1.PathMatchPathPrefix, "/a"), Headers: header(2)}},
		{name: "prefix with 1 header, 2 queries", m: gatewayv1.HTTPRouteMatch{Path: pathMatch(gatewayv1.PathMatchPathPrefix, "/a"), Headers: header(1), QueryParams: make([]gatewayv1.HTTPQueryParamMatch, 2)}},
		{name: "prefix with 1 header", m: gatewayv1.HTTPRouteMatch{Path: pathMatch(gatewayv1.PathMatchPathPrefix, "/a"), Headers: header(1)}},
		// A trailing slash does not count: "/a/" ties with "/a".
		{name: "prefix, old route, rule 0", m: gatewayv1.HTTPRouteMatch{Path: pathMatch(gatewayv1.PathMatchPathPrefix, "/a/")}, created: old, route: "ns/z"},
		{name: "prefix, old route, rule 1", m: gatewayv1.HTTPRouteMatch{Path: pathMatch(gatewayv1.PathMatchPathPrefix, "/a")}, created: old, route: "ns/z", rule: 1},
		{name: "prefix, newer route first by name", m: gatewayv1.HTTPRouteMatch{Path: pathMatch(gatewayv1.PathMatchPathPrefix, "/a")}, created: newer, route: "ns/a"},
		{name: "prefix, newer route", m: gatewayv1.HTTPRouteMatch{Path: pathMatch(gatewayv1.PathMatchPathPrefix, "/a")}, created: newer, route: "ns/b"},
		{name: "root", m: gatewayv1.HTTPRouteMatch{Path: pathMatch(gatewayv1.PathMatchPathPrefix, "/")}},
	}
	entries := make([]routeEntry, len(want))
	for i, w := range want {
		rk := httpRank(w.m)
		rk.created, rk.route, rk.rule = w.created, w.route, w.rule
		entries[i] = routeEntry{rank: rk, routes: []*routev3.Route{{Name: w.name}}}
	}
	rng := rand.New(rand.NewPCG(3, 4))
	for range 20 {
		rng.Shuffle(len(entries), func(i, j int) { entries[i], entries[j] = entries[j], entries[i] })
		sortEntries(entries)
		for i, e := range entries {
			if e.routes[0].Name != want[i].name {
				t.Fatalf("position %d: got %q, want %q", i, e.routes[0].Name, want[i].name)
			}
		}
	}
}

// TestGRPCPrecedence checks the GRPCRoute order: exact matches by
// characters of service then method, then regular expressions, then rules
// without a method match; headers break ties.
func TestGRPCPrecedence(t *testing.T) {
	exact := func(service, method string) *gatewayv1.GRPCMethodMatch {
		m := &gatewayv1.GRPCMethodMatch{Type: ptr(gatewayv1.GRPCMethodMatchExact)}
		if service != "" {
			m.Service = ptr(service)
		}
		if method != "" {
			m.Method = ptr(method)
		}
		return m
	}
	want := []struct {
		name string
		m    gatewayv1.GRPCRouteMatch
	}{
		{"long service", gatewayv1.GRPCRouteMatch{Method: exact("pkg.LongService", "")}},
		{"service and method", gatewayv1.GRPCRouteMatch{Method: exact("pkg.Svc", "Get")}},
		{"service with header", gatewayv1.GRPCRouteMatch{Method: exact(".pkg.Svc", ""), Headers: make([]gatewayv1.GRPCHeaderMatch, 1)}},
		{"service", gatewayv1.GRPCRouteMatch{Method: exact("pkg.Svc", "")}},
		{"method", gatewayv1.GRPCRouteMatch{Method: exact("", "Get")}},
		{"regex", gatewayv1.GRPCRouteMatch{Method: &gatewayv1.GRPCMethodMatch{Type: ptr(gatewayv1.GRPCMethodMatchRegularExpression), Service: ptr("pkg\\..*")}}},
		{"headers only", gatewayv1.GRPCRouteMatch{Headers: make([]gatewayv1.GRPCHeaderMatch, 1)}},
		{"everything", gatewayv1.GRPCRouteMatch{}},
	}
	var entries []routeEntry
	for i := len(want) - 1; i >= 0; i-- {
		entries = append(entries, routeEntry{rank: grpcRank(want[i].m), routes: []*routev3.Route{{Name: want[i].name}}})
	}
	sortEntries(entries)
	for i, e := range entries {
		if e.routes[0].Name != want[i].name {
			t.Errorf("position %d: got %q, want %q", i, e.routes[0].Name, want[i].name)
		}
	}
}

// matchesPath evaluates the path part of an Envoy route match the way
// Envoy does (without a query string).
func matchesPath(t *testing.T, m *routev3.RouteMatch, path string) bool {
	t.Helper()
	switch p := m.PathSpecifier.(type) {
	case *routev3.RouteMatch_Prefix:
		return strings.HasPrefix(path, p.Prefix)
	case *routev3.RouteMatch_Path:
		return path == p.Path
	case *routev3.RouteMatch_PathSeparatedPrefix:
		return path == p.PathSeparatedPrefix || strings.HasPrefix(path, p.PathSeparatedPrefix+"/")
	case *routev3.RouteMatch_SafeRegex:
		return regexp.MustCompile("^(?:" + p.SafeRegex.Regex + ")$").MatchString(path)
	}
	t.Fatalf("unexpected path specifier %T", m.PathSpecifier)
	return false
}

// TestPathPrefixSemantics checks that a PathPrefix matches whole path
// elements, in gateway and in mesh routes, and that every route is valid.
func TestPathPrefixSemantics(t *testing.T) {
	tests := []struct {
		prefix  string
		match   []string
		noMatch []string
	}{
		{"/", []string{"/", "/foo", "/foo/bar"}, nil},
		{"/foo", []string{"/foo", "/foo/", "/foo/bar"}, []string{"/foobar", "/fo", "/", "/bar/foo"}},
		{"/foo/", []string{"/foo", "/foo/", "/foo/bar"}, []string{"/foobar", "/"}},
		{"/foo/bar", []string{"/foo/bar", "/foo/bar/baz"}, []string{"/foo", "/foo/barbaz", "/foo/ba"}},
	}
	for _, mesh := range []bool{false, true} {
		for _, tt := range tests {
			matches := httpMatches(gatewayv1.HTTPRouteMatch{Path: pathMatch(gatewayv1.PathMatchPathPrefix, tt.prefix)}, mesh)
			matchesAny := func(path string) bool {
				for _, m := range matches {
					if err := m.ValidateAll(); err != nil {
						t.Fatalf("prefix %q (mesh %v): invalid match: %v", tt.prefix, mesh, err)
					}
					if _, ok := m.PathSpecifier.(*routev3.RouteMatch_PathSeparatedPrefix); ok && mesh {
						t.Fatalf("prefix %q: mesh routes must not use path_separated_prefix (gRPC clients NACK it)", tt.prefix)
					}
					if matchesPath(t, m, path) {
						return true
					}
				}
				return false
			}
			for _, p := range tt.match {
				if !matchesAny(p) {
					t.Errorf("prefix %q (mesh %v) does not match %q", tt.prefix, mesh, p)
				}
			}
			for _, p := range tt.noMatch {
				if matchesAny(p) {
					t.Errorf("prefix %q (mesh %v) matches %q", tt.prefix, mesh, p)
				}
			}
		}
	}
}

// rewritePath applies the path rewrite of a route action to the path the
// route's match matched, as Envoy does.
func rewritePath(t *testing.T, m *routev3.RouteMatch, a *routev3.RouteAction, path string) string {
	t.Helper()
	if re := a.GetRegexRewrite(); re != nil {
		return regexp.MustCompile(re.Pattern.Regex).ReplaceAllString(path, re.Substitution)
	}
	if a.PrefixRewrite == "" {
		return path
	}
	var matched string
	switch p := m.PathSpecifier.(type) {
	case *routev3.RouteMatch_Prefix:
		matched = p.Prefix
	case *routev3.RouteMatch_Path:
		matched = p.Path
	case *routev3.RouteMatch_PathSeparatedPrefix:
		matched = p.PathSeparatedPrefix
	}
	return a.PrefixRewrite + strings.TrimPrefix(path, matched)
}

// TestReplacePrefixMatch checks ReplacePrefixMatch rewrites by the
// Gateway API's rules, in gateway and in mesh routes.
func TestReplacePrefixMatch(t *testing.T) {
	tests := []struct {
		prefix, with string
		paths        map[string]string
	}{
		{"/foo", "/bar", map[string]string{"/foo": "/bar", "/foo/": "/bar/", "/foo/x": "/bar/x"}},
		{"/foo", "/", map[string]string{"/foo": "/", "/foo/": "/", "/foo/x": "/x", "/foo/x/y": "/x/y"}},
		{"/foo/", "/bar/", map[string]string{"/foo": "/bar", "/foo/x": "/bar/x"}},
		{"/", "/bar", map[string]string{"/x": "/bar/x", "/x/y": "/bar/x/y"}},
		{"/", "/", map[string]string{"/": "/", "/x": "/x"}},
	}
	for _, mesh := range []bool{false, true} {
		for _, tt := range tests {
			m := gatewayv1.HTTPRouteMatch{Path: pathMatch(gatewayv1.PathMatchPathPrefix, tt.prefix)}
			rule := &gatewayv1.HTTPRouteRule{
				Filters: []gatewayv1.HTTPRouteFilter{{
					Type: gatewayv1.HTTPRouteFilterURLRewrite,
					URLRewrite: &gatewayv1.HTTPURLRewriteFilter{Path: &gatewayv1.HTTPPathModifier{
						Type: gatewayv1.PrefixMatchHTTPPathModifier, ReplacePrefixMatch: ptr(tt.with)}},
				}},
				BackendRefs: []gatewayv1.HTTPBackendRef{{BackendRef: gatewayv1.BackendRef{
					BackendObjectReference: gatewayv1.BackendObjectReference{Name: "svc", Port: ptr(gatewayv1.PortNumber(80))}}}},
			}
			tr := translate(&Inputs{})
			var routes []*routev3.Route
			for _, rm := range httpMatches(m, mesh) {
				r := &routev3.Route{Name: "r", Match: rm}
				tr.httpAction(r, "ns", rule, m, routeOptions{mesh: mesh})
				if err := r.ValidateAll(); err != nil {
					t.Fatalf("prefix %q with %q (mesh %v): invalid route: %v", tt.prefix, tt.with, mesh, err)
				}
				routes = append(routes, r)
			}
			for path, want := range tt.paths {
				i := slices.IndexFunc(routes, func(r *routev3.Route) bool { return matchesPath(t, r.Match, path) })
				if i < 0 {
					t.Errorf("prefix %q (mesh %v): no route matches %q", tt.prefix, mesh, path)
					continue
				}
				if got := rewritePath(t, routes[i].Match, routes[i].GetRoute(), path); got != want {
					t.Errorf("prefix %q with %q (mesh %v): %q became %q, want %q", tt.prefix, tt.with, mesh, path, got, want)
				}
			}
		}
	}
}

func TestIntersectHostnames(t *testing.T) {
	tests := []struct {
		listener string
		route    []string
		want     []string
	}{
		{"", nil, []string{"*"}},
		{"a.example.com", nil, []string{"a.example.com"}},
		{"", []string{"b.example.com", "a.example.com"}, []string{"a.example.com", "b.example.com"}},
		{"a.example.com", []string{"a.example.com", "b.example.com"}, []string{"a.example.com"}},
		{"a.example.com", []string{"*.example.com"}, []string{"a.example.com"}},
		{"*.example.com", []string{"a.example.com", "x.a.example.com", "example.com", "a.example.net"}, []string{"a.example.com", "x.a.example.com"}},
		{"*.example.com", []string{"*.example.com", "*.a.example.com", "*.com"}, []string{"*.a.example.com", "*.example.com"}},
		{"a.example.com", []string{"b.example.com"}, nil},
	}
	for _, tt := range tests {
		if got := intersectHostnames(tt.listener, tt.route); !slices.Equal(got, tt.want) {
			t.Errorf("intersectHostnames(%q, %q) = %q, want %q", tt.listener, tt.route, got, tt.want)
		}
	}
}

// TestInvalidDropped checks that a resource or route failing validation is
// left out and recorded, not served.
func TestInvalidDropped(t *testing.T) {
	tr := translate(&Inputs{})
	tr.add(ClusterType, "", &clusterv3.Cluster{})
	if tr.snap.Len(ClusterType) != 0 || len(tr.dropped) != 1 {
		t.Fatalf("invalid cluster: %d clusters, dropped %q; want none and one", tr.snap.Len(ClusterType), tr.dropped)
	}
	action := &routev3.Route_Route{Route: &routev3.RouteAction{ClusterSpecifier: &routev3.RouteAction_Cluster{Cluster: "c"}}}
	entry := routeEntry{routes: []*routev3.Route{
		{Name: "no-match", Action: action},
		{Name: "ok", Match: &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}}, Action: action},
	}}
	routes := tr.validRoutes("rc", []routeEntry{entry})
	if len(routes) != 1 || routes[0].Name != "ok" || len(tr.dropped) != 2 || !strings.Contains(tr.dropped[1], "no-match") {
		t.Fatalf("got routes %v, dropped %q; want only route ok, no-match dropped", routes, tr.dropped)
	}
}
