package gateway

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/trace"
)

// maxBufferedBody is the largest request body the gateway holds to retry or
// mirror a request; a larger (or streamed) one is forwarded once and not
// mirrored.
const maxBufferedBody = 1 << 20

// StatusError is an error the gateway answers with a status of its own.
type StatusError struct {
	Code int
	Msg  string
}

func (e *StatusError) Error() string { return fmt.Sprintf("%d %s", e.Code, e.Msg) }

var (
	errNoConfig    = &StatusError{http.StatusServiceUnavailable, "no configuration yet"}
	errNoRoute     = &StatusError{http.StatusNotFound, "no route"}
	errNoEndpoints = &StatusError{http.StatusServiceUnavailable, "no healthy upstream"}
	errPerTry      = &StatusError{http.StatusGatewayTimeout, "upstream per-try timeout"}
	errTimeout     = &StatusError{http.StatusGatewayTimeout, "upstream request timeout"}
	errOverflow    = &StatusError{http.StatusServiceUnavailable, "upstream overflow (circuit breaker)"}
	// errPendingOverflow answers a request that would wait for a connection
	// beyond the cluster's max_pending_requests.
	errPendingOverflow = &StatusError{http.StatusServiceUnavailable, "upstream overflow (circuit breaker: pending requests)"}
)

// writeError is the one place an error becomes a response.
func writeError(w http.ResponseWriter, r *http.Request, err error, log *slog.Logger) {
	var se *StatusError
	switch {
	case errors.As(err, &se):
	case r.Context().Err() != nil:
		se = &StatusError{499, "client closed the request"}
	default:
		var op *net.OpError
		if errors.As(err, &op) && op.Op == "dial" {
			se = &StatusError{http.StatusServiceUnavailable, "upstream connect error"}
		} else {
			se = &StatusError{http.StatusBadGateway, "upstream error"}
		}
		log.Debug("upstream error", "path", r.URL.Path, "err", err)
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	if se == errOverflow || se == errPendingOverflow {
		w.Header().Set("X-Envoy-Overloaded", "true") // as Envoy marks a circuit breaker's answer
	}
	w.WriteHeader(se.Code)
	io.WriteString(w, se.Msg+"\n")
}

// request is what a request learned on its way, for its metrics and its
// access log line, and the parts of its handling that live as long as it:
// allocated together, they cost one allocation rather than one each.
type request struct {
	listener, route, cluster string
	endpoint                 string // the upstream address of the last attempt

	rec   recorder
	out   outbound
	up    upstream
	first attempt // the first attempt (retries make their own)
}

// handler serves one listener port.
func (g *Gateway) handler(port int) http.Handler {
	name := strconv.Itoa(port)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		cfg := g.cfg.Load()
		info := &request{listener: name, rec: recorder{ResponseWriter: w}}
		rec := &info.rec
		var span trace.Span
		if g.tracing != nil {
			r, span = g.tracing.startServer(r)
		}
		err := g.serve(rec, r, cfg, port, info)
		aborted := errors.Is(err, errAbort)
		if err != nil && !aborted {
			writeError(rec, r, err, g.log)
		}
		if span != nil {
			finishServer(span, info, rec.status)
		}
		took := time.Since(start)
		g.metrics.observe(info, rec.status, took)
		if g.access != nil {
			g.access.LogAttrs(context.Background(), slog.LevelInfo, "request",
				slog.String("method", r.Method), slog.String("host", r.Host), slog.String("path", r.URL.RequestURI()),
				slog.String("proto", r.Proto), slog.Int("status", rec.status), slog.Int64("bytes", rec.bytes),
				slog.Float64("duration_ms", float64(took.Microseconds())/1000), slog.String("remote", r.RemoteAddr),
				slog.String("listener", info.listener), slog.String("route", info.route),
				slog.String("cluster", info.cluster), slog.String("upstream", info.endpoint))
		}
		if aborted {
			panic(http.ErrAbortHandler) // the client must see the answer cut
		}
	})
}

