package consul

import (
	"encoding/json"
	"errors"
	"maps"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"
	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/sluice/sluice/internal/resource"
)

func TestEndpointName(t *testing.T) {
	long := strings.Repeat("a", 300)
	cases := []struct{ id, want string }{
		{"web-1", "web-1"},
		{"web.eu-1", "web.eu-1"},
		{"Web 1", "web-1-"},
		{"web:8080", "web-8080-"},
		{"___", "consul-"},
		{"-web-", "web-"},
		{long, strings.Repeat("a", 244) + "-"},
	}
	for _, c := range cases {
		got := endpointName(c.id)
		if !strings.HasPrefix(got, c.want) || (strings.HasSuffix(c.want, "-") && len(got) != len(c.want)+8) {
			t.Errorf("endpointName(%q) = %q, want %q (plus 8 hex digits when it ends in -)", c.id, got, c.want)
		}
		if msgs := validation.IsDNS1123Subdomain(got); len(msgs) > 0 {
			t.Errorf("endpointName(%q) = %q is not a valid name: %v", c.id, got, msgs)
		}
		if again := endpointName(c.id); again != got {
			t.Errorf("endpointName(%q) is not deterministic: %q then %q", c.id, got, again)
		}
	}
	if endpointName("Web 1") == endpointName("web 1") {
		t.Errorf("IDs that differ in case share an Endpoint name")
	}
}

// TestTranslate: what a registration becomes.
func TestTranslate(t *testing.T) {
	reg := &api.AgentServiceRegistration{
		ID: "Web 1", Name: "web", Port: 8080,
		Tags:    []string{"primary", "needs quoting!"},
		Meta:    map[string]string{"version": "v1", "app": "other", "Long_Key": "Some value with spaces", "protocol": "grpc"},
		Weights: &api.AgentWeights{Passing: 5, Warning: 1},
		Checks: api.AgentServiceChecks{
			{TTL: "1500ms", DeregisterCriticalServiceAfter: "1m", Status: api.HealthWarning},
			{CheckID: "web-ready", Name: "ready", HTTP: "http://localhost:9090/ready?full=1", Interval: "5s",
				Header: map[string][]string{"X-A": {"1", "2"}}, FailuresBeforeCritical: 2},
		},
	}
	out, err := translate(reg, "team-a", "node-1", "10.1.2.3")
	if err != nil {
		t.Fatal(err)
	}
	ep, svc := out.endpoint, out.service
	if !strings.HasPrefix(ep.Name, "web-1-") || ep.Namespace != "team-a" {
		t.Errorf("endpoint %s/%s", ep.Namespace, ep.Name)
	}
	wantLabels := map[string]string{
		"app": "web", labelService: "web", "version": "v1", "protocol": "grpc",
		tagLabelPrefix + "primary": "true", checkLabelPrefix + checkHash("web-ready"): "true",
	}
	if !maps.Equal(ep.Labels, wantLabels) {
		t.Errorf("labels = %v, want %v", ep.Labels, wantLabels)
	}
	if ep.Annotations[annotationID] != "Web 1" || ep.Annotations[annotationNode] != "node-1" ||
		ep.Annotations[annotationTags] != `["primary","needs quoting!"]` {
		t.Errorf("annotations = %v", ep.Annotations)
	}
	var meta map[string]string
	if err := json.Unmarshal([]byte(ep.Annotations[annotationMeta]), &meta); err != nil || !maps.Equal(meta, reg.Meta) {
		t.Errorf("meta annotation %q, want %v", ep.Annotations[annotationMeta], reg.Meta)
	}
	spec := ep.Spec
	if spec.Address != "10.1.2.3" || len(spec.Ports) != 1 || spec.Ports[0] != (resource.EndpointPort{Port: 8080}) || *spec.Weight != 5 {
		t.Errorf("spec address %q ports %v weight %d", spec.Address, spec.Ports, *spec.Weight)
	}
	if spec.TTL == nil || spec.TTL.Duration != 2*time.Second || spec.OnTTLExpiry != resource.TTLExpiryRemove {
		t.Errorf("ttl %v onTTLExpiry %q, want 2s (rounded up) and Remove", spec.TTL, spec.OnTTLExpiry)
	}
	hc := spec.HealthCheck
	if hc == nil || hc.HTTP == nil || hc.HTTP.Path != "/ready?full=1" || hc.HTTP.Headers["X-A"] != "1" || hc.Port != "9090" ||
		hc.Interval.Duration != 5*time.Second || hc.Timeout.Duration != 2*time.Second || hc.UnhealthyThreshold != 2 || hc.HealthyThreshold != 1 {
		t.Errorf("health check = %+v (http %+v)", hc, hc.HTTP)
	}
	if out.initial != resource.CheckWarning {
		t.Errorf("initial state %q, want warning", out.initial)
	}
	wantDefs := []checkDef{
		{ID: "service:Web 1:1", Name: "Service 'web' check", Type: checkTTL, TTL: "1500ms"},
		{ID: "web-ready", Name: "ready", Type: checkHTTP, Target: "http://localhost:9090/ready?full=1",
			Header: map[string][]string{"X-A": {"1", "2"}}, Interval: "5s", Timeout: "2s"},
	}
	var defs []checkDef
	if err := json.Unmarshal([]byte(ep.Annotations[annotationChecks]), &defs); err != nil || len(defs) != 2 ||
		defs[0].ID != wantDefs[0].ID || defs[0].Name != wantDefs[0].Name || defs[0].Type != checkTTL ||
		defs[1].ID != wantDefs[1].ID || defs[1].Target != wantDefs[1].Target || defs[1].Interval != "5s" || defs[1].Timeout != "2s" {
		t.Errorf("check annotation %s, want %+v", ep.Annotations[annotationChecks], wantDefs)
	}
	if svc.Name != "web" || svc.Namespace != "team-a" || !maps.Equal(svc.Spec.Selector, map[string]string{"app": "web"}) ||
		len(svc.Spec.Ports) != 1 || svc.Spec.Ports[0].Port != 8080 || svc.Spec.Ports[0].Protocol != resource.ProtocolGRPC ||
		svc.Labels[labelManaged] != "true" {
		t.Errorf("service = %+v", svc)
	}

	// The objects pass the store's validation.
	for _, obj := range []resource.Object{ep, svc} {
		k := resource.EndpointKind
		if obj == resource.Object(svc) {
			k = resource.ServiceKind
		}
		o := obj.DeepCopyObject().(resource.Object)
		k.Default(o)
		if errs := k.Validate(o); len(errs) > 0 {
			t.Errorf("%s %s is invalid: %v", k.Kind, o.GetName(), errs.ToAggregate())
		}
	}
}

