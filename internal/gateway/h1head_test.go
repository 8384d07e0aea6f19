package gateway

import (
	"bufio"
	"context"
	"io"
	"net/http"
	"reflect"
	"strings"
	"testing"
)

// TestReadHead checks readHead against http.ReadResponse: what it reads
// it reads as net/http does, and what it leaves it leaves whole.
func TestReadHead(t *testing.T) {
	for _, tc := range []struct {
		name, method, in string
		fast             bool // readHead reads it
	}{
		{"plain", "GET", "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\r\nhello", true},
		{"no reason", "GET", "HTTP/1.1 503\r\nContent-Length: 0\r\n\r\n", true},
		{"empty reason", "GET", "HTTP/1.1 404 \r\nContent-Length: 2\r\n\r\nno", true},
		{"lower-case names", "GET", "HTTP/1.1 200 OK\r\ncontent-length: 2\r\nx-trace-id: a\r\n\r\nok", true},
		{"repeated header", "GET", "HTTP/1.1 200 OK\r\nSet-Cookie: a=1\r\nContent-Length: 0\r\nSet-Cookie: b=2\r\n\r\n", true},
		{"spaces around a value", "POST", "HTTP/1.1 201 Created\r\nLocation: \t /x \r\nContent-Length: 0\r\n\r\n", true},
		{"empty value", "GET", "HTTP/1.1 200 OK\r\nX-Empty:\r\nContent-Length: 0\r\n\r\n", true},
		{"connection close", "GET", "HTTP/1.1 200 OK\r\nConnection: keep-alive, close\r\nContent-Length: 1\r\n\r\nx", true},
		{"pragma", "GET", "HTTP/1.1 200 OK\r\nPragma: no-cache\r\nContent-Length: 0\r\n\r\n", true},
		{"pragma and cache-control", "GET", "HTTP/1.1 200 OK\r\nPragma: no-cache\r\nCache-Control: max-age=5\r\nContent-Length: 0\r\n\r\n", true},
		{"obs-text value", "GET", "HTTP/1.1 200 OK\r\nX-Name: caf\xe9\r\nContent-Length: 0\r\n\r\n", true},
		{"leading zeros in the length", "GET", "HTTP/1.1 200 OK\r\nContent-Length: 002\r\n\r\nok", true},

		{"chunked", "GET", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n", false},
		{"length and chunked", "GET", "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n", false},
		{"two lengths", "GET", "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\nok", false},
		{"differing lengths", "GET", "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nok!", false},
		{"signed length", "GET", "HTTP/1.1 200 OK\r\nContent-Length: +2\r\n\r\nok", false},
		{"no length", "GET", "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nto the close", false},
		{"trailer", "GET", "HTTP/1.1 200 OK\r\nTrailer: X-Sum\r\nContent-Length: 0\r\n\r\n", false},
		{"HEAD", "HEAD", "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n", false},
		{"204", "GET", "HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n", false},
		{"304", "GET", "HTTP/1.1 304 Not Modified\r\nContent-Length: 10\r\n\r\n", false},
		{"100", "GET", "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", false},
		{"101", "GET", "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n", false},
		{"HTTP/1.0", "GET", "HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok", false},
		{"bare LF", "GET", "HTTP/1.1 200 OK\nContent-Length: 2\n\nok\r\n\r\n", false},
		{"bare LF in a header", "GET", "HTTP/1.1 200 OK\r\nX-A: 1\nContent-Length: 9\r\nContent-Length: 2\r\n\r\nok", false},
		{"folded line", "GET", "HTTP/1.1 200 OK\r\nX-A: 1\r\n  2\r\nContent-Length: 2\r\n\r\nok", false},
		{"space before the colon", "GET", "HTTP/1.1 200 OK\r\nContent-Length : 2\r\n\r\nok", false},
		{"control character in a value", "GET", "HTTP/1.1 200 OK\r\nX-A: a\x00b\r\nContent-Length: 2\r\n\r\nok", false},
		{"bare CR in a value", "GET", "HTTP/1.1 200 OK\r\nX-A: a\rContent-Length: 9\r\nContent-Length: 2\r\n\r\nok", false},
		{"non-digit status", "GET", "HTTP/1.1 2x0 OK\r\nContent-Length: 2\r\n\r\nok", false},
		{"long status", "GET", "HTTP/1.1 2000 OK\r\nContent-Length: 2\r\n\r\nok", false},
		{"head not whole in the buffer", "GET", "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req := &http.Request{Method: tc.method}
			br := bufio.NewReader(strings.NewReader(tc.in))
			br.Peek(1) // what the client does before it reads a head
			resp, length, ok := readHead(br, req)
			if ok != tc.fast {
				t.Fatalf("readHead read it: %v, want %v", ok, tc.fast)
			}
			if !ok {
				if br.Buffered() != len(tc.in) {
					t.Fatalf("readHead left %d bytes of %d", br.Buffered(), len(tc.in))
				}
				return
			}
			want, err := http.ReadResponse(bufio.NewReader(strings.NewReader(tc.in)), req)
			if err != nil {
				t.Fatalf("net/http refuses what readHead read: %v", err)
			}
			wantBody, _ := io.ReadAll(want.Body)
			body := make([]byte, length)
			if _, err := io.ReadFull(br, body); err != nil {
				t.Fatalf("body: %v", err)
			}
			if br.Buffered() != 0 {
				t.Errorf("%d bytes left after the body", br.Buffered())
			}
			got := [...]any{resp.Status, resp.StatusCode, resp.Proto, resp.Header, resp.ContentLength, resp.Close, string(body)}
			exp := [...]any{want.Status, want.StatusCode, want.Proto, want.Header, want.ContentLength, want.Close, string(wantBody)}
			if !reflect.DeepEqual(got, exp) {
				t.Errorf("readHead read\n%#v\nnet/http\n%#v", got, exp)
			}
		})
	}
}

