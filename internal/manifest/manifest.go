// Package manifest reads the resource documents users write: multi-document
// YAML, or JSON, from files, directories and standard input, each document
// with the place it came from so that errors can point at it. It checks only
// that a document is an object with an apiVersion and a kind; resolving kinds
// and validating objects is the server's.
package manifest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"
)

// Stdin is the path that means standard input, and the Source of its documents.
const Stdin = "-"

// Document is one object of a manifest.
type Document struct {
	// Source is the file the document was read from, as named, or Stdin.
	Source string
	// Index is the document's 0-based position among the non-empty
	// documents of its source.
	Index int
	// Line is the 1-based line of the source the document starts on: its
	// "---" separator, if it has one.
	Line int
	// Object is the decoded document.
	Object *unstructured.Unstructured
}

// String names the document's place for messages: "app.yaml document 1 (line 12)".
func (d Document) String() string {
	return fmt.Sprintf("%s document %d (line %d)", sourceName(d.Source), d.Index, d.Line)
}

func sourceName(source string) string {
	if source == Stdin {
		return "stdin"
	}
	return source
}

// Read returns the documents of every path, in order. A path is a file (of
// any name), a directory, whose *.yaml, *.yml and *.json files are read in
// name order (subdirectories are not), or Stdin, read from stdin.
func Read(paths []string, stdin io.Reader) ([]Document, error) {
	var docs []Document
	for _, p := range paths {
		files, err := expand(p)
		if err != nil {
			return nil, err
		}
		for _, f := range files {
			data, err := readSource(f, stdin)
			if err != nil {
				return nil, err
			}
			d, err := Parse(f, data)
			if err != nil {
				return nil, err
			}
			docs = append(docs, d...)
		}
	}
	return docs, nil
}

// expand returns the files a path stands for.
func expand(path string) ([]string, error) {
	if path == Stdin {
		return []string{Stdin}, nil
	}
	info, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("manifest: %w", err)
	}
	if !info.IsDir() {
		return []string{path}, nil
	}
	entries, err := os.ReadDir(path) // sorted by name
	if err != nil {
		return nil, fmt.Errorf("manifest: %w", err)
	}
	var files []string
	for _, e := range entries {
		switch filepath.Ext(e.Name()) {
		case ".yaml", ".yml", ".json":
			if !e.IsDir() {
				files = append(files, filepath.Join(path, e.Name()))
			}
		}
	}
	if len(files) == 0 {
		return nil, fmt.Errorf("manifest: directory %s holds no *.yaml, *.yml or *.json file", path)
	}
	return files, nil
}

func readSource(source string, stdin io.Reader) ([]byte, error) {
	if source == Stdin {
		data, err := io.ReadAll(stdin)
		if err != nil {
			return nil, fmt.Errorf("manifest: reading stdin: %w", err)
		}
		return data, nil
	}
	data, err := os.ReadFile(source)
	if err != nil {
		return nil, fmt.Errorf("manifest: %w", err)
	}
	return data, nil
}

// chunk is the text of one document and the line it starts on.
type chunk struct {
	line int
	text []byte
}

// Parse decodes the documents of one source: YAML documents separated by
// "---" lines, or a stream of JSON objects. Documents that hold nothing (only
// comments, or nothing between two separators) are skipped.
func Parse(source string, data []byte) ([]Document, error) {
	chunks, isJSON := jsonChunks(data)
	if !isJSON {
		chunks = yamlChunks(data)
	}
	var docs []Document
	for _, c := range chunks {
		doc := Document{Source: source, Index: len(docs), Line: c.line}
		obj, err := decode(c, isJSON)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", doc, err)
		}
		if obj == nil {
			continue
		}
		doc.Object = obj
		docs = append(docs, doc)
	}
	return docs, nil
}

// jsonChunks splits a source that is a stream of JSON values. It says false
// when the source is not JSON, which is then read as YAML (JSON is YAML too,
// and YAML's errors name lines).
func jsonChunks(data []byte) ([]chunk, bool) {
	trimmed := bytes.TrimLeft(data, " \t\r\n")
	if len(trimmed) == 0 || (trimmed[0] != '{' && trimmed[0] != '[') {
		return nil, false
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	var chunks []chunk
	for {
		var raw json.RawMessage
		err := dec.Decode(&raw)
		if errors.Is(err, io.EOF) {
			return chunks, true
		}
		if err != nil {
			return nil, false
		}
		end := int(dec.InputOffset())
		start := end - len(raw)
		chunks = append(chunks, chunk{line: 1 + bytes.Count(data[:start], []byte("\n")), text: raw})
	}
}

// yamlChunks splits YAML at document separators: lines that are "---",
// possibly followed by a space and more (which belongs to the next document).
func yamlChunks(data []byte) []chunk {
	lines := bytes.SplitAfter(data, []byte("\n"))
	cur := chunk{line: 1}
	var chunks []chunk
	for i, l := range lines {
		body := bytes.TrimRight(l, "\r\n")
		if bytes.Equal(body, []byte("---")) || bytes.HasPrefix(body, []byte("--- ")) || bytes.HasPrefix(body, []byte("---\t")) {
			chunks = append(chunks, cur)
			// Keep what follows the marker (a comment, or flow content) with
			// the document it starts.
			cur = chunk{line: i + 1, text: append([]byte("   "), l[3:]...)}
			continue
		}
		cur.text = append(cur.text, l...)
	}
	return append(chunks, cur)
}

// decode turns a chunk into an object; nil when the document is empty.
func decode(c chunk, isJSON bool) (*unstructured.Unstructured, error) {
	data := c.text
	if !isJSON {
		// Pad with the lines before the document, so that YAML's errors
		// name lines of the source, not of the document.
		padded := append(bytes.Repeat([]byte("\n"), c.line-1), c.text...)
		var err error
		if data, err = yaml.YAMLToJSONStrict(padded); err != nil {
			return nil, fmt.Errorf("invalid YAML: %w", err)
		}
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, fmt.Errorf("invalid JSON: %w", err)
	}
	if v == nil {
		return nil, nil
	}
	obj, ok := v.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("a document must be an object with apiVersion, kind and metadata, not %s", typeName(v))
	}
	u := &unstructured.Unstructured{Object: obj}
	var missing []string
	for _, f := range []string{"apiVersion", "kind"} {
		if s, ok := obj[f].(string); !ok || strings.TrimSpace(s) == "" {
			missing = append(missing, f)
		}
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("%s: is required (a non-empty string)", strings.Join(missing, " and "))
	}
	return u, nil
}

func typeName(v any) string {
	switch v.(type) {
	case []any:
		return "a list"
	case string:
		return "a string"
	case bool:
		return "a boolean"
	default:
		return "a number"
	}
}
