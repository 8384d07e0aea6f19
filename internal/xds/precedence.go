package xds

import (
	"cmp"
	"slices"
	"strings"
	"time"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
)

// Envoy tries a virtual host's routes in order and takes the first that
// matches, so the Gateway API's precedence between matches becomes the order
// of the routes. Each match of each rule is an entry with a rank; entries
// are sorted by rank.

// Path match kinds, most precise first. The Gateway API leaves the place of
// RegularExpression to implementations: Sluice puts it between Exact and
// PathPrefix (as Envoy Gateway does), so that a regular expression is not
// shadowed by the catch-all prefix "/" that most routes end with.
const (
	pathExact = iota
	pathRegex
	pathPrefix
)

// GRPCRoute method match kinds. The GRPCRoute precedence counts
// characters of service and method, which says nothing useful of regular
// expressions (whose support is implementation-specific): Sluice puts them
// after every Exact match and before rules without a method match, for the
// same reason as path regular expressions.
const (
	grpcExact = iota
	grpcRegex
	grpcAny
)

// rank holds what orders one match against the others of a virtual host,
// in the order the criteria apply.
type rank struct {
	// Hostname criteria, for the virtual host being built: the characters
	// of the route's hostname that matches it if that is not a wildcard,
	// then of that hostname in any case.
	hostExact, hostLen int

	// grpc ranks GRPCRoute matches before HTTPRoute ones. The two kinds
	// never share a virtual host (acceptRoutes), so this only makes the
	// order total.
	grpc bool

	// HTTPRoute: path match kind and length (longer first), method match,
	// number of header and query parameter matches (more first).
	pathKind int
	pathLen  int
	method   bool
	headers  int
	queries  int

	// GRPCRoute: method match kind (grpcExact, grpcRegex, grpcAny), then
	// characters of the service and method matched (more first); headers
	// above.
	grpcKind              int
	serviceLen, methodLen int

	// Ties: the oldest route, then namespace/name, then the rule and the
	// match in the route's order.
	created     time.Time
	route       string
	rule, match int
}

// compareRanks orders a before b when a takes precedence.
func compareRanks(a, b rank) int {
	return cmp.Or(
		-cmp.Compare(a.hostExact, b.hostExact),
		-cmp.Compare(a.hostLen, b.hostLen),
		-compareBool(a.grpc, b.grpc),
		cmp.Compare(a.pathKind, b.pathKind),
		-cmp.Compare(a.pathLen, b.pathLen),
		-compareBool(a.method, b.method),
		cmp.Compare(a.grpcKind, b.grpcKind),
		-cmp.Compare(a.serviceLen, b.serviceLen),
		-cmp.Compare(a.methodLen, b.methodLen),
		-cmp.Compare(a.headers, b.headers),
		-cmp.Compare(a.queries, b.queries),
		a.created.Compare(b.created),
		cmp.Compare(a.route, b.route),
		cmp.Compare(a.rule, b.rule),
		cmp.Compare(a.match, b.match),
	)
}

func compareBool(a, b bool) int {
	switch {
	case a == b:
		return 0
	case a:
		return 1
	}
	return -1
}

// routeEntry is one match of one rule: the Envoy routes it became (two for
// a path prefix in mesh routes, see pathMatches) and where it applies.
type routeEntry struct {
	rank      rank
	hostnames []string
	routes    []*routev3.Route
}

// sortEntries puts entries in precedence order.
func sortEntries(entries []routeEntry) {
	slices.SortStableFunc(entries, func(a, b routeEntry) int { return compareRanks(a.rank, b.rank) })
}

// Hostnames follow the Gateway API: "*.example.com" matches any name with
// one or more labels before ".example.com" (not "example.com" itself), and
// "*" stands for a route or listener without hostnames, matching anything.

// hostnameMatches says whether pattern matches every name host stands for.
func hostnameMatches(pattern, host string) bool {
	switch {
	case pattern == host || pattern == "*":
		return true
	case strings.HasPrefix(pattern, "*."):
		return strings.HasSuffix(host, pattern[1:])
	}
	return false
}

// hostRank is the hostname part of the rank of an entry with hostnames in
// the virtual host of host: by its most specific hostname matching host.
func hostRank(hostnames []string, host string) (exact, length int, ok bool) {
	for _, h := range hostnames {
		if !hostnameMatches(h, host) {
			continue
		}
		e := 0
		if !strings.HasPrefix(h, "*") {
			e = len(h)
		}
		if !ok || e > exact || (e == exact && len(h) > length) {
			exact, length, ok = e, len(h), true
		}
	}
	return exact, length, ok
}

// intersectHostnames is what a route serves on a listener: the route's
// hostnames that the listener's hostname matches or, for a wildcard route
// hostname that matches the listener's, the listener's. A route without
// hostnames takes the listener's, and a listener without one takes the
// route's; "*" when neither has any. Empty means the route does not attach.
func intersectHostnames(listener string, route []string) []string {
	var out []string
	switch {
	case len(route) == 0 && listener == "":
		return []string{"*"}
	case len(route) == 0:
		return []string{listener}
	case listener == "":
		out = slices.Clone(route)
	default:
		for _, h := range route {
			switch {
			case hostnameMatches(listener, h):
				out = append(out, h)
			case hostnameMatches(h, listener):
				out = append(out, listener)
			}
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// hostnamesIntersect says whether some name matches both a and b.
func hostnamesIntersect(a, b []string) bool {
	for _, x := range a {
		for _, y := range b {
			if hostnameMatches(x, y) || hostnameMatches(y, x) {
				return true
			}
		}
	}
	return false
}
