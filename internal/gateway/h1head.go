package gateway

import (
	"bufio"
	"bytes"
	"net/http"
	"net/textproto"
	"strings"

	"golang.org/x/net/http/httpguts"
)

// This file reads the common upstream answer's head for less than
// http.ReadResponse costs: in a proxy that answers small requests,
// ReadResponse and the body readers it builds are a tenth of the CPU.
//
// It reads only a plain subset of HTTP/1.1 and leaves everything else to
// http.ReadResponse, having consumed nothing: the head is whole in the
// buffer, with CRLF line ends; HTTP/1.1; a final status other than 204 and
// 304, to a request other than HEAD; one Content-Length; no
// Transfer-Encoding, no Trailer, no folded lines; every name a token and
// every value free of control characters. Within that subset the framing
// is the Content-Length alone, so the subset cannot be read differently
// from net/http (a desync): anything it is unsure of goes to net/http.

// readHead reads an answer's head from br when it is in the subset above.
// ok is false, with nothing read, when it is not. The answer's body is its
// length bytes that follow in br (resp.Body is not set).
func readHead(br *bufio.Reader, req *http.Request) (resp *http.Response, length int64, ok bool) {
	if req.Method == "HEAD" {
		return nil, 0, false
	}
	buf, _ := br.Peek(br.Buffered())
	end := bytes.Index(buf, []byte("\r\n\r\n"))
	if end < 0 {
		return nil, 0, false
	}
	// The strings of the header are one allocation, which its values share.
	head := string(buf[:end+2])
	line, rest, _ := strings.Cut(head, "\r\n")
	code, status, ok := parseStatusLine(line)
	if !ok {
		return nil, 0, false
	}
	// One value per line at most: a slice of them backs the header's.
	vals := make([]string, 0, strings.Count(rest, "\r\n"))
	h := make(http.Header, cap(vals))
	length = -1
	for rest != "" {
		line, rest, _ = strings.Cut(rest, "\r\n")
		k, v, found := strings.Cut(line, ":")
		if !found || !httpguts.ValidHeaderFieldName(k) {
			return nil, 0, false // a folded line (leading space) is no token either
		}
		v = strings.Trim(v, " \t")
		if !httpguts.ValidHeaderFieldValue(v) {
			return nil, 0, false
		}
		k = textproto.CanonicalMIMEHeaderKey(k) // allocates only when not canonical
		switch k {
		case "Transfer-Encoding", "Trailer":
			return nil, 0, false
		case "Content-Length":
			if length >= 0 {
				return nil, 0, false // several: net/http decides
			}
			if length, ok = parseLength(v); !ok {
				return nil, 0, false
			}
		}
		vals = append(vals, v)
		n := len(vals)
		if prev := h[k]; prev != nil {
			h[k] = append(prev, v) // the capacity below makes this a copy
		} else {
			h[k] = vals[n-1 : n : n]
		}
	}
	if length < 0 {
		return nil, 0, false // read to the close: net/http's
	}
	// As net/http's: a close is said by Close, not by the header, and
	// Pragma: no-cache implies Cache-Control: no-cache (RFC 9111, 5.4).
	closing := httpguts.HeaderValuesContainsToken(h["Connection"], "close")
	if closing {
		delete(h, "Connection")
	}
	if p := h["Pragma"]; len(p) > 0 && p[0] == "no-cache" && h["Cache-Control"] == nil {
		h["Cache-Control"] = []string{"no-cache"}
	}
	br.Discard(end + 4)
	return &http.Response{
		Status:        status,
		StatusCode:    code,
		Proto:         "HTTP/1.1",
		ProtoMajor:    1,
		ProtoMinor:    1,
		Header:        h,
		ContentLength: length,
		Close:         closing,
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

// parseLength reads a Content-Length: digits only, at most 18 of them.
func parseLength(v string) (int64, bool) {
	if v == "" || len(v) > 18 {
		return 0, false
	}
	var n int64
	for _, c := range []byte(v) {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	return n, true
}
