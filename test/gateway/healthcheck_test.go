package gatewaye2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sluice/sluice/internal/gateway"
)

// healthPort is an upstream's health endpoint on a port of its own (its
// Endpoint's port "health"): /healthz answers the status it is set to.
type healthPort struct {
	port   int
	status atomic.Int32

	mu        sync.Mutex // guards checks, userAgent, host
	checks    int
	userAgent string
	host      string
}

func startHealthPort(t *testing.T) *healthPort {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	h := &healthPort{port: ln.Addr().(*net.TCPAddr).Port}
	h.status.Store(http.StatusOK)
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.mu.Lock()
		h.checks++
		h.userAgent, h.host = r.UserAgent(), r.Host
		h.mu.Unlock()
		if r.URL.Path != "/healthz" {
			http.NotFound(w, r)
			return
		}
		w.WriteHeader(int(h.status.Load()))
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return h
}

// seen is how many checks it got, and the User-Agent and Host of the last.
func (h *healthPort) seen() (int, string, string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.checks, h.userAgent, h.host
}

// TestHealthCheck: a BackendPolicy's HTTP healthCheck, on the Endpoints'
// port named "health", is run by the gateway. When one upstream's health
// page answers 503, requests stop reaching it within a few seconds and no
// request fails meanwhile (its traffic port still works: only the check
// takes it out); when the page answers 200 again, it gets traffic again.
func TestHealthCheck(t *testing.T) {
	e := startEnv(t)
	a, b := startEcho(t, "hc-a"), startEcho(t, "hc-b")
	ha, hb := startHealthPort(t), startHealthPort(t)
	e.apply(services, "hc", serviceObj("hc", "http"))
	for _, u := range []struct {
		up     *echo
		health *healthPort
	}{{a, ha}, {b, hb}} {
		ep := endpointObj(u.up.name, u.up.port)
		ep["metadata"].(map[string]any)["labels"] = map[string]string{"app": "hc"}
		ep["spec"].(map[string]any)["ports"] = []any{
			map[string]any{"name": "http", "port": u.up.port},
			map[string]any{"name": "health", "port": u.health.port},
		}
		e.apply(endpoints, u.up.name, ep)
	}
	e.apply(backendPolicies, "hc", backendPolicy("hc", "healthCheck", map[string]any{
		"http":               map[string]any{"path": "/healthz"},
		"port":               "health",
		"interval":           "200ms",
		"timeout":            "150ms",
		"healthyThreshold":   2,
		"unhealthyThreshold": 2,
	}))
	e.routePrefix("hc", "/hc", "hc")
	e.waitCluster("hc.default", "the health check and both health ports in the gateway's config", func(c *gateway.Cluster) bool {
		if c.HealthCheck == nil || len(c.Endpoints) != 2 {
			return false
		}
		for _, ep := range c.Endpoints {
			if ep.HealthPort != uint32(ha.port) && ep.HealthPort != uint32(hb.port) {
				return false
			}
		}
		return true
	})

	t.Run("config_dump", func(t *testing.T) {
		var dump gateway.ConfigDump
		if err := json.Unmarshal([]byte(e.adminGet("/config_dump")), &dump); err != nil {
			t.Fatal(err)
		}
		cds := compact(t, dump.Resources["CDS"]["hc.default"])
		for _, want := range []string{`"healthChecks"`, `"path":"/healthz"`, `"interval":"0.200s"`, `"unhealthyThreshold":2`} {
			if !strings.Contains(cds, want) {
				t.Errorf("/config_dump CDS hc.default has no %s:\n%s", want, cds)
			}
		}
		eds := compact(t, dump.Resources["EDS"]["hc.default"])
		if want := fmt.Sprintf(`"healthCheckConfig":{"portValue":%d}`, ha.port); !strings.Contains(eds, want) {
			t.Errorf("/config_dump EDS hc.default has no %s:\n%s", want, eds)
		}
	})

	e.waitFor("both health ports checked", 5*time.Second, func() (bool, string) {
		na, _, _ := ha.seen()
		nb, _, _ := hb.seen()
		return na > 0 && nb > 0, fmt.Sprintf("%d and %d checks", na, nb)
	})
	if _, ua, host := ha.seen(); ua != gateway.HealthCheckUserAgent || host != "hc.default" {
		t.Errorf("health check User-Agent %q, Host %q; want %q, %q", ua, host, gateway.HealthCheckUserAgent, "hc.default")
	}
	e.waitFor("both upstreams in traffic", 5*time.Second, func() (bool, string) {
		r, err := e.do("GET", "/hc", "", nil, "")
		if err != nil {
			return false, err.Error()
		}
		return len(a.requests("/hc")) > 0 && len(b.requests("/hc")) > 0, fmt.Sprint(r.status)
	})

	l := e.startLoad("/hc", 4)
	ha.status.Store(http.StatusServiceUnavailable)
	e.waitFor("hc-a out of traffic", 5*time.Second, func() (bool, string) {
		stats := e.adminGet("/stats")
		return strings.Contains(stats, `sluice_gateway_unhealthy_endpoints{cluster="hc.default"} 1`), "stats:\n" + grepLines(stats, "health")
	})
	// The 4 load workers' requests in flight when it happened may still
	// reach hc-a; they are long done 40 requests later.
	e.waitRequests(l, 40)
	before := len(a.requests("/hc"))
	e.waitRequests(l, 300)
	if n := len(a.requests("/hc")) - before; n != 0 {
		t.Errorf("hc-a got %d requests after the gateway marked it unhealthy, want 0", n)
	}
	stats := e.adminGet("/stats")
	for _, want := range []string{`sluice_gateway_health_checks_total{cluster="hc.default",result="failure"}`, `sluice_gateway_health_checks_total{cluster="hc.default",result="success"}`} {
		if !strings.Contains(stats, want) {
			t.Errorf("/stats has no %s:\n%s", want, grepLines(stats, "health"))
		}
	}

	ha.status.Store(http.StatusOK)
	before = len(a.requests("/hc"))
	e.waitFor("hc-a back in traffic", 5*time.Second, func() (bool, string) {
		return len(a.requests("/hc")) > before, fmt.Sprintf("%d requests", len(a.requests("/hc"))-before)
	})
	if stats := e.adminGet("/stats"); !strings.Contains(stats, `sluice_gateway_unhealthy_endpoints{cluster="hc.default"} 0`) {
		t.Errorf("hc-a healthy again, but /stats says:\n%s", grepLines(stats, "unhealthy"))
	}
	e.waitRequests(l, 100)
	l.finish(t, "requests while hc-a left and came back")
	if n := len(b.requests("/hc")); n == 0 {
		t.Error("hc-b got no requests")
	}
}

// compact is a JSON document without its white space.
func compact(t *testing.T, js json.RawMessage) string {
	t.Helper()
	var b bytes.Buffer
	if err := json.Compact(&b, js); err != nil {
		t.Fatalf("%v: %s", err, js)
	}
	return b.String()
}

// grepLines are the lines of s that contain sub.
func grepLines(s, sub string) string {
	var out []string
	for _, line := range strings.Split(s, "\n") {
		if strings.Contains(line, sub) {
			out = append(out, line)
		}
	}
	return strings.Join(out, "\n")
}
