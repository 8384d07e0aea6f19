package resource_test

import (
	"errors"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"

	"github.com/sluice/sluice/internal/resource"
)

// decode reads a YAML document into a new object of kind k, defaulted, the
// way the store sees it.
func decode(t *testing.T, k *resource.Kind, doc string) resource.Object {
	t.Helper()
	obj := k.New()
	if err := yaml.UnmarshalStrict([]byte(doc), obj); err != nil {
		t.Fatalf("decode: %v\n%s", err, doc)
	}
	if obj.GetNamespace() == "" {
		obj.SetNamespace("default")
	}
	k.Default(obj)
	return obj
}

func TestValidation(t *testing.T) {
	cases := []struct {
		name string
		kind *resource.Kind
		doc  string
		// want is "field: reason substring" for each expected error; empty means valid.
		want []string
	}{
		{"service ok", resource.ServiceKind, `
metadata: {name: greeter, labels: {app: greeter}}
spec: {selector: {app: greeter}, ports: [{name: grpc, port: 50051, protocol: grpc}, {name: http, port: 8080}]}`, nil},
		{"service port range", resource.ServiceKind, `
metadata: {name: greeter}
spec: {ports: [{port: 0}]}`, []string{"spec.ports[0].port: must be 1-65535"}},
		{"service no ports", resource.ServiceKind, `
metadata: {name: greeter}
spec: {}`, []string{"spec.ports: at least one port"}},
		{"service unnamed ports", resource.ServiceKind, `
metadata: {name: greeter}
spec: {ports: [{port: 1}, {name: b, port: 2}]}`, []string{"spec.ports[0].name: is required when there is more than one port"}},
		{"service duplicate port", resource.ServiceKind, `
metadata: {name: greeter}
spec: {ports: [{name: a, port: 80}, {name: a, port: 80}]}`, []string{"spec.ports[1].name: duplicate", "spec.ports[1].port: duplicate"}},
		{"service protocol", resource.ServiceKind, `
metadata: {name: greeter}
spec: {ports: [{port: 80, protocol: udp}]}`, []string{`spec.ports[0].protocol: unsupported value "udp"`}},
		{"service name with dot", resource.ServiceKind, `
metadata: {name: a.b}
spec: {ports: [{port: 80}]}`, []string{"metadata.name: a DNS-1035 label"}},
		{"service bad namespace", resource.ServiceKind, `
metadata: {name: a, namespace: Prod}
spec: {ports: [{port: 80}]}`, []string{"metadata.namespace: a lowercase RFC 1123 label"}},
		{"service bad selector", resource.ServiceKind, `
metadata: {name: a}
spec: {selector: {"bad key!": x}, ports: [{port: 80}]}`, []string{"spec.selector: "}},
		{"service missing name", resource.ServiceKind, `
spec: {ports: [{port: 80}]}`, []string{"metadata.name: is required"}},

		{"endpoint ok", resource.EndpointKind, `
metadata: {name: greeter-1, labels: {app: greeter, version: v1, zone: a}}
spec:
  address: 10.0.0.7
  ports: [{name: grpc, port: 50051}]
  weight: 3
  healthCheck: {grpc: {}, port: grpc, interval: 5s, timeout: 1s}`, nil},
		{"endpoint hostname", resource.EndpointKind, `
metadata: {name: e}
spec: {address: greeter.internal.example, ports: [{port: 80}]}`, nil},
		{"endpoint bad address", resource.EndpointKind, `
metadata: {name: e}
spec: {address: "not an address", ports: [{port: 80}]}`, []string{"spec.address: must be an IP address or a DNS hostname"}},
		{"endpoint no address", resource.EndpointKind, `
metadata: {name: e}
spec: {ports: [{port: 80}]}`, []string{"spec.address: is required"}},
		{"endpoint weight", resource.EndpointKind, `
metadata: {name: e}
spec: {address: 10.0.0.1, ports: [{port: 80}], weight: 0}`, []string{"spec.weight: must be 1-10000"}},
		{"endpoint check needs one kind", resource.EndpointKind, `
metadata: {name: e}
spec: {address: 10.0.0.1, ports: [{port: 80}], healthCheck: {http: {}, tcp: {}}}`, []string{"spec.healthCheck: exactly one of http, tcp and grpc"}},
		{"endpoint check port must exist", resource.EndpointKind, `
metadata: {name: e}
spec: {address: 10.0.0.1, ports: [{name: http, port: 80}], healthCheck: {tcp: {}, port: admin}}`, []string{"spec.healthCheck.port: must name one of spec.ports or be a port number"}},
		{"endpoint check port number", resource.EndpointKind, `
metadata: {name: e}
spec: {address: 10.0.0.1, ports: [{name: http, port: 80}], healthCheck: {tcp: {}, port: "8081"}}`, nil},
		{"endpoint check port number range", resource.EndpointKind, `
metadata: {name: e}
spec: {address: 10.0.0.1, ports: [{name: http, port: 80}], healthCheck: {tcp: {}, port: "70000"}}`, []string{"spec.healthCheck.port: must be 1-65535"}},
		{"endpoint check timeout", resource.EndpointKind, `
metadata: {name: e}
spec: {address: 10.0.0.1, ports: [{port: 80}], healthCheck: {tcp: {}, interval: 1s, timeout: 2s}}`, []string{"spec.healthCheck.timeout: must not be longer than interval"}},
		{"endpoint http check", resource.EndpointKind, `
metadata: {name: e}
spec: {address: 10.0.0.1, ports: [{port: 80}], healthCheck: {http: {path: healthz, expectedStatuses: [{start: 500, end: 200}]}}}`,
			[]string{"spec.healthCheck.http.path: must start with /", "spec.healthCheck.http.expectedStatuses[0]: must be a range"}},
		{"endpoint ttl", resource.EndpointKind, `
metadata: {name: e}
spec: {address: 10.0.0.1, ports: [{port: 80}], ttl: 10s, onTTLExpiry: Remove}`, nil},
		{"endpoint ttl range and unit", resource.EndpointKind, `
metadata: {name: e}
spec: {address: 10.0.0.1, ports: [{port: 80}], ttl: 1500ms, onTTLExpiry: Forget}`,
			[]string{"spec.ttl: must be whole seconds", "spec.onTTLExpiry: unsupported value \"Forget\""}},
		{"endpoint ttl too short", resource.EndpointKind, `
metadata: {name: e}
spec: {address: 10.0.0.1, ports: [{port: 80}], ttl: 0s}`, []string{"spec.ttl: must be 1s to 24h"}},
		{"endpoint expiry needs ttl", resource.EndpointKind, `
metadata: {name: e}
spec: {address: 10.0.0.1, ports: [{port: 80}], onTTLExpiry: Remove}`, []string{"spec.onTTLExpiry: needs spec.ttl"}},

		{"backendpolicy ok", resource.BackendPolicyKind, `
metadata: {name: p}
spec:
  targetRefs: [{name: greeter}]
  loadBalancer: {type: RingHash, hashOn: {header: x-user}}
  retry: {attempts: 2, retryOn: [5xx, reset]}
  circuitBreaker: {maxConnections: 100}
  outlierDetection: {consecutive5xx: 3}`, nil},
		{"backendpolicy no targets", resource.BackendPolicyKind, `
metadata: {name: p}
spec: {}`, []string{"spec.targetRefs: at least one target"}},
		{"backendpolicy target kind", resource.BackendPolicyKind, `
metadata: {name: p}
spec: {targetRefs: [{kind: Gateway, name: g}]}`, []string{`spec.targetRefs[0].kind: unsupported value "Gateway"`}},
		{"backendpolicy hashOn without RingHash", resource.BackendPolicyKind, `
metadata: {name: p}
spec: {targetRefs: [{name: g}], loadBalancer: {type: RoundRobin, hashOn: {sourceIP: true}}}`, []string{"spec.loadBalancer.hashOn: is only allowed with type RingHash"}},
		{"backendpolicy retry", resource.BackendPolicyKind, `
metadata: {name: p}
spec: {targetRefs: [{name: g}], retry: {attempts: 11, retryOn: [sometimes]}}`, []string{"spec.retry.attempts: must be 0-10", `spec.retry.retryOn[0]: unsupported value "sometimes"`}},
		{"backendpolicy negative limits", resource.BackendPolicyKind, `
metadata: {name: p}
spec: {targetRefs: [{name: g}], circuitBreaker: {maxRequests: -1}, outlierDetection: {maxEjectionPercent: 120}}`,
			[]string{"spec.circuitBreaker.maxRequests: must not be negative", "spec.outlierDetection.maxEjectionPercent: must be 0-100"}},

		{"gateway ok", resource.GatewayKind, `
metadata: {name: edge}
spec:
  gatewayClassName: sluice
  listeners:
  - {name: http, port: 80, protocol: HTTP}
  - {name: https, port: 443, protocol: HTTPS, hostname: "*.example.com", tls: {certificateRefs: [{name: wildcard}]}}`, nil},
		{"gateway no listeners", resource.GatewayKind, `
metadata: {name: edge}
spec: {gatewayClassName: sluice, listeners: []}`, []string{"spec.listeners: at least one listener"}},
		{"gateway duplicate listener", resource.GatewayKind, `
metadata: {name: edge}
spec: {gatewayClassName: sluice, listeners: [{name: a, port: 80, protocol: HTTP}, {name: a, port: 80, protocol: HTTP}]}`,
			[]string{"spec.listeners[1].name: duplicate", "spec.listeners[1]: port, protocol and hostname must be distinct"}},
		{"gateway https without tls", resource.GatewayKind, `
metadata: {name: edge}
spec: {gatewayClassName: sluice, listeners: [{name: a, port: 443, protocol: HTTPS}]}`, []string{"spec.listeners[0].tls: is required for protocol HTTPS"}},
		{"gateway http with tls", resource.GatewayKind, `
metadata: {name: edge}
spec: {gatewayClassName: sluice, listeners: [{name: a, port: 80, protocol: HTTP, tls: {certificateRefs: [{name: c}]}}]}`, []string{"spec.listeners[0].tls: must not be set"}},
		{"gateway bad hostname", resource.GatewayKind, `
metadata: {name: edge}
spec: {gatewayClassName: sluice, listeners: [{name: a, port: 80, protocol: HTTP, hostname: "Example.COM"}]}`, []string{"spec.listeners[0].hostname: must be a lower-case DNS name"}},
		{"gateway no class", resource.GatewayKind, `
metadata: {name: edge}
spec: {listeners: [{name: a, port: 80, protocol: HTTP}]}`, []string{"spec.gatewayClassName: is required"}},

		{"httproute ok", resource.HTTPRouteKind, `
metadata: {name: r}
spec:
  parentRefs: [{name: edge}, {group: "", kind: Service, name: greeter, port: 8080}]
  hostnames: [api.example.com]
  rules:
  - matches: [{path: {type: PathPrefix, value: /v1}, headers: [{name: x-env, value: canary}], queryParams: [{name: debug, value: "1"}], method: GET}]
    filters:
    - {type: RequestHeaderModifier, requestHeaderModifier: {set: [{name: x-a, value: b}], remove: [x-c]}}
    - {type: URLRewrite, urlRewrite: {path: {type: ReplacePrefixMatch, replacePrefixMatch: /}}}
    backendRefs: [{name: greeter-v1, port: 8080, weight: 80}, {name: greeter-v2, port: 8080, weight: 20}]
    timeouts: {request: 10s, backendRequest: 2s}
    retry: {attempts: 2, codes: [503], backoff: 100ms}`, nil},
		{"httproute backend port", resource.HTTPRouteKind, `
metadata: {name: r}
spec: {parentRefs: [{name: edge}], rules: [{backendRefs: [{name: greeter}]}]}`, []string{"spec.rules[0].backendRefs[0].port: is required when kind is Service"}},
		{"httproute parent kind", resource.HTTPRouteKind, `
metadata: {name: r}
spec: {parentRefs: [{kind: Ingress, name: x}]}`, []string{"spec.parentRefs[0].kind: must be Gateway"}},
		{"httproute path", resource.HTTPRouteKind, `
metadata: {name: r}
spec: {rules: [{matches: [{path: {type: Exact, value: "v1"}}, {path: {type: RegularExpression, value: "(["}}]}]}`,
			[]string{"spec.rules[0].matches[0].path.value: must be an absolute path", "spec.rules[0].matches[1].path.value: must be a valid RE2"}},
		{"httproute filter type field", resource.HTTPRouteKind, `
metadata: {name: r}
spec: {rules: [{filters: [{type: RequestHeaderModifier, responseHeaderModifier: {set: [{name: a, value: b}]}}]}]}`,
			[]string{"spec.rules[0].filters[0].responseHeaderModifier: must not be set when type is RequestHeaderModifier", "spec.rules[0].filters[0].requestHeaderModifier: is required"}},
		{"httproute redirect and rewrite", resource.HTTPRouteKind, `
metadata: {name: r}
spec: {rules: [{filters: [{type: RequestRedirect, requestRedirect: {statusCode: 300}}, {type: URLRewrite, urlRewrite: {}}]}]}`,
			[]string{"spec.rules[0].filters[0].requestRedirect.statusCode: unsupported value", "spec.rules[0].filters: RequestRedirect and URLRewrite cannot be used together"}},
		{"httproute prefix rewrite needs prefix match", resource.HTTPRouteKind, `
metadata: {name: r}
spec: {rules: [{matches: [{path: {type: Exact, value: /a}}], filters: [{type: URLRewrite, urlRewrite: {path: {type: ReplacePrefixMatch, replacePrefixMatch: /b}}}]}]}`,
			[]string{"spec.rules[0].filters[0].urlRewrite.path.type: ReplacePrefixMatch needs every match"}},
		{"httproute weight and timeouts", resource.HTTPRouteKind, `
metadata: {name: r}
spec: {rules: [{backendRefs: [{name: a, port: 80, weight: -1}], timeouts: {request: 1s, backendRequest: 2s}}]}`,
			[]string{"spec.rules[0].backendRefs[0].weight: must be 0-1000000", "spec.rules[0].timeouts.backendRequest: must not be longer than request"}},
		{"httproute duration format", resource.HTTPRouteKind, `
metadata: {name: r}
spec: {rules: [{timeouts: {request: 1.5s}}]}`, []string{"spec.rules[0].timeouts.request: must be a Gateway API duration"}},
		{"httproute duplicate header match", resource.HTTPRouteKind, `
metadata: {name: r}
spec: {rules: [{matches: [{headers: [{name: X-A, value: "1"}, {name: x-a, value: "2"}]}]}]}`, []string{"spec.rules[0].matches[0].headers[1].name: duplicate"}},

		{"grpcroute ok", resource.GRPCRouteKind, `
metadata: {name: g}
spec:
  parentRefs: [{group: "", kind: Service, name: greeter, port: 50051}]
  rules:
  - matches: [{method: {service: helloworld.Greeter, method: SayHello}}]
    backendRefs: [{name: greeter-v1, port: 50051, weight: 80}, {name: greeter-v2, port: 50051, weight: 20}]`, nil},
		{"grpcroute empty method match", resource.GRPCRouteKind, `
metadata: {name: g}
spec: {rules: [{matches: [{method: {}}]}]}`, []string{"spec.rules[0].matches[0].method: one or both of service and method"}},
		{"grpcroute bad names", resource.GRPCRouteKind, `
metadata: {name: g}
spec: {rules: [{matches: [{method: {service: "hello world", method: "Say/Hello"}}]}]}`,
			[]string{"spec.rules[0].matches[0].method.service: must be a fully qualified gRPC service name", "spec.rules[0].matches[0].method.method: must be a gRPC method name"}},
		{"grpcroute method regex must embed", resource.GRPCRouteKind, `
metadata: {name: g}
spec: {rules: [{matches: [{method: {type: RegularExpression, service: '\Qgrpc.testing.TestService'}}]}]}`,
			[]string{"spec.rules[0].matches[0].method.service: must be a regular expression that can be embedded"}},
		{"grpcroute filter type", resource.GRPCRouteKind, `
metadata: {name: g}
spec: {rules: [{filters: [{type: URLRewrite}]}]}`, []string{`spec.rules[0].filters[0].type: unsupported value "URLRewrite"`}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			obj := decode(t, c.kind, c.doc)
			var got []string
			if errs := c.kind.Validate(obj); len(errs) > 0 {
				for _, cause := range resource.NewInvalid(c.kind, obj.GetName(), errs).Causes() {
					got = append(got, cause.Field+": "+cause.Reason)
				}
			}
			if len(got) != len(c.want) {
				t.Fatalf("errors:\n  %s\nwant %d:\n  %s", strings.Join(got, "\n  "), len(c.want), strings.Join(c.want, "\n  "))
			}
			for i, w := range c.want {
				if !strings.HasPrefix(got[i], w) && !strings.Contains(got[i], w) {
					t.Errorf("error %d = %q, want it to contain %q", i, got[i], w)
				}
			}
		})
	}
}

