package consul

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/goleak"
	"go.uber.org/zap"

	"github.com/sluice/sluice/internal/auth"
	"github.com/sluice/sluice/internal/resource"
	"github.com/sluice/sluice/internal/store"
)

// etcdEndpoint is the package's shared embedded etcd; each test works in a
// namespace of its own.
var etcdEndpoint string

func TestMain(m *testing.M) { os.Exit(run(m)) }

func run(m *testing.M) int {
	dir, err := os.MkdirTemp("", "sluice-consul-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	// (servertest would import this package through the server.)
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	e, err := store.StartEmbedded(context.Background(), store.EmbedConfig{Dir: filepath.Join(dir, "etcd"), Logger: logger})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	etcdEndpoint = e.Endpoint()
	code := m.Run()
	e.Close()
	if err := goleak.Find(); err != nil && code == 0 {
		fmt.Fprintln(os.Stderr, "consul: leaked goroutines:", err)
		return 1
	}
	return code
}

// fixtures counts fixtures, whose namespaces it prefixes.
var fixtures atomic.Int64

// heartbeats records the heartbeats the facade sends.
type heartbeats struct {
	mu  sync.Mutex
	got []string // "namespace/name state output"
}

func (h *heartbeats) Heartbeat(_ context.Context, ns, name string, state resource.CheckState, output string) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.got = append(h.got, fmt.Sprintf("%s/%s %s %s", ns, name, state, output))
	return nil
}

// fixture is a facade over the shared etcd, served by an httptest server.
type fixture struct {
	f       *Facade
	url     string
	hb      *heartbeats
	client  *http.Client
	metrics *prometheus.Registry // the store's
	// prefix is put before every ?ns=, so that each fixture (and each run
	// of a test, with -count) has namespaces of its own.
	prefix string
}

