package gatewaystatus_test

import (
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"
	"sigs.k8s.io/yaml"

	"github.com/sluice/sluice/internal/certtest"
	"github.com/sluice/sluice/internal/client"
	"github.com/sluice/sluice/internal/gatewaystatus"
	"github.com/sluice/sluice/internal/resource"
	"github.com/sluice/sluice/internal/server"
	"github.com/sluice/sluice/internal/servertest"
)

// world is a Gateway with an HTTP listener and two HTTPS listeners, one of
// whose Secret is missing, and routes that attach or fail to for each reason.
func world(t *testing.T) []string {
	crt, key := certtest.KeyPair(t, "a.example.com")
	return []string{`
apiVersion: sluice.io/v1alpha1
kind: Service
metadata: {name: site, namespace: default}
spec: {selector: {app: site}, ports: [{port: 80}]}`, fmt.Sprintf(`
apiVersion: v1
kind: Secret
metadata: {name: a-tls, namespace: default}
type: kubernetes.io/tls
data: {tls.crt: %s, tls.key: %s}`, base64.StdEncoding.EncodeToString(crt), base64.StdEncoding.EncodeToString(key)), `
apiVersion: gateway.networking.k8s.io/v1
kind: Gateway
metadata: {name: web, namespace: default}
spec:
  gatewayClassName: sluice
  listeners:
  - {name: http, port: 80, protocol: HTTP}
  - {name: a, port: 443, protocol: HTTPS, hostname: a.example.com, tls: {certificateRefs: [{name: a-tls}]}}
  - {name: c, port: 443, protocol: HTTPS, hostname: c.example.com, tls: {certificateRefs: [{name: c-tls}]}}`, `
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: good, namespace: default}
spec:
  parentRefs: [{name: web, sectionName: http}, {name: web, sectionName: a}]
  hostnames: [a.example.com]
  rules: [{backendRefs: [{name: site, port: 80}]}]`, `
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: ghost-backend, namespace: default}
spec:
  parentRefs: [{name: web, sectionName: http}]
  rules: [{backendRefs: [{name: ghost, port: 80}]}]`, `
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: other-host, namespace: default}
spec:
  parentRefs: [{name: web, sectionName: a}]
  hostnames: [b.example.com]
  rules: [{backendRefs: [{name: site, port: 80}]}]`, `
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: no-gateway, namespace: default}
spec:
  parentRefs: [{name: nope}, {name: web, sectionName: zzz}]
  rules: [{backendRefs: [{name: site, port: 80}]}]`, `
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {name: elsewhere, namespace: other}
spec:
  parentRefs: [{name: web, namespace: default}]
  rules: [{backendRefs: [{name: site, namespace: default, port: 80}]}]`, `
apiVersion: gateway.networking.k8s.io/v1
kind: GRPCRoute
metadata: {name: mesh, namespace: default}
spec:
  parentRefs: [{group: "", kind: Service, name: site, port: 80}]
  rules: [{backendRefs: [{name: site, port: 80}]}]`}
}

func apply(t *testing.T, c *client.Client, docs ...string) {
	t.Helper()
	reg := resource.Builtin()
	for _, doc := range docs {
		var tm metav1.TypeMeta
		if err := yaml.Unmarshal([]byte(doc), &tm); err != nil {
			t.Fatal(err)
		}
		k, ok := reg.ByGVK(tm.GroupVersionKind())
		if !ok {
			t.Fatalf("no kind %s", tm.GroupVersionKind())
		}
		obj := k.New()
		if err := yaml.UnmarshalStrict([]byte(doc), obj); err != nil {
			t.Fatal(err)
		}
		if _, err := c.Apply(context.Background(), client.ResourceOf(k), obj.GetNamespace(), obj.GetName(), obj, nil, false); err != nil {
			t.Fatalf("apply %s %s: %v", k, obj.GetName(), err)
		}
	}
}

// waitFor polls cond until it returns "" (done) or the deadline passes,
// failing with the last reason.
func waitFor(t *testing.T, timeout time.Duration, cond func() string) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		why := cond()
		if why == "" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %s: %s", timeout, why)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func route(t *testing.T, c *client.Client, ns, name string) *gatewayv1.HTTPRoute {
	t.Helper()
	var r gatewayv1.HTTPRoute
	if err := c.Get(context.Background(), client.ResourceOf(resource.HTTPRouteKind), ns, name, &r); err != nil {
		t.Fatal(err)
	}
	return &r
}

