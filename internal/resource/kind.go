package resource

import (
	"fmt"
	"sort"
	"strings"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/validation/field"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"
)

// Object is what the store keeps: a typed object with Kubernetes metadata.
type Object interface {
	runtime.Object
	metav1.Object
}

// Kind describes one kind of resource: its name in every form the API and CLI
// accept, how to make and check its objects, and whether it has a status
// subresource.
type Kind struct {
	Group      string
	Version    string
	Kind       string
	Plural     string
	Singular   string
	ShortNames []string
	// HasStatus says status is a subresource: the main path never changes it
	// and the status path never changes anything else.
	HasStatus bool
	// Sensitive says the objects hold secrets: only identities that may
	// write can read them (the API answers 403 to the others).
	Sensitive bool

	newObject func() Object
	newList   func() runtime.Object
	// defaults fills unset fields; it must be idempotent.
	defaults func(Object)
	// validate checks a defaulted object.
	validate func(Object) field.ErrorList
	// validateStatus checks the status of a defaulted object.
	validateStatus func(Object) field.ErrorList
}

// GVK is the kind's group, version and kind.
func (k *Kind) GVK() schema.GroupVersionKind {
	return schema.GroupVersionKind{Group: k.Group, Version: k.Version, Kind: k.Kind}
}

// APIVersion is the apiVersion field of the kind's objects ("v1" for the core group).
func (k *Kind) APIVersion() string {
	if k.Group == "" {
		return k.Version
	}
	return k.Group + "/" + k.Version
}

// String names the kind the way users write it in errors: "Service.sluice.io".
func (k *Kind) String() string {
	if k.Group == "" {
		return k.Kind
	}
	return k.Kind + "." + k.Group
}

// New returns an empty object of the kind with its TypeMeta set.
func (k *Kind) New() Object {
	o := k.newObject()
	o.GetObjectKind().SetGroupVersionKind(k.GVK())
	return o
}

// NewList returns an empty list of the kind with its TypeMeta set.
func (k *Kind) NewList() runtime.Object {
	l := k.newList()
	l.GetObjectKind().SetGroupVersionKind(k.GVK().GroupVersion().WithKind(k.Kind + "List"))
	return l
}

// ListOf returns the kind's list object holding objs, read at resourceVersion.
func (k *Kind) ListOf(objs []Object, resourceVersion string) (runtime.Object, error) {
	list := k.NewList()
	items := make([]runtime.Object, len(objs))
	for i, o := range objs {
		items[i] = o
	}
	if err := meta.SetList(list, items); err != nil {
		return nil, fmt.Errorf("resource: list of %s: %w", k, err)
	}
	lm, err := meta.ListAccessor(list)
	if err != nil {
		return nil, fmt.Errorf("resource: list of %s: %w", k, err)
	}
	lm.SetResourceVersion(resourceVersion)
	return list, nil
}

// Default fills the unset fields of obj with their defaults.
func (k *Kind) Default(obj Object) {
	if k.defaults != nil {
		k.defaults(obj)
	}
}

// Validate checks obj, which must be defaulted, including its metadata.
func (k *Kind) Validate(obj Object) field.ErrorList {
	errs := validateMeta(k, obj)
	if k.validate != nil {
		errs = append(errs, k.validate(obj)...)
	}
	return errs
}

// ValidateStatus checks the status of obj.
func (k *Kind) ValidateStatus(obj Object) field.ErrorList {
	if k.validateStatus == nil {
		return nil
	}
	return k.validateStatus(obj)
}

// Names returns every name the CLI accepts for the kind, lower case.
func (k *Kind) Names() []string {
	names := []string{strings.ToLower(k.Kind), k.Plural, k.Singular}
	return append(names, k.ShortNames...)
}

// Registry is the set of kinds a server serves.
type Registry struct {
	kinds  []*Kind
	byGVK  map[schema.GroupVersionKind]*Kind
	byPath map[string]*Kind // "group/version/plural"
}

// NewRegistry returns a registry of kinds. It panics on a duplicate, which is a
// programming error in the kind list.
func NewRegistry(kinds ...*Kind) *Registry {
	r := &Registry{byGVK: map[schema.GroupVersionKind]*Kind{}, byPath: map[string]*Kind{}}
	for _, k := range kinds {
		if _, dup := r.byGVK[k.GVK()]; dup {
			panic(fmt.Sprintf("resource: kind %s registered twice", k))
		}
		r.kinds = append(r.kinds, k)
		r.byGVK[k.GVK()] = k
		r.byPath[k.Group+"/"+k.Version+"/"+k.Plural] = k
	}
	sort.SliceStable(r.kinds, func(i, j int) bool { return r.kinds[i].String() < r.kinds[j].String() })
	return r
}

// Kinds returns the registered kinds sorted by name.
func (r *Registry) Kinds() []*Kind { return r.kinds }

// ByGVK finds a kind by group, version and kind.
func (r *Registry) ByGVK(gvk schema.GroupVersionKind) (*Kind, bool) {
	k, ok := r.byGVK[gvk]
	return k, ok
}

