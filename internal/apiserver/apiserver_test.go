package apiserver_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sluice/sluice/internal/resource"
	"github.com/sluice/sluice/internal/server"
	"github.com/sluice/sluice/internal/servertest"
)

const svcPath = "/apis/sluice.io/v1alpha1/namespaces/default/services"

const greeter = `{"apiVersion":"sluice.io/v1alpha1","kind":"Service","metadata":{"name":"greeter"},
 "spec":{"selector":{"app":"greeter"},"ports":[{"name":"grpc","port":50051,"protocol":"grpc"}]}}`

type response struct {
	code   int
	header http.Header
	body   []byte
}

func (r response) status(t *testing.T) resource.Status {
	t.Helper()
	var st resource.Status
	if err := json.Unmarshal(r.body, &st); err != nil {
		t.Fatalf("error body is not a Status: %v: %s", err, r.body)
	}
	return st
}

func do(t *testing.T, method, url, contentType, body string, header ...string) response {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	return response{resp.StatusCode, resp.Header, data}
}

func TestErrors(t *testing.T) {
	srv := servertest.Start(t, server.Config{MaxBodyBytes: 64 << 10})
	u := srv.URL
	created := do(t, "POST", u+svcPath, "application/json", greeter)
	if created.code != 201 {
		t.Fatalf("create: %d %s", created.code, created.body)
	}
	var obj map[string]any
	json.Unmarshal(created.body, &obj)
	rv := obj["metadata"].(map[string]any)["resourceVersion"].(string)
	stale := strings.Replace(greeter, `"name":"greeter"`, `"name":"greeter","resourceVersion":"1"`, 1)

	cases := []struct {
		name, method, path, ctype, body string
		code                            int
		reason                          string
		field                           string // a details[].field that must be present
		msg                             string // a substring of the message
	}{
		{"invalid port", "POST", svcPath, "application/json",
			strings.Replace(greeter, `"greeter"}`, `"other"}`, 1)[:0] + `{"metadata":{"name":"bad"},"spec":{"ports":[{"port":70000}]}}`,
			422, "Invalid", "spec.ports[0].port", "must be 1-65535"},
		{"invalid name", "POST", svcPath, "application/json", `{"metadata":{"name":"Bad_Name"},"spec":{"ports":[{"port":80}]}}`,
			422, "Invalid", "metadata.name", "Bad_Name"},
		{"several invalid fields", "POST", svcPath, "application/json", `{"metadata":{"name":"x"},"spec":{"ports":[{"name":"a","port":0},{"name":"a","port":80,"protocol":"udp"}]}}`,
			422, "Invalid", "spec.ports[1].protocol", "udp"},
		{"malformed JSON", "POST", svcPath, "application/json", `{"metadata":`, 400, "BadRequest", "", "not a valid JSON"},
		{"malformed YAML", "POST", svcPath, "application/yaml", "metadata:\n  name: [unclosed\n", 400, "BadRequest", "", "not valid YAML"},
		{"unknown field", "POST", svcPath, "application/json", `{"metadata":{"name":"x"},"spec":{"prots":[]}}`, 400, "BadRequest", "spec.prots", "unknown field"},
		{"wrong type", "POST", svcPath, "application/json", `{"metadata":{"name":"x"},"spec":{"ports":"80"}}`, 400, "BadRequest", "", "does not decode"},
		{"kind mismatch", "POST", svcPath, "application/json", `{"apiVersion":"sluice.io/v1alpha1","kind":"Endpoint","metadata":{"name":"x"}}`, 400, "BadRequest", "", "do not match"},
		{"namespace mismatch", "POST", svcPath, "application/json", `{"metadata":{"name":"x","namespace":"prod"},"spec":{"ports":[{"port":80}]}}`, 400, "BadRequest", "", "namespace"},
		{"name mismatch", "PUT", svcPath + "/greeter", "application/json", `{"metadata":{"name":"other"},"spec":{"ports":[{"port":80}]}}`, 400, "BadRequest", "", "metadata.name"},
		{"unknown kind", "GET", "/apis/sluice.io/v1alpha1/namespaces/default/widgets", "", "", 404, "NotFound", "", "widgets"},
		{"unknown group", "GET", "/apis/example.com/v1/namespaces/default/services", "", "", 404, "NotFound", "", ""},
		{"unknown object", "GET", svcPath + "/missing", "", "", 404, "NotFound", "", "missing"},
		{"unknown path", "GET", "/nothing/here", "", "", 404, "NotFound", "", ""},
		{"delete unknown object", "DELETE", svcPath + "/missing", "", "", 404, "NotFound", "", ""},
		{"body too large", "POST", svcPath, "application/json", `{"metadata":{"name":"x","annotations":{"a":"` + strings.Repeat("x", 100<<10) + `"}}}`, 413, "RequestEntityTooLarge", "", "larger than"},
		{"create existing", "POST", svcPath, "application/json", greeter, 409, "AlreadyExists", "", "greeter"},
		{"stale resourceVersion", "PUT", svcPath + "/greeter", "application/json", stale, 409, "Conflict", "", "stale"},
		{"bad resourceVersion", "PUT", svcPath + "/greeter", "application/json", strings.Replace(stale, `"1"`, `"abc"`, 1), 400, "BadRequest", "", "resourceVersion"},
		{"bad label selector", "GET", svcPath + "?labelSelector=a%3D%3D%3Db", "", "", 400, "BadRequest", "", "labelSelector"},
		{"bad dryRun", "POST", svcPath + "?dryRun=yes", "application/json", greeter, 400, "BadRequest", "", "dryRun"},
		{"status of kind without status", "PUT", svcPath + "/greeter/status", "application/json", greeter, 404, "NotFound", "", "status"},
		{"patch without apply content type", "PATCH", svcPath + "/greeter", "application/merge-patch+json", `{}`, 415, "UnsupportedMediaType", "", "apply-patch"},
		{"bad watch resourceVersion", "GET", svcPath + "?watch=true&resourceVersion=-3", "", "", 400, "BadRequest", "", "resourceVersion"},
		{"delete with stale precondition", "DELETE", svcPath + "/greeter", "application/json", `{"preconditions":{"resourceVersion":"1"}}`, 409, "Conflict", "", ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := do(t, c.method, u+c.path, c.ctype, c.body)
			if r.code != c.code {
				t.Fatalf("status %d, want %d: %s", r.code, c.code, r.body)
			}
			if ct := r.header.Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type %q, want application/json", ct)
			}
			st := r.status(t)
			if st.Code != c.code || st.Reason != c.reason {
				t.Errorf("body code %d reason %q, want %d %q", st.Code, st.Reason, c.code, c.reason)
			}
			if !strings.Contains(st.Message, c.msg) {
				t.Errorf("message %q does not mention %q", st.Message, c.msg)
			}
			if c.field != "" {
				found := false
				for _, d := range st.Details {
					found = found || (d.Field == c.field && d.Reason != "")
				}
				if !found {
					t.Errorf("details %+v name no field %q", st.Details, c.field)
				}
			}
		})
	}
	// None of the failed writes changed the object.
	r := do(t, "GET", u+svcPath+"/greeter", "", "")
	json.Unmarshal(r.body, &obj)
	if got := obj["metadata"].(map[string]any)["resourceVersion"]; got != rv {
		t.Errorf("resourceVersion moved from %s to %v after only failed writes", rv, got)
	}
}

