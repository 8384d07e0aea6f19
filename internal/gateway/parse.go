package gateway

import (
	"crypto/tls"
	"errors"
	"fmt"
	"math"
	"net/http"
	"regexp"
	"strings"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	httpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/sluice/sluice/internal/probe"
)

// ErrInvalid is wrapped by every error about a resource the gateway cannot
// apply; its text goes back to the control plane in the NACK.
var ErrInvalid = errors.New("invalid resource")

func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalid, fmt.Sprintf(format, args...))
}

var protoUnmarshal = proto.UnmarshalOptions{}

// parseListener reads an LDS Listener: a socket address and one HTTP
// connection manager taking its routes over RDS.
func parseListener(l *listenerv3.Listener) (*Listener, error) {
	if err := l.Validate(); err != nil {
		return nil, invalid("listener %q: %v", l.GetName(), err)
	}
	sa := l.GetAddress().GetSocketAddress()
	if sa == nil || sa.GetPortValue() == 0 {
		return nil, invalid("listener %q: no socket address with a port", l.GetName())
	}
	out := &Listener{Name: l.GetName(), Port: int(sa.GetPortValue())}
	if len(l.GetFilterChains()) == 0 {
		return nil, invalid("listener %q: no filter chain", l.GetName())
	}
	plain := 0
	for i, fc := range l.GetFilterChains() {
		var hcm *hcmv3.HttpConnectionManager
		for _, f := range fc.GetFilters() {
			if !f.GetTypedConfig().MessageIs(&hcmv3.HttpConnectionManager{}) {
				return nil, invalid("listener %q: filter chain %d: unsupported network filter %q", l.GetName(), i, f.GetName())
			}
			hcm = &hcmv3.HttpConnectionManager{}
			if err := anypb.UnmarshalTo(f.GetTypedConfig(), hcm, protoUnmarshal); err != nil {
				return nil, invalid("listener %q: filter chain %d: http connection manager: %v", l.GetName(), i, err)
			}
		}
		if hcm == nil {
			return nil, invalid("listener %q: filter chain %d: no http connection manager", l.GetName(), i)
		}
		rds := hcm.GetRds()
		if rds == nil || rds.GetRouteConfigName() == "" {
			return nil, invalid("listener %q: the http connection manager must take its routes over RDS", l.GetName())
		}
		if out.RouteName != "" && out.RouteName != rds.GetRouteConfigName() {
			return nil, invalid("listener %q: filter chains use different route configurations (%q, %q)", l.GetName(), out.RouteName, rds.GetRouteConfigName())
		}
		out.RouteName = rds.GetRouteConfigName()
		ts := fc.GetTransportSocket()
		if ts == nil {
			plain++
			continue
		}
		var dtc tlsv3.DownstreamTlsContext
		if err := anypb.UnmarshalTo(ts.GetTypedConfig(), &dtc, protoUnmarshal); err != nil {
			return nil, invalid("listener %q: transport socket: %v", l.GetName(), err)
		}
		chain := &TLSChain{ServerNames: fc.GetFilterChainMatch().GetServerNames()}
		for _, s := range dtc.GetCommonTlsContext().GetTlsCertificateSdsSecretConfigs() {
			chain.Secrets = append(chain.Secrets, s.GetName())
		}
		if len(chain.Secrets) == 0 {
			return nil, invalid("listener %q: filter chain %d: TLS without SDS certificates", l.GetName(), i)
		}
		out.TLS = append(out.TLS, chain)
	}
	if plain > 0 && len(out.TLS) > 0 {
		return nil, invalid("listener %q: some filter chains terminate TLS and others do not", l.GetName())
	}
	return out, nil
}

