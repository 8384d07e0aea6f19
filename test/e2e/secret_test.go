package e2e

import (
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/sluice/sluice/internal/certtest"
	"github.com/sluice/sluice/internal/server"
	"github.com/sluice/sluice/internal/servertest"
)

// TestSecretsAndRouteStatus: a user applies a TLS Secret (as stringData),
// a Gateway and a route whose hostname no listener serves; `get secrets`
// shows the type and key count, never the data; a read token cannot read
// Secrets; `describe httproute` says why the route is not attached.
func TestSecretsAndRouteStatus(t *testing.T) {
	t.Parallel()
	tokens := filepath.Join(t.TempDir(), "tokens")
	write(t, tokens, adminToken+",admin,alice\n"+readToken+",read,bob\n")
	srv := servertest.Start(t, server.Config{TokenFile: tokens})
	admin := &cli{t: t, server: srv.URL, env: []string{"SLUICE_TOKEN=" + adminToken}}
	reader := &cli{t: t, server: srv.URL, env: []string{"SLUICE_TOKEN=" + readToken}}

	crt, key := certtest.KeyPair(t, "a.example.com")
	indent := func(pem []byte) string {
		return "    " + strings.ReplaceAll(strings.TrimSpace(string(pem)), "\n", "\n    ")
	}
	file := filepath.Join(t.TempDir(), "edge.yaml")
	write(t, file, `apiVersion: v1
kind: Secret
metadata: {name: a-tls}
type: kubernetes.io/tls
stringData:
  tls.crt: |
`+indent(crt)+`
  tls.key: |
`+indent(key)+`
---
apiVersion: sluice.io/v1alpha1
kind: Service
metadata: {name: site}
spec: {selector: {app: site}, ports: [{port: 80}]}
---
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: edge}
spec:
  gatewayClassName: sluice
  listeners:
  - {name: a, port: 443, protocol: HTTPS, hostname: a.example.com, tls: {certificateRefs: [{name: a-tls}]}}
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: shop}
spec:
  parentRefs: [{name: edge}]
  hostnames: [shop.example.com]
  rules: [{backendRefs: [{name: site, port: 80}]}]
`)
	if out := admin.ok("apply", "-f", file); !strings.Contains(out, "secret/a-tls created") {
		t.Errorf("apply printed %q", out)
	}
	table := admin.ok("get", "secrets")
	if !strings.Contains(table, "TYPE") || !strings.Contains(table, "kubernetes.io/tls") || !regexp.MustCompile(`(?m)^a-tls +kubernetes.io/tls +2 `).MatchString(table) {
		t.Errorf("get secrets:\n%s\nwant a-tls of type kubernetes.io/tls with DATA 2", table)
	}
	if strings.Contains(table, "BEGIN") || strings.Contains(table, "LS0t") {
		t.Errorf("get secrets shows data:\n%s", table)
	}
	if out := admin.ok("describe", "secret", "a-tls"); strings.Contains(out, "LS0t") || !strings.Contains(out, "tls.key:") {
		t.Errorf("describe secret shows data or no key names:\n%s", out)
	}
	reader.fail([]string{"get", "secrets"}, "forbidden", "cannot read secrets")
	reader.fail([]string{"get", "secret", "a-tls", "-o", "yaml"}, "forbidden")

	deadline := time.Now().Add(10 * time.Second)
	for {
		out := reader.ok("describe", "httproute", "shop")
		if strings.Contains(out, "NoMatchingListenerHostname") && strings.Contains(out, "sluice.io/gateway-controller") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("describe httproute shop does not say why the route is not attached:\n%s", out)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
