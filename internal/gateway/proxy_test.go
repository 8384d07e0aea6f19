package gateway

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
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
	g.swap(&Config{
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
	benchForward(b, benchGateway(b, up.URL))
}

// benchForward sends GET requests through g's port 80, in parallel.
func benchForward(b *testing.B, g *Gateway) {
	h := g.handler(80)
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

// BenchmarkForwardTraced is BenchmarkForward with tracing on: every request
// sampled, spans batched to an exporter that drops them.
func BenchmarkForwardTraced(b *testing.B) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "hello, world\n") }))
	defer up.Close()
	g := benchGateway(b, up.URL)
	tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(tracetest.NewNoopExporter()))
	defer tp.Shutdown(context.Background())
	g.tracing = &tracing{provider: tp, tracer: tp.Tracer(tracerName)}
	benchForward(b, g)
}

// TestTracingSampling: the sampler follows a caller's decision, and uses
// the ratio for the traces the gateway starts; an unsampled request still
// carries a traceparent of its trace to the upstream.
func TestTracingSampling(t *testing.T) {
	var (
		mu  sync.Mutex // guards got
		got []string   // the traceparents the upstream saw
	)
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		got = append(got, r.Header.Get("Traceparent"))
	}))
	defer up.Close()
	const caller = "4bf92f3577b34da6a3ce929d0e0e4736"
	tests := []struct {
		name        string
		ratio       float64
		traceparent string
		wantSpans   int
		wantTrace   string // "" for a new one
		wantFlags   string
	}{
		{name: "ratio 0, no caller", ratio: 0, wantSpans: 0, wantFlags: "00"},
		{name: "ratio 1, no caller", ratio: 1, wantSpans: 2, wantFlags: "01"},
		{name: "ratio 0, sampled caller", ratio: 0, traceparent: "00-" + caller + "-00f067aa0ba902b7-01", wantSpans: 2, wantTrace: caller, wantFlags: "01"},
		{name: "ratio 1, unsampled caller", ratio: 1, traceparent: "00-" + caller + "-00f067aa0ba902b7-00", wantSpans: 0, wantTrace: caller, wantFlags: "00"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			mu.Lock()
			got = nil
			mu.Unlock()
			g := benchGateway(t, up.URL)
			exp := tracetest.NewInMemoryExporter()
			tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp),
				sdktrace.WithSampler(sdktrace.ParentBased(sdktrace.TraceIDRatioBased(tt.ratio))))
			t.Cleanup(func() { tp.Shutdown(context.Background()) })
			g.tracing = &tracing{provider: tp, tracer: tp.Tracer(tracerName)}
			req := httptest.NewRequest("GET", "http://example.com/x", nil)
			if tt.traceparent != "" {
				req.Header.Set("Traceparent", tt.traceparent)
			}
			w := httptest.NewRecorder()
			g.handler(80).ServeHTTP(w, req)
			mu.Lock()
			defer mu.Unlock()
			if w.Code != 200 || len(got) != 1 {
				t.Fatalf("status %d, %d upstream requests; want 200 and 1", w.Code, len(got))
			}
			if n := len(exp.GetSpans()); n != tt.wantSpans {
				t.Errorf("%d spans exported; want %d", n, tt.wantSpans)
			}
			p := strings.Split(got[0], "-")
			if len(p) != 4 {
				t.Fatalf("upstream traceparent %q; want 4 parts", got[0])
			}
			if tt.wantTrace != "" && p[1] != tt.wantTrace {
				t.Errorf("upstream trace id %s; want the caller's %s", p[1], tt.wantTrace)
			}
			if tt.wantTrace == "" && p[1] == caller {
				t.Errorf("upstream trace id %s; want a new one", p[1])
			}
			if p[3] != tt.wantFlags {
				t.Errorf("upstream trace flags %s; want %s", p[3], tt.wantFlags)
			}
		})
	}
}

// relayTo is a handler that relays each request to addr as forward does,
// without routes: outboundRequest, the client, respond.
func relayTo(tr *h1Transport, addr string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		upgrade := upgradeType(r.Header)
		out := outboundRequest(new(outbound), r, r.URL.Path, r.Host, nil, nil, false, upgrade)
		out.URL.Host = addr
		resp, err := tr.roundTrip(r.Context(), out)
		if err == nil {
			err = respond(w, r, resp, upgrade)
		}
		if err != nil {
			writeError(w, r, err, slog.New(slog.DiscardHandler))
		}
	})
}