// parseRoutes reads an RDS RouteConfiguration.
func parseRoutes(rc *routev3.RouteConfiguration) (*RouteTable, error) {
	if err := rc.Validate(); err != nil {
		return nil, invalid("route configuration %q: %v", rc.GetName(), err)
	}
	rt := &RouteTable{Name: rc.GetName()}
	var err error
	if rt.Headers, err = headerMods(rc.GetRequestHeadersToAdd(), rc.GetRequestHeadersToRemove(), rc.GetResponseHeadersToAdd(), rc.GetResponseHeadersToRemove()); err != nil {
		return nil, invalid("route configuration %q: %v", rc.GetName(), err)
	}
	for _, v := range rc.GetVirtualHosts() {
		vh := &VirtualHost{Name: v.GetName(), Domains: v.GetDomains()}
		if vh.Headers, err = headerMods(v.GetRequestHeadersToAdd(), v.GetRequestHeadersToRemove(), v.GetResponseHeadersToAdd(), v.GetResponseHeadersToRemove()); err != nil {
			return nil, invalid("route configuration %q: virtual host %q: %v", rc.GetName(), v.GetName(), err)
		}
		for i, r := range v.GetRoutes() {
			route, err := parseRoute(r)
			if err != nil {
				return nil, invalid("route configuration %q: virtual host %q: route %d (%s): %v", rc.GetName(), v.GetName(), i, r.GetName(), err)
			}
			vh.Routes = append(vh.Routes, route)
		}
		rt.VirtualHosts = append(rt.VirtualHosts, vh)
	}
	return rt, nil
}

func parseRoute(r *routev3.Route) (*Route, error) {
	out := &Route{Name: r.GetName()}
	m := r.GetMatch()
	out.Match.CaseSensitive = m.GetCaseSensitive() == nil || m.GetCaseSensitive().GetValue()
	switch p := m.GetPathSpecifier().(type) {
	case *routev3.RouteMatch_Prefix:
		out.Match.PathKind, out.Match.Path = PathPrefix, p.Prefix
	case *routev3.RouteMatch_Path:
		out.Match.PathKind, out.Match.Path = PathExact, p.Path
	case *routev3.RouteMatch_PathSeparatedPrefix:
		out.Match.PathKind, out.Match.Path = PathSeparatedPrefix, p.PathSeparatedPrefix
	case *routev3.RouteMatch_SafeRegex:
		re, err := fullRegex(p.SafeRegex.GetRegex(), !out.Match.CaseSensitive)
		if err != nil {
			return nil, err
		}
		out.Match.PathKind, out.Match.PathRE = PathRegex, re
	default:
		return nil, fmt.Errorf("unsupported path match %T", p)
	}
	if m.GetGrpc() != nil {
		out.Match.GRPC = true
	}
	for _, h := range m.GetHeaders() {
		hm := HeaderMatch{Name: h.GetName(), Invert: h.GetInvertMatch()}
		switch s := h.GetHeaderMatchSpecifier().(type) {
		case *routev3.HeaderMatcher_StringMatch:
			sm, err := stringMatch(s.StringMatch)
			if err != nil {
				return nil, fmt.Errorf("header %q: %w", h.GetName(), err)
			}
			hm.String = sm
		case *routev3.HeaderMatcher_PresentMatch:
			p := s.PresentMatch
			hm.Present = &p
		case nil:
		default:
			return nil, fmt.Errorf("header %q: unsupported match %T", h.GetName(), s)
		}
		out.Match.Headers = append(out.Match.Headers, hm)
	}
	for _, q := range m.GetQueryParameters() {
		qm := QueryMatch{Name: q.GetName(), Present: q.GetPresentMatch()}
		if sm := q.GetStringMatch(); sm != nil {
			s, err := stringMatch(sm)
			if err != nil {
				return nil, fmt.Errorf("query parameter %q: %w", q.GetName(), err)
			}
			qm.String = s
		}
		out.Match.Query = append(out.Match.Query, qm)
	}
	var err error
	if out.Headers, err = headerMods(r.GetRequestHeadersToAdd(), r.GetRequestHeadersToRemove(), r.GetResponseHeadersToAdd(), r.GetResponseHeadersToRemove()); err != nil {
		return nil, err
	}
	switch a := r.GetAction().(type) {
	case *routev3.Route_Route:
		out.Forward, err = parseForward(a.Route)
	case *routev3.Route_Redirect:
		out.Redirect, err = parseRedirect(a.Redirect)
	case *routev3.Route_DirectResponse:
		out.Direct = &Direct{Status: int(a.DirectResponse.GetStatus())}
		if b := a.DirectResponse.GetBody(); b != nil {
			out.Direct.Body = b.GetInlineString() + string(b.GetInlineBytes())
		}
	default:
		return nil, fmt.Errorf("unsupported action %T", a)
	}
	return out, err
}

