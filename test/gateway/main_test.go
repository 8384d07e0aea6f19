// Package gatewaye2e tests Sluice's gateway end to end: a real sluice server
// runs in the test process (embedded etcd, ADS on loopback), real upstream
// echo servers answer with what they received, the tests apply a Gateway,
// Services, Endpoints and HTTPRoutes through the REST API, and a gateway
// (internal/gateway, in process, configured only over xDS) serves the
// Gateway's listener on a free port. The checks are requests through the
// gateway and what the upstreams saw.
//
// SLUICE_TEST_LOG=debug shows the server's and the gateway's logs.
package gatewaye2e

import (
	"fmt"
	"os"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	code := m.Run()
	if err := goleak.Find(); err != nil && code == 0 {
		fmt.Fprintln(os.Stderr, "gatewaye2e: leaked goroutines:", err)
		code = 1
	}
	os.Exit(code)
}
