// Package grpctest runs real gRPC servers for tests: the interop
// TestService, answering with the id it was started as, with the gRPC
// health service beside it.
package grpctest

import (
	"context"
	"net"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"
)

// Backend is a running TestService.
type Backend struct {
	testgrpc.UnimplementedTestServiceServer
	// ID is the ServerId it answers with when asked (FillServerId).
	ID   string
	Port int
	// Health serves grpc.health.v1; every service starts SERVING.
	Health *health.Server
}

// UnaryCall answers with the backend's ID when the request asks for it.
func (b *Backend) UnaryCall(_ context.Context, req *testgrpc.SimpleRequest) (*testgrpc.SimpleResponse, error) {
	resp := &testgrpc.SimpleResponse{}
	if req.GetFillServerId() {
		resp.ServerId = b.ID
	}
	return resp, nil
}

// Start serves a Backend as id on a free loopback port until the test ends.
func Start(t testing.TB, id string) *Backend {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	b := &Backend{ID: id, Port: ln.Addr().(*net.TCPAddr).Port, Health: health.NewServer()}
	s := grpc.NewServer()
	testgrpc.RegisterTestServiceServer(s, b)
	healthpb.RegisterHealthServer(s, b.Health)
	go s.Serve(ln)
	t.Cleanup(s.Stop)
	return b
}
