package consul

import (
	"encoding/json"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/sluice/sluice/internal/resource"
)

// The node check every Consul node has, reported passing: the facade
// answers for every node it reports.
const (
	serfCheckID   = "serfHealth"
	serfCheckName = "Serf Health Status"
)

// instance is an Endpoint as a Consul service instance of the service
// called name; svc, when set, is the Service it was found through, whose
// first port picks the Endpoint's port.
func (f *Facade) instance(ep *resource.Endpoint, svc *resource.Service, name string) *api.AgentService {
	weight := 1
	if ep.Spec.Weight != nil {
		weight = int(*ep.Spec.Weight)
	}
	rv := resourceVersion(ep)
	return &api.AgentService{
		ID: serviceID(ep), Service: name, Tags: tagsOf(ep), Meta: metaOf(ep),
		Port: int(portOf(ep, svc)), Address: ep.Spec.Address,
		Weights:     api.AgentWeights{Passing: weight, Warning: 1},
		Datacenter:  Datacenter,
		CreateIndex: uint64(rv), ModifyIndex: uint64(rv),
	}
}

// serviceID is the Consul service ID of an Endpoint: the registered one, or
// the Endpoint's name for Endpoints made through Sluice's own API.
func serviceID(ep *resource.Endpoint) string {
	if id := ep.Annotations[annotationID]; id != "" {
		return id
	}
	return ep.Name
}

// nodeOf is the node an Endpoint is reported on: the one that took its
// registration, else this one.
func (f *Facade) nodeOf(ep *resource.Endpoint) string {
	if n := ep.Annotations[annotationNode]; n != "" {
		return n
	}
	return f.node
}

// node is the Consul node of an Endpoint. Its address is the Endpoint's:
// clients that fall back to the node's address when a service has none
// reach the instance.
func (f *Facade) nodeEntry(ep *resource.Endpoint) *api.Node {
	rv := uint64(resourceVersion(ep))
	return &api.Node{
		Node: f.nodeOf(ep), Address: ep.Spec.Address, Datacenter: Datacenter,
		TaggedAddresses: map[string]string{}, Meta: map[string]string{},
		CreateIndex: rv, ModifyIndex: rv,
	}
}

// tagsOf are the Consul tags of an Endpoint: the registered ones, else the
// tag.consul.sluice.io/ labels of an Endpoint made through Sluice's API.
func tagsOf(ep *resource.Endpoint) []string {
	if s, ok := ep.Annotations[annotationTags]; ok {
		var tags []string
		if json.Unmarshal([]byte(s), &tags) == nil && tags != nil {
			return tags
		}
	}
	tags := []string{}
	for k, v := range ep.Labels {
		if t, ok := strings.CutPrefix(k, tagLabelPrefix); ok && v == "true" {
			tags = append(tags, t)
		}
	}
	slices.Sort(tags)
	return tags
}

// metaOf is the Consul meta of an Endpoint: the registered one, else its labels.
func metaOf(ep *resource.Endpoint) map[string]string {
	if s, ok := ep.Annotations[annotationMeta]; ok {
		var meta map[string]string
		if json.Unmarshal([]byte(s), &meta) == nil && meta != nil {
			return meta
		}
	}
	meta := make(map[string]string, len(ep.Labels))
	for k, v := range ep.Labels {
		meta[k] = v
	}
	return meta
}

// portOf is the port an Endpoint serves svc on: the port named like the
// Service's first port, else its only (or first) port.
func portOf(ep *resource.Endpoint, svc *resource.Service) int32 {
	if len(ep.Spec.Ports) == 0 {
		return 0
	}
	if svc != nil && len(svc.Spec.Ports) > 0 && svc.Spec.Ports[0].Name != "" {
		for _, p := range ep.Spec.Ports {
			if p.Name == svc.Spec.Ports[0].Name {
				return p.Port
			}
		}
	}
	return ep.Spec.Ports[0].Port
}

func resourceVersion(ep *resource.Endpoint) int64 {
	n, _ := strconv.ParseInt(ep.ResourceVersion, 10, 64)
	return n
}