// serve runs a request through one config: virtual host, route, action.
func (g *Gateway) serve(w http.ResponseWriter, r *http.Request, cfg *Config, port int, info *request) error {
	if cfg == nil {
		return errNoConfig
	}
	l := cfg.Listeners[port]
	if l == nil || l.Routes == nil {
		return errNoRoute
	}
	info.listener = l.Name
	host := stripPort(r.Host)
	vh := l.Routes.VirtualHost(host)
	if vh == nil {
		return errNoRoute
	}
	route := vh.Route(r, host)
	if route == nil {
		return errNoRoute
	}
	info.route = route.Name
	// The route levels' header modifiers, outermost first (and the
	// weighted cluster's, added by forward), without allocating.
	var levels [4]*HeaderMods
	mods := append(levels[:0], &l.Routes.Headers, &vh.Headers, &route.Headers)
	switch {
	case route.Direct != nil:
		applyResponse(w.Header(), mods)
		if route.Direct.Body != "" {
			w.Header().Set("Content-Type", "text/plain")
		}
		w.WriteHeader(route.Direct.Status)
		io.WriteString(w, route.Direct.Body)
		return nil
	case route.Redirect != nil:
		applyResponse(w.Header(), mods)
		w.Header().Set("Location", redirectLocation(route, r, host))
		w.WriteHeader(route.Redirect.Status)
		return nil
	default:
		return g.forward(w, r, cfg, route, mods, info)
	}
}

func applyResponse(h http.Header, mods []*HeaderMods) {
	for _, m := range mods {
		m.Response.Apply(h)
	}
}

func stripPort(hostport string) string {
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		return h
	}
	return strings.TrimSuffix(strings.TrimPrefix(hostport, "["), "]")
}

// rewritePrefix replaces the part of path a route's prefix match matched.
func rewritePrefix(m *Match, path, repl string) string {
	switch m.PathKind {
	case PathPrefix, PathSeparatedPrefix:
		if len(path) >= len(m.Path) {
			return repl + path[len(m.Path):]
		}
	}
	return repl
}

// redirectLocation is where a redirect route sends a request.
func redirectLocation(route *Route, r *http.Request, host string) string {
	rd := route.Redirect
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	port := ""
	if _, p, err := net.SplitHostPort(r.Host); err == nil {
		port = p
	}
	if rd.Scheme != "" && rd.Scheme != scheme {
		scheme, port = rd.Scheme, ""
	}
	if rd.Host != "" {
		host = rd.Host
	}
	if rd.Port != 0 {
		port = strconv.Itoa(rd.Port)
	}
	if (scheme == "http" && port == "80") || (scheme == "https" && port == "443") {
		port = ""
	}
	path := r.URL.Path
	switch {
	case rd.Path != nil:
		path = *rd.Path
	case rd.PrefixRewrite != nil:
		path = rewritePrefix(&route.Match, path, *rd.PrefixRewrite)
	case rd.RegexRewrite != nil:
		path = rd.RegexRewrite.Apply(path)
	}
	loc := scheme + "://" + host
	if port != "" {
		loc = scheme + "://" + net.JoinHostPort(host, port)
	}
	loc += path
	if !rd.StripQuery && r.URL.RawQuery != "" {
		loc += "?" + r.URL.RawQuery
	}
	return loc
}

// pickCluster picks one of a forward's clusters at random by weight.
func pickCluster(f *Forward) *WeightedCluster {
	if len(f.Clusters) == 1 {
		return &f.Clusters[0]
	}
	n := rand.Uint32N(f.TotalWeight)
	for i := range f.Clusters {
		if n < f.Clusters[i].Weight {
			return &f.Clusters[i]
		}
		n -= f.Clusters[i].Weight
	}
	return &f.Clusters[len(f.Clusters)-1]
}

