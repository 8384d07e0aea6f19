package probe

import (
	"context"
	"net"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"go.uber.org/goleak"
)

// TestMain fails the package when an attempt leaves a goroutine behind: every
// attempt must close what it opened.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// testTimeout bounds the attempts that must time out; slow is how much later
// than that they may end on a loaded machine and still count as "about the
// timeout".
const (
	testTimeout = 300 * time.Millisecond
	slow        = 2 * time.Second
)

// run runs hc against addr and fails the test unless the attempt gave want.
func run(t *testing.T, addr string, hc Check, want State) Result {
	t.Helper()
	res := Run(context.Background(), addr, hc)
	if res.State != want {
		t.Fatalf("state = %q, want %q (output %q)", res.State, want, res.Output)
	}
	checkOutput(t, res.Output)
	return res
}

// checkOutput fails the test unless output fits an Endpoint's status.
func checkOutput(t *testing.T, output string) {
	t.Helper()
	if output == "" {
		t.Error("output is empty")
	}
	if len(output) > MaxOutput {
		t.Errorf("output is %d bytes, more than %d", len(output), MaxOutput)
	}
	if !utf8.ValidString(output) {
		t.Errorf("output is not valid UTF-8: %q", output)
	}
}

// runTimed is run for attempts against servers that never answer: it also
// fails the test unless the attempt ended within about the timeout.
func runTimed(t *testing.T, addr string, hc Check, want State) Result {
	t.Helper()
	start := time.Now()
	res := run(t, addr, hc, want)
	if took := time.Since(start); took < testTimeout || took > testTimeout+slow {
		t.Errorf("attempt took %s, want about the timeout %s", took, testTimeout)
	}
	if !strings.Contains(res.Output, "timed out after "+testTimeout.String()) {
		t.Errorf("output %q does not say it timed out after %s", res.Output, testTimeout)
	}
	return res
}

// listen listens on addr ("127.0.0.1:0") or fails the test.
func listen(t *testing.T, addr string) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	return ln
}

// closedAddr returns an address on 127.0.0.1 that nothing listens on.
func closedAddr(t *testing.T) string {
	t.Helper()
	ln := listen(t, "127.0.0.1:0")
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// hangingListener accepts connections and never writes to them; they are
// closed when the test ends.
func hangingListener(t *testing.T) string {
	t.Helper()
	ln := listen(t, "127.0.0.1:0")
	var (
		mu    sync.Mutex
		conns []net.Conn // guarded by mu
		wg    sync.WaitGroup
	)
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		wg.Wait()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	})
	return ln.Addr().String()
}

func TestTCP(t *testing.T) {
	t.Run("listening", func(t *testing.T) {
		addr := hangingListener(t)
		res := run(t, addr, Check{TCP: &TCP{}, Timeout: testTimeout}, Passing)
		if want := "TCP connect " + addr + ": Success"; res.Output != want {
			t.Errorf("output = %q, want %q", res.Output, want)
		}
	})
	t.Run("closed", func(t *testing.T) {
		addr := closedAddr(t)
		res := run(t, addr, Check{TCP: &TCP{}, Timeout: testTimeout}, Critical)
		if want := "TCP connect " + addr + ": connect: connection refused"; res.Output != want {
			t.Errorf("output = %q, want %q", res.Output, want)
		}
	})
}

// TestRunOddInput checks that checks that make no sense give a critical
// result saying why, and never a panic.
func TestRunOddInput(t *testing.T) {
	addr := hangingListener(t)
	tests := []struct {
		name string
		hc   Check
		want string // in the output
	}{
		{"no expected statuses", Check{HTTP: &HTTP{Path: "/"}, Timeout: testTimeout}, "no expected statuses"},
		{"no kind", Check{Timeout: testTimeout}, "exactly one of http, tcp and grpc"},
		{"two kinds", Check{TCP: &TCP{}, GRPC: &GRPC{}, Timeout: testTimeout}, "exactly one of http, tcp and grpc"},
		{"zero timeout", Check{TCP: &TCP{}, Timeout: 0}, "invalid timeout 0s"},
		{"negative timeout", Check{TCP: &TCP{}, Timeout: -time.Second}, "invalid timeout -1s"},
		{"relative path", Check{HTTP: &HTTP{Path: "@example.com/", ExpectedStatuses: okStatuses}, Timeout: testTimeout}, `path "@example.com/" must start with /`},
		{"bad header value", Check{HTTP: &HTTP{Path: "/", ExpectedStatuses: okStatuses, Headers: map[string]string{"X-A": "a\r\nb"}}, Timeout: testTimeout}, "invalid header field value"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := run(t, addr, tt.hc, Critical)
			if !strings.Contains(res.Output, tt.want) {
				t.Errorf("output = %q, want it to contain %q", res.Output, tt.want)
			}
		})
	}
	t.Run("bad address", func(t *testing.T) {
		for _, addr := range []string{"", "[::1", "127.0.0.1:99999", "127.0.0.1:-1"} {
			for _, hc := range []Check{
				httpCheck("/"),
				{TCP: &TCP{}, Timeout: testTimeout},
				{GRPC: &GRPC{}, Timeout: testTimeout},
			} {
				run(t, addr, hc, Critical)
			}
		}
	})
}

// TestRunCancelled checks that the caller's context bounds an attempt too,
// and that its cancelling is not reported as the check's timeout.
func TestRunCancelled(t *testing.T) {
	addr := hangingListener(t)
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	hc := httpCheck("/")
	hc.Timeout = time.Minute
	res := Run(ctx, addr, hc)
	if took := time.Since(start); took > slow {
		t.Errorf("attempt took %s after its context ended at 100ms", took)
	}
	if res.State != Critical || strings.Contains(res.Output, "timed out after") {
		t.Errorf("result = %+v, want critical without the check's timeout", res)
	}
}

func TestClip(t *testing.T) {
	max := MaxOutput
	tests := []struct {
		name string
		in   string
		cut  bool
	}{
		{"short", "ok", false},
		{"exactly the limit", strings.Repeat("a", max), false},
		{"one byte over", strings.Repeat("a", max+1), true},
		{"multibyte across the cut", strings.Repeat("é", max), true},
		{"three-byte runes across the cut", "x" + strings.Repeat("€", max), true},
		{"invalid UTF-8", "a\xffb", false},
		{"invalid UTF-8 that grows past the limit", strings.Repeat("\xffa", max/2), true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := clip(tt.in)
			checkOutput(t, got)
			if cut := strings.HasSuffix(got, cutNote); cut != tt.cut {
				t.Errorf("cut = %v, want %v (%d bytes in, %d out)", cut, tt.cut, len(tt.in), len(got))
			}
			if tt.cut && len(got) < max-len(cutNote)-utf8.UTFMax {
				t.Errorf("cut output is %d bytes, want about %d", len(got), max)
			}
			if !tt.cut && utf8.ValidString(tt.in) && got != tt.in {
				t.Errorf("clip changed %q to %q", tt.in, got)
			}
		})
	}
}
