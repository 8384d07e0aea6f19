package probe

import (
	"net"
	"net/http"
	"strings"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

// grpcServer starts a gRPC server with the standard health service on
// 127.0.0.1:0 that t.Cleanup stops.
func grpcServer(t *testing.T) (string, *health.Server) {
	t.Helper()
	return grpcServerOn(t, "127.0.0.1:0")
}

// grpcServerOn is grpcServer listening on addr.
func grpcServerOn(t *testing.T, addr string) (string, *health.Server) {
	t.Helper()
	ln := listen(t, addr)
	srv := grpc.NewServer()
	hs := health.NewServer()
	healthpb.RegisterHealthServer(srv, hs)
	done := make(chan struct{})
	go func() {
		defer close(done)
		srv.Serve(ln)
	}()
	t.Cleanup(func() {
		srv.Stop()
		<-done
	})
	return ln.Addr().String(), hs
}

func grpcCheck(service string) Check {
	return Check{GRPC: &GRPC{Service: service}, Timeout: testTimeout}
}

func TestGRPCServingStatus(t *testing.T) {
	addr, hs := grpcServer(t)
	const svc = "sluice.test.Echo"
	steps := []struct {
		service string
		set     healthpb.HealthCheckResponse_ServingStatus
		want    State
		output  string
	}{
		// health.NewServer starts with "" SERVING.
		{"", healthpb.HealthCheckResponse_SERVING, Passing, "gRPC check " + addr + ": SERVING"},
		{"", healthpb.HealthCheckResponse_NOT_SERVING, Critical, "gRPC check " + addr + ": NOT_SERVING"},
		{"", healthpb.HealthCheckResponse_SERVING, Passing, "gRPC check " + addr + ": SERVING"},
		{svc, healthpb.HealthCheckResponse_SERVING, Passing, "gRPC check " + addr + "/" + svc + ": SERVING"},
		{svc, healthpb.HealthCheckResponse_NOT_SERVING, Critical, "gRPC check " + addr + "/" + svc + ": NOT_SERVING"},
		{svc, healthpb.HealthCheckResponse_UNKNOWN, Critical, "gRPC check " + addr + "/" + svc + ": UNKNOWN"},
		{svc, healthpb.HealthCheckResponse_SERVICE_UNKNOWN, Critical, "gRPC check " + addr + "/" + svc + ": SERVICE_UNKNOWN"},
		{svc, healthpb.HealthCheckResponse_SERVING, Passing, "gRPC check " + addr + "/" + svc + ": SERVING"},
	}
	for _, s := range steps {
		hs.SetServingStatus(s.service, s.set)
		res := run(t, addr, grpcCheck(s.service), s.want)
		if res.Output != s.output {
			t.Errorf("after %q set to %s: output = %q, want %q", s.service, s.set, res.Output, s.output)
		}
	}
	// The server's own status does not answer for a named service.
	hs.SetServingStatus("", healthpb.HealthCheckResponse_NOT_SERVING)
	run(t, addr, grpcCheck(svc), Passing)
}

func TestGRPCFailures(t *testing.T) {
	t.Run("service unknown to the server", func(t *testing.T) {
		addr, _ := grpcServer(t)
		res := run(t, addr, grpcCheck("no.such.Service"), Critical)
		if want := "gRPC check " + addr + "/no.such.Service: NotFound: unknown service"; res.Output != want {
			t.Errorf("output = %q, want %q", res.Output, want)
		}
	})
	t.Run("nothing listening", func(t *testing.T) {
		addr := closedAddr(t)
		res := run(t, addr, grpcCheck(""), Critical)
		if want := "gRPC check " + addr + ": Unavailable: "; !strings.HasPrefix(res.Output, want) || !strings.Contains(res.Output, "connection refused") {
			t.Errorf("output = %q, want %q... connection refused", res.Output, want)
		}
	})
	t.Run("HTTP/1 server", func(t *testing.T) {
		addr := httpServer(t, http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
		res := run(t, addr, grpcCheck(""), Critical)
		if want := "gRPC check " + addr + ": Unavailable: "; !strings.HasPrefix(res.Output, want) {
			t.Errorf("output = %q, want it to start with %q", res.Output, want)
		}
	})
	t.Run("listener that never answers", func(t *testing.T) {
		res := runTimed(t, hangingListener(t), grpcCheck(""), Critical)
		if !strings.Contains(res.Output, "DeadlineExceeded") {
			t.Errorf("output = %q, want it to name DeadlineExceeded", res.Output)
		}
	})
}

// TestRunIPv6: every kind of check dials a bracketed IPv6 address.
func TestRunIPv6(t *testing.T) {
	ln, err := net.Listen("tcp", "[::1]:0")
	if err != nil {
		t.Skipf("no IPv6 loopback: %v", err)
	}
	ln.Close()
	addr, hs := grpcServerOn(t, "[::1]:0")
	hs.SetServingStatus("", healthpb.HealthCheckResponse_NOT_SERVING)
	run(t, addr, grpcCheck(""), Critical)
	hs.SetServingStatus("", healthpb.HealthCheckResponse_SERVING)
	run(t, addr, grpcCheck(""), Passing)
	run(t, addr, Check{TCP: &TCP{}, Timeout: testTimeout}, Passing)
}
