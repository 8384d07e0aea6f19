package xdse2e

import (
	"testing"
	"time"
)

// TestEveryBackendServes: without routes, xds:///greeter.default balances
// over every Endpoint the greeter Service selects.
func TestEveryBackendServes(t *testing.T) {
	m := startMesh(t)
	start := time.Now()
	c := startClient(t, m.srv.XDSAddr, clientOptions{rate: 500})
	c.waitConverged()
	t.Logf("first successful RPC %v after the client started", time.Since(start).Round(time.Millisecond))

	const n = 300
	rs := c.next(c.mark(), n, 20*time.Second)
	got := count(rs, func(s string) string { return s })
	for _, b := range backendIDs {
		if got[b.id] == 0 {
			t.Errorf("backend %s answered none of %d RPCs: %s", b.id, n, tally(rs))
		}
	}
	if got["error"] > 0 {
		t.Errorf("%d of %d RPCs failed: %s", got["error"], n, tally(rs))
	}
	t.Logf("%d RPCs: %s", n, tally(rs))
}
