package gateway

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/sluice/sluice/internal/certtest"
)

// waitFor is how long a test waits for something that should happen at
// once: generous, for a busy machine.
const waitFor = 5 * time.Second

// checkLeaks fails the test when it leaves goroutines behind. Call it
// first: its cleanup then runs last, after the servers and clients stop.
func checkLeaks(t *testing.T) {
	t.Helper()
	opt := goleak.IgnoreCurrent()
	t.Cleanup(func() { goleak.VerifyNone(t, opt) })
}

// lockedBuffer is a log sink the server's goroutines may write to.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// testServer is a portServer on 127.0.0.1:0.
type testServer struct {
	s    *portServer
	addr string
	logs *lockedBuffer
	done chan struct{} // closed when serve returns
	err  error         // serve's result, once done
}

// startServer serves h on a new port (TLS when tlsConfig is set) until
// the test ends.
func startServer(t *testing.T, h http.Handler, tlsConfig *tls.Config, configure ...func(*portServer)) *testServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	logs := &lockedBuffer{}
	ts := &testServer{
		s:    newPortServer(h, tlsConfig, slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))),
		addr: ln.Addr().String(),
		logs: logs,
		done: make(chan struct{}),
	}
	for _, f := range configure {
		f(ts.s)
	}
	go func() {
		defer close(ts.done)
		ts.err = ts.s.serve(ln)
	}()
	t.Cleanup(func() {
		ts.s.close()
		select {
		case <-ts.done:
		case <-time.After(waitFor):
			t.Error("serve did not return after close")
		}
		ts.s.wg.Wait()
	})
	return ts
}

// dialRaw opens a connection to addr for a test that writes and reads
// the exact bytes; reads and writes fail after a while instead of hanging.
func dialRaw(t *testing.T, addr string) (net.Conn, *bufio.Reader) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	c.SetDeadline(time.Now().Add(3 * waitFor))
	t.Cleanup(func() { c.Close() })
	return c, bufio.NewReader(c)
}

func write(t *testing.T, c net.Conn, s string) {
	t.Helper()
	if _, err := io.WriteString(c, s); err != nil {
		t.Fatalf("write: %v", err)
	}
}

// readResponse reads one answer to a request of method, body included.
func readResponse(t *testing.T, br *bufio.Reader, method string) (*http.Response, string) {
	t.Helper()
	resp, err := http.ReadResponse(br, &http.Request{Method: method})
	if err != nil {
		t.Fatalf("reading the answer to %s: %v", method, err)
	}
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("reading the body of the answer to %s: %v", method, err)
	}
	return resp, string(body)
}

// expectClosed checks that the server closed the connection: a read ends
// with EOF (or a reset), not with data nor a timeout.
func expectClosed(t *testing.T, c net.Conn, br *bufio.Reader) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(waitFor))
	b, err := br.ReadByte()
	if err == nil {
		rest, _ := br.Peek(br.Buffered())
		t.Fatalf("connection open, read %q", string(b)+string(rest))
	}
	if isTimeout(err) {
		t.Fatalf("connection still open after %v", waitFor)
	}
}

// newClient is a net/http client of HTTP/1.1 only, closed at the end.
func newClient(t *testing.T) *http.Client {
	tr := &http.Transport{Protocols: new(http.Protocols), DisableCompression: true}
	tr.Protocols.SetHTTP1(true)
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 3 * waitFor}
}

func httpGet(t *testing.T, c *http.Client, url string) (*http.Response, string) {
	t.Helper()
	resp, err := c.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: body: %v", url, err)
	}
	return resp, string(body)
}

// echoRemote answers with the client's address.
var echoRemote = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, r.RemoteAddr) })

// TestServerKeepAlive: sequential requests of a client share one connection.
func TestServerKeepAlive(t *testing.T) {
	checkLeaks(t)
	ts := startServer(t, echoRemote, nil)
	c := newClient(t)
	remotes := map[string]bool{}
	for range 5 {
		resp, body := httpGet(t, c, "http://"+ts.addr+"/")
		if resp.StatusCode != 200 || resp.Close {
			t.Fatalf("status %d, close %v; want 200 kept open", resp.StatusCode, resp.Close)
		}
		remotes[body] = true
	}
	if len(remotes) != 1 {
		t.Errorf("5 requests came on %d connections, want 1: %v", len(remotes), remotes)
	}
}

// TestServerPipelining: two requests written at once are both answered,
// in order.
func TestServerPipelining(t *testing.T) {
	checkLeaks(t)
	ts := startServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, r.URL.Path)
	}), nil)
	c, br := dialRaw(t, ts.addr)
	write(t, c, "GET /first HTTP/1.1\r\nHost: x\r\n\r\nGET /second HTTP/1.1\r\nHost: x\r\n\r\n")
	for _, want := range []string{"/first", "/second"} {
		if _, body := readResponse(t, br, "GET"); body != want {
			t.Fatalf("answer %q, want %q", body, want)
		}
	}
}

// TestServerPipelinedNotHeldBack: an answer goes out when it is done, not
// when the pipelined request behind it is (a long poll).
func TestServerPipelinedNotHeldBack(t *testing.T) {
	checkLeaks(t)
	release := make(chan struct{})
	ts := startServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			<-release
		}
		io.WriteString(w, r.URL.Path)
	}), nil)
	c, br := dialRaw(t, ts.addr)
	write(t, c, "GET /fast HTTP/1.1\r\nHost: x\r\n\r\nGET /slow HTTP/1.1\r\nHost: x\r\n\r\n")
	got := make(chan string, 1)
	go func() {
		_, body := readResponse(t, br, "GET")
		got <- body
	}()
	select {
	case body := <-got:
		if body != "/fast" {
			t.Errorf("first answer %q, want /fast", body)
		}
		close(release)
	case <-time.After(5 * time.Second):
		t.Error("the first answer waited for the pipelined request behind it")
		close(release)
		<-got
	}
	if _, body := readResponse(t, br, "GET"); body != "/slow" {
		t.Errorf("second answer %q, want /slow", body)
	}
}

// TestServerFirstBytes: a connection's first request is told from the
// HTTP/2 preface ("PRI * HTTP/2.0...") however it starts and however its
// bytes come: a method starting with P, a request shorter than the
// preface, one byte at a time.
func TestServerFirstBytes(t *testing.T) {
	checkLeaks(t)
	ts := startServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, r.Method)
	}), nil)
	for _, tc := range []struct {
		name, req string
		bytewise  bool
	}{
		{"POST", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nhi", false},
		{"PUT short", "PUT / HTTP/1.0\r\n\r\n", false},
		{"PRI", "PRI / HTTP/1.1\r\nHost: x\r\n\r\n", false},
		{"POST bytewise", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, br := dialRaw(t, ts.addr)
			if tc.bytewise {
				for i := range len(tc.req) {
					write(t, c, tc.req[i:i+1])
				}
			} else {
				write(t, c, tc.req)
			}
			method, _, _ := strings.Cut(tc.req, " ")
			if resp, body := readResponse(t, br, method); resp.StatusCode != 200 || body != method {
				t.Errorf("got %d %q, want 200 %q", resp.StatusCode, body, method)
			}
		})
	}
}

// TestServerNoBody: HEAD, 204 and 304 answers carry no body (the next
// pipelined answer parses right after the head); HEAD keeps the
// Content-Length the handler set, and a body written to a 204 is refused.
func TestServerNoBody(t *testing.T) {
	checkLeaks(t)
	writeErr := make(chan error, 1)
	ts := startServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/204":
			w.WriteHeader(204)
			_, err := io.WriteString(w, "no")
			writeErr <- err
		case "/304":
			w.WriteHeader(304)
		case "/next":
			io.WriteString(w, "next")
		default:
			w.Header().Set("Content-Length", "5")
			io.WriteString(w, "hello")
		}
	}), nil)
	for _, tc := range []struct {
		method, path string
		status       int
		cl           string // the Content-Length header expected
	}{
		{"HEAD", "/", 200, "5"},
		{"GET", "/204", 204, ""},
		{"GET", "/304", 304, ""},
	} {
		t.Run(tc.method+tc.path, func(t *testing.T) {
			c, br := dialRaw(t, ts.addr)
			write(t, c, tc.method+" "+tc.path+" HTTP/1.1\r\nHost: x\r\n\r\nGET /next HTTP/1.1\r\nHost: x\r\n\r\n")
			resp, body := readResponse(t, br, tc.method)
			if resp.StatusCode != tc.status || body != "" {
				t.Fatalf("got %d %q, want %d and no body", resp.StatusCode, body, tc.status)
			}
			if got := resp.Header.Get("Content-Length"); got != tc.cl {
				t.Errorf("Content-Length %q, want %q", got, tc.cl)
			}
			if resp.TransferEncoding != nil {
				t.Errorf("Transfer-Encoding %v, want none", resp.TransferEncoding)
			}
			if _, body := readResponse(t, br, "GET"); body != "next" {
				t.Errorf("next answer %q, want %q", body, "next")
			}
		})
	}
	if err := <-writeErr; !errors.Is(err, http.ErrBodyNotAllowed) {
		t.Errorf("writing a 204's body: %v, want %v", err, http.ErrBodyNotAllowed)
	}
}

// TestServerFraming: a small answer gets a Content-Length; a large or
// flushed one is chunked for HTTP/1.1 and ends with the close for HTTP/1.0.
func TestServerFraming(t *testing.T) {
	checkLeaks(t)
	large := strings.Repeat("x", 3*bufferedBody)
	ts := startServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/small":
			io.WriteString(w, "small")
		case "/large":
			io.WriteString(w, large)
		case "/flushed":
			io.WriteString(w, "part1,")
			w.(http.Flusher).Flush()
			io.WriteString(w, "part2")
		}
	}), nil)
	for _, tc := range []struct {
		proto, path string
		body        string
		chunked     bool // else a Content-Length, or the close for HTTP/1.0
		close       bool
	}{
		{"HTTP/1.1", "/small", "small", false, false},
		{"HTTP/1.1", "/large", large, true, false},
		{"HTTP/1.1", "/flushed", "part1,part2", true, false},
		{"HTTP/1.0", "/small", "small", false, false},
		{"HTTP/1.0", "/large", large, false, true},
		{"HTTP/1.0", "/flushed", "part1,part2", false, true},
	} {
		t.Run(tc.proto+tc.path, func(t *testing.T) {
			c, br := dialRaw(t, ts.addr)
			keepAlive := ""
			if tc.proto == "HTTP/1.0" {
				keepAlive = "Connection: keep-alive\r\n"
			}
			write(t, c, "GET "+tc.path+" "+tc.proto+"\r\nHost: x\r\n"+keepAlive+"\r\n")
			resp, body := readResponse(t, br, "GET")
			if body != tc.body {
				t.Fatalf("body of %d bytes, want %d", len(body), len(tc.body))
			}
			chunked := len(resp.TransferEncoding) == 1 && resp.TransferEncoding[0] == "chunked"
			if chunked != tc.chunked {
				t.Errorf("chunked %v, want %v", chunked, tc.chunked)
			}
			if wantCL := !tc.chunked && !tc.close; wantCL != (resp.Header.Get("Content-Length") == strconv.Itoa(len(tc.body))) {
				t.Errorf("Content-Length %q, want it set: %v", resp.Header.Get("Content-Length"), wantCL)
			}
			if resp.Close != tc.close {
				t.Errorf("Connection: close %v, want %v", resp.Close, tc.close)
			}
			if tc.close {
				expectClosed(t, c, br)
			}
		})
	}
}

