package xds

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"google.golang.org/protobuf/encoding/protojson"

	"github.com/sluice/sluice/internal/golden"
	"github.com/sluice/sluice/internal/manifest"
	"github.com/sluice/sluice/internal/resource"
)

// The golden cases: testdata/<case>/input.yaml translated gives
// testdata/<case>.golden.
var translateCases = []string{
	"single-port",
	"multi-port",
	"greeter",
	"http-precedence",
	"grpc-matches",
	"http-filters",
	"gateway",
	"gateway-tls",
	"missing-backend",
	"health-checks",
}

func TestTranslateGolden(t *testing.T) {
	for _, name := range translateCases {
		t.Run(name, func(t *testing.T) {
			in := loadInputs(t, filepath.Join("testdata", name, "input.yaml"))
			tr := translate(in)
			if tr.err != nil {
				t.Fatalf("translate: %v", tr.err)
			}
			if len(tr.dropped) > 0 {
				t.Errorf("resources failed validation and were dropped:\n%s", strings.Join(tr.dropped, "\n"))
			}
			checkValid(t, tr.snap)
			golden.Check(t, name, dump(t, tr.snap, in))
		})
	}
}

// TestTranslateDeterministic translates every case with its input slices
// shuffled and expects the same bytes.
func TestTranslateDeterministic(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, name := range translateCases {
		t.Run(name, func(t *testing.T) {
			in := loadInputs(t, filepath.Join("testdata", name, "input.yaml"))
			ref := translate(in).snap
			want := dump(t, ref, in)
			for range 5 {
				shuffled := &Inputs{
					Services:        shuffle(rng, in.Services),
					Endpoints:       shuffle(rng, in.Endpoints),
					BackendPolicies: shuffle(rng, in.BackendPolicies),
					HTTPRoutes:      shuffle(rng, in.HTTPRoutes),
					GRPCRoutes:      shuffle(rng, in.GRPCRoutes),
					Gateways:        shuffle(rng, in.Gateways),
					Secrets:         shuffle(rng, in.Secrets),
				}
				snap, err := Translate(shuffled)
				if err != nil {
					t.Fatal(err)
				}
				if got := dump(t, snap, in); got != want {
					t.Fatalf("shuffled inputs give different output:\n%s\nwant:\n%s", got, want)
				}
				for _, typ := range Types {
					for _, n := range snap.Names(typ) {
						a, _ := snap.Get(typ, n)
						b, _ := ref.Get(typ, n)
						if a.Version != b.Version || !bytes.Equal(a.Any.Value, b.Any.Value) {
							t.Fatalf("%s %s: bytes differ between shuffled and ordered inputs", typ, n)
						}
					}
				}
			}
		})
	}
}

func shuffle[T any](rng *rand.Rand, s []T) []T {
	out := append([]T(nil), s...)
	rng.Shuffle(len(out), func(i, j int) { out[i], out[j] = out[j], out[i] })
	return out
}

// loadInputs decodes a multi-document YAML fixture, defaulting and
// validating every object as the store does on write.
func loadInputs(t *testing.T, path string) *Inputs {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	docs, err := manifest.Parse(path, data)
	if err != nil {
		t.Fatal(err)
	}
	registry := resource.Builtin()
	in := &Inputs{}
	for _, d := range docs {
		k, ok := registry.ByGVK(d.Object.GroupVersionKind())
		if !ok {
			t.Fatalf("%s: unknown kind %s", d, d.Object.GroupVersionKind())
		}
		js, err := d.Object.MarshalJSON()
		if err != nil {
			t.Fatal(err)
		}
		obj := k.New()
		dec := json.NewDecoder(bytes.NewReader(js))
		dec.DisallowUnknownFields()
		if err := dec.Decode(obj); err != nil {
			t.Fatalf("%s: %v", d, err)
		}
		if obj.GetNamespace() == "" {
			obj.SetNamespace(resource.DefaultNamespace)
		}
		k.Default(obj)
		if errs := append(k.Validate(obj), k.ValidateStatus(obj)...); len(errs) > 0 {
			t.Fatalf("%s: invalid fixture: %v", d, errs.ToAggregate())
		}
		if !in.Add(obj) {
			t.Fatalf("%s: kind %s is not a translation input", d, k)
		}
	}
	return in
}

// checkValid checks every resource of a snapshot with its validation rules.
func checkValid(t *testing.T, s *Snapshot) {
	t.Helper()
	for _, typ := range Types {
		for _, name := range s.Names(typ) {
			r, _ := s.Get(typ, name)
			v, ok := r.Message.(validator)
			if !ok {
				t.Errorf("%s %s: no validation rules", messageName(typ), name)
				continue
			}
			if err := v.ValidateAll(); err != nil {
				t.Errorf("%s %s: %v", messageName(typ), name, err)
			}
		}
	}
}

// dump prints every resource of a snapshot, by type then name, as indented
// JSON, then the scope of every Gateway of in.
func dump(t *testing.T, s *Snapshot, in *Inputs) string {
	t.Helper()
	var b strings.Builder
	for _, typ := range Types {
		for _, name := range s.Names(typ) {
			r, _ := s.Get(typ, name)
			fmt.Fprintf(&b, "--- %s %s\n%s\n", messageName(typ), name, stableJSON(t, r))
		}
	}
	for _, gw := range sortedByKey(in.Gateways) {
		scope := gw.Namespace + "/" + gw.Name
		for _, typ := range Types {
			if names := s.Scope(scope, typ); len(names) > 0 {
				fmt.Fprintf(&b, "--- scope %s %s\n%s\n", scope, messageName(typ), strings.Join(names, "\n"))
			}
		}
	}
	if p := s.Problems(); len(p) > 0 {
		fmt.Fprintf(&b, "--- problems\n%s\n", strings.Join(p, "\n"))
	}
	return b.String()
}

// stableJSON is a resource as indented JSON. protojson varies its spacing
// on purpose; compacting then indenting makes it stable.
func stableJSON(t *testing.T, r *Resource) string {
	t.Helper()
	js, err := protojson.Marshal(r.Message)
	if err != nil {
		t.Fatal(err)
	}
	var compact, out bytes.Buffer
	if err := json.Compact(&compact, js); err != nil {
		t.Fatal(err)
	}
	if err := json.Indent(&out, compact.Bytes(), "", "  "); err != nil {
		t.Fatal(err)
	}
	return out.String()
}
