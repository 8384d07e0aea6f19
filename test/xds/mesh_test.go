package xdse2e

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sluice/sluice/internal/client"
	"github.com/sluice/sluice/internal/grpctest"
	"github.com/sluice/sluice/internal/resource"
	"github.com/sluice/sluice/internal/server"
	"github.com/sluice/sluice/internal/servertest"
	"github.com/sluice/sluice/internal/xds"
)

const (
	namespace = "default"
	// target is what the clients dial: the greeter Service's API listener.
	target = "xds:///greeter.default"
	// servicePort is the port of the greeter Services (not the backends').
	servicePort = 50051
)

// The backends: one Endpoint each, named greeter-<id>, answering with
// ServerId <id>.
var backendIDs = []struct{ id, version, zone string }{
	{"v1-a", "v1", "zone-a"},
	{"v1-b", "v1", "zone-b"},
	{"v2-a", "v2", "zone-a"},
}

// versionOf is the version of a backend by its ServerId ("v1-a" → "v1").
func versionOf(serverID string) string {
	v, _, _ := strings.Cut(serverID, "-")
	return v
}

func endpointName(serverID string) string { return "greeter-" + serverID }

var (
	services       = client.ResourceOf(resource.ServiceKind)
	endpoints      = client.ResourceOf(resource.EndpointKind)
	grpcRoutes     = client.ResourceOf(resource.GRPCRouteKind)
	proxiesPath    = "/apis/sluice.io/v1alpha1/proxies"
	requestTimeout = 10 * time.Second
)

// mesh is a sluice server holding the greeter mesh, with its backends
// running.
type mesh struct {
	t   *testing.T
	srv *servertest.Server
	api *client.Client
}

// startMesh starts a server with a short xDS debounce, the three backends,
// and applies the Services greeter, greeter-v1 and greeter-v2 and an
// Endpoint per backend.
func startMesh(t *testing.T) *mesh {
	t.Helper()
	srv := servertest.Start(t, server.Config{
		XDSDebounceWindow:   20 * time.Millisecond,
		XDSDebounceMaxDelay: 200 * time.Millisecond,
	})
	m := &mesh{t: t, srv: srv, api: srv.Client(t, "")}
	m.apply(services, "greeter", service("greeter", map[string]string{"app": "greeter"}))
	for _, v := range []string{"v1", "v2"} {
		m.apply(services, "greeter-"+v, service("greeter-"+v, map[string]string{"app": "greeter", "version": v}))
	}
	for _, b := range backendIDs {
		m.addBackend(b.id, b.version, b.zone)
	}
	return m
}

// addBackend starts a backend answering as id and applies its Endpoint.
func (m *mesh) addBackend(id, version, zone string) {
	m.t.Helper()
	b := grpctest.Start(m.t, id)
	m.apply(endpoints, endpointName(id), endpoint(endpointName(id), version, zone, b.Port))
}

func (m *mesh) ctx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), requestTimeout)
}

// apply creates or updates an object through the API; it returns once the
// server acknowledged the write.
func (m *mesh) apply(r client.Resource, name string, obj any) {
	m.t.Helper()
	ctx, cancel := m.ctx()
	defer cancel()
	if _, err := m.api.Apply(ctx, r, namespace, name, obj, nil, false); err != nil {
		m.t.Fatalf("apply %s %s: %v", r.Plural, name, err)
	}
}

func (m *mesh) delete(r client.Resource, name string) {
	m.t.Helper()
	ctx, cancel := m.ctx()
	defer cancel()
	if err := m.api.Delete(ctx, r, namespace, name, nil, nil, false); err != nil {
		m.t.Fatalf("delete %s %s: %v", r.Plural, name, err)
	}
}

// setHealth writes an Endpoint's status.health through the status
// subresource, as a health checker would.
func (m *mesh) setHealth(name string, h resource.Health) {
	m.t.Helper()
	ctx, cancel := m.ctx()
	defer cancel()
	var ep resource.Endpoint
	if err := m.api.Get(ctx, endpoints, namespace, name, &ep); err != nil {
		m.t.Fatalf("get endpoint %s: %v", name, err)
	}
	ep.Status.Health = h
	if err := m.api.UpdateStatus(ctx, endpoints, namespace, name, &ep, nil); err != nil {
		m.t.Fatalf("set endpoint %s %s: %v", name, h, err)
	}
}

