package gateway

import (
	"fmt"
	"math"
	"net/http/httptest"
	"testing"
	"time"

	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	"google.golang.org/protobuf/encoding/protojson"
)

// routesJSON is a RouteConfiguration in the shape sluice server sends a
// gateway (internal/xds/testdata/*.golden).
const routesJSON = `{
  "name": "default/gw:80",
  "virtualHosts": [
    {"name": "exact.example.com", "domains": ["exact.example.com"], "routes": [
      {"name": "exact-host", "match": {"prefix": "/"}, "route": {"cluster": "b.default"}}]},
    {"name": "*.example.com", "domains": ["*.example.com"], "routes": [
      {"name": "wild-host", "match": {"prefix": "/"}, "route": {"cluster": "b.default"}}]},
    {"name": "*", "domains": ["*"], "routes": [
      {"name": "exact", "match": {"path": "/a/exact"}, "route": {"cluster": "a.default"}},
      {"name": "regex", "match": {"safeRegex": {"regex": "/a/[0-9]+"}}, "route": {"cluster": "a.default"}},
      {"name": "post", "match": {"pathSeparatedPrefix": "/a", "headers": [{"name": ":method", "stringMatch": {"exact": "POST"}}]}, "route": {"cluster": "a.default"}},
      {"name": "header", "match": {"pathSeparatedPrefix": "/a", "headers": [{"name": "x-env", "stringMatch": {"safeRegex": {"regex": "prod-[0-9]+"}}}]}, "route": {"cluster": "a.default"}},
      {"name": "query", "match": {"pathSeparatedPrefix": "/a", "queryParameters": [{"name": "v", "stringMatch": {"exact": "2"}}]}, "route": {"cluster": "a.default"}},
      {"name": "prefix", "match": {"pathSeparatedPrefix": "/a"}, "route": {"cluster": "a.default", "prefixRewrite": "/b"}},
      {"name": "moved", "match": {"pathSeparatedPrefix": "/moved"}, "redirect": {"schemeRedirect": "https", "hostRedirect": "new.example.com", "portRedirect": 443}},
      {"name": "gone", "match": {"pathSeparatedPrefix": "/gone"}, "redirect": {"regexRewrite": {"pattern": {"regex": "^/gone/*"}, "substitution": "/"}, "responseCode": "SEE_OTHER"}},
      {"name": "direct", "match": {"pathSeparatedPrefix": "/drained"}, "directResponse": {"status": 500}}
    ]}
  ]
}`

func parseRoutesJSON(t *testing.T) *RouteTable {
	t.Helper()
	var rc routev3.RouteConfiguration
	if err := protojson.Unmarshal([]byte(routesJSON), &rc); err != nil {
		t.Fatal(err)
	}
	rt, err := parseRoutes(&rc)
	if err != nil {
		t.Fatal(err)
	}
	return rt
}

func TestRouteMatching(t *testing.T) {
	rt := parseRoutesJSON(t)
	for _, tc := range []struct {
		method, target, host string
		header               map[string]string
		want                 string
	}{
		{"GET", "/a/exact", "x", nil, "exact"},
		{"GET", "/a/12", "x", nil, "regex"},
		{"GET", "/a/12x", "x", nil, "prefix"},
		{"POST", "/a/x", "x", nil, "post"},
		{"GET", "/a/x", "x", map[string]string{"X-Env": "prod-1"}, "header"},
		{"GET", "/a/x", "x", map[string]string{"X-Env": "prod-x"}, "prefix"},
		{"GET", "/a/x?v=2", "x", nil, "query"},
		{"GET", "/a", "x", nil, "prefix"},
		{"GET", "/ab", "x", nil, ""},
		{"GET", "/anything", "exact.example.com", nil, "exact-host"},
		{"GET", "/anything", "EXACT.example.com", nil, "exact-host"},
		{"GET", "/anything", "a.b.example.com", nil, "wild-host"},
		{"GET", "/a/exact", "example.com", nil, "exact"},
	} {
		t.Run(tc.method+" "+tc.host+tc.target, func(t *testing.T) {
			r := httptest.NewRequest(tc.method, tc.target, nil)
			for k, v := range tc.header {
				r.Header.Set(k, v)
			}
			vh := rt.VirtualHost(tc.host)
			got := ""
			if vh != nil {
				if route := vh.Route(r, tc.host); route != nil {
					got = route.Name
				}
			}
			if got != tc.want {
				t.Errorf("route %q, want %q", got, tc.want)
			}
		})
	}
}