// TestServerHTTP10KeepAlive: an HTTP/1.0 client asking for keep-alive
// keeps its connection (and is told so); one that does not is closed.
func TestServerHTTP10KeepAlive(t *testing.T) {
	checkLeaks(t)
	ts := startServer(t, echoRemote, nil)
	c, br := dialRaw(t, ts.addr)
	var first string
	for i := range 3 {
		write(t, c, "GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
		resp, body := readResponse(t, br, "GET")
		if got := resp.Header.Get("Connection"); got != "keep-alive" {
			t.Fatalf("request %d: Connection %q, want keep-alive", i, got)
		}
		if i == 0 {
			first = body
		} else if body != first {
			t.Fatalf("request %d came from %s, want %s (same connection)", i, body, first)
		}
	}
	write(t, c, "GET / HTTP/1.0\r\n\r\n")
	if resp, _ := readResponse(t, br, "GET"); !resp.Close {
		t.Errorf("HTTP/1.0 without keep-alive: Connection %q, want close", resp.Header.Get("Connection"))
	}
	expectClosed(t, c, br)
}

// TestServerConnectionClose: Connection: close from the client or from
// the handler ends the connection after the answer, which says so.
func TestServerConnectionClose(t *testing.T) {
	checkLeaks(t)
	ts := startServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/handler-closes" {
			w.Header().Set("Connection", "close")
		}
		io.WriteString(w, "ok")
	}), nil)
	for name, req := range map[string]string{
		"client":  "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
		"handler": "GET /handler-closes HTTP/1.1\r\nHost: x\r\n\r\n",
	} {
		t.Run(name, func(t *testing.T) {
			c, br := dialRaw(t, ts.addr)
			write(t, c, req)
			if resp, body := readResponse(t, br, "GET"); !resp.Close || body != "ok" {
				t.Fatalf("got close=%v body %q, want close and %q", resp.Close, body, "ok")
			}
			expectClosed(t, c, br)
		})
	}
}

// sha256Handler answers with the hex sha256 of the request body.
var sha256Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
	h := sha256.New()
	if _, err := io.Copy(h, r.Body); err != nil {
		http.Error(w, err.Error(), 500)
		return
	}
	io.WriteString(w, hex.EncodeToString(h.Sum(nil)))
})

// onlyReader hides the type of a reader, so that net/http's client does
// not know the length and sends it chunked.
type onlyReader struct{ io.Reader }

// TestServerRequestBody: a 5 MiB body sent with a Content-Length and
// chunked reaches the handler intact.
func TestServerRequestBody(t *testing.T) {
	checkLeaks(t)
	ts := startServer(t, sha256Handler, nil)
	payload := make([]byte, 5<<20)
	rand.Read(payload)
	sum := sha256.Sum256(payload)
	want := hex.EncodeToString(sum[:])
	c := newClient(t)
	for name, body := range map[string]io.Reader{
		"content-length": bytes.NewReader(payload),
		"chunked":        onlyReader{bytes.NewReader(payload)},
	} {
		t.Run(name, func(t *testing.T) {
			resp, err := c.Post("http://"+ts.addr+"/", "application/octet-stream", body)
			if err != nil {
				t.Fatal(err)
			}
			got, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 || string(got) != want {
				t.Errorf("got %d %s, want 200 %s", resp.StatusCode, got, want)
			}
		})
	}
}

// TestServerUnreadBody: a short body the handler left is read away and the
// connection kept; a long one closes the connection, and the answer says so.
func TestServerUnreadBody(t *testing.T) {
	checkLeaks(t)
	ts := startServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "ignored")
	}), nil)
	for _, tc := range []struct {
		name string
		size int
		keep bool
	}{
		{"short", 1 << 10, true},
		{"long", 4 * maxPostHandlerDrain, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, br := dialRaw(t, ts.addr)
			// The body goes out while the answer is read, as a client does.
			go func() {
				io.WriteString(c, "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: "+strconv.Itoa(tc.size)+"\r\n\r\n")
				c.Write(make([]byte, tc.size))
			}()
			resp, body := readResponse(t, br, "POST")
			if body != "ignored" {
				t.Fatalf("body %q, want %q", body, "ignored")
			}
			if resp.Close == tc.keep {
				t.Errorf("Connection: close %v, want %v", resp.Close, !tc.keep)
			}
			if !tc.keep {
				expectClosed(t, c, br)
				return
			}
			write(t, c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
			if _, body := readResponse(t, br, "GET"); body != "ignored" {
				t.Errorf("next request on the connection: %q", body)
			}
		})
	}
}

