package gatewaye2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sluice/sluice/internal/client"
	"github.com/sluice/sluice/internal/gateway"
	"github.com/sluice/sluice/internal/resource"
	"github.com/sluice/sluice/internal/server"
	"github.com/sluice/sluice/internal/servertest"
	"github.com/sluice/sluice/internal/xds"
)

const (
	namespace   = "default"
	gatewayName = "edge"
	servicePort = 8080
)

var (
	services    = client.ResourceOf(resource.ServiceKind)
	endpoints   = client.ResourceOf(resource.EndpointKind)
	gateways    = client.ResourceOf(resource.GatewayKind)
	httpRoutes  = client.ResourceOf(resource.HTTPRouteKind)
	grpcRoutes  = client.ResourceOf(resource.GRPCRouteKind)
	proxiesPath = "/apis/sluice.io/v1alpha1/proxies"
)

// echoed is what an echo upstream answers: the request it received.
type echoed struct {
	Upstream string              `json:"upstream"`
	Method   string              `json:"method"`
	Path     string              `json:"path"`
	Query    string              `json:"query"`
	Host     string              `json:"host"`
	Headers  map[string][]string `json:"headers"`
	Body     string              `json:"body"`
	Proto    string              `json:"proto"`
}

// echo is an upstream HTTP server that answers with what it received, as
// JSON, and remembers every request. ?sleep=D waits D first; ?status=N
// answers N; ?fail=K answers 503 to the first request with key K.
type echo struct {
	name string
	port int

	// status, when not 0, answers every request with it; delay delays
	// every answer.
	status int
	delay  time.Duration

	mu       sync.Mutex // guards received, failed, open, maxOpen
	received []echoed
	failed   map[string]bool
	// open is how many connections it holds open, maxOpen the most it
	// held at once (since resetMaxOpen).
	open, maxOpen int
}

// resetMaxOpen starts counting the most connections held at once anew.
func (e *echo) resetMaxOpen() {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.maxOpen = e.open
}

// mostOpen is the most connections it held at once.
func (e *echo) mostOpen() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.maxOpen
}

func (e *echo) connState(_ net.Conn, state http.ConnState) {
	e.mu.Lock()
	defer e.mu.Unlock()
	switch state {
	case http.StateNew:
		e.open++
		e.maxOpen = max(e.maxOpen, e.open)
	case http.StateClosed, http.StateHijacked:
		e.open--
	}
}

func startEcho(t *testing.T, name string) *echo {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	e := &echo{name: name, port: ln.Addr().(*net.TCPAddr).Port, failed: map[string]bool{}}
	srv := &http.Server{Handler: e, ConnState: e.connState}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return e
}

func (e *echo) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if isWebSocket(r) {
		serveWebSocket(w, r, e.name)
		return
	}
	if r.Header.Get("Upgrade") == "count" {
		serveCount(w, e.name)
		return
	}
	body, _ := io.ReadAll(r.Body)
	got := echoed{Upstream: e.name, Method: r.Method, Path: r.URL.Path, Query: r.URL.RawQuery, Host: r.Host,
		Headers: r.Header, Body: string(body), Proto: r.Proto}
	e.mu.Lock()
	e.received = append(e.received, got)
	failNow := false
	if k := r.URL.Query().Get("fail"); k != "" && !e.failed[k] {
		e.failed[k], failNow = true, true
	}
	e.mu.Unlock()
	q := r.URL.Query()
	time.Sleep(e.delay)
	if d, err := time.ParseDuration(q.Get("sleep")); err == nil {
		select {
		case <-time.After(d):
		case <-r.Context().Done():
			return
		}
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Upstream", e.name)
	status := http.StatusOK
	if n, err := strconv.Atoi(q.Get("status")); err == nil {
		status = n
	}
	if e.status != 0 {
		status = e.status
	}
	if failNow {
		status = http.StatusServiceUnavailable
	}
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(got)
}

// serveCount speaks "count", an upgrade that needs half-closes: it reads
// what the client sends until the client ends its side, then answers how
// many bytes came, and closes.
func serveCount(w http.ResponseWriter, name string) {
	conn, brw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		return
	}
	defer conn.Close()
	brw.WriteString("HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: count\r\n\r\n")
	brw.Flush()
	n, _ := io.Copy(io.Discard, brw)
	fmt.Fprintf(conn, "%s: %d bytes", name, n)
}

// requests returns the requests received so far whose path has prefix.
func (e *echo) requests(prefix string) []echoed {
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []echoed
	for _, r := range e.received {
		if strings.HasPrefix(r.Path, prefix) {
			out = append(out, r)
		}
	}
	return out
}

// env is a sluice server, upstreams, and a gateway serving the Gateway
// default/edge.
type env struct {
	t        *testing.T
	srv      *servertest.Server
	api      *client.Client
	port     int // the Gateway listener's port
	gw       *gateway.Gateway
	gwCancel context.CancelFunc
	gwDone   chan error
	upstream map[string]*echo
	http     *http.Client
	// gwOpts change the gateway's options (startEnv's opts).
	gwOpts []func(*gateway.Options)
}