func fullRegex(expr string, ignoreCase bool) (*regexp.Regexp, error) {
	prefix := ""
	if ignoreCase {
		prefix = "(?i)"
	}
	re, err := regexp.Compile(prefix + "^(?:" + expr + ")$")
	if err != nil {
		return nil, fmt.Errorf("regex %q: %v", expr, err)
	}
	return re, nil
}

func stringMatch(sm *matcherv3.StringMatcher) (*StringMatch, error) {
	out := &StringMatch{IgnoreCase: sm.GetIgnoreCase()}
	switch p := sm.GetMatchPattern().(type) {
	case *matcherv3.StringMatcher_Exact:
		out.Exact = &p.Exact
	case *matcherv3.StringMatcher_Prefix:
		out.Prefix = &p.Prefix
	case *matcherv3.StringMatcher_Suffix:
		out.Suffix = &p.Suffix
	case *matcherv3.StringMatcher_Contains:
		out.Contains = &p.Contains
	case *matcherv3.StringMatcher_SafeRegex:
		re, err := fullRegex(p.SafeRegex.GetRegex(), sm.GetIgnoreCase())
		if err != nil {
			return nil, err
		}
		out.RE = re
	default:
		return nil, fmt.Errorf("unsupported string match %T", p)
	}
	return out, nil
}

func headerMods(reqAdd []*corev3.HeaderValueOption, reqRemove []string, respAdd []*corev3.HeaderValueOption, respRemove []string) (HeaderMods, error) {
	var out HeaderMods
	var err error
	if out.Request.Add, err = headerAdds(reqAdd); err != nil {
		return out, err
	}
	if out.Response.Add, err = headerAdds(respAdd); err != nil {
		return out, err
	}
	out.Request.Remove, out.Response.Remove = reqRemove, respRemove
	return out, nil
}

func headerAdds(opts []*corev3.HeaderValueOption) ([]HeaderAdd, error) {
	var out []HeaderAdd
	for _, o := range opts {
		name := o.GetHeader().GetKey()
		if strings.HasPrefix(name, ":") || strings.EqualFold(name, "host") {
			return nil, fmt.Errorf("header %q cannot be modified", name)
		}
		a := HeaderAdd{Name: name, Value: o.GetHeader().GetValue() + string(o.GetHeader().GetRawValue())}
		switch o.GetAppendAction() {
		case corev3.HeaderValueOption_APPEND_IF_EXISTS_OR_ADD:
			a.Action = AppendIfExistsOrAdd
		case corev3.HeaderValueOption_ADD_IF_ABSENT:
			a.Action = AddIfAbsent
		case corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD:
			a.Action = OverwriteIfExistsOrAdd
		case corev3.HeaderValueOption_OVERWRITE_IF_EXISTS:
			a.Action = OverwriteIfExists
		}
		out = append(out, a)
	}
	return out, nil
}

