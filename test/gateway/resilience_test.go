package gatewaye2e

import (
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sluice/sluice/internal/xds"
)

// load sends GETs of a path through the gateway from several workers until
// stopped, and counts the answers that are not 200.
type load struct {
	stop chan struct{}
	wg   sync.WaitGroup

	mu     sync.Mutex // guards ok, failed, errs
	ok     int
	failed int
	errs   []string
}

func (e *env) startLoad(path string, workers int) *load {
	l := &load{stop: make(chan struct{})}
	for range workers {
		l.wg.Go(func() {
			for {
				select {
				case <-l.stop:
					return
				default:
				}
				r, err := e.do("GET", path, "", nil, "")
				l.mu.Lock()
				switch {
				case err != nil:
					l.failed++
					l.errs = append(l.errs, err.Error())
				case r.status != http.StatusOK:
					l.failed++
					l.errs = append(l.errs, fmt.Sprintf("status %d: %s", r.status, strings.TrimSpace(r.body)))
				default:
					l.ok++
				}
				l.mu.Unlock()
			}
		})
	}
	return l
}

func (l *load) count() (ok, failed int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.ok, l.failed
}

// finish stops the load and fails the test if a request failed.
func (l *load) finish(t *testing.T, what string) int {
	t.Helper()
	close(l.stop)
	l.wg.Wait()
	t.Logf("%s: %d requests, %d failed", what, l.ok+l.failed, l.failed)
	if l.failed > 0 {
		t.Errorf("%s: %d of %d requests failed; first: %s", what, l.failed, l.ok+l.failed, strings.Join(l.errs[:min(5, len(l.errs))], "; "))
	}
	return l.ok
}

// waitRequests waits until the load has sent n more requests than at mark.
func (e *env) waitRequests(l *load, n int) {
	e.t.Helper()
	start, _ := l.count()
	e.waitFor(fmt.Sprintf("%d requests", n), 20*time.Second, func() (bool, string) {
		ok, failed := l.count()
		return ok+failed-start >= n, fmt.Sprintf("%d", ok+failed-start)
	})
}

// TestConfigChangeUnderLoad: route changes, a new listener and its removal
// apply while requests flow, with no failed request, and a request in
// flight across the changes completes.
func TestConfigChangeUnderLoad(t *testing.T) {
	e := startEnv(t)
	split := func(a, b int) {
		e.apply(httpRoutes, "split", httpRoute("split", nil, map[string]any{
			"matches":     []any{map[string]any{"path": map[string]any{"type": "PathPrefix", "value": "/split"}}},
			"backendRefs": []any{backend("echo-a", a), backend("echo-b", b)},
		}))
	}
	split(100, 0)
	e.waitRoute("/split", "")
	l := e.startLoad("/split", 8)

	slow := make(chan response, 1)
	go func() {
		r, err := e.do("GET", "/split?sleep=1500ms", "", nil, "")
		if err != nil {
			r = response{status: -1, body: err.Error()}
		}
		slow <- r
	}()

	split(0, 100)
	e.waitFor("echo-b answering /split", 10*time.Second, func() (bool, string) {
		r, err := e.do("GET", "/split", "", nil, "")
		return err == nil && r.echo != nil && r.echo.Upstream == "echo-b", fmt.Sprint(r.status, err)
	})
	split(50, 50)
	e.waitRequests(l, 200)

	// A second listener, then back to one.
	second := freePort(t)
	e.apply(gateways, gatewayName, gatewayObj(e.port, second))
	e.waitFor("the second listener serving", 10*time.Second, func() (bool, string) {
		resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/split", second))
		if err != nil {
			return false, err.Error()
		}
		resp.Body.Close()
		return resp.StatusCode == 200, resp.Status
	})
	e.waitRequests(l, 200)
	e.apply(gateways, gatewayName, gatewayObj(e.port))
	e.waitFor("the second listener closed", 10*time.Second, func() (bool, string) {
		c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", second))
		if err != nil {
			return true, ""
		}
		c.Close()
		return false, "still accepting"
	})
	e.waitRequests(l, 200)
	l.finish(t, "route and listener changes under load")

	r := <-slow
	if r.status != 200 {
		t.Errorf("the request in flight across the changes: status %d %s", r.status, r.body)
	}
}

