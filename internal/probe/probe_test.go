package probe

import (
	"context"
	"errors"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"go.uber.org/goleak"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/sluice/sluice/internal/resource"
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

func timeout(d time.Duration) *metav1.Duration { return &metav1.Duration{Duration: d} }

// run runs hc against addr and fails the test unless the attempt gave want.
func run(t *testing.T, addr string, hc *resource.HealthCheck, want resource.CheckState) Result {
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
	if len(output) > resource.MaxCheckOutput {
		t.Errorf("output is %d bytes, more than %d", len(output), resource.MaxCheckOutput)
	}
	if !utf8.ValidString(output) {
		t.Errorf("output is not valid UTF-8: %q", output)
	}
}

// runTimed is run for attempts against servers that never answer: it also
// fails the test unless the attempt ended within about the timeout.
func runTimed(t *testing.T, addr string, hc *resource.HealthCheck, want resource.CheckState) Result {
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

func TestTarget(t *testing.T) {
	ports := []resource.EndpointPort{{Name: "http", Port: 8080}, {Name: "admin", Port: 9901}}
	tests := []struct {
		name    string
		ep      *resource.Endpoint
		want    string
		wantErr error // nil: any error will do when want is ""
	}{
		{
			name: "named port",
			ep:   endpoint("10.0.0.1", ports, &resource.HealthCheck{Port: "admin"}),
			want: "10.0.0.1:9901",
		},
		{
			name: "a port number that names no port",
			ep:   endpoint("10.0.0.1", ports, &resource.HealthCheck{Port: "8081"}),
			want: "10.0.0.1:8081",
		},
		{
			name: "first port when the check names none",
			ep:   endpoint("10.0.0.1", ports, &resource.HealthCheck{}),
			want: "10.0.0.1:8080",
		},
		{
			name: "first port without a health check",
			ep:   endpoint("10.0.0.1", ports, nil),
			want: "10.0.0.1:8080",
		},
		{
			name: "single unnamed port",
			ep:   endpoint("10.0.0.1", []resource.EndpointPort{{Port: 80}}, &resource.HealthCheck{}),
			want: "10.0.0.1:80",
		},
		{
			name: "IPv6 in brackets",
			ep:   endpoint("fd00::1", ports, &resource.HealthCheck{Port: "http"}),
			want: "[fd00::1]:8080",
		},
		{
			name: "IPv6 loopback",
			ep:   endpoint("::1", ports, nil),
			want: "[::1]:8080",
		},
		{
			name: "hostname",
			ep:   endpoint("api.internal.example", ports, &resource.HealthCheck{Port: "admin"}),
			want: "api.internal.example:9901",
		},
		{
			name:    "missing port name",
			ep:      endpoint("10.0.0.1", ports, &resource.HealthCheck{Port: "grpc"}),
			wantErr: ErrNoPort,
		},
		{
			name:    "no ports",
			ep:      endpoint("10.0.0.1", nil, nil),
			wantErr: ErrNoPort,
		},
		{name: "no address", ep: endpoint("", ports, nil)},
		{name: "port out of range", ep: endpoint("10.0.0.1", []resource.EndpointPort{{Port: 0}}, nil)},
		{name: "nil endpoint", ep: nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Target(tt.ep)
			if tt.want != "" {
				if err != nil || got != tt.want {
					t.Fatalf("Target = %q, %v; want %q, nil", got, err, tt.want)
				}
				return
			}
			if err == nil {
				t.Fatalf("Target = %q, nil; want an error", got)
			}
			if tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
				t.Fatalf("Target error = %v; want one wrapping %v", err, tt.wantErr)
			}
		})
	}
}

// TestTargetThenRun checks an Endpoint end to end over IPv6: Target's
// bracketed address is one every kind of check dials.
func TestTargetThenRun(t *testing.T) {
	ln, err := net.Listen("tcp", "[::1]:0")
	if err != nil {
		t.Skipf("no IPv6 loopback: %v", err)
	}
	ln.Close()
	addr, hs := grpcServerOn(t, "[::1]:0")
	hs.SetServingStatus("", healthpb.HealthCheckResponse_NOT_SERVING)
	_, port, _ := net.SplitHostPort(addr)
	p, _ := strconv.Atoi(port)
	ep := endpoint("::1", []resource.EndpointPort{{Name: "http", Port: 1}, {Name: "grpc", Port: int32(p)}}, grpcCheck(""))
	ep.Spec.HealthCheck.Port = "grpc"
	got, err := Target(ep)
	if err != nil || got != addr {
		t.Fatalf("Target = %q, %v; want %q, nil", got, err, addr)
	}
	run(t, got, ep.Spec.HealthCheck, resource.CheckCritical)
	hs.SetServingStatus("", healthpb.HealthCheckResponse_SERVING)
	run(t, got, ep.Spec.HealthCheck, resource.CheckPassing)
	run(t, got, &resource.HealthCheck{TCP: &resource.TCPHealthCheck{}}, resource.CheckPassing)
}