// forward proxies a request to a cluster of the route.
func (g *Gateway) forward(w http.ResponseWriter, r *http.Request, cfg *Config, route *Route, mods []*HeaderMods, info *request) error {
	f := route.Forward
	wc := pickCluster(f)
	info.cluster = wc.Name
	c := cfg.Clusters[wc.Name]
	if c == nil {
		return &StatusError{f.NotFoundStatus, "cluster not found"}
	}
	if len(c.Endpoints) == 0 || g.noHealthyEndpoints(c) {
		return errNoEndpoints
	}
	if !acquireRequest(c) {
		g.metrics.overflow(c.Name, "requests")
		return errOverflow
	}
	defer releaseRequest(c)
	mods = append(mods, &wc.Headers)
	path := r.URL.Path
	switch {
	case f.PrefixRewrite != nil:
		path = rewritePrefix(&route.Match, path, *f.PrefixRewrite)
	case f.RegexRewrite != nil:
		path = f.RegexRewrite.Apply(path)
	}
	host := r.Host
	if wc.HostRewrite != "" {
		host = wc.HostRewrite
	} else if f.HostRewrite != "" {
		host = f.HostRewrite
	}

	// Hold the body when a retry or a mirror needs it again.
	var mirrors []Mirror
	for _, m := range f.Mirrors {
		if m.Fraction >= 1 || rand.Float64() < m.Fraction {
			mirrors = append(mirrors, m)
		}
	}
	var body []byte
	upgrade := upgradeType(r.Header)
	buffered := r.Body == nil || r.Body == http.NoBody || r.ContentLength == 0
	if !buffered && (f.Retry != nil || len(mirrors) > 0) && r.ContentLength > 0 && r.ContentLength <= maxBufferedBody && upgrade == "" {
		var err error
		if body, err = io.ReadAll(io.LimitReader(r.Body, maxBufferedBody)); err != nil {
			return &StatusError{http.StatusBadRequest, "reading the request body"}
		}
		buffered = true
	}

	ctx := r.Context()
	if f.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeoutCause(ctx, f.Timeout, errTimeout)
		defer cancel()
	}
	if buffered {
		for _, m := range mirrors {
			g.mirror(cfg, m, r, body, path, host, mods)
		}
	}
	hash, hashed := requestHash(f.Hash, r)
	out := outboundRequest(&info.out, r, path, host, mods, body, buffered, upgrade)
	up := &info.up
	*up = upstream{
		pool:     c.pool,
		overflow: g.metrics.overflow,
		outliers: g.outliers,
		log:      g.log,
		cluster:  c,
		retry:    f.Retry,
		body:     body,
		buffered: buffered && upgrade == "",
		info:     info,
		tracing:  g.tracing,
		hash:     hash,
		hashed:   hashed,
		skip:     g.unusable(c),
	}
	resp, err := up.roundTrip(ctx, out)
	if err != nil {
		if errors.Is(context.Cause(ctx), errTimeout) {
			err = errTimeout
		}
		return err
	}
	applyResponse(resp.Header, mods)
	return respond(w, r, resp, upgrade)
}

// copyBuffers are the buffers answers are copied with, as *[]byte: a
// pointer goes in and out of the pool without an allocation.
var copyBuffers = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

// requestHash hashes a request by the first of policies that applies to
// it.
func requestHash(policies []HashPolicy, r *http.Request) (uint64, bool) {
	for _, p := range policies {
		switch {
		case p.Header != "":
			if v := r.Header.Values(p.Header); len(v) > 0 {
				return hashString(strings.Join(v, ",")), true
			}
		case p.Cookie != "":
			if c, err := r.Cookie(p.Cookie); err == nil {
				return hashString(c.Value), true
			}
		case p.SourceIP:
			return hashString(stripPort(r.RemoteAddr)), true
		}
	}
	return 0, false
}

// upstream sends one forward's request: it picks an endpoint of the
// cluster for each attempt, and retries by the route's policy.
type upstream struct {
	pool     *pool
	overflow func(cluster, limit string) // counts a circuit breaker's refusal
	outliers *outliers
	log      *slog.Logger
	cluster  *Cluster
	retry    *RetryPolicy
	body     []byte
	buffered bool
	info     *request
	tracing  *tracing // nil for off
	// hash is the request's hash for a ring-hash cluster, when hashed.
	hash   uint64
	hashed bool
	// skip holds the endpoints the cluster must not use now (ejected or
	// failing their health checks); the attempts add the ones they tried.
	skip map[string]bool
}

