package gateway

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/net/http/httpguts"
)

// portServer serves one listener port. HTTP/1.x connections run in the
// gateway's own loop (h1Conn below); HTTP/2 ones (TLS with ALPN h2, or
// cleartext with the HTTP/2 preface) are handed to net/http's server.
//
// net/http's HTTP/1 server costs a proxy more than the proxying: it starts
// a goroutine per request to notice a client that goes away, and the
// ResponseWriter goes through two layers of buffers. The loop here reads
// a request with net/http's own parser (http.ReadRequest, the same checks
// against smuggling), runs the handler in the connection's goroutine, and
// writes the answer with one write when it is small. A client that goes
// away is noticed by a background read only once a request has been
// running for disconnectCheckAfter, so quick requests start no goroutine.
type portServer struct {
	handler           http.Handler
	tls               *tls.Config // nil for cleartext
	log               *slog.Logger
	readHeaderTimeout time.Duration
	idleTimeout       time.Duration
	// bodyTimeout is how long a request body may send nothing: a client
	// that stalls in its body would otherwise hold an upstream
	// connection for ever (nginx's client_body_timeout).
	bodyTimeout time.Duration
	// writeTimeout is how long a write to a client may wait for it to
	// read: one that stopped reading would otherwise hold its upstream
	// for ever (nginx's send_timeout).
	writeTimeout   time.Duration
	maxHeaderBytes int

	h2   *http.Server
	h2ln *connListener

	mu       sync.Mutex // guards conns, listener
	conns    map[*serverConn]struct{}
	listener net.Listener
	closing  atomic.Bool
	wg       sync.WaitGroup // the connections' goroutines
}

const (
	// disconnectCheckAfter is how long a request runs before a
	// background read watches its client for a close.
	disconnectCheckAfter = 250 * time.Millisecond
	// maxPostHandlerDrain is how much of a request body the handler left
	// is read away to keep the connection; beyond it, it is closed.
	maxPostHandlerDrain = 256 << 10
	// bufferedBody is how much of an answer is held before its head is
	// written: a smaller answer goes out with a Content-Length in one write.
	bufferedBody = 4 << 10
)

func newPortServer(handler http.Handler, tlsConfig *tls.Config, log *slog.Logger) *portServer {
	s := &portServer{
		handler:           handler,
		tls:               tlsConfig,
		log:               log,
		readHeaderTimeout: 30 * time.Second,
		idleTimeout:       5 * time.Minute,
		bodyTimeout:       60 * time.Second,
		writeTimeout:      60 * time.Second,
		maxHeaderBytes:    http.DefaultMaxHeaderBytes,
		conns:             map[*serverConn]struct{}{},
	}
	protocols := new(http.Protocols)
	protocols.SetHTTP2(true)
	protocols.SetUnencryptedHTTP2(true)
	s.h2ln = newConnListener()
	s.h2 = &http.Server{
		Handler:     http.HandlerFunc(s.serveH2),
		Protocols:   protocols,
		IdleTimeout: s.idleTimeout,
		ErrorLog:    slog.NewLogLogger(log.Handler(), slog.LevelDebug),
	}
	return s
}

// serve accepts connections on ln until it is closed.
func (s *portServer) serve(ln net.Listener) error {
	s.mu.Lock()
	s.listener = ln
	s.mu.Unlock()
	// A client that stops reading the connection itself (not one stream)
	// is dropped, as an HTTP/1 one is. Before the streams' write timeout:
	// net/http leaves a connection open for good when a stream's deadline
	// resets it while a connection write is blocked.
	s.h2.HTTP2 = &http.HTTP2Config{WriteByteTimeout: s.writeTimeout / 2}
	h2done := make(chan struct{})
	go func() {
		defer close(h2done)
		s.h2.Serve(s.h2ln)
	}()
	defer func() { s.h2ln.Close(); <-h2done }()
	var delay time.Duration
	for {
		c, err := ln.Accept()
		if err != nil {
			if s.closing.Load() {
				return http.ErrServerClosed
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() || errors.Is(err, syscall.EMFILE) {
				// Out of descriptors, as net/http does: wait and go on.
				delay = min(max(2*delay, 5*time.Millisecond), time.Second)
				s.log.Warn("accept", "err", err, "retry_in", delay)
				time.Sleep(delay)
				continue
			}
			return err
		}
		delay = 0
		sc := &serverConn{s: s, conn: nonblocking(c)}
		if !s.track(sc) {
			c.Close()
			continue
		}
		s.wg.Go(sc.serve)
	}
}

// track counts a connection in (false when the server is closing).
func (s *portServer) track(sc *serverConn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing.Load() {
		return false
	}
	s.conns[sc] = struct{}{}
	return true
}

func (s *portServer) forget(sc *serverConn) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.conns, sc)
}