func endpoint(addr string, ports []resource.EndpointPort, hc *resource.HealthCheck) *resource.Endpoint {
	ep := &resource.Endpoint{Spec: resource.EndpointSpec{Address: addr, Ports: ports, HealthCheck: hc}}
	ep.Namespace, ep.Name = "default", "web-1"
	return ep
}

func TestTCP(t *testing.T) {
	t.Run("listening", func(t *testing.T) {
		addr := hangingListener(t)
		res := run(t, addr, &resource.HealthCheck{TCP: &resource.TCPHealthCheck{}}, resource.CheckPassing)
		if want := "TCP connect " + addr + ": Success"; res.Output != want {
			t.Errorf("output = %q, want %q", res.Output, want)
		}
	})
	t.Run("closed", func(t *testing.T) {
		addr := closedAddr(t)
		res := run(t, addr, &resource.HealthCheck{TCP: &resource.TCPHealthCheck{}}, resource.CheckCritical)
		if want := "TCP connect " + addr + ": connect: connection refused"; res.Output != want {
			t.Errorf("output = %q, want %q", res.Output, want)
		}
	})
}

// TestRunOddInput checks that checks the store would reject give a critical
// result saying why, and never a panic.
func TestRunOddInput(t *testing.T) {
	addr := hangingListener(t)
	tests := []struct {
		name string
		hc   *resource.HealthCheck
		want string // in the output
	}{
		{"nil check", nil, "no health check"},
		{"no kind", &resource.HealthCheck{}, "exactly one of http, tcp and grpc"},
		{"two kinds", &resource.HealthCheck{TCP: &resource.TCPHealthCheck{}, GRPC: &resource.GRPCHealthCheck{}}, "exactly one of http, tcp and grpc"},
		{"zero timeout", &resource.HealthCheck{TCP: &resource.TCPHealthCheck{}, Timeout: timeout(0)}, "invalid timeout 0s"},
		{"negative timeout", &resource.HealthCheck{TCP: &resource.TCPHealthCheck{}, Timeout: timeout(-time.Second)}, "invalid timeout -1s"},
		{"relative path", &resource.HealthCheck{HTTP: &resource.HTTPHealthCheck{Path: "@example.com/"}}, `path "@example.com/" must start with /`},
		{"bad header value", &resource.HealthCheck{HTTP: &resource.HTTPHealthCheck{Headers: map[string]string{"X-A": "a\r\nb"}}}, "invalid header field value"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := run(t, addr, tt.hc, resource.CheckCritical)
			if !strings.Contains(res.Output, tt.want) {
				t.Errorf("output = %q, want it to contain %q", res.Output, tt.want)
			}
		})
	}
	t.Run("bad address", func(t *testing.T) {
		for _, addr := range []string{"", "[::1", "127.0.0.1:99999", "127.0.0.1:-1"} {
			for _, hc := range []*resource.HealthCheck{
				{HTTP: &resource.HTTPHealthCheck{}, Timeout: timeout(testTimeout)},
				{TCP: &resource.TCPHealthCheck{}, Timeout: timeout(testTimeout)},
				{GRPC: &resource.GRPCHealthCheck{}, Timeout: timeout(testTimeout)},
			} {
				run(t, addr, hc, resource.CheckCritical)
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
	res := Run(ctx, addr, &resource.HealthCheck{HTTP: &resource.HTTPHealthCheck{}, Timeout: timeout(time.Minute)})
	if took := time.Since(start); took > slow {
		t.Errorf("attempt took %s after its context ended at 100ms", took)
	}
	if res.State != resource.CheckCritical || strings.Contains(res.Output, "timed out after") {
		t.Errorf("result = %+v, want critical without the check's timeout", res)
	}
}

func TestClip(t *testing.T) {
	max := resource.MaxCheckOutput
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
