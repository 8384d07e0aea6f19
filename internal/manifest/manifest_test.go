package manifest

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// pos is what a test checks of a document: where it is and what it names.
type pos struct {
	Index, Line int
	Kind, Name  string
}

func positions(docs []Document) []pos {
	out := make([]pos, len(docs))
	for i, d := range docs {
		out[i] = pos{d.Index, d.Line, d.Object.GetKind(), d.Object.GetName()}
	}
	return out
}

func TestParse(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want []pos
	}{
		{
			name: "one document",
			in:   "apiVersion: v1\nkind: A\nmetadata: {name: a}\n",
			want: []pos{{0, 1, "A", "a"}},
		},
		{
			name: "multi-document with a leading separator and comments",
			in: "# objects\n---\napiVersion: v1\nkind: A\nmetadata: {name: a}\n" +
				"--- # second\napiVersion: v1\nkind: B\nmetadata:\n  name: b\n",
			want: []pos{{0, 2, "A", "a"}, {1, 6, "B", "b"}},
		},
		{
			name: "empty and comment-only documents are skipped without counting",
			in:   "---\n---\n# nothing\n---\napiVersion: v1\nkind: A\n---\n\n---\napiVersion: v1\nkind: B\n",
			want: []pos{{0, 4, "A", ""}, {1, 9, "B", ""}},
		},
		{
			name: "flow content on the separator line",
			in:   "apiVersion: v1\nkind: A\n--- {apiVersion: v1, kind: B}\n",
			want: []pos{{0, 1, "A", ""}, {1, 3, "B", ""}},
		},
		{
			name: "CRLF line endings",
			in:   "apiVersion: v1\r\nkind: A\r\n---\r\napiVersion: v1\r\nkind: B\r\n",
			want: []pos{{0, 1, "A", ""}, {1, 3, "B", ""}},
		},
		{
			name: "JSON object",
			in:   "\n{\"apiVersion\": \"v1\", \"kind\": \"A\", \"metadata\": {\"name\": \"a\"}}\n",
			want: []pos{{0, 2, "A", "a"}},
		},
		{
			name: "JSON stream",
			in:   "{\"apiVersion\": \"v1\", \"kind\": \"A\"}\n\n{\n \"apiVersion\": \"v1\",\n \"kind\": \"B\"\n}\n",
			want: []pos{{0, 1, "A", ""}, {1, 3, "B", ""}},
		},
		{
			name: "nothing at all",
			in:   "# just a comment\n",
			want: []pos{},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			docs, err := Parse("in.yaml", []byte(tt.in))
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if got := positions(docs); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("documents = %+v, want %+v", got, tt.want)
			}
			for _, d := range docs {
				if d.Source != "in.yaml" {
					t.Errorf("Source = %q, want in.yaml", d.Source)
				}
			}
		})
	}
}