// setActive marks a connection serving a request or idle; false when the
// server is closing and the idle connection should end. (A shutdown sets
// closing, then closes the connections it finds idle: one going idle
// meanwhile sees closing here.)
func (s *portServer) setActive(sc *serverConn, active bool) bool {
	sc.active.Store(active)
	return active || !s.closing.Load()
}

func (s *portServer) isClosing() bool { return s.closing.Load() }

// shutdown stops accepting, closes idle connections, lets the requests in
// flight finish until ctx ends (then closes what is left), and drains the
// HTTP/2 connections the same way.
func (s *portServer) shutdown(ctx context.Context) error {
	s.mu.Lock()
	s.closing.Store(true)
	if s.listener != nil {
		s.listener.Close()
	}
	s.mu.Unlock()
	h2err := make(chan error, 1)
	go func() { h2err <- s.h2.Shutdown(ctx) }()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		s.mu.Lock()
		for sc := range s.conns {
			if !sc.active.Load() {
				sc.conn.Close()
			}
		}
		left := len(s.conns)
		s.mu.Unlock()
		if left == 0 {
			break
		}
		select {
		case <-tick.C:
			continue
		case <-ctx.Done():
			s.close()
			return errors.Join(ctx.Err(), <-h2err)
		}
	}
	s.wg.Wait()
	return <-h2err
}

// close closes the listener and every connection at once.
func (s *portServer) close() {
	s.mu.Lock()
	s.closing.Store(true)
	if s.listener != nil {
		s.listener.Close()
	}
	for sc := range s.conns {
		sc.conn.Close()
	}
	s.mu.Unlock()
	s.h2.Close()
}

// serverConn is one downstream HTTP/1.x connection.
type serverConn struct {
	s      *portServer
	active atomic.Bool // serving a request (else idle between requests)
	conn   net.Conn
	remote string
	tls    *tls.ConnectionState
	cr     *connReader
	br     *bufio.Reader
	bw     *bufio.Writer // writes to out
	out    timedWriter
	// wmu orders a 100 Continue (written when the body is first read,
	// possibly by another goroutine) with the answer's head.
	wmu sync.Mutex
	// ctx is the context of the connection's requests, canceled when the
	// client goes away (the watch) or the connection ends. One per
	// connection rather than per request: HTTP/1 serves one request at a
	// time, and a request's context costs allocations (its cancelation's
	// registrations included) that a proxy pays at every request.
	ctx    context.Context
	cancel context.CancelFunc
	// idleSet is when the read deadline was last set for the wait for a
	// request; zero once another deadline replaced it.
	idleSet time.Time
	// header, resp and noBody are reused from request to request (nothing
	// keeps them past a request: a hijacked connection is not reused).
	header http.Header
	resp   h1Response
	noBody requestBody
}

var (
	readerPool = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, 4<<10) }}
	writerPool = sync.Pool{New: func() any { return bufio.NewWriterSize(nil, 4<<10) }}
)

func (sc *serverConn) serve() {
	s := sc.s
	hijacked := false
	defer func() {
		s.forget(sc)
		if !hijacked {
			sc.conn.Close()
			sc.release()
		}
	}()
	sc.remote = sc.conn.RemoteAddr().String()
	if s.tls != nil {
		tc := tls.Server(sc.conn, s.tls)
		tc.SetDeadline(time.Now().Add(s.readHeaderTimeout))
		if err := tc.HandshakeContext(context.Background()); err != nil {
			s.log.Debug("TLS handshake", "remote", sc.remote, "err", err)
			return
		}
		tc.SetDeadline(time.Time{})
		sc.conn = tc
		state := tc.ConnectionState()
		sc.tls = &state
		if state.NegotiatedProtocol == "h2" {
			s.forget(sc)
			hijacked = true // net/http's now
			s.h2ln.push(tc)
			return
		}
	}
	sc.cr = &connReader{conn: sc.conn, remaining: -1}
	sc.br = readerPool.Get().(*bufio.Reader)
	sc.br.Reset(sc.cr)
	sc.out = timedWriter{conn: sc.conn, timeout: s.writeTimeout}
	sc.bw = writerPool.Get().(*bufio.Writer)
	sc.bw.Reset(&sc.out)
	sc.header = http.Header{}
	if s.tls == nil {
		sc.conn.SetReadDeadline(time.Now().Add(s.idleTimeout))
		if isH2, err := sc.h2Preface(); err != nil {
			return
		} else if isH2 {
			s.forget(sc)
			hijacked = true
			s.h2ln.push(&prefacedConn{Conn: sc.conn, r: sc.br})
			return
		}
	}
	sc.ctx, sc.cancel = context.WithCancel(context.Background())
	defer sc.cancel()
	for {
		keep, hj := sc.serveRequest()
		if hj {
			hijacked = true
			return
		}
		if !keep {
			sc.bw.Flush()
			closeWrite(sc.conn)
			return
		}
		// Each answer goes out when it is done, as net/http's do: a
		// pipelined request behind it may take long (a long poll).
		if sc.bw.Flush() != nil {
			return
		}
	}
}

