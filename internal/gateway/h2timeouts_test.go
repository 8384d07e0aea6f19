package gateway

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// h2cClient speaks HTTP/2 in cleartext from the first byte.
func h2cClient(t *testing.T) *http.Client {
	tr := &http.Transport{Protocols: new(http.Protocols)}
	tr.Protocols.SetUnencryptedHTTP2(true)
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr}
}

// writeMuch writes 64 MiB, far more than any window or socket buffer
// holds, and sends the first write error (or nil) to werr.
func writeMuch(werr chan<- error) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		chunk := make([]byte, 64<<10)
		for range 1024 {
			if _, err := w.Write(chunk); err != nil {
				werr <- err
				return
			}
		}
		werr <- nil
	})
}

// expectWriteFailed waits for writeMuch's write to fail, as the 300ms
// write timeout makes it.
func expectWriteFailed(t *testing.T, werr <-chan error) {
	t.Helper()
	select {
	case err := <-werr:
		if err == nil {
			t.Fatal("the handler wrote 64 MiB to a client that read nothing")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the handler's write still blocked 5 s after the 300ms write timeout")
	}
}

func shortStallTimeouts(s *portServer) {
	s.bodyTimeout, s.writeTimeout = 300*time.Millisecond, 300*time.Millisecond
}

// TestH2BodyTimeout: an HTTP/2 request body that stalls half-way gets 408
// after the body timeout, and the upstream connection that waited for the
// rest is closed, as over HTTP/1.
func TestH2BodyTimeout(t *testing.T) {
	checkLeaks(t)
	up, upstreamDone := startBodyUpstream(t)
	ts := startServer(t, relayTo(newTestTransport(t), up.addr), nil, shortStallTimeouts)
	pr, pw := io.Pipe()
	defer pw.Close()
	go pw.Write([]byte(strings.Repeat("x", 512))) // half of it, then nothing
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "POST", "http://"+ts.addr+"/", pr)
	req.ContentLength = 1024
	start := time.Now()
	resp, err := h2cClient(t).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	took := time.Since(start)
	if resp.ProtoMajor != 2 || resp.StatusCode != http.StatusRequestTimeout {
		t.Errorf("body stalled half-way: %s %d, want HTTP/2 408", resp.Proto, resp.StatusCode)
	}
	if took < 250*time.Millisecond || took > 3*time.Second {
		t.Errorf("answered after %v, want the 300ms body timeout", took)
	}
	select {
	case <-upstreamDone:
	case <-time.After(waitFor):
		t.Error("the upstream connection is still open")
	}
}

// TestH2QuietStreamLasts: only a read or write in progress is timed. A
// handler that waits longer than both timeouts between reads, and between
// writes, still reads the whole body and sends the whole answer.
func TestH2QuietStreamLasts(t *testing.T) {
	checkLeaks(t)
	ts := startServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		first := make([]byte, 1)
		if _, err := io.ReadFull(r.Body, first); err != nil {
			t.Errorf("first read: %v", err)
		}
		time.Sleep(700 * time.Millisecond)
		rest, err := io.ReadAll(r.Body)
		if err != nil {
			t.Errorf("read after a pause longer than the body timeout: %v", err)
		}
		io.WriteString(w, string(first)+string(rest)+" ")
		http.NewResponseController(w).Flush()
		time.Sleep(700 * time.Millisecond)
		io.WriteString(w, "later")
	}), nil, shortStallTimeouts)
	resp, err := h2cClient(t).Post("http://"+ts.addr+"/", "text/plain", strings.NewReader("body"))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	got, err := io.ReadAll(resp.Body)
	if err != nil || string(got) != "body later" {
		t.Errorf("answer %q, %v; want %q", got, err, "body later")
	}
}

// TestH2WriteTimeout: a client that takes nothing of an answer (its
// flow-control window stays shut) has the stream reset after the write
// timeout: the handler's write fails instead of waiting for ever.
func TestH2WriteTimeout(t *testing.T) {
	checkLeaks(t)
	werr := make(chan error, 1)
	ts := startServer(t, writeMuch(werr), nil, shortStallTimeouts)
	resp, err := h2cClient(t).Get("http://" + ts.addr + "/")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close() // read nothing of it
	expectWriteFailed(t, werr)
}

// TestH2ConnectionWriteTimeout: a client that stops reading its connection
// altogether (its windows wide open, so the stream's flow control never
// stops the answer) is dropped, and the handler's write fails. Without the
// connection's write timeout the write would wait for ever, the stream's
// reset queued behind the blocked connection write; with it firing after
// the stream's, the connection would stay open.
func TestH2ConnectionWriteTimeout(t *testing.T) {
	checkLeaks(t)
	werr := make(chan error, 1)
	ts := startServer(t, writeMuch(werr), nil, shortStallTimeouts)
	c, err := net.Dial("tcp", ts.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	io.WriteString(c, http2.ClientPreface)
	fr := http2.NewFramer(c, c)
	fr.WriteSettings(http2.Setting{ID: http2.SettingInitialWindowSize, Val: 1<<31 - 1})
	fr.WriteWindowUpdate(0, 1<<31-1-65535)
	var head bytes.Buffer
	enc := hpack.NewEncoder(&head)
	for _, f := range [][2]string{{":method", "GET"}, {":scheme", "http"}, {":authority", "x"}, {":path", "/"}} {
		enc.WriteField(hpack.HeaderField{Name: f[0], Value: f[1]})
	}
	fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: head.Bytes(), EndStream: true, EndHeaders: true})
	// From here on nothing is read.
	expectWriteFailed(t, werr)
	// The connection is closed: what the server had sent ends. (Read only
	// now: reading sooner would let its writes go on.)
	time.Sleep(time.Second)
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.Copy(io.Discard, c); isTimeout(err) {
		t.Error("the connection is still open 5 s after the write timeout")
	}
}
