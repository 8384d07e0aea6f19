package printer

import (
	"bytes"
	"encoding/json"
	"github.com/sluice/sluice/internal/golden"
	"os"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"
)

// now is the time AGE is measured to in the golden files.
var now = time.Date(2026, 1, 1, 0, 5, 0, 0, time.UTC)

// objects returns the fixture objects of a kind, decoded the way the CLI
// decodes API responses.
func objects(t *testing.T, kind string) []unstructured.Unstructured {
	t.Helper()
	data, err := os.ReadFile("testdata/objects.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var out []unstructured.Unstructured
	for _, doc := range strings.Split(string(data), "\n---\n") {
		js, err := yaml.YAMLToJSON([]byte(doc))
		if err != nil {
			t.Fatal(err)
		}
		var u unstructured.Unstructured
		if err := u.UnmarshalJSON(js); err != nil {
			t.Fatal(err)
		}
		if u.GetKind() == kind {
			out = append(out, u)
		}
	}
	if len(out) == 0 {
		t.Fatalf("no %s in testdata/objects.yaml", kind)
	}
	return out
}

func TestPrintTable(t *testing.T) {
	tests := []struct {
		golden string
		kind   string
		opts   TableOptions
	}{
		{"services", "Service", TableOptions{}},
		{"services-all-namespaces", "Service", TableOptions{AllNamespaces: true}},
		{"services-wide", "Service", TableOptions{Wide: true}},
		{"endpoints", "Endpoint", TableOptions{}},
		{"endpoints-wide", "Endpoint", TableOptions{Wide: true}},
		{"backendpolicies", "BackendPolicy", TableOptions{}},
		{"backendpolicies-wide", "BackendPolicy", TableOptions{Wide: true}},
		{"gateways", "Gateway", TableOptions{}},
		{"gateways-wide", "Gateway", TableOptions{Wide: true}},
		{"httproutes-wide", "HTTPRoute", TableOptions{Wide: true}},
		{"grpcroutes", "GRPCRoute", TableOptions{}},
		{"secrets-wide", "Secret", TableOptions{Wide: true}},
		{"unknown-kind-wide", "Widget", TableOptions{Wide: true, AllNamespaces: true}},
	}
	for _, tt := range tests {
		t.Run(tt.golden, func(t *testing.T) {
			tt.opts.Now = now
			var buf bytes.Buffer
			if err := PrintTable(&buf, tt.kind, objects(t, tt.kind), tt.opts); err != nil {
				t.Fatal(err)
			}
			golden.Check(t, "table-"+tt.golden, buf.String())
			if strings.Contains(buf.String(), "c2VjcmV0") {
				t.Errorf("table shows secret data:\n%s", buf.String())
			}
		})
	}
}

// TestPrintTableOfMalformedObjects prints an object whose fields have the
// wrong shapes under every kind's columns: cells show <none>, nothing panics.
func TestPrintTableOfMalformedObjects(t *testing.T) {
	odd := objects(t, "Widget")
	for kind := range columns {
		var buf bytes.Buffer
		if err := PrintTable(&buf, kind, odd, TableOptions{Wide: true, AllNamespaces: true, Now: now}); err != nil {
			t.Errorf("%s: %v", kind, err)
		}
		if lines := strings.Split(strings.TrimSpace(buf.String()), "\n"); len(lines) != 2 || !strings.Contains(lines[1], "odd") {
			t.Errorf("%s: table =\n%s\nwant a header and a row for odd", kind, buf.String())
		}
	}
}

func TestPrintTableOfNothing(t *testing.T) {
	var buf bytes.Buffer
	if err := PrintTable(&buf, "Service", nil, TableOptions{Now: now}); err != nil {
		t.Fatal(err)
	}
	if got, want := buf.String(), "NAME   SELECTOR   PORTS   AGE\n"; got != want {
		t.Errorf("table of no objects = %q, want %q", got, want)
	}
}

func TestDescribe(t *testing.T) {
	tests := []struct {
		golden string
		obj    unstructured.Unstructured
	}{
		{"endpoint", objects(t, "Endpoint")[0]},
		{"gateway", objects(t, "Gateway")[0]},
		{"secret", objects(t, "Secret")[0]},
		{"unknown-kind", objects(t, "Widget")[0]},
		{"bare", unstructured.Unstructured{Object: map[string]any{"kind": "Thing", "metadata": "not an object", "status": map[string]any{}}}},
	}
	for _, tt := range tests {
		t.Run(tt.golden, func(t *testing.T) {
			var buf bytes.Buffer
			if err := Describe(&buf, &tt.obj, now); err != nil {
				t.Fatal(err)
			}
			golden.Check(t, "describe-"+tt.golden, buf.String())
			if strings.Contains(buf.String(), "c2VjcmV0") || strings.Contains(buf.String(), "secret-cert") {
				t.Errorf("describe shows secret data:\n%s", buf.String())
			}
		})
	}
}

func TestRaw(t *testing.T) {
	data := []byte(`{"kind":"Service","metadata":{"name":"greeter"},"spec":{"ports":[{"port":50051}]}}` + "\n")
	tests := []struct {
		format Format
		want   string
	}{
		{JSON, "{\n  \"kind\": \"Service\",\n  \"metadata\": {\n    \"name\": \"greeter\"\n  },\n  \"spec\": {\n    \"ports\": [\n      {\n        \"port\": 50051\n      }\n    ]\n  }\n}\n"},
		{YAML, "kind: Service\nmetadata:\n  name: greeter\nspec:\n  ports:\n  - port: 50051\n"},
	}
	for _, tt := range tests {
		t.Run(string(tt.format), func(t *testing.T) {
			var buf bytes.Buffer
			if err := Raw(&buf, tt.format, data); err != nil {
				t.Fatal(err)
			}
			if buf.String() != tt.want {
				t.Errorf("Raw(%s) =\n%s\nwant\n%s", tt.format, buf.String(), tt.want)
			}
			if tt.format == JSON && !json.Valid(buf.Bytes()) {
				t.Errorf("Raw(json) is not valid JSON")
			}
		})
	}
	if err := Raw(&bytes.Buffer{}, Table, data); err == nil {
		t.Error("Raw(table) succeeded, want an error")
	}
	if err := Raw(&bytes.Buffer{}, JSON, []byte("{not json")); err == nil {
		t.Error("Raw(json) of invalid JSON succeeded, want an error")
	}
}

func TestParseFormat(t *testing.T) {
	for in, want := range map[string]Format{"": Table, "table": Table, "wide": Wide, "yaml": YAML, "json": JSON} {
		if got, err := ParseFormat(in); err != nil || got != want {
			t.Errorf("ParseFormat(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	if _, err := ParseFormat("xml"); err == nil || !strings.Contains(err.Error(), "table, wide, yaml, json") {
		t.Errorf("ParseFormat(xml) error = %v, want one listing the formats", err)
	}
}