func TestInvalidBodyExactShape(t *testing.T) {
	srv := servertest.Start(t, server.Config{})
	r := do(t, "POST", srv.URL+svcPath, "application/yaml", "metadata: {name: greeter}\nspec:\n  ports: [{port: 70000}]\n")
	want := `{"code":422,"reason":"Invalid","message":"Service.sluice.io \"greeter\" is invalid: spec.ports[0].port: must be 1-65535","details":[{"field":"spec.ports[0].port","reason":"must be 1-65535"}]}`
	if got := strings.TrimSpace(string(r.body)); got != want {
		t.Errorf("body\n got %s\nwant %s", got, want)
	}
}

func TestCRUDAndApply(t *testing.T) {
	srv := servertest.Start(t, server.Config{})
	u := srv.URL + svcPath
	apply := func(body string) response {
		return do(t, "PATCH", u+"/greeter", "application/apply-patch+yaml", body)
	}
	r := apply("apiVersion: sluice.io/v1alpha1\nkind: Service\nmetadata: {name: greeter}\nspec: {ports: [{port: 80}]}\n")
	if r.code != 201 {
		t.Fatalf("first apply: %d %s", r.code, r.body)
	}
	first := r.body
	r = apply("apiVersion: sluice.io/v1alpha1\nkind: Service\nmetadata: {name: greeter}\nspec: {ports: [{port: 80}]}\n")
	if r.code != 200 || string(r.body) != string(first) {
		t.Fatalf("second apply: %d, body changed:\n%s\n%s", r.code, first, r.body)
	}
	r = do(t, "POST", u+"?dryRun=All", "application/json", strings.Replace(greeter, "greeter", "dry", 1))
	if r.code != 201 {
		t.Fatalf("dry-run create: %d %s", r.code, r.body)
	}
	if r := do(t, "GET", u+"/dry", "", ""); r.code != 404 {
		t.Errorf("dry-run create stored the object: %d", r.code)
	}
	r = do(t, "GET", "http://"+srv.Config.HTTPAddr+"/apis/sluice.io/v1alpha1/services", "", "")
	var list struct {
		Kind     string
		Metadata struct{ ResourceVersion string }
		Items    []json.RawMessage
	}
	json.Unmarshal(r.body, &list)
	if list.Kind != "ServiceList" || len(list.Items) != 1 || list.Metadata.ResourceVersion == "" {
		t.Errorf("cluster-wide list: %s", r.body)
	}
	if r := do(t, "DELETE", u+"/greeter", "", ""); r.code != 200 {
		t.Errorf("delete: %d %s", r.code, r.body)
	}
	if r := do(t, "GET", u+"/greeter", "", ""); r.code != 404 {
		t.Errorf("get after delete: %d", r.code)
	}
}