// release gives the buffers back.
func (sc *serverConn) release() {
	if sc.br != nil {
		sc.br.Reset(nil)
		readerPool.Put(sc.br)
		sc.br = nil
	}
	if sc.bw != nil {
		sc.bw.Reset(nil)
		writerPool.Put(sc.bw)
		sc.bw = nil
	}
}

// closeWrite ends our side and gives the client a moment to read the last
// answer before the close resets it, as net/http does.
func closeWrite(c net.Conn) {
	if !errors.Is(halfClose(c), errors.ErrUnsupported) {
		time.Sleep(100 * time.Millisecond)
	}
}

const h2Preface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

// h2Preface reads as much of the first bytes as it takes to tell the
// HTTP/2 preface from an HTTP/1 request line.
func (sc *serverConn) h2Preface() (bool, error) {
	n := 1
	for {
		got, err := sc.br.Peek(n)
		if err != nil {
			return false, err
		}
		if !strings.HasPrefix(h2Preface, string(got)) {
			return false, nil
		}
		if n == len(h2Preface) {
			return true, nil
		}
		// What is buffered tells more at once; when all of it is a
		// prefix of the preface, wait for one byte more. (This loop used
		// to jump past the preface's length after the first byte and take
		// any request starting with "P", POST or PUT, for HTTP/2.)
		n = min(max(n+1, sc.br.Buffered()), len(h2Preface))
	}
}

// serveRequest reads one request and answers it. keep says whether the
// connection may carry another; hijacked that the handler took it.
func (sc *serverConn) serveRequest() (keep, hijacked bool) {
	s := sc.s
	if sc.br.Buffered() == 0 {
		if !s.setActive(sc, false) {
			return false, false
		}
		// The idle deadline moves at most once a second: setting a
		// deadline costs a timer change, at every request.
		if now := time.Now(); now.Sub(sc.idleSet) > time.Second {
			sc.conn.SetReadDeadline(now.Add(s.idleTimeout))
			sc.idleSet = now
		}
		if _, err := sc.br.Peek(1); err != nil {
			return false, false
		}
	}
	if !s.setActive(sc, true) {
		return false, false
	}
	req, ok := readRequestHead(sc.br, sc.ctx) // the common head, whole in the buffer
	if !ok {
		if req, ok = sc.readRequest(); !ok {
			return false, false
		}
	}
	if req.Body != nil && req.Body != http.NoBody {
		// The body has no deadline. A request without one keeps the
		// head's (or the idle one) until the next request sets another;
		// the watch and Hijack lift it when they read.
		sc.conn.SetReadDeadline(time.Time{})
		sc.idleSet = time.Time{}
	}
	if msg := checkRequest(req); msg != "" {
		sc.reject(http.StatusBadRequest, msg)
		return false, false
	}
	req.RemoteAddr = sc.remote
	req.TLS = sc.tls

	clear(sc.header)
	w := &sc.resp
	*w = h1Response{sc: sc, req: req, header: sc.header, contentLength: -1, buf: w.buf[:0]}
	var body *requestBody
	if req.Body == nil || req.Body == http.NoBody {
		body = &sc.noBody
		*body = requestBody{sc: sc, w: w, eof: true}
	} else {
		// A body is new at every request: a reader the handler left
		// behind (requestBody.end) must not reach the next one's.
		body = &requestBody{sc: sc, w: w, rc: req.Body}
		req.Body = body
		if expect := req.Header.Get("Expect"); expect != "" {
			if !strings.EqualFold(expect, "100-continue") || !req.ProtoAtLeast(1, 1) {
				sc.reject(http.StatusExpectationFailed, "unsupported Expect")
				return false, false
			}
			body.expectContinue = true
		}
	}
	sc.cr.armWatch(disconnectCheckAfter, body, sc.cancel)
	panicked := sc.runHandler(w, req)
	if w.hijacked {
		return false, true
	}
	cut := body.end()
	if sc.cr.stopWatch() || cut {
		sc.idleSet = time.Time{} // the read deadline changed
	}
	if panicked {
		return false, false
	}
	// What the handler left of the body is read away before the head goes
	// out when it has not yet, so that the answer can say Connection:
	// close when the connection cannot carry another request, as net/http's
	// does.
	if !w.committed && !req.Close && !body.discard() {
		w.closeAfter = true
	}
	w.finish()
	// A canceled context is a client gone (or a connection ending): no
	// next request.
	keep = !w.closeAfter && !req.Close && !s.isClosing() && sc.ctx.Err() == nil && body.discard()
	return keep, false
}

