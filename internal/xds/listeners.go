package xds

import (
	"cmp"
	"slices"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routerv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	tlsinspectorv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/listener/tls_inspector/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"
)

// Well-known names of the Envoy extensions Sluice configures.
const (
	routerFilter       = "envoy.filters.http.router"
	hcmFilter          = "envoy.filters.network.http_connection_manager"
	tlsInspectorFilter = "envoy.filters.listener.tls_inspector"
	tlsTransportSocket = "envoy.transport_sockets.tls"
)

// connectionManager is an HTTP connection manager taking its routes from
// RouteConfiguration name over ADS. The router filter is the only HTTP
// filter, and mandatory: gRPC clients NACK a listener without it.
func (t *translation) connectionManager(name string, gateway bool) *hcmv3.HttpConnectionManager {
	m := &hcmv3.HttpConnectionManager{
		StatPrefix: name,
		RouteSpecifier: &hcmv3.HttpConnectionManager_Rds{Rds: &hcmv3.Rds{
			ConfigSource:    adsSource(),
			RouteConfigName: name,
		}},
		HttpFilters: []*hcmv3.HttpFilter{{
			Name:       routerFilter,
			ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: t.toAny(&routerv3.Router{})},
		}},
	}
	if gateway {
		// Gateway API hostnames never carry a port; a Host header on a
		// non-default port does.
		m.StripPortMode = &hcmv3.HttpConnectionManager_StripAnyHostPort{StripAnyHostPort: true}
	}
	return m
}

// apiListener is the Listener a proxyless gRPC client dialing
// xds:///<name> asks for: nothing but the connection manager.
func (t *translation) apiListener(name string) *listenerv3.Listener {
	return &listenerv3.Listener{
		Name:        name,
		ApiListener: &listenerv3.ApiListener{ApiListener: t.toAny(t.connectionManager(name, false))},
	}
}

// gatewayListener is the Listener of a Gateway's listeners ls on one port,
// all of one protocol, HTTP or HTTPS. HTTPS gets one filter chain per
// listener, chosen by SNI (the TLS inspector reads it), each terminating
// TLS with the listener's certificates from SDS; the chains share the
// port's RouteConfiguration. secrets collects the secret names.
func (t *translation) gatewayListener(gw *gatewayv1.Gateway, name string, port int32, ls []*gatewayv1.Listener, secrets map[string]bool) *listenerv3.Listener {
	hcm := &listenerv3.Filter{
		Name:       hcmFilter,
		ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: t.toAny(t.connectionManager(name, true))},
	}
	l := &listenerv3.Listener{Name: name, Address: socketAddress("0.0.0.0", port)}
	if ls[0].Protocol == gatewayv1.HTTPProtocolType {
		l.FilterChains = []*listenerv3.FilterChain{{Filters: []*listenerv3.Filter{hcm}}}
		return l
	}
	l.ListenerFilters = []*listenerv3.ListenerFilter{{
		Name:       tlsInspectorFilter,
		ConfigType: &listenerv3.ListenerFilter_TypedConfig{TypedConfig: t.toAny(&tlsinspectorv3.TlsInspector{})},
	}}
	ls = slices.Clone(ls)
	slices.SortFunc(ls, func(a, b *gatewayv1.Listener) int { return cmp.Compare(a.Name, b.Name) })
	for _, gl := range ls {
		socket := t.tlsSocket(gw, gl, secrets)
		if socket == nil {
			continue
		}
		fc := &listenerv3.FilterChain{Name: string(gl.Name), Filters: []*listenerv3.Filter{hcm}, TransportSocket: socket}
		if gl.Hostname != nil {
			fc.FilterChainMatch = &listenerv3.FilterChainMatch{ServerNames: []string{string(*gl.Hostname)}}
		}
		l.FilterChains = append(l.FilterChains, fc)
	}
	return l
}

// tlsSocket terminates TLS with the certificates of a Gateway listener,
// named "<namespace>/<name>" and served over SDS; nil if it has none.
// ReferenceGrants do not exist in Sluice: a certificateRef may name a
// Secret in another namespace.
func (t *translation) tlsSocket(gw *gatewayv1.Gateway, gl *gatewayv1.Listener, secrets map[string]bool) *corev3.TransportSocket {
	if gl.TLS == nil {
		return nil
	}
	common := &tlsv3.CommonTlsContext{AlpnProtocols: []string{"h2", "http/1.1"}}
	for _, ref := range gl.TLS.CertificateRefs {
		if (ref.Group != nil && *ref.Group != "") || (ref.Kind != nil && *ref.Kind != "Secret") {
			continue
		}
		ns := gw.Namespace
		if ref.Namespace != nil && *ref.Namespace != "" {
			ns = string(*ref.Namespace)
		}
		name := ns + "/" + string(ref.Name)
		secrets[name] = true
		common.TlsCertificateSdsSecretConfigs = append(common.TlsCertificateSdsSecretConfigs, &tlsv3.SdsSecretConfig{Name: name, SdsConfig: adsSource()})
	}
	if len(common.TlsCertificateSdsSecretConfigs) == 0 {
		return nil
	}
	return &corev3.TransportSocket{
		Name:       tlsTransportSocket,
		ConfigType: &corev3.TransportSocket_TypedConfig{TypedConfig: t.toAny(&tlsv3.DownstreamTlsContext{CommonTlsContext: common})},
	}
}
