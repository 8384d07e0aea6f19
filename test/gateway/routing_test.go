package gatewaye2e

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"
)

// routingRules is one HTTPRoute holding a rule per behaviour; each rule tags
// the requests it matches (x-rule) so the upstream's echo tells which did.
func routingRules() []map[string]any {
	prefix := func(p string) map[string]any {
		return map[string]any{"path": map[string]any{"type": "PathPrefix", "value": p}}
	}
	rule := func(id string, matches []any, filters ...any) map[string]any {
		return map[string]any{
			"matches":     matches,
			"filters":     append([]any{tag(id)}, filters...),
			"backendRefs": []any{backend("echo-a", 1)},
		}
	}
	return []map[string]any{
		rule("exact", []any{map[string]any{"path": map[string]any{"type": "Exact", "value": "/match/exact"}}}),
		rule("regex", []any{map[string]any{"path": map[string]any{"type": "RegularExpression", "value": "/match/re/[0-9]+"}}}),
		rule("prefix", []any{prefix("/match")}),
		rule("hdr-exact", []any{map[string]any{"path": map[string]any{"type": "PathPrefix", "value": "/hdr"},
			"headers": []any{map[string]any{"name": "x-env", "value": "canary"}}}}),
		rule("hdr-regex", []any{map[string]any{"path": map[string]any{"type": "PathPrefix", "value": "/hdr"},
			"headers": []any{map[string]any{"type": "RegularExpression", "name": "x-env", "value": "prod-[0-9]+"}}}}),
		rule("hdr-none", []any{prefix("/hdr")}),
		rule("query", []any{map[string]any{"path": map[string]any{"type": "PathPrefix", "value": "/q"},
			"queryParams": []any{map[string]any{"name": "v", "value": "2"}}}}),
		rule("query-none", []any{prefix("/q")}),
		rule("method-post", []any{map[string]any{"path": map[string]any{"type": "PathPrefix", "value": "/m"}, "method": "POST"}}),
		rule("method-any", []any{prefix("/m")}),
		{
			"matches": []any{prefix("/reqhdr")},
			"filters": []any{map[string]any{"type": "RequestHeaderModifier", "requestHeaderModifier": map[string]any{
				"set":    []any{map[string]any{"name": "x-set", "value": "s"}, map[string]any{"name": "x-rule", "value": "reqhdr"}},
				"add":    []any{map[string]any{"name": "x-add", "value": "a"}},
				"remove": []any{"x-remove"},
			}}},
			"backendRefs": []any{backend("echo-a", 1)},
		},
		rule("resphdr", []any{prefix("/resphdr")}, map[string]any{"type": "ResponseHeaderModifier", "responseHeaderModifier": map[string]any{
			"set":    []any{map[string]any{"name": "x-resp", "value": "r"}},
			"add":    []any{map[string]any{"name": "x-resp-add", "value": "a"}},
			"remove": []any{"x-upstream"},
		}}),
		{
			"matches": []any{prefix("/redirect")},
			"filters": []any{map[string]any{"type": "RequestRedirect", "requestRedirect": map[string]any{
				"scheme": "https", "hostname": "new.example.com", "statusCode": 301,
			}}},
		},
		{
			"matches": []any{prefix("/moved")},
			"filters": []any{map[string]any{"type": "RequestRedirect", "requestRedirect": map[string]any{
				"path": map[string]any{"type": "ReplacePrefixMatch", "replacePrefixMatch": "/new"}, "statusCode": 302,
			}}},
		},
		rule("rewrite-prefix", []any{prefix("/old")}, map[string]any{"type": "URLRewrite", "urlRewrite": map[string]any{
			"path": map[string]any{"type": "ReplacePrefixMatch", "replacePrefixMatch": "/new"},
		}}),
		rule("rewrite-full", []any{prefix("/full")}, map[string]any{"type": "URLRewrite", "urlRewrite": map[string]any{
			"path": map[string]any{"type": "ReplaceFullPath", "replaceFullPath": "/static/index.html"},
		}}),
		rule("rewrite-host", []any{prefix("/hostrw")}, map[string]any{"type": "URLRewrite", "urlRewrite": map[string]any{
			"hostname": "internal.example.com",
		}}),
		rule("mirror", []any{prefix("/mirror")}, map[string]any{"type": "RequestMirror", "requestMirror": map[string]any{
			"backendRef": map[string]any{"name": "echo-mirror", "port": servicePort},
		}}),
		{
			"matches":     []any{prefix("/slow")},
			"filters":     []any{tag("slow")},
			"timeouts":    map[string]any{"request": "300ms"},
			"backendRefs": []any{backend("echo-a", 1)},
		},
		{
			"matches":     []any{prefix("/pertry")},
			"filters":     []any{tag("pertry")},
			"timeouts":    map[string]any{"request": "5s", "backendRequest": "200ms"},
			"retry":       map[string]any{"attempts": 1},
			"backendRefs": []any{backend("echo-a", 1)},
		},
		{
			"matches":     []any{prefix("/retry")},
			"filters":     []any{tag("retry")},
			"retry":       map[string]any{"codes": []any{503}, "attempts": 2, "backoff": "10ms"},
			"backendRefs": []any{backend("echo-a", 1)},
		},
		{
			"matches":     []any{prefix("/split")},
			"backendRefs": []any{backend("echo-a", 80), backend("echo-b", 20)},
		},
	}
}

