package gateway

import (
	"crypto/tls"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"google.golang.org/protobuf/proto"
)

// Config is one complete, immutable configuration of the gateway, linked
// from the resources the xDS client accepted. Nothing in it changes after it
// is built (a cluster's balancer keeps its own rotation state).
type Config struct {
	// Listeners by port.
	Listeners map[int]*Listener
	// Clusters by name.
	Clusters map[string]*Cluster
	// Versions are the version_info accepted per type URL.
	Versions map[string]string
	// Resources are the accepted xDS resources by type URL and name, for
	// /config_dump.
	Resources map[string]map[string]proto.Message
	// Complete says whether every resource a listener or cluster refers to
	// has been received.
	Complete bool
}

// Listener is an LDS listener: a port and the route table its connection
// manager takes over RDS.
type Listener struct {
	Name string
	Port int
	// RouteName is the RouteConfiguration it uses.
	RouteName string
	// Routes is nil until the RouteConfiguration arrives.
	Routes *RouteTable
	// TLS is set when the listener terminates TLS: its filter chains,
	// chosen by SNI.
	TLS []*TLSChain
}

// TLSChain is a filter chain of a TLS listener: the SNI names it serves
// (none: every name no other chain serves) and its certificates.
type TLSChain struct {
	ServerNames []string
	// Secrets are the SDS secrets of its certificates.
	Secrets []string
	// Certs are the certificates, once linked into a Config.
	Certs []tls.Certificate
}

// Chain returns the chain serving an SNI name: an exact name first, then
// the longest wildcard, then a chain without names.
func (l *Listener) Chain(sni string) *TLSChain {
	var best *TLSChain
	bestKind, bestLen := 0, -1
	for _, c := range l.TLS {
		if len(c.ServerNames) == 0 && bestKind == 0 {
			best = c
			continue
		}
		for _, n := range c.ServerNames {
			kind, length := hostMatch(n, sni)
			if kind > bestKind || (kind == bestKind && kind > 0 && length > bestLen) {
				best, bestKind, bestLen = c, kind, length
			}
		}
	}
	return best
}

// RouteTable is a RouteConfiguration.
type RouteTable struct {
	Name         string
	VirtualHosts []*VirtualHost
	Headers      HeaderMods
}

// VirtualHost is a set of routes for some hostnames.
type VirtualHost struct {
	Name    string
	Domains []string
	Routes  []*Route
	Headers HeaderMods
}

// HeaderMods are header additions and removals for one route level, for
// requests and responses.
type HeaderMods struct {
	Request, Response HeaderMod
}

// HeaderMod adds and removes headers.
type HeaderMod struct {
	Add    []HeaderAdd
	Remove []string
}

// AppendAction is how a header value is added.
type AppendAction int

// The append actions of Envoy's HeaderValueOption.
const (
	AppendIfExistsOrAdd AppendAction = iota
	AddIfAbsent
	OverwriteIfExistsOrAdd
	OverwriteIfExists
)

// HeaderAdd is one header value to add.
type HeaderAdd struct {
	Name, Value string
	Action      AppendAction
}

// Apply modifies h (Host is applied by the caller through host).
func (m HeaderMod) Apply(h http.Header) {
	for _, name := range m.Remove {
		h.Del(name)
	}
	for _, a := range m.Add {
		_, exists := h[http.CanonicalHeaderKey(a.Name)]
		switch a.Action {
		case AppendIfExistsOrAdd:
			h.Add(a.Name, a.Value)
		case AddIfAbsent:
			if !exists {
				h.Set(a.Name, a.Value)
			}
		case OverwriteIfExistsOrAdd:
			h.Set(a.Name, a.Value)
		case OverwriteIfExists:
			if exists {
				h.Set(a.Name, a.Value)
			}
		}
	}
}

// Route is a match and what to do with the requests it matches.
type Route struct {
	Name    string
	Match   Match
	Headers HeaderMods
	// Exactly one of these is set.
	Forward  *Forward
	Redirect *Redirect
	Direct   *Direct
}

// PathKind is how a route matches the path.
type PathKind int

// The path matches of Envoy's RouteMatch.
const (
	PathPrefix PathKind = iota
	PathExact
	PathSeparatedPrefix
	PathRegex
)

// Match is a route's match: every part must hold.
type Match struct {
	PathKind      PathKind
	Path          string
	PathRE        *regexp.Regexp
	CaseSensitive bool
	Headers       []HeaderMatch
	Query         []QueryMatch
	// GRPC matches only gRPC requests.
	GRPC bool
}

// StringMatch matches one string.
type StringMatch struct {
	Exact, Prefix, Suffix, Contains *string
	RE                              *regexp.Regexp
	IgnoreCase                      bool
}

// HeaderMatch matches a request header (":method", ":authority", ":path"
// and ":scheme" are the request's pseudo-headers).
type HeaderMatch struct {
	Name    string
	String  *StringMatch
	Present *bool
	Invert  bool
}

// QueryMatch matches a query parameter.
type QueryMatch struct {
	Name    string
	String  *StringMatch
	Present bool
}

// Forward sends a request upstream.
type Forward struct {
	Clusters []WeightedCluster
	// TotalWeight is the sum of the clusters' weights.
	TotalWeight uint32
	// NotFoundStatus answers when a cluster is unknown.
	NotFoundStatus int
	PrefixRewrite  *string
	RegexRewrite   *RegexRewrite
	HostRewrite    string
	// Timeout is the whole request's; 0 is none.
	Timeout time.Duration
	Retry   *RetryPolicy
	Mirrors []Mirror
	// Hash is what a ring-hash cluster hashes requests on, in order.
	Hash []HashPolicy
}

