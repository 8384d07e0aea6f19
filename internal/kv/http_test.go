package kv_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sluice/sluice/internal/kv"
	"github.com/sluice/sluice/internal/resource"
	"github.com/sluice/sluice/internal/server"
	"github.com/sluice/sluice/internal/servertest"
)

type response struct {
	code   int
	header http.Header
	body   []byte
}

// do sends one request; header holds name, value pairs.
func do(t *testing.T, method, url string, body io.Reader, header ...string) response {
	t.Helper()
	req, err := http.NewRequest(method, url, body)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	return response{resp.StatusCode, resp.Header, data}
}

func (r response) decode(t *testing.T, v any) {
	t.Helper()
	if r.code != 200 {
		t.Fatalf("status %d, want 200: %s", r.code, r.body)
	}
	if err := json.Unmarshal(r.body, v); err != nil {
		t.Fatalf("body %s: %v", r.body, err)
	}
}

func (r response) entry(t *testing.T) kv.Entry {
	t.Helper()
	var e kv.Entry
	r.decode(t, &e)
	return e
}

// index is the X-Sluice-Index header, which every read carries.
func (r response) index(t *testing.T) int64 {
	t.Helper()
	n, err := strconv.ParseInt(r.header.Get(kv.IndexHeader), 10, 64)
	if err != nil || n <= 0 {
		t.Fatalf("%s header %q, want a revision", kv.IndexHeader, r.header.Get(kv.IndexHeader))
	}
	return n
}

// wantStatus checks an error response: its code, reason and message.
func (r response) wantStatus(t *testing.T, what string, code int, reason string, msg ...string) {
	t.Helper()
	var st resource.Status
	if err := json.Unmarshal(r.body, &st); err != nil || r.code != code || st.Code != code || st.Reason != reason {
		t.Errorf("%s: %d %s, want %d with a Status of reason %s", what, r.code, r.body, code, reason)
		return
	}
	if ct := r.header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("%s: Content-Type %q", what, ct)
	}
	for _, m := range msg {
		if !strings.Contains(st.Message, m) {
			t.Errorf("%s: message %q does not say %q", what, st.Message, m)
		}
	}
}

func body(s string) io.Reader { return strings.NewReader(s) }