// freePort returns a loopback port nothing listens on (for the Gateway's
// listener, which the gateway binds itself).
func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// startEnv starts the server with a short xDS debounce, upstreams echo-a,
// echo-b and echo-mirror with their Services and Endpoints, the Gateway
// with one HTTP listener on a free port, an HTTPRoute "base" (host
// base.example.com to echo-a), and the gateway, with its options changed by
// opts; it returns once the gateway is ready.
func startEnv(t *testing.T, opts ...func(*gateway.Options)) *env {
	t.Helper()
	srv := servertest.Start(t, server.Config{
		XDSDebounceWindow:   20 * time.Millisecond,
		XDSDebounceMaxDelay: 200 * time.Millisecond,
	})
	e := &env{t: t, srv: srv, api: srv.Client(t, ""), port: freePort(t), upstream: map[string]*echo{}, gwOpts: opts,
		http: &http.Client{
			Timeout:       10 * time.Second,
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
			Transport:     &http.Transport{MaxIdleConnsPerHost: 64},
		}}
	t.Cleanup(e.http.CloseIdleConnections)
	for _, name := range []string{"echo-a", "echo-b", "echo-mirror"} {
		e.addUpstream(name, "http")
	}
	e.apply(gateways, gatewayName, gatewayObj(e.port))
	e.apply(httpRoutes, "base", httpRoute("base", []string{"base.example.com"}, map[string]any{
		"matches":     []any{map[string]any{"path": map[string]any{"type": "PathPrefix", "value": "/base"}}},
		"backendRefs": []any{backend("echo-a", 1)},
	}))
	e.startGateway()
	// Ready is the first complete config, which may come from a snapshot
	// taken before the base route was translated.
	e.waitFor("the base route served", 10*time.Second, func() (bool, string) {
		r, err := e.do("GET", "/base", "base.example.com", nil, "")
		return err == nil && r.echo != nil, fmt.Sprint(r.status, err)
	})
	return e
}

// addUpstream starts an echo upstream, with a Service and an Endpoint of
// the same name.
func (e *env) addUpstream(name, protocol string) *echo {
	e.t.Helper()
	u := startEcho(e.t, name)
	e.upstream[name] = u
	e.apply(services, name, serviceObj(name, protocol))
	e.apply(endpoints, name, endpointObj(name, u.port))
	return u
}

func gatewayObj(ports ...int) map[string]any {
	var listeners []any
	for i, p := range ports {
		listeners = append(listeners, map[string]any{"name": fmt.Sprintf("http-%d", i), "port": p, "protocol": "HTTP"})
	}
	return map[string]any{
		"apiVersion": "gateway.networking.k8s.io/v1",
		"kind":       "Gateway",
		"metadata":   map[string]any{"name": gatewayName, "namespace": namespace},
		"spec":       map[string]any{"gatewayClassName": "sluice", "listeners": listeners},
	}
}

func serviceObj(name, protocol string) map[string]any {
	return map[string]any{
		"apiVersion": "sluice.io/v1alpha1",
		"kind":       "Service",
		"metadata":   map[string]any{"name": name, "namespace": namespace},
		"spec": map[string]any{
			"selector": map[string]string{"app": name},
			"ports":    []any{map[string]any{"name": "http", "port": servicePort, "protocol": protocol}},
		},
	}
}

func endpointObj(name string, port int) map[string]any {
	return map[string]any{
		"apiVersion": "sluice.io/v1alpha1",
		"kind":       "Endpoint",
		"metadata":   map[string]any{"name": name, "namespace": namespace, "labels": map[string]string{"app": name}},
		"spec": map[string]any{
			"address": "127.0.0.1",
			"ports":   []any{map[string]any{"name": "http", "port": port}},
		},
	}
}

// httpRoute is an HTTPRoute on the Gateway's listeners.
func httpRoute(name string, hostnames []string, rules ...map[string]any) map[string]any {
	spec := map[string]any{
		"parentRefs": []any{map[string]any{"name": gatewayName}},
		"rules":      rules,
	}
	if len(hostnames) > 0 {
		spec["hostnames"] = hostnames
	}
	return map[string]any{
		"apiVersion": "gateway.networking.k8s.io/v1",
		"kind":       "HTTPRoute",
		"metadata":   map[string]any{"name": name, "namespace": namespace},
		"spec":       spec,
	}
}

func backend(name string, weight int) map[string]any {
	return map[string]any{"name": name, "port": servicePort, "weight": weight}
}

// tag is a RequestHeaderModifier setting x-rule, so the upstream tells
// which rule a request matched.
func tag(rule string) map[string]any {
	return map[string]any{"type": "RequestHeaderModifier", "requestHeaderModifier": map[string]any{
		"set": []any{map[string]any{"name": "x-rule", "value": rule}},
	}}
}

