package xds

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"sort"

	rsrc "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
)

// The resource types Sluice serves.
const (
	ListenerType = rsrc.ListenerType
	RouteType    = rsrc.RouteType
	ClusterType  = rsrc.ClusterType
	EndpointType = rsrc.EndpointType
	SecretType   = rsrc.SecretType
)

// Types lists the served types in the order a client should apply them
// (clusters before the routes that use them, as Envoy recommends).
var Types = []string{ClusterType, EndpointType, ListenerType, RouteType, SecretType}

// Resource is one xDS resource, marshaled once, with a version that is a
// hash of its content.
type Resource struct {
	Name    string
	Message proto.Message
	Any     *anypb.Any
	Version string
}

// NewResource marshals m deterministically and versions it by content.
func NewResource(name string, m proto.Message) (*Resource, error) {
	data, err := proto.MarshalOptions{Deterministic: true}.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("xds: marshal %s: %w", name, err)
	}
	sum := sha256.Sum256(data)
	return &Resource{
		Name:    name,
		Message: m,
		Any:     &anypb.Any{TypeUrl: rsrc.APITypePrefix + string(m.ProtoReflect().Descriptor().FullName()), Value: data},
		Version: hex.EncodeToString(sum[:8]),
	}, nil
}

// Snapshot is an immutable set of every resource Sluice serves, by type and
// name. The translator builds a whole new one for every change; the cache
// serves each client the part it asks for.
type Snapshot struct {
	resources map[string]map[string]*Resource
	// scopes lists, for a gateway ("namespace/name"), the names of each type
	// it gets when it subscribes to everything (a wildcard request).
	scopes map[string]map[string][]string
	// problems describes what the translation left out, for the logs.
	problems []string
}

// NewSnapshot returns an empty snapshot.
func NewSnapshot() *Snapshot {
	return &Snapshot{resources: map[string]map[string]*Resource{}, scopes: map[string]map[string][]string{}}
}

// Add puts a resource of a type into the snapshot, replacing one of the same
// name. It is for building a snapshot, before it is shared.
func (s *Snapshot) Add(typeURL string, r *Resource) {
	m := s.resources[typeURL]
	if m == nil {
		m = map[string]*Resource{}
		s.resources[typeURL] = m
	}
	m[r.Name] = r
}

// AddScope records that gateway gets the named resources of typeURL when it
// subscribes to every resource of that type. For building a snapshot.
func (s *Snapshot) AddScope(gateway, typeURL string, names ...string) {
	m := s.scopes[gateway]
	if m == nil {
		m = map[string][]string{}
		s.scopes[gateway] = m
	}
	m[typeURL] = append(m[typeURL], names...)
}

// Get returns a resource by type and name.
func (s *Snapshot) Get(typeURL, name string) (*Resource, bool) {
	r, ok := s.resources[typeURL][name]
	return r, ok
}

// Names returns the names of every resource of a type, sorted.
func (s *Snapshot) Names(typeURL string) []string {
	names := make([]string, 0, len(s.resources[typeURL]))
	for n := range s.resources[typeURL] {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// Scope returns the names of typeURL a gateway gets for a wildcard request.
func (s *Snapshot) Scope(gateway, typeURL string) []string {
	return s.scopes[gateway][typeURL]
}

// Problems describes the resources and routes the translation left out
// because they failed validation (a translator bug: inputs are validated on
// write).
func (s *Snapshot) Problems() []string { return s.problems }

// Len is the number of resources of a type.
func (s *Snapshot) Len(typeURL string) int { return len(s.resources[typeURL]) }
