package gateway

import (
	"context"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// Envoy's circuit breaker defaults, for a threshold a cluster leaves unset.
const (
	defaultMaxConnections     = 1024
	defaultMaxPendingRequests = 1024
	defaultMaxRequests        = 1024
	defaultMaxRetries         = 3
)

// Limits are a cluster's circuit breaker thresholds (Envoy's, at the
// default priority); 0 is no limit.
type Limits struct {
	// MaxConnections is the most connections its pool holds upstream.
	MaxConnections int
	// MaxPendingRequests is the most requests that wait for a connection;
	// one more is answered 503 at once.
	MaxPendingRequests int
	// MaxRequests is the most requests in flight to it.
	MaxRequests int
	// MaxRetries is the most retries in flight to it; a failure that
	// would be retried beyond it is returned as it is.
	MaxRetries int
}

// gate counts holders up to a limit given at each acquire (a config swap
// may change it while holders are in).
type gate struct {
	mu   sync.Mutex // guards n, wake, watched
	n    int
	wake chan struct{} // closed and replaced when a holder leaves
	// watched says someone took wake since it was last replaced (so an
	// uncontended release allocates nothing).
	watched bool
}

func newGate() *gate { return &gate{wake: make(chan struct{})} }

// tryAcquire takes a place if fewer than limit (0: no limit) hold one.
func (g *gate) tryAcquire(limit int) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if limit > 0 && g.n >= limit {
		return false
	}
	g.n++
	return true
}

// waiter is the channel closed when a place may have come free.
func (g *gate) waiter() <-chan struct{} {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.watched = true
	return g.wake
}

func (g *gate) release() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.n--
	if g.watched {
		close(g.wake)
		g.wake, g.watched = make(chan struct{}), false
	}
}

// acquire waits for a place until ctx ends.
func (g *gate) acquire(ctx context.Context, limit int) error {
	for {
		wake := g.waiter()
		if g.tryAcquire(limit) {
			return nil
		}
		select {
		case <-wake:
		case <-ctx.Done():
			return context.Cause(ctx)
		}
	}
}

// roundTripper is a pool's client: the gateway's own for HTTP/1.1
// (h1client.go), net/http's for HTTP/2 (it multiplexes). The request's
// context comes beside it (see outboundRequest).
type roundTripper interface {
	roundTrip(ctx context.Context, req *http.Request) (*http.Response, error)
	CloseIdleConnections()
}

// h2Transport is net/http's client as a roundTripper.
type h2Transport struct{ *http.Transport }

func (t h2Transport) roundTrip(ctx context.Context, req *http.Request) (*http.Response, error) {
	return t.RoundTrip(req.WithContext(ctx))
}

// pool is a cluster's upstream connection pool: its transport, with the
// connections it holds capped at max_connections across all endpoints
// (http.Transport's MaxConnsPerHost is per endpoint), and the cluster's
// pending requests and retries in flight. It outlives config swaps.
type pool struct {
	t      roundTripper
	dialer *net.Dialer
	h2     bool
	limits atomic.Pointer[Limits] // the limits of the config in force
	// conns counts the open connections (and dials in progress).
	conns *gate
	// slots counts the HTTP/1.1 requests holding a connection: one each.
	slots   *gate
	pending atomic.Int64
	retries *gate
}

func newPool(h2 bool) *pool {
	p := &pool{h2: h2, dialer: &net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}, conns: newGate(), slots: newGate(), retries: newGate()}
	p.limits.Store(&Limits{})
	if !h2 {
		p.t = newH1Transport(p.dial)
		return p
	}
	t := &http.Transport{
		DialContext:        p.dial,
		MaxIdleConns:       1024,
		IdleConnTimeout:    90 * time.Second,
		DisableCompression: true,
		Protocols:          new(http.Protocols),
	}
	t.Protocols.SetUnencryptedHTTP2(true)
	p.t = h2Transport{t}
	return p
}

// dial opens a connection when the pool holds fewer than max_connections;
// otherwise it closes the idle ones and waits for one to close.
func (p *pool) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	for {
		wake := p.conns.waiter()
		if p.conns.tryAcquire(p.limits.Load().MaxConnections) {
			break
		}
		p.t.CloseIdleConnections()
		// A connection dialed for a request that took another one goes
		// idle without waking us: look again shortly.
		tick := time.NewTimer(10 * time.Millisecond)
		select {
		case <-wake:
		case <-tick.C:
		case <-ctx.Done():
			tick.Stop()
			return nil, context.Cause(ctx)
		}
		tick.Stop()
	}
	c, err := p.dialer.DialContext(ctx, network, addr)
	if err != nil {
		p.conns.release()
		return nil, err
	}
	return &countedConn{Conn: nonblocking(c), release: sync.OnceFunc(p.conns.release)}, nil
}

// countedConn gives back its place in the pool when closed.
type countedConn struct {
	net.Conn
	release func()
}

// CloseWrite ends the sending side alone (a tunnel's half-close).
func (c *countedConn) CloseWrite() error { return halfClose(c.Conn) }

func (c *countedConn) Close() error {
	err := c.Conn.Close()
	c.release()
	return err
}

// connection takes, for an HTTP/1.1 attempt, one of the pool's
// max_connections (an HTTP/1.1 connection carries one request at a time),
// waiting as a pending request when none is free. It returns
// errPendingOverflow at once when max_pending_requests already wait. An
// HTTP/2 pool multiplexes: its attempts take no place (the dial cap still
// holds).
func (p *pool) connection(ctx context.Context) (held bool, err error) {
	if p.h2 {
		return false, nil
	}
	l := p.limits.Load()
	if !p.slots.tryAcquire(l.MaxConnections) {
		if n := p.pending.Add(1); l.MaxPendingRequests > 0 && n > int64(l.MaxPendingRequests) {
			p.pending.Add(-1)
			return false, errPendingOverflow
		}
		err := p.slots.acquire(ctx, l.MaxConnections)
		p.pending.Add(-1)
		if err != nil {
			return false, err
		}
	}
	return true, nil
}

// releaseConnection gives back a connection connection took.
func (p *pool) releaseConnection() { p.slots.release() }

// retry takes a place for a retry; false when max_retries are in flight.
func (p *pool) retry() (release func(), ok bool) {
	if !p.retries.tryAcquire(p.limits.Load().MaxRetries) {
		return nil, false
	}
	return sync.OnceFunc(p.retries.release), true
}
