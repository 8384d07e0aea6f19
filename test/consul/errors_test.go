package consule2e

import (
	"errors"
	"testing"

	"github.com/hashicorp/consul/api"

	"github.com/sluice/sluice/internal/server"
)

// TestBadInput: what Consul refuses gets Consul's status and text; what
// Sluice cannot map gets a 400 naming the field and why. Nothing is
// registered by a refused request.
func TestBadInput(t *testing.T) {
	t.Parallel()
	s := start(t, server.Config{}, "")
	agent := s.consul.Agent()
	if err := agent.ServiceRegister(&api.AgentServiceRegistration{ID: "probe-1", Name: "probe", Address: "127.0.0.1", Port: 80,
		Check: &api.AgentServiceCheck{HTTP: "http://127.0.0.1:80/", Interval: "10s"}}); err != nil {
		t.Fatal(err)
	}
	register := func(reg *api.AgentServiceRegistration) func() error {
		return func() error { return agent.ServiceRegister(reg) }
	}
	ttl := &api.AgentServiceCheck{TTL: "10s"}
	cases := []struct {
		name string
		do   func() error
		code int
		text string
	}{
		{"missing name", register(&api.AgentServiceRegistration{Port: 80}),
			400, "Missing service name"},
		{"invalid name", register(&api.AgentServiceRegistration{Name: "Web_1", Port: 80}),
			400, `Invalid service name "Web_1": Sluice service names must be DNS-1035 labels (lowercase letters, digits, '-')`},
		{"port out of range", register(&api.AgentServiceRegistration{Name: "web", Port: 70000}),
			400, "Invalid service port 70000: must be 1-65535"},
		{"no port", register(&api.AgentServiceRegistration{Name: "web"}),
			400, "Missing service port: Sluice routes traffic to the registration's Port, so it is required"},
		{"unspecified address", register(&api.AgentServiceRegistration{Name: "web", Port: 80, Address: "0.0.0.0"}),
			400, "Invalid service address"},
		{"script check", register(&api.AgentServiceRegistration{Name: "web", Port: 80,
			Check: &api.AgentServiceCheck{Args: []string{"/bin/true"}, Interval: "10s"}}),
			400, "Invalid check: script checks are not supported by Sluice: Sluice runs checks from the server, not commands on the service's host; use a TTL, HTTP, TCP or gRPC check"},
		{"udp check", register(&api.AgentServiceRegistration{Name: "web", Port: 80,
			Check: &api.AgentServiceCheck{UDP: "127.0.0.1:53", Interval: "10s"}}),
			400, "Invalid check: udp checks are not supported by Sluice; use a TTL, HTTP, TCP or gRPC check"},
		{"check of no type", register(&api.AgentServiceRegistration{Name: "web", Port: 80,
			Check: &api.AgentServiceCheck{Notes: "what?"}}),
			400, "Invalid check: TTL must be > 0 for TTL checks"},
		{"interval missing", register(&api.AgentServiceRegistration{Name: "web", Port: 80,
			Check: &api.AgentServiceCheck{HTTP: "http://127.0.0.1/"}}),
			400, "Invalid check: Interval must be > 0 for Script, HTTP, H2PING, TCP, UDP or OSService checks"},
		{"bad duration", register(&api.AgentServiceRegistration{Name: "web", Port: 80,
			Check: &api.AgentServiceCheck{TTL: "soon"}}),
			400, `Request decode failed: time: invalid duration "soon"`},
		{"two TTL checks", register(&api.AgentServiceRegistration{Name: "web", Port: 80, Checks: api.AgentServiceChecks{ttl, ttl}}),
			400, `Invalid check "service:web:2": Sluice takes at most one TTL check per service`},
		{"check elsewhere", register(&api.AgentServiceRegistration{Name: "web", Port: 80, Address: "127.0.0.1",
			Check: &api.AgentServiceCheck{HTTP: "http://10.9.9.9:8080/health", Interval: "10s"}}),
			400, `Invalid check HTTP "http://10.9.9.9:8080/health": Sluice runs checks from the server against the service's address, so a check must target 127.0.0.1 (or a loopback address, which stands for it), not 10.9.9.9`},
		{"https check", register(&api.AgentServiceRegistration{Name: "web", Port: 80,
			Check: &api.AgentServiceCheck{HTTP: "https://localhost/", Interval: "10s"}}),
			400, `Invalid check HTTP "https://localhost/": Sluice's HTTP checks do not speak TLS (https)`},
		{"bad meta", register(&api.AgentServiceRegistration{Name: "web", Port: 80, Meta: map[string]string{"bad key": "x"}}),
			400, "Invalid Service Meta: Couldn't load metadata pair ('bad key', 'x'): Key contains invalid characters"},
		{"reserved meta", register(&api.AgentServiceRegistration{Name: "web", Port: 80, Meta: map[string]string{"consul-version": "1"}}),
			400, "Invalid Service Meta: Couldn't load metadata pair ('consul-version', '1'): Key prefix 'consul-' is reserved for internal use"},
		{"zero weight", register(&api.AgentServiceRegistration{Name: "web", Port: 80, Weights: &api.AgentWeights{}}),
			400, "Invalid Weights: Passing must be greater than 0"},
		{"weight too large", register(&api.AgentServiceRegistration{Name: "web", Port: 80, Weights: &api.AgentWeights{Passing: 20000}}),
			400, "Invalid Weights: Passing 20000: Sluice weights are 1-10000 (an Endpoint's spec.weight)"},
		{"deregister unknown", func() error { return agent.ServiceDeregister("nope") },
			404, `Unknown service ID "nope". Ensure that the service ID is passed, not the service name.`},
		{"pass unknown check", func() error { return agent.PassTTL("nope", "") },
			404, `Unknown check ID "nope". Ensure that the check ID is passed, not the check name.`},
		{"pass HTTP check", func() error { return agent.PassTTL("service:probe-1", "") },
			500, `CheckID "service:probe-1" does not have associated TTL`},
		{"update HTTP check", func() error { return agent.UpdateTTL("service:probe-1", "", api.HealthWarning) },
			500, `CheckID "service:probe-1" does not have associated TTL`},
		{"wrong method", func() error {
			_, err := s.consul.Raw().Query("/v1/agent/service/register", new(any), nil)
			return err
		},
			405, "method GET not allowed"},
		{"other datacenter", func() error {
			_, _, err := s.consul.Catalog().Services(&api.QueryOptions{Datacenter: "dc2"})
			return err
		}, 500, "No path to datacenter"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := c.do()
			var se api.StatusError
			if !errors.As(err, &se) || se.Code != c.code || se.Body != c.text {
				t.Errorf("got %v\nwant %v", err, api.StatusError{Code: c.code, Body: c.text})
			}
		})
	}
	svcs, err := agent.Services()
	if err != nil || len(svcs) != 1 {
		t.Errorf("agent services after the refusals: %v, %v; want probe-1 only", svcs, err)
	}
	if _, _, err := s.consul.Catalog().Service("web", "", nil); err != nil {
		t.Errorf("catalog service web: %v", err)
	}
}
