package consul

import (
	"encoding/json"
	"net/http"
	"slices"

	"github.com/hashicorp/consul/api"
)

// catalogServices serves GET /v1/catalog/services: the name and tags of
// every Service of the namespace that selects at least one Endpoint —
// Endpoints made through Sluice's API count, a Consul client discovers them
// too. It blocks with ?index=.
func (f *Facade) catalogServices(w http.ResponseWriter, r *http.Request) (any, error) {
	return f.read(w, r, "", func(snap *snapshot) any {
		out := map[string][]string{}
		for _, svc := range snap.services {
			eps := snap.selected(svc)
			if len(eps) == 0 {
				continue
			}
			tags := []string{}
			for _, ep := range eps {
				for _, t := range tagsOf(ep) {
					if !slices.Contains(tags, t) {
						tags = append(tags, t)
					}
				}
			}
			slices.Sort(tags)
			out[svc.Name] = tags
		}
		return out
	})
}

// catalogService serves GET /v1/catalog/service/{name}: an entry per
// Endpoint the Service selects, healthy or not, filtered by ?tag=. It
// blocks with ?index=.
func (f *Facade) catalogService(w http.ResponseWriter, r *http.Request) (any, error) {
	name := r.PathValue("name")
	if name == "" {
		return nil, badRequest("Missing service name")
	}
	tags := r.URL.Query()["tag"]
	return f.read(w, r, name, func(snap *snapshot) any {
		out := []*api.CatalogService{}
		svc := snap.service(name)
		if svc == nil {
			return out
		}
		for _, ep := range snap.selected(svc) {
			inst := f.instance(ep, svc, name)
			if !hasTags(inst.Tags, tags) {
				continue
			}
			out = append(out, &api.CatalogService{
				Node: f.nodeOf(ep), Address: ep.Spec.Address, Datacenter: Datacenter,
				TaggedAddresses: map[string]string{}, NodeMeta: map[string]string{},
				ServiceID: inst.ID, ServiceName: name, ServiceAddress: inst.Address,
				ServiceTags: inst.Tags, ServiceMeta: inst.Meta, ServicePort: inst.Port,
				ServiceWeights: api.Weights{Passing: inst.Weights.Passing, Warning: inst.Weights.Warning},
				CreateIndex:    inst.CreateIndex, ModifyIndex: inst.ModifyIndex,
			})
		}
		return out
	})
}

// healthService serves GET /v1/health/service/{name}: an entry per Endpoint
// the Service selects, with its checks and its node's, filtered by ?tag=;
// with ?passing only those whose every check passes (a warning does not,
// as in Consul). It blocks with ?index=.
func (f *Facade) healthService(w http.ResponseWriter, r *http.Request) (any, error) {
	name := r.PathValue("name")
	if name == "" {
		return nil, badRequest("Missing service name")
	}
	q := r.URL.Query()
	tags := q["tag"]
	passing := false
	if _, ok := q["passing"]; ok {
		switch v := q.Get("passing"); v {
		case "", "1", "t", "T", "true", "TRUE", "True":
			passing = true
		case "0", "f", "F", "false", "FALSE", "False":
		default:
			return nil, badRequest("Invalid value for ?passing")
		}
	}
	return f.read(w, r, name, func(snap *snapshot) any {
		out := []*api.ServiceEntry{}
		svc := snap.service(name)
		if svc == nil {
			return out
		}
	entries:
		for _, ep := range snap.selected(svc) {
			inst := f.instance(ep, svc, name)
			if !hasTags(inst.Tags, tags) {
				continue
			}
			checks := append(api.HealthChecks{f.nodeCheck(ep)}, f.serviceChecks(ep, name)...)
			if passing {
				for _, c := range checks {
					if c.Status != api.HealthPassing {
						continue entries
					}
				}
			}
			out = append(out, &api.ServiceEntry{Node: f.nodeEntry(ep), Service: inst, Checks: checks})
		}
		return out
	})
}

// healthChecks serves GET /v1/health/checks/{name}: the checks of every
// Endpoint the Service selects. It blocks with ?index=.
func (f *Facade) healthChecks(w http.ResponseWriter, r *http.Request) (any, error) {
	name := r.PathValue("name")
	if name == "" {
		return nil, badRequest("Missing service name")
	}
	return f.read(w, r, name, func(snap *snapshot) any {
		out := api.HealthChecks{}
		if svc := snap.service(name); svc != nil {
			for _, ep := range snap.selected(svc) {
				out = append(out, f.serviceChecks(ep, name)...)
			}
		}
		return out
	})
}

// read answers a catalog or health read from a snapshot of the namespace,
// after waiting for a change with ?index= (of the service called name, or
// of any service when name is empty).
func (f *Facade) read(w http.ResponseWriter, r *http.Request, name string, answer func(*snapshot) any) (any, error) {
	ns, err := namespace(r)
	if err != nil {
		return nil, err
	}
	q, err := parseBlocking(r)
	if err != nil {
		return nil, err
	}
	minRev, changed, err := f.awaitChange(r.Context(), q, f.waitServices(ns, name))
	if err != nil {
		return nil, err
	}
	snap, err := f.snapshot(r.Context(), ns, minRev)
	if err != nil {
		return nil, err
	}
	index := snap.index
	if !changed {
		index = int64(q.Index)
	}
	setQueryMeta(w, index)
	// The waiters one change wakes share the snapshot, and most ask the
	// same question: encode each distinct answer once.
	key := r.URL.Path + "?" + answerQuery(r)
	if b, ok := snap.answers.Load(key); ok {
		return b.(json.RawMessage), nil
	}
	b, err := encodeJSON(r, answer(snap))
	if err != nil {
		return nil, err
	}
	snap.answers.Store(key, b)
	return b, nil
}

// answerQuery is the part of a read's query that shapes its answer: every
// parameter but those of blocking and of the token, canonically ordered.
func answerQuery(r *http.Request) string {
	q := r.URL.Query()
	for _, p := range []string{"index", "wait", "token"} {
		q.Del(p)
	}
	return q.Encode()
}
