package probe

import (
	"fmt"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"
)

// checkGRPC calls grpc.health.v1.Health/Check for the check's service ("" asks
// about the server as a whole) over a new insecure connection, closed when the
// attempt ends. SERVING passes; any other status (NOT_SERVING, UNKNOWN,
// SERVICE_UNKNOWN) and any RPC error are critical. Both Consul's CheckGRPC and
// Envoy's gRPC health checker judge it so; Envoy's has no warning state and
// Consul's gives none for gRPC.
//
// The target goes through the passthrough resolver, as Consul's does, so the
// address is dialled as it is (a hostname by the system resolver), the same
// way HTTP and TCP checks dial it; and, as they do, the check takes no proxy
// from the environment and makes no retries: one attempt is one RPC.
func (a *attempt) checkGRPC(g *GRPC) Result {
	// Consul names a gRPC check's target "addr/service".
	target := a.addr
	if g.Service != "" {
		target += "/" + g.Service
	}
	prefix := "gRPC check " + target + ": "
	conn, err := grpc.NewClient("passthrough:///"+a.addr,
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithNoProxy(),
		grpc.WithDisableRetry(),
		grpc.WithUserAgent(a.userAgent),
	)
	if err != nil {
		return critical(prefix + err.Error())
	}
	defer conn.Close()
	resp, err := healthpb.NewHealthClient(conn).Check(a.ctx, &healthpb.HealthCheckRequest{Service: g.Service})
	if err != nil {
		st := status.Convert(err)
		return critical(prefix + a.failure(fmt.Errorf("%s: %s", st.Code(), st.Message())))
	}
	if s := resp.GetStatus(); s != healthpb.HealthCheckResponse_SERVING {
		return critical(prefix + s.String())
	}
	return Result{State: Passing, Output: prefix + healthpb.HealthCheckResponse_SERVING.String()}
}