func (e *env) ctx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), 10*time.Second)
}

func (e *env) apply(r client.Resource, name string, obj any) {
	e.t.Helper()
	ctx, cancel := e.ctx()
	defer cancel()
	if _, err := e.api.Apply(ctx, r, namespace, name, obj, nil, false); err != nil {
		e.t.Fatalf("apply %s %s: %v", r.Plural, name, err)
	}
}

// startGateway runs a gateway in the test process until the test ends (or
// stopGateway), and waits until it is ready.
func (e *env) startGateway() {
	e.t.Helper()
	opts := gateway.Options{
		XDSServer:    e.srv.XDSAddr,
		Gateway:      namespace + "/" + gatewayName,
		NodeID:       "gw-" + strings.ReplaceAll(e.t.Name(), "/", "-"),
		BindAddress:  "127.0.0.1",
		AdminAddr:    "127.0.0.1:0",
		DrainTimeout: 2 * time.Second,
		Logger:       servertest.Logger(),
	}
	for _, o := range e.gwOpts {
		o(&opts)
	}
	g, err := gateway.New(opts)
	if err != nil {
		e.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	e.gw, e.gwCancel, e.gwDone = g, cancel, make(chan error, 1)
	go func() { e.gwDone <- g.Run(ctx) }()
	e.t.Cleanup(e.stopGateway)
	select {
	case <-g.Ready():
	case err := <-e.gwDone:
		e.t.Fatalf("gateway stopped before it was ready: %v", err)
	case <-time.After(20 * time.Second):
		e.t.Fatalf("gateway not ready after 20s: %s", e.adminGet("/config_dump"))
	}
}

func (e *env) stopGateway() {
	if e.gwCancel == nil {
		return
	}
	e.gwCancel()
	e.gwCancel = nil
	if err := <-e.gwDone; err != nil {
		e.t.Errorf("gateway: %v", err)
	}
}

func (e *env) adminGet(path string) string {
	resp, err := http.Get("http://" + e.gw.AdminAddr() + path)
	if err != nil {
		return err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// url is the gateway's URL for path.
func (e *env) url(path string) string {
	return fmt.Sprintf("http://127.0.0.1:%d%s", e.port, path)
}

// response is a gateway response, with the upstream's echo when it is one.
type response struct {
	proto  string // the protocol the gateway answered with
	status int
	header http.Header
	body   string
	echo   *echoed
}

// do sends a request through the gateway.
func (e *env) do(method, path, host string, header map[string]string, body string) (response, error) {
	req, err := http.NewRequest(method, e.url(path), strings.NewReader(body))
	if err != nil {
		return response{}, err
	}
	if host != "" {
		req.Host = host
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := e.http.Do(req)
	if err != nil {
		return response{}, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return response{}, err
	}
	out := response{proto: resp.Proto, status: resp.StatusCode, header: resp.Header, body: string(b)}
	if strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
		var ec echoed
		if json.Unmarshal(b, &ec) == nil {
			out.echo = &ec
		}
	}
	return out, nil
}

// waitFor polls cond until it holds or timeout passes.
func (e *env) waitFor(what string, timeout time.Duration, cond func() (bool, string)) {
	e.t.Helper()
	deadline := time.Now().Add(timeout)
	last := ""
	for {
		ok, state := cond()
		if ok {
			return
		}
		last = state
		if time.Now().After(deadline) {
			e.t.Fatalf("%s: not after %v; last: %s", what, timeout, last)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// waitRoute waits until a GET of path through the gateway reaches an
// upstream with the x-rule header want ("" for any upstream answer).
func (e *env) waitRoute(path, want string) {
	e.t.Helper()
	e.waitFor("GET "+path+" routed to rule "+want, 10*time.Second, func() (bool, string) {
		r, err := e.do("GET", path, "", nil, "")
		if err != nil {
			return false, err.Error()
		}
		if r.echo == nil {
			return false, fmt.Sprintf("status %d: %s", r.status, r.body)
		}
		got := ""
		if v := r.echo.Headers["X-Rule"]; len(v) > 0 {
			got = v[0]
		}
		return want == "" || got == want, fmt.Sprintf("rule %q", got)
	})
}

// proxy returns what the server knows of the gateway's xDS stream.
func (e *env) proxy() (xds.ProxyStatus, error) {
	ctx, cancel := e.ctx()
	defer cancel()
	var list xds.ProxyList
	if _, err := e.api.Do(ctx, http.MethodGet, proxiesPath, nil, nil, "", &list); err != nil {
		return xds.ProxyStatus{}, err
	}
	for _, p := range list.Items {
		if p.Node == e.gw.NodeID() {
			return p, nil
		}
	}
	return xds.ProxyStatus{}, errors.New("the gateway is not connected")
}
