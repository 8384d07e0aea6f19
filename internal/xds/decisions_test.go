package xds

import (
	"cmp"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/sluice/sluice/internal/golden"
)

// TestDecideGolden: what the translation decided about each Gateway
// listener and each route's parents and backends, for the cases with
// Gateways and routes; testdata/<case>.decisions.golden.
func TestDecideGolden(t *testing.T) {
	for _, name := range []string{"gateway", "gateway-tls", "greeter", "missing-backend"} {
		t.Run(name, func(t *testing.T) {
			d := Decide(loadInputs(t, filepath.Join("testdata", name, "input.yaml")))
			golden.Check(t, name+".decisions", dumpDecisions(d))
		})
	}
}

func dumpDecisions(d *Decisions) string {
	var b strings.Builder
	gws := make([]string, 0, len(d.Gateways))
	for k := range d.Gateways {
		gws = append(gws, k.String())
	}
	slices.Sort(gws)
	for _, k := range gws {
		for nn, gd := range d.Gateways {
			if nn.String() != k {
				continue
			}
			fmt.Fprintf(&b, "Gateway %s\n", k)
			var names []string
			for n := range gd.Listeners {
				names = append(names, string(n))
			}
			slices.Sort(names)
			for _, n := range names {
				l := gd.Listeners[gatewayv1.SectionName(n)]
				fmt.Fprintf(&b, "  listener %s: supported=%v conflicted=%v programmed=%v attachedRoutes=%d", n, l.Supported, l.Conflicted, l.Programmed, l.AttachedRoutes)
				for _, p := range l.CertificateProblems {
					fmt.Fprintf(&b, "\n    certificate: %s", p)
				}
				b.WriteString("\n")
			}
		}
	}
	keys := make([]RouteKey, 0, len(d.Routes))
	for k := range d.Routes {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b RouteKey) int {
		return cmp.Or(cmp.Compare(a.Kind, b.Kind), cmp.Compare(a.Namespace, b.Namespace), cmp.Compare(a.Name, b.Name))
	})
	for _, k := range keys {
		rd := d.Routes[k]
		fmt.Fprintf(&b, "%s %s/%s: resolvedRefs=%v %s: %s\n", k.Kind, k.Namespace, k.Name, rd.ResolvedRefs, rd.Reason, rd.Message)
		for _, p := range rd.Parents {
			fmt.Fprintf(&b, "  parentRefs[%d]: accepted=%v %s: %s\n", p.Index, p.Accepted, p.Reason, p.Message)
		}
	}
	return b.String()
}
