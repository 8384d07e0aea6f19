package xds

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"google.golang.org/protobuf/types/known/structpb"
	corev1 "k8s.io/api/core/v1"
)

// gatewayNode is a node serving Gateway gw ("" for none).
func gatewayNode(t *testing.T, id, gw string) *core.Node {
	t.Helper()
	n := &core.Node{Id: id, UserAgentName: "test-gateway"}
	if gw != "" {
		md, err := structpb.NewStruct(map[string]any{GatewayMetadataKey: gw})
		if err != nil {
			t.Fatal(err)
		}
		n.Metadata = md
	}
	return n
}

// secrets decodes the Secrets of a response: "name=<first bytes of the chain>".
func secretNames(t *testing.T, resp *discovery.DiscoveryResponse) string {
	t.Helper()
	var out []string
	for _, a := range resp.Resources {
		var s tlsv3.Secret
		if err := a.UnmarshalTo(&s); err != nil {
			t.Fatal(err)
		}
		if len(s.GetTlsCertificate().GetCertificateChain().GetInlineBytes()) == 0 || len(s.GetTlsCertificate().GetPrivateKey().GetInlineBytes()) == 0 {
			t.Errorf("secret %s has no inline certificate chain and key", s.Name)
		}
		out = append(out, s.Name)
	}
	return strings.Join(out, ",")
}

// TestSecretsOnlyToTheirGateway: over real ADS streams (State of the World
// and Delta), a node of Gateway default/web gets web's Secrets, whether it
// asks for everything or by name, and never another Gateway's, even by
// name; a node of no Gateway gets none. A rotated Secret is pushed.
func TestSecretsOnlyToTheirGateway(t *testing.T) {
	in := loadInputs(t, filepath.Join("testdata", "gateway-tls", "input.yaml"))
	snap, err := Translate(in)
	if err != nil {
		t.Fatal(err)
	}
	s, conn := startServer(t)
	s.Cache.SetSnapshot(snap, time.Time{})

	ask := func(node *core.Node, names ...string) (*sotwClient, *discovery.DiscoveryResponse) {
		c := newSotw(t, conn, node.Id)
		c.node = node
		c.send(&discovery.DiscoveryRequest{TypeUrl: SecretType, ResourceNames: names})
		return c, c.recv()
	}
	web := gatewayNode(t, "web-1", "default/web")
	if _, r := ask(web); secretNames(t, r) != "default/a-tls,default/b-tls" {
		t.Errorf("web's wildcard request got %q, want default/a-tls,default/b-tls", secretNames(t, r))
	}
	webByName, r := ask(web, "default/a-tls", "default/other-tls")
	if got := secretNames(t, r); got != "default/a-tls" {
		t.Errorf("web asking for a-tls and other's other-tls got %q, want default/a-tls only", got)
	}
	if _, r := ask(gatewayNode(t, "other-1", "default/other"), "default/a-tls", "default/b-tls"); secretNames(t, r) != "" {
		t.Errorf("Gateway other's node asking web's secrets by name got %q, want nothing", secretNames(t, r))
	}
	if _, r := ask(gatewayNode(t, "mesh-1", ""), "default/a-tls"); secretNames(t, r) != "" {
		t.Errorf("a node of no Gateway got %q, want nothing", secretNames(t, r))
	}

	// Delta: the same rule.
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ds, err := discovery.NewAggregatedDiscoveryServiceClient(conn).DeltaAggregatedResources(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := ds.Send(&discovery.DeltaDiscoveryRequest{Node: gatewayNode(t, "other-2", "default/other"), TypeUrl: SecretType,
		ResourceNamesSubscribe: []string{"default/a-tls", "default/other-tls"}}); err != nil {
		t.Fatal(err)
	}
	dr, err := ds.Recv()
	if err != nil {
		t.Fatal(err)
	}
	if len(dr.Resources) != 1 || dr.Resources[0].Name != "default/other-tls" {
		var got []string
		for _, r := range dr.Resources {
			got = append(got, r.Name)
		}
		t.Errorf("delta: Gateway other's node got %v, want [default/other-tls]", got)
	}

	// Rotation: a-tls takes b-tls's pair; web's node gets the new version.
	webByName.send(&discovery.DiscoveryRequest{TypeUrl: SecretType, ResourceNames: []string{"default/a-tls", "default/other-tls"},
		VersionInfo: r.VersionInfo, ResponseNonce: r.Nonce})
	webByName.quiet(100 * time.Millisecond)
	before, _ := snap.Get(SecretType, "default/a-tls")
	rotated := *in
	rotated.Secrets = nil
	var b *corev1.Secret
	for _, s := range in.Secrets {
		if s.Name == "b-tls" {
			b = s
		}
	}
	for _, s := range in.Secrets {
		if s.Name == "a-tls" {
			s = s.DeepCopy()
			s.Data = b.Data
		}
		rotated.Secrets = append(rotated.Secrets, s)
	}
	snap2, err := Translate(&rotated)
	if err != nil {
		t.Fatal(err)
	}
	after, _ := snap2.Get(SecretType, "default/a-tls")
	if after.Version == before.Version {
		t.Fatal("a rotated Secret kept its SDS version")
	}
	s.Cache.SetSnapshot(snap2, time.Time{})
	r2 := webByName.recv()
	if secretNames(t, r2) != "default/a-tls" || r2.VersionInfo == r.VersionInfo {
		t.Errorf("after rotation web got %q version %s (was %s)", secretNames(t, r2), r2.VersionInfo, r.VersionInfo)
	}
	var sec tlsv3.Secret
	if err := r2.Resources[0].UnmarshalTo(&sec); err != nil {
		t.Fatal(err)
	}
	if string(sec.GetTlsCertificate().GetCertificateChain().GetInlineBytes()) != string(b.Data[corev1.TLSCertKey]) {
		t.Error("the pushed a-tls does not hold the rotated certificate")
	}
}