// TestReadHeadRepeatedHeaderKeepsValues checks that adding to a repeated
// header copies its values rather than writing into the next header's.
func TestReadHeadRepeatedHeaderKeepsValues(t *testing.T) {
	in := "HTTP/1.1 200 OK\r\nVia: a\r\nX-Next: n\r\nVia: b\r\nContent-Length: 0\r\n\r\n"
	br := bufio.NewReader(strings.NewReader(in))
	br.Peek(1)
	resp, _, ok := readHead(br, &http.Request{Method: "GET"})
	if !ok {
		t.Fatal("not read")
	}
	resp.Header["Via"] = append(resp.Header["Via"], "c") // as a modifier's Add does
	if got := resp.Header["X-Next"]; !reflect.DeepEqual(got, []string{"n"}) {
		t.Errorf("X-Next = %q after adding to Via", got)
	}
	if got := resp.Header["Via"]; !reflect.DeepEqual(got, []string{"a", "b", "c"}) {
		t.Errorf("Via = %q", got)
	}
}

// FuzzReadHead: whatever readHead reads, net/http reads the same way (the
// status, the header, the framing and so the body); whatever it leaves,
// it leaves whole. go test runs the seeds; go test -fuzz FuzzReadHead
// looks further.
func FuzzReadHead(f *testing.F) {
	for _, seed := range []string{
		"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\r\nhello",
		"HTTP/1.1 404 \r\ncontent-length: 2\r\nSet-Cookie: a\r\nSet-Cookie: b\r\n\r\nno",
		"HTTP/1.1 200 OK\r\nConnection: close\r\nPragma: no-cache\r\nContent-Length: 0\r\n\r\n",
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
		"HTTP/1.1 200 OK\r\nX: a\r\n b\r\nContent-Length: 1\r\n\r\nx",
		"HTTP/1.1 500 Oops\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nabc",
	} {
		f.Add(seed, false)
	}
	f.Fuzz(func(t *testing.T, in string, head bool) {
		method := "GET"
		if head {
			method = "HEAD"
		}
		req := &http.Request{Method: method}
		br := bufio.NewReaderSize(strings.NewReader(in), 4096)
		br.Peek(1)
		buffered := br.Buffered()
		resp, length, ok := readHead(br, req)
		if !ok {
			if br.Buffered() != buffered {
				t.Fatalf("readHead left %d of %d buffered bytes", br.Buffered(), buffered)
			}
			return
		}
		want, err := http.ReadResponse(bufio.NewReader(strings.NewReader(in)), req)
		if err != nil {
			t.Fatalf("readHead read %q, net/http refuses it: %v", in, err)
		}
		wantBody, wantErr := io.ReadAll(want.Body)
		body := make([]byte, length)
		_, err = io.ReadFull(br, body)
		if (err != nil) != (wantErr != nil) {
			t.Fatalf("body of %q: readHead's framing says %v, net/http's %v", in, err, wantErr)
		}
		got := [...]any{resp.Status, resp.StatusCode, resp.Header, resp.ContentLength, resp.Close}
		exp := [...]any{want.Status, want.StatusCode, want.Header, want.ContentLength, want.Close}
		if !reflect.DeepEqual(got, exp) {
			t.Fatalf("%q: readHead read\n%#v\nnet/http\n%#v", in, got, exp)
		}
		if err == nil && string(body) != string(wantBody) {
			t.Fatalf("%q: body %q, net/http's %q", in, body, wantBody)
		}
	})
}

