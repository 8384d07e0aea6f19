package gateway

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// testUpstream is a net/http server on 127.0.0.1:0 that counts the
// connections it accepts and the ones that closed.
type testUpstream struct {
	*httptest.Server
	addr           string
	opened, closed atomic.Int32
}

func startUpstream(t *testing.T, h http.Handler) *testUpstream {
	t.Helper()
	u := &testUpstream{Server: httptest.NewUnstartedServer(h)}
	u.Config.ConnState = func(_ net.Conn, state http.ConnState) {
		switch state {
		case http.StateNew:
			u.opened.Add(1)
		case http.StateClosed, http.StateHijacked:
			u.closed.Add(1)
		}
	}
	u.Start()
	u.addr = u.Listener.Addr().String()
	t.Cleanup(u.Close)
	return u
}

// rawUpstream is an upstream whose connections serve writes the exact
// bytes of its answers: serve runs for each accepted connection.
type rawUpstream struct {
	addr     string
	accepted atomic.Int32
}

func startRawUpstream(t *testing.T, serve func(n int, c net.Conn, br *bufio.Reader)) *rawUpstream {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	u := &rawUpstream{addr: ln.Addr().String()}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []net.Conn
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			n := int(u.accepted.Add(1))
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			wg.Go(func() {
				defer c.Close()
				c.SetDeadline(time.Now().Add(3 * waitFor))
				serve(n, c, bufio.NewReader(c))
			})
		}
	})
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return u
}

// serveOK answers every request on c with "ok" until the client closes.
func serveOK(_ int, c net.Conn, br *bufio.Reader) {
	for {
		req, err := http.ReadRequest(br)
		if err != nil {
			return
		}
		io.Copy(io.Discard, req.Body)
		io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
	}
}

func newTestTransport(t *testing.T) *h1Transport {
	tr := newH1Transport((&net.Dialer{Timeout: waitFor}).DialContext)
	t.Cleanup(tr.CloseIdleConnections)
	return tr
}

func newRequest(t *testing.T, ctx context.Context, method, addr string, body io.Reader) *http.Request {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, method, "http://"+addr+"/", body)
	if err != nil {
		t.Fatal(err)
	}
	return req
}

// roundTrip sends req and reads the whole answer.
func roundTrip(t *testing.T, tr *h1Transport, req *http.Request) (*http.Response, string, error) {
	t.Helper()
	resp, err := tr.roundTrip(req.Context(), req)
	if err != nil {
		return nil, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp, string(b), err
}

// mustGet sends a GET to addr and fails the test unless it gets 200.
func mustGet(t *testing.T, tr *h1Transport, addr string) string {
	t.Helper()
	resp, body, err := roundTrip(t, tr, newRequest(t, context.Background(), "GET", addr, nil))
	if err != nil {
		t.Fatalf("GET: %v", err)
	}
	if resp.StatusCode != 200 {
		t.Fatalf("GET: status %d, want 200", resp.StatusCode)
	}
	return body
}

// mustGetOnSecondConnection sends a GET to up and fails the test unless
// up then has opened two connections: the first one was not reused.
func mustGetOnSecondConnection(t *testing.T, tr *h1Transport, up *testUpstream) {
	t.Helper()
	mustGet(t, tr, up.addr)
	if n := up.opened.Load(); n != 2 {
		t.Errorf("%d connections, want 2 (the first one not reused)", n)
	}
}

// idleCount is how many connections the transport keeps for addr.
func idleCount(tr *h1Transport, addr string) int {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	return len(tr.idle[addr])
}

// waitUntil waits until cond holds, failing the test after waitFor.
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitFor)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("after %v: not %s", waitFor, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestClientReuse: sequential requests whose answers are read to the end
// share one connection; an answer closed before its end costs the
// connection.
func TestClientReuse(t *testing.T) {
	checkLeaks(t)
	up := startUpstream(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, strings.Repeat("x", 64<<10))
	}))
	tr := newTestTransport(t)
	for range 5 {
		mustGet(t, tr, up.addr)
	}
	if n := up.opened.Load(); n != 1 {
		t.Errorf("5 requests read to the end opened %d connections, want 1", n)
	}
	resp, err := tr.roundTrip(context.Background(), newRequest(t, context.Background(), "GET", up.addr, nil))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close() // before its end
	waitUntil(t, "the connection of an answer closed early closed", func() bool { return up.closed.Load() == 1 })
	mustGetOnSecondConnection(t, tr, up)
}