// readRequest reads a request with net/http's parser, answering the ones
// it refuses; ok is false when the connection is done.
func (sc *serverConn) readRequest() (req *http.Request, ok bool) {
	s := sc.s
	// A head whole in the buffer is parsed without a read: only one that
	// is not needs the head's deadline.
	if buf, _ := sc.br.Peek(sc.br.Buffered()); !bytes.Contains(buf, []byte("\n\r\n")) && !bytes.Contains(buf, []byte("\n\n")) {
		sc.conn.SetReadDeadline(time.Now().Add(s.readHeaderTimeout))
		sc.idleSet = time.Time{}
	}
	sc.cr.setLimit(int64(s.maxHeaderBytes) + 4096)
	req, err := http.ReadRequest(sc.br)
	hitLimit := sc.cr.unlimit()
	if err != nil {
		switch {
		case hitLimit:
			sc.reject(http.StatusRequestHeaderFieldsTooLarge, "request headers too large")
		case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), isTimeout(err):
			// The client went away or stalled: nothing to answer.
		case strings.Contains(err.Error(), "unsupported transfer encoding"):
			sc.reject(http.StatusNotImplemented, err.Error())
		default:
			sc.reject(http.StatusBadRequest, err.Error())
		}
		return nil, false
	}
	return req.WithContext(sc.ctx), true
}

// discard reads away what the handler left of the body if it is short and
// the client sent it (a client waiting for 100 Continue has not); false
// when the rest of the body is not read and the connection must close.
func (b *requestBody) discard() bool {
	if b.eof {
		return true
	}
	if b.expectContinue && !b.continued {
		return false
	}
	n, err := io.CopyN(io.Discard, b.rc, maxPostHandlerDrain+1)
	if n > maxPostHandlerDrain || (err != nil && err != io.EOF) {
		return false
	}
	b.sc.cr.mu.Lock()
	b.eof = true
	b.sc.cr.mu.Unlock()
	return true
}

// runHandler runs the handler; true when it panicked (logged unless it
// panicked with http.ErrAbortHandler, which aborts the answer on purpose).
func (sc *serverConn) runHandler(w *h1Response, req *http.Request) (panicked bool) {
	defer func() {
		if v := recover(); v != nil {
			panicked = true
			if v != http.ErrAbortHandler {
				sc.s.log.Error("handler panic", "remote", sc.remote, "path", req.URL.Path, "panic", v, "stack", string(debug.Stack()))
			}
		}
	}()
	sc.s.handler.ServeHTTP(w, req)
	return false
}

// checkRequest makes the checks net/http's server adds to
// http.ReadRequest's; it returns what is wrong, or "".
func checkRequest(req *http.Request) string {
	if req.ProtoMajor != 1 {
		return "unsupported protocol version"
	}
	// http.ReadRequest moved the Host header to req.Host (and refused two).
	switch {
	case req.ProtoAtLeast(1, 1) && req.Host == "" && req.Method != "CONNECT":
		return "missing required Host header"
	case !httpguts.ValidHostHeader(req.Host):
		return "malformed Host header"
	}
	// textproto, under http.ReadRequest, refuses invalid values already,
	// but lets a name with a space through.
	for k := range req.Header {
		if !httpguts.ValidHeaderFieldName(k) {
			return "invalid header name"
		}
	}
	return ""
}

// reject answers a request it cannot serve and closes the connection.
func (sc *serverConn) reject(code int, msg string) {
	fmt.Fprintf(sc.bw, "HTTP/1.1 %d %s\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\nContent-Length: %d\r\n\r\n%s",
		code, http.StatusText(code), len(msg)+1, msg+"\n")
	sc.bw.Flush()
}