// TestRouting: a table of HTTPRoute behaviours through the gateway:
// matches and their precedence, every filter, timeouts, retries, 404.
func TestRouting(t *testing.T) {
	e := startEnv(t)
	rules := routingRules()
	for i := 0; i < len(rules); i += 8 {
		name := fmt.Sprintf("routing-%d", i/8)
		e.apply(httpRoutes, name, httpRoute(name, nil, rules[i:min(i+8, len(rules))]...))
	}
	e.apply(httpRoutes, "hosts", httpRoute("hosts", []string{"exact.example.com", "*.wild.example.com"},
		map[string]any{"matches": []any{map[string]any{"path": map[string]any{"type": "PathPrefix", "value": "/"}}},
			"filters": []any{tag("hosts")}, "backendRefs": []any{backend("echo-b", 1)}}))
	e.waitRoute("/split", "")
	e.waitFor("the hosts route served", 10*time.Second, func() (bool, string) {
		r, err := e.do("GET", "/", "exact.example.com", nil, "")
		return err == nil && r.status == 200, fmt.Sprint(r.status, err)
	})

	type check func(t *testing.T, r response)
	rule := func(want string) check {
		return func(t *testing.T, r response) {
			t.Helper()
			if r.echo == nil {
				t.Fatalf("status %d %q, want an upstream's echo", r.status, r.body)
			}
			if got := strings.Join(r.echo.Headers["X-Rule"], ","); got != want {
				t.Errorf("matched rule %q, want %q", got, want)
			}
		}
	}
	status := func(want int) check {
		return func(t *testing.T, r response) {
			t.Helper()
			if r.status != want {
				t.Errorf("status %d, want %d (body %q)", r.status, want, r.body)
			}
		}
	}
	upstreamPath := func(want string) check {
		return func(t *testing.T, r response) {
			t.Helper()
			if r.echo == nil || r.echo.Path != want {
				t.Errorf("upstream got path %v, want %q", r.echo, want)
			}
		}
	}
	header := func(name, want string) check {
		return func(t *testing.T, r response) {
			t.Helper()
			if got := r.header.Get(name); got != want {
				t.Errorf("response header %s = %q, want %q", name, got, want)
			}
		}
	}
	upstreamHeader := func(name, want string) check {
		return func(t *testing.T, r response) {
			t.Helper()
			if r.echo == nil {
				t.Fatalf("status %d, no echo", r.status)
			}
			if got := strings.Join(r.echo.Headers[name], ","); got != want {
				t.Errorf("upstream header %s = %q, want %q", name, got, want)
			}
		}
	}
	upstream := func(want string) check {
		return func(t *testing.T, r response) {
			t.Helper()
			if r.echo == nil || r.echo.Upstream != want {
				t.Errorf("answered by %v, want %s", r.echo, want)
			}
		}
	}
	table := []struct {
		name, method, path, host string
		header                   map[string]string
		checks                   []check
	}{
		{name: "path exact beats regex and prefix", path: "/match/exact", checks: []check{rule("exact")}},
		{name: "path regex beats prefix", path: "/match/re/42", checks: []check{rule("regex")}},
		{name: "path regex is a full match", path: "/match/re/42x", checks: []check{rule("prefix")}},
		{name: "path prefix", path: "/match/other", checks: []check{rule("prefix")}},
		{name: "path prefix matches whole segments", path: "/matchbox", checks: []check{status(404)}},
		{name: "header exact", path: "/hdr", header: map[string]string{"x-env": "canary"}, checks: []check{rule("hdr-exact")}},
		{name: "header regex", path: "/hdr", header: map[string]string{"x-env": "prod-7"}, checks: []check{rule("hdr-regex")}},
		{name: "header mismatch falls through", path: "/hdr", header: map[string]string{"x-env": "prod-x"}, checks: []check{rule("hdr-none")}},
		{name: "query param", path: "/q?v=2", checks: []check{rule("query")}},
		{name: "query param mismatch", path: "/q?v=3", checks: []check{rule("query-none")}},
		{name: "method match", method: "POST", path: "/m", checks: []check{rule("method-post")}},
		{name: "method mismatch", method: "GET", path: "/m", checks: []check{rule("method-any")}},
		{name: "request header modifier", path: "/reqhdr", header: map[string]string{"x-set": "old", "x-add": "first", "x-remove": "gone"},
			checks: []check{upstreamHeader("X-Set", "s"), upstreamHeader("X-Add", "first,a"), upstreamHeader("X-Remove", "")}},
		{name: "response header modifier", path: "/resphdr",
			checks: []check{header("x-resp", "r"), header("x-resp-add", "a"), header("x-upstream", "")}},
		{name: "redirect scheme and host", path: "/redirect/x?y=1",
			checks: []check{status(301), header("Location", "https://new.example.com/redirect/x?y=1")}},
		{name: "redirect path prefix", path: "/moved/page",
			checks: []check{status(302), header("Location", fmt.Sprintf("http://127.0.0.1:%d/new/page", e.port))}},
		{name: "rewrite prefix", path: "/old/page", checks: []check{upstreamPath("/new/page")}},
		{name: "rewrite full path", path: "/full/any/thing", checks: []check{upstreamPath("/static/index.html")}},
		{name: "rewrite hostname", path: "/hostrw", checks: []check{func(t *testing.T, r response) {
			if r.echo == nil || r.echo.Host != "internal.example.com" {
				t.Errorf("upstream got Host %v, want internal.example.com", r.echo)
			}
		}}},
		{name: "request timeout", path: "/slow?sleep=2s", checks: []check{status(504)}},
		{name: "within timeout", path: "/slow?sleep=10ms", checks: []check{status(200), rule("slow")}},
		{name: "retry on 503", path: "/retry?fail=k1", checks: []check{status(200), rule("retry")}},
		{name: "per-try timeout", path: "/pertry?sleep=3s", checks: []check{status(504)}},
		{name: "within the per-try timeout", path: "/pertry?sleep=10ms", checks: []check{status(200), rule("pertry")}},
		{name: "no retry without a policy", path: "/match/x?fail=k2", checks: []check{status(503)}},
		{name: "no route", path: "/nothing", checks: []check{status(404)}},
		{name: "exact hostname", path: "/match/exact", host: "exact.example.com", checks: []check{rule("hosts"), upstream("echo-b")}},
		{name: "wildcard hostname", path: "/x", host: "a.wild.example.com", checks: []check{rule("hosts")}},
		{name: "wildcard needs a label", path: "/x", host: "wild.example.com", checks: []check{status(404)}},
		{name: "other hostname", path: "/match/exact", host: "other.example.com", checks: []check{rule("exact")}},
		{name: "forwarded headers", path: "/match/x", checks: []check{upstreamHeader("X-Forwarded-For", "127.0.0.1"), upstreamHeader("X-Forwarded-Proto", "http")}},
	}
	// The table runs over HTTP/1.1 (the gateway's own connection loop) and
	// over h2c (net/http's HTTP/2 server): one behaviour whatever the
	// protocol.
	h2c := &http.Client{Timeout: e.http.Timeout, CheckRedirect: e.http.CheckRedirect, Transport: &http.Transport{Protocols: new(http.Protocols)}}
	h2c.Transport.(*http.Transport).Protocols.SetUnencryptedHTTP2(true)
	t.Cleanup(h2c.CloseIdleConnections)
	for _, p := range []struct {
		name, proto string
		client      *http.Client
	}{{"h1", "HTTP/1.1", e.http}, {"h2c", "HTTP/2.0", h2c}} {
		t.Run(p.name, func(t *testing.T) {
			h1 := e.http
			e.http = p.client
			defer func() { e.http = h1 }()
			for _, tc := range table {
				t.Run(tc.name, func(t *testing.T) {
					method := tc.method
					if method == "" {
						method = "GET"
					}
					// The upstream fails a key once: each protocol has its own.
					path := strings.ReplaceAll(tc.path, "fail=k", "fail="+p.name+"-k")
					r, err := e.do(method, path, tc.host, tc.header, "")
					if err != nil {
						t.Fatal(err)
					}
					if r.proto != p.proto {
						t.Errorf("answered over %s, want %s", r.proto, p.proto)
					}
					for _, c := range tc.checks {
						c(t, r)
					}
				})
			}
		})
	}

	t.Run("mirror reaches the mirror upstream", func(t *testing.T) {
		r, err := e.do("POST", "/mirror/m1", "", nil, "payload")
		if err != nil {
			t.Fatal(err)
		}
		rule("mirror")(t, r)
		upstream("echo-a")(t, r)
		e.waitFor("the mirror upstream got /mirror/m1", 5*time.Second, func() (bool, string) {
			got := e.upstream["echo-mirror"].requests("/mirror/m1")
			if len(got) != 1 {
				return false, fmt.Sprintf("%d requests", len(got))
			}
			m := got[0]
			ok := m.Body == "payload" && m.Method == "POST" && strings.HasSuffix(m.Host, "-shadow") && strings.Join(m.Headers["X-Rule"], "") == "mirror"
			return ok, fmt.Sprintf("%+v", m)
		})
	})

	t.Run("weights 80/20", func(t *testing.T) {
		const n = 1000
		counts := map[string]int{}
		for range n {
			r, err := e.do("GET", "/split", "", nil, "")
			if err != nil {
				t.Fatal(err)
			}
			if r.echo == nil {
				t.Fatalf("status %d %q", r.status, r.body)
			}
			counts[r.echo.Upstream]++
		}
		share := float64(counts["echo-a"]) / n
		t.Logf("80/20 over %d requests: echo-a %d, echo-b %d", n, counts["echo-a"], counts["echo-b"])
		if share < 0.75 || share > 0.85 {
			t.Errorf("echo-a got %.1f%% of %d requests, want 80%% ± 5%%", 100*share, n)
		}
	})

	t.Run("stats", func(t *testing.T) {
		stats := e.adminGet("/stats")
		for _, want := range []string{`sluice_gateway_requests_total{cluster="echo-a.default"`, `code_class="5xx"`, "sluice_gateway_request_duration_seconds_bucket", `sluice_gateway_xds_updates_total{result="ack",type="LDS"}`} {
			if !strings.Contains(stats, want) {
				t.Errorf("/stats has no %s", want)
			}
		}
		dump := e.adminGet("/config_dump")
		for _, want := range []string{`"LDS"`, `"default/edge:` + fmt.Sprint(e.port), `"echo-a.default"`, `"complete": true`} {
			if !strings.Contains(dump, want) {
				t.Errorf("/config_dump has no %s", want)
			}
		}
		resp, err := http.Get("http://" + e.gw.AdminAddr() + "/ready")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Errorf("/ready: %d", resp.StatusCode)
		}
	})
}