func TestDefaults(t *testing.T) {
	ep := decode(t, resource.EndpointKind, `
metadata: {name: e}
spec: {address: 10.0.0.1, ports: [{port: 80}], healthCheck: {http: {}}}`).(*resource.Endpoint)
	if *ep.Spec.Weight != 1 || ep.Status.Health != resource.HealthUnknown {
		t.Errorf("endpoint with a check: weight %d health %q, want 1 and unknown", *ep.Spec.Weight, ep.Status.Health)
	}
	hc := ep.Spec.HealthCheck
	if hc.Interval.Duration.String() != "10s" || hc.Timeout.Duration.String() != "2s" || hc.HealthyThreshold != 1 || hc.UnhealthyThreshold != 3 {
		t.Errorf("health check defaults: %+v", hc)
	}
	if hc.HTTP.Path != "/" || len(hc.HTTP.ExpectedStatuses) != 1 || hc.HTTP.ExpectedStatuses[0] != (resource.StatusRange{Start: 200, End: 399}) {
		t.Errorf("http check defaults: %+v", hc.HTTP)
	}
	plain := decode(t, resource.EndpointKind, `
metadata: {name: e}
spec: {address: 10.0.0.1, ports: [{port: 80}]}`).(*resource.Endpoint)
	if plain.Status.Health != resource.HealthHealthy {
		t.Errorf("endpoint without a check: health %q, want healthy", plain.Status.Health)
	}

	route := decode(t, resource.HTTPRouteKind, `
metadata: {name: r}
spec: {parentRefs: [{name: edge}], rules: [{backendRefs: [{name: a, port: 80}]}]}`)
	out, _ := yaml.Marshal(route)
	for _, want := range []string{
		"group: gateway.networking.k8s.io\n    kind: Gateway", // parentRef defaults
		"type: PathPrefix\n        value: /",                  // match defaults
		"group: \"\"\n      kind: Service",                    // backendRef defaults
		"weight: 1",
	} {
		if !strings.Contains(string(out), want) {
			t.Errorf("defaulted HTTPRoute lacks %q:\n%s", want, out)
		}
	}
	// Defaulting twice changes nothing.
	again := route.DeepCopyObject().(resource.Object)
	resource.HTTPRouteKind.Default(again)
	out2, _ := yaml.Marshal(again)
	if string(out) != string(out2) {
		t.Error("defaulting is not idempotent")
	}
}

func TestStatusErrors(t *testing.T) {
	st := resource.StatusOf(resource.ErrConflict)
	if st.Code != 409 || st.Reason != "Conflict" {
		t.Errorf("conflict: %+v", st)
	}
	// A Status is errors.Is its sentinel, so clients can test errors the same way.
	for _, sentinel := range []error{resource.ErrNotFound, resource.ErrAlreadyExists, resource.ErrConflict, resource.ErrInvalid, resource.ErrExpired, resource.ErrForbidden} {
		wire := resource.StatusOf(sentinel)
		if !errors.Is(wire, sentinel) {
			t.Errorf("Status %d %s is not %v", wire.Code, wire.Reason, sentinel)
		}
	}
	if st := resource.StatusOf(errors.New("disk on fire")); st.Code != 500 || strings.Contains(st.Message, "disk") {
		t.Errorf("internal error leaked: %+v", st)
	}
}