func writeTokens(t *testing.T) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "tokens")
	data := "# test tokens\nadmin-token-0123456789,admin,alice\nread-token-0123456789,read,bob\n"
	if err := os.WriteFile(path, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestTokenAuth(t *testing.T) {
	srv := servertest.Start(t, server.Config{TokenFile: writeTokens(t)})
	u := srv.URL
	bearer := func(tok string) []string { return []string{"Authorization", "Bearer " + tok} }
	cases := []struct {
		name, method, path, body string
		header                   []string
		code                     int
	}{
		{"healthz needs no token", "GET", "/healthz", "", nil, 200},
		{"readyz needs no token", "GET", "/readyz", "", nil, 200},
		{"no token", "GET", svcPath, "", nil, 401},
		{"no token on write", "POST", svcPath, greeter, nil, 401},
		{"unknown token", "GET", svcPath, "", bearer("not-a-known-token-at-all"), 401},
		{"basic auth is not a bearer token", "GET", svcPath, "", []string{"Authorization", "Basic YWRtaW46YWRtaW4="}, 401},
		{"metrics needs a token", "GET", "/metrics", "", nil, 401},
		{"read token reads", "GET", svcPath, "", bearer("read-token-0123456789"), 200},
		{"read token cannot create", "POST", svcPath, greeter, bearer("read-token-0123456789"), 403},
		{"read token cannot delete", "DELETE", svcPath + "/greeter", "", bearer("read-token-0123456789"), 403},
		{"admin token creates", "POST", svcPath, greeter, bearer("admin-token-0123456789"), 201},
		{"read token reads metrics", "GET", "/metrics", "", bearer("read-token-0123456789"), 200},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := do(t, c.method, u+c.path, "application/json", c.body, c.header...)
			if r.code != c.code {
				t.Fatalf("status %d, want %d: %s", r.code, c.code, r.body)
			}
			if c.code == 401 && !strings.HasPrefix(r.header.Get("WWW-Authenticate"), "Bearer") {
				t.Errorf("401 without a Bearer WWW-Authenticate challenge")
			}
			if c.code >= 400 {
				if st := r.status(t); st.Code != c.code {
					t.Errorf("body code %d, want %d", st.Code, c.code)
				}
			}
		})
	}
	if r := do(t, "GET", u+svcPath+"/greeter", "", "", bearer("read-token-0123456789")...); r.code != 200 {
		t.Errorf("the admin's create is not readable: %d", r.code)
	}
}

// watchStream reads NDJSON events from a watch request.
type watchStream struct {
	resp *http.Response
	sc   *bufio.Scanner
}

type event struct {
	Type   string
	Object struct {
		Metadata struct{ Name, ResourceVersion string }
		Code     int
		Reason   string
	}
}

