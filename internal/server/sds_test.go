package server_test

import (
	"context"
	"testing"
	"time"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"google.golang.org/protobuf/types/known/structpb"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/sluice/sluice/internal/certtest"
	"github.com/sluice/sluice/internal/client"
	"github.com/sluice/sluice/internal/resource"
	"github.com/sluice/sluice/internal/server"
	"github.com/sluice/sluice/internal/servertest"
	"github.com/sluice/sluice/internal/xds"
)

// sdsStream is a State-of-the-World ADS stream asking for Secrets as a
// node of one Gateway.
type sdsStream struct {
	t      *testing.T
	stream discovery.AggregatedDiscoveryService_StreamAggregatedResourcesClient
	node   *core.Node
	names  []string
}

func openSDS(t *testing.T, addr, id, gateway string, names ...string) *sdsStream {
	t.Helper()
	stream := adsStream(t, addr)
	md, _ := structpb.NewStruct(map[string]any{xds.GatewayMetadataKey: gateway})
	return &sdsStream{t: t, stream: stream, node: &core.Node{Id: id, Metadata: md}, names: names}
}

// next sends a request (an ACK of last when set) and returns the response's
// secrets by name, with their certificate chains.
func (s *sdsStream) next(last *discovery.DiscoveryResponse) (*discovery.DiscoveryResponse, map[string]string) {
	s.t.Helper()
	req := &discovery.DiscoveryRequest{Node: s.node, TypeUrl: xds.SecretType, ResourceNames: s.names}
	if last != nil {
		req.VersionInfo, req.ResponseNonce = last.VersionInfo, last.Nonce
	}
	if err := s.stream.Send(req); err != nil {
		s.t.Fatal(err)
	}
	type result struct {
		resp *discovery.DiscoveryResponse
		err  error
	}
	ch := make(chan result, 1)
	go func() {
		r, err := s.stream.Recv()
		ch <- result{r, err}
	}()
	select {
	case r := <-ch:
		if r.err != nil {
			s.t.Fatal(r.err)
		}
		out := map[string]string{}
		for _, a := range r.resp.Resources {
			var sec tlsv3.Secret
			if err := a.UnmarshalTo(&sec); err != nil {
				s.t.Fatal(err)
			}
			out[sec.Name] = string(sec.GetTlsCertificate().GetCertificateChain().GetInlineBytes())
		}
		return r.resp, out
	case <-time.After(10 * time.Second):
		s.t.Fatal("no SDS response within 10s")
	}
	return nil, nil
}

// TestSDSThroughTheServer: Secrets and Gateways written through the API
// reach the ADS server: Gateway a's node gets a's Secret and not b's, even
// by name, and a rotated Secret is pushed to it.
func TestSDSThroughTheServer(t *testing.T) {
	srv := servertest.Start(t, server.Config{XDSDebounceWindow: 10 * time.Millisecond})
	c := srv.Client(t, "")
	ctx := context.Background()
	put := func(k *resource.Kind, obj resource.Object) {
		t.Helper()
		if _, err := c.Apply(ctx, client.ResourceOf(k), obj.GetNamespace(), obj.GetName(), obj, nil, false); err != nil {
			t.Fatalf("apply %s %s: %v", k, obj.GetName(), err)
		}
	}
	secret := func(name string, crt, key []byte) *corev1.Secret {
		return &corev1.Secret{
			TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Secret"},
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default"},
			Type:       corev1.SecretTypeTLS,
			Data:       map[string][]byte{corev1.TLSCertKey: crt, corev1.TLSPrivateKeyKey: key},
		}
	}
	gateway := func(name, host, secretName string) *gatewayv1.Gateway {
		h := gatewayv1.Hostname(host)
		return &gatewayv1.Gateway{
			TypeMeta:   metav1.TypeMeta{APIVersion: "gateway.networking.k8s.io/v1", Kind: "Gateway"},
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default"},
			Spec: gatewayv1.GatewaySpec{GatewayClassName: "sluice", Listeners: []gatewayv1.Listener{{
				Name: "https", Port: 443, Protocol: gatewayv1.HTTPSProtocolType, Hostname: &h,
				TLS: &gatewayv1.ListenerTLSConfig{CertificateRefs: []gatewayv1.SecretObjectReference{{Name: gatewayv1.ObjectName(secretName)}}},
			}}},
		}
	}
	aCrt, aKey := certtest.KeyPair(t, "a.example.com")
	bCrt, bKey := certtest.KeyPair(t, "b.example.com")
	put(resource.SecretKind, secret("a-tls", aCrt, aKey))
	put(resource.SecretKind, secret("b-tls", bCrt, bKey))
	put(resource.GatewayKind, gateway("a", "a.example.com", "a-tls"))
	put(resource.GatewayKind, gateway("b", "b.example.com", "b-tls"))

	a := openSDS(t, srv.XDSAddr, "gw-a", "default/a", "default/a-tls", "default/b-tls")
	var resp *discovery.DiscoveryResponse
	var got map[string]string
	deadline := time.Now().Add(10 * time.Second)
	for resp, got = a.next(nil); got["default/a-tls"] == ""; resp, got = a.next(resp) {
		if time.Now().After(deadline) {
			t.Fatalf("Gateway a's node never got default/a-tls; last response %v", got)
		}
	}
	if len(got) != 1 || got["default/a-tls"] != string(aCrt) {
		t.Fatalf("Gateway a's node asking for a-tls and b-tls got %d secrets (a-tls right: %v), want a-tls only", len(got), got["default/a-tls"] == string(aCrt))
	}
	if _, got := openSDS(t, srv.XDSAddr, "gw-b", "default/b", "default/a-tls").next(nil); len(got) != 0 {
		t.Errorf("Gateway b's node asking for a's Secret got %d secrets, want none", len(got))
	}

	// Rotation: a-tls gets a new pair; a's node is pushed the new chain.
	newCrt, newKey := certtest.KeyPair(t, "a.example.com")
	put(resource.SecretKind, secret("a-tls", newCrt, newKey))
	resp2, got2 := a.next(resp)
	if got2["default/a-tls"] != string(newCrt) || resp2.VersionInfo == resp.VersionInfo {
		t.Errorf("after rotation: new chain %v, version %s (was %s)", got2["default/a-tls"] == string(newCrt), resp2.VersionInfo, resp.VersionInfo)
	}
}
