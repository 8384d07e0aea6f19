// Package consule2e tests Sluice's Consul-compatible API with the official
// Consul Go client (github.com/hashicorp/consul/api) as the only client: a
// sluice server runs in the test process (embedded etcd, every listener on a
// free loopback port), real HTTP, TCP and gRPC servers play the registered
// instances, and a proxyless gRPC client (../xds/testclient, a child process
// because grpc-go reads its xDS bootstrap once per process) shows that a
// Consul registration routes traffic.
//
// Set SLUICE_TEST_LOG=debug for the server's logs.
package consule2e

import (
	"bytes"
	"flag"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"
	"go.uber.org/goleak"

	"github.com/sluice/sluice/internal/server"
	"github.com/sluice/sluice/internal/servertest"
)

// testclientBin is the proxyless gRPC client of test/xds.
var testclientBin string

func TestMain(m *testing.M) {
	flag.Parse()
	os.Exit(run(m))
}

func run(m *testing.M) int {
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		fmt.Fprintln(os.Stderr, "consule2e:", err)
		return 1
	}
	if data, err := os.ReadFile(filepath.Join(root, "go.mod")); err != nil || !bytes.HasPrefix(data, []byte("module github.com/sluice/sluice\n")) {
		fmt.Fprintf(os.Stderr, "consule2e: %s is not the sluice module's root\n", root)
		return 1
	}
	dir, err := os.MkdirTemp("", "sluice-consule2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "consule2e:", err)
		return 1
	}
	defer os.RemoveAll(dir)
	testclientBin = filepath.Join(dir, "testclient")
	build := exec.Command("go", "build", "-o", testclientBin, "./test/xds/testclient")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "consule2e: building the xDS test client: %v\n%s", err, out)
		return 1
	}
	code := m.Run()
	if err := goleak.Find(); err != nil && code == 0 {
		fmt.Fprintln(os.Stderr, "consule2e: leaked goroutines:", err)
		return 1
	}
	return code
}

// sluice is a server and a Consul client of its Consul-compatible API.
type sluice struct {
	srv    *servertest.Server
	consul *api.Client
}

// start runs a server with a short xDS debounce and returns it with a Consul
// client holding token (none when empty).
func start(t *testing.T, cfg server.Config, token string) *sluice {
	t.Helper()
	if cfg.XDSDebounceWindow == 0 {
		cfg.XDSDebounceWindow, cfg.XDSDebounceMaxDelay = 20*time.Millisecond, 200*time.Millisecond
	}
	srv := servertest.Start(t, cfg)
	return &sluice{srv: srv, consul: consulClient(t, srv.ConsulAddr, token)}
}

// consulClient is a Consul client of addr whose connections close at cleanup.
func consulClient(t *testing.T, addr, token string) *api.Client {
	t.Helper()
	tr := &http.Transport{Proxy: nil, MaxIdleConnsPerHost: 64}
	t.Cleanup(tr.CloseIdleConnections)
	cfg := api.DefaultNonPooledConfig()
	cfg.Address, cfg.Scheme, cfg.Token = addr, "http", token
	cfg.HttpClient = &http.Client{Transport: tr}
	c, err := api.NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// waitFor polls cond until it holds, failing the test after timeout with
// what cond last said.
func waitFor(t *testing.T, what string, timeout time.Duration, cond func() (bool, string)) time.Duration {
	t.Helper()
	start := time.Now()
	deadline := start.Add(timeout)
	for {
		ok, last := cond()
		if ok {
			return time.Since(start)
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v; last: %s", what, timeout, last)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// healthOf lists the instances of a service with their checks, one line
// each: "<service id> <check status>,<check status>…" (the node's serfHealth
// left out), sorted by ID.
func healthOf(t *testing.T, c *api.Client, service string, passingOnly bool) []string {
	t.Helper()
	entries, _, err := c.Health().Service(service, "", passingOnly, nil)
	if err != nil {
		t.Fatalf("health of %s: %v", service, err)
	}
	return describe(entries)
}

func describe(entries []*api.ServiceEntry) []string {
	out := make([]string, 0, len(entries))
	for _, e := range entries {
		var states []string
		for _, c := range e.Checks {
			if c.CheckID != "serfHealth" {
				states = append(states, c.Status)
			}
		}
		out = append(out, e.Service.ID+" "+strings.Join(states, ","))
	}
	slices.Sort(out)
	return out
}

// waitHealth waits until the health of service (all instances, or the
// passing ones) reads want, and returns how long it took.
func waitHealth(t *testing.T, c *api.Client, service string, passingOnly bool, timeout time.Duration, want ...string) time.Duration {
	t.Helper()
	what := fmt.Sprintf("health of %s (passing only: %v) = %q", service, passingOnly, want)
	return waitFor(t, what, timeout, func() (bool, string) {
		got := healthOf(t, c, service, passingOnly)
		return slices.Equal(got, want), fmt.Sprintf("%q", got)
	})
}