func (u *upstream) roundTrip(ctx context.Context, req *http.Request) (*http.Response, error) {
	tries := 1
	if u.retry != nil && u.buffered {
		tries += u.retry.NumRetries
	}
	tried := u.skip
	delay := time.Duration(0)
	var releaseRetry func() // the place of the retry in progress
	defer func() {
		if releaseRetry != nil {
			releaseRetry()
		}
	}()
	for i := 0; ; i++ {
		last := i == tries-1
		if i > 0 {
			if u.retry.BaseDelay > 0 {
				delay = min(max(delay*2, u.retry.BaseDelay), u.retry.MaxDelay)
				jittered := time.Duration(rand.Int64N(int64(delay)) + 1)
				select {
				case <-time.After(jittered):
				case <-ctx.Done():
					return nil, context.Cause(ctx)
				}
			}
		}
		a := &u.info.first
		if i > 0 {
			a = new(attempt)
		}
		*a = attempt{u: u, ep: -1, retry: releaseRetry}
		releaseRetry = nil // the attempt's end gives it back now
		held, err := u.pool.connection(ctx)
		if err != nil {
			a.end()
			if err == errPendingOverflow {
				u.overflow(u.cluster.Name, "pending")
			}
			return nil, err
		}
		a.conn = held
		ep, ok := u.cluster.balancer.acquire(tried, u.hash, u.hashed)
		if !ok {
			a.end()
			return nil, errNoEndpoints
		}
		a.ep = ep
		addr := u.cluster.balancer.eps[ep].Addr
		if !last {
			if tried == nil {
				tried = map[string]bool{}
			}
			tried[addr] = true
		}
		u.info.endpoint = addr
		// The attempts run one after another on the outbound request,
		// which is the gateway's own: each points it at its endpoint. Only
		// a per-try timeout needs a context of the attempt's own.
		tryCtx := ctx
		if u.retry != nil && u.retry.PerTry > 0 {
			tryCtx, a.cancelCtx = context.WithCancel(ctx)
		}
		req.URL.Host = addr
		if u.buffered && u.body != nil {
			req.Body = io.NopCloser(bytes.NewReader(u.body))
		}
		var span trace.Span
		if u.tracing != nil {
			span = u.tracing.startAttempt(ctx, req, u.cluster.Name, addr, i, false)
		}
		// The per-try timeout (Gateway API's backendRequest) runs until the
		// whole answer is in, its body too: the attempt's end stops it.
		if u.retry != nil && u.retry.PerTry > 0 {
			a.timer.Store(time.AfterFunc(u.retry.PerTry, func() {
				a.timedOut.Store(true)
				a.end()
			}))
		}
		resp, err := u.pool.t.roundTrip(tryCtx, req)
		status := 0
		if err == nil {
			status = resp.StatusCode
		}
		if span != nil && (err != nil || (!last && u.retry.retriableStatus(status))) {
			serr := err
			if serr != nil && a.timedOut.Load() {
				serr = errPerTry
			}
			finishAttempt(span, status, serr)
		}
		// A failure of the client's (canceled, its body stalled) says
		// nothing of the endpoint.
		if (err == nil || ctx.Err() == nil && !errors.Is(err, errBodyTimeout)) && u.outliers.report(u.cluster, addr, status) {
			u.log.Info("endpoint ejected", "cluster", u.cluster.Name, "endpoint", addr, "status", status)
		}
		if err != nil {
			a.end()
			if a.timedOut.Load() {
				err = errPerTry
			}
			if !last && ctx.Err() == nil && u.retry.retriableError(a.timedOut.Load()) && u.retryAllowed(&releaseRetry) {
				continue
			}
			return nil, err
		}
		if !last && u.retry.retriableStatus(resp.StatusCode) && u.retryAllowed(&releaseRetry) {
			io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
			resp.Body.Close()
			a.end()
			continue
		}
		a.body = cancelOnClose{ReadCloser: resp.Body, attempt: a, span: span, status: status}
		resp.Body = &a.body
		return resp, nil
	}
}

// attempt is what one try holds until it ends: a request in flight to its
// endpoint, a connection of the pool, a retry's place and, with a per-try
// timeout, its context.
type attempt struct {
	u         *upstream
	ep        int  // the endpoint's index in the balancer, once picked
	conn      bool // holds one of the pool's connections
	retry     func()
	cancelCtx context.CancelFunc
	timer     atomic.Pointer[time.Timer] // the per-try timeout's, if any (set after it starts)
	timedOut  atomic.Bool                // the per-try timeout ended it
	ended     atomic.Bool
	body      cancelOnClose // the answer's body, when one came
}