// ByPlural finds a kind by the group, version and plural of its REST path.
func (r *Registry) ByPlural(group, version, plural string) (*Kind, bool) {
	k, ok := r.byPath[group+"/"+version+"/"+plural]
	return k, ok
}

// Builtin returns the registry of every kind Sluice serves. The list is explicit
// so that what the server serves is visible in one place.
func Builtin() *Registry {
	return NewRegistry(
		ServiceKind,
		EndpointKind,
		BackendPolicyKind,
		GatewayKind,
		HTTPRouteKind,
		GRPCRouteKind,
		SecretKind,
	)
}

// Sluice's own kinds.
var (
	ServiceKind = &Kind{
		Group: Group, Version: Version, Kind: "Service",
		Plural: "services", Singular: "service", ShortNames: []string{"svc"},
		newObject: func() Object { return &Service{} },
		newList:   func() runtime.Object { return &ServiceList{} },
		defaults:  func(o Object) { defaultService(o.(*Service)) },
		validate:  func(o Object) field.ErrorList { return validateService(o.(*Service)) },
	}
	EndpointKind = &Kind{
		Group: Group, Version: Version, Kind: "Endpoint",
		Plural: "endpoints", Singular: "endpoint", ShortNames: []string{"ep"},
		HasStatus:      true,
		newObject:      func() Object { return &Endpoint{} },
		newList:        func() runtime.Object { return &EndpointList{} },
		defaults:       func(o Object) { defaultEndpoint(o.(*Endpoint)) },
		validate:       func(o Object) field.ErrorList { return validateEndpoint(o.(*Endpoint)) },
		validateStatus: func(o Object) field.ErrorList { return validateEndpointStatus(o.(*Endpoint)) },
	}
	BackendPolicyKind = &Kind{
		Group: Group, Version: Version, Kind: "BackendPolicy",
		Plural: "backendpolicies", Singular: "backendpolicy", ShortNames: []string{"bp"},
		newObject: func() Object { return &BackendPolicy{} },
		newList:   func() runtime.Object { return &BackendPolicyList{} },
		defaults:  func(o Object) { defaultBackendPolicy(o.(*BackendPolicy)) },
		validate:  func(o Object) field.ErrorList { return validateBackendPolicy(o.(*BackendPolicy)) },
	}
)

// The Gateway API kinds, with the upstream types.
var (
	GatewayKind = &Kind{
		Group: gatewayv1.GroupName, Version: "v1", Kind: "Gateway",
		Plural: "gateways", Singular: "gateway", ShortNames: []string{"gw"},
		HasStatus: true,
		newObject: func() Object { return &gatewayv1.Gateway{} },
		newList:   func() runtime.Object { return &gatewayv1.GatewayList{} },
		defaults:  func(o Object) { defaultGateway(o.(*gatewayv1.Gateway)) },
		validate:  func(o Object) field.ErrorList { return validateGateway(o.(*gatewayv1.Gateway)) },
	}
	HTTPRouteKind = &Kind{
		Group: gatewayv1.GroupName, Version: "v1", Kind: "HTTPRoute",
		Plural: "httproutes", Singular: "httproute",
		HasStatus: true,
		newObject: func() Object { return &gatewayv1.HTTPRoute{} },
		newList:   func() runtime.Object { return &gatewayv1.HTTPRouteList{} },
		defaults:  func(o Object) { defaultHTTPRoute(o.(*gatewayv1.HTTPRoute)) },
		validate:  func(o Object) field.ErrorList { return validateHTTPRoute(o.(*gatewayv1.HTTPRoute)) },
	}
	GRPCRouteKind = &Kind{
		Group: gatewayv1.GroupName, Version: "v1", Kind: "GRPCRoute",
		Plural: "grpcroutes", Singular: "grpcroute",
		HasStatus: true,
		newObject: func() Object { return &gatewayv1.GRPCRoute{} },
		newList:   func() runtime.Object { return &gatewayv1.GRPCRouteList{} },
		defaults:  func(o Object) { defaultGRPCRoute(o.(*gatewayv1.GRPCRoute)) },
		validate:  func(o Object) field.ErrorList { return validateGRPCRoute(o.(*gatewayv1.GRPCRoute)) },
	}
)

// APIResource describes one kind in discovery (GET /apis).
type APIResource struct {
	Group        string   `json:"group"`
	Version      string   `json:"version"`
	Kind         string   `json:"kind"`
	Plural       string   `json:"plural"`
	Singular     string   `json:"singular"`
	ShortNames   []string `json:"shortNames,omitempty"`
	Namespaced   bool     `json:"namespaced"`
	Subresources []string `json:"subresources,omitempty"`
}

// Discovery is the body of GET /apis: every kind the server serves, so that
// clients such as the CLI resolve kind names without a built-in list.
type Discovery struct {
	Resources []APIResource `json:"resources"`
}
