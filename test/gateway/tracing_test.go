package gatewaye2e

import (
	"context"
	"crypto/tls"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	collectortrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/proto"

	"github.com/sluice/sluice/internal/certtest"
	"github.com/sluice/sluice/internal/gateway"
)

// receiver is an OTLP trace receiver on loopback, remembering every span
// it is sent and the headers (gRPC metadata) of the last export: the
// collector's gRPC TraceService (startReceiver) or its HTTP endpoint
// (startHTTPReceiver).
type receiver struct {
	collectortrace.UnimplementedTraceServiceServer
	addr string

	mu       sync.Mutex // guards spans, resource, headers
	spans    []*tracepb.Span
	resource []*commonpb.KeyValue
	headers  metadata.MD
}

// startReceiver starts a receiver, over TLS with the options given.
func startReceiver(t *testing.T, opts ...grpc.ServerOption) *receiver {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r := &receiver{addr: ln.Addr().String()}
	srv := grpc.NewServer(opts...)
	collectortrace.RegisterTraceServiceServer(srv, r)
	go srv.Serve(ln)
	t.Cleanup(srv.Stop)
	return r
}

// startHTTPReceiver starts a receiver of OTLP over HTTP: protobuf bodies
// POSTed to /v1/traces.
func startHTTPReceiver(t *testing.T) *receiver {
	t.Helper()
	r := &receiver{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if req.Method != "POST" || req.URL.Path != "/v1/traces" || req.Header.Get("Content-Type") != "application/x-protobuf" {
			http.Error(w, "want a protobuf POST to /v1/traces", http.StatusBadRequest)
			return
		}
		body, err := io.ReadAll(req.Body)
		var in collectortrace.ExportTraceServiceRequest
		if err == nil {
			err = proto.Unmarshal(body, &in)
		}
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		md := metadata.MD{}
		for k, vs := range req.Header {
			md.Append(k, vs...)
		}
		r.record(&in, md)
		out, _ := proto.Marshal(&collectortrace.ExportTraceServiceResponse{})
		w.Header().Set("Content-Type", "application/x-protobuf")
		w.Write(out)
	}))
	t.Cleanup(srv.Close)
	r.addr = srv.Listener.Addr().String()
	return r
}

func (r *receiver) Export(ctx context.Context, req *collectortrace.ExportTraceServiceRequest) (*collectortrace.ExportTraceServiceResponse, error) {
	md, _ := metadata.FromIncomingContext(ctx)
	r.record(req, md)
	return &collectortrace.ExportTraceServiceResponse{}, nil
}

func (r *receiver) record(req *collectortrace.ExportTraceServiceRequest, md metadata.MD) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.headers = md
	for _, rs := range req.GetResourceSpans() {
		r.resource = rs.GetResource().GetAttributes()
		for _, ss := range rs.GetScopeSpans() {
			r.spans = append(r.spans, ss.GetSpans()...)
		}
	}
}

// header is a header of the last export ("" when absent).
func (r *receiver) header(name string) string {
	r.mu.Lock()
	defer r.mu.Unlock()
	if v := r.headers.Get(name); len(v) > 0 {
		return v[0]
	}
	return ""
}

// trace returns the spans received of the trace id (hex).
func (r *receiver) trace(id string) []*tracepb.Span {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []*tracepb.Span
	for _, s := range r.spans {
		if hex.EncodeToString(s.GetTraceId()) == id {
			out = append(out, s)
		}
	}
	return out
}

// attr is a span attribute as a string ("" when absent).
func attr(kvs []*commonpb.KeyValue, key string) string {
	for _, kv := range kvs {
		if kv.GetKey() != key {
			continue
		}
		switch v := kv.GetValue().GetValue().(type) {
		case *commonpb.AnyValue_StringValue:
			return v.StringValue
		case *commonpb.AnyValue_IntValue:
			return fmt.Sprint(v.IntValue)
		case *commonpb.AnyValue_BoolValue:
			return fmt.Sprint(v.BoolValue)
		}
	}
	return ""
}

func spanID(s *tracepb.Span) string       { return hex.EncodeToString(s.GetSpanId()) }
func parentSpanID(s *tracepb.Span) string { return hex.EncodeToString(s.GetParentSpanId()) }