func TestHTTPReadsAndWrites(t *testing.T) {
	srv := servertest.Start(t, server.Config{})
	u := srv.URL + "/v1/kv/"

	put := do(t, "PUT", u+"app/db/url?flags=7", body("postgres://db"))
	created := put.entry(t)
	var raw map[string]any
	json.Unmarshal(put.body, &raw)
	for _, f := range []string{"key", "value", "flags", "createIndex", "modifyIndex", "modified"} {
		if _, ok := raw[f]; !ok {
			t.Errorf("entry JSON %s lacks %q", put.body, f)
		}
	}
	if raw["value"] != base64.StdEncoding.EncodeToString([]byte("postgres://db")) || created.Flags != 7 || created.Key != "app/db/url" {
		t.Errorf("put answered %s", put.body)
	}

	get := do(t, "GET", u+"app/db/url", nil)
	if e := get.entry(t); string(e.Value) != "postgres://db" || e.ModifyIndex != created.ModifyIndex || get.index(t) < e.ModifyIndex {
		t.Errorf("get = %s (index %s)", get.body, get.header.Get(kv.IndexHeader))
	}
	rawGet := do(t, "GET", u+"app/db/url?raw", nil)
	if rawGet.code != 200 || string(rawGet.body) != "postgres://db" || rawGet.header.Get("Content-Type") != "application/octet-stream" {
		t.Errorf("?raw = %d %q (%s)", rawGet.code, rawGet.body, rawGet.header.Get("Content-Type"))
	}
	rawGet.index(t)

	missing := do(t, "GET", u+"app/nope", nil)
	missing.wantStatus(t, "get of a missing key", 404, "NotFound", `"app/nope"`)
	missing.index(t)
	do(t, "GET", u+"app/nope?raw", nil).wantStatus(t, "raw get of a missing key", 404, "NotFound")

	// Keys that need escaping in a path.
	odd := "app/with space/ü?#%"
	esc := strings.NewReplacer(" ", "%20", "?", "%3F", "#", "%23", "%", "%25").Replace(odd)
	if e := do(t, "PUT", u+esc, body("odd")).entry(t); e.Key != odd {
		t.Errorf("key of an escaped path = %q, want %q", e.Key, odd)
	}
	do(t, "PUT", u+"app/db/user", body("admin"))
	do(t, "PUT", u+"app/log/level", body("debug"))
	do(t, "PUT", u+"apple", body("fruit"))

	var list kv.List
	r := do(t, "GET", u+"app/?recurse", nil)
	r.decode(t, &list)
	var keys []string
	for _, e := range list.Items {
		keys = append(keys, e.Key)
	}
	if want := "app/db/url app/db/user app/log/level " + odd; strings.Join(keys, " ") != want || list.Index != r.index(t) {
		t.Errorf("recurse = %q (index %d), want %s", keys, list.Index, want)
	}
	var everything kv.List
	do(t, "GET", u+"?recurse", nil).decode(t, &everything)
	if len(everything.Items) != 5 {
		t.Errorf("GET /v1/kv/?recurse listed %d entries, want 5", len(everything.Items))
	}
	var kl kv.KeyList
	r = do(t, "GET", u+"app/?keys&separator=/", nil)
	r.decode(t, &kl)
	if want := "app/db/ app/log/ app/with space/"; strings.Join(kl.Keys, " ") != want || kl.Index != r.index(t) {
		t.Errorf("keys with separator = %q, want %s", kl.Keys, want)
	}
	do(t, "GET", u+"?keys", nil).decode(t, &kl)
	if len(kl.Keys) != 5 {
		t.Errorf("all keys = %q", kl.Keys)
	}

	// CAS.
	do(t, "PUT", u+"app/db/url?cas=0", body("x")).wantStatus(t, "create-only put of an existing key", 409, "Conflict",
		`"app/db/url"`, fmt.Sprint("modifyIndex ", created.ModifyIndex))
	do(t, "PUT", u+"app/db/url?cas=1", body("x")).wantStatus(t, "stale cas", 409, "Conflict", fmt.Sprint("at modifyIndex ", created.ModifyIndex))
	do(t, "PUT", u+"app/none?cas=5", body("x")).wantStatus(t, "cas on a missing key", 404, "NotFound", `"app/none"`)
	next := do(t, "PUT", fmt.Sprintf("%sapp/db/url?cas=%d", u, created.ModifyIndex), body("postgres://db2")).entry(t)
	if next.ModifyIndex <= created.ModifyIndex {
		t.Errorf("cas put = %+v", next)
	}
	if e := do(t, "PUT", u+"app/new?cas=0", body("")).entry(t); e.CreateIndex != e.ModifyIndex || len(e.Value) != 0 {
		t.Errorf("create-only put of an empty value = %+v", e)
	}

	// Bad input.
	do(t, "PUT", u+"k?cas=abc", body("x")).wantStatus(t, "bad cas", 400, "BadRequest", "cas")
	do(t, "PUT", u+"k?cas=-1", body("x")).wantStatus(t, "negative cas", 400, "BadRequest", "cas")
	do(t, "PUT", u+"k?flags=x", body("x")).wantStatus(t, "bad flags", 400, "BadRequest", "flags")
	do(t, "PUT", u+"k?flags=-1", body("x")).wantStatus(t, "negative flags", 400, "BadRequest", "flags")
	do(t, "DELETE", u+"k?cas=x", nil).wantStatus(t, "bad delete cas", 400, "BadRequest", "cas")
	do(t, "PUT", u+"a%00b", body("x")).wantStatus(t, "a key with NUL", 422, "Invalid", "NUL")
	do(t, "PUT", u+strings.Repeat("k", 1025), body("x")).wantStatus(t, "a long key", 422, "Invalid", "1025 bytes")
	do(t, "PUT", u, body("x")).wantStatus(t, "an empty key", 422, "Invalid", "empty")
	do(t, "GET", u, nil).wantStatus(t, "get of the empty key", 422, "Invalid", "empty")
	do(t, "PATCH", u+"k", body("x")).wantStatus(t, "PATCH", 405, "MethodNotAllowed", "PATCH")
	do(t, "GET", u+"k?watch=yes", nil).wantStatus(t, "a bad watch parameter", 400, "BadRequest", "watch")
	do(t, "POST", u+"k", nil).wantStatus(t, "POST without rollback", 400, "BadRequest", "rollback")
	do(t, "POST", u+"k?rollback=x", nil).wantStatus(t, "a bad rollback index", 400, "BadRequest", "rollback")

	// Deletes.
	do(t, "DELETE", u+"app/db/url?cas=1", nil).wantStatus(t, "stale delete cas", 409, "Conflict")
	do(t, "DELETE", u+"app/nope", nil).wantStatus(t, "delete of a missing key", 404, "NotFound", `"app/nope"`)
	do(t, "DELETE", u+"app/?recurse&cas=3", nil).wantStatus(t, "recursive delete with cas", 422, "Invalid", "recursive")
	var del kv.DeleteResult
	do(t, "DELETE", fmt.Sprintf("%sapp/db/url?cas=%d", u, next.ModifyIndex), nil).decode(t, &del)
	if del.Deleted != 1 || del.Index <= next.ModifyIndex {
		t.Errorf("delete = %+v", del)
	}
	do(t, "DELETE", u+"app/?recurse", nil).decode(t, &del)
	if del.Deleted != 4 {
		t.Errorf("recursive delete = %+v, want 4 deleted", del)
	}
	do(t, "DELETE", u+"app/?recurse", nil).decode(t, &del)
	if del.Deleted != 0 {
		t.Errorf("recursive delete of nothing = %+v", del)
	}
	if e := do(t, "GET", u+"apple", nil).entry(t); string(e.Value) != "fruit" {
		t.Errorf("a key outside the deleted prefix: %+v", e)
	}
}