// end gives back what the attempt holds; it may be called more than once
// (a per-try timeout and the failure it causes).
func (a *attempt) end() {
	if a.ended.Swap(true) {
		return
	}
	if t := a.timer.Load(); t != nil {
		t.Stop()
	}
	if a.cancelCtx != nil {
		a.cancelCtx()
	}
	if a.ep >= 0 {
		a.u.cluster.balancer.release(a.ep)
	}
	if a.conn {
		a.u.pool.releaseConnection()
	}
	if a.retry != nil {
		a.retry()
	}
}

// retryAllowed takes a place for a retry in the cluster's max_retries,
// into *release; false (counted) when they are all in flight: the failure
// is then returned as it is.
func (u *upstream) retryAllowed(release *func()) bool {
	r, ok := u.pool.retry()
	if !ok {
		u.overflow(u.cluster.Name, "retries")
		return false
	}
	*release = r
	return true
}

// cancelOnClose ends an attempt (and its span) with its response body. It
// writes through to the body too: the body of a 101 response is the
// upgraded connection, which the tunnel writes to.
type cancelOnClose struct {
	io.ReadCloser
	attempt *attempt
	// span, when tracing, is the attempt's span, ended with the body.
	span   trace.Span
	status int
}

func (c *cancelOnClose) Write(p []byte) (int, error) {
	w, ok := c.ReadCloser.(io.Writer)
	if !ok {
		return 0, errors.New("gateway: the response body is not writable")
	}
	return w.Write(p)
}

// CloseWrite passes a tunnel's half-close on to the upgraded connection.
func (c *cancelOnClose) CloseWrite() error { return halfClose(c.ReadCloser) }

func (c *cancelOnClose) Close() error {
	err := c.ReadCloser.Close()
	if c.span != nil {
		finishAttempt(c.span, c.status, nil)
	}
	c.attempt.end()
	return err
}

// mirror sends a copy of a request to a cluster and forgets the answer.
// Its Host gets "-shadow" appended, as Envoy does.
func (g *Gateway) mirror(cfg *Config, m Mirror, r *http.Request, body []byte, path, host string, mods []*HeaderMods) {
	c := cfg.Clusters[m.Cluster]
	if c == nil {
		return
	}
	addr, ok := c.balancer.pick(g.unusable(c))
	if !ok {
		return
	}
	h := make(http.Header, len(r.Header))
	connection := r.Header["Connection"]
	for k, vs := range r.Header {
		if !isHopHeader(k, connection) {
			h[k] = slices.Clone(vs)
		}
	}
	for _, mod := range mods {
		mod.Request.Apply(h)
	}
	t := c.pool
	parent := trace.SpanContextFromContext(r.Context())
	g.bg.Go(func() {
		ctx, cancel := context.WithTimeout(g.bgCtx, 30*time.Second)
		defer cancel()
		if parent.IsValid() {
			ctx = trace.ContextWithSpanContext(ctx, parent)
		}
		u := *r.URL
		u.Scheme, u.Host, u.Path, u.RawPath = "http", addr, path, ""
		req, err := http.NewRequest(r.Method, u.String(), bytes.NewReader(body))
		if err != nil {
			return
		}
		req.Header = h
		req.Host = stripPort(host) + "-shadow"
		var span trace.Span
		if g.tracing != nil {
			span = g.tracing.startAttempt(ctx, req, m.Cluster, addr, 0, true)
		}
		resp, err := t.t.roundTrip(ctx, req)
		if span != nil {
			status := 0
			if err == nil {
				status = resp.StatusCode
			}
			finishAttempt(span, status, err)
		}
		if err != nil {
			g.log.Debug("mirror failed", "cluster", m.Cluster, "err", err)
			return
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	})
}

// recorder remembers the status a response was written with.
type recorder struct {
	http.ResponseWriter
	status int
	bytes  int64
}

func (r *recorder) WriteHeader(code int) {
	if r.status == 0 || r.status < 200 {
		r.status = code
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *recorder) Write(b []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	n, err := r.ResponseWriter.Write(b)
	r.bytes += int64(n)
	return n, err
}

// Flush lets streamed responses through.
func (r *recorder) Flush() {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	http.NewResponseController(r.ResponseWriter).Flush()
}

// Unwrap lets http.ResponseController reach the connection (upgrades).
func (r *recorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }
