package xds

import (
	"cmp"
	"fmt"
	"slices"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routerv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	tlsinspectorv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/listener/tls_inspector/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/sluice/sluice/internal/resource"
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
		for _, gl := range ls {
			t.listenerDecision(gw, gl).Programmed = true
		}
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
		t.listenerDecision(gw, gl).Programmed = true
		fc := &listenerv3.FilterChain{Name: string(gl.Name), Filters: []*listenerv3.Filter{hcm}, TransportSocket: socket}
		if gl.Hostname != nil {
			fc.FilterChainMatch = &listenerv3.FilterChainMatch{ServerNames: []string{string(*gl.Hostname)}}
		}
		l.FilterChains = append(l.FilterChains, fc)
	}
	return l
}

// certRef is one certificateRef of a Gateway listener, resolved.
type certRef struct {
	// name is the SDS name of the Secret, "<namespace>/<name>".
	name string
	// chain and key are its PEM certificate chain and private key; problem
	// says why there are none (a missing or unusable Secret).
	chain, key []byte
	problem    string
}

// certificateRefs resolves the certificateRefs of a Gateway listener
// against the Secrets: the one place that decides whether a reference can
// serve, for the listener's filter chain and for its ResolvedRefs status.
// ReferenceGrants do not exist in Sluice: a certificateRef may name a
// Secret in another namespace.
func (t *translation) certificateRefs(gw *gatewayv1.Gateway, gl *gatewayv1.Listener) []certRef {
	if gl.TLS == nil {
		return nil
	}
	var out []certRef
	for _, ref := range gl.TLS.CertificateRefs {
		ns := gw.Namespace
		if ref.Namespace != nil && *ref.Namespace != "" {
			ns = string(*ref.Namespace)
		}
		c := certRef{name: ns + "/" + string(ref.Name)}
		switch s, ok := t.secrets[objKey{ns, string(ref.Name)}]; {
		case (ref.Group != nil && *ref.Group != "") || (ref.Kind != nil && *ref.Kind != "Secret"):
			c.problem = fmt.Sprintf("certificateRef %s is not a core Secret", c.name)
		case !ok:
			c.problem = fmt.Sprintf("Secret %s does not exist", c.name)
		default:
			var err error
			if c.chain, c.key, err = resource.TLSKeyPair(s); err != nil {
				c.problem = fmt.Sprintf("Secret %s cannot serve TLS: %v", c.name, err)
			}
		}
		out = append(out, c)
	}
	return out
}

// tlsSocket terminates TLS with the certificates of a Gateway listener,
// named "<namespace>/<name>" and served over SDS; nil if none of them is a
// valid TLS Secret, so that the listener's filter chain is left out rather
// than served without a certificate. A reference that cannot serve is left
// out and recorded in the problems. secrets collects the names.
func (t *translation) tlsSocket(gw *gatewayv1.Gateway, gl *gatewayv1.Listener, secrets map[string]bool) *corev3.TransportSocket {
	common := &tlsv3.CommonTlsContext{AlpnProtocols: []string{"h2", "http/1.1"}}
	for _, c := range t.certificateRefs(gw, gl) {
		if c.problem != "" {
			t.problems = append(t.problems, fmt.Sprintf("Gateway %s/%s listener %s: %s", gw.Namespace, gw.Name, gl.Name, c.problem))
			d := t.listenerDecision(gw, gl)
			d.CertificateProblems = append(d.CertificateProblems, c.problem)
			continue
		}
		if !secrets[c.name] {
			secrets[c.name] = true
			t.add(SecretType, c.name, tlsSecret(c))
		}
		common.TlsCertificateSdsSecretConfigs = append(common.TlsCertificateSdsSecretConfigs, &tlsv3.SdsSecretConfig{Name: c.name, SdsConfig: adsSource()})
	}
	if len(common.TlsCertificateSdsSecretConfigs) == 0 {
		if gl.TLS != nil {
			t.problems = append(t.problems, fmt.Sprintf("Gateway %s/%s listener %s: no valid certificate; its filter chain is left out", gw.Namespace, gw.Name, gl.Name))
		}
		return nil
	}
	return &corev3.TransportSocket{
		Name:       tlsTransportSocket,
		ConfigType: &corev3.TransportSocket_TypedConfig{TypedConfig: t.toAny(&tlsv3.DownstreamTlsContext{CommonTlsContext: common})},
	}
}

// tlsSecret is the SDS Secret of a certificateRef: its certificate chain
// and private key inline.
func tlsSecret(c certRef) *tlsv3.Secret {
	return &tlsv3.Secret{
		Name: c.name,
		Type: &tlsv3.Secret_TlsCertificate{TlsCertificate: &tlsv3.TlsCertificate{
			CertificateChain: &corev3.DataSource{Specifier: &corev3.DataSource_InlineBytes{InlineBytes: c.chain}},
			PrivateKey:       &corev3.DataSource{Specifier: &corev3.DataSource_InlineBytes{InlineBytes: c.key}},
		}},
	}
}