func TestHTTPHistoryAndRollback(t *testing.T) {
	srv := servertest.Start(t, server.Config{})
	u := srv.URL + "/v1/kv/"
	v1 := do(t, "PUT", u+"feature?flags=1", body("on")).entry(t)
	v2 := do(t, "PUT", u+"feature", body("off")).entry(t)
	do(t, "DELETE", u+"feature", nil)

	var h kv.History
	r := do(t, "GET", u+"feature?history", nil)
	r.decode(t, &h)
	r.index(t)
	if h.Key != "feature" || len(h.Versions) != 2 || !h.Versions[0].Deleted || h.Versions[0].ModifyIndex != v2.ModifyIndex ||
		h.Versions[1].Deleted || string(h.Versions[1].Value) != "on" {
		t.Errorf("history = %s", r.body)
	}
	if !strings.Contains(string(r.body), `"deleted":true`) {
		t.Errorf("history JSON lacks deleted: %s", r.body)
	}
	do(t, "GET", u+"never?history", nil).wantStatus(t, "history of a key that never was", 404, "NotFound", `"never"`)

	back := do(t, "POST", fmt.Sprintf("%sfeature?rollback=%d&cas=0", u, v1.ModifyIndex), nil).entry(t)
	if string(back.Value) != "on" || back.Flags != 1 || back.ModifyIndex <= v2.ModifyIndex {
		t.Errorf("rollback = %+v", back)
	}
	do(t, "POST", fmt.Sprintf("%sfeature?rollback=%d&cas=0", u, v2.ModifyIndex), nil).wantStatus(t, "rollback create-only of an existing key", 409, "Conflict")
	do(t, "POST", u+"feature?rollback=99999", nil).wantStatus(t, "rollback to an unknown index", 404, "NotFound", "no version at index 99999")
	do(t, "GET", u+"feature?history", nil).decode(t, &h)
	if len(h.Versions) != 3 || h.Versions[0].ModifyIndex != back.ModifyIndex {
		t.Errorf("history after rollback has %d versions, newest %d", len(h.Versions), h.Versions[0].ModifyIndex)
	}
}