// traceparent splits a W3C traceparent into its trace id and parent id.
func traceparent(t *testing.T, v string) (traceID, parentID string) {
	t.Helper()
	p := strings.Split(v, "-")
	if len(p) != 4 || len(p[1]) != 32 || len(p[2]) != 16 {
		t.Fatalf("traceparent %q: want 00-<32 hex>-<16 hex>-<flags>", v)
	}
	return p[1], p[2]
}

func header(ec echoed, name string) string {
	if v := ec.Headers[name]; len(v) > 0 {
		return v[0]
	}
	return ""
}

const (
	callerTrace  = "4bf92f3577b34da6a3ce929d0e0e4736"
	callerParent = "00f067aa0ba902b7"
	callerTP     = "00-" + callerTrace + "-" + callerParent + "-01"
	callerTS     = "vendor=opaque"
)

// TestTracing: with --otlp-endpoint, the gateway exports a server span per
// request, named after its route and continuing the caller's trace, and a
// client span per upstream attempt and mirror, its children; each upstream
// sees a traceparent whose parent is its attempt's span.
func TestTracing(t *testing.T) {
	recv := startReceiver(t)
	e := startEnv(t, func(o *gateway.Options) {
		o.OTLPEndpoint, o.TraceSampleRatio = recv.addr, 1
	})
	e.apply(httpRoutes, "traced", httpRoute("traced", nil, map[string]any{
		"matches": []any{map[string]any{"path": map[string]any{"type": "PathPrefix", "value": "/traced"}}},
		"filters": []any{map[string]any{"type": "RequestMirror", "requestMirror": map[string]any{
			"backendRef": map[string]any{"name": "echo-mirror", "port": servicePort},
		}}},
		"retry":       map[string]any{"codes": []any{503}, "attempts": 2, "backoff": "10ms"},
		"backendRefs": []any{backend("echo-a", 1)},
	}))
	e.waitRoute("/traced/ready", "")
	routeName := ""
	for _, vh := range e.gw.Config().Listeners[e.port].Routes.VirtualHosts {
		for _, r := range vh.Routes {
			if r.Match.Path == "/traced" {
				routeName = r.Name
			}
		}
	}
	if routeName == "" {
		t.Fatal("no route matching /traced in the gateway's config")
	}

	// With the caller's traceparent; the first attempt gets a 503 and is retried.
	r, err := e.do("GET", "/traced/a?fail=t1", "", map[string]string{"traceparent": callerTP, "tracestate": callerTS}, "")
	if err != nil || r.status != 200 {
		t.Fatalf("GET /traced/a: status %d, err %v; want 200", r.status, err)
	}
	// Without one: the gateway starts the trace.
	r, err = e.do("GET", "/traced/b", "", nil, "")
	if err != nil || r.status != 200 {
		t.Fatalf("GET /traced/b: status %d, err %v; want 200", r.status, err)
	}
	mirrored := func(path string) []echoed { return e.upstream["echo-mirror"].requests(path) }
	e.waitFor("the mirrors of /traced/a and /traced/b", 5*time.Second, func() (bool, string) {
		return len(mirrored("/traced/a")) == 1 && len(mirrored("/traced/b")) == 1,
			fmt.Sprintf("%d and %d", len(mirrored("/traced/a")), len(mirrored("/traced/b")))
	})
	// Stopping the gateway flushes the spans.
	e.stopGateway()

	// check checks the spans of one request's trace and returns its server span.
	check := func(t *testing.T, traceID, path string, attempts int) *tracepb.Span {
		t.Helper()
		spans := recv.trace(traceID)
		var server *tracepb.Span
		var clients, mirrors []*tracepb.Span
		for _, s := range spans {
			switch {
			case s.GetKind() == tracepb.Span_SPAN_KIND_SERVER && attr(s.GetAttributes(), "url.path") == path:
				server = s
			case s.GetKind() == tracepb.Span_SPAN_KIND_CLIENT && attr(s.GetAttributes(), "sluice.mirror") == "true":
				mirrors = append(mirrors, s)
			case s.GetKind() == tracepb.Span_SPAN_KIND_CLIENT:
				clients = append(clients, s)
			}
		}
		if server == nil {
			t.Fatalf("no server span for %s in trace %s; got %d spans", path, traceID, len(spans))
		}
		if server.GetName() != routeName {
			t.Errorf("server span name %q; want the route's, %q", server.GetName(), routeName)
		}
		for key, want := range map[string]string{
			"http.request.method": "GET", "url.path": path, "http.response.status_code": "200",
			"server.address": "127.0.0.1", "sluice.route": routeName,
		} {
			if got := attr(server.GetAttributes(), key); got != want {
				t.Errorf("server span %s = %q; want %q", key, got, want)
			}
		}
		if c := attr(server.GetAttributes(), "sluice.cluster"); !strings.Contains(c, "echo-a") {
			t.Errorf("server span sluice.cluster = %q; want echo-a's cluster", c)
		}
		upAddr := fmt.Sprintf("127.0.0.1:%d", e.upstream["echo-a"].port)
		if got := attr(server.GetAttributes(), "sluice.upstream"); got != upAddr {
			t.Errorf("server span sluice.upstream = %q; want %q", got, upAddr)
		}

		// The upstream's requests, in order, carry the attempts' spans as parents.
		seen := e.upstream["echo-a"].requests(path)
		if len(clients) != attempts || len(seen) != attempts {
			t.Fatalf("%d client spans, %d upstream requests; want %d of each", len(clients), len(seen), attempts)
		}
		byID := map[string]*tracepb.Span{}
		for _, c := range clients {
			byID[spanID(c)] = c
			if parentSpanID(c) != spanID(server) {
				t.Errorf("client span %s has parent %s; want the server span %s", c.GetName(), parentSpanID(c), spanID(server))
			}
			if got := attr(c.GetAttributes(), "sluice.upstream"); got != upAddr {
				t.Errorf("client span sluice.upstream = %q; want %q", got, upAddr)
			}
		}
		for i, req := range seen {
			tid, pid := traceparent(t, header(req, "Traceparent"))
			if tid != traceID {
				t.Errorf("attempt %d: upstream saw trace id %s; want %s", i, tid, traceID)
			}
			c := byID[pid]
			if c == nil {
				t.Fatalf("attempt %d: upstream saw parent %s, which is no client span of the gateway", i, pid)
			}
			wantStatus, wantResend := "200", ""
			if i < attempts-1 {
				wantStatus = "503"
			}
			if i > 0 {
				wantResend = fmt.Sprint(i)
			}
			if got := attr(c.GetAttributes(), "http.response.status_code"); got != wantStatus {
				t.Errorf("attempt %d: client span status %q; want %q", i, got, wantStatus)
			}
			if got := attr(c.GetAttributes(), "http.request.resend_count"); got != wantResend {
				t.Errorf("attempt %d: client span resend_count %q; want %q", i, got, wantResend)
			}
		}

		if len(mirrors) != 1 {
			t.Fatalf("%d mirror spans; want 1", len(mirrors))
		}
		if parentSpanID(mirrors[0]) != spanID(server) {
			t.Errorf("mirror span has parent %s; want the server span %s", parentSpanID(mirrors[0]), spanID(server))
		}
		mtid, mpid := traceparent(t, header(mirrored(path)[0], "Traceparent"))
		if mtid != traceID || mpid != spanID(mirrors[0]) {
			t.Errorf("mirror upstream saw trace %s parent %s; want %s %s", mtid, mpid, traceID, spanID(mirrors[0]))
		}
		return server
	}

	t.Run("continues the caller's trace", func(t *testing.T) {
		server := check(t, callerTrace, "/traced/a", 2)
		if got := parentSpanID(server); got != callerParent {
			t.Errorf("server span parent %s; want the caller's span %s", got, callerParent)
		}
		if got := server.GetTraceState(); got != callerTS {
			t.Errorf("server span tracestate %q; want %q", got, callerTS)
		}
		if got := header(e.upstream["echo-a"].requests("/traced/a")[1], "Tracestate"); got != callerTS {
			t.Errorf("upstream saw tracestate %q; want %q", got, callerTS)
		}
	})
	t.Run("starts a trace", func(t *testing.T) {
		seen := e.upstream["echo-a"].requests("/traced/b")
		if len(seen) != 1 {
			t.Fatalf("%d upstream requests for /traced/b; want 1", len(seen))
		}
		tid, _ := traceparent(t, header(seen[0], "Traceparent"))
		if tid == callerTrace {
			t.Fatalf("the gateway reused the caller's trace id %s for a request without a traceparent", tid)
		}
		server := check(t, tid, "/traced/b", 1)
		if len(server.GetParentSpanId()) != 0 {
			t.Errorf("server span has parent %s; want none (a root span)", parentSpanID(server))
		}
	})
	t.Run("resource", func(t *testing.T) {
		recv.mu.Lock()
		defer recv.mu.Unlock()
		if got := attr(recv.resource, "service.name"); got != "sluice-gateway" {
			t.Errorf("resource service.name %q; want sluice-gateway", got)
		}
	})
}

