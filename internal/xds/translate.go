package xds

import (
	"cmp"
	"fmt"
	"slices"
	"strconv"
	"strings"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"

	"github.com/sluice/sluice/internal/resource"
)

// Translate builds the snapshot of every resource Sluice serves from in. It
// is pure: no I/O, no clock, no randomness, and it sorts everything it reads,
// so equal inputs in any order give byte-identical resources.
//
// Each resource is checked with its protoc-gen-validate rules (ValidateAll)
// before it is added, and one that fails is left out: served, it would be
// NACKed by every client, which would then also miss every later change to
// it. A route that fails is left out of its RouteConfiguration, so that one
// bad rule does not stop the others. What was left out is in the snapshot's
// Problems, for the logs: the inputs were validated on write, so a failure
// is a translator bug, which the golden tests catch (they require it empty).
// Problems also lists what the inputs themselves leave out: a Gateway
// listener's filter chain whose certificateRefs name no valid TLS Secret.
//
// The error is for failures to marshal a resource, which do not happen with
// valid UTF-8 strings.
func Translate(in *Inputs) (*Snapshot, error) {
	tr := translate(in)
	return tr.snap, tr.err
}

// translation is the state of one Translate call.
type translation struct {
	in       *Inputs
	services map[objKey]*resource.Service
	// endpoints are the Endpoints of each namespace, sorted by name.
	endpoints map[string][]*resource.Endpoint
	// policies is the BackendPolicy in force for each Service.
	policies map[objKey]*resource.BackendPolicy
	// meshAttached are the routes attached to each Service.
	meshAttached map[objKey][]meshAttachment
	// gatewayAttached are the routes with a parentRef to each Gateway.
	gatewayAttached map[objKey][]routeObj
	// secrets are the Secrets by namespace and name.
	secrets map[objKey]*corev1.Secret

	snap *Snapshot
	// dropped describes each resource or route left out because it failed
	// validation; tests require it to be empty.
	dropped []string
	// problems describes what the inputs leave out (a listener whose
	// certificates are missing or invalid).
	problems []string
	// decided records what Decisions are built from.
	decided decided
	err     error
}

// objKey names an object within its kind.
type objKey struct{ namespace, name string }

func keyOf(m metav1.Object) objKey { return objKey{m.GetNamespace(), m.GetName()} }

// sortedByKey returns a copy of objs sorted by namespace and name, leaving
// the caller's slice alone.
func sortedByKey[T metav1.Object](objs []T) []T {
	out := slices.Clone(objs)
	slices.SortFunc(out, func(a, b T) int {
		return cmp.Or(cmp.Compare(a.GetNamespace(), b.GetNamespace()), cmp.Compare(a.GetName(), b.GetName()))
	})
	return out
}

// olderFirst orders objects by creation, then namespace/name: the Gateway
// API's tie-break between routes, and Sluice's between policies.
func olderFirst(a, b metav1.Object) int {
	ta, tb := a.GetCreationTimestamp(), b.GetCreationTimestamp()
	return cmp.Or(ta.Time.Compare(tb.Time), cmp.Compare(a.GetNamespace(), b.GetNamespace()), cmp.Compare(a.GetName(), b.GetName()))
}

func translate(in *Inputs) *translation {
	t := &translation{
		in:              in,
		services:        map[objKey]*resource.Service{},
		endpoints:       map[string][]*resource.Endpoint{},
		policies:        map[objKey]*resource.BackendPolicy{},
		meshAttached:    map[objKey][]meshAttachment{},
		gatewayAttached: map[objKey][]routeObj{},
		secrets:         map[objKey]*corev1.Secret{},
		snap:            NewSnapshot(),
		decided: decided{
			listeners:    map[listenerKey]*ListenerDecision{},
			outcomes:     map[routeObj]map[listenerKey]outcomeWhy{},
			meshAttached: map[routeObj]map[objKey]bool{},
		},
	}
	for _, s := range in.Secrets {
		t.secrets[keyOf(s)] = s
	}
	for _, s := range in.Services {
		t.services[keyOf(s)] = s
	}
	for _, e := range sortedByKey(in.Endpoints) {
		t.endpoints[e.Namespace] = append(t.endpoints[e.Namespace], e)
	}
	t.indexPolicies()
	t.indexRoutes()

	for _, svc := range sortedByKey(in.Services) {
		t.addService(svc)
	}
	for _, gw := range sortedByKey(in.Gateways) {
		if gw.Spec.GatewayClassName == resource.GatewayClassName {
			t.addGateway(gw)
		}
	}
	t.snap.problems = append(slices.Clone(t.problems), t.dropped...)
	return t
}

