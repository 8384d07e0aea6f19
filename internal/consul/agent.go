package consul

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"strconv"
	"strings"

	"github.com/hashicorp/consul/api"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/sluice/sluice/internal/resource"
	"github.com/sluice/sluice/internal/store"
)

// registerService serves PUT /v1/agent/service/register: the registration
// becomes an Endpoint, and a Service if its name has none (see translate).
// Registering an ID again replaces its Endpoint's spec, labels and
// annotations and keeps its health.
func (f *Facade) registerService(w http.ResponseWriter, r *http.Request) (any, error) {
	ns, err := namespace(r)
	if err != nil {
		return nil, err
	}
	var reg api.AgentServiceRegistration
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&reg); err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, err
		}
		return nil, badRequest("Request decode failed: %v", err)
	}
	if reg.Namespace != "" {
		if ns, err = checkNamespace(reg.Namespace); err != nil {
			return nil, err
		}
	}
	out, err := translate(&reg, ns, f.node, remoteIP(r))
	if err != nil {
		return nil, err
	}
	ctx := r.Context()
	ep := out.endpoint
	prev, err := f.registered(ctx, ns, out.id)
	switch {
	case errors.Is(err, errNotRegistered):
		return nil, badRequest("Invalid service ID %q: Endpoint %q in namespace %q exists and was not registered through the Consul API; choose another ID",
			out.id, ep.Name, ns)
	case err != nil && !errors.Is(err, resource.ErrNotFound):
		return nil, err
	}
	// The Service first, so that the Endpoint routes as soon as it exists.
	// Most registrations find it there: a read costs etcd less than a
	// create that fails (a transaction goes through raft either way).
	if _, err := f.store.Get(ctx, resource.ServiceKind, ns, out.service.Name); errors.Is(err, resource.ErrNotFound) {
		if _, err := f.store.Create(ctx, out.service, store.WriteOptions{}); err != nil && !errors.Is(err, resource.ErrAlreadyExists) {
			return nil, err
		}
	} else if err != nil {
		return nil, err
	}
	if err := f.write(ctx, ep, prev == nil); err != nil {
		return nil, err
	}
	for _, c := range out.checks {
		f.rememberCheck(ns, c.ID, ep.Name)
	}
	// As Consul, a check keeps its state across registrations: the
	// initial status applies to a new TTL check only.
	if out.initial != "" && (prev == nil || prev.Spec.TTL == nil) {
		if err := f.heartbeat(ctx, ns, ep.Name, out.initial, ""); err != nil {
			return nil, err
		}
	}
	return nil, nil
}

// write stores a registration's Endpoint: created when new (one etcd
// transaction), else updated, which keeps its status.
func (f *Facade) write(ctx context.Context, ep *resource.Endpoint, isNew bool) error {
	if isNew {
		_, err := f.store.Create(ctx, ep, store.WriteOptions{})
		if !errors.Is(err, resource.ErrAlreadyExists) {
			return err
		}
		// Registered concurrently: this registration replaces that one.
	}
	_, _, err := f.store.Apply(ctx, ep, store.WriteOptions{})
	return err
}

// errNotRegistered says an Endpoint exists under the name of a service ID
// but is not that ID's registration.
var errNotRegistered = errors.New("endpoint not registered through the Consul API")

// registered returns the Endpoint of a registered service ID: ErrNotFound
// when there is none, errNotRegistered when the name is another's.
func (f *Facade) registered(ctx context.Context, ns, id string) (*resource.Endpoint, error) {
	obj, err := f.store.Get(ctx, resource.EndpointKind, ns, endpointName(id))
	if err != nil {
		return nil, err
	}
	ep := obj.(*resource.Endpoint)
	if ep.Annotations[annotationID] != id {
		return nil, errNotRegistered
	}
	return ep, nil
}

// registeredAt reads the registration of the service ID in the request's
// path; ep is nil when there is none.
func (f *Facade) registeredAt(r *http.Request) (ns, id string, ep *resource.Endpoint, err error) {
	if ns, err = namespace(r); err != nil {
		return "", "", nil, err
	}
	id = r.PathValue("id")
	ep, err = f.registered(r.Context(), ns, id)
	if errors.Is(err, resource.ErrNotFound) || errors.Is(err, errNotRegistered) {
		return ns, id, nil, nil
	}
	return ns, id, ep, err
}

// unknownService is Consul's 404 for a service ID the agent does not have.
func unknownService(id string) error {
	return errorf(http.StatusNotFound, "Unknown service ID %q. Ensure that the service ID is passed, not the service name.", id)
}