func parseForward(a *routev3.RouteAction) (*Forward, error) {
	f := &Forward{NotFoundStatus: 503, HostRewrite: a.GetHostRewriteLiteral()}
	switch a.GetClusterNotFoundResponseCode() {
	case routev3.RouteAction_NOT_FOUND:
		f.NotFoundStatus = 404
	case routev3.RouteAction_INTERNAL_SERVER_ERROR:
		f.NotFoundStatus = 500
	}
	switch c := a.GetClusterSpecifier().(type) {
	case *routev3.RouteAction_Cluster:
		f.Clusters = []WeightedCluster{{Name: c.Cluster, Weight: 1}}
	case *routev3.RouteAction_WeightedClusters:
		for _, wc := range c.WeightedClusters.GetClusters() {
			hm, err := headerMods(wc.GetRequestHeadersToAdd(), wc.GetRequestHeadersToRemove(), wc.GetResponseHeadersToAdd(), wc.GetResponseHeadersToRemove())
			if err != nil {
				return nil, fmt.Errorf("weighted cluster %q: %w", wc.GetName(), err)
			}
			f.Clusters = append(f.Clusters, WeightedCluster{Name: wc.GetName(), Weight: wc.GetWeight().GetValue(), Headers: hm, HostRewrite: wc.GetHostRewriteLiteral()})
		}
	default:
		return nil, fmt.Errorf("unsupported cluster specifier %T", c)
	}
	for _, c := range f.Clusters {
		f.TotalWeight += c.Weight
	}
	if f.TotalWeight == 0 {
		return nil, errors.New("the weights of the clusters sum to 0")
	}
	if p := a.GetPrefixRewrite(); p != "" {
		f.PrefixRewrite = &p
	}
	if rr := a.GetRegexRewrite(); rr != nil {
		re, err := regexp.Compile(rr.GetPattern().GetRegex())
		if err != nil {
			return nil, fmt.Errorf("regex rewrite %q: %v", rr.GetPattern().GetRegex(), err)
		}
		f.RegexRewrite = &RegexRewrite{RE: re, Substitution: rr.GetSubstitution()}
	}
	if t := a.GetTimeout(); t != nil {
		f.Timeout = t.AsDuration()
	}
	if rp := a.GetRetryPolicy(); rp != nil {
		p := &RetryPolicy{On: map[string]bool{}, NumRetries: 1, BaseDelay: 25 * time.Millisecond}
		for on := range strings.SplitSeq(rp.GetRetryOn(), ",") {
			if on = strings.TrimSpace(on); on != "" {
				p.On[on] = true
			}
		}
		if n := rp.GetNumRetries(); n != nil {
			p.NumRetries = int(n.GetValue())
		}
		if t := rp.GetPerTryTimeout(); t != nil {
			p.PerTry = t.AsDuration()
		}
		for _, c := range rp.GetRetriableStatusCodes() {
			p.Statuses = append(p.Statuses, int(c))
		}
		if b := rp.GetRetryBackOff(); b != nil {
			p.BaseDelay = b.GetBaseInterval().AsDuration()
			if m := b.GetMaxInterval(); m != nil {
				p.MaxDelay = m.AsDuration()
			}
		}
		if p.MaxDelay == 0 {
			p.MaxDelay = 10 * p.BaseDelay
		}
		f.Retry = p
	}
	for _, h := range a.GetHashPolicy() {
		switch p := h.GetPolicySpecifier().(type) {
		case *routev3.RouteAction_HashPolicy_Header_:
			f.Hash = append(f.Hash, HashPolicy{Header: p.Header.GetHeaderName()})
		case *routev3.RouteAction_HashPolicy_Cookie_:
			f.Hash = append(f.Hash, HashPolicy{Cookie: p.Cookie.GetName()})
		case *routev3.RouteAction_HashPolicy_ConnectionProperties_:
			f.Hash = append(f.Hash, HashPolicy{SourceIP: p.ConnectionProperties.GetSourceIp()})
		}
	}
	for _, m := range a.GetRequestMirrorPolicies() {
		mirror := Mirror{Cluster: m.GetCluster(), Fraction: 1}
		if rf := m.GetRuntimeFraction(); rf != nil {
			mirror.Fraction = fraction(rf.GetDefaultValue())
		}
		f.Mirrors = append(f.Mirrors, mirror)
	}
	return f, nil
}