func TestHTTPValueLimit(t *testing.T) {
	srv := servertest.Start(t, server.Config{})
	u := srv.URL + "/v1/kv/"
	max := bytes.Repeat([]byte("v"), kv.DefaultMaxValueSize)
	if e := do(t, "PUT", u+"big", bytes.NewReader(max)).entry(t); len(e.Value) != kv.DefaultMaxValueSize {
		t.Errorf("a 512 KiB value came back with %d bytes", len(e.Value))
	}
	over := append(max, 'v')
	do(t, "PUT", u+"big", bytes.NewReader(over)).wantStatus(t, "512 KiB + 1 with a length", 413, "RequestEntityTooLarge", `"big"`, "524289", "524288")
	// Without a declared length (chunked), the read stops at the limit.
	do(t, "PUT", u+"big", io.MultiReader(bytes.NewReader(over))).wantStatus(t, "512 KiB + 1 chunked", 413, "RequestEntityTooLarge", "524288")
	// A body far over the limit is refused before it is read.
	start := time.Now()
	do(t, "PUT", u+"big", &endless{n: 1 << 30}, "Content-Length", strconv.Itoa(1<<30)).wantStatus(t, "1 GiB", 413, "RequestEntityTooLarge")
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("refusing a 1 GiB body took %v", d)
	}
	if e := do(t, "GET", u+"big", nil).entry(t); len(e.Value) != kv.DefaultMaxValueSize {
		t.Errorf("the refused puts changed the value: %d bytes", len(e.Value))
	}
}

// endless is a body of n bytes that are made as they are read.
type endless struct{ n int }

func (e *endless) Read(p []byte) (int, error) {
	if e.n <= 0 {
		return 0, io.EOF
	}
	n := min(len(p), e.n)
	e.n -= n
	return n, nil
}

