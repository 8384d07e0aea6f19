package gateway

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"

	"golang.org/x/net/http/httpguts"
)

// This file relays a request to an upstream and its answer back, as
// httputil.ReverseProxy would, without its second copy of the request and
// of its header: hop-by-hop headers stay behind, X-Forwarded-* are set,
// trailers follow the body, a streamed answer is flushed as it comes, and
// an upgrade (WebSocket) becomes a tunnel.

// errAbort says the answer had started when the relay failed: the only way
// left to tell the client is to cut the answer (http.ErrAbortHandler).
var errAbort = errors.New("answer cut short")

// isHopHeader says whether k (canonical) is hop-by-hop (RFC 9110, 7.6.1),
// a header a proxy does not pass on, or one the message's Connection
// header names.
func isHopHeader(k string, connection []string) bool {
	switch k {
	case "Connection", "Proxy-Connection", "Keep-Alive", "Proxy-Authenticate", "Proxy-Authorization", "Te", "Trailer", "Transfer-Encoding", "Upgrade":
		return true
	}
	return len(connection) > 0 && httpguts.HeaderValuesContainsToken(connection, k)
}

// noUserAgent asks http.Transport (HTTP/2 upstreams) to send no
// User-Agent rather than Go's; the HTTP/1.1 client leaves an empty one out.
// Shared: header modifiers replace a value slice, never write into it.
var noUserAgent = []string{""}

// upgradeType is the protocol a request or answer upgrades to, or "".
//
// An upgrade to h2c counts as none: it is neither passed upstream nor
// tunnelled (RFC 9113 deprecates it). An upstream that accepted it would
// serve the client HTTP/2 over the tunnel, any path, past the routes and
// their filters ("h2c smuggling"); net/http's HTTP/2 serves h2c by prior
// knowledge alone too.
func upgradeType(h http.Header) string {
	if !httpguts.HeaderValuesContainsToken(h["Connection"], "Upgrade") {
		return ""
	}
	up := h.Get("Upgrade")
	if strings.EqualFold(strings.TrimSpace(up), "h2c") {
		return ""
	}
	return up
}

// outbound is the request sent upstream with the parts it points to, so
// that they cost one allocation (a request's, see request).
type outbound struct {
	req http.Request
	url url.URL
	xf  [3]string // the X-Forwarded-For, -Host and -Proto values
}

// outboundRequest makes o the request sent upstream for r: r's header
// without the hop-by-hop ones, with X-Forwarded-For/-Host/-Proto and the
// routes' modifiers; path and host as the route rewrote them; the body
// held in body when buffered; the upgrade (upgradeType) it asks for.
//
// r's header becomes the outbound request's, changed in place: a proxy
// that copies it pays a map per request. Whoever needs r's header as the
// client sent it (mirrors, hashing, matching) reads it before.
//
// It carries no context: the transports take the request's with it, which
// spares a copy of the request (http.Request.WithContext) per request.
func outboundRequest(o *outbound, r *http.Request, path, host string, mods []*HeaderMods, body []byte, buffered bool, upgrade string) *http.Request {
	h := r.Header
	if h == nil {
		h = http.Header{}
	}
	connection := h["Connection"]
	te := h["Te"]
	prior := h["X-Forwarded-For"]
	for k := range h {
		if isHopHeader(k, connection) || k == "Forwarded" || k == "X-Forwarded-For" || k == "X-Forwarded-Host" || k == "X-Forwarded-Proto" {
			delete(h, k)
		}
	}
	if upgrade != "" {
		h["Connection"] = []string{"Upgrade"}
		h["Upgrade"] = []string{upgrade}
	}
	if httpguts.HeaderValuesContainsToken(te, "trailers") {
		h["Te"] = []string{"trailers"}
	}
	if _, ok := h["User-Agent"]; !ok {
		h["User-Agent"] = noUserAgent
	}
	client, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		client = r.RemoteAddr
	}
	if len(prior) > 0 {
		client = strings.Join(prior, ", ") + ", " + client
	}
	proto := "http"
	if r.TLS != nil {
		proto = "https"
	}
	// Capacity-capped: a modifier's Add appends to a copy.
	o.xf = [...]string{client, r.Host, proto}
	h["X-Forwarded-For"] = o.xf[0:1:1]
	h["X-Forwarded-Host"] = o.xf[1:2:2]
	h["X-Forwarded-Proto"] = o.xf[2:3:3]
	for _, m := range mods {
		m.Request.Apply(h)
	}
	o.url = url.URL{Scheme: "http", Path: path, RawQuery: r.URL.RawQuery}
	o.req = http.Request{
		Method:        r.Method,
		URL:           &o.url,
		Proto:         "HTTP/1.1",
		ProtoMajor:    1,
		ProtoMinor:    1,
		Header:        h,
		Host:          host,
		Body:          r.Body,
		ContentLength: r.ContentLength,
		Trailer:       r.Trailer,
	}
	out := &o.req
	switch {
	case r.ContentLength == 0 || r.Body == nil || r.Body == http.NoBody:
		out.Body, out.ContentLength = nil, 0
	case buffered:
		out.ContentLength = int64(len(body))
		out.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(body)), nil }
		out.Body, _ = out.GetBody()
	}
	return out
}