// parents renders Sluice's parent statuses as "Accepted=True/Reason ResolvedRefs=…" per parent.
func parents(st gatewayv1.RouteStatus) string {
	var out []string
	for _, p := range st.Parents {
		if p.ControllerName != gatewaystatus.ControllerName {
			continue
		}
		a, r := meta.FindStatusCondition(p.Conditions, "Accepted"), meta.FindStatusCondition(p.Conditions, "ResolvedRefs")
		if a == nil || r == nil {
			out = append(out, "incomplete")
			continue
		}
		out = append(out, fmt.Sprintf("%s/%s %s/%s", a.Status, a.Reason, r.Status, r.Reason))
	}
	return strings.Join(out, "; ")
}

func listener(gw *gatewayv1.Gateway, name string) string {
	for _, l := range gw.Status.Listeners {
		if string(l.Name) == name {
			var out []string
			for _, c := range l.Conditions {
				out = append(out, fmt.Sprintf("%s=%s/%s", c.Type, c.Status, c.Reason))
			}
			return fmt.Sprintf("attached=%d %s", l.AttachedRoutes, strings.Join(out, " "))
		}
	}
	return "none"
}

// writes reads sluice_gatewaystatus_writes_total{result="ok"} from a server's /metrics.
func writes(t *testing.T, url string) int {
	t.Helper()
	resp, err := http.Get(url + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	n := 0
	for _, m := range regexp.MustCompile(`sluice_gatewaystatus_writes_total\{kind="[A-Za-z]+",result="ok"\} (\d+)`).FindAllSubmatch(body, -1) {
		v, _ := strconv.Atoi(string(m[1]))
		n += v
	}
	return n
}

// TestStatus: a real server writes every route's parent statuses and the
// Gateway's listener statuses with the Gateway API's reasons, corrects them
// when the world changes, and writes nothing while it does not.
func TestStatus(t *testing.T) {
	srv := servertest.Start(t, server.Config{})
	c := srv.Client(t, "")
	apply(t, c, world(t)...)

	want := map[string]string{
		"default/good":          "True/Accepted True/ResolvedRefs; True/Accepted True/ResolvedRefs",
		"default/ghost-backend": "True/Accepted False/BackendNotFound",
		"default/other-host":    "False/NoMatchingListenerHostname True/ResolvedRefs",
		"default/no-gateway":    "False/NoMatchingParent True/ResolvedRefs; False/NoMatchingParent True/ResolvedRefs",
		"other/elsewhere":       "False/NotAllowedByListeners True/ResolvedRefs",
	}
	waitFor(t, 10*time.Second, func() string {
		for key, w := range want {
			ns, name, _ := strings.Cut(key, "/")
			r := route(t, c, ns, name)
			if got := parents(r.Status.RouteStatus); got != w {
				return fmt.Sprintf("HTTPRoute %s parents = %q, want %q", key, got, w)
			}
			for _, p := range r.Status.Parents {
				for _, cd := range p.Conditions {
					if cd.ObservedGeneration != r.Generation || cd.Message == "" {
						return fmt.Sprintf("HTTPRoute %s condition %s: observedGeneration %d (want %d), message %q", key, cd.Type, cd.ObservedGeneration, r.Generation, cd.Message)
					}
				}
			}
		}
		var g gatewayv1.GRPCRoute
		if err := c.Get(context.Background(), client.ResourceOf(resource.GRPCRouteKind), "default", "mesh", &g); err != nil {
			t.Fatal(err)
		}
		if got := parents(g.Status.RouteStatus); got != "True/Accepted True/ResolvedRefs" {
			return fmt.Sprintf("GRPCRoute mesh parents = %q", got)
		}
		return ""
	})
	gateway := func() *gatewayv1.Gateway {
		var gw gatewayv1.Gateway
		if err := c.Get(context.Background(), client.ResourceOf(resource.GatewayKind), "default", "web", &gw); err != nil {
			t.Fatal(err)
		}
		return &gw
	}
	wantListeners := map[string]string{
		"http": "attached=2 Accepted=True/Accepted Conflicted=False/NoConflicts ResolvedRefs=True/ResolvedRefs Programmed=True/Programmed",
		"a":    "attached=1 Accepted=True/Accepted Conflicted=False/NoConflicts ResolvedRefs=True/ResolvedRefs Programmed=True/Programmed",
		"c":    "attached=0 Accepted=True/Accepted Conflicted=False/NoConflicts ResolvedRefs=False/InvalidCertificateRef Programmed=False/Invalid",
	}
	waitFor(t, 10*time.Second, func() string {
		gw := gateway()
		for name, w := range wantListeners {
			if got := listener(gw, name); got != w {
				return fmt.Sprintf("listener %s = %q, want %q", name, got, w)
			}
		}
		if !meta.IsStatusConditionTrue(gw.Status.Conditions, "Accepted") || !meta.IsStatusConditionTrue(gw.Status.Conditions, "Programmed") {
			return fmt.Sprintf("gateway conditions %+v, want Accepted and Programmed", gw.Status.Conditions)
		}
		return ""
	})
	if msg := meta.FindStatusCondition(gateway().Status.Listeners[2].Conditions, "ResolvedRefs").Message; !strings.Contains(msg, "Secret default/c-tls does not exist") {
		t.Errorf("listener c ResolvedRefs message %q does not name the missing Secret", msg)
	}

	// An unchanged world: no status write at all for a few seconds.
	before, rv := writes(t, srv.URL), route(t, c, "default", "good").ResourceVersion
	if before == 0 {
		t.Fatal("sluice_gatewaystatus_writes_total is 0 after statuses were written")
	}
	time.Sleep(3 * time.Second) // observing the absence of writes needs a span of time
	if after := writes(t, srv.URL); after != before {
		t.Errorf("status writes while nothing changed: %d, then %d", before, after)
	}
	if got := route(t, c, "default", "good").ResourceVersion; got != rv {
		t.Errorf("route good was rewritten while nothing changed: resourceVersion %s, then %s", rv, got)
	}

	// The world changes: the missing Secret and Service appear.
	crt, key := certtest.KeyPair(t, "c.example.com")
	apply(t, c, fmt.Sprintf(`
apiVersion: v1
kind: Secret
metadata: {name: c-tls, namespace: default}
type: kubernetes.io/tls
data: {tls.crt: %s, tls.key: %s}`, base64.StdEncoding.EncodeToString(crt), base64.StdEncoding.EncodeToString(key)), `
apiVersion: sluice.io/v1alpha1
kind: Service
metadata: {name: ghost, namespace: default}
spec: {selector: {app: ghost}, ports: [{port: 80}]}`)
	waitFor(t, 10*time.Second, func() string {
		if got := listener(gateway(), "c"); !strings.Contains(got, "ResolvedRefs=True/ResolvedRefs Programmed=True/Programmed") {
			return "listener c = " + got
		}
		if got := parents(route(t, c, "default", "ghost-backend").Status.RouteStatus); got != "True/Accepted True/ResolvedRefs" {
			return "ghost-backend = " + got
		}
		return ""
	})
}

// TestTwoServersConverge: two servers over one etcd write the same status
// and then stop writing: no fight, no loop.
func TestTwoServersConverge(t *testing.T) {
	etcd := servertest.StartEtcd(t)
	a := servertest.Start(t, server.Config{EtcdEndpoints: []string{etcd.Endpoint()}})
	b := servertest.Start(t, server.Config{EtcdEndpoints: []string{etcd.Endpoint()}})
	c := a.Client(t, "")
	apply(t, c, world(t)...)
	waitFor(t, 10*time.Second, func() string {
		if got := parents(route(t, c, "other", "elsewhere").Status.RouteStatus); got != "False/NotAllowedByListeners True/ResolvedRefs" {
			return "elsewhere = " + got
		}
		if got := parents(route(t, b.Client(t, ""), "default", "good").Status.RouteStatus); got != "True/Accepted True/ResolvedRefs; True/Accepted True/ResolvedRefs" {
			return "good = " + got
		}
		return ""
	})
	// Let both settle, then expect silence from both.
	var wa, wb int
	waitFor(t, 10*time.Second, func() string {
		na, nb := writes(t, a.URL), writes(t, b.URL)
		if na != wa || nb != wb {
			wa, wb = na, nb
			time.Sleep(time.Second)
			return fmt.Sprintf("still writing: %d and %d", na, nb)
		}
		return ""
	})
	rv := route(t, c, "default", "good").ResourceVersion
	time.Sleep(3 * time.Second) // observing the absence of writes needs a span of time
	if na, nb := writes(t, a.URL), writes(t, b.URL); na != wa || nb != wb {
		t.Errorf("status writes after convergence: server a %d→%d, server b %d→%d", wa, na, wb, nb)
	}
	if got := route(t, c, "default", "good").ResourceVersion; got != rv {
		t.Errorf("route good rewritten after convergence: %s → %s", rv, got)
	}
	t.Logf("writes: server a %d, server b %d", wa, wb)
}
