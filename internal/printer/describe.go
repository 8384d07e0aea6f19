package printer

import (
	"encoding/base64"
	"fmt"
	"io"
	"maps"
	"slices"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"
)

// Describe writes the multi-line, human-readable view of obj: its metadata,
// then spec, status and any other top-level field, each as indented YAML.
func Describe(w io.Writer, obj *unstructured.Unstructured, now time.Time) error {
	tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
	created := "<unknown>"
	if ts := obj.GetCreationTimestamp(); !ts.IsZero() {
		created = fmt.Sprintf("%s (%s ago)", ts.UTC().Format(time.RFC3339), age(obj, now))
	}
	for _, row := range [][2]string{
		{"Name", text(obj.GetName())},
		{"Namespace", text(obj.GetNamespace())},
		{"Kind", text(obj.GetKind())},
		{"API Version", text(obj.GetAPIVersion())},
		{"Labels", lines(sortedPairs(field(obj.Object, "metadata", "labels")))},
		{"Annotations", lines(sortedPairs(field(obj.Object, "metadata", "annotations")))},
		{"Created", created},
		{"Generation", fmt.Sprint(obj.GetGeneration())},
		{"Resource Version", text(obj.GetResourceVersion())},
		{"UID", text(string(obj.GetUID()))},
	} {
		fmt.Fprintf(tw, "%s:\t%s\n", row[0], row[1])
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, key := range sections(obj.Object) {
		if key == "data" && obj.GetKind() == "Secret" {
			fmt.Fprintf(w, "Data:%s\n", secretSizes(obj.Object[key]))
			continue
		}
		out, err := yaml.Marshal(obj.Object[key])
		if err != nil {
			return fmt.Errorf("printer: %s: %w", key, err)
		}
		body := strings.TrimRight(string(out), "\n")
		if body == "{}" || body == "[]" || body == "null" {
			fmt.Fprintf(w, "%s:  %s\n", title(key), none)
			continue
		}
		fmt.Fprintf(w, "%s:\n  %s\n", title(key), strings.ReplaceAll(body, "\n", "\n  "))
	}
	return nil
}

// lines renders values one a line in the second column.
func lines(values []string) string {
	if len(values) == 0 {
		return none
	}
	return strings.Join(values, "\n\t")
}

// sections lists the top-level fields below the metadata: spec, status, then
// the others by name.
func sections(obj map[string]any) []string {
	var keys []string
	for _, k := range []string{"spec", "status"} {
		if _, ok := obj[k]; ok {
			keys = append(keys, k)
		}
	}
	var rest []string
	for k := range obj {
		switch k {
		case "apiVersion", "kind", "metadata", "spec", "status":
		default:
			rest = append(rest, k)
		}
	}
	sort.Strings(rest)
	return append(keys, rest...)
}

func title(key string) string {
	return strings.ToUpper(key[:1]) + key[1:]
}

// secretSizes renders a Secret's data as its keys and sizes, never the
// values, as kubectl describe does.
func secretSizes(v any) string {
	m, _ := v.(map[string]any)
	if len(m) == 0 {
		return "  " + none
	}
	var b strings.Builder
	for _, k := range slices.Sorted(maps.Keys(m)) {
		s, _ := m[k].(string)
		n, err := base64.StdEncoding.DecodeString(s)
		size := fmt.Sprintf("%d bytes", len(n))
		if err != nil {
			size = "not base64"
		}
		fmt.Fprintf(&b, "\n  %s:  %s", k, size)
	}
	return b.String()
}