// TestServerLateBodyRead: a goroutine the handler left reading the body
// (an upstream client's body writer after an early answer) gets
// http.ErrBodyReadAfterClose once the handler returned, as with net/http's
// server, instead of reading along with the connection's goroutine; the
// rest of the body is read away and the next request served.
func TestServerLateBodyRead(t *testing.T) {
	checkLeaks(t)
	next := make(chan struct{})
	lateErr := make(chan error, 1)
	ts := startServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == "GET" {
			close(next)
			io.WriteString(w, "next")
			return
		}
		buf := make([]byte, 1)
		r.Body.Read(buf)
		go func() {
			<-next // the POST is over
			_, err := r.Body.Read(buf)
			lateErr <- err
		}()
		io.WriteString(w, "early")
	}), nil)
	c, br := dialRaw(t, ts.addr)
	const size = 64 << 10
	go func() {
		io.WriteString(c, "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: "+strconv.Itoa(size)+"\r\n\r\n")
		c.Write(make([]byte, size))
		io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
	}()
	if _, body := readResponse(t, br, "POST"); body != "early" {
		t.Fatalf("got %q, want %q", body, "early")
	}
	if _, body := readResponse(t, br, "GET"); body != "next" {
		t.Errorf("next request: %q, want %q", body, "next")
	}
	if err := <-lateErr; !errors.Is(err, http.ErrBodyReadAfterClose) {
		t.Errorf("read after the handler returned: %v, want %v", err, http.ErrBodyReadAfterClose)
	}
}

// TestServerExpectContinue: the 100 Continue goes out only when the
// handler reads the body; a handler that does not read it answers without
// one, and the connection then closes (the client has not sent the body).
func TestServerExpectContinue(t *testing.T) {
	checkLeaks(t)
	read := make(chan struct{})
	ts := startServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/noread" {
			io.WriteString(w, "not read")
			return
		}
		<-read
		b, _ := io.ReadAll(r.Body)
		w.Write(b)
	}), nil)

	t.Run("read", func(t *testing.T) {
		c, br := dialRaw(t, ts.addr)
		write(t, c, "POST / HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n")
		c.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
		if b, err := br.ReadByte(); err == nil || !isTimeout(err) {
			t.Fatalf("before the handler read: got %q, %v; want nothing yet", b, err)
		}
		c.SetReadDeadline(time.Now().Add(waitFor))
		close(read)
		resp, err := http.ReadResponse(br, nil)
		if err != nil || resp.StatusCode != 100 {
			t.Fatalf("got %v, %v; want 100 Continue", resp, err)
		}
		write(t, c, "hello")
		if resp, body := readResponse(t, br, "POST"); resp.StatusCode != 200 || body != "hello" {
			t.Errorf("got %d %q, want 200 %q", resp.StatusCode, body, "hello")
		}
	})

	t.Run("noread", func(t *testing.T) {
		c, br := dialRaw(t, ts.addr)
		write(t, c, "POST /noread HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n")
		resp, body := readResponse(t, br, "POST")
		if resp.StatusCode != 200 || body != "not read" {
			t.Fatalf("got %d %q, want 200 %q (and no 100 Continue)", resp.StatusCode, body, "not read")
		}
		if !resp.Close {
			t.Errorf("no Connection: close, but the connection cannot carry another request")
		}
		expectClosed(t, c, br)
	})
}

// TestServerBadRequests: what cannot be parsed is answered with an error
// and the connection closed.
func TestServerBadRequests(t *testing.T) {
	checkLeaks(t)
	ts := startServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		t.Errorf("handler called for %s %s", r.Method, r.URL)
	}), nil)
	ts.s.maxHeaderBytes = 4 << 10
	for _, tc := range []struct {
		name, req string
		status    int
	}{
		{"request line", "GARBAGE\r\n\r\n", 400},
		{"no Host", "GET / HTTP/1.1\r\n\r\n", 400},
		{"two Hosts", "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400},
		{"bad Host", "GET / HTTP/1.1\r\nHost: a b\r\n\r\n", 400},
		{"header name", "GET / HTTP/1.1\r\nHost: x\r\nBad Name: v\r\n\r\n", 400},
		{"header value", "GET / HTTP/1.1\r\nHost: x\r\nX-A: a\x01b\r\n\r\n", 400},
		{"transfer-encoding", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n", 501},
		{"expect", "POST / HTTP/1.1\r\nHost: x\r\nExpect: something\r\nContent-Length: 1\r\n\r\nx", 417},
		{"headers too large", "GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + strings.Repeat("b", 16<<10) + "\r\n\r\n", 431},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, br := dialRaw(t, ts.addr)
			// Written aside: the server may answer and close before
			// reading all of it.
			go io.WriteString(c, tc.req)
			resp, _ := readResponse(t, br, "GET")
			if resp.StatusCode != tc.status || !resp.Close {
				t.Fatalf("got %d close=%v, want %d and close", resp.StatusCode, resp.Close, tc.status)
			}
			expectClosed(t, c, br)
		})
	}
}

