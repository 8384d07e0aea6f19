package auth_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sluice/sluice/internal/auth"
)

func write(t *testing.T, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "tokens")
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestLoadFile(t *testing.T) {
	tokens, err := auth.LoadFile(write(t, "# ops\n\nadmin-0123456789abcdef,admin,alice\n  read-0123456789abcdef , read \n"))
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		token string
		want  auth.Identity
		err   error
	}{
		{"admin-0123456789abcdef", auth.Identity{Name: "alice", Role: auth.RoleAdmin}, nil},
		{"read-0123456789abcdef", auth.Identity{Name: "token-line-4", Role: auth.RoleRead}, nil},
		{"read-0123456789abcde", auth.Identity{}, auth.ErrUnknownToken},
		{"", auth.Identity{}, auth.ErrUnknownToken},
	}
	for _, c := range cases {
		got, err := tokens.Lookup(c.token)
		if got != c.want || !errors.Is(err, c.err) {
			t.Errorf("Lookup(%q) = %+v, %v; want %+v, %v", c.token, got, err, c.want, c.err)
		}
	}
	if id, _ := tokens.Lookup("read-0123456789abcdef"); id.CanWrite() {
		t.Error("a read token can write")
	}
}

func TestLoadFileErrors(t *testing.T) {
	cases := map[string]string{
		"short,admin\n":                                               ":1: token is shorter than 16",
		"# c\nlong-enough-token-0001,root\n":                          ":2: role \"root\" is not admin or read",
		"long-enough-token-0001\n":                                    ":1: want token,role[,name]",
		"long-enough-token-0001,admin,a,b\n":                          ":1: want token,role[,name]",
		"long-enough-token-0001,admin\nlong-enough-token-0001,read\n": ":2: duplicate token",
		"# only comments\n":                                           "holds no token",
	}
	for content, want := range cases {
		path := write(t, content)
		_, err := auth.LoadFile(path)
		if err == nil || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), path) {
			t.Errorf("LoadFile(%q) = %v, want an error naming the file and %q", content, err, want)
		}
	}
	if _, err := auth.LoadFile(filepath.Join(t.TempDir(), "missing")); err == nil {
		t.Error("a missing token file loads")
	}
}
