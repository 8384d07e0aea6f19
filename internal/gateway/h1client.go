package gateway

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"strconv"
	"sync"
	"time"

	"golang.org/x/net/http/httpguts"
)

// h1Transport is the HTTP/1.1 client of a cluster's pool. Unlike
// http.Transport, which runs a reading and a writing goroutine per
// connection and hands every request and response between them and the
// caller, it writes the request and reads the response in the caller's
// goroutine: a proxied request costs no goroutine switch on the upstream
// side. Idle connections are kept per endpoint, most recently used first.
//
// A connection the server closed while it sat idle is found before use
// when it sat for more than staleAfter (one non-blocking read), and
// otherwise by the request failing before any byte of an answer came: a
// request that can be sent again (no body, or one held in memory) then
// goes out once more on another connection, as http.Transport does.
type h1Transport struct {
	dial        func(ctx context.Context, network, addr string) (net.Conn, error)
	idleTimeout time.Duration
	maxIdle     int // per endpoint

	mu    sync.Mutex // guards idle, sweep
	idle  map[string][]*h1Conn
	sweep *time.Timer // closes connections idle beyond idleTimeout
}

// h1Conn is one upstream connection with its buffers.
type h1Conn struct {
	conn      net.Conn
	lim       *headLimit // under br: caps the bytes of an answer's head
	br        *bufio.Reader
	bw        *bufio.Writer
	addr      string
	idleSince time.Time
	reused    bool
}

// staleAfter is how long a connection may sit idle before it is checked
// for a close by the server at its next use.
const staleAfter = time.Second

// maxInlineBody is the largest request body written before the answer is
// read; a larger or streamed one is written by a goroutine of its own, so
// that an upstream answering while it reads (an echo) cannot deadlock us.
const maxInlineBody = 64 << 10

func newH1Transport(dial func(ctx context.Context, network, addr string) (net.Conn, error)) *h1Transport {
	return &h1Transport{dial: dial, idleTimeout: 90 * time.Second, maxIdle: 1024, idle: map[string][]*h1Conn{}}
}

// staleError marks a failure that happened before the upstream could have
// acted on the request: the request may go out again on a new connection.
type staleError struct{ err error }

func (e *staleError) Error() string { return e.err.Error() }
func (e *staleError) Unwrap() error { return e.err }

// roundTrip sends req to req.URL.Host and returns its answer. The
// response body, read to its end or closed, gives the connection back.
// A 101 answer's body is the upgraded connection (an io.ReadWriteCloser),
// as with http.Transport.
func (t *h1Transport) roundTrip(ctx context.Context, req *http.Request) (*http.Response, error) {
	for {
		pc, err := t.get(ctx, req.URL.Host)
		if err != nil {
			return nil, err
		}
		resp, err := t.exchange(ctx, pc, req)
		if err == nil {
			return resp, nil
		}
		if stale, ok := err.(*staleError); ok {
			if pc.reused && replayable(req) && ctx.Err() == nil {
				if req.GetBody != nil {
					if req.Body, err = req.GetBody(); err != nil {
						return nil, err
					}
				}
				continue
			}
			err = stale.err
		}
		return resp, err
	}
}

// replayable says whether req can be sent again after a connection failed
// under it (http.Transport's rule): its body can be had again, and its
// method is idempotent or it carries an idempotency key.
func replayable(req *http.Request) bool {
	if req.Body != nil && req.Body != http.NoBody && req.GetBody == nil {
		return false
	}
	switch req.Method {
	case "GET", "HEAD", "OPTIONS", "TRACE":
		return true
	}
	_, key := req.Header["Idempotency-Key"]
	_, xkey := req.Header["X-Idempotency-Key"]
	return key || xkey
}