// TestTranslateChecks: how each kind of check maps, and the defaults.
func TestTranslateChecks(t *testing.T) {
	cases := []struct {
		name  string
		check api.AgentServiceCheck
		want  func(*resource.EndpointSpec) bool
	}{
		{"ttl rounds up to a second", api.AgentServiceCheck{TTL: "10ms"},
			func(s *resource.EndpointSpec) bool {
				return s.TTL.Duration == time.Second && s.OnTTLExpiry == resource.TTLExpiryMarkUnhealthy
			}},
		{"tcp on the service port", api.AgentServiceCheck{TCP: "127.0.0.1:8080", Interval: "1s", Timeout: "5s"},
			func(s *resource.EndpointSpec) bool {
				hc := s.HealthCheck
				return hc.TCP != nil && hc.Port == "" && hc.Timeout.Duration == time.Second // at most the interval
			}},
		{"grpc with a service", api.AgentServiceCheck{GRPC: "10.0.0.5:8080/pkg.Svc", Interval: "3s", SuccessBeforePassing: 2},
			func(s *resource.EndpointSpec) bool {
				hc := s.HealthCheck
				return hc.GRPC != nil && hc.GRPC.Service == "pkg.Svc" && hc.HealthyThreshold == 2 && hc.Timeout.Duration == 2*time.Second
			}},
		{"interval raised to Consul's minimum", api.AgentServiceCheck{HTTP: "http://localhost:8080/", Interval: "10ms"},
			func(s *resource.EndpointSpec) bool {
				hc := s.HealthCheck
				return hc.Interval.Duration == time.Second && hc.Timeout.Duration == time.Second
			}},
		{"http on port 80 by default", api.AgentServiceCheck{HTTP: "http://[::1]", Interval: "1s", Method: "GET"},
			func(s *resource.EndpointSpec) bool {
				hc := s.HealthCheck
				return hc.HTTP != nil && hc.HTTP.Path == "/" && hc.Port == "80"
			}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			check := c.check
			out, err := translate(&api.AgentServiceRegistration{Name: "svc", Address: "10.0.0.5", Port: 8080, Check: &check}, "default", "n", "")
			if err != nil {
				t.Fatal(err)
			}
			if !c.want(&out.endpoint.Spec) {
				t.Errorf("spec = %+v (health check %+v)", out.endpoint.Spec, out.endpoint.Spec.HealthCheck)
			}
		})
	}
}

