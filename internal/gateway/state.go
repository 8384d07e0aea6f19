package gateway

import (
	"crypto/tls"
	"fmt"
	"maps"
	"slices"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
)

// The xDS types the gateway asks for.
const (
	typePrefix   = "type.googleapis.com/"
	ListenerType = typePrefix + "envoy.config.listener.v3.Listener"
	RouteType    = typePrefix + "envoy.config.route.v3.RouteConfiguration"
	ClusterType  = typePrefix + "envoy.config.cluster.v3.Cluster"
	EndpointType = typePrefix + "envoy.config.endpoint.v3.ClusterLoadAssignment"
	SecretType   = typePrefix + "envoy.extensions.transport_sockets.tls.v3.Secret"
)

// typeNames are the short names of the types, for logs and metrics.
var typeNames = map[string]string{ListenerType: "LDS", RouteType: "RDS", ClusterType: "CDS", EndpointType: "EDS", SecretType: "SDS"}

// state is what the xDS client accepted, per type: the parsed resources
// and their protos. A state is never changed once built: an update makes a
// new one sharing the maps of the other types.
type state struct {
	listeners map[string]*Listener
	routes    map[string]*RouteTable
	clusters  map[string]*Cluster
	endpoints map[string][]Endpoint
	secrets   map[string]*tls.Certificate
	versions  map[string]string
	raw       map[string]map[string]proto.Message
}

func newState() *state {
	return &state{
		listeners: map[string]*Listener{},
		routes:    map[string]*RouteTable{},
		clusters:  map[string]*Cluster{},
		endpoints: map[string][]Endpoint{},
		secrets:   map[string]*tls.Certificate{},
		versions:  map[string]string{},
		raw:       map[string]map[string]proto.Message{},
	}
}

// with returns the state with the resources of one type replaced by those
// of a State-of-the-World response, or the reason they cannot be applied.
// Resources of RDS and EDS not in names (what the client asked for) are
// left out.
func (s *state) with(typeURL, version string, resources []*anypb.Any) (*state, error) {
	next := *s
	next.versions = maps.Clone(s.versions)
	next.versions[typeURL] = version
	next.raw = maps.Clone(s.raw)
	var raw map[string]proto.Message
	var err error
	switch typeURL {
	case ListenerType:
		next.listeners, raw, err = parseAll(resources, parseListener, func(m *listenerv3.Listener) string { return m.GetName() })
		if err == nil {
			err = distinctPorts(next.listeners)
		}
	case RouteType:
		next.routes, raw, err = parseAll(resources, parseRoutes, func(m *routev3.RouteConfiguration) string { return m.GetName() })
	case ClusterType:
		next.clusters, raw, err = parseAll(resources, parseCluster, func(m *clusterv3.Cluster) string { return m.GetName() })
	case EndpointType:
		next.endpoints, raw, err = parseAll(resources, parseEndpoints, func(m *endpointv3.ClusterLoadAssignment) string { return m.GetClusterName() })
	case SecretType:
		next.secrets, raw, err = parseAll(resources, parseSecret, func(m *tlsv3.Secret) string { return m.GetName() })
		for name := range raw {
			raw[name] = &tlsv3.Secret{Name: name} // secret material is never dumped
		}
	default:
		return nil, invalid("unknown type %s", typeURL)
	}
	if err != nil {
		return nil, err
	}
	next.raw[typeURL] = raw
	return &next, nil
}

// parseAll unmarshals and parses every resource of a response, by name.
func parseAll[M any, PM interface {
	*M
	proto.Message
}, T any](resources []*anypb.Any, parse func(PM) (T, error), name func(PM) string) (map[string]T, map[string]proto.Message, error) {
	out, raw := map[string]T{}, map[string]proto.Message{}
	for _, a := range resources {
		m := PM(new(M))
		if err := anypb.UnmarshalTo(a, m, protoUnmarshal); err != nil {
			return nil, nil, invalid("%s: %v", a.GetTypeUrl(), err)
		}
		v, err := parse(m)
		if err != nil {
			return nil, nil, err
		}
		out[name(m)], raw[name(m)] = v, m
	}
	return out, raw, nil
}