// respond writes an upstream's answer to w: its header without the
// hop-by-hop ones, its body (flushed as it comes when it is streamed:
// unknown length or server-sent events), then its trailers. upgrade is
// what the request asked to upgrade to (upgradeType), if anything.
func respond(w http.ResponseWriter, r *http.Request, resp *http.Response, upgrade string) error {
	if resp.StatusCode == http.StatusSwitchingProtocols {
		return tunnel(w, r, resp, upgrade)
	}
	defer resp.Body.Close()
	h := w.Header()
	connection := resp.Header["Connection"]
	for k, vs := range resp.Header {
		if !isHopHeader(k, connection) {
			h[k] = vs
		}
	}
	announced := len(resp.Trailer)
	if announced > 0 {
		keys := make([]string, 0, announced)
		for k := range resp.Trailer {
			keys = append(keys, k)
		}
		h["Trailer"] = []string{strings.Join(keys, ", ")}
	}
	w.WriteHeader(resp.StatusCode)
	streamed := resp.ContentLength < 0 || strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream")
	if err := copyBody(w, resp.Body, streamed); err != nil {
		return fmt.Errorf("%w: %v", errAbort, err)
	}
	if len(resp.Trailer) > 0 {
		if len(resp.Trailer) == announced {
			for k, vs := range resp.Trailer {
				h[k] = vs
			}
		} else {
			// Trailers nobody announced (gRPC's) go by net/http's prefix.
			for k, vs := range resp.Trailer {
				h[http.TrailerPrefix+k] = vs
			}
		}
	}
	return nil
}

// copyBody copies an answer's body, flushing after each piece when
// streamed.
func copyBody(w http.ResponseWriter, body io.Reader, streamed bool) error {
	bp := copyBuffers.Get().(*[]byte)
	defer copyBuffers.Put(bp)
	buf := *bp
	var rc *http.ResponseController
	if streamed {
		rc = http.NewResponseController(w)
	}
	for {
		n, rerr := body.Read(buf)
		if n > 0 {
			if _, err := w.Write(buf[:n]); err != nil {
				return err
			}
			if streamed {
				if err := rc.Flush(); err != nil {
					return err
				}
			}
		}
		if rerr == io.EOF {
			return nil
		}
		if rerr != nil {
			return rerr
		}
	}
}

// tunnel answers an upgrade to want the upstream accepted: it takes the
// client's connection, writes the 101 and copies both ways until both
// sides are done or the request's context ends. A side that ends its
// sending cleanly (a half-close) has it passed on, and the other way goes
// on, as a TCP proxy does; a side that fails ends both.
func tunnel(w http.ResponseWriter, r *http.Request, resp *http.Response, want string) error {
	back, ok := resp.Body.(io.ReadWriteCloser)
	if !ok {
		resp.Body.Close()
		return &StatusError{http.StatusBadGateway, "upstream upgrade without a connection"}
	}
	defer back.Close()
	// A 101 to a request that asked for no upgrade is refused too (both
	// types are "" then): the client's connection must not become a raw
	// tunnel to the upstream. ReverseProxy answers it 502 as well.
	if got := upgradeType(resp.Header); want == "" || !strings.EqualFold(want, got) {
		return &StatusError{http.StatusBadGateway, fmt.Sprintf("upstream switched to protocol %q when %q was asked", got, want)}
	}
	rec, _ := w.(*recorder)
	conn, brw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		return &StatusError{http.StatusInternalServerError, "cannot take the connection over for the upgrade"}
	}
	defer conn.Close()
	if rec != nil {
		rec.status = http.StatusSwitchingProtocols
	}
	stop := context.AfterFunc(r.Context(), func() { back.Close() })
	defer stop()
	writeStatusLine(brw.Writer, http.StatusSwitchingProtocols)
	writeHeaders(brw.Writer, resp.Header)
	brw.WriteString("\r\n")
	if err := brw.Flush(); err != nil {
		return nil // the client went away: nothing to tell it
	}
	errc := make(chan error, 2)
	go func() {
		_, err := io.Copy(back, brw.Reader)
		if err == nil {
			err = halfClose(back)
		}
		errc <- err
	}()
	go func() {
		_, err := io.Copy(conn, back)
		if err == nil {
			err = halfClose(conn)
		}
		errc <- err
	}()
	if err := <-errc; err == nil {
		<-errc // one way is done and said so: the other goes on
	}
	return nil
}

// halfClose ends the sending side of c's connection, when it has one to
// end alone.
func halfClose(c any) error {
	if cw, ok := c.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return errors.ErrUnsupported
}