func TestTranslateRefuses(t *testing.T) {
	ok := func() *api.AgentServiceRegistration {
		return &api.AgentServiceRegistration{Name: "web", Port: 80, Address: "10.0.0.1"}
	}
	with := func(f func(*api.AgentServiceRegistration)) *api.AgentServiceRegistration {
		r := ok()
		f(r)
		return r
	}
	cases := []struct {
		name string
		reg  *api.AgentServiceRegistration
		text string
	}{
		{"kind", with(func(r *api.AgentServiceRegistration) { r.Kind = api.ServiceKindConnectProxy }), `Invalid service Kind "connect-proxy"`},
		{"ports", with(func(r *api.AgentServiceRegistration) { r.Ports = api.ServicePorts{{Name: "a", Port: 1}} }), "Invalid service Ports"},
		{"socket", with(func(r *api.AgentServiceRegistration) { r.SocketPath = "/run/x.sock" }), "Invalid service SocketPath"},
		{"address", with(func(r *api.AgentServiceRegistration) { r.Address = "not an address" }), `Invalid service address "not an address"`},
		{"post check", with(func(r *api.AgentServiceRegistration) {
			r.Check = &api.AgentServiceCheck{HTTP: "http://10.0.0.1/", Interval: "1s", Method: "POST"}
		}), `Invalid check Method "POST"`},
		{"grpc tls", with(func(r *api.AgentServiceRegistration) {
			r.Check = &api.AgentServiceCheck{GRPC: "10.0.0.1:80", Interval: "1s", GRPCUseTLS: true}
		}), "Invalid check GRPCUseTLS"},
		{"tcp without port", with(func(r *api.AgentServiceRegistration) {
			r.Check = &api.AgentServiceCheck{TCP: "10.0.0.1", Interval: "1s"}
		}), `Invalid check TCP "10.0.0.1": want host:port`},
		{"two active checks", with(func(r *api.AgentServiceRegistration) {
			c := &api.AgentServiceCheck{TCP: "10.0.0.1:80", Interval: "1s"}
			r.Checks = api.AgentServiceChecks{c, c}
		}), "at most one HTTP, TCP or gRPC check"},
		{"duplicate check IDs", with(func(r *api.AgentServiceRegistration) {
			r.Checks = api.AgentServiceChecks{{CheckID: "x", TTL: "1s"}, {CheckID: "x", TCP: "10.0.0.1:80", Interval: "1s"}}
		}), `CheckID "x" is used twice`},
		{"ttl too long", with(func(r *api.AgentServiceRegistration) { r.Check = &api.AgentServiceCheck{TTL: "48h"} }), "Sluice TTLs are at most 24h0m0s"},
		{"alias", with(func(r *api.AgentServiceRegistration) { r.Check = &api.AgentServiceCheck{AliasService: "db"} }), "alias checks are not supported"},
		{"bad status", with(func(r *api.AgentServiceRegistration) { r.Check = &api.AgentServiceCheck{TTL: "1s", Status: "fine"} }), "Status for checks must"},
		{"long meta value", with(func(r *api.AgentServiceRegistration) { r.Meta = map[string]string{"k": strings.Repeat("v", 513)} }), "Value is too long (limit: 512 characters)"},
		{"partition", with(func(r *api.AgentServiceRegistration) { r.Partition = "eu" }), `Invalid service Partition "eu"`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := translate(c.reg, "default", "n", "10.0.0.1")
			var he *httpError
			if !errors.As(err, &he) || he.code != 400 || !strings.Contains(he.msg, c.text) {
				t.Errorf("translate: %v, want a 400 containing %q", err, c.text)
			}
		})
	}
}

func TestSameHost(t *testing.T) {
	cases := []struct {
		host, addr string
		want       bool
	}{
		{"localhost", "10.0.0.1", true},
		{"127.0.0.2", "10.0.0.1", true},
		{"::1", "db.example", true},
		{"10.0.0.1", "10.0.0.1", true},
		{"::ffff:10.0.0.1", "10.0.0.1", true},
		{"DB.example.", "db.example", true},
		{"10.0.0.2", "10.0.0.1", false},
		{"db.example", "10.0.0.1", false},
	}
	for _, c := range cases {
		if got := sameHost(c.host, c.addr); got != c.want {
			t.Errorf("sameHost(%q, %q) = %v, want %v", c.host, c.addr, got, c.want)
		}
	}
}