// sameRequest fails t unless readRequestHead's reading of in (req, then
// body) is net/http's.
func sameRequest(t *testing.T, in string, req *http.Request, body []byte, bodyErr error) {
	t.Helper()
	want, err := http.ReadRequest(bufio.NewReader(strings.NewReader(in)))
	if err != nil {
		t.Fatalf("readRequestHead read %q, net/http refuses it: %v", in, err)
	}
	wantBody, wantErr := io.ReadAll(want.Body)
	if (bodyErr != nil) != (wantErr != nil) {
		t.Fatalf("body of %q: readRequestHead's framing says %v, net/http's %v", in, bodyErr, wantErr)
	}
	got := [...]any{req.Method, req.RequestURI, req.URL.String(), req.URL.Path, req.URL.RawPath, req.URL.RawQuery,
		req.Proto, req.ProtoMajor, req.ProtoMinor, req.Header, req.Host, req.ContentLength, req.Close, req.TransferEncoding}
	exp := [...]any{want.Method, want.RequestURI, want.URL.String(), want.URL.Path, want.URL.RawPath, want.URL.RawQuery,
		want.Proto, want.ProtoMajor, want.ProtoMinor, want.Header, want.Host, want.ContentLength, want.Close, want.TransferEncoding}
	if !reflect.DeepEqual(got, exp) {
		t.Fatalf("%q: readRequestHead read\n%#v\nnet/http\n%#v", in, got, exp)
	}
	if bodyErr == nil && string(body) != string(wantBody) {
		t.Fatalf("%q: body %q, net/http's %q", in, body, wantBody)
	}
}

// connCtxKey marks the context readFast gives readRequestHead.
type connCtxKey struct{}

// readFast runs readRequestHead on in as the server does (after a first
// read) and reads the body it frames.
func readFast(t *testing.T, in string) (req *http.Request, ok bool, body []byte, bodyErr error) {
	t.Helper()
	br := bufio.NewReaderSize(strings.NewReader(in), 4096)
	br.Peek(1)
	buffered := br.Buffered()
	ctx := context.WithValue(context.Background(), connCtxKey{}, "the connection's")
	req, ok = readRequestHead(br, ctx)
	if !ok {
		if br.Buffered() != buffered {
			t.Fatalf("readRequestHead left %d of %d buffered bytes", br.Buffered(), buffered)
		}
		return nil, false, nil, nil
	}
	if req.Context() != ctx {
		t.Fatal("the request does not have the context given")
	}
	body, bodyErr = io.ReadAll(req.Body)
	return req, true, body, bodyErr
}