func TestParseKeepsNumbers(t *testing.T) {
	docs, err := Parse("in.yaml", []byte("apiVersion: v1\nkind: A\nspec: {port: 50051, big: 9007199254740993, ratio: 0.5}\n"))
	if err != nil {
		t.Fatal(err)
	}
	data, err := docs[0].Object.MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"port":50051`, `"big":9007199254740993`, `"ratio":0.5`} {
		if !strings.Contains(string(data), want) {
			t.Errorf("JSON %s does not contain %s", data, want)
		}
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want []string // substrings of the error
	}{
		{
			name: "malformed YAML names the source line",
			in:   "apiVersion: v1\nkind: A\n---\napiVersion: v1\nkind: B\nmetadata:\n  name: b\n   labels: x\n",
			want: []string{"in.yaml document 1 (line 3)", "invalid YAML", "line 8"},
		},
		{
			name: "duplicate key",
			in:   "apiVersion: v1\nkind: A\nkind: B\n",
			want: []string{"in.yaml document 0 (line 1)", "kind"},
		},
		{
			name: "a list is not an object",
			in:   "- a\n- b\n",
			want: []string{"in.yaml document 0 (line 1)", "not a list"},
		},
		{
			name: "a JSON array is not an object",
			in:   "[{\"apiVersion\": \"v1\", \"kind\": \"A\"}]",
			want: []string{"in.yaml document 0 (line 1)", "not a list"},
		},
		{
			name: "scalar document",
			in:   "apiVersion: v1\nkind: A\n---\nhello\n",
			want: []string{"in.yaml document 1 (line 3)", "not a string"},
		},
		{
			name: "missing kind",
			in:   "apiVersion: v1\nmetadata: {name: a}\n",
			want: []string{"in.yaml document 0 (line 1)", "kind: is required"},
		},
		{
			name: "missing apiVersion and kind",
			in:   "metadata: {name: a}\n",
			want: []string{"apiVersion and kind: is required"},
		},
		{
			name: "malformed JSON falls back to YAML's error with a line",
			in:   "{\n\"apiVersion\": \"v1\",\n\"kind\": \"A\",,\n}\n",
			want: []string{"in.yaml document 0 (line 1)", "invalid YAML: yaml: line "},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			docs, err := Parse("in.yaml", []byte(tt.in))
			if err == nil {
				t.Fatalf("Parse = %+v, want an error", positions(docs))
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}

func write(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestRead(t *testing.T) {
	dir := t.TempDir()
	write(t, filepath.Join(dir, "b.yaml"), "apiVersion: v1\nkind: B\n---\napiVersion: v1\nkind: B2\n")
	write(t, filepath.Join(dir, "a.json"), `{"apiVersion": "v1", "kind": "A"}`)
	write(t, filepath.Join(dir, "c.yml"), "apiVersion: v1\nkind: C\n")
	write(t, filepath.Join(dir, "README.md"), "not a manifest")
	write(t, filepath.Join(dir, "sub", "d.yaml"), "apiVersion: v1\nkind: D\n")
	single := filepath.Join(t.TempDir(), "objects.txt")
	write(t, single, "apiVersion: v1\nkind: E\n")

	docs, err := Read([]string{dir, Stdin, single}, strings.NewReader("apiVersion: v1\nkind: S\n"))
	if err != nil {
		t.Fatal(err)
	}
	type src struct {
		Source string
		Index  int
		Kind   string
	}
	var got []src
	for _, d := range docs {
		got = append(got, src{d.Source, d.Index, d.Object.GetKind()})
	}
	want := []src{
		{filepath.Join(dir, "a.json"), 0, "A"},
		{filepath.Join(dir, "b.yaml"), 0, "B"},
		{filepath.Join(dir, "b.yaml"), 1, "B2"},
		{filepath.Join(dir, "c.yml"), 0, "C"},
		{Stdin, 0, "S"},
		{single, 0, "E"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Read =\n%+v\nwant\n%+v", got, want)
	}
	if s := docs[4].String(); s != "stdin document 0 (line 1)" {
		t.Errorf("String() of a stdin document = %q", s)
	}
}

func TestReadErrors(t *testing.T) {
	empty := t.TempDir()
	write(t, filepath.Join(empty, "notes.txt"), "x")
	bad := t.TempDir()
	write(t, filepath.Join(bad, "a.yaml"), "apiVersion: v1\nkind: A\n")
	write(t, filepath.Join(bad, "b.yaml"), "kind: [\n")
	tests := []struct {
		name string
		path string
		want string
	}{
		{"missing file", filepath.Join(empty, "nope.yaml"), "nope.yaml: no such file"},
		{"directory without manifests", empty, "holds no *.yaml"},
		{"malformed file in a directory", bad, filepath.Join(bad, "b.yaml") + " document 0 (line 1): invalid YAML"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Read([]string{tt.path}, strings.NewReader(""))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Read(%s) error = %v, want one containing %q", tt.path, err, tt.want)
			}
		})
	}
}
