package printer

import (
	"bytes"
	"testing"
	"time"

	"github.com/sluice/sluice/internal/golden"
	"github.com/sluice/sluice/internal/xds"
)

func TestPrintProxies(t *testing.T) {
	now := time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
	proxies := []xds.ProxyStatus{
		{
			Node: "greeter-client-1", Server: "http://127.0.0.1:7070", Address: "127.0.0.1:51234", Client: "gRPC Go", ClientVersion: "1.85.0",
			Protocol: "sotw", ConnectedSince: now.Add(-90 * time.Second),
			Types: map[string]*xds.TypeStatus{
				"LDS": {State: xds.Synced, Sent: "0123456789abcdef", Acked: "0123456789abcdef"},
				"RDS": {State: xds.Synced, Sent: "1111111111111111", Acked: "1111111111111111"},
				"CDS": {State: xds.NACKed, Sent: "2222222222222222", Acked: "3333333333333333",
					LastNACK: &xds.NACK{Version: "2222222222222222", Error: "cluster greeter.default:\n  unsupported lb policy", Time: now.Add(-10 * time.Second)}},
				"EDS": {State: xds.Stale, Sent: "4444444444444444"},
			},
		},
		{
			Node: "edge-gw", Address: "10.0.0.9:40000", Protocol: "delta", ConnectedSince: now.Add(-3 * time.Hour),
			Types: map[string]*xds.TypeStatus{"LDS": {State: xds.NotSent}},
		},
	}
	for _, wide := range []bool{false, true} {
		var buf bytes.Buffer
		if err := PrintProxies(&buf, proxies, wide, now); err != nil {
			t.Fatal(err)
		}
		name := "proxies"
		if wide {
			name = "proxies-wide"
		}
		golden.Check(t, name, buf.String())
	}
}