func TestRewritesAndRedirects(t *testing.T) {
	rt := parseRoutesJSON(t)
	vh := rt.VirtualHost("x")
	find := func(name string) *Route {
		for _, r := range vh.Routes {
			if r.Name == name {
				return r
			}
		}
		t.Fatalf("no route %s", name)
		return nil
	}
	prefix := find("prefix")
	if got := rewritePrefix(&prefix.Match, "/a/x/y", *prefix.Forward.PrefixRewrite); got != "/b/x/y" {
		t.Errorf("prefix rewrite of /a/x/y: %q, want /b/x/y", got)
	}
	for _, tc := range []struct {
		route, target, host, want string
		status                    int
	}{
		{"moved", "/moved/x?q=1", "gw.example.com:8080", "https://new.example.com/moved/x?q=1", 301},
		{"gone", "/gone/a/b", "gw.example.com:8080", "http://gw.example.com:8080/a/b", 303},
	} {
		r := httptest.NewRequest("GET", tc.target, nil)
		r.Host = tc.host
		route := find(tc.route)
		if got := redirectLocation(route, r, stripPort(tc.host)); got != tc.want {
			t.Errorf("%s: Location %q, want %q", tc.route, got, tc.want)
		}
		if route.Redirect.Status != tc.status {
			t.Errorf("%s: status %d, want %d", tc.route, route.Redirect.Status, tc.status)
		}
	}
	if d := find("direct").Direct; d == nil || d.Status != 500 {
		t.Errorf("direct response: %+v, want status 500", d)
	}
}

func TestInvalidRoutesAreRefused(t *testing.T) {
	rc := &routev3.RouteConfiguration{Name: "r", VirtualHosts: []*routev3.VirtualHost{{
		Name: "*", Domains: []string{"*"},
		Routes: []*routev3.Route{{
			Match:  &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_SafeRegex{SafeRegex: &matcherv3.RegexMatcher{Regex: "/a(?=b)"}}},
			Action: &routev3.Route_Route{Route: &routev3.RouteAction{ClusterSpecifier: &routev3.RouteAction_Cluster{Cluster: "c"}}},
		}},
	}}}
	if _, err := parseRoutes(rc); err == nil {
		t.Error("a regex RE2 does not take was accepted")
	}
}

func TestBalancerWeights(t *testing.T) {
	b := newBalancer([]Endpoint{{Addr: "a", Weight: 3}, {Addr: "b", Weight: 1}}, RoundRobin)
	counts := map[string]int{}
	for range 400 {
		addr, _ := b.pick(nil)
		counts[addr]++
	}
	if counts["a"] != 300 || counts["b"] != 100 {
		t.Errorf("picks %v, want a 300, b 100", counts)
	}
	if addr, _ := b.pick(map[string]bool{"a": true}); addr != "b" {
		t.Errorf("pick avoiding a: %s", addr)
	}
	if _, ok := newBalancer(nil, RoundRobin).pick(nil); ok {
		t.Error("an empty cluster picked an endpoint")
	}
}

func TestLocalityWeights(t *testing.T) {
	const cla = `{"clusterName": "c", "endpoints": [
	  {"locality": {"zone": "a"}, "loadBalancingWeight": 3, "lbEndpoints": [
	    {"endpoint": {"address": {"socketAddress": {"address": "10.0.0.1", "portValue": 80}}}, "loadBalancingWeight": 1},
	    {"endpoint": {"address": {"socketAddress": {"address": "10.0.0.2", "portValue": 80}}}, "loadBalancingWeight": 2}]},
	  {"locality": {"zone": "b"}, "loadBalancingWeight": 1, "lbEndpoints": [
	    {"endpoint": {"address": {"socketAddress": {"address": "10.0.0.3", "portValue": 80}}}, "loadBalancingWeight": 1}]}]}`
	var m = new(endpointAssignment)
	if err := protojson.Unmarshal([]byte(cla), m); err != nil {
		t.Fatal(err)
	}
	eps, err := parseEndpoints(m)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]float64{"10.0.0.1:80": 1, "10.0.0.2:80": 2, "10.0.0.3:80": 1}
	for _, e := range eps {
		if math.Abs(e.Weight-want[e.Addr]) > 1e-9 {
			t.Errorf("%s: weight %v, want %v", e.Addr, e.Weight, want[e.Addr])
		}
	}
	if len(eps) != 3 {
		t.Errorf("%d endpoints, want 3", len(eps))
	}
}