// TestServerClientGone: the request's context ends soon after the client
// closes its connection while the handler waits.
func TestServerClientGone(t *testing.T) {
	checkLeaks(t)
	started := make(chan struct{}, 1)
	ended := make(chan error, 1)
	ts := startServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		started <- struct{}{}
		select {
		case <-r.Context().Done():
			ended <- r.Context().Err()
		case <-time.After(3 * waitFor):
			ended <- errors.New("context not cancelled")
		}
	}), nil)
	for name, req := range map[string]string{
		"GET":       "GET / HTTP/1.1\r\nHost: x\r\n\r\n",
		"POST read": "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\r\nbody",
	} {
		t.Run(name, func(t *testing.T) {
			c, _ := dialRaw(t, ts.addr)
			write(t, c, req)
			<-started
			c.Close()
			select {
			case err := <-ended:
				if !errors.Is(err, context.Canceled) {
					t.Errorf("handler: %v, want %v", err, context.Canceled)
				}
			case <-time.After(waitFor):
				t.Fatalf("context still open %v after the client left", waitFor)
			}
		})
	}
}

// TestServerPanic: a handler's panic closes its connection without an
// answer and is logged, except http.ErrAbortHandler; the server goes on.
func TestServerPanic(t *testing.T) {
	checkLeaks(t)
	ts := startServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/panic":
			panic("boom")
		case "/abort":
			panic(http.ErrAbortHandler)
		}
		io.WriteString(w, "ok")
	}), nil)
	for _, tc := range []struct {
		path   string
		logged bool
	}{
		{"/abort", false},
		{"/panic", true},
	} {
		t.Run(tc.path, func(t *testing.T) {
			c, br := dialRaw(t, ts.addr)
			write(t, c, "GET "+tc.path+" HTTP/1.1\r\nHost: x\r\n\r\n")
			expectClosed(t, c, br)
			if logged := strings.Contains(ts.logs.String(), "boom"); logged != tc.logged {
				t.Errorf("panic logged %v, want %v: %s", logged, tc.logged, ts.logs)
			}
		})
	}
	if _, body := httpGet(t, newClient(t), "http://"+ts.addr+"/"); body != "ok" {
		t.Errorf("after the panics: %q, want ok", body)
	}
}

// TestServerHijack: a hijacker gets the connection with the bytes the
// client sent after its request (buffered with it, or read by the
// disconnect watch while the handler ran), and writes raw bytes back.
func TestServerHijack(t *testing.T) {
	checkLeaks(t)
	for _, tc := range []struct {
		name string
		// watched: the client sends its first bytes once the handler
		// runs, and the handler waits until the disconnect watch read
		// one of them; else they come with the request.
		watched bool
		read    func(conn net.Conn, rw *bufio.ReadWriter, n int) (string, error)
	}{
		{"buffered, read from the bufio.Reader", false, readFromReader},
		{"buffered, read from the connection", false, readBufferedThenConn},
		{"watched, read from the bufio.Reader", true, readFromReader},
		{"watched, read from the connection", true, readBufferedThenConn},
	} {
		t.Run(tc.name, func(t *testing.T) {
			started, hijacked := make(chan struct{}), make(chan struct{})
			ts := startServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				close(started)
				if tc.watched {
					waitWatchedByte(t, w.(*h1Response).sc.cr)
				}
				conn, rw, err := w.(http.Hijacker).Hijack()
				if err != nil {
					t.Errorf("hijack: %v", err)
					return
				}
				close(hijacked)
				defer conn.Close()
				conn.SetDeadline(time.Now().Add(waitFor))
				got, err := tc.read(conn, rw, len("early+late"))
				if err != nil {
					t.Errorf("hijacker's read: %v", err)
				}
				rw.WriteString("HTTP/1.1 101 Switching Protocols\r\nUpgrade: raw\r\nConnection: Upgrade\r\n\r\ngot " + got)
				rw.Flush()
			}), nil)
			c, br := dialRaw(t, ts.addr)
			req := "GET / HTTP/1.1\r\nHost: x\r\nUpgrade: raw\r\nConnection: Upgrade\r\n\r\n"
			if tc.watched {
				write(t, c, req)
				<-started
				write(t, c, "early+")
			} else {
				write(t, c, req+"early+")
			}
			<-hijacked
			write(t, c, "late")
			resp, err := http.ReadResponse(br, nil)
			if err != nil || resp.StatusCode != 101 {
				t.Fatalf("got %v, %v; want 101", resp, err)
			}
			got, _ := io.ReadAll(br)
			if string(got) != "got early+late" {
				t.Errorf("hijacker answered %q, want %q", got, "got early+late")
			}
		})
	}
}

// readFromReader reads n bytes from the hijacked bufio.Reader alone.
func readFromReader(_ net.Conn, rw *bufio.ReadWriter, n int) (string, error) {
	b := make([]byte, n)
	_, err := io.ReadFull(rw, b)
	return string(b), err
}

// readBufferedThenConn takes what the bufio.Reader holds, then reads the
// connection (ReverseProxy's way).
func readBufferedThenConn(conn net.Conn, rw *bufio.ReadWriter, n int) (string, error) {
	b, _ := rw.Peek(rw.Reader.Buffered())
	got := string(b)
	rest := make([]byte, n-len(got))
	_, err := io.ReadFull(conn, rest)
	return got + string(rest), err
}

