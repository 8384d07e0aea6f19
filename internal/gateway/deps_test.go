package gateway

import (
	"os/exec"
	"strings"
	"testing"
)

// TestNoServerImports: the gateway knows the control plane only through
// xDS. Its packages import no other package of the module (store, xds,
// server, resource...), directly or not.
func TestNoServerImports(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", ".").Output()
	if err != nil {
		t.Fatalf("go list -deps: %v", err)
	}
	const module = "github.com/sluice/sluice/"
	for _, pkg := range strings.Fields(string(out)) {
		if strings.HasPrefix(pkg, module) && !strings.HasPrefix(pkg, module+"internal/gateway") {
			t.Errorf("internal/gateway depends on %s: the gateway must know the control plane only through xDS", pkg)
		}
	}
}