// TestNACK: a Gateway listener on a port the gateway cannot bind is
// rejected (NACKed, with the reason, visible in the server's proxies
// list), and the config in force keeps serving; fixed, the next config
// is accepted.
func TestNACK(t *testing.T) {
	e := startEnv(t)
	e.waitFor("base route", 10*time.Second, func() (bool, string) {
		r, err := e.do("GET", "/base", "base.example.com", nil, "")
		return err == nil && r.status == 200, fmt.Sprint(r.status, err)
	})
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	port := taken.Addr().(*net.TCPAddr).Port
	before := e.gw.Config().Versions
	e.apply(gateways, gatewayName, gatewayObj(e.port, port))

	var nack *xds.NACK
	e.waitFor("the gateway NACKing LDS", 10*time.Second, func() (bool, string) {
		p, err := e.proxy()
		if err != nil {
			return false, err.Error()
		}
		if lds := p.Types["LDS"]; lds != nil && lds.LastNACK != nil {
			nack = lds.LastNACK
			return true, ""
		}
		return false, fmt.Sprintf("%+v", p.Types["LDS"])
	})
	t.Logf("NACK: %s", nack.Error)
	if want := fmt.Sprintf("port %d", port); !strings.Contains(nack.Error, want) || !strings.Contains(nack.Error, "address already in use") {
		t.Errorf("NACK error %q, want it to name %s and say the address is in use", nack.Error, want)
	}
	if got := e.gw.Config().Versions; got[gatewayLDS()] != before[gatewayLDS()] {
		t.Errorf("LDS version in force changed from %s to %s after a NACK", before[gatewayLDS()], got[gatewayLDS()])
	}
	for range 20 {
		r, err := e.do("GET", "/base", "base.example.com", nil, "")
		if err != nil || r.status != 200 {
			t.Fatalf("the config in force stopped serving after the NACK: %v %d %s", err, r.status, r.body)
		}
	}

	// Fixed: the listener is dropped from the Gateway, the next LDS is
	// accepted.
	e.apply(gateways, gatewayName, gatewayObj(e.port, freePort(t)))
	e.waitFor("LDS synced again", 10*time.Second, func() (bool, string) {
		p, err := e.proxy()
		if err != nil {
			return false, err.Error()
		}
		lds := p.Types["LDS"]
		return lds != nil && lds.State == "SYNCED", fmt.Sprintf("%+v", lds)
	})
	if n := len(e.gw.ListenerAddrs()); n != 2 {
		t.Errorf("%d listeners bound after the fix, want 2", n)
	}
}

func gatewayLDS() string { return "type.googleapis.com/envoy.config.listener.v3.Listener" }

// TestServerDown: with sluice server stopped, the gateway keeps serving its
// last config with no failed request; when the server returns, the gateway
// reconnects and takes the changes made since, again with no failed
// request (a restarted server sends nothing before its first translation).
func TestServerDown(t *testing.T) {
	e := startEnv(t)
	route := func(tagged string) map[string]any {
		return httpRoute("down", nil, map[string]any{
			"matches":     []any{map[string]any{"path": map[string]any{"type": "PathPrefix", "value": "/down"}}},
			"filters":     []any{tag(tagged)},
			"backendRefs": []any{backend("echo-a", 1)},
		})
	}
	e.apply(httpRoutes, "down", route("before"))
	e.waitRoute("/down", "before")
	l := e.startLoad("/down", 8)
	e.waitRequests(l, 100)

	if err := e.srv.Stop(); err != nil {
		t.Fatalf("stopping the server: %v", err)
	}
	stopped := time.Now()
	e.waitRequests(l, 1000)
	time.Sleep(time.Second) // the gateway retries its stream meanwhile
	e.waitRequests(l, 200)
	t.Logf("%v of traffic with the server down", time.Since(stopped).Round(time.Millisecond))
	l.finish(t, "server stopped under load")

	across := e.startLoad("/down", 2)
	e.srv.Restart(t)
	e.apply(httpRoutes, "down", route("after"))
	restarted := time.Now()
	e.waitRoute("/down", "after")
	t.Logf("the change made after the restart served %v after the write", time.Since(restarted).Round(time.Millisecond))
	across.finish(t, "across the restart")

	after := e.startLoad("/down", 8)
	e.waitRequests(after, 500)
	after.finish(t, "after the resync")
}