// get returns an idle connection to addr that is still open, or a new one.
func (t *h1Transport) get(ctx context.Context, addr string) (*h1Conn, error) {
	t.mu.Lock()
	for {
		conns := t.idle[addr]
		n := len(conns)
		if n == 0 {
			break
		}
		pc := conns[n-1]
		conns[n-1] = nil
		t.idle[addr] = conns[:n-1]
		if time.Since(pc.idleSince) < staleAfter || pc.alive() {
			t.mu.Unlock()
			pc.reused = true
			return pc, nil
		}
		pc.conn.Close()
	}
	t.mu.Unlock()
	c, err := t.dial(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	lim := &headLimit{conn: c, n: -1}
	return &h1Conn{conn: c, lim: lim, br: bufio.NewReaderSize(lim, 16<<10), bw: bufio.NewWriterSize(c, 16<<10), addr: addr}, nil
}

// maxResponseHeaderBytes caps an answer's head, its 1xx answers included:
// http.Transport's default MaxResponseHeaderBytes. (Without it an upstream
// could make the gateway read one header, or 103s, without end.)
const maxResponseHeaderBytes = 10 << 20

var errResponseHeaderTooLarge = fmt.Errorf("upstream answer's head larger than %d bytes", maxResponseHeaderBytes)

// headLimit is what an upstream connection's bufio.Reader reads from: n
// bytes at most while n >= 0 (an answer's head is read), else no limit.
type headLimit struct {
	conn net.Conn
	n    int64
}

func (l *headLimit) Read(p []byte) (int, error) {
	if l.n < 0 {
		return l.conn.Read(p)
	}
	if l.n == 0 {
		return 0, errResponseHeaderTooLarge
	}
	if int64(len(p)) > l.n {
		p = p[:l.n]
	}
	n, err := l.conn.Read(p)
	l.n -= int64(n)
	return n, err
}

// put keeps pc for the next request to its endpoint.
func (t *h1Transport) put(pc *h1Conn) {
	pc.idleSince = time.Now()
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.idle[pc.addr]) >= t.maxIdle {
		pc.conn.Close()
		return
	}
	t.idle[pc.addr] = append(t.idle[pc.addr], pc)
	if t.sweep == nil {
		t.sweep = time.AfterFunc(t.idleTimeout/2, t.closeExpired)
	}
}

// closeExpired closes the connections idle for longer than idleTimeout;
// it runs while there are idle connections.
func (t *h1Transport) closeExpired() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.sweep = nil
	cutoff := time.Now().Add(-t.idleTimeout)
	left := 0
	for addr, conns := range t.idle {
		// Most recently used last: the expired ones are a prefix.
		i := 0
		for i < len(conns) && conns[i].idleSince.Before(cutoff) {
			conns[i].conn.Close()
			i++
		}
		if i == len(conns) {
			delete(t.idle, addr)
			continue
		}
		t.idle[addr] = append(conns[:0], conns[i:]...)
		left += len(conns) - i
	}
	if left > 0 {
		t.sweep = time.AfterFunc(t.idleTimeout/2, t.closeExpired)
	}
}

// CloseIdleConnections closes the idle connections (the ones in use stay
// open, as with http.Transport).
func (t *h1Transport) CloseIdleConnections() {
	t.mu.Lock()
	defer t.mu.Unlock()
	for addr, conns := range t.idle {
		for _, pc := range conns {
			pc.conn.Close()
		}
		delete(t.idle, addr)
	}
}

// aLongTimeAgo is a deadline in the past: it ends a blocked read or write.
var aLongTimeAgo = time.Unix(1, 0)

