package gateway

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"net/http"
	"net/textproto"
	"strings"

	"golang.org/x/net/http/httpguts"
)

// This file reads the common HTTP/1.1 heads for less than net/http's
// http.ReadRequest and http.ReadResponse cost: in a proxy that passes
// small requests, those two and what they build are a sixth of the CPU.
//
// It reads only a plain subset of HTTP/1.1 and leaves everything else to
// net/http, having consumed nothing: the head is whole in the buffer, with
// CRLF line ends; HTTP/1.1; at most one Content-Length and no
// Transfer-Encoding or Trailer; no folded lines; every name a token and
// every value free of control characters. Within that subset the framing
// is the Content-Length alone, so a message cannot be read differently
// here and by net/http (a desync, request smuggling): whatever it is
// unsure of goes to net/http. FuzzReadHead and FuzzReadRequestHead hold
// it to net/http's reading.

// endOfHead ends a head: an empty line.
var endOfHead = []byte("\r\n\r\n")

// bufferedHead returns the head at the front of br's buffer, its last
// line's CRLF included, and its length with the empty line; ok is false
// when the buffer holds no whole head.
func bufferedHead(br *bufio.Reader) (head string, n int, ok bool) {
	buf, _ := br.Peek(br.Buffered())
	end := bytes.Index(buf, endOfHead)
	if end < 0 {
		return "", 0, false
	}
	// The head's strings are one allocation, which the header's values
	// share.
	return string(buf[:end+2]), end + len(endOfHead), true
}

// parseFields reads header lines, each ending in CRLF, into a header with
// canonical names; ok is false at a line outside the subset.
func parseFields(lines string) (h http.Header, ok bool) {
	// One value per line at most: a slice of them backs the header's.
	vals := make([]string, 0, strings.Count(lines, "\r\n"))
	h = make(http.Header, cap(vals))
	for lines != "" {
		var line string
		line, lines, _ = strings.Cut(lines, "\r\n")
		k, v, found := strings.Cut(line, ":")
		if !found || !httpguts.ValidHeaderFieldName(k) {
			return nil, false // a folded line (leading space) is no token either
		}
		v = strings.Trim(v, " \t")
		if !httpguts.ValidHeaderFieldValue(v) {
			return nil, false
		}
		k = textproto.CanonicalMIMEHeaderKey(k) // allocates only when not canonical
		vals = append(vals, v)
		n := len(vals)
		if prev := h[k]; prev != nil {
			h[k] = append(prev, v) // the capacity below makes this a copy
		} else {
			h[k] = vals[n-1 : n : n]
		}
	}
	if h["Transfer-Encoding"] != nil || h["Trailer"] != nil || len(h["Content-Length"]) > 1 {
		return nil, false
	}
	// As net/http does: Pragma: no-cache implies Cache-Control: no-cache
	// (RFC 9111, 5.4).
	if p := h["Pragma"]; len(p) > 0 && p[0] == "no-cache" && h["Cache-Control"] == nil {
		h["Cache-Control"] = []string{"no-cache"}
	}
	return h, true
}

