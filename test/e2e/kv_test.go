package e2e

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/sluice/sluice/internal/kv"
	"github.com/sluice/sluice/internal/server"
	"github.com/sluice/sluice/internal/servertest"
)

// kvIndex reads the index the CLI reports after "at index".
func kvIndex(t *testing.T, out string) string {
	t.Helper()
	m := regexp.MustCompile(`at index (\d+)\n$`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no index in %q", out)
	}
	return m[1]
}

func TestKV(t *testing.T) {
	t.Parallel()
	_, c := startServer(t)

	first := kvIndex(t, c.ok("kv", "put", "app/db/url", "postgres://db:5432/app"))
	file := filepath.Join(t.TempDir(), "config.json")
	if err := os.WriteFile(file, []byte(`{"replicas":3}`), 0o600); err != nil {
		t.Fatal(err)
	}
	c.ok("kv", "put", "app/config", "-f", file, "--flags", "7")
	if r := c.runStdin("debug", "kv", "put", "app/log/level", "-f", "-"); r.code != 0 {
		t.Fatal(r)
	}
	if out := c.ok("kv", "get", "app/db/url"); out != "postgres://db:5432/app" {
		t.Errorf("kv get printed %q", out)
	}
	var entry struct {
		Key         string `json:"key"`
		Value       []byte `json:"value"`
		Flags       uint64 `json:"flags"`
		ModifyIndex int64  `json:"modifyIndex"`
	}
	if err := json.Unmarshal([]byte(c.ok("kv", "get", "app/config", "-o", "json")), &entry); err != nil ||
		string(entry.Value) != `{"replicas":3}` || entry.Flags != 7 || entry.Key != "app/config" {
		t.Errorf("kv get -o json: %+v, %v", entry, err)
	}

	list := c.ok("kv", "list", "app/")
	for _, want := range []string{
		`^KEY +FLAGS +MODIFY-INDEX +MODIFIED +SIZE\n`,
		`\napp/config +7 +\d+ +\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ +14\n`,
		`\napp/db/url +0 +` + first + ` +\S+ +22\n`,
		`\napp/log/level +0 +\d+ +\S+ +5\n$`,
	} {
		if !regexp.MustCompile(want).MatchString(list) {
			t.Errorf("kv list does not match %s:\n%s", want, list)
		}
	}
	if out := c.ok("kv", "list", "--keys", "--separator", "/", "app/"); out != "app/config\napp/db/\napp/log/\n" {
		t.Errorf("kv list --keys --separator / printed %q", out)
	}

	// CAS, then history and rollback.
	c.fail([]string{"kv", "put", "app/db/url", "x", "--cas", "1"}, "conflict", `"app/db/url"`, "modifyIndex "+first)
	c.fail([]string{"kv", "put", "app/db/url", "x", "--cas", "0"}, "only creates", "exists")
	second := kvIndex(t, c.ok("kv", "put", "app/db/url", "postgres://db2:5432/app", "--cas", first))
	history := c.ok("kv", "history", "app/db/url")
	if !regexp.MustCompile(`^INDEX +STATE +MODIFIED +FLAGS +SIZE +VALUE\n` +
		second + ` +current +\S+ +0 +23 +postgres://db2:5432/app\n` +
		first + ` +replaced +\S+ +0 +22 +postgres://db:5432/app\n$`).MatchString(history) {
		t.Errorf("kv history:\n%s", history)
	}
	third := kvIndex(t, c.ok("kv", "rollback", "app/db/url", first))
	if out := c.ok("kv", "get", "app/db/url"); out != "postgres://db:5432/app" {
		t.Errorf("after rollback, kv get printed %q", out)
	}
	if !strings.HasPrefix(c.ok("kv", "history", "app/db/url"), "INDEX") || third == second {
		t.Error("rollback did not write a new version")
	}
	c.fail([]string{"kv", "rollback", "app/db/url", "99999"}, "no version at index 99999")

	// Deletes, and a rollback that brings a deleted key back.
	c.ok("kv", "delete", "app/log/level")
	c.fail([]string{"kv", "get", "app/log/level"}, "not found", `"app/log/level"`)
	if !regexp.MustCompile(`\n\d+ +deleted +\S+ +0 +5 +debug\n`).MatchString(c.ok("kv", "history", "app/log/level")) {
		t.Error("the history of a deleted key does not show its value as deleted")
	}
	levelIndex := regexp.MustCompile(`\n(\d+) +deleted`).FindStringSubmatch(c.ok("kv", "history", "app/log/level"))[1]
	c.ok("kv", "rollback", "app/log/level", levelIndex, "--cas", "0")
	if out := c.ok("kv", "get", "app/log/level"); out != "debug" {
		t.Errorf("a restored deleted key has %q", out)
	}
	if out := c.ok("kv", "delete", "app/", "--recurse"); !regexp.MustCompile(`^deleted 3 keys under "app/" at index \d+\n$`).MatchString(out) {
		t.Errorf("kv delete --recurse printed %q", out)
	}
	c.fail([]string{"kv", "delete", "app/db/url"}, "not found")
	c.fail([]string{"kv", "put", "k"}, "give the value")
}

