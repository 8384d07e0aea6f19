package kv_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/goleak"
	"go.uber.org/zap"

	"github.com/sluice/sluice/internal/kv"
	"github.com/sluice/sluice/internal/resource"
	"github.com/sluice/sluice/internal/servertest"
	"github.com/sluice/sluice/internal/store"
)

// etcd is the client of the package's shared embedded etcd. Tests that
// compact start an etcd of their own, so that they expire nobody else's
// revisions.
var etcd *clientv3.Client

func TestMain(m *testing.M) { os.Exit(run(m)) }

func run(m *testing.M) int {
	dir, err := os.MkdirTemp("", "sluice-kv-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	e, err := store.StartEmbedded(context.Background(), store.EmbedConfig{Dir: filepath.Join(dir, "etcd"), Logger: servertest.Logger()})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	etcd, err = clientv3.New(clientv3.Config{Endpoints: []string{e.Endpoint()}, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		e.Close()
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	code := m.Run()
	etcd.Close()
	e.Close()
	if err := goleak.Find(); err != nil && code == 0 {
		fmt.Fprintln(os.Stderr, "kv: leaked goroutines:", err)
		return 1
	}
	return code
}

// newStore returns a store over the shared etcd and a key prefix of the
// test's own (of this run's own, with -count).
func newStore(t *testing.T, opts kv.Options) (*kv.Store, string) {
	t.Helper()
	opts.Logger = servertest.Logger()
	return kv.New(etcd, opts), fmt.Sprintf("%s-%d/", strings.ReplaceAll(t.Name(), "/", "_"), time.Now().UnixNano())
}

// ownStore returns a store over an etcd of its own, which the test may
// compact.
func ownStore(t *testing.T, opts kv.Options) (*kv.Store, *clientv3.Client) {
	t.Helper()
	e := servertest.StartEtcd(t)
	opts.Logger = servertest.Logger()
	return kv.New(e.Client, opts), e.Client
}

// compact makes etcd forget every revision before now.
func compact(t *testing.T, c *clientv3.Client) int64 {
	t.Helper()
	ctx := context.Background()
	resp, err := c.Put(ctx, "/test/filler", "x")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Compact(ctx, resp.Header.Revision, clientv3.WithCompactPhysical()); err != nil {
		t.Fatal(err)
	}
	return resp.Header.Revision
}

func ptr(n int64) *int64 { return &n }

func put(t *testing.T, s *kv.Store, key, value string) kv.Entry {
	t.Helper()
	e, err := s.Put(context.Background(), key, []byte(value), kv.PutOptions{})
	if err != nil {
		t.Fatalf("put %s: %v", key, err)
	}
	return e
}

// wantErr checks that err wraps sentinel, answers code and says every want.
func wantErr(t *testing.T, what string, err, sentinel error, code int, want ...string) {
	t.Helper()
	if !errors.Is(err, sentinel) {
		t.Fatalf("%s: got error %v, want %v", what, err, sentinel)
	}
	st := resource.StatusOf(err)
	if st.Code != code {
		t.Errorf("%s: status code %d, want %d (%s)", what, st.Code, code, st.Message)
	}
	for _, w := range want {
		if !strings.Contains(st.Message, w) {
			t.Errorf("%s: message %q does not say %q", what, st.Message, w)
		}
	}
}

func TestGetPutDelete(t *testing.T) {
	s, p := newStore(t, kv.Options{})
	ctx := context.Background()
	_, rev, err := s.Get(ctx, p+"a")
	wantErr(t, "get of a missing key", err, resource.ErrNotFound, 404, p+"a", "does not exist")
	if rev <= 0 {
		t.Errorf("a missing key's get has revision %d, want the read's", rev)
	}

	before := time.Now().Add(-time.Second)
	created := put(t, s, p+"a", "one")
	if created.CreateIndex != created.ModifyIndex || created.Key != p+"a" || string(created.Value) != "one" || created.Modified.Before(before) {
		t.Errorf("created entry = %+v", created)
	}
	updated, err := s.Put(ctx, p+"a", []byte("two"), kv.PutOptions{Flags: 42})
	if err != nil {
		t.Fatal(err)
	}
	if updated.CreateIndex != created.CreateIndex || updated.ModifyIndex <= created.ModifyIndex {
		t.Errorf("updated indexes %d/%d, want create %d and a modify above %d", updated.CreateIndex, updated.ModifyIndex, created.CreateIndex, created.ModifyIndex)
	}
	got, rev, err := s.Get(ctx, p+"a")
	if err != nil {
		t.Fatal(err)
	}
	if string(got.Value) != "two" || got.Flags != 42 || got.ModifyIndex != updated.ModifyIndex || got.CreateIndex != created.CreateIndex ||
		!got.Modified.Equal(updated.Modified) || rev < got.ModifyIndex {
		t.Errorf("get = %+v at %d, want %+v", got, rev, updated)
	}
	// Flags are the put's: a put without them clears them.
	if e := put(t, s, p+"a", "three"); e.Flags != 0 {
		t.Errorf("flags after a put without flags: %d", e.Flags)
	}
	empty := put(t, s, p+"empty", "")
	if got, _, err := s.Get(ctx, p+"empty"); err != nil || len(got.Value) != 0 || got.ModifyIndex != empty.ModifyIndex {
		t.Errorf("empty value: %+v, %v", got, err)
	}

	n, delRev, err := s.Delete(ctx, p+"a", kv.DeleteOptions{})
	if err != nil || n != 1 || delRev <= updated.ModifyIndex {
		t.Fatalf("delete = %d at %d, %v", n, delRev, err)
	}
	_, _, err = s.Get(ctx, p+"a")
	wantErr(t, "get after delete", err, resource.ErrNotFound, 404)
	_, _, err = s.Delete(ctx, p+"a", kv.DeleteOptions{})
	wantErr(t, "delete of a missing key", err, resource.ErrNotFound, 404, p+"a")
}

func TestListAndKeys(t *testing.T) {
	s, p := newStore(t, kv.Options{})
	ctx := context.Background()
	for _, k := range []string{"app/b/d", "app/a", "app/b/c", "app/b/e/f", "apple", "other"} {
		put(t, s, p+k, "v:"+k)
	}
	list, rev, err := s.List(ctx, p+"app/")
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	for _, e := range list {
		keys = append(keys, strings.TrimPrefix(e.Key, p))
		if string(e.Value) != "v:"+strings.TrimPrefix(e.Key, p) {
			t.Errorf("%s has value %q", e.Key, e.Value)
		}
	}
	if want := "app/a app/b/c app/b/d app/b/e/f"; strings.Join(keys, " ") != want || rev < list[len(list)-1].ModifyIndex {
		t.Errorf("list app/ = %v at %d, want %s", keys, rev, want)
	}
	all, _, err := s.List(ctx, "")
	if err != nil || len(all) < 6 {
		t.Errorf("list of everything: %d entries, %v", len(all), err)
	}
	if none, _, err := s.List(ctx, p+"nothing/"); err != nil || len(none) != 0 {
		t.Errorf("list of an empty prefix: %v, %v", none, err)
	}

	for _, c := range []struct{ prefix, sep, want string }{
		{"app/", "", "app/a app/b/c app/b/d app/b/e/f"},
		{"app/", "/", "app/a app/b/"},
		{"app", "/", "app/ apple"},
		{"", "/", "app/ apple other"},
		{"app/b/", "/", "app/b/c app/b/d app/b/e/"},
	} {
		got, _, err := s.Keys(ctx, p+c.prefix, c.sep)
		if err != nil {
			t.Fatal(err)
		}
		for i := range got {
			got[i] = strings.TrimPrefix(got[i], p)
		}
		if strings.Join(got, " ") != c.want {
			t.Errorf("keys %q separator %q = %v, want %s", c.prefix, c.sep, got, c.want)
		}
	}
}

func TestCAS(t *testing.T) {
	s, p := newStore(t, kv.Options{})
	ctx := context.Background()
	key := p + "lock"
	_, err := s.Put(ctx, key, []byte("x"), kv.PutOptions{CAS: ptr(7)})
	wantErr(t, "cas on a missing key", err, resource.ErrNotFound, 404, key, "cas 7")

	created, err := s.Put(ctx, key, []byte("mine"), kv.PutOptions{CAS: ptr(0)})
	if err != nil {
		t.Fatalf("create-only put of a missing key: %v", err)
	}
	_, err = s.Put(ctx, key, []byte("theirs"), kv.PutOptions{CAS: ptr(0)})
	wantErr(t, "create-only put of an existing key", err, resource.ErrConflict, 409, key, fmt.Sprint("modifyIndex ", created.ModifyIndex))

	next, err := s.Put(ctx, key, []byte("mine again"), kv.PutOptions{CAS: ptr(created.ModifyIndex)})
	if err != nil {
		t.Fatalf("cas with the current index: %v", err)
	}
	_, err = s.Put(ctx, key, []byte("stale"), kv.PutOptions{CAS: ptr(created.ModifyIndex)})
	wantErr(t, "cas with a stale index", err, resource.ErrConflict, 409, key,
		fmt.Sprintf("at modifyIndex %d, not %d", next.ModifyIndex, created.ModifyIndex))

	_, _, err = s.Delete(ctx, key, kv.DeleteOptions{CAS: ptr(created.ModifyIndex)})
	wantErr(t, "delete with a stale cas", err, resource.ErrConflict, 409, key)
	_, _, err = s.Delete(ctx, key, kv.DeleteOptions{CAS: ptr(0)})
	wantErr(t, "delete with cas 0 of an existing key", err, resource.ErrConflict, 409, key)
	_, _, err = s.Delete(ctx, key, kv.DeleteOptions{CAS: ptr(1), Recurse: true})
	wantErr(t, "recursive delete with a cas", err, resource.ErrInvalid, 422, "recursive")
	if n, _, err := s.Delete(ctx, key, kv.DeleteOptions{CAS: ptr(next.ModifyIndex)}); err != nil || n != 1 {
		t.Fatalf("delete with the current cas: %d, %v", n, err)
	}
	_, _, err = s.Delete(ctx, key, kv.DeleteOptions{CAS: ptr(next.ModifyIndex)})
	wantErr(t, "delete with a cas of a missing key", err, resource.ErrNotFound, 404, key)
}

func TestValueSize(t *testing.T) {
	s, p := newStore(t, kv.Options{})
	ctx := context.Background()
	big := bytes.Repeat([]byte{0xff}, kv.DefaultMaxValueSize)
	first, err := s.Put(ctx, p+"big", big, kv.PutOptions{})
	if err != nil {
		t.Fatalf("a value of exactly 512 KiB: %v", err)
	}
	// Replacing it archives it in the same etcd request.
	big[0] = 0
	if _, err := s.Put(ctx, p+"big", big, kv.PutOptions{}); err != nil {
		t.Fatalf("replacing a 512 KiB value: %v", err)
	}
	if _, err := s.Rollback(ctx, p+"big", first.ModifyIndex, nil); err != nil {
		t.Fatalf("rolling back a 512 KiB value: %v", err)
	}
	got, _, err := s.Get(ctx, p+"big")
	if err != nil || !bytes.Equal(got.Value, bytes.Repeat([]byte{0xff}, kv.DefaultMaxValueSize)) {
		t.Fatalf("get after rollback: %d bytes, %v", len(got.Value), err)
	}
	_, err = s.Put(ctx, p+"bigger", make([]byte, kv.DefaultMaxValueSize+1), kv.PutOptions{})
	wantErr(t, "a value of 512 KiB + 1", err, resource.ErrTooLarge, http.StatusRequestEntityTooLarge, p+"bigger", "524289", "524288")

	small := kv.New(etcd, kv.Options{MaxValueSize: 10})
	_, err = small.Put(ctx, p+"small", []byte("0123456789a"), kv.PutOptions{})
	wantErr(t, "a value over a custom limit", err, resource.ErrTooLarge, 413, "limit of 10")
	if n, _, err := s.Delete(ctx, p+"big", kv.DeleteOptions{}); err != nil || n != 1 {
		t.Fatalf("deleting a 512 KiB value: %d, %v", n, err)
	}
}

func TestBadKeys(t *testing.T) {
	s, _ := newStore(t, kv.Options{})
	ctx := context.Background()
	cases := []struct{ name, key, reason string }{
		{"empty", "", "must not be empty"},
		{"leading slash", "/etc/passwd", `must not begin with "/"`},
		{"NUL", "a\x00b", "NUL"},
		{"not UTF-8", "caf\xe9", "UTF-8"},
		{"too long", strings.Repeat("k", kv.MaxKeyLength+1), "1025 bytes long, more than 1024"},
		{"empty segment", "a//b", `empty segment ("//")`},
		{"dot segment", "a/./b", `"." segment`},
		{"dot-dot segment", "a/..", `".." segment`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := s.Put(ctx, c.key, []byte("x"), kv.PutOptions{})
			wantErr(t, "put", err, resource.ErrInvalid, 422, c.reason)
			_, _, err = s.Get(ctx, c.key)
			wantErr(t, "get", err, resource.ErrInvalid, 422, c.reason)
			_, err = s.History(ctx, c.key)
			wantErr(t, "history", err, resource.ErrInvalid, 422, c.reason)
			_, err = s.Watch(ctx, c.key, false, 0)
			wantErr(t, "watch", err, resource.ErrInvalid, 422, c.reason)
			_, err = s.WaitIndex(ctx, c.key, false, 1)
			wantErr(t, "wait", err, resource.ErrInvalid, 422, c.reason)
			if c.key != "" {
				_, _, err = s.List(ctx, c.key)
				wantErr(t, "list", err, resource.ErrInvalid, 422, c.reason)
				_, _, err = s.Delete(ctx, c.key, kv.DeleteOptions{Recurse: true})
				wantErr(t, "recursive delete", err, resource.ErrInvalid, 422, c.reason)
			}
		})
	}
	t.Run("directory", func(t *testing.T) {
		put(t, s, "dir.../.d/", "a key may end in / and hold dots")
		if _, _, err := s.Delete(ctx, "dir.../.d/", kv.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("longest", func(t *testing.T) {
		key := strings.Repeat("k", kv.MaxKeyLength)
		put(t, s, key, "fits")
		if _, _, err := s.Delete(ctx, key, kv.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
	})
}

// values lists versions as "value@index" (with "!" when a delete ended one).
func values(vs []kv.Version) string {
	parts := make([]string, len(vs))
	for i, v := range vs {
		parts[i] = fmt.Sprintf("%s@%d", v.Value, v.ModifyIndex)
		if v.Deleted {
			parts[i] += "!"
		}
	}
	return strings.Join(parts, " ")
}

func TestHistorySurvivesCompaction(t *testing.T) {
	s, c := ownStore(t, kv.Options{})
	ctx := context.Background()
	_, err := s.History(ctx, "cfg")
	wantErr(t, "history of a key that never was", err, resource.ErrNotFound, 404, `"cfg"`)

	v1, err := s.Put(ctx, "cfg", []byte("v1"), kv.PutOptions{Flags: 1})
	if err != nil {
		t.Fatal(err)
	}
	v2 := put(t, s, "cfg", "v2")
	v3 := put(t, s, "cfg", "v3")
	put(t, s, "cfg/child", "not cfg's")
	if _, _, err := s.Delete(ctx, "cfg", kv.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	gone, err := s.History(ctx, "cfg")
	if err != nil {
		t.Fatalf("history of a deleted key: %v", err)
	}
	want := fmt.Sprintf("v3@%d! v2@%d v1@%d", v3.ModifyIndex, v2.ModifyIndex, v1.ModifyIndex)
	if got := values(gone); got != want {
		t.Errorf("history of the deleted key = %s, want %s", got, want)
	}
	v4 := put(t, s, "cfg", "v4")

	compact(t, c)
	versions, err := s.History(ctx, "cfg")
	if err != nil {
		t.Fatal(err)
	}
	want = fmt.Sprintf("v4@%d %s", v4.ModifyIndex, want)
	if got := values(versions); got != want {
		t.Errorf("history after compaction = %s, want %s", got, want)
	}
	if last := versions[len(versions)-1]; last.Flags != 1 || last.CreateIndex != v1.CreateIndex || !last.Modified.Equal(v1.Modified) || last.Key != "cfg" {
		t.Errorf("the oldest version = %+v, want the first put %+v", last, v1)
	}
	if versions[0].CreateIndex != v4.CreateIndex || versions[1].CreateIndex != v1.CreateIndex {
		t.Errorf("create indexes %d, %d: the key was created again at %d after being created at %d",
			versions[0].CreateIndex, versions[1].CreateIndex, v4.CreateIndex, v1.CreateIndex)
	}
}

// archived counts the archived versions of key in etcd.
func archived(t *testing.T, key string) int64 {
	t.Helper()
	resp, err := etcd.Get(context.Background(), kv.HistoryPrefix+key+"\x00", clientv3.WithPrefix(), clientv3.WithCountOnly())
	if err != nil {
		t.Fatal(err)
	}
	return resp.Count
}

func TestHistoryLimit(t *testing.T) {
	s, p := newStore(t, kv.Options{HistoryLimit: 3})
	ctx := context.Background()
	key := p + "k"
	var last kv.Entry
	for i := 1; i <= 10; i++ {
		last = put(t, s, key, fmt.Sprint("v", i))
	}
	versions, err := s.History(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, v := range versions {
		got = append(got, string(v.Value))
	}
	if strings.Join(got, " ") != "v10 v9 v8 v7" || versions[0].ModifyIndex != last.ModifyIndex {
		t.Errorf("history with limit 3 = %v, want the current value and 3 archived", got)
	}
	if n := archived(t, key); n != 3 {
		t.Errorf("%d archived versions in etcd, want 3", n)
	}
	// The history of a deleted key is kept, within the limit.
	if _, _, err := s.Delete(ctx, key, kv.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	versions, err = s.History(ctx, key)
	if err != nil || values(versions) != fmt.Sprintf("v10@%d! %s", last.ModifyIndex, values(versions[1:])) || len(versions) != 3 {
		t.Errorf("history after delete = %s, %v; want v10 (deleted) and two before it", values(versions), err)
	}
}

func TestRollback(t *testing.T) {
	s, p := newStore(t, kv.Options{})
	ctx := context.Background()
	key := p + "flag"
	v1, err := s.Put(ctx, key, []byte("on"), kv.PutOptions{Flags: 9})
	if err != nil {
		t.Fatal(err)
	}
	v2 := put(t, s, key, "off")

	back, err := s.Rollback(ctx, key, v1.ModifyIndex, nil)
	if err != nil {
		t.Fatal(err)
	}
	if string(back.Value) != "on" || back.Flags != 9 || back.ModifyIndex <= v2.ModifyIndex || back.CreateIndex != v1.CreateIndex {
		t.Errorf("rolled back = %+v, want v1's value and flags as a new version", back)
	}
	versions, _ := s.History(ctx, key)
	if want := fmt.Sprintf("on@%d off@%d on@%d", back.ModifyIndex, v2.ModifyIndex, v1.ModifyIndex); values(versions) != want {
		t.Errorf("history after rollback = %s, want %s", values(versions), want)
	}

	_, err = s.Rollback(ctx, key, v1.ModifyIndex+1000, nil)
	wantErr(t, "rollback to an unknown index", err, resource.ErrNotFound, 404, key, fmt.Sprint("no version at index ", v1.ModifyIndex+1000))
	_, err = s.Rollback(ctx, key, v2.ModifyIndex, ptr(v2.ModifyIndex))
	wantErr(t, "rollback with a stale cas", err, resource.ErrConflict, 409, key)
	_, err = s.Rollback(ctx, p+"never", 1, nil)
	wantErr(t, "rollback of a key with no history", err, resource.ErrNotFound, 404)

	// A deleted key comes back.
	if _, _, err := s.Delete(ctx, key, kv.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	again, err := s.Rollback(ctx, key, v2.ModifyIndex, ptr(0))
	if err != nil {
		t.Fatalf("rollback of a deleted key: %v", err)
	}
	if got, _, err := s.Get(ctx, key); err != nil || string(got.Value) != "off" || got.ModifyIndex != again.ModifyIndex || got.CreateIndex != again.ModifyIndex {
		t.Errorf("get after restoring a deleted key = %+v, %v", got, err)
	}
}

func TestRecursiveDelete(t *testing.T) {
	s, p := newStore(t, kv.Options{})
	ctx := context.Background()
	// More keys than one transaction deletes.
	const n = 75
	for i := range n {
		put(t, s, fmt.Sprintf("%sapp/%03d", p, i), "x")
	}
	put(t, s, p+"apple", "outside the prefix")
	deleted, rev, err := s.Delete(ctx, p+"app/", kv.DeleteOptions{Recurse: true})
	if err != nil || deleted != n {
		t.Fatalf("recursive delete = %d, %v; want %d", deleted, err, n)
	}
	if left, _, _ := s.List(ctx, p+"app/"); len(left) != 0 {
		t.Errorf("%d keys left under the prefix", len(left))
	}
	if _, _, err := s.Get(ctx, p+"apple"); err != nil {
		t.Errorf("a key outside the prefix: %v", err)
	}
	versions, err := s.History(ctx, p+"app/042")
	if err != nil || len(versions) != 1 || !versions[0].Deleted || string(versions[0].Value) != "x" {
		t.Errorf("history of a key deleted recursively = %s, %v", values(versions), err)
	}
	if _, cur, _ := s.Get(ctx, p+"apple"); cur < rev {
		t.Errorf("delete revision %d is after the current %d", rev, cur)
	}
	if deleted, _, err := s.Delete(ctx, p+"app/", kv.DeleteOptions{Recurse: true}); err != nil || deleted != 0 {
		t.Errorf("recursive delete of nothing = %d, %v; want 0", deleted, err)
	}
}

func TestConcurrentPuts(t *testing.T) {
	s, p := newStore(t, kv.Options{HistoryLimit: 1000})
	ctx := context.Background()
	key := p + "hot"
	const writers, each = 8, 15
	var wg sync.WaitGroup
	errs := make(chan error, writers*each)
	for w := range writers {
		wg.Go(func() {
			for i := range each {
				if _, err := s.Put(ctx, key, fmt.Appendf(nil, "%d-%d", w, i), kv.PutOptions{}); err != nil {
					errs <- err
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("concurrent put: %v", err)
	}
	versions, err := s.History(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	if len(versions) != writers*each {
		t.Fatalf("history holds %d versions, want %d", len(versions), writers*each)
	}
	seen := map[string]bool{}
	for i, v := range versions {
		if seen[string(v.Value)] {
			t.Errorf("value %s is twice in the history", v.Value)
		}
		seen[string(v.Value)] = true
		if i > 0 && v.ModifyIndex >= versions[i-1].ModifyIndex {
			t.Errorf("version %d has index %d, not below the newer %d", i, v.ModifyIndex, versions[i-1].ModifyIndex)
		}
	}
}

func TestUnavailable(t *testing.T) {
	e := servertest.StartEtcd(t)
	s := kv.New(e.Client, kv.Options{})
	put(t, s, "k", "v")
	e.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	_, err := s.Put(ctx, "k", []byte("w"), kv.PutOptions{})
	wantErr(t, "put with etcd down", err, resource.ErrUnavailable, 503)
	_, _, err = s.Get(ctx, "k")
	wantErr(t, "get with etcd down", err, resource.ErrUnavailable, 503)
}