// indexPolicies picks the BackendPolicy of each Service (of those that
// exist: a route to a missing Service fails anyway). When several target
// one Service the oldest wins (then the first by namespace/name), as the
// Gateway API resolves policy conflicts (GEP-713): a newer policy cannot
// silently change what an established one set, and the choice is stable.
func (t *translation) indexPolicies() {
	policies := slices.Clone(t.in.BackendPolicies)
	slices.SortFunc(policies, func(a, b *resource.BackendPolicy) int { return olderFirst(a, b) })
	for _, p := range policies {
		for _, ref := range p.Spec.TargetRefs {
			if ref.Kind != "Service" || (ref.Group != "" && ref.Group != resource.Group) {
				continue
			}
			k := objKey{p.Namespace, ref.Name}
			if _, exists := t.services[k]; !exists {
				continue
			}
			if _, taken := t.policies[k]; !taken {
				t.policies[k] = p
			}
		}
	}
}

// Resource names; see the naming contract in doc.go.

// serviceName is the name of a Service's resources for its first port.
func serviceName(namespace, name string) string { return name + "." + namespace }

// servicePortName is the name of a Service's resources for one port.
func servicePortName(namespace, name string, port int32) string {
	return serviceName(namespace, name) + ":" + strconv.Itoa(int(port))
}

// gatewayName is the name of a Gateway's Listener and RouteConfiguration on one port.
func gatewayName(namespace, name string, port int32) string {
	return namespace + "/" + name + ":" + strconv.Itoa(int(port))
}

// backendCluster is the cluster a backendRef to Service ns/name, port,
// reaches: "<name>.<ns>" for the Service's first port, else
// "<name>.<ns>:<port>". A Service or port that does not exist still gets the
// name it would have, so requests to it fail instead of going elsewhere.
func (t *translation) backendCluster(namespace, name string, port int32) string {
	if svc, ok := t.services[objKey{namespace, name}]; ok && len(svc.Spec.Ports) > 0 && svc.Spec.Ports[0].Port == port {
		return serviceName(namespace, name)
	}
	return servicePortName(namespace, name, port)
}

// backendRefKey resolves a backendRef's Service and port against the
// namespace of the route holding it.
func backendRefKey(routeNamespace string, ref gatewayv1.BackendObjectReference) (objKey, int32) {
	ns := routeNamespace
	if ref.Namespace != nil && *ref.Namespace != "" {
		ns = string(*ref.Namespace)
	}
	var port int32
	if ref.Port != nil {
		port = int32(*ref.Port)
	}
	return objKey{ns, string(ref.Name)}, port
}

// validator is what protoc-gen-validate generates on every Envoy message.
type validator interface{ ValidateAll() error }

// add validates m and puts it into the snapshot, or records why it did not.
func (t *translation) add(typeURL, name string, m proto.Message) {
	if v, ok := m.(validator); ok {
		if err := v.ValidateAll(); err != nil {
			t.dropped = append(t.dropped, fmt.Sprintf("%s %s: %v", messageName(typeURL), name, err))
			return
		}
	}
	r, err := NewResource(name, m)
	if err != nil {
		if t.err == nil {
			t.err = err
		}
		return
	}
	t.snap.Add(typeURL, r)
}

// messageName is the message name of a type URL, for messages.
func messageName(typeURL string) string {
	return typeURL[strings.LastIndex(typeURL, ".")+1:]
}

// toAny packs an extension's config. Marshaling is deterministic so that
// equal configs give equal bytes (and equal resource versions).
func (t *translation) toAny(m proto.Message) *anypb.Any {
	data, err := proto.MarshalOptions{Deterministic: true}.Marshal(m)
	if err != nil && t.err == nil {
		t.err = fmt.Errorf("xds: marshal %s: %w", m.ProtoReflect().Descriptor().FullName(), err)
	}
	return &anypb.Any{TypeUrl: "type.googleapis.com/" + string(m.ProtoReflect().Descriptor().FullName()), Value: data}
}

// adsSource is the config source of every dynamic resource Sluice refers
// to: the same ADS stream.
func adsSource() *corev3.ConfigSource {
	return &corev3.ConfigSource{
		ResourceApiVersion:    corev3.ApiVersion_V3,
		ConfigSourceSpecifier: &corev3.ConfigSource_Ads{Ads: &corev3.AggregatedConfigSource{}},
	}
}