// split routes greeter's RPCs to greeter-v1 and greeter-v2 by weight.
func (m *mesh) split(v1, v2 int, extraRules ...map[string]any) {
	m.t.Helper()
	rules := []any{map[string]any{"backendRefs": []any{
		backendRef("greeter-v1", v1),
		backendRef("greeter-v2", v2),
	}}}
	for _, r := range extraRules {
		rules = append(rules, r)
	}
	m.apply(grpcRoutes, "greeter-split", map[string]any{
		"apiVersion": "gateway.networking.k8s.io/v1",
		"kind":       "GRPCRoute",
		"metadata":   map[string]any{"name": "greeter-split", "namespace": namespace},
		"spec": map[string]any{
			"parentRefs": []any{map[string]any{"group": "", "kind": "Service", "name": "greeter", "port": servicePort}},
			"rules":      rules,
		},
	})
}

func backendRef(service string, weight int) map[string]any {
	return map[string]any{"name": service, "port": servicePort, "weight": weight}
}

func service(name string, selector map[string]string) map[string]any {
	return map[string]any{
		"apiVersion": "sluice.io/v1alpha1",
		"kind":       "Service",
		"metadata":   map[string]any{"name": name, "namespace": namespace},
		"spec": map[string]any{
			"selector": selector,
			"ports":    []any{map[string]any{"name": "grpc", "port": servicePort, "protocol": "grpc"}},
		},
	}
}

func endpoint(name, version, zone string, port int) map[string]any {
	return map[string]any{
		"apiVersion": "sluice.io/v1alpha1",
		"kind":       "Endpoint",
		"metadata": map[string]any{"name": name, "namespace": namespace,
			"labels": map[string]string{"app": "greeter", "version": version, "zone": zone}},
		"spec": map[string]any{
			"address": "127.0.0.1",
			"ports":   []any{map[string]any{"name": "grpc", "port": port}},
		},
	}
}

// proxies returns what the server knows of its xDS clients.
func (m *mesh) proxies() []xds.ProxyStatus {
	m.t.Helper()
	ctx, cancel := m.ctx()
	defer cancel()
	var list xds.ProxyList
	if _, err := m.api.Do(ctx, http.MethodGet, proxiesPath, nil, nil, "", &list); err != nil {
		m.t.Fatalf("GET %s: %v", proxiesPath, err)
	}
	return list.Items
}

// proxy returns the status of node, and false if it is not connected.
func (m *mesh) proxy(node string) (xds.ProxyStatus, bool) {
	m.t.Helper()
	for _, p := range m.proxies() {
		if p.Node == node {
			return p, true
		}
	}
	return xds.ProxyStatus{}, false
}

// meshTypes are the xDS types a proxyless client asks for.
var meshTypes = []string{"LDS", "RDS", "CDS", "EDS"}

// allSynced says whether a proxy ACKed the last version sent of every type.
func allSynced(p xds.ProxyStatus) bool {
	for _, typ := range meshTypes {
		if ts := p.Types[typ]; ts == nil || ts.State != xds.Synced {
			return false
		}
	}
	return true
}

// describe sums up a proxy's status for failure messages.
func describe(p xds.ProxyStatus, ok bool) string {
	if !ok {
		return "not connected"
	}
	var parts []string
	for _, typ := range meshTypes {
		ts := p.Types[typ]
		if ts == nil {
			parts = append(parts, typ+"=-")
			continue
		}
		s := fmt.Sprintf("%s=%s(sent %s, acked %s, %d names)", typ, ts.State, ts.Sent, ts.Acked, ts.Resources)
		if ts.LastNACK != nil {
			s += fmt.Sprintf(" last NACK of %s: %q", ts.LastNACK.Version, ts.LastNACK.Error)
		}
		parts = append(parts, s)
	}
	return strings.Join(parts, "; ")
}

// waitProxy polls the server's view of node until cond holds, and returns it.
func (m *mesh) waitProxy(node, what string, timeout time.Duration, cond func(xds.ProxyStatus) bool) xds.ProxyStatus {
	m.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		p, ok := m.proxy(node)
		if ok && cond(p) {
			return p
		}
		if time.Now().After(deadline) {
			m.t.Fatalf("node %s: not %s within %v; the server shows: %s", node, what, timeout, describe(p, ok))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// metric reads one sample of the server's /metrics, 0 when absent. name
// includes the labels as exposed, e.g. sluice_xds_pushes_total{type="RDS"}.
func (m *mesh) metric(name string) float64 {
	m.t.Helper()
	resp, err := http.Get(m.srv.URL + "/metrics")
	if err != nil {
		m.t.Fatalf("GET /metrics: %v", err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), name+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				m.t.Fatalf("metric %s: %v", name, err)
			}
			return f
		}
	}
	if err := sc.Err(); err != nil {
		m.t.Fatalf("GET /metrics: %v", err)
	}
	return 0
}
