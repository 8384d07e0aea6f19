package e2e

import (
	"encoding/json"
	"github.com/sluice/sluice/internal/golden"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"
)

var ageHeader = regexp.MustCompile(`(^| )AGE( +|$)`)

// normalizeAge replaces the AGE column's values, which depend on when the
// test runs, with "<age>", keeping the columns aligned.
func normalizeAge(t *testing.T, table string) string {
	t.Helper()
	lines := strings.Split(table, "\n")
	loc := ageHeader.FindStringIndex(lines[0])
	if loc == nil {
		t.Fatalf("no AGE column in\n%s", table)
	}
	start, end := loc[0], loc[1]
	if lines[0][start] == ' ' {
		start++
	}
	for i := 1; i < len(lines); i++ {
		line := lines[i]
		if len(line) <= start {
			continue
		}
		if end >= len(lines[0]) || end > len(line) {
			lines[i] = line[:start] + "<age>" // AGE is the last column
			continue
		}
		lines[i] = line[:start] + "<age>" + strings.Repeat(" ", max(1, end-start-len("<age>"))) + line[end:]
	}
	return strings.Join(lines, "\n")
}

func TestGet(t *testing.T) {
	t.Parallel()
	_, c := startServer(t)
	c.ok("apply", "-f", examples())
	shop := "apiVersion: sluice.io/v1alpha1\nkind: Service\nmetadata: {name: web, namespace: shop, labels: {app: web}}\nspec: {ports: [{port: 80}]}\n"
	if r := c.runStdin(shop, "apply", "-f", "-"); r.code != 0 {
		t.Fatal(r)
	}
	// greeter-3's gRPC health check finds nothing listening: the server
	// marks it unhealthy at its first check.
	eventually(t, "greeter-3's health check to fail", func() bool {
		return strings.Contains(c.ok("get", "ep", "greeter-3"), " unhealthy ")
	})
	// The server writes the routes' status (the ACCEPTED column).
	eventually(t, "the routes' status", func() bool {
		return strings.Contains(c.ok("get", "httproutes"), " True ") && strings.Contains(c.ok("get", "grpcroutes"), " True ")
	})
	// The server writes the Gateway's status (PROGRAMMED in the wide table).
	eventually(t, "the edge Gateway's status", func() bool {
		return strings.Contains(c.ok("get", "gw", "edge", "-o", "wide"), " True ")
	})

	t.Run("tables", func(t *testing.T) {
		for _, kind := range exampleKinds {
			golden.Check(t, "get-"+kind, normalizeAge(t, c.ok("get", kind)))
			golden.Check(t, "get-"+kind+"-wide", normalizeAge(t, c.ok("get", kind, "-o", "wide")))
		}
		golden.Check(t, "get-services-all-namespaces", normalizeAge(t, c.ok("get", "services", "-A")))
		golden.Check(t, "get-service-greeter", normalizeAge(t, c.ok("get", "service", "greeter")))
	})

	t.Run("kind names", func(t *testing.T) {
		for kind, names := range map[string][]string{
			"services":        {"svc", "service", "Service", "SERVICES", "services.sluice.io"},
			"endpoints":       {"ep", "endpoint", "Endpoint"},
			"backendpolicies": {"bp", "backendpolicy", "BackendPolicy"},
			"gateways":        {"gw", "gateway", "gateways.gateway.networking.k8s.io"},
			"httproutes":      {"httproute", "HTTPRoute"},
			"grpcroutes":      {"grpcroute", "GRPCRoute"},
		} {
			want := c.ok("get", kind, "-o", "json")
			for _, name := range names {
				if got := c.ok("get", name, "-o", "json"); got != want {
					t.Errorf("get %s differs from get %s:\n%s\nwant\n%s", name, kind, got, want)
				}
			}
		}
		c.fail([]string{"get", "widgets"}, `unknown kind "widgets"; the server serves backendpolicies (bp), endpoints (ep), gateways (gw), grpcroutes, httproutes, secrets, services (svc)`)
	})

	t.Run("json", func(t *testing.T) {
		var list struct {
			APIVersion, Kind string
			Metadata         struct{ ResourceVersion string }
			Items            []struct {
				Metadata struct{ Name, Namespace string }
				Spec     struct {
					Selector map[string]string
					Ports    []struct {
						Name, Protocol string
						Port           int
					}
				}
			}
		}
		if err := json.Unmarshal([]byte(c.ok("get", "svc", "-o", "json")), &list); err != nil {
			t.Fatal(err)
		}
		if list.Kind != "ServiceList" || list.APIVersion != "sluice.io/v1alpha1" || list.Metadata.ResourceVersion == "" || len(list.Items) != 3 {
			t.Fatalf("get svc -o json = %+v, want a ServiceList of 3 with a resourceVersion", list)
		}
		v2 := list.Items[2]
		if v2.Metadata.Name != "greeter-v2" || v2.Metadata.Namespace != "default" ||
			!reflect.DeepEqual(v2.Spec.Selector, map[string]string{"app": "greeter", "version": "v2"}) ||
			len(v2.Spec.Ports) != 1 || v2.Spec.Ports[0].Port != 50051 || v2.Spec.Ports[0].Protocol != "grpc" {
			t.Errorf("greeter-v2 in get svc -o json = %+v", v2)
		}

		var route struct {
			Kind string
			Spec struct {
				ParentRefs []struct{ Kind, Name string }
				Rules      []struct {
					BackendRefs []struct {
						Name   string
						Weight int
					}
				}
			}
		}
		if err := json.Unmarshal([]byte(c.ok("get", "grpcroute", "greeter-split", "-o", "json")), &route); err != nil {
			t.Fatal(err)
		}
		refs := route.Spec.Rules[0].BackendRefs
		if route.Kind != "GRPCRoute" || route.Spec.ParentRefs[0].Kind != "Service" || len(refs) != 2 || refs[0].Weight != 80 || refs[1].Weight != 20 {
			t.Errorf("get grpcroute greeter-split -o json = %+v", route)
		}
	})

	t.Run("yaml", func(t *testing.T) {
		var ep struct {
			Kind     string
			Metadata struct {
				Name   string
				Labels map[string]string
			}
			Spec struct {
				Address string
				Weight  int
			}
			Status struct{ Health string }
		}
		if err := yaml.Unmarshal([]byte(c.ok("get", "ep", "greeter-3", "-o", "yaml")), &ep); err != nil {
			t.Fatal(err)
		}
		if ep.Kind != "Endpoint" || ep.Metadata.Name != "greeter-3" || ep.Metadata.Labels["zone"] != "zone-a" ||
			ep.Spec.Address != "127.0.0.1" || ep.Spec.Weight != 1 || ep.Status.Health != "unhealthy" {
			t.Errorf("get ep greeter-3 -o yaml = %+v", ep)
		}
		var list struct {
			Kind  string
			Items []struct{ Metadata struct{ Name string } }
		}
		if err := yaml.Unmarshal([]byte(c.ok("get", "gw", "-o", "yaml")), &list); err != nil {
			t.Fatal(err)
		}
		if list.Kind != "GatewayList" || len(list.Items) != 1 || list.Items[0].Metadata.Name != "edge" {
			t.Errorf("get gw -o yaml = %+v", list)
		}
	})

	t.Run("selector", func(t *testing.T) {
		if got := names(t, c.ok("get", "ep", "-l", "version=v1")); !reflect.DeepEqual(got, []string{"greeter-1", "greeter-2"}) {
			t.Errorf("get ep -l version=v1 = %v, want greeter-1 and greeter-2", got)
		}
		if got := names(t, c.ok("get", "ep", "-l", "zone=zone-a,version!=v1")); !reflect.DeepEqual(got, []string{"greeter-3"}) {
			t.Errorf("get ep -l zone=zone-a,version!=v1 = %v, want greeter-3", got)
		}
		c.fail([]string{"get", "ep", "-l", "version in (v1"}, "labelSelector")
		c.fail([]string{"get", "ep", "greeter-1", "-l", "version=v1"}, "a NAME cannot be combined with -A or -l")
	})

	t.Run("all namespaces", func(t *testing.T) {
		out := c.ok("get", "svc", "-A", "-l", "app")
		if !regexp.MustCompile(`(?m)^shop +web `).MatchString(out) || !regexp.MustCompile(`(?m)^default +greeter `).MatchString(out) {
			t.Errorf("get svc -A lacks default/greeter or shop/web:\n%s", out)
		}
		if out := c.ok("get", "svc"); strings.Contains(out, "web") {
			t.Errorf("get svc (namespace default) shows shop's web:\n%s", out)
		}
		if got := names(t, c.ok("get", "svc", "-n", "shop")); !reflect.DeepEqual(got, []string{"web"}) {
			t.Errorf("get svc -n shop = %v, want web", got)
		}
	})

	t.Run("nothing found", func(t *testing.T) {
		r := c.run("get", "svc", "-n", "empty")
		if r.code != 0 || r.stdout != "" || r.stderr != "No resources found in empty namespace.\n" {
			t.Errorf("get svc -n empty: %v", r)
		}
		r = c.run("get", "svc", "-A", "-l", "app=nothing")
		if r.code != 0 || r.stdout != "" || r.stderr != "No resources found.\n" {
			t.Errorf("get svc -A -l app=nothing: %v", r)
		}
	})

	t.Run("errors", func(t *testing.T) {
		r := c.fail([]string{"get", "svc", "nope"}, `Error: not found: Service.sluice.io "nope" in namespace "default"`)
		if r.stdout != "" {
			t.Errorf("get of a missing object printed %q", r.stdout)
		}
		c.fail([]string{"get", "svc", "-o", "xml"}, `output format "xml": want one of table, wide, yaml, json`)
		c.fail([]string{"get"}, "accepts between 1 and 2 arg(s)")
	})

	t.Run("describe", func(t *testing.T) {
		out := c.ok("describe", "ep", "greeter-3")
		for _, want := range []string{
			"Name:              greeter-3\n", "Namespace:         default\n", "Kind:              Endpoint\n",
			"Labels:            app=greeter\n                   version=v2\n                   zone=zone-a\n",
			"Spec:\n  address: 127.0.0.1\n", "    port: 50063\n", "Status:\n  checks:\n", "    name: active\n", "    state: critical\n", "  health: unhealthy\n",
		} {
			if !strings.Contains(out, want) {
				t.Errorf("describe ep greeter-3 lacks %q:\n%s", want, out)
			}
		}
		if out := c.ok("describe", "svc", "web", "-n", "shop"); !strings.Contains(out, "Namespace:         shop\n") {
			t.Errorf("describe svc web -n shop:\n%s", out)
		}
		c.fail([]string{"describe", "gw", "nope"}, `not found: Gateway.gateway.networking.k8s.io "nope"`)
		c.fail([]string{"describe", "gw"}, "accepts 2 arg(s)")
	})

	t.Run("completion", func(t *testing.T) {
		// Every served kind: those of the examples, and Secrets.
		served := append(exampleKindsSorted(), "secrets")
		slices.Sort(served)
		if got := completions(t, c, "get", ""); !reflect.DeepEqual(got, served) {
			t.Errorf("completion of KIND = %v, want %v", got, served)
		}
		if got := completions(t, c, "describe", "ep", "greeter-"); !reflect.DeepEqual(got, []string{"greeter-1", "greeter-2", "greeter-3"}) {
			t.Errorf("completion of an Endpoint NAME = %v", got)
		}
		if got := completions(t, c, "delete", "svc", "greeter", "greeter-v"); !reflect.DeepEqual(got, []string{"greeter-v1", "greeter-v2"}) {
			t.Errorf("completion of a second Service NAME for delete = %v", got)
		}
		if got := completions(t, c, "get", "svc", "-n", "shop", ""); !reflect.DeepEqual(got, []string{"web"}) {
			t.Errorf("completion of a Service NAME in shop = %v", got)
		}
		if got := completions(t, c, "get", "svc", "greeter", ""); len(got) != 0 {
			t.Errorf("completion after get's NAME = %v, want nothing", got)
		}
		env := &cli{t: t, env: []string{"SLUICE_SERVER=" + c.server}}
		if got := completions(t, env, "watch", "h"); !reflect.DeepEqual(got, []string{"httproutes"}) {
			t.Errorf("completion with the server from SLUICE_SERVER = %v", got)
		}
		gone := &cli{t: t, server: "http://127.0.0.1:1"}
		if got := completions(t, gone, "get", ""); len(got) != 0 {
			t.Errorf("completion without a server = %v, want nothing", got)
		}
		if out := (&cli{t: t}).ok("completion", "bash"); !strings.Contains(out, "__start_sluice") {
			t.Errorf("completion bash does not look like a bash completion script")
		}
	})
}

// names returns the NAME column of a table.
func names(t *testing.T, table string) []string {
	t.Helper()
	var out []string
	for _, line := range strings.Split(strings.TrimSpace(table), "\n")[1:] {
		out = append(out, strings.Fields(line)[0])
	}
	return out
}

// completions runs shell completion of args and returns the candidates.
func completions(t *testing.T, c *cli, args ...string) []string {
	t.Helper()
	// The word to complete is the last argument: give --server before it.
	words := append([]string{"__complete"}, args...)
	if c.server != "" {
		words = append([]string{"__complete", args[0], "--server", c.server}, args[1:]...)
	}
	out := (&cli{t: t, env: c.env}).ok(words...)
	var got []string
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		if line != "" && !strings.HasPrefix(line, ":") {
			got = append(got, line)
		}
	}
	return got
}

func exampleKindsSorted() []string {
	kinds := append([]string(nil), exampleKinds...)
	slices.Sort(kinds)
	return kinds
}