// errBodyTimeout ends a request whose body stalled for the body timeout.
var errBodyTimeout = &StatusError{http.StatusRequestTimeout, "request body timeout"}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// requestBody is a request's body as the handler reads it: it sends 100
// Continue at the first read when the client asked for it, and says when
// the body has been read to its end (from then on, a background read may
// watch the connection).
type requestBody struct {
	sc             *serverConn
	w              *h1Response
	rc             io.ReadCloser
	expectContinue bool
	eof            bool // guarded by sc.cr.mu

	// mu keeps a reader the handler left behind (an upstream client's
	// body writer when the upstream answered early) off the connection
	// once the handler returned: the connection's goroutine then reads
	// away the rest of the body, and the next request.
	mu        sync.Mutex // guards reads of rc, continued, ended
	continued bool
	ended     bool
}

// end is called when the handler returns: a Read in progress is waited
// for, and a later one fails, as with net/http's server. It says whether
// it changed the read deadline.
func (b *requestBody) end() (cut bool) {
	if !b.mu.TryLock() {
		// A reader the handler left (an upstream client's body writer
		// after an early answer or a timeout) is in a Read, perhaps
		// blocked on a client that sends no more until it has the answer:
		// the read is cut, and the rest of the body is then not read away
		// (the connection closes after the answer). Waiting for it held
		// the answer back, with no deadline.
		b.sc.conn.SetReadDeadline(aLongTimeAgo)
		b.mu.Lock()
		cut = true
	}
	b.ended = true
	b.mu.Unlock()
	return cut
}

func (b *requestBody) Read(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.ended {
		return 0, http.ErrBodyReadAfterClose
	}
	if b.expectContinue && !b.continued {
		b.continued = true
		b.sc.wmu.Lock()
		if !b.w.committed {
			b.sc.bw.WriteString("HTTP/1.1 100 Continue\r\n\r\n")
			b.sc.bw.Flush()
		}
		b.sc.wmu.Unlock()
	}
	b.sc.conn.SetReadDeadline(time.Now().Add(b.sc.s.bodyTimeout))
	n, err := b.rc.Read(p)
	if err != nil && isTimeout(err) {
		err = errBodyTimeout
	}
	if err == io.EOF {
		b.sc.cr.mu.Lock()
		b.eof = true
		b.sc.cr.mu.Unlock()
	}
	return n, err
}

func (b *requestBody) Close() error { return nil }

// connReader is what the connection's bufio.Reader reads from: it caps
// the bytes of a request's head, and it can watch the connection for a
// close while a handler runs, keeping the byte that read may find.
type connReader struct {
	conn net.Conn

	remaining int64 // while reading a head; < 0: no limit
	hitLimit  bool

	watch *time.Timer // runs fire; the connection's goroutine's

	mu      sync.Mutex // guards the fields below, and requestBody.eof
	armed   bool       // a request is watched
	body    *requestBody
	cancel  context.CancelFunc
	reading chan struct{} // closed when the background read ends
	aborted bool
	hasByte bool
	byteBuf [1]byte
}

func (cr *connReader) setLimit(n int64) { cr.remaining, cr.hitLimit = n, false }

func (cr *connReader) unlimit() bool {
	hit := cr.hitLimit
	cr.remaining, cr.hitLimit = -1, false
	return hit
}

func (cr *connReader) Read(p []byte) (int, error) {
	if cr.remaining == 0 {
		cr.hitLimit = true
		return 0, io.EOF
	}
	if cr.remaining > 0 && int64(len(p)) > cr.remaining {
		p = p[:cr.remaining]
	}
	cr.mu.Lock()
	if cr.hasByte {
		p[0] = cr.byteBuf[0]
		cr.hasByte = false
		cr.mu.Unlock()
		cr.consumed(1)
		return 1, nil
	}
	cr.mu.Unlock()
	n, err := cr.conn.Read(p)
	cr.consumed(n)
	return n, err
}

func (cr *connReader) consumed(n int) {
	if cr.remaining > 0 {
		cr.remaining -= int64(n)
	}
}

// armWatch starts, after d, a background read that cancels the request
// when the client closes the connection. It starts only once the body
// has been read to its end, and not when more bytes are buffered (a
// pipelined request). stopWatch ends it. The timer is the connection's,
// made at its first request.
func (cr *connReader) armWatch(d time.Duration, body *requestBody, cancel context.CancelFunc) {
	cr.mu.Lock()
	cr.armed, cr.body, cr.cancel = true, body, cancel
	cr.mu.Unlock()
	if cr.watch == nil {
		cr.watch = time.AfterFunc(d, cr.fire)
		return
	}
	cr.watch.Reset(d)
}