func TestKVValueLimit(t *testing.T) {
	t.Parallel()
	_, c := startServer(t)
	big := filepath.Join(t.TempDir(), "big")
	if err := os.WriteFile(big, make([]byte, 512<<10+1), 0o600); err != nil {
		t.Fatal(err)
	}
	c.fail([]string{"kv", "put", "big", "-f", big}, "request entity too large", "524289", "524288")
	if err := os.Truncate(big, 512<<10); err != nil {
		t.Fatal(err)
	}
	c.ok("kv", "put", "big", "-f", big)
	c.fail([]string{"kv", "put", "/abs", "x"}, `must not begin with "/"`)
}

func TestKVWatch(t *testing.T) {
	t.Parallel()
	srv, c := startServer(t)
	c.ok("kv", "put", "app/a", "1")
	tree := c.start("kv", "watch", "app/", "--prefix")
	key := c.start("kv", "watch", "app/b")
	tree.expect(`^PUT +app/a +index=\d+ flags=0 size=1 value=1$`)
	c.ok("kv", "put", "app/b", "2", "--flags", "3")
	c.ok("kv", "put", "other", "x")
	c.ok("kv", "delete", "app/a")
	tree.expect(`^PUT +app/b +index=\d+ flags=3 size=1 value=2$`, `^DELETE +app/a +index=\d+$`)
	key.expect(`^PUT +app/b +index=\d+ flags=3 size=1 value=2$`)

	// Resumed after a restart, not started again: the next line is the change.
	srv.Restart(t)
	eventually(t, "kv watch to say it reconnects", func() bool {
		return strings.Contains(tree.stderr.String(), "reconnecting from index")
	})
	c.ok("kv", "put", "app/c", "after restart")
	tree.expect(`^PUT +app/c +index=\d+ flags=0 size=13 value=after restart$`)
	c.ok("kv", "delete", "app/b")
	key.expect(`^DELETE +app/b +index=\d+$`)
	tree.interrupt()
	key.interrupt()

	// From an index: only what came after it, as JSON lines.
	fromIndex := c.start("kv", "watch", "app/", "--prefix", "--index", "1", "-o", "json")
	fromIndex.expect(`^\{"type":"PUT","entry":\{"key":"app/a","value":"MQ==",`)
	fromIndex.interrupt()
	c.fail([]string{"kv", "watch", "a//b"}, "invalid", `empty segment ("//")`)
}

func TestKVWatchReadsAgainWhenItsIndexExpired(t *testing.T) {
	t.Parallel()
	etcd := servertest.StartEtcd(t)
	srv := servertest.Start(t, server.Config{EtcdEndpoints: []string{etcd.Endpoint()}})
	c := &cli{t: t, server: srv.URL}
	c.ok("kv", "put", "app/a", "1")
	c.ok("kv", "put", "app/b", "1")
	w := c.start("kv", "watch", "app/", "--prefix")
	w.expect(`^PUT +app/a +index=\d+ `, `^PUT +app/b +index=\d+ `)

	// While the server is down, app/b goes and history is compacted past
	// what the watch has seen.
	if err := srv.Stop(); err != nil {
		t.Fatal(err)
	}
	deleteAndCompact(t, etcd, kv.ValuePrefix+"app/b")
	srv.Restart(t)

	w.expect(`^DELETE +app/b +index=\d+$`)
	if !strings.Contains(w.stderr.String(), "has expired; listing again") {
		t.Errorf("kv watch did not say it reads again; stderr:\n%s", w.stderr)
	}
	c.ok("kv", "put", "app/a", "2")
	w.expect(`^PUT +app/a +index=\d+ flags=0 size=1 value=2$`)
	w.interrupt()
}

// deleteAndCompact deletes an etcd key behind the server's back, then
// compacts etcd's history up to now.
func deleteAndCompact(t *testing.T, etcd *servertest.Etcd, key string) {
	t.Helper()
	ctx := context.Background()
	if _, err := etcd.Client.Delete(ctx, key); err != nil {
		t.Fatal(err)
	}
	put, err := etcd.Client.Put(ctx, "/e2e/filler", "x")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := etcd.Client.Compact(ctx, put.Header.Revision); err != nil {
		t.Fatal(err)
	}
}