// TestTracingTLS: with an https --otlp-endpoint and --otlp-ca-file, spans
// reach a receiver that serves TLS with a certificate of that CA.
func TestTracingTLS(t *testing.T) {
	crt, key := certtest.KeyPair(t, "localhost")
	pair, err := tls.X509KeyPair(crt, key)
	if err != nil {
		t.Fatal(err)
	}
	ca := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(ca, crt, 0o600); err != nil {
		t.Fatal(err)
	}
	recv := startReceiver(t, grpc.Creds(credentials.NewServerTLSFromCert(&pair)))
	_, port, _ := net.SplitHostPort(recv.addr)
	e := startEnv(t, func(o *gateway.Options) {
		o.OTLPEndpoint, o.OTLPCAFile, o.TraceSampleRatio = "https://localhost:"+port, ca, 1
	})
	r, err := e.do("GET", "/base/tls", "base.example.com", map[string]string{"traceparent": callerTP}, "")
	if err != nil || r.echo == nil {
		t.Fatalf("GET /base/tls: %v %+v; want an echo", err, r)
	}
	e.waitFor("the server span over TLS", 10*time.Second, func() (bool, string) {
		spans := recv.trace(callerTrace)
		return len(spans) >= 2, fmt.Sprintf("%d spans of the caller's trace", len(spans))
	})
}

