package e2e

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"
)

// exampleObjects are the objects of examples/, as apply names them.
var exampleObjects = []string{
	"backendpolicy/greeter",
	"endpoint/greeter-1", "endpoint/greeter-2", "endpoint/greeter-3",
	"gateway/edge",
	"grpcroute/greeter-split",
	"httproute/greeter-edge",
	"service/greeter", "service/greeter-v1", "service/greeter-v2",
}

// exampleKinds are the kinds of examples/, as get names them.
var exampleKinds = []string{"services", "endpoints", "backendpolicies", "gateways", "httproutes", "grpcroutes"}

// applied parses apply's output into object → result ("created", ...).
func applied(t *testing.T, out string) map[string]string {
	t.Helper()
	results := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		obj, result, ok := strings.Cut(line, " ")
		if !ok {
			t.Fatalf("apply printed %q, want \"kind/name result\"", line)
		}
		results[obj] = result
	}
	return results
}

// allResults says which objects apply printed, and checks that each has result want.
func allResults(t *testing.T, results map[string]string, want string) []string {
	t.Helper()
	var objs []string
	for obj, result := range results {
		objs = append(objs, obj)
		if result != want {
			t.Errorf("%s %s, want %s", obj, result, want)
		}
	}
	sort.Strings(objs)
	return objs
}

// resourceVersions returns kind/name → resourceVersion of every example object.
func resourceVersions(t *testing.T, c *cli) map[string]string {
	t.Helper()
	rvs := map[string]string{}
	for _, kind := range exampleKinds {
		var list struct {
			Items []struct {
				Kind     string
				Metadata struct{ Name, ResourceVersion string }
			}
		}
		if err := json.Unmarshal([]byte(c.ok("get", kind, "-o", "json")), &list); err != nil {
			t.Fatal(err)
		}
		for _, it := range list.Items {
			rvs[strings.ToLower(it.Kind)+"/"+it.Metadata.Name] = it.Metadata.ResourceVersion
		}
	}
	return rvs
}

