package registry

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/sluice/sluice/internal/probe"
	"github.com/sluice/sluice/internal/resource"
)

// TestProbeOutputFitsStatus: what package probe returns fits an Endpoint's
// status as it is.
func TestProbeOutputFitsStatus(t *testing.T) {
	if probe.MaxOutput > resource.MaxCheckOutput {
		t.Fatalf("probe.MaxOutput = %d, more than an Endpoint status keeps (%d)", probe.MaxOutput, resource.MaxCheckOutput)
	}
}

func TestProbeTarget(t *testing.T) {
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
			wantErr: errNoPort,
		},
		{
			name:    "no ports",
			ep:      endpoint("10.0.0.1", nil, nil),
			wantErr: errNoPort,
		},
		{name: "no address", ep: endpoint("", ports, nil)},
		{name: "port out of range", ep: endpoint("10.0.0.1", []resource.EndpointPort{{Port: 0}}, nil)},
		{name: "nil endpoint", ep: nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := target(tt.ep)
			if tt.want != "" {
				if err != nil || got != tt.want {
					t.Fatalf("target = %q, %v; want %q, nil", got, err, tt.want)
				}
				return
			}
			if err == nil {
				t.Fatalf("target = %q, nil; want an error", got)
			}
			if tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
				t.Fatalf("target error = %v; want one wrapping %v", err, tt.wantErr)
			}
		})
	}
}

// TestProbeTargetThenRun checks an Endpoint end to end over IPv6: target's
// bracketed address is one the checks dial.
func TestProbeTargetThenRun(t *testing.T) {
	ln, err := net.Listen("tcp", "[::1]:0")
	if err != nil {
		t.Skipf("no IPv6 loopback: %v", err)
	}
	var code atomic.Int32
	code.Store(http.StatusServiceUnavailable)
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(int(code.Load()))
	}))
	srv.Listener.Close()
	srv.Listener = ln
	srv.Start()
	t.Cleanup(srv.Close)
	addr := ln.Addr().String()
	p := ln.Addr().(*net.TCPAddr).Port
	hc := &resource.HealthCheck{HTTP: &resource.HTTPHealthCheck{Path: "/healthz"}, Port: "admin"}
	ep := endpoint("::1", []resource.EndpointPort{{Name: "http", Port: 1}, {Name: "admin", Port: int32(p)}}, hc)
	got, err := target(ep)
	if err != nil || got != addr {
		t.Fatalf("target = %q, %v; want %q, nil", got, err, addr)
	}
	runWant(t, got, hc, resource.CheckCritical)
	code.Store(http.StatusOK)
	runWant(t, got, hc, resource.CheckPassing)
	runWant(t, got, &resource.HealthCheck{TCP: &resource.TCPHealthCheck{}}, resource.CheckPassing)
}

// TestProbeDefaults: a check that has not been through the store runs with
// the store's defaults (path /, 200-399, a 2s timeout).
func TestProbeDefaults(t *testing.T) {
	var code atomic.Int32
	code.Store(http.StatusNoContent)
	var path atomic.Value
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		path.Store(r.URL.Path)
		w.WriteHeader(int(code.Load()))
	}))
	t.Cleanup(srv.Close)
	addr := srv.Listener.Addr().String()
	hc := &resource.HealthCheck{HTTP: &resource.HTTPHealthCheck{}}
	runWant(t, addr, hc, resource.CheckPassing)
	if p := path.Load(); p != "/" {
		t.Errorf("path = %q, want /", p)
	}
	code.Store(http.StatusBadRequest)
	runWant(t, addr, hc, resource.CheckCritical)
	if hc.Timeout != nil || hc.HTTP.Path != "" {
		t.Errorf("the caller's check was changed: %+v", hc)
	}
	slow := &resource.HealthCheck{TCP: &resource.TCPHealthCheck{}, Timeout: &metav1.Duration{Duration: -time.Second}}
	if res := runProbe(context.Background(), addr, slow); res.State != resource.CheckCritical {
		t.Errorf("negative timeout: %+v, want critical", res)
	}
	if res := runProbe(context.Background(), addr, nil); res.State != resource.CheckCritical {
		t.Errorf("no check: %+v, want critical", res)
	}
}

func runWant(t *testing.T, addr string, hc *resource.HealthCheck, want resource.CheckState) {
	t.Helper()
	if res := runProbe(context.Background(), addr, hc); res.State != want {
		t.Fatalf("state = %q, want %q (output %q)", res.State, want, res.Output)
	}
}

func endpoint(addr string, ports []resource.EndpointPort, hc *resource.HealthCheck) *resource.Endpoint {
	ep := &resource.Endpoint{Spec: resource.EndpointSpec{Address: addr, Ports: ports, HealthCheck: hc}}
	ep.Namespace, ep.Name = "default", "web-1"
	return ep
}
