// Package xdse2e tests Sluice's xDS control plane end to end with the real
// grpc-go xDS client: a sluice server runs in the test process (embedded
// etcd, ADS on loopback), three real gRPC backends serve the interop
// TestService, and proxyless clients (./testclient, one child process per
// xDS node, because grpc-go reads its bootstrap once per process) dial
// xds:///greeter.default while the tests change the mesh through the API and
// watch where the RPCs land. The sluice CLI binary shows what the server
// knows of the clients (`sluice proxies`).
//
// It does not test translation details (internal/xds has golden tests for
// those), nor Envoy or the Delta protocol, which grpc-go does not speak.
//
// To see grpc's own logs of the clients (xDS client included):
//
//	GRPC_GO_LOG_SEVERITY_LEVEL=info GRPC_GO_LOG_VERBOSITY_LEVEL=99 go test ./test/xds -run TestNACK -v
//
// and SLUICE_TEST_LOG=debug for the server's.
package xdse2e

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
)

var (
	// sluiceBin is the sluice CLI binary, testclientBin the proxyless client.
	sluiceBin, testclientBin string
)

func TestMain(m *testing.M) {
	flag.Parse()
	os.Exit(run(m))
}

func run(m *testing.M) int {
	root, err := moduleRoot()
	if err != nil {
		fmt.Fprintln(os.Stderr, "xdse2e:", err)
		return 1
	}
	dir, err := os.MkdirTemp("", "sluice-xdse2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "xdse2e:", err)
		return 1
	}
	defer os.RemoveAll(dir)
	sluiceBin, testclientBin = filepath.Join(dir, "sluice"), filepath.Join(dir, "testclient")
	builds := []struct{ out, pkg string }{
		{sluiceBin, "./cmd/sluice"},
		{testclientBin, "./test/xds/testclient"},
	}
	errs := make([]error, len(builds))
	var wg sync.WaitGroup
	for i, b := range builds {
		wg.Go(func() {
			cmd := exec.Command("go", "build", "-o", b.out, b.pkg)
			cmd.Dir = root
			if out, err := cmd.CombinedOutput(); err != nil {
				errs[i] = fmt.Errorf("building %s: %v\n%s", b.pkg, err, out)
			}
		})
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			fmt.Fprintln(os.Stderr, "xdse2e:", err)
			return 1
		}
	}
	code := m.Run()
	if err := goleak.Find(); err != nil && code == 0 {
		fmt.Fprintln(os.Stderr, "xdse2e: leaked goroutines:", err)
		return 1
	}
	return code
}

// moduleRoot is the sluice module's directory: go test runs a test in its
// package's directory, two levels below.
func moduleRoot() (string, error) {
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		return "", err
	}
	data, err := os.ReadFile(filepath.Join(root, "go.mod"))
	if err != nil || !bytes.HasPrefix(data, []byte("module github.com/sluice/sluice\n")) {
		return "", fmt.Errorf("%s is not the sluice module's root", root)
	}
	return root, nil
}

// sluice runs the CLI against a server, expects success and returns its stdout.
func sluice(t *testing.T, serverURL string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	args = append(args, "--server", serverURL)
	cmd := exec.CommandContext(ctx, sluiceBin, args...)
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "SLUICE_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("sluice %s: %v\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), err, &stdout, &stderr)
	}
	return stdout.String()
}