func fraction(p *typev3.FractionalPercent) float64 {
	den := 100.0
	switch p.GetDenominator() {
	case typev3.FractionalPercent_TEN_THOUSAND:
		den = 10000
	case typev3.FractionalPercent_MILLION:
		den = 1000000
	}
	return min(1, float64(p.GetNumerator())/den)
}

func parseRedirect(a *routev3.RedirectAction) (*Redirect, error) {
	rd := &Redirect{Host: a.GetHostRedirect(), Port: int(a.GetPortRedirect()), StripQuery: a.GetStripQuery()}
	switch {
	case a.GetHttpsRedirect():
		rd.Scheme = "https"
	case a.GetSchemeRedirect() != "":
		rd.Scheme = a.GetSchemeRedirect()
	}
	switch p := a.GetPathRewriteSpecifier().(type) {
	case *routev3.RedirectAction_PathRedirect:
		rd.Path = &p.PathRedirect
	case *routev3.RedirectAction_PrefixRewrite:
		rd.PrefixRewrite = &p.PrefixRewrite
	case *routev3.RedirectAction_RegexRewrite:
		re, err := regexp.Compile(p.RegexRewrite.GetPattern().GetRegex())
		if err != nil {
			return nil, fmt.Errorf("redirect regex rewrite: %v", err)
		}
		rd.RegexRewrite = &RegexRewrite{RE: re, Substitution: p.RegexRewrite.GetSubstitution()}
	}
	switch a.GetResponseCode() {
	case routev3.RedirectAction_MOVED_PERMANENTLY:
		rd.Status = 301
	case routev3.RedirectAction_FOUND:
		rd.Status = 302
	case routev3.RedirectAction_SEE_OTHER:
		rd.Status = 303
	case routev3.RedirectAction_TEMPORARY_REDIRECT:
		rd.Status = 307
	case routev3.RedirectAction_PERMANENT_REDIRECT:
		rd.Status = 308
	}
	return rd, nil
}

// parseSecret reads an SDS Secret holding a TLS certificate and its key.
func parseSecret(s *tlsv3.Secret) (*tls.Certificate, error) {
	tc := s.GetTlsCertificate()
	if tc == nil {
		return nil, invalid("secret %q: not a TLS certificate", s.GetName())
	}
	data := func(d *corev3.DataSource) []byte {
		return append([]byte(d.GetInlineString()), d.GetInlineBytes()...)
	}
	cert, err := tls.X509KeyPair(data(tc.GetCertificateChain()), data(tc.GetPrivateKey()))
	if err != nil {
		return nil, invalid("secret %q: %v", s.GetName(), err)
	}
	return &cert, nil
}

// parseCluster reads a CDS Cluster: EDS (or static, with an inline load
// assignment), HTTP/1.1 or HTTP/2 upstream, round-robin, least-request or
// ring hash (Maglev too). Other policies (random) fall back to round-robin.
// Its circuit breaker is the thresholds of the default priority, Envoy's
// defaults for those unset, and no limit for those at the largest value;
// its health_checks are parsed by parseHealthChecks.
func parseCluster(c *clusterv3.Cluster) (*Cluster, error) {
	if err := c.Validate(); err != nil {
		return nil, invalid("cluster %q: %v", c.GetName(), err)
	}
	out := &Cluster{Name: c.GetName(), Outlier: parseOutlier(c.GetOutlierDetection())}
	switch c.GetLbPolicy() {
	case clusterv3.Cluster_LEAST_REQUEST:
		out.LB = LeastRequest
	case clusterv3.Cluster_RING_HASH, clusterv3.Cluster_MAGLEV:
		out.LB = RingHash
	}
	switch c.GetType() {
	case clusterv3.Cluster_EDS:
		out.EDSName = c.GetName()
		if n := c.GetEdsClusterConfig().GetServiceName(); n != "" {
			out.EDSName = n
		}
	case clusterv3.Cluster_STATIC, clusterv3.Cluster_STRICT_DNS, clusterv3.Cluster_LOGICAL_DNS:
		eps, err := parseEndpoints(c.GetLoadAssignment())
		if err != nil {
			return nil, invalid("cluster %q: %v", c.GetName(), err)
		}
		out.Endpoints, out.Loaded = eps, true
	default:
		return nil, invalid("cluster %q: unsupported discovery type %v", c.GetName(), c.GetType())
	}
	out.Limits = parseLimits(c.GetCircuitBreakers())
	hc, err := parseHealthChecks(c.GetName(), c.GetHealthChecks())
	if err != nil {
		return nil, err
	}
	out.HealthCheck = hc
	if a, ok := c.GetTypedExtensionProtocolOptions()["envoy.extensions.upstreams.http.v3.HttpProtocolOptions"]; ok {
		var opts httpv3.HttpProtocolOptions
		if err := anypb.UnmarshalTo(a, &opts, protoUnmarshal); err != nil {
			return nil, invalid("cluster %q: http protocol options: %v", c.GetName(), err)
		}
		out.HTTP2 = opts.GetExplicitHttpConfig().GetHttp2ProtocolOptions() != nil
	}
	return out, nil
}