// closeAfterAnswer answers "ok" once, without Connection: close, then
// closes the connection: the client learns it only by using it again.
// The connections it closed are counted in closed.
func closeAfterAnswer(closed *atomic.Int32) func(int, net.Conn, *bufio.Reader) {
	return func(_ int, c net.Conn, br *bufio.Reader) {
		req, err := http.ReadRequest(br)
		if err != nil {
			return
		}
		io.Copy(io.Discard, req.Body)
		io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
		c.Close()
		closed.Add(1)
	}
}

// TestClientStaleIdle: a connection the upstream closed while it sat idle
// for longer than staleAfter is found by the alive check before use, so
// that even a request that cannot be sent twice goes out on a new one.
func TestClientStaleIdle(t *testing.T) {
	checkLeaks(t)
	var closed atomic.Int32
	up := startRawUpstream(t, closeAfterAnswer(&closed))
	tr := newTestTransport(t)
	mustGet(t, tr, up.addr)
	waitUntil(t, "the upstream closed its connection", func() bool { return closed.Load() == 1 })
	// Rather than wait staleAfter, the idle connection is made older.
	tr.mu.Lock()
	if n := len(tr.idle[up.addr]); n != 1 {
		t.Fatalf("%d idle connections, want 1", n)
	}
	tr.idle[up.addr][0].idleSince = time.Now().Add(-2 * staleAfter)
	tr.mu.Unlock()
	// A body without GetBody: a failure on a stale connection would be final.
	req := newRequest(t, context.Background(), "POST", up.addr, nil)
	req.Body, req.ContentLength = io.NopCloser(strings.NewReader("once")), 4
	if resp, body, err := roundTrip(t, tr, req); err != nil || resp.StatusCode != 200 || body != "ok" {
		t.Fatalf("POST after the idle connection closed: %v, %v %q; want 200 ok", err, resp, body)
	}
	if n := up.accepted.Load(); n != 2 {
		t.Errorf("%d connections, want 2", n)
	}
}

// TestClientStaleRetry: a connection the upstream closed right after its
// answer (without Connection: close) fails the next request before any
// answer; the request goes out again on a new connection when it can be
// sent again (its body can be had again, and its method is idempotent or
// it has an idempotency key), and fails otherwise, without being sent
// twice.
func TestClientStaleRetry(t *testing.T) {
	checkLeaks(t)
	for _, tc := range []struct {
		name   string
		method string
		body   io.Reader // a strings.Reader gets a GetBody
		key    bool      // an Idempotency-Key header
		replay bool
	}{
		{"GET", "GET", nil, false, true},
		{"HEAD", "HEAD", nil, false, true},
		{"POST without GetBody", "POST", onlyReader{strings.NewReader("body")}, false, false},
		{"POST with GetBody", "POST", strings.NewReader("body"), false, false},
		{"POST with GetBody and key", "POST", strings.NewReader("body"), true, true},
		{"PUT without GetBody and key", "PUT", onlyReader{strings.NewReader("body")}, true, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var closed atomic.Int32
			var mu sync.Mutex
			var got []string // the bodies the upstream received
			up := startRawUpstream(t, func(_ int, c net.Conn, br *bufio.Reader) {
				req, err := http.ReadRequest(br)
				if err != nil {
					return
				}
				b, _ := io.ReadAll(req.Body)
				mu.Lock()
				got = append(got, req.Method+" "+string(b))
				mu.Unlock()
				io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
				c.Close()
				closed.Add(1)
			})
			tr := newTestTransport(t)
			mustGet(t, tr, up.addr)
			waitUntil(t, "the upstream closed its connection", func() bool { return closed.Load() == 1 })
			// Idle for less than staleAfter, however slow the machine:
			// the connection is used without the alive check.
			tr.mu.Lock()
			tr.idle[up.addr][0].idleSince = time.Now()
			tr.mu.Unlock()
			req := newRequest(t, context.Background(), tc.method, up.addr, tc.body)
			if tc.body != nil {
				req.ContentLength = 4
			}
			if tc.key {
				req.Header.Set("Idempotency-Key", "k1")
			}
			resp, _, err := roundTrip(t, tr, req)
			if tc.replay {
				if err != nil || resp.StatusCode != 200 {
					t.Fatalf("%s on a stale connection: %v; want it sent again and 200", tc.method, err)
				}
				want := tc.method + " "
				if tc.body != nil {
					want += "body"
				}
				mu.Lock()
				defer mu.Unlock()
				if len(got) != 2 || got[1] != want {
					t.Errorf("upstream received %q, want the GET then %q", got, want)
				}
				return
			}
			if err == nil {
				t.Fatalf("%s on a stale connection: %d, want an error (it cannot be sent again)", tc.method, resp.StatusCode)
			}
			if n := up.accepted.Load(); n != 1 {
				t.Errorf("%d connections: the request was sent again", n)
			}
		})
	}
}