// deregisterService serves PUT /v1/agent/service/deregister/{id}: it
// deletes the registration's Endpoint. The Service stays (it may hold
// routes); with no Endpoint left it drops out of the catalog.
func (f *Facade) deregisterService(w http.ResponseWriter, r *http.Request) (any, error) {
	ns, id, ep, err := f.registeredAt(r)
	if err != nil {
		return nil, err
	}
	if ep == nil {
		return nil, unknownService(id)
	}
	_, err = f.store.Delete(r.Context(), resource.EndpointKind, ns, ep.Name, store.Preconditions{UID: ep.UID}, store.WriteOptions{})
	if errors.Is(err, resource.ErrNotFound) || errors.Is(err, resource.ErrConflict) {
		return nil, unknownService(id) // deleted, or replaced, meanwhile
	}
	return nil, err
}

// checkState serves PUT /v1/agent/check/pass|warn|fail/{id}?note=.
func (f *Facade) checkState(state resource.CheckState) endpoint {
	return func(w http.ResponseWriter, r *http.Request) (any, error) {
		return nil, f.updateCheck(r, r.PathValue("id"), state, r.URL.Query().Get("note"))
	}
}

// checkUpdate serves PUT /v1/agent/check/update/{id} with {Status, Output}.
func (f *Facade) checkUpdate(w http.ResponseWriter, r *http.Request) (any, error) {
	var u struct{ Status, Output string }
	if err := json.NewDecoder(r.Body).Decode(&u); err != nil {
		return nil, badRequest("Request decode failed: %v", err)
	}
	switch u.Status {
	case api.HealthPassing, api.HealthWarning, api.HealthCritical:
	default:
		return nil, badRequest("Invalid check status: '%s'", u.Status)
	}
	return nil, f.updateCheck(r, r.PathValue("id"), resource.CheckState(u.Status), u.Output)
}

// updateCheck sets a TTL check's state: a heartbeat of its Endpoint.
func (f *Facade) updateCheck(r *http.Request, checkID string, state resource.CheckState, output string) error {
	ns, err := namespace(r)
	if err != nil {
		return err
	}
	ep, def, err := f.findCheck(r.Context(), ns, checkID)
	if err != nil {
		return err
	}
	if def.Type != checkTTL {
		return noTTL(checkID)
	}
	err = f.heartbeat(r.Context(), ns, ep.Name, state, output)
	switch {
	case errors.Is(err, resource.ErrNotFound):
		return unknownCheck(checkID)
	case errors.Is(err, resource.ErrBadRequest):
		return noTTL(checkID) // the Endpoint's TTL was removed meanwhile
	}
	return err
}

// heartbeat records a heartbeat, retrying one that raced another replica's.
func (f *Facade) heartbeat(ctx context.Context, ns, name string, state resource.CheckState, output string) error {
	var err error
	for range 3 {
		if err = f.registry.Heartbeat(ctx, ns, name, state, output); !errors.Is(err, resource.ErrConflict) {
			return err
		}
	}
	return err
}

func unknownCheck(id string) error {
	return errorf(http.StatusNotFound, "Unknown check ID %q. Ensure that the check ID is passed, not the check name.", id)
}

func noTTL(id string) error {
	return errorf(http.StatusInternalServerError, "CheckID %q does not have associated TTL", id)
}

// findCheck finds the Endpoint holding a check ID: Consul's default IDs
// (service:<id>[:<n>]) name their Endpoint; custom IDs are found by the
// label holding their hash. The last Endpoint seen for an ID is remembered.
func (f *Facade) findCheck(ctx context.Context, ns, checkID string) (*resource.Endpoint, checkDef, error) {
	try := func(name string) (*resource.Endpoint, checkDef, bool, error) {
		obj, err := f.store.Get(ctx, resource.EndpointKind, ns, name)
		if errors.Is(err, resource.ErrNotFound) {
			return nil, checkDef{}, false, nil
		} else if err != nil {
			return nil, checkDef{}, false, err
		}
		ep := obj.(*resource.Endpoint)
		def, ok := findDef(ep, checkID)
		return ep, def, ok, nil
	}
	var names []string
	if name, ok := f.rememberedCheck(ns, checkID); ok {
		names = append(names, name)
	}
	if rest, ok := strings.CutPrefix(checkID, "service:"); ok {
		names = append(names, endpointName(rest))
		if i := strings.LastIndexByte(rest, ':'); i > 0 {
			if _, err := strconv.Atoi(rest[i+1:]); err == nil {
				names = append(names, endpointName(rest[:i]))
			}
		}
	}
	for _, name := range names {
		ep, def, ok, err := try(name)
		if err != nil {
			return nil, checkDef{}, err
		}
		if ok {
			f.rememberCheck(ns, checkID, ep.Name)
			return ep, def, nil
		}
	}
	sel := labels.SelectorFromSet(labels.Set{checkLabelPrefix + checkHash(checkID): "true"})
	objs, _, err := f.store.List(ctx, resource.EndpointKind, ns, sel)
	if err != nil {
		return nil, checkDef{}, err
	}
	for _, obj := range objs {
		ep := obj.(*resource.Endpoint)
		if def, ok := findDef(ep, checkID); ok {
			f.rememberCheck(ns, checkID, ep.Name)
			return ep, def, nil
		}
	}
	return nil, checkDef{}, unknownCheck(checkID)
}

