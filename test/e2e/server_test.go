package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sluice/sluice/internal/servertest"
)

// serverURLRE finds the API URL in the server's "serving" log line, text or JSON.
var serverURLRE = regexp.MustCompile(`sluice server serving.*?\bhttp"?[=:]"?(http://[0-9.:]+)`)

// startServerBinary runs `sluice server` as a child process and returns it
// with its API URL once it serves.
func startServerBinary(t *testing.T, env []string, args ...string) (*background, string) {
	t.Helper()
	c := &cli{t: t, env: env}
	// Free ports for xDS and the Consul API too, so servers run side by side.
	b := c.start(append([]string{"server", "--xds-addr", "127.0.0.1:0", "--consul-addr", "127.0.0.1:0"}, args...)...)
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if m := serverURLRE.FindStringSubmatch(b.stderr.String()); m != nil {
			return b, m[1]
		}
		select {
		case err := <-b.done:
			t.Fatalf("sluice server exited: %v\n%s", err, b.stderr)
		case <-time.After(50 * time.Millisecond):
		}
	}
	t.Fatalf("sluice server not serving after 30s:\n%s", b.stderr)
	return nil, ""
}

// items returns the items of a list printed with -o json, as JSON.
func items(t *testing.T, listJSON string) string {
	t.Helper()
	var list struct{ Items json.RawMessage }
	if err := json.Unmarshal([]byte(listJSON), &list); err != nil {
		t.Fatalf("not a list: %v\n%s", err, listJSON)
	}
	return string(list.Items)
}

// stop sends sig and expects the process to exit 0 soon.
func (b *background) stop(sig os.Signal) {
	b.t.Helper()
	if err := b.cmd.Process.Signal(sig); err != nil {
		b.t.Fatal(err)
	}
	select {
	case err := <-b.done:
		if err != nil {
			b.t.Fatalf("after %v: %v, want exit 0; stderr:\n%s", sig, err, b.stderr)
		}
	case <-time.After(15 * time.Second):
		b.t.Fatalf("no exit within 15s of %v; stderr:\n%s", sig, b.stderr)
	}
}

// TestServerBinaryShutsDownGracefullyAndKeepsData runs the real `sluice
// server`, applies the examples, stops it with SIGTERM while a watch is
// open, and starts it again on the same data dir.
func TestServerBinaryShutsDownGracefullyAndKeepsData(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	srv, url := startServerBinary(t, nil, "--data-dir", dir, "--http-addr", "127.0.0.1:0")
	c := &cli{t: t, server: url}
	c.ok("apply", "-f", examples())
	before := items(t, c.ok("get", "svc", "-o", "json"))

	watch := c.start("watch", "svc")
	watch.expect(`ADDED\s+service/greeter\b`, `ADDED\s+service/greeter-v1\b`, `ADDED\s+service/greeter-v2\b`)
	start := time.Now()
	srv.stop(syscall.SIGTERM)
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("graceful shutdown took %v with a watch open", d)
	}
	for _, want := range []string{"shutting down", "stopped"} {
		if !strings.Contains(srv.stderr.String(), want) {
			t.Errorf("server log lacks %q:\n%s", want, srv.stderr)
		}
	}
	watch.interrupt()

	srv2, url2 := startServerBinary(t, nil, "--data-dir", dir, "--http-addr", "127.0.0.1:0")
	c2 := &cli{t: t, server: url2}
	// The objects, resourceVersions included; the list's own revision moves
	// with any write to etcd (a replica registering, say).
	if after := items(t, c2.ok("get", "svc", "-o", "json")); after != before {
		t.Errorf("data changed across a restart:\nbefore %s\nafter %s", before, after)
	}
	srv2.stop(os.Interrupt)
}

func TestServerBinaryFlagsFromEnvironment(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "from-env")
	srv, url := startServerBinary(t, []string{"SLUICE_DATA_DIR=" + dir, "SLUICE_HTTP_ADDR=127.0.0.1:0", "SLUICE_LOG_FORMAT=json"})
	if _, err := os.Stat(filepath.Join(dir, "etcd")); err != nil {
		t.Errorf("SLUICE_DATA_DIR not used: %v", err)
	}
	if !strings.Contains(srv.stderr.String(), `"msg":"sluice server serving"`) {
		t.Errorf("SLUICE_LOG_FORMAT=json not used:\n%s", srv.stderr)
	}
	(&cli{t: t, server: url}).ok("get", "svc")
	srv.stop(syscall.SIGTERM)
}

