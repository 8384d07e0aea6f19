package gateway

import (
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// HTTP/2 streams get the HTTP/1 connection's body and write timeouts:
// a request body that sends nothing for bodyTimeout ends with 408, and an
// answer the client takes nothing of for writeTimeout is reset. net/http's
// per-stream deadlines are absolute (a quiet gRPC stream would be cut as
// soon as one passed) and each change is a message to the connection's
// goroutine; a stallWatch instead times only a read or write in progress,
// with one timer per stream that fires once per timeout, and moves the
// stream's deadline into the past only to end a stalled one.

// serveH2 serves one HTTP/2 stream with the stall timeouts.
func (s *portServer) serveH2(w http.ResponseWriter, r *http.Request) {
	rc := http.NewResponseController(w)
	var body *h2Body
	if r.Body != nil && r.Body != http.NoBody {
		body = &h2Body{rc: r.Body, watch: stallWatch{timeout: s.bodyTimeout, expire: func() { rc.SetReadDeadline(aLongTimeAgo) }}}
		r.Body = body
	}
	hw := &h2Writer{ResponseWriter: w, rc: rc, watch: stallWatch{timeout: s.writeTimeout, expire: func() { rc.SetWriteDeadline(aLongTimeAgo) }}}
	defer func() {
		hw.watch.stop()
		if body != nil {
			body.watch.stop()
		}
	}()
	s.handler.ServeHTTP(hw, r)
}

// h2Body is a stream's request body: a read that waits longer than the
// body timeout fails with errBodyTimeout.
type h2Body struct {
	rc    io.ReadCloser
	watch stallWatch
}

func (b *h2Body) Read(p []byte) (int, error) {
	b.watch.begin()
	n, err := b.rc.Read(p)
	b.watch.end()
	if err != nil && isTimeout(err) {
		err = errBodyTimeout
	}
	return n, err
}

func (b *h2Body) Close() error { return b.rc.Close() }

// h2Writer is a stream's ResponseWriter: a write or flush that waits longer
// than the write timeout (the client's flow-control window stays shut)
// resets the stream.
type h2Writer struct {
	http.ResponseWriter
	rc    *http.ResponseController // the stream's own, for flushes
	watch stallWatch
}

func (w *h2Writer) Write(p []byte) (int, error) {
	w.watch.begin()
	defer w.watch.end()
	return w.ResponseWriter.Write(p)
}

func (w *h2Writer) FlushError() error {
	w.watch.begin()
	defer w.watch.end()
	return w.rc.Flush()
}

// Unwrap lets http.ResponseController reach the stream's own writer.
func (w *h2Writer) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// monoEpoch anchors stallWatch's monotonic clock readings.
var monoEpoch = time.Now()

// stallWatch calls expire once an operation has been in progress for
// timeout. Operations run one at a time; begin and end may be called from
// any goroutine, as may stop.
type stallWatch struct {
	timeout time.Duration
	expire  func()
	since   atomic.Int64 // monotonic ns at which the operation in progress began; 0: none

	mu      sync.Mutex
	timer   *time.Timer // made at the first begin
	stopped bool
}

func (w *stallWatch) begin() {
	if w.timeout <= 0 {
		return
	}
	w.since.Store(max(int64(time.Since(monoEpoch)), 1))
	w.mu.Lock()
	if w.timer == nil && !w.stopped {
		w.timer = time.AfterFunc(w.timeout, w.check)
	}
	w.mu.Unlock()
}

func (w *stallWatch) end() { w.since.Store(0) }

// check runs on the timer: it expires an operation that has waited the
// timeout, or looks again when the one in progress would reach it.
func (w *stallWatch) check() {
	next := w.timeout
	if since := w.since.Load(); since != 0 {
		waited := time.Duration(int64(time.Since(monoEpoch)) - since)
		if waited >= w.timeout {
			w.expire()
			return
		}
		next = w.timeout - waited
	}
	w.mu.Lock()
	if !w.stopped {
		w.timer.Reset(next)
	}
	w.mu.Unlock()
}

func (w *stallWatch) stop() {
	w.mu.Lock()
	w.stopped = true
	if w.timer != nil {
		w.timer.Stop()
	}
	w.mu.Unlock()
}