// parseHealthChecks reads a cluster's health_checks: at most one, HTTP, TCP
// (without payloads) or gRPC. An HTTP check's Host is its host field, else
// the cluster's name, as Envoy's; its expected statuses default to 200
// only, as Envoy's. Fields the gateway does not act on (jitter,
// no_traffic_interval, event logs...) are ignored; a check it cannot run as
// asked is refused, so the NACK says why.
func parseHealthChecks(cluster string, hcs []*corev3.HealthCheck) (*HealthCheckPolicy, error) {
	switch len(hcs) {
	case 0:
		return nil, nil
	case 1:
	default:
		return nil, invalid("cluster %q: %d health checks: the gateway runs at most one", cluster, len(hcs))
	}
	hc := hcs[0]
	p := &HealthCheckPolicy{
		Interval:           hc.GetInterval().AsDuration(),
		Timeout:            hc.GetTimeout().AsDuration(),
		HealthyThreshold:   int(hc.GetHealthyThreshold().GetValue()),
		UnhealthyThreshold: int(hc.GetUnhealthyThreshold().GetValue()),
	}
	if p.Interval <= 0 || p.Timeout <= 0 {
		return nil, invalid("cluster %q: health check: interval and timeout must be positive", cluster)
	}
	// A threshold of 0 would never flip a state: Envoy takes it as 1.
	p.HealthyThreshold, p.UnhealthyThreshold = max(p.HealthyThreshold, 1), max(p.UnhealthyThreshold, 1)
	p.Check = probe.Check{Timeout: p.Timeout, UserAgent: HealthCheckUserAgent}
	switch {
	case hc.GetHttpHealthCheck() != nil:
		h := hc.GetHttpHealthCheck()
		if h.GetSend() != nil || len(h.GetReceive()) > 0 {
			return nil, invalid("cluster %q: http health check: send and receive payloads are not supported", cluster)
		}
		adds, err := headerAdds(h.GetRequestHeadersToAdd())
		if err != nil {
			return nil, invalid("cluster %q: http health check: %v", cluster, err)
		}
		hdr := http.Header{}
		HeaderMod{Add: adds}.Apply(hdr)
		check := &probe.HTTP{Path: h.GetPath(), Headers: map[string]string{"Host": cluster}}
		for k, v := range hdr {
			check.Headers[k] = strings.Join(v, ",")
		}
		if host := h.GetHost(); host != "" {
			check.Headers["Host"] = host
		}
		for _, r := range h.GetExpectedStatuses() {
			// Envoy's ranges end before End.
			check.ExpectedStatuses = append(check.ExpectedStatuses, probe.StatusRange{Start: int(r.GetStart()), End: int(r.GetEnd()) - 1})
		}
		if len(check.ExpectedStatuses) == 0 {
			check.ExpectedStatuses = []probe.StatusRange{{Start: 200, End: 200}}
		}
		p.Check.HTTP = check
	case hc.GetTcpHealthCheck() != nil:
		t := hc.GetTcpHealthCheck()
		if t.GetSend() != nil || len(t.GetReceive()) > 0 {
			return nil, invalid("cluster %q: tcp health check: send and receive payloads are not supported", cluster)
		}
		p.Check.TCP = &probe.TCP{}
	case hc.GetGrpcHealthCheck() != nil:
		p.Check.GRPC = &probe.GRPC{Service: hc.GetGrpcHealthCheck().GetServiceName()}
	default:
		return nil, invalid("cluster %q: health check: only http, tcp and grpc health checks are supported", cluster)
	}
	return p, nil
}