// fire starts the background read of an armed watch.
func (cr *connReader) fire() {
	cr.mu.Lock()
	defer cr.mu.Unlock()
	// armed is false once stopWatch began: a timer that fired late must
	// not read during the next request.
	if !cr.armed || !cr.body.eof || cr.hasByte || cr.body.sc.br.Buffered() > 0 || cr.reading != nil {
		return
	}
	// A request without a body kept the head's deadline. Lifted here, under
	// the lock, so that stopWatch's deadline in the past comes after it.
	cr.conn.SetReadDeadline(time.Time{})
	done := make(chan struct{})
	cr.reading = done
	cancel := cr.cancel
	go func() {
		defer close(done)
		n, err := cr.conn.Read(cr.byteBuf[:])
		cr.mu.Lock()
		defer cr.mu.Unlock()
		if n == 1 {
			cr.hasByte = true
		}
		if err != nil && !cr.aborted {
			cancel() // the client went away
		}
	}()
}

// stopWatch ends the watch of a request: the timer, and the background
// read if it started (a read deadline in the past ends it); read says it
// had, which changed the read deadline.
func (cr *connReader) stopWatch() (read bool) {
	if cr.watch == nil {
		return false
	}
	cr.watch.Stop()
	cr.mu.Lock()
	cr.armed = false
	cr.aborted = true
	reading := cr.reading
	cr.mu.Unlock()
	if reading != nil {
		cr.conn.SetReadDeadline(aLongTimeAgo)
		<-reading
		cr.conn.SetReadDeadline(time.Time{})
	}
	cr.mu.Lock()
	cr.aborted, cr.reading, cr.body, cr.cancel = false, nil, nil, nil
	cr.mu.Unlock()
	return reading != nil
}

// h1Response is the ResponseWriter of an HTTP/1.x request.
type h1Response struct {
	sc     *serverConn
	req    *http.Request
	header http.Header

	status        int  // the final status, once chosen
	committed     bool // the head is in the connection's writer
	contentLength int64
	written       int64
	chunked       bool
	noBody        bool // HEAD, 204, 304
	closeAfter    bool
	hijacked      bool
	buf           []byte // the body held before the head is written
}

func (w *h1Response) Header() http.Header { return w.header }

func (w *h1Response) WriteHeader(code int) {
	if w.hijacked || w.status != 0 {
		return
	}
	if code < 100 || code > 999 {
		code = http.StatusBadGateway
	}
	if code < 200 && code != http.StatusSwitchingProtocols {
		// An informational answer goes out at once, with the headers set
		// so far (103 Early Hints).
		w.sc.wmu.Lock()
		writeStatusLine(w.sc.bw, code)
		writeHeaders(w.sc.bw, w.header)
		w.sc.bw.WriteString("\r\n")
		w.sc.bw.Flush()
		w.sc.wmu.Unlock()
		return
	}
	w.status = code
	if cl := w.header.Get("Content-Length"); cl != "" {
		if n, err := strconv.ParseInt(cl, 10, 64); err == nil && n >= 0 {
			w.contentLength = n
		} else {
			delete(w.header, "Content-Length")
		}
	}
	w.noBody = w.req.Method == "HEAD" || code == http.StatusNoContent || code == http.StatusNotModified
}

func (w *h1Response) Write(p []byte) (int, error) {
	if w.hijacked {
		return 0, http.ErrHijacked
	}
	if w.status == 0 {
		w.WriteHeader(http.StatusOK)
	}
	if w.noBody {
		if w.req.Method == "HEAD" {
			return len(p), nil
		}
		return 0, http.ErrBodyNotAllowed
	}
	if w.contentLength >= 0 && w.written+int64(len(p)) > w.contentLength {
		return 0, http.ErrContentLength
	}
	w.written += int64(len(p))
	if !w.committed {
		if len(w.buf)+len(p) <= bufferedBody {
			w.buf = append(w.buf, p...)
			return len(p), nil
		}
		w.commit(false)
	}
	return len(p), w.writeBody(p)
}

func (w *h1Response) writeBody(p []byte) error {
	bw := w.sc.bw
	if len(p) == 0 {
		return nil
	}
	if w.chunked {
		bw.Write(strconv.AppendInt(bw.AvailableBuffer(), int64(len(p)), 16))
		bw.WriteString("\r\n")
		bw.Write(p)
		_, err := bw.WriteString("\r\n")
		return err
	}
	_, err := bw.Write(p)
	return err
}

