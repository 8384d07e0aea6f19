package gateway

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// benchGateway is a Gateway holding a config that forwards every request
// on port 80 to one upstream, without xDS.
func benchGateway(tb testing.TB, upstream string) *Gateway {
	tb.Helper()
	g, err := New(Options{XDSServer: "unused:1", Gateway: "default/bench"})
	if err != nil {
		tb.Fatal(err)
	}
	route := &Route{Name: "all", Match: Match{PathKind: PathPrefix, Path: "/", CaseSensitive: true},
		Forward: &Forward{Clusters: []WeightedCluster{{Name: "up", Weight: 1}}, TotalWeight: 1, NotFoundStatus: 503}}
	c := &Cluster{Name: "up", Endpoints: []Endpoint{{Addr: strings.TrimPrefix(upstream, "http://"), Weight: 1}}, Loaded: true}
	c.balancer = newBalancer(c.Endpoints, RoundRobin)
	g.cfg.Store(&Config{
		Listeners: map[int]*Listener{80: {Name: "l", Port: 80, Routes: &RouteTable{VirtualHosts: []*VirtualHost{{Name: "*", Domains: []string{"*"}, Routes: []*Route{route}}}}}},
		Clusters:  map[string]*Cluster{"up": c},
		Complete:  true,
	})
	tb.Cleanup(g.transports.closeAll)
	return g
}

func BenchmarkForward(b *testing.B) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "hello, world\n") }))
	defer up.Close()
	h := benchGateway(b, up.URL).handler(80)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			w := httptest.NewRecorder()
			h.ServeHTTP(w, httptest.NewRequest("GET", "http://example.com/x", nil))
			if w.Code != 200 {
				b.Fatalf("status %d: %s", w.Code, w.Body)
			}
		}
	})
}
