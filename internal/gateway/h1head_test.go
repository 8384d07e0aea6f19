package gateway

import (
	"bufio"
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