// exchange writes req on pc and reads the head of its answer.
func (t *h1Transport) exchange(ctx context.Context, pc *h1Conn, req *http.Request) (resp *http.Response, err error) {
	var stop func() bool
	if ctx.Done() != nil {
		stop = context.AfterFunc(ctx, func() { pc.conn.SetDeadline(aLongTimeAgo) })
	}
	fail := func(err error) (*http.Response, error) {
		if stop != nil {
			stop()
		}
		pc.conn.Close()
		if ctx.Err() != nil {
			return nil, context.Cause(ctx)
		}
		return nil, err
	}
	length := req.ContentLength
	hasBody := req.Body != nil && req.Body != http.NoBody && length != 0
	if !hasBody {
		length = 0
	}
	if err := writeRequestHead(pc.bw, req, length); err != nil {
		return fail(err)
	}
	var bodyDone chan error // set when a goroutine writes the body
	if hasBody {
		if length > 0 && length <= maxInlineBody {
			if err := writeBody(pc.bw, req.Body, length); err != nil {
				return fail(&staleError{err})
			}
		} else {
			if err := pc.bw.Flush(); err != nil {
				return fail(&staleError{err})
			}
			bodyDone = make(chan error, 1)
			go func() {
				src := &bodySource{ReadCloser: req.Body}
				err := writeBody(pc.bw, src, length)
				if src.err != nil {
					// The client's body failed (it stalled, or ended
					// short): the upstream would wait for the rest for
					// ever. Its error first, then the close that ends the
					// wait for the answer.
					bodyDone <- src.err
					pc.conn.Close()
					return
				}
				bodyDone <- err
			}()
		}
	}
	if bodyDone == nil {
		if err := pc.bw.Flush(); err != nil {
			return fail(&staleError{err})
		}
	}
	// Nothing read yet: a failure here is a connection the server closed.
	if _, err := pc.br.Peek(1); err != nil {
		if bodyDone == nil {
			return fail(&staleError{err})
		}
		select {
		case berr := <-bodyDone:
			var se *StatusError
			if errors.As(berr, &se) {
				err = berr // the client's body timed out: its status
			}
		default:
		}
		return fail(err)
	}
	var answerLen int64 // the answer body's, when readHead read the head
	var fast bool
	if resp, answerLen, fast = readHead(pc.br, req); !fast {
		pc.lim.n = maxResponseHeaderBytes - int64(pc.br.Buffered())
		for {
			resp, err = http.ReadResponse(pc.br, req)
			if err != nil {
				pc.lim.n = -1
				return fail(err)
			}
			// Informational answers (100 Continue, 103 Early Hints) are
			// not passed on; the final one follows on the same connection.
			if resp.StatusCode < 100 || resp.StatusCode >= 200 || resp.StatusCode == http.StatusSwitchingProtocols {
				break
			}
		}
		pc.lim.n = -1
		if resp.StatusCode == http.StatusSwitchingProtocols {
			if stop != nil {
				stop()
			}
			resp.Body = &upgradedConn{pc: pc}
			return resp, nil
		}
	}
	body := &h1Body{t: t, pc: pc, body: resp.Body, fixed: lengthBody{br: pc.br, n: answerLen}, stop: stop, ctx: ctx, bodyDone: bodyDone,
		reusable: !resp.Close && !req.Close}
	if resp.Body == http.NoBody {
		body.finish(true)
		return resp, nil
	}
	resp.Body = body
	return resp, nil
}

// skipOutHeader says whether exchange writes a request header itself (or
// not at all) rather than from the header map.
func skipOutHeader(k string) bool {
	switch k {
	case "Host", "Content-Length", "Transfer-Encoding", "Trailer", "Expect":
		return true
	}
	return false
}

// writeRequestHead writes the request line and headers, with the framing
// of a body of length bytes (-1: chunked).
func writeRequestHead(w *bufio.Writer, req *http.Request, length int64) error {
	host := req.Host
	if host == "" {
		host = req.URL.Host
	}
	if !httpguts.ValidHostHeader(host) {
		return fmt.Errorf("invalid Host %q", host)
	}
	w.WriteString(req.Method)
	w.WriteByte(' ')
	w.WriteString(req.URL.RequestURI())
	w.WriteString(" HTTP/1.1\r\nHost: ")
	w.WriteString(host)
	w.WriteString("\r\n")
	for k, vs := range req.Header {
		if skipOutHeader(k) {
			continue
		}
		if !httpguts.ValidHeaderFieldName(k) {
			return fmt.Errorf("invalid header name %q", k)
		}
		for _, v := range vs {
			if k == "User-Agent" && v == "" {
				continue // ReverseProxy's way of saying "send none"
			}
			if !httpguts.ValidHeaderFieldValue(v) {
				return fmt.Errorf("invalid value for header %q", k)
			}
			w.WriteString(k)
			w.WriteString(": ")
			w.WriteString(v)
			w.WriteString("\r\n")
		}
	}
	switch {
	case length < 0:
		w.WriteString("Transfer-Encoding: chunked\r\n")
	case length > 0 || req.Method == "POST" || req.Method == "PUT" || req.Method == "PATCH":
		w.WriteString("Content-Length: ")
		w.WriteString(strconv.FormatInt(length, 10))
		w.WriteString("\r\n")
	}
	_, err := w.WriteString("\r\n")
	return err
}

