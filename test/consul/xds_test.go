package consule2e

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/sluice/sluice/internal/grpctest"
	"github.com/sluice/sluice/internal/server"
)

// TestRegistrationRoutesThroughXDS: gRPC backends registered through the
// Consul client (with gRPC health checks) get the RPCs of a proxyless gRPC
// client dialing xds:///<service>.default; a backend whose check fails
// stops getting them, and one deregistered too.
func TestRegistrationRoutesThroughXDS(t *testing.T) {
	t.Parallel()
	s := start(t, server.Config{}, "")
	backends := []*grpctest.Backend{grpctest.Start(t, "greeter-a"), grpctest.Start(t, "greeter-b")}
	for _, b := range backends {
		reg := &api.AgentServiceRegistration{
			ID: b.ID, Name: "greeter", Address: "127.0.0.1", Port: b.Port, Meta: map[string]string{"protocol": "grpc"},
			Check: &api.AgentServiceCheck{GRPC: fmt.Sprintf("127.0.0.1:%d", b.Port), Interval: "1s"},
		}
		if err := s.consul.Agent().ServiceRegister(reg); err != nil {
			t.Fatal(err)
		}
	}
	waitHealth(t, s.consul, "greeter", true, flipTimeout, "greeter-a passing", "greeter-b passing")

	c := startClient(t, s.srv.XDSAddr, "xds:///greeter.default")
	c.waitServers(t, "both backends answering", 20*time.Second, "greeter-a", "greeter-b")

	// A failing check takes its backend out of traffic.
	backends[0].Health.SetServingStatus("", healthpb.HealthCheckResponse_NOT_SERVING)
	waitHealth(t, s.consul, "greeter", true, flipTimeout, "greeter-b passing")
	c.waitServers(t, "only greeter-b answering after greeter-a's check failed", 10*time.Second, "greeter-b")

	// Deregistering takes it out too.
	backends[0].Health.SetServingStatus("", healthpb.HealthCheckResponse_SERVING)
	c.waitServers(t, "both backends answering after greeter-a recovered", 10*time.Second, "greeter-a", "greeter-b")
	if err := s.consul.Agent().ServiceDeregister("greeter-b"); err != nil {
		t.Fatal(err)
	}
	c.waitServers(t, "only greeter-a answering after greeter-b was deregistered", 10*time.Second, "greeter-a")
}

// proxyless is a test/xds testclient child process: a proxyless gRPC client
// sending RPCs to a target, one line per RPC on its stdout.
type proxyless struct {
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	stderr strings.Builder // guarded by mu
	done   chan struct{}

	mu    sync.Mutex // guards lines, stderr
	lines []string   // "ok <server id>" or "err <code> <message>"
}

func startClient(t *testing.T, xdsAddr, target string) *proxyless {
	t.Helper()
	node := strings.ToLower(strings.ReplaceAll(t.Name(), "/", "-"))
	bootstrap, err := json.Marshal(map[string]any{
		"xds_servers": []any{map[string]any{
			"server_uri": xdsAddr, "channel_creds": []any{map[string]any{"type": "insecure"}}, "server_features": []any{},
		}},
		"node": map[string]any{"id": node, "locality": map[string]any{"zone": "a"}},
		"client_default_listener_resource_name_template": "%s",
	})
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(testclientBin, "-target", target, "-rate", "100", "-timeout", "2s")
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "GRPC_XDS_BOOTSTRAP") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, "GRPC_XDS_BOOTSTRAP_CONFIG="+string(bootstrap))
	c := &proxyless{cmd: cmd, done: make(chan struct{})}
	cmd.Stderr = writerFunc(func(p []byte) (int, error) {
		c.mu.Lock()
		defer c.mu.Unlock()
		c.stderr.Write(p)
		return len(p), nil
	})
	if c.stdin, err = cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		defer close(c.done)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			c.mu.Lock()
			c.lines = append(c.lines, sc.Text())
			c.mu.Unlock()
		}
		cmd.Wait()
	}()
	t.Cleanup(func() {
		c.stdin.Close() // the client exits when its stdin closes
		select {
		case <-c.done:
		case <-time.After(5 * time.Second):
			cmd.Process.Kill()
			<-c.done
		}
		if t.Failed() {
			c.mu.Lock()
			t.Logf("xDS client stderr:\n%s", c.stderr.String())
			c.mu.Unlock()
		}
	})
	return c
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

// waitServers waits until the last 50 RPCs all succeeded and were answered
// by exactly the servers named.
func (c *proxyless) waitServers(t *testing.T, what string, timeout time.Duration, servers ...string) {
	t.Helper()
	const window = 50
	waitFor(t, what, timeout, func() (bool, string) {
		select {
		case <-c.done:
			t.Fatalf("the xDS client exited before %s", what)
		default:
		}
		c.mu.Lock()
		lines := c.lines[max(0, len(c.lines)-window):]
		c.mu.Unlock()
		seen := map[string]int{}
		for _, l := range lines {
			seen[l]++
		}
		if len(lines) < window || len(seen) != len(servers) {
			return false, fmt.Sprint(seen)
		}
		for _, s := range servers {
			if seen["ok "+s] == 0 {
				return false, fmt.Sprint(seen)
			}
		}
		return true, ""
	})
}
