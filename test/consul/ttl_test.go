package consule2e

import (
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/sluice/sluice/internal/server"
)

// heartbeater keeps a TTL check alive with a state, as an application
// does, until stopped.
type heartbeater struct {
	stop chan struct{}
	done chan struct{}
	mu   sync.Mutex // guards state, last
	// state is the status sent: pass, warn or fail.
	state string
	last  time.Time // when the last heartbeat was acknowledged
}

func startHeartbeats(t *testing.T, c *api.Client, checkID, state string, every time.Duration) *heartbeater {
	t.Helper()
	h := &heartbeater{stop: make(chan struct{}), done: make(chan struct{}), state: state}
	go func() {
		defer close(h.done)
		tick := time.NewTicker(every)
		defer tick.Stop()
		for {
			h.mu.Lock()
			state := h.state
			h.mu.Unlock()
			if err := c.Agent().UpdateTTL(checkID, "state "+state, state); err != nil {
				t.Errorf("heartbeat %s: %v", checkID, err)
			} else {
				h.mu.Lock()
				h.last = time.Now()
				h.mu.Unlock()
			}
			select {
			case <-h.stop:
				return
			case <-tick.C:
			}
		}
	}()
	t.Cleanup(func() { h.halt() })
	return h
}

func (h *heartbeater) set(state string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.state = state
}

// halt stops the heartbeats and returns when the last one was acknowledged.
func (h *heartbeater) halt() time.Time {
	select {
	case <-h.stop:
	default:
		close(h.stop)
	}
	<-h.done
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.last
}

// TestTTLCheck: an instance registered with a TTL check is passing while it
// heartbeats passing, out of the passing list (but listed, warning) while it
// heartbeats warning, critical once its heartbeats stop for the TTL, passing
// again when they resume, and gone once deregistered.
func TestTTLCheck(t *testing.T) {
	t.Parallel()
	s := start(t, server.Config{}, "")
	agent := s.consul.Agent()
	reg := &api.AgentServiceRegistration{
		ID: "web-1", Name: "web", Port: 8080, Address: "127.0.0.1",
		Tags: []string{"primary"}, Meta: map[string]string{"version": "1.2"},
		Check: &api.AgentServiceCheck{TTL: "1s", Notes: "the app heartbeats"},
	}
	if err := agent.ServiceRegister(reg); err != nil {
		t.Fatal(err)
	}
	svcs, err := agent.Services()
	if err != nil {
		t.Fatal(err)
	}
	got := svcs["web-1"]
	if got == nil || got.Service != "web" || got.Port != 8080 || got.Address != "127.0.0.1" ||
		!slices.Equal(got.Tags, []string{"primary"}) || got.Meta["version"] != "1.2" {
		t.Fatalf("agent services after registering: %+v", svcs)
	}
	// Before the first heartbeat the check is critical, as Consul's are.
	if h := healthOf(t, s.consul, "web", false); !slices.Equal(h, []string{"web-1 critical"}) {
		t.Errorf("health before any heartbeat = %q, want web-1 critical", h)
	}

	hb := startHeartbeats(t, s.consul, "service:web-1", api.HealthPassing, 300*time.Millisecond)
	took := waitHealth(t, s.consul, "web", true, 5*time.Second, "web-1 passing")
	t.Logf("passing %v after the first heartbeat", took.Round(time.Millisecond))

	hb.set(api.HealthWarning)
	waitHealth(t, s.consul, "web", false, 5*time.Second, "web-1 warning")
	if h := healthOf(t, s.consul, "web", true); len(h) != 0 {
		t.Errorf("passing list while warning = %q, want empty", h)
	}
	checks, err := agent.Checks()
	if err != nil {
		t.Fatal(err)
	}
	if c := checks["service:web-1"]; c == nil || c.Status != api.HealthWarning || c.Output != "state warning" ||
		c.Type != "ttl" || c.ServiceID != "web-1" || c.Notes != "the app heartbeats" {
		t.Errorf("agent checks while warning: %+v", checks["service:web-1"])
	}

	last := hb.halt()
	waitHealth(t, s.consul, "web", false, 5*time.Second, "web-1 critical")
	t.Logf("critical %v after the last heartbeat (TTL 1s)", time.Since(last).Round(time.Millisecond))
	if h := healthOf(t, s.consul, "web", true); len(h) != 0 {
		t.Errorf("passing list after the TTL = %q, want empty", h)
	}

	if err := agent.PassTTL("service:web-1", "back"); err != nil {
		t.Fatal(err)
	}
	hb = startHeartbeats(t, s.consul, "service:web-1", api.HealthPassing, 300*time.Millisecond)
	waitHealth(t, s.consul, "web", true, 5*time.Second, "web-1 passing")
	hb.halt()

	if err := agent.ServiceDeregister("web-1"); err != nil {
		t.Fatal(err)
	}
	if h := healthOf(t, s.consul, "web", false); len(h) != 0 {
		t.Errorf("health after deregistering = %q, want empty", h)
	}
	if svcs, err := agent.Services(); err != nil || len(svcs) != 0 {
		t.Errorf("agent services after deregistering: %v, %v; want none", svcs, err)
	}
}
