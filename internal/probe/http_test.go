package probe

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"unicode/utf8"
)

// httpServer starts a server on 127.0.0.1:0 that t.Cleanup stops and returns
// its address ("127.0.0.1:port").
func httpServer(t *testing.T, h http.Handler) string {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv.Listener.Addr().String()
}

// okStatuses is the registry's default: 2xx and 3xx pass.
var okStatuses = []StatusRange{{Start: 200, End: 399}}

func httpCheck(path string) Check {
	return Check{HTTP: &HTTP{Path: path, ExpectedStatuses: okStatuses}, Timeout: testTimeout}
}

func TestHTTPStatusFlips(t *testing.T) {
	var code atomic.Int32
	addr := httpServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(int(code.Load()))
		w.Write([]byte("db: ok"))
	}))
	hc := httpCheck("/healthz")
	steps := []struct {
		code   int32
		want   State
		output string
	}{
		{200, Passing, "HTTP GET http://" + addr + "/healthz: 200 OK Output: db: ok"},
		{503, Critical, "HTTP GET http://" + addr + "/healthz: 503 Service Unavailable Output: db: ok"},
		{429, Warning, "HTTP GET http://" + addr + "/healthz: 429 Too Many Requests Output: db: ok"},
		{200, Passing, "HTTP GET http://" + addr + "/healthz: 200 OK Output: db: ok"},
	}
	for _, s := range steps {
		code.Store(s.code)
		res := run(t, addr, hc, s.want)
		if res.Output != s.output {
			t.Errorf("after %d: output = %q, want %q", s.code, res.Output, s.output)
		}
	}
}

func TestHTTPExpectedStatuses(t *testing.T) {
	tests := []struct {
		name     string
		expected []StatusRange
		code     int
		want     State
	}{
		{"200-399 passes 200", nil, 200, Passing},
		{"200-399 passes 204", nil, 204, Passing},
		{"200-399 passes 399", nil, 399, Passing},
		{"200-399 fails 400", nil, 400, Critical},
		{"200-399 fails 500", nil, 500, Critical},
		{"200-399 warns on 429", nil, 429, Warning},
		{"only 204 passes 204", []StatusRange{{Start: 204, End: 204}}, 204, Passing},
		{"only 204 fails 200", []StatusRange{{Start: 204, End: 204}}, 200, Critical},
		{"only 204 warns on 429", []StatusRange{{Start: 204, End: 204}}, 429, Warning},
		{"several ranges", []StatusRange{{Start: 200, End: 200}, {Start: 418, End: 418}}, 418, Passing},
		{"429 expected passes", []StatusRange{{Start: 200, End: 499}}, 429, Passing},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			addr := httpServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.WriteHeader(tt.code)
			}))
			hc := httpCheck("/")
			if tt.expected != nil {
				hc.HTTP.ExpectedStatuses = tt.expected
			}
			run(t, addr, hc, tt.want)
		})
	}
}

func TestHTTPRequest(t *testing.T) {
	type seen struct {
		method, uri, host, userAgent, token string
		close                               bool
	}
	var (
		mu   sync.Mutex
		last seen // guarded by mu
	)
	addr := httpServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		last = seen{r.Method, r.RequestURI, r.Host, r.UserAgent(), r.Header.Get("X-Check-Token"), r.Close}
		mu.Unlock()
	}))
	tests := []struct {
		name      string
		path      string
		headers   map[string]string
		userAgent string
		want      seen
	}{
		{
			name: "defaults",
			path: "/",
			want: seen{"GET", "/", addr, UserAgent, "", true},
		},
		{
			name:      "the check's User-Agent",
			path:      "/",
			userAgent: "gateway-check",
			want:      seen{"GET", "/", addr, "gateway-check", "", true},
		},
		{
			name:    "headers and Host",
			path:    "/status?verbose=1",
			headers: map[string]string{"host": "api.example", "X-Check-Token": "t0k"},
			want:    seen{"GET", "/status?verbose=1", "api.example", UserAgent, "t0k", true},
		},
		{
			name:      "own User-Agent",
			path:      "/healthz",
			headers:   map[string]string{"User-Agent": "probe/2"},
			userAgent: "gateway-check",
			want:      seen{"GET", "/healthz", addr, "probe/2", "", true},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			hc := httpCheck(tt.path)
			hc.HTTP.Headers = tt.headers
			hc.UserAgent = tt.userAgent
			run(t, addr, hc, Passing)
			mu.Lock()
			got := last
			mu.Unlock()
			// close: the request said "Connection: close", keep-alives are off.
			if got != tt.want {
				t.Errorf("server saw %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestHTTPRedirectNotFollowed(t *testing.T) {
	var followed atomic.Int32
	mux := http.NewServeMux()
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/elsewhere", http.StatusFound)
	})
	mux.HandleFunc("/elsewhere", func(w http.ResponseWriter, r *http.Request) {
		followed.Add(1)
		w.WriteHeader(http.StatusInternalServerError)
	})
	addr := httpServer(t, mux)

	res := run(t, addr, httpCheck("/healthz"), Passing)
	if !strings.Contains(res.Output, ": 302 Found Output: ") {
		t.Errorf("output = %q, want the redirect's own status", res.Output)
	}
	only200 := httpCheck("/healthz")
	only200.HTTP.ExpectedStatuses = []StatusRange{{Start: 200, End: 200}}
	run(t, addr, only200, Critical)
	if n := followed.Load(); n != 0 {
		t.Errorf("the redirect was followed %d times, want 0", n)
	}
}

func TestHTTPHugeBody(t *testing.T) {
	// 1 MiB of two-byte runes after one byte, so that a cut at a byte count
	// falls inside a rune.
	body := "x" + strings.Repeat("é", 1<<19)
	addr := httpServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte(body))
	}))
	res := run(t, addr, httpCheck("/"), Passing)
	prefix := "HTTP GET http://" + addr + "/: 200 OK Output: xéé"
	if !strings.HasPrefix(res.Output, prefix) || !strings.HasSuffix(res.Output, "é"+cutNote) {
		t.Errorf("output = %.80q...%q, want %q...%q", res.Output, res.Output[len(res.Output)-60:], prefix, "é"+cutNote)
	}
	if len(res.Output) < MaxOutput-utf8.UTFMax {
		t.Errorf("output is %d bytes, want the excerpt to fill about %d", len(res.Output), MaxOutput)
	}
}

func TestHTTPHangs(t *testing.T) {
	t.Run("no answer", func(t *testing.T) {
		runTimed(t, hangingListener(t), httpCheck("/"), Critical)
	})
	t.Run("handler never returns", func(t *testing.T) {
		addr := httpServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			<-r.Context().Done()
		}))
		runTimed(t, addr, httpCheck("/"), Critical)
	})
	t.Run("body stalls after the status", func(t *testing.T) {
		addr := httpServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Length", "100")
			w.WriteHeader(http.StatusOK)
			w.Write([]byte("partial"))
			w.(http.Flusher).Flush()
			<-r.Context().Done()
		}))
		res := runTimed(t, addr, httpCheck("/"), Critical)
		if want := "200 OK: reading the body: timed out after"; !strings.Contains(res.Output, want) {
			t.Errorf("output = %q, want it to contain %q", res.Output, want)
		}
	})
}

func TestHTTPRefused(t *testing.T) {
	addr := closedAddr(t)
	res := run(t, addr, httpCheck("/healthz"), Critical)
	if want := "HTTP GET http://" + addr + "/healthz: dial tcp " + addr + ": connect: connection refused"; res.Output != want {
		t.Errorf("output = %q, want %q", res.Output, want)
	}
}
