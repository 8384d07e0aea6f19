package gateway

import (
	"bytes"
	"crypto/rand"
	"errors"
	"io"
	"net"
	"os"
	"syscall"
	"testing"
	"time"
)

// tcpPair is a loopback connection: ours through nonblocking, and the
// peer's as net gives it.
func tcpPair(t *testing.T) (ours *nonblockConn, peer *net.TCPConn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, _ := ln.Accept()
		accepted <- c
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	p := <-accepted
	if p == nil {
		t.Fatal("accept failed")
	}
	nc, ok := nonblocking(c).(*nonblockConn)
	if !ok {
		t.Fatal("nonblocking did not wrap a *net.TCPConn")
	}
	t.Cleanup(func() { nc.Close(); p.Close() })
	return nc, p.(*net.TCPConn)
}

// TestNonblockStreams: megabytes each way, more than the socket buffers
// hold, so reads and writes both wait for the netpoller; every byte
// arrives in order.
func TestNonblockStreams(t *testing.T) {
	ours, peer := tcpPair(t)
	data := make([]byte, 8<<20)
	rand.Read(data)

	got := make(chan []byte, 1)
	go func() {
		b, _ := io.ReadAll(peer)
		got <- b
	}()
	if n, err := ours.Write(data); n != len(data) || err != nil {
		t.Fatalf("Write = %d, %v; want %d, nil", n, err, len(data))
	}
	ours.CloseWrite()
	if b := <-got; !bytes.Equal(b, data) {
		t.Fatalf("the peer read %d bytes, not the %d written", len(b), len(data))
	}

	go func() {
		peer.Write(data)
		peer.CloseWrite()
	}()
	var read bytes.Buffer
	buf := make([]byte, 32<<10)
	for {
		n, err := ours.Read(buf)
		read.Write(buf[:n])
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("Read after %d bytes: %v", read.Len(), err)
		}
		if n == 0 {
			t.Fatal("Read returned 0 bytes and no error")
		}
	}
	if !bytes.Equal(read.Bytes(), data) {
		t.Fatalf("read %d bytes, not the %d the peer wrote", read.Len(), len(data))
	}
	if n, err := ours.Read(buf); n != 0 || err != io.EOF {
		t.Errorf("Read after EOF = %d, %v; want 0, EOF", n, err)
	}
}

// TestNonblockErrors: deadlines, Close and a reset give the errors net's
// Read and Write give.
func TestNonblockErrors(t *testing.T) {
	t.Run("read deadline", func(t *testing.T) {
		ours, peer := tcpPair(t)
		ours.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
		_, err := ours.Read(make([]byte, 1))
		var ne net.Error
		if !errors.Is(err, os.ErrDeadlineExceeded) || !errors.As(err, &ne) || !ne.Timeout() {
			t.Fatalf("Read past its deadline: %v, want a timeout", err)
		}
		var oe *net.OpError
		if !errors.As(err, &oe) || oe.Op != "read" {
			t.Errorf("Read past its deadline: %#v, want an *net.OpError with Op read", err)
		}
		// The deadline lifted, the connection reads again.
		ours.SetReadDeadline(time.Time{})
		peer.Write([]byte("x"))
		if n, err := ours.Read(make([]byte, 1)); n != 1 || err != nil {
			t.Errorf("Read once the deadline is lifted = %d, %v; want 1, nil", n, err)
		}
	})
	t.Run("write deadline", func(t *testing.T) {
		ours, _ := tcpPair(t) // the peer reads nothing
		ours.SetWriteDeadline(time.Now().Add(100 * time.Millisecond))
		n, err := ours.Write(make([]byte, 64<<20))
		if !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("Write past its deadline: %d, %v, want a timeout", n, err)
		}
		if n == 0 || n >= 64<<20 {
			t.Errorf("Write past its deadline wrote %d bytes: want what the buffers took", n)
		}
	})
	t.Run("closed while reading", func(t *testing.T) {
		ours, _ := tcpPair(t)
		done := make(chan error, 1)
		go func() {
			_, err := ours.Read(make([]byte, 1))
			done <- err
		}()
		time.Sleep(50 * time.Millisecond)
		ours.Close()
		select {
		case err := <-done:
			if !errors.Is(err, net.ErrClosed) {
				t.Errorf("Read of a connection closed under it: %v, want net.ErrClosed", err)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("Read still blocked 5 s after Close")
		}
	})
	t.Run("reset by the peer", func(t *testing.T) {
		ours, peer := tcpPair(t)
		peer.SetLinger(0)
		peer.Close()
		time.Sleep(50 * time.Millisecond)
		_, err := ours.Read(make([]byte, 1))
		if !errors.Is(err, syscall.ECONNRESET) {
			t.Fatalf("Read after the peer's reset: %v, want ECONNRESET", err)
		}
		var se *os.SyscallError
		if !errors.As(err, &se) || se.Syscall != "read" {
			t.Errorf("Read after the peer's reset: %#v, want an *os.SyscallError of read, as net gives", err)
		}
		if _, err := ours.Write([]byte("x")); err == nil {
			t.Error("Write after the peer's reset succeeded")
		}
	})
	t.Run("not TCP", func(t *testing.T) {
		a, b := net.Pipe()
		defer a.Close()
		defer b.Close()
		if nonblocking(a) != a {
			t.Error("nonblocking wrapped a connection that is not TCP")
		}
	})
}