// writeBody writes a request body of length bytes (-1: chunked) and
// flushes it.
func writeBody(w *bufio.Writer, body io.ReadCloser, length int64) error {
	defer body.Close()
	if length >= 0 {
		n, err := io.Copy(w, io.LimitReader(body, length))
		if err == nil && n < length {
			err = fmt.Errorf("request body: %d bytes of %d", n, length)
		}
		if err != nil {
			return err
		}
		return w.Flush()
	}
	cw := httputil.NewChunkedWriter(w)
	buf := make([]byte, 32<<10)
	for {
		n, err := body.Read(buf)
		if n > 0 {
			if _, werr := cw.Write(buf[:n]); werr != nil {
				return werr
			}
			// A streamed body goes out as it comes (gRPC-Web, uploads
			// with progress).
			if werr := w.Flush(); werr != nil {
				return werr
			}
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			return err
		}
	}
	if err := cw.Close(); err != nil {
		return err
	}
	w.WriteString("\r\n") // no trailers
	return w.Flush()
}

// bodySource is a request body being sent upstream; err is how reading it
// failed, which writing it upstream does not tell apart.
type bodySource struct {
	io.ReadCloser
	err error
}

func (b *bodySource) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if err != nil && err != io.EOF {
		b.err = err
	}
	return n, err
}

// h1Body is an answer's body: at its end the connection goes back to the
// pool when it can carry another request, and is closed otherwise.
type h1Body struct {
	t  *h1Transport
	pc *h1Conn
	// body is http.ReadResponse's (or http.NoBody); without one, the body
	// is fixed, the length readHead read.
	body     io.ReadCloser
	fixed    lengthBody
	stop     func() bool // unregisters the cancellation; nil without one
	ctx      context.Context
	bodyDone chan error // the request body's writer, when it has one
	reusable bool
	done     bool
}

func (b *h1Body) Read(p []byte) (int, error) {
	if b.done {
		return 0, io.EOF
	}
	var n int
	var err error
	if b.body != nil {
		n, err = b.body.Read(p)
	} else {
		n, err = b.fixed.Read(p)
	}
	switch {
	case err == io.EOF:
		b.finish(true)
	case err != nil:
		b.finish(false)
		if b.ctx.Err() != nil {
			err = context.Cause(b.ctx)
		}
	}
	return n, err
}

func (b *h1Body) Close() error {
	if !b.done {
		b.finish(false)
	}
	return nil
}

// finish ends the exchange: the connection is kept when the answer was
// read to its end, the request body was all written, and no cancellation
// touched its deadline.
func (b *h1Body) finish(eof bool) {
	b.done = true
	// Bytes already read past the answer's end (beyond its Content-Length,
	// or a body on a HEAD, 204 or 304 answer) are no answer to anything:
	// kept, they would be read as the next request's answer, perhaps
	// another client's. http.Transport closes such a connection too.
	keep := eof && b.reusable && b.pc.br.Buffered() == 0
	if b.stop != nil && !b.stop() {
		keep = false // the cancellation ran: the deadline is in the past
	}
	if b.bodyDone != nil {
		select {
		case err := <-b.bodyDone:
			keep = keep && err == nil
		default:
			keep = false // still writing: the upstream answered early
		}
	}
	if keep {
		b.t.put(b.pc)
		return
	}
	b.pc.conn.Close()
}

// upgradedConn is the connection of a 101 answer, in both directions.
type upgradedConn struct{ pc *h1Conn }

func (u *upgradedConn) Read(p []byte) (int, error)  { return u.pc.br.Read(p) }
func (u *upgradedConn) Write(p []byte) (int, error) { return u.pc.conn.Write(p) }
func (u *upgradedConn) Close() error                { return u.pc.conn.Close() }
func (u *upgradedConn) CloseWrite() error           { return halfClose(u.pc.conn) }