func TestHTTPAuth(t *testing.T) {
	tokens := filepath.Join(t.TempDir(), "tokens")
	if err := os.WriteFile(tokens, []byte("admin-token-0123456789,admin\nread-token-0123456789,read,viewer\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	srv := servertest.Start(t, server.Config{TokenFile: tokens})
	u := srv.URL + "/v1/kv/k"
	admin := []string{"Authorization", "Bearer admin-token-0123456789"}
	read := []string{"Authorization", "Bearer read-token-0123456789"}
	do(t, "PUT", u, body("x")).wantStatus(t, "put without a token", 401, "Unauthorized")
	do(t, "GET", u, nil).wantStatus(t, "get without a token", 401, "Unauthorized")
	do(t, "PUT", u, body("x"), read...).wantStatus(t, "put with a read token", 403, "Forbidden", "viewer")
	do(t, "DELETE", u, nil, read...).wantStatus(t, "delete with a read token", 403, "Forbidden")
	do(t, "POST", u+"?rollback=1", nil, read...).wantStatus(t, "rollback with a read token", 403, "Forbidden")
	do(t, "PUT", u, body("x"), admin...).entry(t)
	if e := do(t, "GET", u, nil, read...).entry(t); string(e.Value) != "x" {
		t.Errorf("get with a read token = %+v", e)
	}
	w := openWatch(t, u+"?watch=true", read...)
	w.expect(t, "PUT k=x")
}

// stream is an open watch response.
type stream struct {
	resp   *http.Response
	events chan kv.WireEvent
}

func openWatch(t *testing.T, url string, header ...string) *stream {
	t.Helper()
	req, _ := http.NewRequest("GET", url, nil)
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != kv.WatchContentType {
		data, _ := io.ReadAll(resp.Body)
		t.Fatalf("watch %s: %d %s", url, resp.StatusCode, data)
	}
	s := &stream{resp: resp, events: make(chan kv.WireEvent, 100)}
	go func() {
		defer close(s.events)
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(nil, 4<<20)
		for sc.Scan() {
			var ev kv.WireEvent
			if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
				ev = kv.WireEvent{Type: "MALFORMED", Error: &resource.Status{Message: sc.Text()}}
			}
			s.events <- ev
		}
	}()
	return s
}

// next returns the next event, or false when the stream ended.
func (s *stream) next(t *testing.T) (kv.WireEvent, bool) {
	t.Helper()
	select {
	case ev, ok := <-s.events:
		return ev, ok
	case <-time.After(10 * time.Second):
		t.Fatal("no watch event within 10s")
	}
	return kv.WireEvent{}, false
}

// expect checks the next events as "TYPE key=value" ("TYPE key" for DELETE).
func (s *stream) expect(t *testing.T, want ...string) []kv.WireEvent {
	t.Helper()
	var evs []kv.WireEvent
	for _, w := range want {
		ev, ok := s.next(t)
		if !ok {
			t.Fatalf("the stream ended before %q", w)
		}
		if ev.Entry == nil {
			t.Fatalf("event %+v (error %+v), want %q", ev, ev.Error, w)
		}
		got := fmt.Sprintf("%s %s=%s", ev.Type, ev.Entry.Key, ev.Entry.Value)
		if ev.Type == kv.Delete {
			got = fmt.Sprintf("%s %s", ev.Type, ev.Entry.Key)
		}
		if got != w {
			t.Fatalf("event %q, want %q", got, w)
		}
		evs = append(evs, ev)
	}
	return evs
}

func TestHTTPWatch(t *testing.T) {
	// A request timeout shorter than the test shows watches are spared it.
	srv := servertest.Start(t, server.Config{RequestTimeout: time.Second})
	u := srv.URL + "/v1/kv/"
	do(t, "PUT", u+"cfg/a", body("1"))
	key := openWatch(t, u+"cfg/a?watch=true")
	tree := openWatch(t, u+"cfg/?watch=true&recurse")
	start, err := strconv.ParseInt(tree.resp.Header.Get(kv.IndexHeader), 10, 64)
	if err != nil {
		t.Fatalf("the watch's %s header: %v", kv.IndexHeader, err)
	}
	key.expect(t, "PUT cfg/a=1")
	tree.expect(t, "PUT cfg/a=1")

	time.Sleep(1500 * time.Millisecond) // past the request timeout
	b := do(t, "PUT", u+"cfg/b", body("1")).entry(t)
	do(t, "PUT", u+"other", body("1"))
	do(t, "PUT", u+"cfg/a", body("2"))
	var del kv.DeleteResult
	do(t, "DELETE", u+"cfg/a", nil).decode(t, &del)
	key.expect(t, "PUT cfg/a=2")
	if ev := key.expect(t, "DELETE cfg/a")[0]; ev.Entry.ModifyIndex != del.Index {
		t.Errorf("DELETE event index %d, want the delete's %d", ev.Entry.ModifyIndex, del.Index)
	}
	tree.expect(t, "PUT cfg/b=1", "PUT cfg/a=2", "DELETE cfg/a")

	// Resumed after an index: only what came after it.
	resumed := openWatch(t, fmt.Sprintf("%scfg/?watch=true&recurse&index=%d", u, b.ModifyIndex))
	resumed.expect(t, "PUT cfg/a=2", "DELETE cfg/a")
	fromStart := openWatch(t, fmt.Sprintf("%scfg/?watch=1&recurse&index=%d", u, start))
	fromStart.expect(t, "PUT cfg/b=1", "PUT cfg/a=2", "DELETE cfg/a")

	do(t, "GET", u+"cfg/?watch=true&index=x", nil).wantStatus(t, "a bad index", 400, "BadRequest", "index")
	do(t, "GET", u+"a%00b?watch=true", nil).wantStatus(t, "a watch of a bad key", 422, "Invalid", "NUL")
}

func TestHTTPWatchOfACompactedIndex(t *testing.T) {
	etcd := servertest.StartEtcd(t)
	srv := servertest.Start(t, server.Config{EtcdEndpoints: []string{etcd.Endpoint()}})
	u := srv.URL + "/v1/kv/"
	old := do(t, "PUT", u+"k", body("1")).entry(t)
	do(t, "PUT", u+"k", body("2"))
	compact(t, etcd.Client)
	w := openWatch(t, fmt.Sprintf("%sk?watch=true&index=%d", u, old.ModifyIndex))
	ev, ok := w.next(t)
	if !ok || ev.Type != kv.Error || ev.Error == nil || ev.Error.Code != 410 || ev.Error.Reason != "Expired" || ev.Entry != nil {
		t.Fatalf("event %+v (error %+v), want an ERROR of code 410", ev, ev.Error)
	}
	if _, ok := w.next(t); ok {
		t.Error("the stream goes on after its ERROR event")
	}
}

func TestHTTPShutdownEndsWatches(t *testing.T) {
	srv := servertest.Start(t, server.Config{})
	w := openWatch(t, srv.URL+"/v1/kv/app/?watch=true&recurse")
	done := make(chan error, 1)
	start := time.Now()
	go func() { done <- srv.Stop() }()
	if ev, ok := w.next(t); ok {
		t.Fatalf("event %+v during shutdown", ev)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("graceful shutdown failed: %v", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("shutdown did not finish with an open kv watch")
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("shutdown took %v with a kv watch open; watches should end at once", d)
	}
}

func TestClient(t *testing.T) {
	srv := servertest.Start(t, server.Config{})
	c := srv.Client(t, "")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	e, err := c.KVPut(ctx, "svc/timeout", []byte("5s"), kv.PutOptions{Flags: 3})
	if err != nil {
		t.Fatal(err)
	}
	w, err := c.KVWatch(ctx, "svc/", true, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if w.Index < e.ModifyIndex {
		t.Errorf("watch index %d, want at least %d", w.Index, e.ModifyIndex)
	}
	if ev, err := w.Next(); err != nil || ev.Type != kv.Put || string(ev.Entry.Value) != "5s" {
		t.Fatalf("first event %+v, %v", ev, err)
	}
	if _, err := c.KVPut(ctx, "svc/timeout", []byte("x"), kv.PutOptions{CAS: ptr(1)}); !isStatus(err, 409) {
		t.Errorf("stale cas through the client: %v", err)
	}
	got, err := c.KVGet(ctx, "svc/timeout")
	if err != nil || got.Flags != 3 || got.ModifyIndex != e.ModifyIndex {
		t.Errorf("KVGet = %+v, %v", got, err)
	}
	if _, err := c.KVGet(ctx, "svc/none"); !isStatus(err, 404) {
		t.Errorf("KVGet of a missing key: %v", err)
	}
	l, err := c.KVList(ctx, "svc/")
	if err != nil || len(l.Items) != 1 {
		t.Errorf("KVList = %+v, %v", l, err)
	}
	kl, err := c.KVKeys(ctx, "", "/")
	if err != nil || strings.Join(kl.Keys, ",") != "svc/" {
		t.Errorf("KVKeys = %+v, %v", kl, err)
	}
	second, err := c.KVPut(ctx, "svc/timeout", []byte("10s"), kv.PutOptions{CAS: &e.ModifyIndex})
	if err != nil {
		t.Fatal(err)
	}
	if ev, err := w.Next(); err != nil || ev.Entry.ModifyIndex != second.ModifyIndex {
		t.Errorf("event of the second put: %+v, %v", ev, err)
	}
	back, err := c.KVRollback(ctx, "svc/timeout", e.ModifyIndex, &second.ModifyIndex)
	if err != nil || string(back.Value) != "5s" {
		t.Errorf("KVRollback = %+v, %v", back, err)
	}
	h, err := c.KVHistory(ctx, "svc/timeout")
	if err != nil || len(h.Versions) != 3 {
		t.Errorf("KVHistory = %+v, %v", h, err)
	}
	res, err := c.KVDelete(ctx, "svc/", kv.DeleteOptions{Recurse: true})
	if err != nil || res.Deleted != 1 {
		t.Errorf("KVDelete = %+v, %v", res, err)
	}
}

func isStatus(err error, code int) bool {
	st, ok := err.(*resource.Status)
	return ok && st.Code == code
}