func TestServerBinaryRefusesOpenNetworkAddress(t *testing.T) {
	c := &cli{t: t}
	r := c.fail([]string{"server", "--data-dir", filepath.Join(t.TempDir(), "d"), "--http-addr", "0.0.0.0:0"},
		"refusing to serve the API on 0.0.0.0:0 without authentication", "--token-file", "--insecure")
	if r.stdout != "" {
		t.Errorf("stdout %q, want nothing", r.stdout)
	}
	c.fail([]string{"server", "--log-level", "loud"}, "--log-level")
}

func TestVersion(t *testing.T) {
	out := (&cli{t: t}).ok("version")
	if !regexp.MustCompile(`^sluice \S+ \(go1\.\d+`).MatchString(out) {
		t.Errorf("version output %q", out)
	}
}

// TestServerBinaryCrashLosesNothingAcknowledged kills `sluice server` with
// SIGKILL right after acknowledged writes: every one of them is there after a
// restart on the same data dir (etcd fsyncs before it answers).
func TestServerBinaryCrashLosesNothingAcknowledged(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	srv, url := startServerBinary(t, nil, "--data-dir", dir, "--http-addr", "127.0.0.1:0")
	c := &cli{t: t, server: url}
	c.ok("apply", "-f", examples())
	var manifest strings.Builder
	for i := range 50 {
		fmt.Fprintf(&manifest, "---\napiVersion: sluice.io/v1alpha1\nkind: Service\nmetadata: {name: crash-%d}\nspec: {ports: [{port: 80}]}\n", i)
	}
	if r := c.runStdin(manifest.String(), "apply", "-f", "-"); r.code != 0 {
		t.Fatalf("apply: %v", r)
	}
	if err := srv.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	<-srv.done

	srv2, url2 := startServerBinary(t, nil, "--data-dir", dir, "--http-addr", "127.0.0.1:0")
	out := (&cli{t: t, server: url2}).ok("get", "svc")
	for i := range 50 {
		if !regexp.MustCompile(fmt.Sprintf(`(?m)^crash-%d\s`, i)).MatchString(out) {
			t.Errorf("acknowledged service crash-%d lost in the crash", i)
		}
	}
	srv2.stop(syscall.SIGTERM)
}

// TestTwoServerProcessesShareAnExternalEtcd runs two `sluice server`
// processes over one etcd started apart from both: what one is told, the
// other serves and watches, and one stopping leaves the other serving.
func TestTwoServerProcessesShareAnExternalEtcd(t *testing.T) {
	etcd := servertest.StartEtcd(t)
	endpoint := "http://" + etcd.Endpoint()
	a, urlA := startServerBinary(t, nil, "--etcd-endpoints", endpoint, "--http-addr", "127.0.0.1:0")
	b, urlB := startServerBinary(t, nil, "--etcd-endpoints", endpoint, "--http-addr", "127.0.0.1:0")
	ca, cb := &cli{t: t, server: urlA}, &cli{t: t, server: urlB}

	watch := cb.start("watch", "svc")
	ca.ok("apply", "-f", filepath.Join(examples(), "services.yaml"))
	watch.expect(`ADDED\s+service/greeter\b`, `ADDED\s+service/greeter-v1\b`, `ADDED\s+service/greeter-v2\b`)
	if got, want := items(t, cb.ok("get", "svc", "-o", "json")), items(t, ca.ok("get", "svc", "-o", "json")); got != want {
		t.Errorf("the servers disagree:\nA %s\nB %s", want, got)
	}
	a.stop(syscall.SIGTERM)
	cb.ok("delete", "svc", "greeter-v2")
	watch.expect(`DELETED\s+service/greeter-v2\b`)
	watch.interrupt()
	b.stop(syscall.SIGTERM)
}