// copyExamples copies examples/ to a temporary directory, editing one file.
func copyExamples(t *testing.T, file, old, new string) string {
	t.Helper()
	dir := t.TempDir()
	entries, err := os.ReadDir(examples())
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		data, err := os.ReadFile(filepath.Join(examples(), e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if e.Name() == file {
			if !strings.Contains(string(data), old) {
				t.Fatalf("%s does not contain %q", file, old)
			}
			data = []byte(strings.Replace(string(data), old, new, 1))
		}
		if err := os.WriteFile(filepath.Join(dir, e.Name()), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestApplyExamples(t *testing.T) {
	t.Parallel()
	_, c := startServer(t)

	created := allResults(t, applied(t, c.ok("apply", "-f", examples())), "created")
	if !reflect.DeepEqual(created, exampleObjects) {
		t.Fatalf("apply created %v, want %v", created, exampleObjects)
	}
	if out := c.ok("get", "svc"); !strings.Contains(out, "greeter-v2") {
		t.Errorf("get svc after applying the examples:\n%s", out)
	}
	rvs := resourceVersions(t, c)
	if len(rvs) != len(exampleObjects) {
		t.Fatalf("found %d example objects, want %d: %v", len(rvs), len(exampleObjects), rvs)
	}

	again := allResults(t, applied(t, c.ok("apply", "-f", examples())), "unchanged")
	if !reflect.DeepEqual(again, exampleObjects) {
		t.Errorf("second apply printed %v, want %v", again, exampleObjects)
	}
	if after := resourceVersions(t, c); !reflect.DeepEqual(after, rvs) {
		t.Errorf("resourceVersions changed by an unchanged apply:\nbefore %v\nafter  %v", rvs, after)
	}

	modified := copyExamples(t, "endpoints.yaml", "port: 50063", "port: 50064")
	results := applied(t, c.ok("apply", "-f", modified))
	for _, obj := range exampleObjects {
		want := "unchanged"
		if obj == "endpoint/greeter-3" {
			want = "configured"
		}
		if results[obj] != want {
			t.Errorf("apply of a modified greeter-3: %s %s, want %s", obj, results[obj], want)
		}
	}
	var ep struct {
		Metadata struct{ Generation int }
		Spec     struct{ Ports []struct{ Port int } }
	}
	if err := json.Unmarshal([]byte(c.ok("get", "ep", "greeter-3", "-o", "json")), &ep); err != nil {
		t.Fatal(err)
	}
	if ep.Spec.Ports[0].Port != 50064 || ep.Metadata.Generation != 2 {
		t.Errorf("greeter-3 after apply: port %d generation %d, want 50064 and 2", ep.Spec.Ports[0].Port, ep.Metadata.Generation)
	}
}

func TestApplyInvalidAppliesNothing(t *testing.T) {
	t.Parallel()
	_, c := startServer(t)
	dir := t.TempDir()
	write(t, filepath.Join(dir, "a-good.yaml"), `apiVersion: sluice.io/v1alpha1
kind: Service
metadata: {name: good}
spec: {ports: [{port: 80}]}
`)
	write(t, filepath.Join(dir, "b-bad.yaml"), `apiVersion: sluice.io/v1alpha1
kind: Endpoint
metadata: {name: good-1}
spec: {address: 10.0.0.1, ports: [{port: 80}]}
---
apiVersion: sluice.io/v1alpha1
kind: Service
metadata: {name: bad-port}
spec: {ports: [{port: 70000}]}
---
apiVersion: sluice.io/v1alpha1
kind: Service
metadata: {name: typo}
spec:
  prots: [{port: 80}]
`)
	write(t, filepath.Join(dir, "c-unknown.json"), `{"apiVersion": "sluice.io/v1alpha1", "kind": "Servce", "metadata": {"name": "x"}}`)

	r := c.fail([]string{"apply", "-f", dir},
		filepath.Join(dir, "b-bad.yaml")+" document 1 (line 5): service/bad-port: spec.ports[0].port: must be 1-65535",
		filepath.Join(dir, "b-bad.yaml")+" document 2 (line 10): service/typo: spec.prots: unknown field",
		filepath.Join(dir, "c-unknown.json")+` document 0 (line 1): kind "Servce" of apiVersion "sluice.io/v1alpha1" is not served`,
		"3 of 5 documents are invalid; nothing was applied",
	)
	if r.stdout != "" {
		t.Errorf("apply of invalid documents printed %q on stdout, want nothing", r.stdout)
	}
	for _, kind := range []string{"svc", "ep"} {
		if r := c.run("get", kind); r.code != 0 || r.stdout != "" || !strings.Contains(r.stderr, "No resources found in default namespace.") {
			t.Errorf("get %s after a failed apply: want no objects, got %v", kind, r)
		}
	}
}

func TestApplyMalformedManifests(t *testing.T) {
	t.Parallel()
	_, c := startServer(t)
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.yaml")
	write(t, bad, `apiVersion: sluice.io/v1alpha1
kind: Service
metadata: {name: fine}
spec: {ports: [{port: 80}]}
---
apiVersion: sluice.io/v1alpha1
kind: Service
metadata:
  name: broken
   labels: {app: x}
`)
	c.fail([]string{"apply", "-f", bad}, bad+" document 1 (line 5): invalid YAML: yaml: line 10: mapping values are not allowed")
	c.fail([]string{"apply", "-f", filepath.Join(dir, "missing.yaml")}, "missing.yaml: no such file or directory")
	c.fail([]string{"apply", "-f", dir + "/"}, "document 1 (line 5): invalid YAML")
	c.fail([]string{"apply"}, "-f FILE|DIR|- is required")
	r := c.runStdin("- just\n- a list\n", "apply", "-f", "-")
	if r.code != 1 || !strings.Contains(r.stderr, "stdin document 0 (line 1): a document must be an object") {
		t.Errorf("apply of a YAML list from stdin: %v", r)
	}
	if r := c.run("get", "svc", "fine"); r.code != 1 {
		t.Errorf("a malformed manifest applied its valid document: %v", r)
	}
}

func TestApplyNamespaces(t *testing.T) {
	t.Parallel()
	_, c := startServer(t)
	svc := "apiVersion: sluice.io/v1alpha1\nkind: Service\nmetadata: {name: web}\nspec: {ports: [{port: 80}]}\n"
	if r := c.runStdin(svc, "apply", "-f", "-", "-n", "shop"); r.code != 0 || r.stdout != "service/web created\n" {
		t.Fatalf("apply -n shop from stdin: %v", r)
	}
	c.ok("get", "svc", "web", "-n", "shop")
	c.fail([]string{"get", "svc", "web"}, `not found`, `"web"`, `"default"`)

	other := strings.Replace(svc, "{name: web}", "{name: web, namespace: other}", 1)
	c.fail([]string{"apply", "-f", "-", "-n", "shop"}, "no objects in [-]") // stdin is empty
	if r := c.runStdin(other, "apply", "-f", "-", "-n", "shop"); r.code != 1 || !strings.Contains(r.stderr, `metadata.namespace "other" differs from -n "shop"`) {
		t.Errorf("apply of a document of namespace other with -n shop: %v", r)
	}
	if r := c.runStdin(other, "apply", "-f", "-"); r.code != 0 || r.stdout != "service/web created\n" {
		t.Errorf("apply of a document of namespace other: %v", r)
	}
	c.ok("get", "svc", "web", "-n", "other")

	asJSON := `{"apiVersion": "sluice.io/v1alpha1", "kind": "Service", "metadata": {"name": "web"}, "spec": {"ports": [{"port": 80}]}}`
	if r := c.runStdin(asJSON, "apply", "-f", "-", "-n", "shop"); r.code != 0 || r.stdout != "service/web unchanged\n" {
		t.Errorf("apply of the same Service as JSON: %v", r)
	}
}

func write(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}
