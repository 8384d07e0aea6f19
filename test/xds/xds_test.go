package xdse2e

import (
	"encoding/json"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sluice/sluice/internal/resource"
	"github.com/sluice/sluice/internal/xds"
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

// startSplit starts the mesh with greeter's RPCs split 80/20 between
// greeter-v1 and greeter-v2, and a client sending rate RPCs a second. It
// returns once the client runs on the split: it ACKed every type with the
// two clusters of the split, and both versions answered since.
func startSplit(t *testing.T, rate float64) (*mesh, *proxyless) {
	t.Helper()
	m := startMesh(t)
	m.split(80, 20)
	c := startClient(t, m.srv.XDSAddr, clientOptions{rate: rate})
	m.waitProxy(c.node, "synced on the split's two clusters", 20*time.Second, func(p xds.ProxyStatus) bool {
		return allSynced(p) && p.Types["CDS"].Resources == 2 && p.Types["EDS"].Resources == 2
	})
	// The channel switches to a config just after grpc ACKs it.
	c.waitRPCs(c.mark(), "both versions answering", 10*time.Second, func(rs []rpc) bool {
		n := count(rs, versionOf)
		return n["v1"] > 0 && n["v2"] > 0
	})
	return m, c
}

// TestWeightedSplit: a GRPCRoute whose parentRef is the greeter Service
// splits its RPCs between greeter-v1 and greeter-v2 by the backendRefs'
// weights.
func TestWeightedSplit(t *testing.T) {
	_, c := startSplit(t, 0)
	const n = 2000
	rs := c.next(c.mark(), n, 60*time.Second)
	byVersion := count(rs, versionOf)
	if byVersion["error"] > 0 {
		t.Fatalf("%d of %d RPCs failed: %s", byVersion["error"], n, tally(rs))
	}
	share := float64(byVersion["v1"]) / n
	t.Logf("80/20 split: v1 %d, v2 %d of %d RPCs (v1 share %.1f%%); by backend %s", byVersion["v1"], byVersion["v2"], n, 100*share, tally(rs))
	if share < 0.75 || share > 0.85 {
		t.Errorf("v1 answered %.1f%% of %d RPCs (v1 %d, v2 %d), want 80%% ± 5%%", 100*share, n, byVersion["v1"], byVersion["v2"])
	}
}

// isVersion selects the ServerIds of one version.
func isVersion(v string) func(string) bool {
	return func(server string) bool { return versionOf(server) == v }
}

// is selects one ServerId.
func is(id string) func(string) bool {
	return func(server string) bool { return server == id }
}

// maxConvergence bounds how long a change may take to reach a client.
const maxConvergence = 2 * time.Second

// quiet is how many RPCs in a row (a second at 200 RPCs/s) show that a
// change is complete.
const quiet = 200

// TestWeightChange: new weights reach a running client, with no RPC lost,
// within maxConvergence of the API acknowledging the write.
//
// The change takes traffic off a cluster. A change that sends traffic to a
// cluster the client's route did not use (0/100 → 100/0) loses about one RPC
// in grpc-go v1.85.0 itself, whatever the server does: the ClientConn
// installs the new config selector (clientconn.go,
// applyServiceConfigAndBalancer) before the xds_cluster_manager balancer
// gets the new cluster (updateClientConnState, after), and an RPC routed in
// between fails with Unavailable "unknown cluster selected for RPC".
func TestWeightChange(t *testing.T) {
	m, c := startSplit(t, 200)
	mark := c.mark()
	m.split(0, 100)
	took := c.waitGone(mark, time.Now(), "only v2 answers after weights 0/100", isVersion("v1"), quiet, 10*time.Second)
	t.Logf("weights 80/20 → 0/100: only v2 answers %v after the write", took.Round(time.Millisecond))
	if took > maxConvergence {
		t.Errorf("v1 answered until %v after the write of weights 0/100, want at most %v", took, maxConvergence)
	}
}

// TestEndpointDrain: an Endpoint deleted, or marked unhealthy, stops getting
// RPCs within maxConvergence; marked healthy again, it gets them again.
func TestEndpointDrain(t *testing.T) {
	m := startMesh(t)
	c := startClient(t, m.srv.XDSAddr, clientOptions{rate: 200})
	c.waitRPCs(0, "every backend answering", 20*time.Second, func(rs []rpc) bool {
		n := count(rs, func(s string) string { return s })
		return n["v1-a"] > 0 && n["v1-b"] > 0 && n["v2-a"] > 0
	})

	mark := c.mark()
	m.delete(endpoints, endpointName("v1-b"))
	took := c.waitGone(mark, time.Now(), "v1-b drained after its Endpoint was deleted", is("v1-b"), quiet, 10*time.Second)
	t.Logf("Endpoint deleted: drained %v after the write", took.Round(time.Millisecond))
	if took > maxConvergence {
		t.Errorf("v1-b answered until %v after its Endpoint was deleted, want at most %v", took, maxConvergence)
	}

	mark = c.mark()
	m.setHealth(endpointName("v1-a"), resource.HealthUnhealthy)
	took = c.waitGone(mark, time.Now(), "v1-a drained after it was marked unhealthy", is("v1-a"), quiet, 10*time.Second)
	t.Logf("Endpoint unhealthy: drained %v after the write", took.Round(time.Millisecond))
	if took > maxConvergence {
		t.Errorf("v1-a answered until %v after it was marked unhealthy, want at most %v", took, maxConvergence)
	}

	mark = c.mark()
	m.setHealth(endpointName("v1-a"), resource.HealthHealthy)
	back := c.waitAnswer(mark, time.Now(), "v1-a", "v1-a answering again after it was marked healthy", 10*time.Second)
	t.Logf("Endpoint healthy again: answering %v after the write", back.Round(time.Millisecond))
	if back > maxConvergence {
		t.Errorf("v1-a answered %v after it was marked healthy, want at most %v", back, maxConvergence)
	}
}

// badRule is a GRPCRoute rule the API accepts and grpc-go rejects: a header
// regex that compiles alone, but not as grpc anchors it, ^(?:\Qcanary)$,
// since \Q quotes to the end of the pattern, closing parenthesis included.
// Envoy matches safe_regex without wrapping it, and would take it. Should
// the API come to refuse this rule (validating regexes as grpc-go compiles
// them), TestNACK needs another way to make a client NACK.
var badRule = map[string]any{
	"matches": []any{map[string]any{"headers": []any{
		map[string]any{"type": "RegularExpression", "name": "x-canary", "value": `\Qcanary`},
	}}},
	"backendRefs": []any{backendRef("greeter-v2", 1)},
}

// TestNACK: a client that rejects a RouteConfiguration keeps serving on its
// last good one; the server records the NACK with grpc's error text, shows
// it in `sluice proxies`, and does not send the rejected version again.
// Once the cause is gone, the client is in sync again.
func TestNACK(t *testing.T) {
	m, c := startSplit(t, 200)
	good := m.waitProxy(c.node, "synced", 10*time.Second, allSynced).Types["RDS"].Acked
	mark := c.mark()
	m.split(80, 20, badRule)
	p := m.waitProxy(c.node, "NACKED on RDS", 10*time.Second, func(p xds.ProxyStatus) bool {
		ts := p.Types["RDS"]
		return ts != nil && ts.State == xds.NACKed
	})
	rds := *p.Types["RDS"]
	nack := rds.LastNACK // set: NACKED is the state of a NACKed last version
	t.Logf("RDS NACK of %s: %s", nack.Version, nack.Error)
	if nack.Version != rds.Sent || rds.Acked != good {
		t.Errorf("RDS sent %s, acked %s, NACK of %s; want the NACK of the version sent and %s still acked", rds.Sent, rds.Acked, nack.Version, good)
	}
	// grpc-go's words, about the resource it rejected.
	for _, want := range []string{`resource "greeter.default"`, "invalid header matcher", "x-canary"} {
		if !strings.Contains(nack.Error, want) {
			t.Errorf("the NACK's error text does not contain %q: %q", want, nack.Error)
		}
	}

	// The rejected version is not sent again: what the server records of
	// every response it sends (RDS sent, sentAt), the NACKs it counts and the
	// pushes it counts all stay put.
	pushes, nacks := `sluice_xds_pushes_total{type="RDS"}`, `sluice_xds_nacks_total{type="RDS"}`
	pushed, nacked := m.metric(pushes), m.metric(nacks)
	for end := time.Now().Add(2 * time.Second); time.Now().Before(end); time.Sleep(100 * time.Millisecond) {
		p, ok := m.proxy(c.node)
		now := p.Types["RDS"]
		if !ok || now == nil || now.Sent != rds.Sent || !now.SentAt.Equal(rds.SentAt) || now.State != xds.NACKed ||
			now.LastNACK == nil || !now.LastNACK.Time.Equal(nack.Time) {
			t.Fatalf("after the NACK, RDS changed: was sent %s at %v and NACKed at %v; now %s", rds.Sent, rds.SentAt, nack.Time, describe(p, ok))
		}
	}
	if p, n := m.metric(pushes), m.metric(nacks); p != pushed || n != nacked {
		t.Errorf("over 2s after the NACK, %s went %v → %v and %s %v → %v; want both unchanged", pushes, pushed, p, nacks, nacked, n)
	}
	// The client served on its last good config all along.
	rs := c.since(mark)
	if f := failures(rs); len(f) > 0 || len(rs) < 200 {
		t.Errorf("while NACKing, the client's RPCs: %s; want at least 200, none failed", tally(rs))
	}

	// sluice proxies shows the NACK.
	wide := sluice(t, m.srv.URL, "proxies", "-o", "wide")
	row := rowOf(wide, c.node)
	for _, want := range []string{"NACKED", "RDS " + nack.Version[:8], strings.Join(strings.Fields(nack.Error), " ")} {
		if !strings.Contains(row, want) {
			t.Errorf("sluice proxies -o wide: the row of %s does not contain %q:\n%s", c.node, want, wide)
		}
	}
	var list xds.ProxyList
	out := sluice(t, m.srv.URL, "proxies", "-o", "json")
	if err := json.Unmarshal([]byte(out), &list); err != nil {
		t.Fatalf("sluice proxies -o json: %v\n%s", err, out)
	}
	i := slices.IndexFunc(list.Items, func(p xds.ProxyStatus) bool { return p.Node == c.node })
	if i < 0 || !sameNACK(list.Items[i].Types["RDS"], nack) {
		t.Errorf("sluice proxies -o json does not show %s NACKED on RDS with grpc's error:\n%s", c.node, out)
	}

	// Without the bad rule, the client is in sync again, on the version it
	// had: versions are hashes of content.
	m.split(80, 20)
	p = m.waitProxy(c.node, "synced again without the bad rule", 10*time.Second, allSynced)
	if got := p.Types["RDS"].Acked; got != good {
		t.Errorf("RDS acked %s after the bad rule went, want %s, the version of the same content before", got, good)
	}
	if rs := c.since(mark); len(failures(rs)) > 0 {
		t.Errorf("RPCs failed during the test: %s", tally(rs))
	}
}

// sameNACK says whether ts is NACKED with the error of nack.
func sameNACK(ts *xds.TypeStatus, nack *xds.NACK) bool {
	return ts != nil && ts.State == xds.NACKed && ts.LastNACK != nil && ts.LastNACK.Error == nack.Error
}

// rowOf returns the line of a table that starts with name.
func rowOf(table, name string) string {
	for line := range strings.Lines(table) {
		if strings.HasPrefix(line, name+" ") {
			return line
		}
	}
	return ""
}

// TestServerDown: while the server is down, a client keeps serving on its
// last config; once the server is back on the same address, the client
// reconnects and follows the changes made since.
func TestServerDown(t *testing.T) {
	m, c := startSplit(t, 200)
	mark := c.mark()
	if err := m.srv.Stop(); err != nil {
		t.Fatalf("stopping the server: %v", err)
	}
	const outage = 3 * time.Second
	down := c.mark()
	for end := time.Now().Add(outage); time.Now().Before(end); time.Sleep(50 * time.Millisecond) {
		if rs := c.since(mark); len(failures(rs)) > 0 {
			t.Fatalf("RPCs failed with the server down: %s", tally(rs))
		}
	}
	rs := c.since(down)
	byVersion := count(rs, versionOf)
	t.Logf("server down for %v: %s", outage, tally(rs))
	if len(rs) < 300 || byVersion["v1"] == 0 || byVersion["v2"] == 0 {
		t.Errorf("with the server down for %v, the client's RPCs: %s; want at least 300, on both versions as the split says", outage, tally(rs))
	}

	restart := time.Now()
	m.srv.Restart(t)
	restarted := time.Now()
	m.split(0, 100)
	written := time.Now()
	took := c.waitGone(mark, written, "only v2 answers after the restart and weights 0/100", isVersion("v1"), quiet, 20*time.Second)
	p := m.waitProxy(c.node, "connected and synced after the restart", 10*time.Second, allSynced)
	t.Logf("server restarted in %v; the client reconnected %v after the restart; weights 0/100, written before, reached it %v after their write",
		restarted.Sub(restart).Round(time.Millisecond), p.ConnectedSince.Sub(restarted).Round(time.Millisecond), took.Round(time.Millisecond))
	// The client's next try depends on two backoffs (1s, 1.6x, ±20%): of
	// its channel's connection, and of its ADS stream, which fails at once
	// while the channel is down. After a 3s outage the channel is back at
	// most ~6.2s after the stop, and the stream's next try at most ~11.1s
	// after it, ~8s after the restart. Typically it takes ~2s.
	if took > 12*time.Second {
		t.Errorf("v1 answered until %v after weights 0/100 were written, want at most 12s (the client's reconnect backoff)", took)
	}

	// On the new stream, changes are pushed as before. (A new Endpoint, not
	// weights back to v1: see TestWeightChange on why that loses an RPC.)
	mark = c.mark()
	m.addBackend("v2-b", "v2", "zone-b")
	joined := c.waitAnswer(mark, time.Now(), "v2-b", "v2-b answering after its Endpoint was added", 10*time.Second)
	t.Logf("reconnected: a new Endpoint answered %v after its write", joined.Round(time.Millisecond))
	if joined > maxConvergence {
		t.Errorf("after the reconnect, v2-b answered %v after its Endpoint was added, want at most %v", joined, maxConvergence)
	}
}

// TestProxies: `sluice proxies` lists every connected client, SYNCED on
// every type it asked for once it has converged.
func TestProxies(t *testing.T) {
	m := startMesh(t)
	clients := []*proxyless{
		startClient(t, m.srv.XDSAddr, clientOptions{rate: 50}),
		startClient(t, m.srv.XDSAddr, clientOptions{rate: 50}),
	}
	for _, c := range clients {
		c.waitConverged()
		m.waitProxy(c.node, "synced", 10*time.Second, allSynced)
	}

	table := sluice(t, m.srv.URL, "proxies")
	if !regexp.MustCompile(`^NODE +ADDRESS +CLIENT +PROTOCOL +CONNECTED +CDS +LDS +EDS +RDS +SDS\n`).MatchString(table) {
		t.Errorf("sluice proxies: unexpected header:\n%s", table)
	}
	for _, c := range clients {
		// SDS: a plaintext client never asks for secrets.
		row := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(c.node) + ` +127\.0\.0\.1:\d+ +gRPC Go \S+ +sotw +\S+ +SYNCED +SYNCED +SYNCED +SYNCED +- *$`)
		if !row.MatchString(table) {
			t.Errorf("sluice proxies: no row of %s SYNCED on CDS, LDS, EDS and RDS (pattern %s):\n%s", c.node, row, table)
		}
	}

	var list xds.ProxyList
	out := sluice(t, m.srv.URL, "proxies", "-o", "json")
	if err := json.Unmarshal([]byte(out), &list); err != nil {
		t.Fatalf("sluice proxies -o json: %v\n%s", err, out)
	}
	if len(list.Items) != len(clients) {
		t.Errorf("sluice proxies -o json lists %d proxies, want %d:\n%s", len(list.Items), len(clients), out)
	}
	for _, c := range clients {
		i := slices.IndexFunc(list.Items, func(p xds.ProxyStatus) bool { return p.Node == c.node })
		if i < 0 {
			t.Errorf("sluice proxies -o json does not list %s:\n%s", c.node, out)
			continue
		}
		p := list.Items[i]
		if !allSynced(p) || p.Protocol != "sotw" || p.Client != "gRPC Go" {
			t.Errorf("sluice proxies -o json: %s is %s, client %q, protocol %q; want SYNCED on every type, gRPC Go, sotw", c.node, describe(p, true), p.Client, p.Protocol)
			continue
		}
		for _, typ := range meshTypes {
			if ts := p.Types[typ]; ts.Sent == "" || ts.Acked != ts.Sent || ts.Resources != 1 {
				t.Errorf("sluice proxies -o json: %s %s sent %q, acked %q, %d names; want the version sent acked, 1 name", c.node, typ, ts.Sent, ts.Acked, ts.Resources)
			}
		}
	}
}
