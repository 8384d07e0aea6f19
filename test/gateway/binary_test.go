package gatewaye2e

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
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
	cmd.Env = append(withoutGOGC(), "SLUICE_GATEWAY="+namespace+"/"+gatewayName, "SLUICE_ADMIN_ADDR="+admin, "SLUICE_NODE_ID=gw-binary")
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

	waitOK(e, "the binary ready", "http://"+admin+"/ready")
	e.waitFor("a request through the binary", 10*time.Second, func() (bool, string) {
		r, err := e.do("GET", "/hello", "", nil, "")
		return err == nil && r.echo != nil && r.echo.Upstream == "echo-a", fmt.Sprint(r.status, err)
	})
	// Without GOGC the heap floor is in force: Go's pace would put the goal
	// of this small heap near 4 MiB.
	if gogc, goal := gcPace(t, admin); gogc <= 100 || goal < 64<<20 {
		t.Errorf("go_gc_gogc_percent %v, heap goal %.0f MiB: want the 64 MiB heap floor", gogc, goal/(1<<20))
	}

	// With GOGC set the user's pace stands. This process needs only its
	// admin server: it serves the same Gateway under another node id.
	admin2 := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	cmd2 := exec.Command(bin, "gateway", "--xds-server", srv.XDSAddr, "--gateway", namespace+"/"+gatewayName, "--admin-addr", admin2, "--node-id", "gw-gogc", "--bind-address", "127.0.0.2")
	cmd2.Env = append(withoutGOGC(), "GOGC=100")
	if err := cmd2.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		cmd2.Process.Kill()
		cmd2.Wait()
	}()
	waitOK(e, "the GOGC=100 gateway's admin server", "http://"+admin2+"/stats")
	if gogc, _ := gcPace(t, admin2); gogc != 100 {
		t.Errorf("with GOGC=100: go_gc_gogc_percent %v, want 100", gogc)
	}

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

// waitOK waits up to 20 s for url to answer 200.
func waitOK(e *env, what, url string) {
	e.t.Helper()
	e.waitFor(what, 20*time.Second, func() (bool, string) {
		resp, err := http.Get(url)
		if err != nil {
			return false, err.Error()
		}
		resp.Body.Close()
		return resp.StatusCode == 200, resp.Status
	})
}

// withoutGOGC is the test's environment without a GOGC of its own.
func withoutGOGC() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "GOGC=") {
			env = append(env, kv)
		}
	}
	return env
}

// gcPace reads the garbage collector's percentage and heap goal from a
// gateway's /stats.
func gcPace(t *testing.T, admin string) (gogc, goal float64) {
	t.Helper()
	resp, err := http.Get("http://" + admin + "/stats")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	value := func(name string) float64 {
		for line := range strings.Lines(string(body)) {
			if v, ok := strings.CutPrefix(line, name+" "); ok {
				f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
				if err != nil {
					t.Fatalf("/stats: %s: %v", name, err)
				}
				return f
			}
		}
		t.Fatalf("/stats has no %s", name)
		return 0
	}
	return value("go_gc_gogc_percent"), value("go_memstats_next_gc_bytes")
}
