// Package printer renders resources for people and for scripts: tables with
// columns chosen per kind (and a wide variant), YAML and JSON, and the
// multi-line describe view. It works on unstructured objects, so it needs no
// typed client and prints any kind (unknown kinds get the generic columns),
// and it takes the current time as an argument, so its output is
// reproducible. It does no I/O beyond the writer it is given.
package printer

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/duration"
	"sigs.k8s.io/yaml"
)

// Format is an output format of `sluice get`.
type Format string

// Output formats.
const (
	Table Format = "table"
	Wide  Format = "wide"
	YAML  Format = "yaml"
	JSON  Format = "json"
)

// Formats lists the output formats, for help and errors.
var Formats = []Format{Table, Wide, YAML, JSON}

// ParseFormat checks an -o value; "" is Table.
func ParseFormat(s string) (Format, error) {
	if s == "" {
		return Table, nil
	}
	for _, f := range Formats {
		if Format(s) == f {
			return f, nil
		}
	}
	return "", fmt.Errorf("output format %q: want one of table, wide, yaml, json", s)
}

// Raw writes data, a JSON object or list as the API returned it, as YAML or
// indented JSON.
func Raw(w io.Writer, f Format, data []byte) error {
	var out []byte
	switch f {
	case JSON:
		var buf bytes.Buffer
		if err := json.Indent(&buf, bytes.TrimSpace(data), "", "  "); err != nil {
			return fmt.Errorf("printer: %w", err)
		}
		out = append(buf.Bytes(), '\n')
	case YAML:
		var err error
		if out, err = yaml.JSONToYAML(data); err != nil {
			return fmt.Errorf("printer: %w", err)
		}
	default:
		return fmt.Errorf("printer: %s is not a raw format", f)
	}
	_, err := w.Write(out)
	return err
}

// TableOptions shape a table.
type TableOptions struct {
	// Wide adds the kind's wide columns and LABELS.
	Wide bool
	// AllNamespaces adds a NAMESPACE column first.
	AllNamespaces bool
	// Now is the time AGE is measured to.
	Now time.Time
}

// column is one column of a kind's table.
type column struct {
	header string
	wide   bool // only in wide tables
	value  func(obj map[string]any) string
}

// columns are the kind-specific columns of each kind's table, between NAME
// and AGE (and after AGE, in wide tables, the wide ones).
var columns = map[string][]column{
	"Service": {
		{header: "SELECTOR", value: func(o map[string]any) string { return pairs(field(o, "spec", "selector")) }},
		{header: "PORTS", value: servicePorts},
	},
	"Endpoint": {
		{header: "ADDRESS", value: func(o map[string]any) string { return text(field(o, "spec", "address")) }},
		{header: "PORTS", value: endpointPorts},
		{header: "WEIGHT", value: func(o map[string]any) string { return text(field(o, "spec", "weight")) }},
		{header: "HEALTH", value: func(o map[string]any) string { return text(field(o, "status", "health")) }},
		{header: "CHECK", wide: true, value: healthCheck},
	},
	"BackendPolicy": {
		{header: "TARGETS", value: targets},
		{header: "LOAD-BALANCER", wide: true, value: func(o map[string]any) string { return text(field(o, "spec", "loadBalancer", "type")) }},
		{header: "RETRIES", wide: true, value: func(o map[string]any) string { return text(field(o, "spec", "retry", "attempts")) }},
		{header: "TIMEOUT", wide: true, value: func(o map[string]any) string { return text(field(o, "spec", "timeouts", "request")) }},
	},
	"Gateway": {
		{header: "CLASS", value: func(o map[string]any) string { return text(field(o, "spec", "gatewayClassName")) }},
		{header: "LISTENERS", value: listeners},
		{header: "PROGRAMMED", wide: true, value: func(o map[string]any) string { return condition(field(o, "status", "conditions"), "Programmed") }},
	},
	"HTTPRoute": routeColumns,
	"GRPCRoute": routeColumns,
	// Never the data itself: how many keys it holds.
	"Secret": {
		{header: "TYPE", value: func(o map[string]any) string { return text(field(o, "type")) }},
		{header: "DATA", value: func(o map[string]any) string {
			m, _ := field(o, "data").(map[string]any)
			return fmt.Sprint(len(m))
		}},
	},
}

var routeColumns = []column{
	{header: "HOSTNAMES", value: hostnames},
	{header: "PARENTS", value: parents},
	{header: "ACCEPTED", value: accepted},
	{header: "BACKENDS", wide: true, value: backends},
}

// PrintTable writes objs, all of kind kind, as a table.
func PrintTable(w io.Writer, kind string, objs []unstructured.Unstructured, opts TableOptions) error {
	var cols []column
	for _, c := range columns[kind] {
		if !c.wide {
			cols = append(cols, c)
		}
	}
	var after []column
	if opts.Wide {
		for _, c := range columns[kind] {
			if c.wide {
				after = append(after, c)
			}
		}
		after = append(after, column{header: "LABELS", value: func(o map[string]any) string { return pairs(field(o, "metadata", "labels")) }})
	}
	tw := tabwriter.NewWriter(w, 0, 8, 3, ' ', 0)
	var header []string
	if opts.AllNamespaces {
		header = append(header, "NAMESPACE")
	}
	header = append(header, "NAME")
	for _, c := range cols {
		header = append(header, c.header)
	}
	header = append(header, "AGE")
	for _, c := range after {
		header = append(header, c.header)
	}
	fmt.Fprintln(tw, strings.Join(header, "\t"))
	for i := range objs {
		o := &objs[i]
		var row []string
		if opts.AllNamespaces {
			row = append(row, o.GetNamespace())
		}
		row = append(row, o.GetName())
		for _, c := range cols {
			row = append(row, c.value(o.Object))
		}
		row = append(row, age(o, opts.Now))
		for _, c := range after {
			row = append(row, c.value(o.Object))
		}
		fmt.Fprintln(tw, strings.Join(row, "\t"))
	}
	return tw.Flush()
}

// none stands for an empty cell or value.
const none = "<none>"

func age(o *unstructured.Unstructured, now time.Time) string {
	ts := o.GetCreationTimestamp()
	if ts.IsZero() {
		return "<unknown>"
	}
	return duration.HumanDuration(now.Sub(ts.Time))
}

// field returns the value at path in obj, nil when any step is missing or not an object.
func field(obj map[string]any, path ...string) any {
	var v any = obj
	for _, p := range path {
		m, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		v = m[p]
	}
	return v
}

// text renders a scalar; none when it is missing or empty.
func text(v any) string {
	if v == nil || v == "" {
		return none
	}
	return fmt.Sprint(v)
}

// items returns the objects of a list value, skipping anything else.
func items(v any) []map[string]any {
	list, _ := v.([]any)
	out := make([]map[string]any, 0, len(list))
	for _, x := range list {
		if m, ok := x.(map[string]any); ok {
			out = append(out, m)
		}
	}
	return out
}

// joined renders parts comma-separated, none when there are none.
func joined(parts []string) string {
	if len(parts) == 0 {
		return none
	}
	return strings.Join(parts, ",")
}

// pairs renders a string map as sorted k=v pairs.
func pairs(v any) string { return joined(sortedPairs(v)) }

func sortedPairs(v any) []string {
	m, _ := v.(map[string]any)
	parts := make([]string, 0, len(m))
	for k, val := range m {
		parts = append(parts, k+"="+fmt.Sprint(val))
	}
	sort.Strings(parts)
	return parts
}

// named renders "name:rest", or rest alone when the name is empty.
func named(name any, rest string) string {
	if s, _ := name.(string); s != "" {
		return s + ":" + rest
	}
	return rest
}

func servicePorts(o map[string]any) string {
	var parts []string
	for _, p := range items(field(o, "spec", "ports")) {
		parts = append(parts, named(p["name"], fmt.Sprintf("%v/%v", p["port"], p["protocol"])))
	}
	return joined(parts)
}

func endpointPorts(o map[string]any) string {
	var parts []string
	for _, p := range items(field(o, "spec", "ports")) {
		parts = append(parts, named(p["name"], fmt.Sprint(p["port"])))
	}
	return joined(parts)
}

// healthCheck shows an Endpoint's checks: the active one (http:/path, grpc,
// tcp) and a TTL (ttl:10s), with the state of each when it has one.
func healthCheck(o map[string]any) string {
	states := map[string]string{}
	for _, c := range items(field(o, "status", "checks")) {
		if s, ok := c["state"].(string); ok {
			states[fmt.Sprint(c["name"])] = "=" + s
		}
	}
	var parts []string
	hc, _ := field(o, "spec", "healthCheck").(map[string]any)
	for _, typ := range []string{"http", "grpc", "tcp"} {
		if check, ok := hc[typ].(map[string]any); ok {
			if path, ok := check["path"].(string); ok {
				typ += ":" + path
			}
			parts = append(parts, typ+states["active"])
		}
	}
	if ttl, ok := field(o, "spec", "ttl").(string); ok {
		parts = append(parts, "ttl:"+ttl+states["ttl"])
	}
	return joined(parts)
}

func targets(o map[string]any) string {
	var parts []string
	for _, t := range items(field(o, "spec", "targetRefs")) {
		parts = append(parts, fmt.Sprint(t["name"]))
	}
	return joined(parts)
}

func listeners(o map[string]any) string {
	var parts []string
	for _, l := range items(field(o, "spec", "listeners")) {
		parts = append(parts, named(l["name"], fmt.Sprintf("%v/%v", l["port"], l["protocol"])))
	}
	return joined(parts)
}

// condition returns the status of the condition of type typ.
func condition(v any, typ string) string {
	for _, c := range items(v) {
		if c["type"] == typ {
			return text(c["status"])
		}
	}
	return "<unknown>"
}

// accepted sums up a route's Accepted condition over its parents: True when
// every parent accepted it, else each refusal's reason (describe says more).
func accepted(o map[string]any) string {
	var refused []string
	n := 0
	for _, p := range items(field(o, "status", "parents")) {
		for _, c := range items(p["conditions"]) {
			if c["type"] != "Accepted" {
				continue
			}
			n++
			if c["status"] != "True" {
				refused = append(refused, "False:"+text(c["reason"]))
			}
		}
	}
	switch {
	case n == 0:
		return "<unknown>"
	case len(refused) == 0:
		return "True"
	}
	return joined(refused)
}

func hostnames(o map[string]any) string {
	list, _ := field(o, "spec", "hostnames").([]any)
	if len(list) == 0 {
		return "*"
	}
	parts := make([]string, len(list))
	for i, h := range list {
		parts[i] = fmt.Sprint(h)
	}
	return strings.Join(parts, ",")
}

// parents renders parentRefs as kind/name, with :port or :section when set.
func parents(o map[string]any) string {
	var parts []string
	for _, p := range items(field(o, "spec", "parentRefs")) {
		kind, _ := p["kind"].(string)
		if kind == "" {
			kind = "Gateway"
		}
		ref := strings.ToLower(kind) + "/" + fmt.Sprint(p["name"])
		if port, ok := p["port"]; ok {
			ref += fmt.Sprintf(":%v", port)
		} else if section, ok := p["sectionName"]; ok {
			ref += fmt.Sprintf(":%v", section)
		}
		parts = append(parts, ref)
	}
	return joined(parts)
}

// backends renders every rule's backendRefs once each, as name:port(weight).
func backends(o map[string]any) string {
	var parts []string
	seen := map[string]bool{}
	for _, rule := range items(field(o, "spec", "rules")) {
		for _, b := range items(rule["backendRefs"]) {
			ref := fmt.Sprintf("%v:%v", b["name"], b["port"])
			if weight, ok := b["weight"]; ok {
				ref += fmt.Sprintf("(%v)", weight)
			}
			if !seen[ref] {
				seen[ref] = true
				parts = append(parts, ref)
			}
		}
	}
	return joined(parts)
}
