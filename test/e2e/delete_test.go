package e2e

import (
	"path/filepath"
	"strings"
	"testing"
)

func TestDelete(t *testing.T) {
	t.Parallel()
	_, c := startServer(t)
	c.ok("apply", "-f", examples())

	if out := c.ok("delete", "svc", "greeter-v2"); out != "service/greeter-v2 deleted\n" {
		t.Errorf("delete svc greeter-v2 printed %q", out)
	}
	c.fail([]string{"get", "svc", "greeter-v2"}, "not found")

	if out := c.ok("delete", "endpoints", "greeter-1", "greeter-2"); out != "endpoint/greeter-1 deleted\nendpoint/greeter-2 deleted\n" {
		t.Errorf("delete of two endpoints printed %q", out)
	}

	if out := c.ok("delete", "-f", filepath.Join(examples(), "gateway.yaml")); out != "gateway/edge deleted\nhttproute/greeter-edge deleted\n" {
		t.Errorf("delete -f gateway.yaml printed %q", out)
	}

	r := c.fail([]string{"delete", "svc", "greeter-v2", "greeter-v1"}, `service/greeter-v2: not found: Service.sluice.io "greeter-v2" in namespace "default"`)
	if r.stdout != "service/greeter-v1 deleted\n" {
		t.Errorf("delete of a missing and an existing Service printed %q, want the existing one deleted", r.stdout)
	}

	// What is left of the examples goes; what is already gone is an error.
	r = c.fail([]string{"delete", "-f", examples()}, "endpoint/greeter-1: not found", "gateway/edge: not found", "service/greeter-v1: not found")
	for _, obj := range []string{"backendpolicy/greeter", "endpoint/greeter-3", "grpcroute/greeter-split", "service/greeter"} {
		if !strings.Contains(r.stdout, obj+" deleted\n") {
			t.Errorf("delete -f examples/ did not delete %s:\n%s", obj, r.stdout)
		}
	}
	for _, kind := range exampleKinds {
		if r := c.run("get", kind); r.code != 0 || r.stdout != "" {
			t.Errorf("get %s after deleting everything: %v", kind, r)
		}
	}

	c.fail([]string{"delete", "svc"}, "give the NAME of at least one object")
	c.fail([]string{"delete", "svc", "x", "-f", examples()}, "give either KIND NAME... or -f FILE|DIR|-")
	c.fail([]string{"delete", "widget", "x"}, `unknown kind "widget"`)
	if r := c.runStdin("apiVersion: sluice.io/v1alpha1\nkind: Widget\nmetadata: {name: w}\n", "delete", "-f", "-"); r.code != 1 ||
		!strings.Contains(r.stderr, "nothing was deleted") || !strings.Contains(r.stderr, `stdin document 0 (line 1): kind "Widget"`) {
		t.Errorf("delete -f of an unknown kind: %v", r)
	}
}