// TestClientChunkedBody: a body of unknown length goes out chunked, as
// it comes.
func TestClientChunkedBody(t *testing.T) {
	checkLeaks(t)
	parts := make(chan string)
	up := startUpstream(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if len(r.TransferEncoding) != 1 || r.TransferEncoding[0] != "chunked" {
			t.Errorf("Transfer-Encoding %v, want chunked", r.TransferEncoding)
		}
		buf := make([]byte, 64)
		var all []byte
		for {
			n, err := r.Body.Read(buf)
			if n > 0 {
				all = append(all, buf[:n]...)
				parts <- string(buf[:n])
			}
			if err != nil {
				break
			}
		}
		w.Write(all)
	}))
	tr := newTestTransport(t)
	pr, pw := io.Pipe()
	req := newRequest(t, context.Background(), "POST", up.addr, pr)
	req.ContentLength = -1
	type result struct {
		body string
		err  error
	}
	done := make(chan result, 1)
	go func() {
		_, body, err := roundTrip(t, tr, req)
		done <- result{body, err}
	}()
	for _, part := range []string{"hello, ", "world"} {
		pw.Write([]byte(part))
		select {
		case got := <-parts:
			if got != part {
				t.Fatalf("upstream read %q, want %q", got, part)
			}
		case <-time.After(waitFor):
			t.Fatalf("%q did not reach the upstream before the body ended", part)
		}
	}
	pw.Close()
	if r := <-done; r.err != nil || r.body != "hello, world" {
		t.Errorf("got %q, %v; want %q", r.body, r.err, "hello, world")
	}
}

// TestClientLargeEcho: a body larger than maxInlineBody, sent to an
// upstream that echoes it as it reads it, does not deadlock and comes
// back intact, with a Content-Length or chunked.
func TestClientLargeEcho(t *testing.T) {
	checkLeaks(t)
	up := startUpstream(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.NewResponseController(w).EnableFullDuplex()
		w.WriteHeader(200)
		io.Copy(w, r.Body)
	}))
	// More than the sockets' buffers hold both ways, or writing it all
	// before reading would not block.
	block := make([]byte, 1<<20)
	rand.Read(block)
	const blocks = 64
	payload := func() io.Reader {
		rs := make([]io.Reader, blocks)
		for i := range rs {
			rs[i] = bytes.NewReader(block)
		}
		return io.MultiReader(rs...)
	}
	h := sha256.New()
	io.Copy(h, payload())
	sum := h.Sum(nil)
	tr := newTestTransport(t)
	for name, length := range map[string]int64{"content-length": blocks * int64(len(block)), "chunked": -1} {
		t.Run(name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 3*waitFor)
			defer cancel()
			req := newRequest(t, ctx, "POST", up.addr, payload())
			req.ContentLength = length
			resp, err := tr.roundTrip(req.Context(), req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			h := sha256.New()
			if _, err := io.Copy(h, resp.Body); err != nil {
				t.Fatalf("reading the echo: %v", err)
			}
			if got := h.Sum(nil); !bytes.Equal(got, sum) {
				t.Errorf("echo's sha256 %s, want %s", hex.EncodeToString(got), hex.EncodeToString(sum))
			}
		})
	}
}

// zeros is an endless reader of zeros.
type zeros struct{}

func (zeros) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}

// TestClientEarlyAnswer: an upstream that answers (413) before reading a
// large body, and without Connection: close, gets its connection closed:
// it is not reused with the body half written, and the next request goes
// on a new one.
func TestClientEarlyAnswer(t *testing.T) {
	checkLeaks(t)
	stop := make(chan struct{})
	up := startRawUpstream(t, func(n int, c net.Conn, br *bufio.Reader) {
		if n > 1 {
			serveOK(n, c, br)
			return
		}
		if _, err := http.ReadRequest(br); err != nil {
			return
		}
		io.WriteString(c, "HTTP/1.1 413 Request Entity Too Large\r\nContent-Length: 0\r\n\r\n")
		<-stop // reads nothing more
	})
	defer close(stop)
	tr := newTestTransport(t)
	const size = 256 << 20 // far more than the sockets' buffers hold
	req := newRequest(t, context.Background(), "POST", up.addr, io.LimitReader(zeros{}, size))
	req.ContentLength = size
	resp, _, err := roundTrip(t, tr, req)
	if err != nil || resp.StatusCode != 413 {
		t.Fatalf("got %v, %v; want 413", resp, err)
	}
	if n := idleCount(tr, up.addr); n != 0 {
		t.Fatalf("%d idle connections after an early answer, want 0", n)
	}
	if body := mustGet(t, tr, up.addr); body != "ok" {
		t.Errorf("next request: %q", body)
	}
	if n := up.accepted.Load(); n != 2 {
		t.Errorf("%d connections, want 2", n)
	}
}

// TestClientInformational: 100 Continue and 103 Early Hints are skipped
// and the final answer returned; the connection carries the next request.
func TestClientInformational(t *testing.T) {
	checkLeaks(t)
	up := startRawUpstream(t, func(_ int, c net.Conn, br *bufio.Reader) {
		for {
			if _, err := http.ReadRequest(br); err != nil {
				return
			}
			io.WriteString(c, "HTTP/1.1 100 Continue\r\n\r\n"+
				"HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\n"+
				"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nfinal")
		}
	})
	tr := newTestTransport(t)
	for range 2 {
		if body := mustGet(t, tr, up.addr); body != "final" {
			t.Errorf("got %q, want %q", body, "final")
		}
	}
	if n := up.accepted.Load(); n != 1 {
		t.Errorf("%d connections, want 1", n)
	}
}

// TestClientUpgrade: a 101 answer's body is the connection, both ways,
// starting with the bytes that came with the answer's head.
func TestClientUpgrade(t *testing.T) {
	checkLeaks(t)
	up := startRawUpstream(t, func(_ int, c net.Conn, br *bufio.Reader) {
		if _, err := http.ReadRequest(br); err != nil {
			return
		}
		io.WriteString(c, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: echo\r\nConnection: Upgrade\r\n\r\nwelcome;")
		buf := make([]byte, 5)
		if _, err := io.ReadFull(br, buf); err != nil {
			return
		}
		c.Write(bytes.ToUpper(buf))
	})
	tr := newTestTransport(t)
	req := newRequest(t, context.Background(), "GET", up.addr, nil)
	req.Header.Set("Connection", "Upgrade")
	req.Header.Set("Upgrade", "echo")
	resp, err := tr.roundTrip(req.Context(), req)
	if err != nil || resp.StatusCode != 101 {
		t.Fatalf("got %v, %v; want 101", resp, err)
	}
	rw, ok := resp.Body.(io.ReadWriteCloser)
	if !ok {
		t.Fatalf("101 body %T, not an io.ReadWriteCloser", resp.Body)
	}
	defer rw.Close()
	if _, err := io.WriteString(rw, "hello"); err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(rw)
	if string(got) != "welcome;HELLO" {
		t.Errorf("read %q (%v), want %q", got, err, "welcome;HELLO")
	}
}

// TestClientCancel: a request whose context ends, while it waits for the
// answer or while it reads the body, ends promptly with the context's
// cause, and its connection is not used again.
func TestClientCancel(t *testing.T) {
	checkLeaks(t)
	for _, stage := range []string{"head", "body"} {
		t.Run(stage, func(t *testing.T) {
			reached := make(chan struct{}, 1)
			up := startUpstream(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.URL.Query().Get("wait") == "" {
					io.WriteString(w, "ok")
					return
				}
				if stage == "body" {
					io.WriteString(w, "part")
					w.(http.Flusher).Flush()
				}
				reached <- struct{}{}
				<-r.Context().Done()
			}))
			tr := newTestTransport(t)
			mustGet(t, tr, up.addr) // a connection to reuse, or not
			cause := errors.New("the caller gave up")
			ctx, cancel := context.WithCancelCause(context.Background())
			defer cancel(nil)
			req, _ := http.NewRequestWithContext(ctx, "GET", "http://"+up.addr+"/?wait=1", nil)
			errc := make(chan error, 1)
			go func() {
				resp, err := tr.roundTrip(req.Context(), req)
				if err == nil {
					_, err = io.ReadAll(resp.Body)
					resp.Body.Close()
				}
				errc <- err
			}()
			<-reached
			cancel(cause)
			select {
			case err := <-errc:
				if !errors.Is(err, cause) {
					t.Errorf("got %v, want the cause %q", err, cause)
				}
			case <-time.After(waitFor):
				t.Fatalf("still waiting %v after the cancellation", waitFor)
			}
			if n := idleCount(tr, up.addr); n != 0 {
				t.Errorf("%d idle connections after the cancellation, want 0", n)
			}
			mustGetOnSecondConnection(t, tr, up)
		})
	}
}

// TestClientConnectionClose: an answer with Connection: close closes its
// connection once its body is read.
func TestClientConnectionClose(t *testing.T) {
	checkLeaks(t)
	up := startUpstream(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Connection", "close")
		io.WriteString(w, "bye")
	}))
	tr := newTestTransport(t)
	mustGet(t, tr, up.addr)
	if n := idleCount(tr, up.addr); n != 0 {
		t.Errorf("%d idle connections, want 0", n)
	}
	waitUntil(t, "the connection closed", func() bool { return up.closed.Load() == 1 })
	mustGetOnSecondConnection(t, tr, up)
}

// TestClientIdleTimeout: the sweep closes connections idle beyond
// idleTimeout, and stops once none is left.
func TestClientIdleTimeout(t *testing.T) {
	checkLeaks(t)
	up := startUpstream(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") }))
	tr := newTestTransport(t)
	tr.idleTimeout = 100 * time.Millisecond
	mustGet(t, tr, up.addr)
	waitUntil(t, "the idle connection closed", func() bool { return up.closed.Load() == 1 })
	waitUntil(t, "the sweep stopped", func() bool {
		tr.mu.Lock()
		defer tr.mu.Unlock()
		return tr.sweep == nil && len(tr.idle) == 0
	})
	mustGetOnSecondConnection(t, tr, up)
}

// TestClientCloseIdle: CloseIdleConnections closes the idle connections
// at once.
func TestClientCloseIdle(t *testing.T) {
	checkLeaks(t)
	up := startUpstream(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") }))
	tr := newTestTransport(t)
	mustGet(t, tr, up.addr)
	tr.CloseIdleConnections()
	waitUntil(t, "the idle connection closed", func() bool { return up.closed.Load() == 1 })
	if n := idleCount(tr, up.addr); n != 0 {
		t.Errorf("%d idle connections, want 0", n)
	}
	mustGetOnSecondConnection(t, tr, up)
}

// TestClientExcessBytes: bytes an upstream sent beyond the end of its
// answer (past its Content-Length, or a body on an answer that has none)
// are not taken for the answer to the next request on that connection,
// which may be another client's: the connection is not kept, as
// http.Transport closes one with an unsolicited answer.
func TestClientExcessBytes(t *testing.T) {
	checkLeaks(t)
	const smuggled = "HTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\nsmuggled"
	for _, tc := range []struct {
		name, method, answer string
	}{
		{"past Content-Length", "GET", "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok" + smuggled},
		{"body on HEAD", "HEAD", "HTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\n" + smuggled},
		{"body on 204", "GET", "HTTP/1.1 204 No Content\r\n\r\n" + smuggled},
	} {
		t.Run(tc.name, func(t *testing.T) {
			up := startRawUpstream(t, func(n int, c net.Conn, br *bufio.Reader) {
				if n > 1 {
					serveOK(n, c, br)
					return
				}
				if _, err := http.ReadRequest(br); err != nil {
					return
				}
				// One write: the excess comes with the answer.
				io.WriteString(c, tc.answer)
				// The connection stays open, as a keep-alive one does.
				for {
					if _, err := http.ReadRequest(br); err != nil {
						return
					}
				}
			})
			tr := newTestTransport(t)
			if _, _, err := roundTrip(t, tr, newRequest(t, context.Background(), tc.method, up.addr, nil)); err != nil {
				t.Fatalf("first request: %v", err)
			}
			if body := mustGet(t, tr, up.addr); body != "ok" {
				t.Errorf("next request got %q, want %q from a new connection", body, "ok")
			}
		})
	}
}

// TestClientHeaderLimit: an answer's head (its 1xx answers included) is
// read up to maxResponseHeaderBytes, as http.Transport's
// MaxResponseHeaderBytes; beyond, the request fails instead of the
// gateway holding whatever the upstream sends.
func TestClientHeaderLimit(t *testing.T) {
	checkLeaks(t)
	for _, tc := range []struct {
		name string
		head func(w io.Writer)
	}{
		{"one long header", func(w io.Writer) {
			io.WriteString(w, "HTTP/1.1 200 OK\r\nX-Long: ")
			w.Write(bytes.Repeat([]byte("x"), maxResponseHeaderBytes+1))
			io.WriteString(w, "\r\nContent-Length: 0\r\n\r\n")
		}},
		{"endless 1xx", func(w io.Writer) {
			hint := "HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\n"
			w.Write(bytes.Repeat([]byte(hint), maxResponseHeaderBytes/len(hint)+1))
			io.WriteString(w, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			up := startRawUpstream(t, func(_ int, c net.Conn, br *bufio.Reader) {
				if _, err := http.ReadRequest(br); err != nil {
					return
				}
				bw := bufio.NewWriter(c)
				tc.head(bw)
				bw.Flush()
			})
			tr := newTestTransport(t)
			resp, _, err := roundTrip(t, tr, newRequest(t, context.Background(), "GET", up.addr, nil))
			if err == nil {
				t.Errorf("got %d, want an error", resp.StatusCode)
			}
		})
	}
}

// TestClientBodyShortOfLength: an answer whose connection closes before
// its Content-Length is in fails with io.ErrUnexpectedEOF, whether its
// head came in the first read (readHead) or in pieces (net/http's), and
// the connection is not kept.
func TestClientBodyShortOfLength(t *testing.T) {
	checkLeaks(t)
	for _, split := range []bool{false, true} {
		up := startRawUpstream(t, func(_ int, c net.Conn, br *bufio.Reader) {
			if _, err := http.ReadRequest(br); err != nil {
				return
			}
			if split {
				io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-")
				time.Sleep(50 * time.Millisecond)
				io.WriteString(c, "Length: 10\r\n\r\nshort")
			} else {
				io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort")
			}
		})
		tr := newTestTransport(t)
		_, body, err := roundTrip(t, tr, newRequest(t, context.Background(), "GET", up.addr, nil))
		if !errors.Is(err, io.ErrUnexpectedEOF) || body != "short" {
			t.Errorf("split head %v: body %q, error %v; want \"short\" and %v", split, body, err, io.ErrUnexpectedEOF)
		}
		if n := idleCount(tr, up.addr); n != 0 {
			t.Errorf("split head %v: %d connections kept after a short body", split, n)
		}
	}
}

// TestClientLengthBodyInPieces: a body of a known length that comes in
// several reads is read whole, and the connection is then reused.
func TestClientLengthBodyInPieces(t *testing.T) {
	checkLeaks(t)
	up := startRawUpstream(t, func(_ int, c net.Conn, br *bufio.Reader) {
		for {
			if _, err := http.ReadRequest(br); err != nil {
				return
			}
			io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 11\r\n\r\nhello")
			time.Sleep(20 * time.Millisecond)
			io.WriteString(c, " world")
		}
	})
	tr := newTestTransport(t)
	for range 3 {
		if body := mustGet(t, tr, up.addr); body != "hello world" {
			t.Fatalf("body %q, want \"hello world\"", body)
		}
	}
	if n := up.accepted.Load(); n != 1 {
		t.Errorf("3 requests opened %d connections, want 1", n)
	}
}