// waitWatchedByte waits until the disconnect watch of a request has read
// a byte the client sent.
func waitWatchedByte(t *testing.T, cr *connReader) {
	deadline := time.Now().Add(waitFor)
	for time.Now().Before(deadline) {
		cr.mu.Lock()
		has := cr.hasByte
		cr.mu.Unlock()
		if has {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Errorf("the watch read no byte within %v", waitFor)
}

// TestServerTrailers: trailers declared with the Trailer header and set
// with http.TrailerPrefix reach a net/http client, small answer or large.
func TestServerTrailers(t *testing.T) {
	checkLeaks(t)
	ts := startServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("declared") != "" {
			w.Header().Set("Trailer", "X-Declared")
		}
		body := "body"
		if r.URL.Query().Get("large") != "" {
			body = strings.Repeat("b", 2*bufferedBody)
		}
		io.WriteString(w, body)
		w.Header().Set("X-Declared", "d")
		w.Header().Set(http.TrailerPrefix+"X-Prefixed", "p")
	}), nil)
	c := newClient(t)
	for _, query := range []string{"declared=1", "declared=1&large=1", "", "large=1"} {
		t.Run(query, func(t *testing.T) {
			resp, _ := httpGet(t, c, "http://"+ts.addr+"/?"+query)
			want := http.Header{"X-Prefixed": {"p"}}
			if strings.Contains(query, "declared") {
				want.Set("X-Declared", "d")
			}
			if fmt.Sprint(resp.Trailer) != fmt.Sprint(want) {
				t.Errorf("trailers %v, want %v", resp.Trailer, want)
			}
		})
	}
}

// TestServerH2C: a client speaking HTTP/2 in cleartext from the first byte
// is served by the same handler, over HTTP/2.
func TestServerH2C(t *testing.T) {
	checkLeaks(t)
	ts := startServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "%s %d", r.URL.Path, r.ProtoMajor)
	}), nil)
	tr := &http.Transport{Protocols: new(http.Protocols)}
	tr.Protocols.SetUnencryptedHTTP2(true)
	t.Cleanup(tr.CloseIdleConnections)
	for range 2 {
		resp, body := httpGet(t, &http.Client{Transport: tr}, "http://"+ts.addr+"/h2c")
		if resp.ProtoMajor != 2 || body != "/h2c 2" {
			t.Errorf("got %s %q, want HTTP/2 and %q", resp.Proto, body, "/h2c 2")
		}
	}
	// The same port still serves HTTP/1.1.
	if _, body := httpGet(t, newClient(t), "http://"+ts.addr+"/h1"); body != "/h1 1" {
		t.Errorf("HTTP/1.1 on the same port: %q", body)
	}
}

// selfSigned is a certificate for "localhost" (internal/certtest's) and a
// pool that trusts it.
func selfSigned(t *testing.T) (tls.Certificate, *x509.CertPool) {
	t.Helper()
	crt, key := certtest.KeyPair(t, "localhost")
	cert, err := tls.X509KeyPair(crt, key)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(crt)
	return cert, pool
}

// TestServerTLS: over TLS, ALPN h2 goes to HTTP/2 and http/1.1 to the
// gateway's loop; both see r.TLS.
func TestServerTLS(t *testing.T) {
	checkLeaks(t)
	cert, pool := selfSigned(t)
	ts := startServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.TLS == nil {
			fmt.Fprintf(w, "%d no TLS", r.ProtoMajor)
			return
		}
		fmt.Fprintf(w, "%d %s", r.ProtoMajor, r.TLS.NegotiatedProtocol)
	}), &tls.Config{Certificates: []tls.Certificate{cert}, NextProtos: []string{"h2", "http/1.1"}})
	for _, tc := range []struct {
		name string
		alpn []string
		want string
	}{
		{"h2", []string{"h2"}, "2 h2"},
		{"http/1.1", []string{"http/1.1"}, "1 http/1.1"},
		{"no ALPN", nil, "1 "},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h2 := len(tc.alpn) > 0 && tc.alpn[0] == "h2"
			tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, ServerName: "localhost", NextProtos: tc.alpn}, Protocols: new(http.Protocols)}
			tr.Protocols.SetHTTP1(!h2)
			tr.Protocols.SetHTTP2(h2)
			t.Cleanup(tr.CloseIdleConnections)
			if _, body := httpGet(t, &http.Client{Transport: tr}, "https://"+ts.addr+"/"); body != tc.want {
				t.Errorf("got %q, want %q", body, tc.want)
			}
		})
	}
}

// TestServerShutdown: shutdown closes idle connections at once, refuses
// new ones, and lets a request in flight finish with Connection: close.
func TestServerShutdown(t *testing.T) {
	checkLeaks(t)
	started, release := make(chan struct{}), make(chan struct{})
	ts := startServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			close(started)
			<-release
		}
		io.WriteString(w, "done")
	}), nil)
	idle, idleBr := dialRaw(t, ts.addr)
	write(t, idle, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
	readResponse(t, idleBr, "GET")
	busy, busyBr := dialRaw(t, ts.addr)
	write(t, busy, "GET /slow HTTP/1.1\r\nHost: x\r\n\r\n")
	<-started

	shutdownErr := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 3*waitFor)
		defer cancel()
		shutdownErr <- ts.s.shutdown(ctx)
	}()
	expectClosed(t, idle, idleBr)
	if c, err := net.DialTimeout("tcp", ts.addr, waitFor); err == nil {
		c.Close()
		t.Error("a new connection was accepted during shutdown")
	}
	select {
	case err := <-shutdownErr:
		t.Fatalf("shutdown returned %v with a request in flight", err)
	default:
	}
	close(release)
	resp, body := readResponse(t, busyBr, "GET")
	if body != "done" || !resp.Close {
		t.Errorf("request in flight: %q close=%v, want %q and close", body, resp.Close, "done")
	}
	expectClosed(t, busy, busyBr)
	select {
	case err := <-shutdownErr:
		if err != nil {
			t.Errorf("shutdown: %v", err)
		}
	case <-time.After(waitFor):
		t.Fatal("shutdown did not return once the request finished")
	}
	<-ts.done
	if !errors.Is(ts.err, http.ErrServerClosed) {
		t.Errorf("serve: %v, want %v", ts.err, http.ErrServerClosed)
	}
}

// TestServerClose: close ends every connection at once, a busy one too
// (its handler sees its context end), and serve returns.
func TestServerClose(t *testing.T) {
	checkLeaks(t)
	started := make(chan struct{})
	ts := startServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(started)
		<-r.Context().Done()
	}), nil)
	idle, idleBr := dialRaw(t, ts.addr)
	busy, busyBr := dialRaw(t, ts.addr)
	write(t, busy, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
	<-started
	ts.s.close()
	expectClosed(t, idle, idleBr)
	expectClosed(t, busy, busyBr)
	select {
	case <-ts.done:
		if !errors.Is(ts.err, http.ErrServerClosed) {
			t.Errorf("serve: %v, want %v", ts.err, http.ErrServerClosed)
		}
	case <-time.After(waitFor):
		t.Fatal("serve did not return after close")
	}
	waited := make(chan struct{})
	go func() { ts.s.wg.Wait(); close(waited) }()
	select {
	case <-waited:
	case <-time.After(waitFor):
		t.Fatal("connection goroutines still running after close")
	}
}

// TestServerShutdownHijacked: a hijacked connection (an upgrade tunnel)
// runs in its connection's goroutine; shutdown lets it run until its
// context ends, then closes it and returns, instead of waiting for the
// tunnel to end by itself (a gateway with an open WebSocket must stop).
func TestServerShutdownHijacked(t *testing.T) {
	checkLeaks(t)
	hijacked := make(chan struct{})
	ts := startServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		conn, rw, err := w.(http.Hijacker).Hijack()
		if err != nil {
			t.Errorf("hijack: %v", err)
			return
		}
		defer conn.Close()
		rw.WriteString("HTTP/1.1 101 Switching Protocols\r\nUpgrade: raw\r\nConnection: Upgrade\r\n\r\n")
		rw.Flush()
		close(hijacked)
		io.Copy(io.Discard, rw) // until either side closes
	}), nil)
	c, br := dialRaw(t, ts.addr)
	write(t, c, "GET / HTTP/1.1\r\nHost: x\r\nUpgrade: raw\r\nConnection: Upgrade\r\n\r\n")
	<-hijacked
	if resp, err := http.ReadResponse(br, nil); err != nil || resp.StatusCode != 101 {
		t.Fatalf("got %v, %v; want 101", resp, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	shutdownErr := make(chan error, 1)
	go func() { shutdownErr <- ts.s.shutdown(ctx) }()
	select {
	case err := <-shutdownErr:
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("shutdown: %v, want %v", err, context.DeadlineExceeded)
		}
	case <-time.After(waitFor):
		t.Fatal("shutdown did not return after its context ended, with a hijacked connection open")
	}
	expectClosed(t, c, br)
}

// TestServerStuckBodyReader: a reader the handler left blocked on the
// body (an upstream client's body writer, when the upstream answered
// early or the route timed out) while the client sends no more, waiting
// for the answer, does not hold the answer back: the read is cut, the
// answer goes out with Connection: close and the connection closes.
func TestServerStuckBodyReader(t *testing.T) {
	checkLeaks(t)
	lateErr := make(chan error, 1)
	ts := startServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body := r.Body.(*requestBody)
		first := make(chan struct{})
		go func() {
			buf := make([]byte, 64)
			r.Body.Read(buf)
			close(first)
			_, err := r.Body.Read(buf) // the client sends no more
			lateErr <- err
		}()
		<-first
		waitUntil(t, "the second read under way", func() bool {
			if body.mu.TryLock() {
				body.mu.Unlock()
				return false
			}
			return true
		})
		w.WriteHeader(http.StatusGatewayTimeout)
		io.WriteString(w, "upstream request timeout")
	}), nil)
	c, br := dialRaw(t, ts.addr)
	write(t, c, "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n")
	c.SetReadDeadline(time.Now().Add(waitFor))
	resp, body := readResponse(t, br, "POST")
	if resp.StatusCode != http.StatusGatewayTimeout || !resp.Close {
		t.Errorf("got %d %q close=%v, want 504 and Connection: close", resp.StatusCode, body, resp.Close)
	}
	expectClosed(t, c, br)
	if err := <-lateErr; err == nil {
		t.Error("the cut read returned no error")
	}
}

