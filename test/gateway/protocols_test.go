package gatewaye2e

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/metadata"
)

func isWebSocket(r *http.Request) bool { return websocket.IsWebSocketUpgrade(r) }

// serveWebSocket echoes every message back, prefixed with the upstream's
// name.
func serveWebSocket(w http.ResponseWriter, r *http.Request, name string) {
	up := websocket.Upgrader{}
	conn, err := up.Upgrade(w, r, nil)
	if err != nil {
		return
	}
	defer conn.Close()
	for {
		typ, msg, err := conn.ReadMessage()
		if err != nil {
			return
		}
		if err := conn.WriteMessage(typ, append([]byte(name+": "), msg...)); err != nil {
			return
		}
	}
}

// TestWebSocket: a WebSocket upgrade goes through the gateway, and messages
// flow both ways.
func TestWebSocket(t *testing.T) {
	e := startEnv(t)
	e.apply(httpRoutes, "ws", httpRoute("ws", nil, map[string]any{"backendRefs": []any{backend("echo-a", 1)}}))
	e.waitRoute("/", "")
	conn, resp, err := websocket.DefaultDialer.Dial(fmt.Sprintf("ws://127.0.0.1:%d/ws", e.port), nil)
	if err != nil {
		t.Fatalf("dial through the gateway: %v (%v)", err, resp)
	}
	defer conn.Close()
	for i := range 5 {
		msg := fmt.Sprintf("hello %d", i)
		if err := conn.WriteMessage(websocket.TextMessage, []byte(msg)); err != nil {
			t.Fatal(err)
		}
		_, got, err := conn.ReadMessage()
		if err != nil {
			t.Fatal(err)
		}
		if want := "echo-a: " + msg; string(got) != want {
			t.Errorf("got %q, want %q", got, want)
		}
	}
}

// TestTunnelHalfClose: an upgraded connection passes a half-close on each
// way, as a TCP proxy does: the client ends its side, and the upstream's
// answer to that end still reaches it through the gateway.
func TestTunnelHalfClose(t *testing.T) {
	e := startEnv(t)
	e.apply(httpRoutes, "count", httpRoute("count", nil, map[string]any{"backendRefs": []any{backend("echo-a", 1)}}))
	e.waitRoute("/", "")
	c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", e.port))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	fmt.Fprint(c, "GET /count HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: count\r\n\r\n")
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, &http.Request{Method: "GET"})
	if err != nil || resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("upgrade through the gateway: %v %v", resp, err)
	}
	fmt.Fprint(c, "hello, tunnel")
	if err := c.(*net.TCPConn).CloseWrite(); err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(br)
	if want := "echo-a: 13 bytes"; string(got) != want {
		t.Errorf("after the client's half-close: %q (%v), want %q", got, err, want)
	}
}

// grpcBackend serves the interop TestService.
type grpcBackend struct {
	testgrpc.UnimplementedTestServiceServer
	name string
}

func (b *grpcBackend) UnaryCall(ctx context.Context, req *testgrpc.SimpleRequest) (*testgrpc.SimpleResponse, error) {
	grpc.SetTrailer(ctx, metadata.Pairs("x-backend", b.name))
	return &testgrpc.SimpleResponse{ServerId: b.name, Payload: req.GetPayload()}, nil
}

func (b *grpcBackend) FullDuplexCall(stream testgrpc.TestService_FullDuplexCallServer) error {
	for {
		req, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		for _, p := range req.GetResponseParameters() {
			if err := stream.Send(&testgrpc.StreamingOutputCallResponse{Payload: &testgrpc.Payload{Body: make([]byte, p.GetSize())}}); err != nil {
				return err
			}
		}
	}
}

// TestGRPC: unary and bidirectional streaming RPCs through the gateway,
// h2c from the client, h2c to a Service of protocol grpc, trailers
// included.
func TestGRPC(t *testing.T) {
	e := startEnv(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := grpc.NewServer()
	testgrpc.RegisterTestServiceServer(s, &grpcBackend{name: "greeter-1"})
	go s.Serve(ln)
	t.Cleanup(s.Stop)
	e.apply(services, "greeter", serviceObj("greeter", "grpc"))
	e.apply(endpoints, "greeter", endpointObj("greeter", ln.Addr().(*net.TCPAddr).Port))
	e.apply(grpcRoutes, "greeter", map[string]any{
		"apiVersion": "gateway.networking.k8s.io/v1",
		"kind":       "GRPCRoute",
		"metadata":   map[string]any{"name": "greeter", "namespace": namespace},
		"spec": map[string]any{
			// An HTTPRoute and a GRPCRoute never share a hostname.
			"hostnames":  []any{"grpc.example.com"},
			"parentRefs": []any{map[string]any{"name": gatewayName}},
			"rules": []any{map[string]any{
				"matches":     []any{map[string]any{"method": map[string]any{"service": "grpc.testing.TestService"}}},
				"backendRefs": []any{backend("greeter", 1)},
			}},
		},
	})
	conn, err := grpc.NewClient(fmt.Sprintf("127.0.0.1:%d", e.port), grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithAuthority("grpc.example.com"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	tc := testgrpc.NewTestServiceClient(conn)

	var trailer metadata.MD
	e.waitFor("a unary RPC through the gateway", 10*time.Second, func() (bool, string) {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		resp, err := tc.UnaryCall(ctx, &testgrpc.SimpleRequest{Payload: &testgrpc.Payload{Body: []byte("ping")}}, grpc.Trailer(&trailer))
		if err != nil {
			return false, err.Error()
		}
		return resp.GetServerId() == "greeter-1" && string(resp.GetPayload().GetBody()) == "ping", resp.String()
	})
	if got := strings.Join(trailer.Get("x-backend"), ","); got != "greeter-1" {
		t.Errorf("trailer x-backend = %q, want greeter-1", got)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	stream, err := tc.FullDuplexCall(ctx)
	if err != nil {
		t.Fatal(err)
	}
	const rounds = 20
	for i := range rounds {
		req := &testgrpc.StreamingOutputCallRequest{ResponseParameters: []*testgrpc.ResponseParameters{{Size: int32(i + 1)}, {Size: int32(i + 2)}}}
		if err := stream.Send(req); err != nil {
			t.Fatalf("send %d: %v", i, err)
		}
		for j := range 2 {
			resp, err := stream.Recv()
			if err != nil {
				t.Fatalf("recv %d.%d: %v", i, j, err)
			}
			if got, want := len(resp.GetPayload().GetBody()), i+1+j; got != want {
				t.Errorf("response %d.%d: %d bytes, want %d", i, j, got, want)
			}
		}
	}
	if err := stream.CloseSend(); err != nil {
		t.Fatal(err)
	}
	if _, err := stream.Recv(); !errors.Is(err, io.EOF) {
		t.Errorf("end of stream: %v, want EOF", err)
	}
}