// TestReadRequestHead checks readRequestHead against http.ReadRequest:
// what it reads it reads as net/http does, and what it leaves it leaves
// whole.
func TestReadRequestHead(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		fast     bool
	}{
		{"GET", "GET / HTTP/1.1\r\nHost: example.com\r\n\r\n", true},
		{"query and escapes", "GET /a%2Fb/c%20d?x=1&y=%zz HTTP/1.1\r\nHost: example.com:8080\r\nUser-Agent: t\r\n\r\n", true},
		{"POST with a body", "POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Type: text/plain\r\n\r\nhello", true},
		{"zero length", "PUT /x HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n", true},
		{"body short of its length", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nshort", true},
		{"connection close", "GET / HTTP/1.1\r\nHost: x\r\nConnection: keep-alive, close\r\n\r\n", true},
		{"lower-case names, repeated header", "GET / HTTP/1.1\r\nhost: x\r\naccept: a\r\nAccept: b\r\n\r\n", true},
		{"pragma", "GET / HTTP/1.1\r\nHost: x\r\nPragma: no-cache\r\n\r\n", true},
		{"pipelined", "GET /1 HTTP/1.1\r\nHost: x\r\n\r\nGET /2 HTTP/1.1\r\nHost: x\r\n\r\n", true},
		{"custom method", "PURGE /cache HTTP/1.1\r\nHost: x\r\n\r\n", true},

		{"chunked", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n", false},
		{"length and chunked", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n", false},
		{"two lengths", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\nx", false},
		{"signed length", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n", false},
		{"two hosts", "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", false},
		{"no host", "GET / HTTP/1.1\r\nAccept: */*\r\n\r\n", false},
		{"HTTP/1.0", "GET / HTTP/1.0\r\nHost: x\r\n\r\n", false},
		{"absolute form", "GET http://example.com/ HTTP/1.1\r\nHost: x\r\n\r\n", false},
		{"authority form", "CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n", false},
		{"CONNECT with a path", "CONNECT /rpc HTTP/1.1\r\nHost: x\r\n\r\n", false},
		{"asterisk", "OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n", false},
		{"double slash", "GET //evil.example/x HTTP/1.1\r\nHost: x\r\n\r\n", false},
		{"fragment", "GET /a#b HTTP/1.1\r\nHost: x\r\n\r\n", false},
		{"non-ASCII target", "GET /caf\xc3\xa9 HTTP/1.1\r\nHost: x\r\n\r\n", false},
		{"space in the target", "GET /a b HTTP/1.1\r\nHost: x\r\n\r\n", false},
		{"bare LF", "GET / HTTP/1.1\nHost: x\n\n\r\n\r\n", false},
		{"folded line", "GET / HTTP/1.1\r\nHost: x\r\nX-A: 1\r\n 2\r\n\r\n", false},
		{"space before the colon", "GET / HTTP/1.1\r\nHost : x\r\n\r\n", false},
		{"control character in a value", "GET / HTTP/1.1\r\nHost: x\r\nX-A: a\x01b\r\n\r\n", false},
		{"bad method", "G(T / HTTP/1.1\r\nHost: x\r\n\r\n", false},
		{"HTTP/2 preface", "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", false},
		{"head not whole in the buffer", "GET / HTTP/1.1\r\nHost: x\r\n", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, ok, body, bodyErr := readFast(t, tc.in)
			if ok != tc.fast {
				t.Fatalf("readRequestHead read it: %v, want %v", ok, tc.fast)
			}
			if ok {
				sameRequest(t, tc.in, req, body, bodyErr)
			}
		})
	}
}

// FuzzReadRequestHead: whatever readRequestHead reads, net/http reads the
// same way (method, target, URL, header, Host, framing, body); whatever it
// leaves, it leaves whole.
func FuzzReadRequestHead(f *testing.F) {
	for _, seed := range []string{
		"GET /a%2Fb?x=1 HTTP/1.1\r\nHost: example.com\r\nAccept: */*\r\n\r\n",
		"POST /upload HTTP/1.1\r\nhost: x\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello",
		"PUT / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: x\r\nX: a\r\n b\r\nPragma: no-cache\r\n\r\n",
		"GET http://x/ HTTP/1.1\r\nHost: y\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\nz",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, in string) {
		if req, ok, body, bodyErr := readFast(t, in); ok {
			sameRequest(t, in, req, body, bodyErr)
		}
	})
}
