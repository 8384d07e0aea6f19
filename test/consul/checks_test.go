package consule2e

import (
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"
	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/sluice/sluice/internal/server"
)

// flipTimeout bounds how long a check takes to see a backend change: a
// couple of intervals (Consul's minimum, 1s, which the facade applies too)
// and the status write.
const flipTimeout = 5 * time.Second

// portOf is the port of a listener's address.
func portOf(t *testing.T, addr net.Addr) int {
	t.Helper()
	_, p, err := net.SplitHostPort(addr.String())
	if err != nil {
		t.Fatal(err)
	}
	n, _ := strconv.Atoi(p)
	return n
}

// TestActiveChecks: HTTP, TCP and gRPC checks, registered through the
// Consul client, run against real servers; as each server flips between
// healthy and not, its instance flips between passing and critical.
func TestActiveChecks(t *testing.T) {
	t.Parallel()
	s := start(t, server.Config{}, "")
	register := func(t *testing.T, name string, port int, check *api.AgentServiceCheck) {
		t.Helper()
		check.Interval, check.Timeout = "100ms", "500ms" // raised to 1s, as Consul does
		reg := &api.AgentServiceRegistration{ID: name + "-1", Name: name, Address: "127.0.0.1", Port: port, Check: check}
		if err := s.consul.Agent().ServiceRegister(reg); err != nil {
			t.Fatal(err)
		}
	}
	flip := func(t *testing.T, name string, healthy func(bool)) {
		t.Helper()
		id := name + "-1"
		took := waitHealth(t, s.consul, name, true, flipTimeout, id+" passing")
		t.Logf("passing %v after registering", took.Round(time.Millisecond))
		healthy(false)
		took = waitHealth(t, s.consul, name, false, flipTimeout, id+" critical")
		t.Logf("critical %v after the backend failed", took.Round(time.Millisecond))
		healthy(true)
		took = waitHealth(t, s.consul, name, true, flipTimeout, id+" passing")
		t.Logf("passing %v after the backend recovered", took.Round(time.Millisecond))
	}

	t.Run("http", func(t *testing.T) {
		t.Parallel()
		var code atomic.Int32
		code.Store(http.StatusOK)
		var sawHeader atomic.Value
		backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			sawHeader.Store(r.Header.Get("X-Check"))
			w.WriteHeader(int(code.Load()))
			fmt.Fprintf(w, "status %d", code.Load())
		}))
		t.Cleanup(backend.Close)
		port := portOf(t, backend.Listener.Addr())
		register(t, "http-svc", port, &api.AgentServiceCheck{
			HTTP: fmt.Sprintf("http://127.0.0.1:%d/health", port), Header: map[string][]string{"X-Check": {"consul"}},
		})
		flip(t, "http-svc", func(ok bool) {
			if ok {
				code.Store(http.StatusOK)
			} else {
				code.Store(http.StatusInternalServerError)
			}
		})
		if h, _ := sawHeader.Load().(string); h != "consul" {
			t.Errorf("the check sent X-Check %q, want the registered header \"consul\"", h)
		}
		checks, _, err := s.consul.Health().Checks("http-svc", nil)
		if err != nil || len(checks) != 1 || checks[0].Type != "http" || checks[0].Output == "" || checks[0].Definition.IntervalDuration != time.Second {
			t.Errorf("health checks of http-svc: %v, %v; want one http check with output, every 1s", checks, err)
		}
	})

	t.Run("tcp", func(t *testing.T) {
		t.Parallel()
		var mu sync.Mutex
		var ln net.Listener
		listen := func(addr string) {
			l, err := net.Listen("tcp", addr)
			if err != nil {
				t.Fatalf("listen on %s: %v", addr, err)
			}
			mu.Lock()
			ln = l
			mu.Unlock()
			go func() {
				for {
					c, err := l.Accept()
					if err != nil {
						return
					}
					c.Close()
				}
			}()
		}
		listen("127.0.0.1:0")
		addr := ln.Addr().String()
		t.Cleanup(func() {
			mu.Lock()
			defer mu.Unlock()
			ln.Close()
		})
		register(t, "tcp-svc", portOf(t, ln.Addr()), &api.AgentServiceCheck{TCP: addr})
		flip(t, "tcp-svc", func(ok bool) {
			if ok {
				listen(addr) // the same port again
				return
			}
			mu.Lock()
			defer mu.Unlock()
			ln.Close()
		})
	})

	t.Run("grpc", func(t *testing.T) {
		t.Parallel()
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		hs := health.NewServer()
		gs := grpc.NewServer()
		healthpb.RegisterHealthServer(gs, hs)
		go gs.Serve(ln)
		t.Cleanup(gs.Stop)
		hs.SetServingStatus("greeter.v1.Greeter", healthpb.HealthCheckResponse_SERVING)
		port := portOf(t, ln.Addr())
		register(t, "grpc-svc", port, &api.AgentServiceCheck{GRPC: fmt.Sprintf("127.0.0.1:%d/greeter.v1.Greeter", port)})
		flip(t, "grpc-svc", func(ok bool) {
			st := healthpb.HealthCheckResponse_NOT_SERVING
			if ok {
				st = healthpb.HealthCheckResponse_SERVING
			}
			hs.SetServingStatus("greeter.v1.Greeter", st)
		})
	})

	// A check on a port of its own (a health port that serves no traffic):
	// the instance serves on one port and is checked on another.
	t.Run("health port", func(t *testing.T) {
		t.Parallel()
		var code atomic.Int32
		code.Store(http.StatusOK)
		backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(int(code.Load()))
		}))
		t.Cleanup(backend.Close)
		healthPort := portOf(t, backend.Listener.Addr())
		register(t, "admin-svc", 9, &api.AgentServiceCheck{HTTP: fmt.Sprintf("http://localhost:%d/ready", healthPort)})
		flip(t, "admin-svc", func(ok bool) {
			if ok {
				code.Store(http.StatusOK)
			} else {
				code.Store(http.StatusServiceUnavailable)
			}
		})
		entries, _, err := s.consul.Health().Service("admin-svc", "", true, nil)
		if err != nil || len(entries) != 1 || entries[0].Service.Port != 9 {
			t.Errorf("admin-svc: %v, %v; want one instance on its service port 9", entries, err)
		}
	})
}
