package gatewaye2e

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sluice/sluice/internal/server"
	"github.com/sluice/sluice/internal/servertest"
)

// TestBinary: the built `sluice gateway`, configured by SLUICE_* variables
// and flags, serves a Gateway's route and answers /ready, and stops on
// SIGTERM.
func TestBinary(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the sluice binary")
	}
	bin := filepath.Join(t.TempDir(), "sluice")
	build := exec.Command("go", "build", "-o", bin, "./cmd/sluice")
	build.Dir = filepath.Join("..", "..")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	srv := servertest.Start(t, server.Config{XDSDebounceWindow: 20 * time.Millisecond, XDSDebounceMaxDelay: 200 * time.Millisecond})
	e := &env{t: t, srv: srv, api: srv.Client(t, ""), port: freePort(t), upstream: map[string]*echo{}, http: http.DefaultClient}
	e.addUpstream("echo-a", "http")
	e.apply(gateways, gatewayName, gatewayObj(e.port))
	e.apply(httpRoutes, "bin", httpRoute("bin", nil, map[string]any{"backendRefs": []any{backend("echo-a", 1)}}))

	admin := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	cmd := exec.Command(bin, "gateway", "--xds-server", srv.XDSAddr, "--bind-address", "127.0.0.1", "--access-log", "stdout")
	cmd.Env = append(os.Environ(), "SLUICE_GATEWAY="+namespace+"/"+gatewayName, "SLUICE_ADMIN_ADDR="+admin, "SLUICE_NODE_ID=gw-binary")
	// Read only once the process has exited (exec copies its output from
	// goroutines of its own until then).
	var logs, access bytes.Buffer
	cmd.Stdout, cmd.Stderr = &access, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-done
	})

	e.waitFor("the binary ready", 20*time.Second, func() (bool, string) {
		resp, err := http.Get("http://" + admin + "/ready")
		if err != nil {
			return false, err.Error()
		}
		resp.Body.Close()
		return resp.StatusCode == 200, resp.Status
	})
	e.waitFor("a request through the binary", 10*time.Second, func() (bool, string) {
		r, err := e.do("GET", "/hello", "", nil, "")
		return err == nil && r.echo != nil && r.echo.Upstream == "echo-a", fmt.Sprint(r.status, err)
	})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		done <- err
		if err != nil {
			t.Errorf("sluice gateway exited with %v\n%s", err, logs.String())
		}
	case <-ctx.Done():
		cmd.Process.Kill()
		done <- <-done
		t.Fatalf("sluice gateway still running 10s after SIGINT\n%s", logs.String())
	}
	if !strings.Contains(logs.String(), "node=gw-binary") {
		t.Errorf("the logs do not show the node id from SLUICE_NODE_ID:\n%s", logs.String())
	}
	for _, want := range []string{`"path":"/hello"`, `"status":200`, `"cluster":"echo-a.default"`, `"upstream":"127.0.0.1:`} {
		if !strings.Contains(access.String(), want) {
			t.Errorf("the access log has no %s:\n%s", want, access.String())
		}
	}
}
