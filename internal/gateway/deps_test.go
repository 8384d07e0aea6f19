package gateway

import (
	"os/exec"
	"strings"
	"testing"
)

const module = "github.com/sluice/sluice/"

// TestNoServerImports: the gateway knows the control plane only through
// xDS. Its packages import no other package of the module (store, xds,
// server, resource...), directly or not, except internal/probe, the health
// check attempts it shares with the registry, which itself imports nothing
// of the module.
func TestNoServerImports(t *testing.T) {
	for _, pkg := range moduleDeps(t, ".") {
		if !strings.HasPrefix(pkg, module+"internal/gateway") && pkg != module+"internal/probe" {
			t.Errorf("internal/gateway depends on %s: the gateway must know the control plane only through xDS", pkg)
		}
	}
	for _, pkg := range moduleDeps(t, module+"internal/probe") {
		if pkg != module+"internal/probe" {
			t.Errorf("internal/probe depends on %s: the gateway imports it, so it must import nothing of the module", pkg)
		}
	}
}

// moduleDeps are the packages of the module pkg depends on, itself included.
func moduleDeps(t *testing.T, pkg string) []string {
	t.Helper()
	out, err := exec.Command("go", "list", "-deps", pkg).Output()
	if err != nil {
		t.Fatalf("go list -deps %s: %v", pkg, err)
	}
	var deps []string
	for _, p := range strings.Fields(string(out)) {
		if strings.HasPrefix(p, module) {
			deps = append(deps, p)
		}
	}
	return deps
}
