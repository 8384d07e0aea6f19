package server_test

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/sluice/sluice/internal/server"
	"github.com/sluice/sluice/internal/servertest"
	"github.com/sluice/sluice/internal/xds"
)

// adsStream opens an ADS stream to addr, closed when the test ends.
func adsStream(t *testing.T, addr string) discovery.AggregatedDiscoveryService_StreamAggregatedResourcesClient {
	t.Helper()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(func() {
		cancel()
		conn.Close()
	})
	stream, err := discovery.NewAggregatedDiscoveryServiceClient(conn).StreamAggregatedResources(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return stream
}

// connectProxy opens an ADS stream to addr as node id, asks for a cluster,
// and keeps the stream open until the test ends.
func connectProxy(t *testing.T, addr, id string) {
	t.Helper()
	stream := adsStream(t, addr)
	if err := stream.Send(&discovery.DiscoveryRequest{Node: &core.Node{Id: id}, TypeUrl: xds.ClusterType, ResourceNames: []string{"greeter.default"}}); err != nil {
		t.Fatal(err)
	}
	if _, err := stream.Recv(); err != nil {
		t.Fatal(err)
	}
}

func proxies(t *testing.T, url string) xds.ProxyList {
	t.Helper()
	resp, err := http.Get(url + "/apis/sluice.io/v1alpha1/proxies")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var list xds.ProxyList
	if err := json.NewDecoder(resp.Body).Decode(&list); err != nil {
		t.Fatal(err)
	}
	return list
}

func nodes(list xds.ProxyList) string {
	var out []string
	for _, p := range list.Items {
		out = append(out, p.Node+"@"+p.Server)
	}
	return strings.Join(out, " ")
}

func TestProxiesOfEveryReplica(t *testing.T) {
	etcd := servertest.StartEtcd(t)
	a := servertest.Start(t, server.Config{EtcdEndpoints: []string{etcd.Endpoint()}})
	b := servertest.Start(t, server.Config{EtcdEndpoints: []string{etcd.Endpoint()}})
	connectProxy(t, a.XDSAddr, "proxy-on-a")
	connectProxy(t, b.XDSAddr, "proxy-on-b")

	want := "proxy-on-a@" + a.URL + " proxy-on-b@" + b.URL
	deadline := time.Now().Add(10 * time.Second)
	for {
		got := proxies(t, a.URL)
		if nodes(got) == want && len(got.Unreachable) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("proxies through A: %q (unreachable %v), want %q", nodes(got), got.Unreachable, want)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if got := nodes(proxies(t, b.URL)); got != want {
		t.Errorf("proxies through B: %q, want %q", got, want)
	}

	// A replica that stops leaves the list at once (it revokes its lease).
	if err := b.Stop(); err != nil {
		t.Fatal(err)
	}
	if got := proxies(t, a.URL); nodes(got) != "proxy-on-a@"+a.URL || len(got.Unreachable) != 0 {
		t.Errorf("after B stopped: %q unreachable %v", nodes(got), got.Unreachable)
	}

	// A replica that is registered but does not answer is reported.
	ctx := context.Background()
	if _, err := etcd.Client.Put(ctx, "/sluice/replicas/ghost", `{"id":"ghost","api":"http://127.0.0.1:1"}`); err != nil {
		t.Fatal(err)
	}
	got := proxies(t, a.URL)
	if nodes(got) != "proxy-on-a@"+a.URL || len(got.Unreachable) != 1 || !strings.Contains(got.Unreachable[0], "127.0.0.1:1") {
		t.Errorf("with an unreachable replica: %q unreachable %v", nodes(got), got.Unreachable)
	}
}