// distinctPorts refuses listeners that share a port.
func distinctPorts(ls map[string]*Listener) error {
	ports := map[int]string{}
	for _, name := range slices.Sorted(maps.Keys(ls)) {
		l := ls[name]
		if other, ok := ports[l.Port]; ok {
			return invalid("listeners %q and %q share port %d", other, l.Name, l.Port)
		}
		ports[l.Port] = l.Name
	}
	return nil
}

// subscriptions are the names of RDS, CDS and EDS the accepted listeners,
// routes and clusters refer to, sorted.
func (s *state) subscriptions() map[string][]string {
	routes, clusters, eds, secrets := map[string]bool{}, map[string]bool{}, map[string]bool{}, map[string]bool{}
	for _, l := range s.listeners {
		routes[l.RouteName] = true
		for _, c := range l.TLS {
			for _, name := range c.Secrets {
				secrets[name] = true
			}
		}
		if rt := s.routes[l.RouteName]; rt != nil {
			rt.clusters(clusters)
		}
	}
	for _, c := range s.clusters {
		if c.EDSName != "" {
			eds[c.EDSName] = true
		}
	}
	return map[string][]string{
		RouteType:    slices.Sorted(maps.Keys(routes)),
		ClusterType:  slices.Sorted(maps.Keys(clusters)),
		EndpointType: slices.Sorted(maps.Keys(eds)),
		SecretType:   slices.Sorted(maps.Keys(secrets)),
	}
}

// build links the state into a Config.
func (s *state) build() *Config {
	cfg := &Config{
		Listeners: map[int]*Listener{},
		Clusters:  map[string]*Cluster{},
		Versions:  s.versions,
		Resources: s.raw,
		Complete:  s.raw[ListenerType] != nil,
	}
	for _, l := range s.listeners {
		l := *l
		l.Routes = s.routes[l.RouteName]
		if l.Routes == nil || !s.hasClusters(l.Routes) {
			cfg.Complete = false
		}
		l.TLS = slices.Clone(l.TLS)
		for i, c := range l.TLS {
			c := *c
			c.Certs = nil
			for _, name := range c.Secrets {
				if cert := s.secrets[name]; cert != nil {
					c.Certs = append(c.Certs, *cert)
				} else {
					cfg.Complete = false
				}
			}
			l.TLS[i] = &c
		}
		cfg.Listeners[l.Port] = &l
	}
	for _, c := range s.clusters {
		c := *c
		if c.EDSName != "" {
			eps, ok := s.endpoints[c.EDSName]
			c.Endpoints, c.Loaded = eps, ok
			if !ok {
				cfg.Complete = false
			}
		}
		c.balancer = newBalancer(c.Endpoints, c.LB)
		cfg.Clusters[c.Name] = &c
	}
	return cfg
}

// hasClusters says whether every cluster rt forwards or mirrors to is
// known.
func (s *state) hasClusters(rt *RouteTable) bool {
	used := map[string]bool{}
	rt.clusters(used)
	for name := range used {
		if s.clusters[name] == nil {
			return false
		}
	}
	return true
}

// clusters adds the clusters rt forwards or mirrors to to set.
func (rt *RouteTable) clusters(set map[string]bool) {
	for _, vh := range rt.VirtualHosts {
		for _, r := range vh.Routes {
			if r.Forward == nil {
				continue
			}
			for _, c := range r.Forward.Clusters {
				set[c.Name] = true
			}
			for _, m := range r.Forward.Mirrors {
				set[m.Cluster] = true
			}
		}
	}
}

// describe is a one-line summary of a config, for logs.
func (c *Config) describe() string {
	routes := 0
	for _, l := range c.Listeners {
		if l.Routes != nil {
			for _, vh := range l.Routes.VirtualHosts {
				routes += len(vh.Routes)
			}
		}
	}
	return fmt.Sprintf("%d listeners, %d routes, %d clusters", len(c.Listeners), routes, len(c.Clusters))
}