// WeightedCluster is one cluster of a forward and its weight.
type WeightedCluster struct {
	Name        string
	Weight      uint32
	Headers     HeaderMods
	HostRewrite string
}

// RegexRewrite replaces what a regular expression matches in the path.
type RegexRewrite struct {
	RE           *regexp.Regexp
	Substitution string
}

// Apply rewrites path, with Envoy's substitution syntax (\1 for groups).
func (rr *RegexRewrite) Apply(path string) string {
	sub := envoySubstitution.ReplaceAllString(rr.Substitution, "$${$1}")
	return rr.RE.ReplaceAllString(path, sub)
}

var envoySubstitution = regexp.MustCompile(`\\([0-9])`)

// RetryPolicy is Envoy's, for the conditions Sluice's server uses.
type RetryPolicy struct {
	// On is the set of retry_on conditions.
	On         map[string]bool
	NumRetries int
	PerTry     time.Duration
	Statuses   []int
	BaseDelay  time.Duration
	MaxDelay   time.Duration
}

// retriableStatus says whether a response status is worth another try.
func (p *RetryPolicy) retriableStatus(code int) bool {
	switch {
	case p.On["5xx"] && code >= 500:
		return true
	case p.On["gateway-error"] && (code == 502 || code == 503 || code == 504):
		return true
	case p.On["retriable-4xx"] && code == 409:
		return true
	case p.On["retriable-status-codes"] && slices.Contains(p.Statuses, code):
		return true
	}
	return false
}

// retriableError says whether a failed attempt is worth another try.
func (p *RetryPolicy) retriableError(timedOut bool) bool {
	if timedOut {
		return p.On["5xx"] || p.On["gateway-error"]
	}
	return p.On["5xx"] || p.On["gateway-error"] || p.On["reset"] || p.On["connect-failure"] || p.On["refused-stream"]
}

// Mirror copies a share of requests to another cluster.
type Mirror struct {
	Cluster string
	// Fraction is the share of requests mirrored, in [0, 1].
	Fraction float64
}

// Redirect answers with a redirect.
type Redirect struct {
	Scheme, Host  string
	Port          int
	Path          *string
	PrefixRewrite *string
	RegexRewrite  *RegexRewrite
	Status        int
	StripQuery    bool
}

// Direct answers with a fixed status and body.
type Direct struct {
	Status int
	Body   string
}

// Cluster is a CDS cluster with its endpoints from EDS.
type Cluster struct {
	Name string
	// HTTP2 says the cluster speaks HTTP/2 (h2c) upstream.
	HTTP2 bool
	// EDSName is the ClusterLoadAssignment it takes endpoints from.
	EDSName   string
	Endpoints []Endpoint
	// Loaded says whether its ClusterLoadAssignment arrived.
	Loaded bool
	// Outlier is its outlier detection, nil for none.
	Outlier *OutlierPolicy
	// LB is how it picks endpoints.
	LB LBPolicy
	// Limits are its circuit breaker.
	Limits
	// HealthCheck is its active health check, nil for none.
	HealthCheck *HealthCheckPolicy
	balancer    *balancer
	// health is its endpoints' health-check state, set when the config is
	// put in force; nil without a health check.
	health *clusterHealth
	// pool and inflight are its connection pool and its count of requests
	// in flight, which outlive config swaps; set when the config is put in
	// force.
	pool     *pool
	inflight *atomic.Int64
}

// LBPolicy is how a cluster picks endpoints.
type LBPolicy int

// The load balancing policies.
const (
	RoundRobin LBPolicy = iota
	LeastRequest
	// RingHash maps a request's hash (its route's hash policy) to an
	// endpoint on a consistent hash ring; a request without a hash goes
	// round-robin.
	RingHash
)

// HashPolicy is what a route hashes a request on: a header, a cookie or
// the client's address.
type HashPolicy struct {
	Header, Cookie string
	SourceIP       bool
}

// Endpoint is one upstream address and its effective weight (its locality's
// weight times its share of the locality).
type Endpoint struct {
	Addr   string
	Weight float64
	// HealthPort is the port its health checks go to (EDS
	// health_check_config); 0 for Addr's.
	HealthPort uint32
}

// hostMatch ranks how well a domain matches host: 3 exact, 2 wildcard
// suffix (the longer the better, by length), 1 "*", 0 no match.
func hostMatch(domain, host string) (int, int) {
	switch {
	case domain == "*":
		return 1, 0
	case strings.EqualFold(domain, host):
		return 3, len(domain)
	case strings.HasPrefix(domain, "*") && len(host) > len(domain)-1 && strings.HasSuffix(strings.ToLower(host), strings.ToLower(domain[1:])):
		return 2, len(domain)
	}
	return 0, 0
}

// VirtualHost returns the virtual host for a Host (without port): an exact
// domain first, then the longest wildcard, then "*".
func (rt *RouteTable) VirtualHost(host string) *VirtualHost {
	var best *VirtualHost
	bestKind, bestLen := 0, -1
	for _, vh := range rt.VirtualHosts {
		for _, d := range vh.Domains {
			kind, length := hostMatch(d, host)
			if kind > bestKind || (kind == bestKind && kind > 0 && length > bestLen) {
				best, bestKind, bestLen = vh, kind, length
			}
		}
	}
	return best
}