// TestRelayUnaskedUpgrade: a 101 answer to a request that asked for no
// upgrade is a 502, as with httputil.ReverseProxy and http.Transport, not
// a raw tunnel from the client's connection to the upstream.
func TestRelayUnaskedUpgrade(t *testing.T) {
	checkLeaks(t)
	up := startRawUpstream(t, func(_ int, c net.Conn, br *bufio.Reader) {
		if _, err := http.ReadRequest(br); err != nil {
			return
		}
		io.WriteString(c, "HTTP/1.1 101 Switching Protocols\r\n\r\ntunnelled")
		io.Copy(io.Discard, br)
	})
	ts := startServer(t, relayTo(newTestTransport(t), up.addr), nil)
	c, br := dialRaw(t, ts.addr)
	write(t, c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
	resp, body := readResponse(t, br, "GET")
	if resp.StatusCode != http.StatusBadGateway {
		t.Errorf("got %d %q, want 502", resp.StatusCode, body)
	}
}

// TestOutboundH2CUpgrade: an upgrade to h2c is not passed upstream (RFC
// 9113 deprecates it): an upstream that accepts it would serve the
// client HTTP/2 over the tunnel, any path, past the gateway's routes and
// their filters (h2c smuggling). Other upgrades (WebSocket) go on.
func TestOutboundH2CUpgrade(t *testing.T) {
	for _, tc := range []struct {
		upgrade, want string
	}{
		{"h2c", ""},
		{"H2C", ""},
		{"websocket", "websocket"},
	} {
		t.Run(tc.upgrade, func(t *testing.T) {
			r := httptest.NewRequest("GET", "http://x/", nil)
			r.Header.Set("Connection", "Upgrade, HTTP2-Settings")
			r.Header.Set("Upgrade", tc.upgrade)
			r.Header.Set("HTTP2-Settings", "AAMAAABkAAQCAAAAAAIAAAAA")
			out := outboundRequest(new(outbound), r, "/", "x", nil, nil, true, upgradeType(r.Header))
			if got := upgradeType(out.Header); got != tc.want {
				t.Errorf("upgrade sent upstream %q (header %v), want %q", got, out.Header, tc.want)
			}
			if _, ok := out.Header["Http2-Settings"]; ok {
				t.Errorf("HTTP2-Settings sent upstream")
			}
		})
	}
}

// TestPerTryTimeoutCoversBody: the per-try timeout (Gateway API's
// backendRequest) runs until the whole answer is in: an upstream that sends
// its head and then stalls in its body has the answer cut when it expires.
func TestPerTryTimeoutCoversBody(t *testing.T) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "10")
		io.WriteString(w, "hello")
		w.(http.Flusher).Flush()
		select {
		case <-r.Context().Done():
		case <-time.After(5 * time.Second):
			io.WriteString(w, "world")
		}
	}))
	defer up.Close()
	g := benchGateway(t, up.URL)
	g.cfg.Load().Listeners[80].Routes.VirtualHosts[0].Routes[0].Forward.Retry = &RetryPolicy{PerTry: 200 * time.Millisecond}
	start := time.Now()
	func() {
		defer func() {
			if v := recover(); v != http.ErrAbortHandler {
				t.Errorf("handler ended with %v, want the answer cut (http.ErrAbortHandler)", v)
			}
		}()
		g.handler(80).ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "http://example.com/x", nil))
	}()
	if took := time.Since(start); took > 3*time.Second {
		t.Errorf("the answer took %v; the 200ms per-try timeout should have cut its body", took)
	}
}

// startBodyUpstream answers ok once it has read a whole request body; done
// gets a value when a connection ends (the body read, or cut short).
func startBodyUpstream(t *testing.T) (up *rawUpstream, done chan struct{}) {
	done = make(chan struct{}, 1)
	up = startRawUpstream(t, func(_ int, c net.Conn, br *bufio.Reader) {
		defer func() { done <- struct{}{} }()
		req, err := http.ReadRequest(br)
		if err != nil {
			return
		}
		if _, err := io.Copy(io.Discard, req.Body); err == nil {
			io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
		}
	})
	return up, done
}

// TestRelayBodyTimeout: a client that stalls in its request body gets 408
// after the body timeout, with its connection closed, and the upstream
// connection that waited for the rest of the body is closed too, for a
// body written before the answer is read (64 KiB or less) and for one
// written by a goroutine of its own (larger).
func TestRelayBodyTimeout(t *testing.T) {
	checkLeaks(t)
	for _, size := range []int{1 << 10, 1 << 20} {
		up, upstreamDone := startBodyUpstream(t)
		ts := startServer(t, relayTo(newTestTransport(t), up.addr), nil, func(s *portServer) { s.bodyTimeout = 300 * time.Millisecond })
		c, br := dialRaw(t, ts.addr)
		write(t, c, fmt.Sprintf("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s", size, strings.Repeat("x", size/2)))
		start := time.Now()
		resp, body := readResponse(t, br, "POST")
		took := time.Since(start)
		if resp.StatusCode != http.StatusRequestTimeout || !resp.Close {
			t.Errorf("body of %d bytes stalled half-way: %d %q, close %v; want 408 and the connection closed", size, resp.StatusCode, body, resp.Close)
		}
		if took < 250*time.Millisecond || took > 3*time.Second {
			t.Errorf("body of %d bytes: answered after %v, want the 300ms body timeout", size, took)
		}
		select {
		case <-upstreamDone:
		case <-time.After(waitFor):
			t.Errorf("body of %d bytes: the upstream connection is still open", size)
		}
	}
}