// TestTracingProtocolsAndHeaders: spans reach a receiver over either OTLP
// protocol (--otlp-protocol grpc or http/protobuf), with the headers of
// OpenTelemetry's OTEL_EXPORTER_OTLP_HEADERS (a hosted collector's token).
func TestTracingProtocolsAndHeaders(t *testing.T) {
	t.Setenv("OTEL_EXPORTER_OTLP_HEADERS", "authorization=Bearer%20t0ken,x-tenant=blue")
	t.Setenv("OTEL_BSP_SCHEDULE_DELAY", "100") // ms: the batches go out at once
	for _, protocol := range []string{"grpc", "http/protobuf"} {
		t.Run(strings.ReplaceAll(protocol, "/", "-"), func(t *testing.T) {
			var recv *receiver
			endpoint := ""
			if protocol == "grpc" {
				recv = startReceiver(t)
				endpoint = recv.addr
			} else {
				recv = startHTTPReceiver(t)
				endpoint = "http://" + recv.addr
			}
			e := startEnv(t, func(o *gateway.Options) {
				o.OTLPEndpoint, o.OTLPProtocol, o.TraceSampleRatio = endpoint, protocol, 1
			})
			r, err := e.do("GET", "/base/otlp", "base.example.com", map[string]string{"traceparent": callerTP}, "")
			if err != nil || r.echo == nil {
				t.Fatalf("GET /base/otlp: %v %+v; want an echo", err, r)
			}
			e.waitFor("the spans over "+protocol, 10*time.Second, func() (bool, string) {
				spans := recv.trace(callerTrace)
				return len(spans) >= 2, fmt.Sprintf("%d spans of the caller's trace", len(spans))
			})
			if got := recv.header("authorization"); got != "Bearer t0ken" {
				t.Errorf("authorization at the receiver %q, want %q (OTEL_EXPORTER_OTLP_HEADERS)", got, "Bearer t0ken")
			}
			if got := recv.header("x-tenant"); got != "blue" {
				t.Errorf("x-tenant at the receiver %q, want blue", got)
			}
		})
	}
}

// TestTracingOff: without --otlp-endpoint, the caller's traceparent and
// tracestate reach the upstream unchanged.
func TestTracingOff(t *testing.T) {
	e := startEnv(t)
	r, err := e.do("GET", "/base/off", "base.example.com", map[string]string{"traceparent": callerTP, "tracestate": callerTS}, "")
	if err != nil || r.echo == nil {
		t.Fatalf("GET /base/off: %v %+v; want an echo", err, r)
	}
	if got := header(*r.echo, "Traceparent"); got != callerTP {
		t.Errorf("upstream saw traceparent %q; want the caller's %q", got, callerTP)
	}
	if got := header(*r.echo, "Tracestate"); got != callerTS {
		t.Errorf("upstream saw tracestate %q; want the caller's %q", got, callerTS)
	}
}