func openWatch(t *testing.T, url string) *watchStream {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/x-ndjson" {
		t.Fatalf("watch: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	t.Cleanup(func() { resp.Body.Close() })
	return &watchStream{resp: resp, sc: bufio.NewScanner(resp.Body)}
}

// next returns the next non-bookmark event; ok is false when the stream ends.
func (w *watchStream) next(t *testing.T) (event, bool) {
	t.Helper()
	type res struct {
		ev event
		ok bool
	}
	ch := make(chan res, 1)
	go func() {
		for w.sc.Scan() {
			var ev event
			if err := json.Unmarshal(w.sc.Bytes(), &ev); err != nil {
				t.Errorf("bad event line %q: %v", w.sc.Text(), err)
			}
			if ev.Type != "BOOKMARK" {
				ch <- res{ev, true}
				return
			}
		}
		ch <- res{}
	}()
	select {
	case r := <-ch:
		return r.ev, r.ok
	case <-time.After(10 * time.Second):
		t.Fatal("no watch event within 10s")
		return event{}, false
	}
}

func (w *watchStream) expect(t *testing.T, want ...string) string {
	t.Helper()
	var rv string
	for _, wnt := range want {
		ev, ok := w.next(t)
		if !ok {
			t.Fatalf("stream ended, want %s", wnt)
		}
		if got := ev.Type + " " + ev.Object.Metadata.Name; got != wnt {
			t.Fatalf("event %q, want %q", got, wnt)
		}
		rv = ev.Object.Metadata.ResourceVersion
	}
	return rv
}

func create(t *testing.T, base, name string) {
	t.Helper()
	if r := do(t, "POST", base+svcPath, "application/json", strings.Replace(greeter, `"greeter"}`, `"`+name+`"}`, 1)); r.code != 201 {
		t.Fatalf("create %s: %d %s", name, r.code, r.body)
	}
}

func TestWatchStreamAndResume(t *testing.T) {
	srv := servertest.Start(t, server.Config{})
	u := srv.URL
	create(t, u, "a")
	w := openWatch(t, u+svcPath+"?watch=true")
	w.expect(t, "ADDED a")
	create(t, u, "b")
	lastRV := w.expect(t, "ADDED b")
	// Drop the connection, change things while nobody watches, resume.
	w.resp.Body.Close()
	create(t, u, "c")
	do(t, "DELETE", u+svcPath+"/a", "", "")
	create(t, u, "d")
	resumed := openWatch(t, u+svcPath+"?watch=1&resourceVersion="+lastRV)
	resumed.expect(t, "ADDED c", "DELETED a", "ADDED d")
	create(t, u, "e")
	resumed.expect(t, "ADDED e")

	// The label selector filters the stream.
	sel := openWatch(t, u+svcPath+"?watch=true&labelSelector=tier%3Dweb")
	do(t, "POST", u+svcPath, "application/json", `{"metadata":{"name":"web","labels":{"tier":"web"}},"spec":{"ports":[{"port":80}]}}`)
	create(t, u, "not-web")
	do(t, "POST", u+svcPath, "application/json", `{"metadata":{"name":"web2","labels":{"tier":"web"}},"spec":{"ports":[{"port":80}]}}`)
	sel.expect(t, "ADDED web", "ADDED web2")
}

func TestWatchTimeoutEndsStream(t *testing.T) {
	srv := servertest.Start(t, server.Config{})
	w := openWatch(t, srv.URL+svcPath+"?watch=true&timeoutSeconds=1")
	if _, ok := w.next(t); ok {
		t.Fatal("event on an empty collection")
	}
}

func TestWatchAfterCompactionIsGone(t *testing.T) {
	srv := servertest.Start(t, server.Config{CompactInterval: 50 * time.Millisecond})
	u := srv.URL
	create(t, u, "a")
	r := do(t, "GET", u+svcPath+"/a", "", "")
	var obj struct {
		Metadata struct{ ResourceVersion string }
	}
	json.Unmarshal(r.body, &obj)
	// Keep writing until the server's compactor has removed the history after a.
	deadline := time.Now().Add(15 * time.Second)
	for i := 0; ; i++ {
		create(t, u, fmt.Sprintf("n%d", i))
		w := openWatch(t, u+svcPath+"?watch=true&resourceVersion="+obj.Metadata.ResourceVersion)
		ev, ok := w.next(t)
		w.resp.Body.Close()
		if ok && ev.Type == "ERROR" {
			if ev.Object.Code != 410 || ev.Object.Reason != "Expired" {
				t.Fatalf("ERROR event %+v, want code 410 reason Expired", ev.Object)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("no 410 after 15s of compaction every 50ms")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestMetrics(t *testing.T) {
	srv := servertest.Start(t, server.Config{})
	create(t, srv.URL, "a")
	r := do(t, "GET", srv.URL+"/metrics", "", "")
	for _, want := range []string{
		`sluice_apiserver_requests_total{code="201",method="POST",resource="services"} 1`,
		`sluice_store_operation_duration_seconds_count{kind="Service",operation="create"} 1`,
		"etcd_server_has_leader",
		"go_goroutines",
	} {
		if !strings.Contains(string(r.body), want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
}

func TestShutdownEndsWatches(t *testing.T) {
	srv := servertest.Start(t, server.Config{})
	w := openWatch(t, srv.URL+svcPath+"?watch=true")
	done := make(chan error, 1)
	start := time.Now()
	go func() { done <- srv.Stop() }()
	if _, ok := w.next(t); ok {
		t.Fatal("event during shutdown")
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("graceful shutdown failed: %v", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("shutdown did not finish with an open watch")
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("shutdown took %v with one watch open; watches should end at once", d)
	}
	_ = context.Background()
}