// checkDefs are the registered checks of an Endpoint; for one made through
// Sluice's API, the checks its spec declares, with Consul's default IDs.
func checkDefs(ep *resource.Endpoint) []checkDef {
	if s, ok := ep.Annotations[annotationChecks]; ok {
		var defs []checkDef
		if json.Unmarshal([]byte(s), &defs) == nil {
			return defs
		}
	}
	if ep.Annotations[annotationID] != "" {
		return nil // registered without checks
	}
	var defs []checkDef
	if ttl := ep.Spec.TTL; ttl != nil {
		defs = append(defs, checkDef{Type: checkTTL, TTL: ttl.Duration.String()})
	}
	if hc := ep.Spec.HealthCheck; hc != nil {
		d := checkDef{Type: checkTCP}
		switch {
		case hc.HTTP != nil:
			d.Type = checkHTTP
		case hc.GRPC != nil:
			d.Type = checkGRPC
		}
		if hc.Interval != nil {
			d.Interval = hc.Interval.Duration.String()
		}
		if hc.Timeout != nil {
			d.Timeout = hc.Timeout.Duration.String()
		}
		defs = append(defs, d)
	}
	for i := range defs {
		defs[i].ID = defaultCheckID(ep.Name, i, len(defs))
	}
	return defs
}

// serviceChecks are the Consul checks of an Endpoint as an instance of the
// service called name: one per registered check, in the state its entry in
// status.checks says (none yet is critical, Consul's initial state). An
// Endpoint without checks that something outside marked unhealthy gets a
// critical check saying so.
func (f *Facade) serviceChecks(ep *resource.Endpoint, name string) []*api.HealthCheck {
	defs := checkDefs(ep)
	states := map[string]resource.CheckStatus{}
	for _, c := range ep.Status.Checks {
		states[c.Name] = c
	}
	rv := uint64(resourceVersion(ep))
	id, tags, node := serviceID(ep), tagsOf(ep), f.nodeOf(ep)
	out := make([]*api.HealthCheck, 0, len(defs)+1)
	for _, d := range defs {
		st := states[d.statusName()]
		status := string(st.State)
		if status == "" {
			status = api.HealthCritical
		}
		if d.Name == "" {
			d.Name = "Service '" + name + "' check"
		}
		c := &api.HealthCheck{
			Node: node, CheckID: d.ID, Name: d.Name, Status: status, Notes: d.Notes, Output: st.Output,
			ServiceID: id, ServiceName: name, ServiceTags: tags, Type: d.Type,
			CreateIndex: rv, ModifyIndex: rv,
		}
		def := &c.Definition
		switch d.Type {
		case checkHTTP:
			def.HTTP, def.Header, def.Method = d.Target, d.Header, "GET"
		case checkTCP:
			def.TCP = d.Target
		case checkGRPC:
			def.GRPC = d.Target
		}
		def.IntervalDuration, _ = time.ParseDuration(d.Interval)
		def.TimeoutDuration, _ = time.ParseDuration(d.Timeout)
		out = append(out, c)
	}
	if len(defs) == 0 && ep.Status.Health == resource.HealthUnhealthy {
		out = append(out, &api.HealthCheck{
			Node: node, CheckID: "service:" + id, Name: "Sluice endpoint health", Status: api.HealthCritical,
			Notes: "status.health of the Endpoint is unhealthy", Output: ep.Status.Message,
			ServiceID: id, ServiceName: name, ServiceTags: tags,
			CreateIndex: rv, ModifyIndex: rv,
		})
	}
	return out
}

// nodeCheck is the passing serfHealth check of an Endpoint's node.
func (f *Facade) nodeCheck(ep *resource.Endpoint) *api.HealthCheck {
	rv := uint64(resourceVersion(ep))
	return &api.HealthCheck{
		Node: f.nodeOf(ep), CheckID: serfCheckID, Name: serfCheckName, Status: api.HealthPassing,
		Output: "Agent alive and reachable", ServiceTags: []string{}, CreateIndex: rv, ModifyIndex: rv,
	}
}

// hasTags says whether tags holds every one of want, ignoring case as
// Consul's tag filter does.
func hasTags(tags, want []string) bool {
	for _, w := range want {
		if !slices.ContainsFunc(tags, func(t string) bool { return strings.EqualFold(t, w) }) {
			return false
		}
	}
	return true
}