// Flush sends what was written so far (the head first).
func (w *h1Response) Flush() {
	w.FlushError()
}

// FlushError is Flush, with the error (http.ResponseController's).
func (w *h1Response) FlushError() error {
	if w.hijacked {
		return http.ErrHijacked
	}
	if w.status == 0 {
		w.WriteHeader(http.StatusOK)
	}
	if !w.committed {
		w.commit(false)
	}
	return w.sc.bw.Flush()
}

// Hijack hands the connection to the handler (an upgrade), with what was
// read of it and not used yet. It must come before any answer.
func (w *h1Response) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	if w.hijacked {
		return nil, nil, http.ErrHijacked
	}
	if w.committed || w.status != 0 {
		return nil, nil, errors.New("gateway: hijack after the answer started")
	}
	w.hijacked = true
	w.sc.cr.stopWatch()
	sc := w.sc
	sc.conn.SetReadDeadline(time.Time{}) // a request without a body kept its head's
	// The connection stays tracked (and active) while the handler, in the
	// connection's goroutine, runs with it: a shutdown waits for it as for
	// a request in flight, and closes it when its context ends (an open
	// tunnel must not keep the gateway from stopping).
	conn := sc.conn
	if sc.cr.hasByte {
		// A byte the watch read belongs to the hijacker.
		conn = &prefacedConn{Conn: sc.conn, r: io.MultiReader(strings.NewReader(string(sc.cr.byteBuf[:1])), sc.conn)}
	}
	// A tunnel may be quiet for long: no write timeout from now on.
	sc.bw.Flush()
	sc.bw.Reset(conn)
	sc.conn.SetWriteDeadline(time.Time{})
	return conn, bufio.NewReadWriter(sc.br, sc.bw), nil
}

// commit writes the head. final says the handler is done: an answer held
// whole then gets its Content-Length. The framing headers it decides on
// (Content-Length, Transfer-Encoding, Connection, Date) are written
// straight to the connection rather than put in the map.
func (w *h1Response) commit(final bool) {
	sc := w.sc
	h := w.header
	delete(h, "Transfer-Encoding")
	length := false // a Content-Length of its own to write
	switch {
	case w.contentLength >= 0 || w.noBody:
	case final && len(h["Trailer"]) == 0 && !hasPrefixedTrailer(h):
		// Trailers, announced or set with http.TrailerPrefix alone, need
		// the chunked framing: only an answer without them gets a length.
		w.contentLength = int64(len(w.buf))
		length = true
	case w.req.ProtoAtLeast(1, 1):
		w.chunked = true
	default:
		w.closeAfter = true // an HTTP/1.0 client reads to the close
	}
	if httpguts.HeaderValuesContainsToken(h["Connection"], "close") || sc.s.isClosing() {
		w.closeAfter = true
	}
	connection := ""
	if w.closeAfter || w.req.Close {
		connection = "close"
	} else if !w.req.ProtoAtLeast(1, 1) {
		connection = "keep-alive"
	}
	if connection != "" {
		delete(h, "Connection")
	}
	sc.wmu.Lock()
	w.committed = true
	bw := sc.bw
	writeStatusLine(bw, w.status)
	writeHeaders(bw, h)
	if length {
		bw.WriteString("Content-Length: ")
		bw.Write(strconv.AppendInt(bw.AvailableBuffer(), w.contentLength, 10))
		bw.WriteString("\r\n")
	}
	if w.chunked {
		bw.WriteString("Transfer-Encoding: chunked\r\n")
	}
	if connection != "" {
		bw.WriteString("Connection: ")
		bw.WriteString(connection)
		bw.WriteString("\r\n")
	}
	if _, ok := h["Date"]; !ok {
		bw.WriteString("Date: ")
		bw.WriteString(httpDate())
		bw.WriteString("\r\n")
	}
	bw.WriteString("\r\n")
	sc.wmu.Unlock()
	if len(w.buf) > 0 {
		w.writeBody(w.buf)
		w.buf = w.buf[:0] // its room is the next answer's
	}
}

// finish ends the answer when the handler returns.
func (w *h1Response) finish() {
	if w.status == 0 {
		w.WriteHeader(http.StatusOK)
	}
	if !w.committed {
		w.commit(true)
	}
	if w.chunked {
		bw := w.sc.bw
		bw.WriteString("0\r\n")
		writeTrailers(bw, w.header)
		bw.WriteString("\r\n")
	}
	if w.contentLength >= 0 && w.written < w.contentLength && !w.noBody {
		w.closeAfter = true // short of its Content-Length: only a close ends it
	}
}

