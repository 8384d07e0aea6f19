package e2e

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/sluice/sluice/internal/server"
	"github.com/sluice/sluice/internal/servertest"
	"github.com/sluice/sluice/internal/store"
)

// services is the manifest of the example Services.
func services() string { return filepath.Join(examples(), "services.yaml") }

// relabel applies the Service greeter with an extra label.
func relabel(t *testing.T, c *cli, value string) {
	t.Helper()
	svc := "apiVersion: sluice.io/v1alpha1\nkind: Service\nmetadata: {name: greeter, labels: {app: greeter, tier: " + value + "}}\n" +
		"spec: {selector: {app: greeter}, ports: [{name: grpc, port: 50051, protocol: grpc}]}\n"
	if r := c.runStdin(svc, "apply", "-f", "-"); r.code != 0 || r.stdout != "service/greeter configured\n" {
		t.Fatalf("relabelling greeter: %v", r)
	}
}

func expectExampleServices(w *background) {
	w.t.Helper()
	w.expect(`^ADDED +service/greeter +rv=\d+$`, `^ADDED +service/greeter-v1 +rv=\d+$`, `^ADDED +service/greeter-v2 +rv=\d+$`)
}

func TestWatch(t *testing.T) {
	t.Parallel()
	_, c := startServer(t)
	c.ok("apply", "-f", services())

	w := c.start("watch", "svc")
	expectExampleServices(w)
	relabel(t, c, "front")
	w.expect(`^MODIFIED +service/greeter +rv=\d+$`)
	c.ok("delete", "svc", "greeter-v2")
	w.expect(`^DELETED +service/greeter-v2 +rv=\d+$`)
	w.interrupt()
}

func TestWatchSelectorAndNamespaces(t *testing.T) {
	t.Parallel()
	_, c := startServer(t)
	sel := c.start("watch", "endpoints", "-l", "version=v2")
	all := c.start("watch", "svc", "-A")
	// Both have listed (nothing) once they print what the apply makes.
	c.ok("apply", "-f", examples())
	sel.expect(`^ADDED +endpoint/greeter-3 +rv=\d+$`)
	all.expect(`^ADDED +default +service/greeter +rv=\d+$`, `^ADDED +default +service/greeter-v1 `, `^ADDED +default +service/greeter-v2 `)

	web := "apiVersion: sluice.io/v1alpha1\nkind: Service\nmetadata: {name: web, namespace: shop}\nspec: {ports: [{port: 80}]}\n"
	if r := c.runStdin(web, "apply", "-f", "-"); r.code != 0 {
		t.Fatal(r)
	}
	all.expect(`^ADDED +shop +service/web +rv=\d+$`)

	// greeter-3 leaves the selector when its version label changes.
	moved := copyExamples(t, "endpoints.yaml", "version: v2", "version: v3")
	c.ok("apply", "-f", moved)
	// (Its failing health check may have changed its status meanwhile.)
	sel.expectSkipping(`^MODIFIED +endpoint/greeter-3 `, `^DELETED +endpoint/greeter-3 +rv=\d+$`)
	sel.interrupt()
	all.interrupt()
}

func TestWatchResumesAfterADroppedStream(t *testing.T) {
	t.Parallel()
	srv, c := startServer(t)
	c.ok("apply", "-f", services())
	w := c.start("watch", "svc")
	expectExampleServices(w)

	srv.Restart(t)
	eventually(t, "watch to say it reconnects", func() bool {
		return strings.Contains(w.stderr.String(), "reconnecting from resourceVersion")
	})
	relabel(t, c, "after-restart")
	// Resumed, not restarted: the next line is the change, not the objects again.
	w.expect(`^MODIFIED +service/greeter +rv=\d+$`)
	w.interrupt()
}

func TestWatchListsAgainWhenItsVersionExpired(t *testing.T) {
	t.Parallel()
	etcd := servertest.StartEtcd(t)
	srv := servertest.Start(t, server.Config{EtcdEndpoints: []string{etcd.Endpoint()}})
	c := &cli{t: t, server: srv.URL}
	c.ok("apply", "-f", services())
	w := c.start("watch", "svc")
	expectExampleServices(w)

	// While the server is down, greeter-v2 goes and history is compacted
	// past what the watch has seen.
	if err := srv.Stop(); err != nil {
		t.Fatal(err)
	}
	deleteAndCompact(t, etcd, store.Prefix+"sluice.io/Service/default/greeter-v2")
	srv.Restart(t)

	w.expect(`^DELETED +service/greeter-v2 +rv=\d+$`)
	if !strings.Contains(w.stderr.String(), "has expired; listing again") {
		t.Errorf("watch did not say it lists again; stderr:\n%s", w.stderr)
	}
	relabel(t, c, "after-relist")
	w.expect(`^MODIFIED +service/greeter +rv=\d+$`)
	w.interrupt()
}

func TestWatchErrors(t *testing.T) {
	t.Parallel()
	c := &cli{t: t, server: "http://127.0.0.1:1"}
	c.fail([]string{"watch", "svc"}, "connection refused")
	_, c = startServer(t)
	c.fail([]string{"watch", "widgets"}, `unknown kind "widgets"`)
	c.fail([]string{"watch", "svc", "-l", "version in (v1"}, "labelSelector")
}