func newFixture(t *testing.T, tokens *auth.Tokens) *fixture {
	t.Helper()
	c, err := clientv3.New(clientv3.Config{Endpoints: []string{etcdEndpoint}, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	st := store.New(c, resource.Builtin(), store.Options{Registerer: reg})
	hb := &heartbeats{}
	f := New(Options{Store: st, Registry: hb, Tokens: tokens, NodeName: "node-1"})
	srv := httptest.NewServer(f.Handler())
	tr := &http.Transport{}
	t.Cleanup(func() {
		f.Close()
		srv.Close()
		tr.CloseIdleConnections()
		c.Close()
	})
	return &fixture{f: f, url: srv.URL, hb: hb, client: &http.Client{Transport: tr}, metrics: reg, prefix: fmt.Sprintf("f%d-", fixtures.Add(1))}
}

// do sends a request and returns its status, body and X-Consul-Index.
func (x *fixture) do(t *testing.T, method, path, body string, header ...string) (int, string, int64) {
	t.Helper()
	path = strings.Replace(path, "ns=", "ns="+x.prefix, 1)
	req, err := http.NewRequest(method, x.url+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := x.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	index, _ := strconv.ParseInt(resp.Header.Get("X-Consul-Index"), 10, 64)
	return resp.StatusCode, string(data), index
}

func (x *fixture) register(t *testing.T, ns, body string) {
	t.Helper()
	if code, text, _ := x.do(t, "PUT", "/v1/agent/service/register?ns="+ns, body); code != 200 {
		t.Fatalf("register %s: %d %s", body, code, text)
	}
}

func TestTokensFromEveryPlace(t *testing.T) {
	file := filepath.Join(t.TempDir(), "tokens")
	os.WriteFile(file, []byte("admin-token-0123456789,admin\nread-token-0123456789,read\n"), 0o600)
	tokens, err := auth.LoadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	x := newFixture(t, tokens)
	const body = `{"Name":"tok","Port":80,"Address":"10.0.0.1"}`
	cases := []struct {
		name, path string
		header     []string
		code       int
		text       string
	}{
		{"none", "", nil, 403, "ACL not found"},
		{"X-Consul-Token", "", []string{"X-Consul-Token", "admin-token-0123456789"}, 200, ""},
		{"bearer", "", []string{"Authorization", "Bearer admin-token-0123456789"}, 200, ""},
		{"query", "&token=admin-token-0123456789", nil, 200, ""},
		{"unknown", "", []string{"X-Consul-Token", "nope-nope-nope-nope"}, 403, "ACL not found"},
		{"read", "", []string{"X-Consul-Token", "read-token-0123456789"}, 403, "Permission denied"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			code, text, _ := x.do(t, "PUT", "/v1/agent/service/register?ns=tokens"+c.path, body, c.header...)
			if code != c.code || text != c.text {
				t.Errorf("register: %d %q, want %d %q", code, text, c.code, c.text)
			}
		})
	}
	if code, _, _ := x.do(t, "GET", "/v1/catalog/services?ns=tokens&token=read-token-0123456789", ""); code != 200 {
		t.Errorf("read with the read token: %d", code)
	}
}

func TestRegisterHeartbeatsTheInitialStatusOnce(t *testing.T) {
	x := newFixture(t, nil)
	body := `{"ID":"ttl-1","Name":"ttl","Port":80,"Address":"10.0.0.1","Check":{"TTL":"10s","Status":"passing"}}`
	x.register(t, "initial", body)
	x.register(t, "initial", body) // a known check keeps its state
	x.hb.mu.Lock()
	got := x.hb.got
	x.hb.mu.Unlock()
	if len(got) != 1 || got[0] != x.prefix+"initial/ttl-1 passing " {
		t.Errorf("heartbeats %q, want one passing heartbeat of initial/ttl-1", got)
	}
	for _, path := range []string{"/v1/agent/check/pass/service:ttl-1?ns=initial&note=hi", "/v1/agent/check/fail/service:ttl-1?ns=initial"} {
		if code, text, _ := x.do(t, "PUT", path, ""); code != 200 {
			t.Errorf("PUT %s: %d %s", path, code, text)
		}
	}
	code, text, _ := x.do(t, "PUT", "/v1/agent/check/update/service:ttl-1?ns=initial", `{"Status":"warning","Output":"slow"}`)
	if code != 200 {
		t.Errorf("update: %d %s", code, text)
	}
	code, text, _ = x.do(t, "PUT", "/v1/agent/check/update/service:ttl-1?ns=initial", `{"Status":"fine"}`)
	if code != 400 || text != "Invalid check status: 'fine'" {
		t.Errorf("update with a bad status: %d %q", code, text)
	}
	x.hb.mu.Lock()
	got = x.hb.got
	x.hb.mu.Unlock()
	want := []string{"passing ", "passing hi", "critical ", "warning slow"}
	for i, w := range want {
		want[i] = x.prefix + "initial/ttl-1 " + w
	}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("heartbeats %q, want %q", got, want)
	}
}

func TestCustomCheckIDs(t *testing.T) {
	x := newFixture(t, nil)
	x.register(t, "custom", `{"ID":"Job 7","Name":"job","Port":80,"Address":"10.0.0.1","Checks":[{"CheckID":"job:alive","TTL":"10s"},{"TCP":"10.0.0.1:80","Interval":"10s"}]}`)
	// Found through its label, then remembered; a fresh facade finds it too.
	for range 2 {
		if code, text, _ := x.do(t, "PUT", "/v1/agent/check/pass/job:alive?ns=custom", ""); code != 200 {
			t.Fatalf("pass job:alive: %d %s", code, text)
		}
	}
	y := &fixture{f: New(Options{Store: x.f.store, Registry: x.hb}), hb: x.hb, prefix: x.prefix}
	srv := httptest.NewServer(y.f.Handler())
	defer srv.Close()
	y.url, y.client = srv.URL, &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	if code, text, _ := y.do(t, "PUT", "/v1/agent/check/pass/job:alive?ns=custom", ""); code != 200 {
		t.Fatalf("pass job:alive on another facade: %d %s", code, text)
	}
	// The second check has Consul's default ID for the second of two.
	code, text, _ := x.do(t, "PUT", "/v1/agent/check/pass/service:Job 7:2?ns=custom", "")
	if code != 500 || text != `CheckID "service:Job 7:2" does not have associated TTL` {
		t.Errorf("pass of the TCP check: %d %q", code, text)
	}
	code, text, _ = x.do(t, "GET", "/v1/agent/checks?ns=custom", "")
	var checks map[string]struct{ CheckID, Type, ServiceID, Status string }
	if err := json.Unmarshal([]byte(text), &checks); code != 200 || err != nil || len(checks) != 2 ||
		checks["job:alive"].Type != "ttl" || checks["service:Job 7:2"].Type != "tcp" || checks["job:alive"].ServiceID != "Job 7" {
		t.Errorf("agent checks: %d %s", code, text)
	}
}

// TestBlockingWaitersShareReads: many waiters woken by one change cost a
// few store reads, not one each; Close answers the rest at once.
func TestBlockingWaitersShareReads(t *testing.T) {
	x := newFixture(t, nil)
	x.register(t, "share", `{"ID":"s-1","Name":"s","Port":80,"Address":"10.0.0.1"}`)
	_, _, index := x.do(t, "GET", "/v1/health/service/s?ns=share", "")
	const n = 100
	var wg sync.WaitGroup
	codes := make(chan int, n)
	for range n {
		wg.Go(func() {
			code, _, got := x.do(t, "GET", fmt.Sprintf("/v1/health/service/s?ns=share&index=%d&wait=30s", index), "")
			if got <= index {
				code = -1
			}
			codes <- code
		})
	}
	// Wait until they all block: each has opened its watches.
	deadline := time.Now().Add(10 * time.Second)
	for x.watches(t) < 2*n {
		if time.Now().After(deadline) {
			t.Fatalf("%d store watches open after 10s, want %d (two per waiter)", x.watches(t), 2*n)
		}
		time.Sleep(10 * time.Millisecond)
	}
	before := x.f.snapReads.Load()
	x.register(t, "share", `{"ID":"s-2","Name":"s","Port":80,"Address":"10.0.0.2"}`)
	wg.Wait()
	close(codes)
	for c := range codes {
		if c != 200 {
			t.Fatalf("a woken query answered %d (-1: no new index)", c)
		}
	}
	reads := x.f.snapReads.Load() - before
	t.Logf("%d woken queries cost %d store reads", n, reads)
	if reads > n/4 {
		t.Errorf("%d woken queries cost %d store reads, want them to share", n, reads)
	}

	// Close answers a blocking query at once, with its index.
	_, _, index = x.do(t, "GET", "/v1/health/service/s?ns=share", "")
	done := make(chan int64, 1)
	go func() {
		_, _, got := x.do(t, "GET", fmt.Sprintf("/v1/health/service/s?ns=share&index=%d&wait=1m", index), "")
		done <- got
	}()
	time.Sleep(100 * time.Millisecond)
	x.f.Close()
	select {
	case got := <-done:
		if got != index {
			t.Errorf("query ended by Close answered index %d, want %d", got, index)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not end a blocking query")
	}
}

// watches is the number of open store watches.
func (x *fixture) watches(t *testing.T) int {
	t.Helper()
	mfs, err := x.metrics.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == "sluice_store_watchers" {
			return int(mf.GetMetric()[0].GetGauge().GetValue())
		}
	}
	return 0
}

func TestQueryParameters(t *testing.T) {
	x := newFixture(t, nil)
	x.register(t, "params", `{"ID":"p-1","Name":"p","Port":80,"Address":"10.0.0.1"}`)
	cases := []struct {
		path string
		code int
		text string
	}{
		{"/v1/health/service/p?ns=params&index=x", 400, "Invalid index"},
		{"/v1/health/service/p?ns=params&index=1&wait=soon", 400, "Invalid wait time"},
		{"/v1/health/service/p?ns=params&passing=maybe", 400, "Invalid value for ?passing"},
		{"/v1/health/service/?ns=params", 400, "Missing service name"},
		{"/v1/catalog/service/?ns=params", 400, "Missing service name"},
		{"/v1/catalog/services?ns=Not_A_Namespace", 400, `Invalid namespace "` + x.prefix + `Not_A_Namespace": Sluice namespaces must be DNS-1123 labels (lowercase letters, digits, '-')`},
		{"/v1/agent/service/nope?ns=params", 404, "unknown service ID: nope"},
		{"/v1/no/such/thing", 404, ""},
	}
	for _, c := range cases {
		code, text, _ := x.do(t, "GET", c.path, "")
		if code != c.code || text != c.text {
			t.Errorf("GET %s: %d %q, want %d %q", c.path, code, text, c.code, c.text)
		}
	}
	// An index ahead of the store answers at once, with a lower index.
	start := time.Now()
	code, _, index := x.do(t, "GET", "/v1/health/service/p?ns=params&index=999999999&wait=1m", "")
	if code != 200 || index >= 999999999 || time.Since(start) > 5*time.Second {
		t.Errorf("query from an index ahead of the store: %d, index %d after %v", code, index, time.Since(start))
	}
	code, text, _ := x.do(t, "GET", "/v1/agent/service/p-1?ns=params&pretty", "")
	if code != 200 || !strings.Contains(text, "\n    \"ID\": \"p-1\"") {
		t.Errorf("agent service ?pretty: %d %s", code, text)
	}
	code, text, _ = x.do(t, "PUT", "/v1/agent/service/register", `{"Name":"p","Port":80,"Bogus":1}`)
	if code != 400 || text != `Request decode failed: json: unknown field "Bogus"` {
		t.Errorf("register with an unknown field: %d %q", code, text)
	}
}