// contentLength is a header's Content-Length (-1 without one); ok is false
// when it is not digits only, at most 18 of them.
func contentLength(h http.Header) (n int64, ok bool) {
	cl := h["Content-Length"]
	if len(cl) == 0 {
		return -1, true
	}
	v := cl[0]
	if v == "" || len(v) > 18 {
		return 0, false
	}
	for _, c := range []byte(v) {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	return n, true
}

// readHead reads an answer's head from br when it is in the subset, and a
// final status other than 204 and 304, to a request other than HEAD, with
// a Content-Length. ok is false, with nothing read, when it is not. The
// answer's body is its length bytes that follow in br (resp.Body is
// http.NoBody for none, else not set).
func readHead(br *bufio.Reader, req *http.Request) (resp *http.Response, length int64, ok bool) {
	if req.Method == "HEAD" {
		return nil, 0, false
	}
	head, n, ok := bufferedHead(br)
	if !ok {
		return nil, 0, false
	}
	line, rest, _ := strings.Cut(head, "\r\n")
	code, status, ok := parseStatusLine(line)
	if !ok {
		return nil, 0, false
	}
	h, ok := parseFields(rest)
	if !ok {
		return nil, 0, false
	}
	if length, ok = contentLength(h); !ok || length < 0 {
		return nil, 0, false // a body to the close: net/http's
	}
	// As net/http's: a close is said by Close, not by the header.
	closing := httpguts.HeaderValuesContainsToken(h["Connection"], "close")
	if closing {
		delete(h, "Connection")
	}
	br.Discard(n)
	var body io.ReadCloser
	if length == 0 {
		body = http.NoBody
	}
	return &http.Response{
		Status:        status,
		StatusCode:    code,
		Proto:         "HTTP/1.1",
		ProtoMajor:    1,
		ProtoMinor:    1,
		Header:        h,
		ContentLength: length,
		Close:         closing,
		Body:          body,
		Request:       req,
	}, length, true
}

// parseStatusLine reads "HTTP/1.1 DDD[ reason]" of a final answer with a
// body (not 1xx, 204 or 304).
func parseStatusLine(line string) (code int, status string, ok bool) {
	status, ok = strings.CutPrefix(line, "HTTP/1.1 ")
	if !ok || len(status) < 3 || (len(status) > 3 && status[3] != ' ') {
		return 0, "", false
	}
	for _, c := range []byte(status[:3]) {
		if c < '0' || c > '9' {
			return 0, "", false
		}
		code = code*10 + int(c-'0')
	}
	if code < 200 || code == http.StatusNoContent || code == http.StatusNotModified {
		return 0, "", false
	}
	if !httpguts.ValidHeaderFieldValue(status) {
		return 0, "", false
	}
	return code, status, true
}

// readRequestHead reads a request's head from br when it is in the subset,
// with a request line "METHOD /path HTTP/1.1" (origin form, printable
// ASCII, no fragment; not CONNECT) and one Host. ok is false, with nothing
// read, when it is not. The request has ctx, and its body is its
// Content-Length bytes that follow in br.
func readRequestHead(br *bufio.Reader, ctx context.Context) (req *http.Request, ok bool) {
	head, n, ok := bufferedHead(br)
	if !ok {
		return nil, false
	}
	line, rest, _ := strings.Cut(head, "\r\n")
	method, line, _ := strings.Cut(line, " ")
	target, proto, _ := strings.Cut(line, " ")
	if proto != "HTTP/1.1" || method == "CONNECT" || !httpguts.ValidHeaderFieldName(method) || !originForm(target) {
		return nil, false
	}
	h, ok := parseFields(rest)
	if !ok || len(h["Host"]) != 1 {
		return nil, false
	}
	length, ok := contentLength(h)
	if !ok {
		return nil, false
	}
	// The request's own context from the start: no copy of it later.
	req, err := http.NewRequestWithContext(ctx, method, target, nil)
	if err != nil {
		return nil, false
	}
	req.RequestURI = target
	req.Host = h["Host"][0]
	delete(h, "Host")
	req.Header = h
	req.Close = httpguts.HeaderValuesContainsToken(h["Connection"], "close")
	req.Body, req.ContentLength = http.NoBody, 0
	if length > 0 {
		req.Body, req.ContentLength = &lengthBody{br: br, n: length}, length
	}
	br.Discard(n)
	return req, true
}

// originForm says whether a request target is a path, with its query,
// that url.Parse and url.ParseRequestURI read alike: it starts with one
// slash, and is printable ASCII without a fragment.
func originForm(target string) bool {
	if !strings.HasPrefix(target, "/") || strings.HasPrefix(target, "//") {
		return false
	}
	for _, c := range []byte(target) {
		if c <= ' ' || c >= 0x7f || c == '#' {
			return false
		}
	}
	return true
}

// lengthBody is a body of n bytes that follow in br.
type lengthBody struct {
	br *bufio.Reader
	n  int64
}

func (b *lengthBody) Read(p []byte) (int, error) {
	if b.n == 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > b.n {
		p = p[:b.n]
	}
	n, err := b.br.Read(p)
	b.n -= int64(n)
	switch {
	case b.n == 0:
		return n, io.EOF
	case err == io.EOF:
		return n, io.ErrUnexpectedEOF // the peer closed short of its length
	}
	return n, err
}

func (b *lengthBody) Close() error { return nil }