// TestServerHeaderNames: a header or trailer whose name is not a token (a
// CR or LF in it, from a handler or a config) is left out, as net/http's
// server does, rather than written and read as more headers.
func TestServerHeaderNames(t *testing.T) {
	checkLeaks(t)
	ts := startServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header()["X-Bad\r\nInjected"] = []string{"1"}
		w.Header()["X-Good"] = []string{"2"}
		w.Header().Set("Trailer", "X-T\r\nInjected-Trailer")
		w.Header()["X-T\r\nInjected-Trailer"] = []string{"3"}
		w.Header()[http.TrailerPrefix+"X-P\r\nInjected-Prefixed"] = []string{"4"}
		io.WriteString(w, "body")
	}), nil)
	c, br := dialRaw(t, ts.addr)
	write(t, c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
	resp, body := readResponse(t, br, "GET")
	if body != "body" || resp.Header.Get("X-Good") != "2" {
		t.Fatalf("got %q, header %v; want %q and X-Good", body, resp.Header, "body")
	}
	for _, k := range []string{"Injected", "Injected-Trailer", "Injected-Prefixed"} {
		if _, ok := resp.Header[k]; ok {
			t.Errorf("header %s written: %v", k, resp.Header)
		}
		if _, ok := resp.Trailer[k]; ok {
			t.Errorf("trailer %s written: %v", k, resp.Trailer)
		}
	}
}

// TestServerDeadlines: a head that comes in pieces must be whole within
// the head's timeout, even when the requests before it came whole (their
// heads set no deadline); a connection idle beyond the idle timeout is
// closed.
func TestServerDeadlines(t *testing.T) {
	checkLeaks(t)
	ts := startServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "ok")
	}), nil, func(s *portServer) {
		s.readHeaderTimeout = 300 * time.Millisecond
		s.idleTimeout = time.Second
	})

	c, br := dialRaw(t, ts.addr)
	for range 3 {
		write(t, c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
		if resp, body := readResponse(t, br, "GET"); resp.StatusCode != 200 || body != "ok" {
			t.Fatalf("answer %d %q, want 200 ok", resp.StatusCode, body)
		}
	}
	write(t, c, "GET / HTTP/1.1\r\n") // and no more
	start := time.Now()
	c.SetReadDeadline(time.Now().Add(waitFor))
	if n, err := br.Read(make([]byte, 1)); err == nil {
		t.Fatalf("read %d bytes from a connection whose head stalled, want its close", n)
	}
	if took := time.Since(start); took > 900*time.Millisecond {
		t.Errorf("a stalled head was cut after %v, want the head's 300ms (not the idle second)", took)
	}

	c2, br2 := dialRaw(t, ts.addr)
	write(t, c2, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
	readResponse(t, br2, "GET")
	start = time.Now()
	c2.SetReadDeadline(time.Now().Add(waitFor))
	if _, err := br2.Read(make([]byte, 1)); err == nil {
		t.Fatal("an idle connection got bytes, want its close")
	}
	if took := time.Since(start); took < 700*time.Millisecond || took > 3*time.Second {
		t.Errorf("an idle connection closed after %v, want the idle timeout's second", took)
	}
}

// TestServerWriteTimeout: an answer to a client that stopped reading
// fails after about the write timeout (the handler's write returns an
// error), while a hijacked connection (a tunnel) keeps no write timeout.
func TestServerWriteTimeout(t *testing.T) {
	checkLeaks(t)
	writeErr := make(chan error, 1)
	lateWrite := make(chan error, 1)
	ts := startServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/tunnel" {
			conn, brw, err := http.NewResponseController(w).Hijack()
			if err != nil {
				lateWrite <- err
				return
			}
			defer conn.Close()
			brw.WriteString("HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: test\r\n\r\n")
			brw.Flush()
			time.Sleep(700 * time.Millisecond) // quiet for longer than the write timeout
			_, err = io.WriteString(conn, "late")
			lateWrite <- err
			return
		}
		if r.URL.Path == "/small" {
			io.WriteString(w, "ok")
			return
		}
		chunk := make([]byte, 32<<10)
		for start := time.Now(); time.Since(start) < waitFor; {
			if _, err := w.Write(chunk); err != nil {
				writeErr <- err
				return
			}
		}
		writeErr <- nil
	}), nil, func(s *portServer) { s.writeTimeout = 300 * time.Millisecond })

	c, err := net.Dial("tcp", ts.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.(*net.TCPConn).SetReadBuffer(4096)
	write(t, c, "GET /stream HTTP/1.1\r\nHost: x\r\n\r\n") // and never read
	start := time.Now()
	select {
	case err := <-writeErr:
		if err == nil {
			t.Fatalf("an answer to a client that reads nothing was written for %v", waitFor)
		}
		if took := time.Since(start); took > 5*time.Second {
			t.Errorf("the write to a client that reads nothing failed after %v, want about the 300ms write timeout", took)
		}
	case <-time.After(2 * waitFor):
		t.Fatal("the handler's writes never failed")
	}

	// An answer first, which sets a write deadline; then the tunnel.
	c2, br2 := dialRaw(t, ts.addr)
	write(t, c2, "GET /small HTTP/1.1\r\nHost: x\r\n\r\n")
	readResponse(t, br2, "GET")
	write(t, c2, "GET /tunnel HTTP/1.1\r\nHost: x\r\n\r\n")
	if resp, _ := readResponse(t, br2, "GET"); resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("tunnel: %d, want 101", resp.StatusCode)
	}
	if err := <-lateWrite; err != nil {
		t.Errorf("a tunnel quiet for longer than the write timeout could not write: %v", err)
	}
	late := make([]byte, 4)
	c2.SetReadDeadline(time.Now().Add(waitFor))
	if _, err := io.ReadFull(br2, late); err != nil || string(late) != "late" {
		t.Errorf("tunnel read %q, %v; want \"late\"", late, err)
	}
}