// parseLimits reads the circuit breaker thresholds of the default
// priority: Envoy's defaults for those unset, 0 (no limit) for those at the
// largest value.
func parseLimits(cb *clusterv3.CircuitBreakers) Limits {
	var t *clusterv3.CircuitBreakers_Thresholds
	for _, th := range cb.GetThresholds() {
		if th.GetPriority() == corev3.RoutingPriority_DEFAULT {
			t = th
		}
	}
	threshold := func(v *wrapperspb.UInt32Value, def int) int {
		switch {
		case v == nil:
			return def
		case v.GetValue() == math.MaxUint32:
			return 0
		}
		return int(v.GetValue())
	}
	return Limits{
		MaxConnections:     threshold(t.GetMaxConnections(), defaultMaxConnections),
		MaxPendingRequests: threshold(t.GetMaxPendingRequests(), defaultMaxPendingRequests),
		MaxRequests:        threshold(t.GetMaxRequests(), defaultMaxRequests),
		MaxRetries:         threshold(t.GetMaxRetries(), defaultMaxRetries),
	}
}

// parseEndpoints reads a ClusterLoadAssignment into endpoints whose weight
// is their locality's weight times their share of it.
func parseEndpoints(cla *endpointv3.ClusterLoadAssignment) ([]Endpoint, error) {
	if cla == nil {
		return nil, nil
	}
	if err := cla.Validate(); err != nil {
		return nil, invalid("load assignment %q: %v", cla.GetClusterName(), err)
	}
	var out []Endpoint
	for _, lle := range cla.GetEndpoints() {
		if lle.GetPriority() != 0 {
			continue // failover priorities are not served yet
		}
		lw := 1.0
		if w := lle.GetLoadBalancingWeight(); w != nil {
			lw = float64(w.GetValue())
		}
		var sum float64
		var eps []Endpoint
		for _, le := range lle.GetLbEndpoints() {
			if hs := le.GetHealthStatus(); hs != corev3.HealthStatus_UNKNOWN && hs != corev3.HealthStatus_HEALTHY {
				continue
			}
			sa := le.GetEndpoint().GetAddress().GetSocketAddress()
			if sa == nil {
				return nil, invalid("load assignment %q: an endpoint without a socket address", cla.GetClusterName())
			}
			w := 1.0
			if lw := le.GetLoadBalancingWeight(); lw != nil && lw.GetValue() > 0 {
				w = float64(lw.GetValue())
			}
			sum += w
			eps = append(eps, Endpoint{
				Addr:       joinHostPort(sa.GetAddress(), sa.GetPortValue()),
				Weight:     w,
				HealthPort: le.GetEndpoint().GetHealthCheckConfig().GetPortValue(),
			})
		}
		for _, e := range eps {
			e.Weight = lw * e.Weight / sum
			if e.Weight > 0 {
				out = append(out, e)
			}
		}
	}
	return out, nil
}

func joinHostPort(host string, port uint32) string {
	if strings.Contains(host, ":") {
		return fmt.Sprintf("[%s]:%d", host, port)
	}
	return fmt.Sprintf("%s:%d", host, port)
}
