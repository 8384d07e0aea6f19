package kv

import (
	"fmt"
	"slices"
	"strings"
	"testing"
)

func TestCollapseKeys(t *testing.T) {
	keys := []string{"app//x", "app/a", "app/b/c", "app/b/d", "app/b/e/f", "app/c/", "apple"}
	under := []string{"app//x", "app/a", "app/b/c", "app/b/d", "app/b/e/f", "app/c/"}
	cases := []struct {
		prefix, sep string
		want        []string
	}{
		{"app/", "", under},
		{"app/", "/", []string{"app//", "app/a", "app/b/", "app/c/"}},
		{"app", "/", []string{"app/", "apple"}},
		{"app/b/", "/", []string{"app/b/c", "app/b/d", "app/b/e/"}},
		{"", "/", []string{"app/", "apple"}},
		{"app/", "::", under},
	}
	for _, c := range cases {
		t.Run(fmt.Sprintf("%q,%q", c.prefix, c.sep), func(t *testing.T) {
			in := slices.DeleteFunc(slices.Clone(keys), func(k string) bool { return !strings.HasPrefix(k, c.prefix) })
			if got := collapseKeys(slices.Clone(in), c.prefix, c.sep); !slices.Equal(got, c.want) {
				t.Errorf("collapseKeys(%q, %q, %q) = %q, want %q", in, c.prefix, c.sep, got, c.want)
			}
		})
	}
}

func TestDecodeRecord(t *testing.T) {
	cases := []struct {
		name, data string
		want       string
	}{
		{"record", `{"value":"aGk=","flags":3}`, "hi"},
		{"raw text", "plain", "plain"},
		{"raw JSON object", `{"feature":true}`, `{"feature":true}`},
		{"raw JSON null", `null`, `null`},
		{"record and more", `{"value":"aGk="} {}`, `{"value":"aGk="} {}`},
		{"empty", "", ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := decodeRecord([]byte(c.data)); string(got.Value) != c.want {
				t.Errorf("decodeRecord(%q).Value = %q, want %q", c.data, got.Value, c.want)
			}
		})
	}
}

func TestRing(t *testing.T) {
	var r ring
	for i := 1; i <= ringSize+10; i++ {
		old, evicted := r.push(change{key: fmt.Sprint("k", i%7), rev: int64(i)})
		if wantEvict := i > ringSize; evicted != wantEvict || (evicted && old.rev != int64(i-ringSize)) {
			t.Fatalf("push %d: evicted %v (rev %d), want %v", i, evicted, old.rev, wantEvict)
		}
	}
	is := func(key string) func(string) bool { return func(k string) bool { return k == key } }
	want := int64(ringSize + 6)
	for want%7 != 3 {
		want++
	}
	if got := r.firstAfter(ringSize+5, is("k3")); got != want {
		t.Errorf("firstAfter(%d, k3) = %d, want %d", ringSize+5, got, want)
	}
	// The first change of k1 after revision 100 is 106 (106 % 7 == 1).
	if got := r.firstAfter(100, is("k1")); got != 106 {
		t.Errorf("firstAfter(100, k1) = %d, want 106", got)
	}
	if got := r.firstAfter(ringSize+10, is("k1")); got != 0 {
		t.Errorf("firstAfter(last) = %d, want 0", got)
	}
	if got := r.firstAfter(0, is("nope")); got != 0 {
		t.Errorf("firstAfter of an unknown key = %d, want 0", got)
	}
}