// findDef returns the registered check of ep with ID checkID.
func findDef(ep *resource.Endpoint, checkID string) (checkDef, bool) {
	if ep.Annotations[annotationID] == "" {
		return checkDef{}, false
	}
	for _, d := range checkDefs(ep) {
		if d.ID == checkID {
			return d, true
		}
	}
	return checkDef{}, false
}

// checkCacheSize bounds the remembered check IDs; past it they are forgotten
// all at once (a lookup costs a label list, then is remembered again).
const checkCacheSize = 1 << 16

func (f *Facade) rememberCheck(ns, checkID, name string) {
	f.checksMu.Lock()
	defer f.checksMu.Unlock()
	if len(f.checks) >= checkCacheSize {
		clear(f.checks)
	}
	f.checks[ns+"/"+checkID] = name
}

func (f *Facade) rememberedCheck(ns, checkID string) (string, bool) {
	f.checksMu.Lock()
	defer f.checksMu.Unlock()
	name, ok := f.checks[ns+"/"+checkID]
	return name, ok
}

// agentServices serves GET /v1/agent/services: every registration of the
// namespace (the facade is one agent for all of them), by service ID.
func (f *Facade) agentServices(w http.ResponseWriter, r *http.Request) (any, error) {
	eps, err := f.registrations(w, r)
	if err != nil {
		return nil, err
	}
	out := map[string]*api.AgentService{}
	for _, ep := range eps {
		out[ep.Annotations[annotationID]] = f.instance(ep, nil, ep.Labels[labelService])
	}
	return out, nil
}

// registrations reads the Endpoints of the request's namespace registered
// through the facade, and sets the read's headers.
func (f *Facade) registrations(w http.ResponseWriter, r *http.Request) ([]*resource.Endpoint, error) {
	ns, err := namespace(r)
	if err != nil {
		return nil, err
	}
	snap, err := f.snapshot(r.Context(), ns, 0)
	if err != nil {
		return nil, err
	}
	var out []*resource.Endpoint
	for _, ep := range snap.endpoints {
		if ep.Annotations[annotationID] != "" {
			out = append(out, ep)
		}
	}
	setQueryMeta(w, snap.index)
	return out, nil
}

// agentServiceByID serves GET /v1/agent/service/{id}.
func (f *Facade) agentServiceByID(w http.ResponseWriter, r *http.Request) (any, error) {
	_, id, ep, err := f.registeredAt(r)
	if err != nil {
		return nil, err
	}
	if ep == nil {
		return nil, errorf(http.StatusNotFound, "unknown service ID: %s", id)
	}
	setQueryMeta(w, resourceVersion(ep))
	return f.instance(ep, nil, ep.Labels[labelService]), nil
}

// agentChecks serves GET /v1/agent/checks: the checks of every registration
// of the namespace, by check ID.
func (f *Facade) agentChecks(w http.ResponseWriter, r *http.Request) (any, error) {
	eps, err := f.registrations(w, r)
	if err != nil {
		return nil, err
	}
	out := map[string]*api.AgentCheck{}
	for _, ep := range eps {
		for _, c := range f.serviceChecks(ep, ep.Labels[labelService]) {
			out[c.CheckID] = &api.AgentCheck{
				Node: c.Node, CheckID: c.CheckID, Name: c.Name, Status: c.Status, Notes: c.Notes, Output: c.Output,
				ServiceID: c.ServiceID, ServiceName: c.ServiceName, Type: c.Type, Definition: c.Definition,
			}
		}
	}
	return out, nil
}

// agentSelf serves GET /v1/agent/self, the part clients read: the
// datacenter and node name.
func (f *Facade) agentSelf(w http.ResponseWriter, r *http.Request) (any, error) {
	return map[string]any{
		"Config": map[string]any{
			"Datacenter": Datacenter, "PrimaryDatacenter": Datacenter, "NodeName": f.node, "Server": true,
		},
		"Member": map[string]any{"Name": f.node, "Status": 1},
		"Meta":   map[string]string{},
	}, nil
}

// statusLeader serves GET /v1/status/leader: the address this facade
// answers on, since every replica can answer.
func (f *Facade) statusLeader(w http.ResponseWriter, r *http.Request) (any, error) {
	return localAddr(r), nil
}

// statusPeers serves GET /v1/status/peers.
func (f *Facade) statusPeers(w http.ResponseWriter, r *http.Request) (any, error) {
	return []string{localAddr(r)}, nil
}

func localAddr(r *http.Request) string {
	if a, ok := r.Context().Value(http.LocalAddrContextKey).(net.Addr); ok {
		return a.String()
	}
	return r.Host
}