// writeTrailers writes the trailers a handler set: the keys it announced
// in the Trailer header, and the ones with http.TrailerPrefix.
func writeTrailers(bw *bufio.Writer, h http.Header) {
	for _, list := range h["Trailer"] {
		for k := range strings.SplitSeq(list, ",") {
			k = http.CanonicalHeaderKey(strings.TrimSpace(k))
			for _, v := range h[k] {
				writeHeader(bw, k, v)
			}
		}
	}
	for k, vs := range h {
		if name, ok := strings.CutPrefix(k, http.TrailerPrefix); ok {
			for _, v := range vs {
				writeHeader(bw, name, v)
			}
		}
	}
}

// hasPrefixedTrailer says whether h holds a trailer set with
// http.TrailerPrefix.
func hasPrefixedTrailer(h http.Header) bool {
	for k := range h {
		if strings.HasPrefix(k, http.TrailerPrefix) {
			return true
		}
	}
	return false
}

func writeStatusLine(bw *bufio.Writer, code int) {
	bw.WriteString("HTTP/1.1 ")
	bw.Write(strconv.AppendInt(bw.AvailableBuffer(), int64(code), 10))
	bw.WriteByte(' ')
	text := http.StatusText(code)
	if text == "" {
		text = "status code " + strconv.Itoa(code)
	}
	bw.WriteString(text)
	bw.WriteString("\r\n")
}

func writeHeaders(bw *bufio.Writer, h http.Header) {
	for k, vs := range h {
		if strings.HasPrefix(k, http.TrailerPrefix) {
			continue
		}
		for _, v := range vs {
			writeHeader(bw, k, v)
		}
	}
}

// headerNewlines keeps a value on its line, as net/http does.
var headerNewlines = strings.NewReplacer("\r\n", " ", "\r", " ", "\n", " ")

func writeHeader(bw *bufio.Writer, k, v string) {
	// A name that is not a token (a CR or LF in it, from a handler or a
	// config) is left out, as net/http's server drops it: it would be
	// read as more headers, or the end of them.
	if !httpguts.ValidHeaderFieldName(k) {
		return
	}
	if strings.ContainsAny(v, "\r\n") {
		v = headerNewlines.Replace(v)
	}
	bw.WriteString(k)
	bw.WriteString(": ")
	bw.WriteString(v)
	bw.WriteString("\r\n")
}

// date caches the Date header of the current second.
var date atomic.Pointer[struct {
	sec  int64
	text string
}]

func httpDate() string {
	now := time.Now()
	if d := date.Load(); d != nil && d.sec == now.Unix() {
		return d.text
	}
	d := &struct {
		sec  int64
		text string
	}{now.Unix(), now.UTC().Format(http.TimeFormat)}
	date.Store(d)
	return d.text
}

// timedWriter is what a connection's answers are written to: it moves the
// write deadline ahead before a write (when it was last moved over a
// sixteenth of the timeout ago, to spare a timer change per write), so
// that a client that stops reading is dropped after about the write
// timeout, while one that reads, however slowly, is not.
type timedWriter struct {
	conn    net.Conn
	timeout time.Duration
	set     time.Time // when the deadline was last moved
}

func (w *timedWriter) Write(p []byte) (int, error) {
	if now := time.Now(); now.Sub(w.set) > w.timeout/16 {
		w.conn.SetWriteDeadline(now.Add(w.timeout))
		w.set = now
	}
	return w.conn.Write(p)
}

// prefacedConn is a connection whose first bytes were already read into r.
type prefacedConn struct {
	net.Conn
	r io.Reader
}

func (c *prefacedConn) Read(p []byte) (int, error) { return c.r.Read(p) }

// CloseWrite ends the sending side alone (a tunnel's half-close).
func (c *prefacedConn) CloseWrite() error { return halfClose(c.Conn) }

// connListener hands connections to net/http's server.
type connListener struct {
	conns  chan net.Conn
	done   chan struct{}
	closed sync.Once
}

func newConnListener() *connListener {
	return &connListener{conns: make(chan net.Conn), done: make(chan struct{})}
}

func (l *connListener) push(c net.Conn) {
	select {
	case l.conns <- c:
	case <-l.done:
		c.Close()
	}
}

func (l *connListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

func (l *connListener) Close() error {
	l.closed.Do(func() { close(l.done) })
	return nil
}

func (l *connListener) Addr() net.Addr { return &net.TCPAddr{} }