type endpointAssignment = endpointv3.ClusterLoadAssignment

func TestChainBySNI(t *testing.T) {
	a, wild, deflt := &TLSChain{ServerNames: []string{"a.example.com"}}, &TLSChain{ServerNames: []string{"*.example.com"}}, &TLSChain{}
	l := &Listener{TLS: []*TLSChain{deflt, wild, a}}
	for sni, want := range map[string]*TLSChain{"a.example.com": a, "b.example.com": wild, "x.y.example.com": wild, "other.org": deflt, "": deflt} {
		if got := l.Chain(sni); got != want {
			t.Errorf("SNI %q: chain %+v, want %+v", sni, got, want)
		}
	}
	if got := (&Listener{TLS: []*TLSChain{a}}).Chain("other.org"); got != nil {
		t.Errorf("SNI other.org with no default chain: %+v, want none", got)
	}
}

func TestOutlierEjection(t *testing.T) {
	now := time.Unix(1000, 0)
	o := newOutliers(func() time.Time { return now })
	c := &Cluster{Name: "c", Endpoints: []Endpoint{{Addr: "a"}, {Addr: "b"}},
		Outlier: &OutlierPolicy{Consecutive5xx: 2, ConsecutiveLocal: 3, BaseEjection: time.Minute, MaxEjectionPercent: 50}}
	steps := []struct {
		addr   string
		status int
		eject  bool
	}{
		{"a", 500, false}, {"a", 200, false}, {"a", 503, false}, {"a", 500, true}, // reset by a 200
		{"b", 0, false}, {"b", 0, false}, {"b", 0, false}, // 50% already ejected
	}
	for i, s := range steps {
		if got := o.report(c, s.addr, s.status); got != s.eject {
			t.Errorf("step %d (%s %d): ejected %v, want %v", i, s.addr, s.status, got, s.eject)
		}
	}
	if got := o.ejected(c); !got["a"] || got["b"] {
		t.Errorf("ejected %v, want a only", got)
	}
	now = now.Add(61 * time.Second)
	if got := o.ejected(c); len(got) != 0 {
		t.Errorf("ejected %v after the ejection time, want none", got)
	}
	o.report(c, "a", 500)
	if !o.report(c, "a", 500) {
		t.Fatal("a not ejected a second time")
	}
	now = now.Add(90 * time.Second)
	if !o.ejected(c)["a"] {
		t.Error("a second ejection lasts twice the base time")
	}
}

func TestLeastRequest(t *testing.T) {
	b := newBalancer([]Endpoint{{Addr: "a", Weight: 1}, {Addr: "b", Weight: 1}}, LeastRequest)
	a, _ := b.acquire(map[string]bool{"b": true}, 0, false)
	for range 50 {
		i, ok := b.acquire(nil, 0, false)
		if !ok || b.eps[i].Addr != "b" {
			t.Fatalf("picked %s with a request in flight on a and none on b", b.eps[i].Addr)
		}
		b.release(i)
	}
	b.release(a)
	if b.inflight[0].Load() != 0 || b.inflight[1].Load() != 0 {
		t.Errorf("in flight after every release: a %d, b %d", b.inflight[0].Load(), b.inflight[1].Load())
	}
}

func TestRingSpread(t *testing.T) {
	// Addresses and keys that differ only in their last characters, as
	// ports and user ids do.
	b := newBalancer([]Endpoint{{Addr: "127.0.0.1:40001", Weight: 1}, {Addr: "127.0.0.1:40002", Weight: 1}, {Addr: "127.0.0.1:40003", Weight: 2}}, RingHash)
	counts := make([]int, 3)
	for u := range 4000 {
		i, _ := b.acquire(nil, hashString(fmt.Sprintf("user-%d", u)), true)
		b.release(i)
		counts[i]++
	}
	for i, want := range []float64{1000, 1000, 2000} {
		if math.Abs(float64(counts[i])-want) > want/4 {
			t.Errorf("endpoint %d (weight %v) got %d of 4000 keys, want about %v", i, b.eps[i].Weight, counts[i], want)
		}
	}
	again, _ := b.acquire(nil, hashString("user-7"), true)
	b.release(again)
	first, _ := b.acquire(nil, hashString("user-7"), true)
	b.release(first)
	if again != first {
		t.Errorf("user-7 went to %s then %s", b.eps[again].Addr, b.eps[first].Addr)
	}
}
