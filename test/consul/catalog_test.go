package consule2e

import (
	"context"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/sluice/sluice/internal/client"
	"github.com/sluice/sluice/internal/resource"
	"github.com/sluice/sluice/internal/server"
)

// TestCatalog: registrations show in the catalog with their tags, meta,
// address, port and weights; ?tag filters; an Endpoint made through
// Sluice's own API shows too, under the Service that selects it.
func TestCatalog(t *testing.T) {
	t.Parallel()
	s := start(t, server.Config{}, "")
	agent := s.consul.Agent()
	for _, reg := range []*api.AgentServiceRegistration{
		{ID: "api-1", Name: "api", Address: "10.0.0.1", Port: 8080, Tags: []string{"v1", "primary"},
			Meta: map[string]string{"version": "1.0", "team": "core"}, Weights: &api.AgentWeights{Passing: 3, Warning: 1}},
		{ID: "api-2", Name: "api", Address: "10.0.0.2", Port: 8080, Tags: []string{"v1"}},
		{ID: "DB Primary", Name: "db", Address: "db-1.internal", Port: 5432, Tags: []string{"Needs Quoting!"}},
	} {
		if err := agent.ServiceRegister(reg); err != nil {
			t.Fatalf("register %s: %v", reg.ID, err)
		}
	}
	// A Service and Endpoint made through Sluice's API.
	ctx := context.Background()
	api2 := s.srv.Client(t, "")
	svc := &resource.Service{
		TypeMeta:   metav1.TypeMeta{APIVersion: "sluice.io/v1alpha1", Kind: "Service"},
		ObjectMeta: metav1.ObjectMeta{Name: "cache"},
		Spec:       resource.ServiceSpec{Selector: map[string]string{"app": "cache"}, Ports: []resource.ServicePort{{Name: "redis", Port: 6379, Protocol: resource.ProtocolTCP}}},
	}
	ep := &resource.Endpoint{
		TypeMeta:   metav1.TypeMeta{APIVersion: "sluice.io/v1alpha1", Kind: "Endpoint"},
		ObjectMeta: metav1.ObjectMeta{Name: "cache-a", Labels: map[string]string{"app": "cache", "tag.consul.sluice.io/fast": "true"}},
		Spec:       resource.EndpointSpec{Address: "10.0.0.9", Ports: []resource.EndpointPort{{Name: "metrics", Port: 9121}, {Name: "redis", Port: 6380}}},
	}
	if err := api2.Create(ctx, client.ResourceOf(resource.ServiceKind), "default", svc, nil, false); err != nil {
		t.Fatal(err)
	}
	if err := api2.Create(ctx, client.ResourceOf(resource.EndpointKind), "default", ep, nil, false); err != nil {
		t.Fatal(err)
	}

	services, meta, err := s.consul.Catalog().Services(nil)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string][]string{"api": {"primary", "v1"}, "db": {"Needs Quoting!"}, "cache": {"fast"}}
	if !maps.EqualFunc(services, want, slices.Equal) {
		t.Errorf("catalog services = %v, want %v", services, want)
	}
	if meta.LastIndex == 0 || !meta.KnownLeader {
		t.Errorf("query meta %+v: want an index and a known leader", meta)
	}

	all, _, err := s.consul.Catalog().Service("api", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	slices.SortFunc(all, func(a, b *api.CatalogService) int { return strings.Compare(a.ServiceID, b.ServiceID) })
	if len(all) != 2 {
		t.Fatalf("catalog service api: %d entries, want 2", len(all))
	}
	a1 := all[0]
	if a1.ServiceID != "api-1" || a1.ServiceName != "api" || a1.ServiceAddress != "10.0.0.1" || a1.Address != "10.0.0.1" ||
		a1.ServicePort != 8080 || a1.Datacenter != "dc1" || a1.Node == "" || a1.ServiceWeights.Passing != 3 ||
		!slices.Equal(a1.ServiceTags, []string{"v1", "primary"}) || a1.ServiceMeta["version"] != "1.0" || a1.ServiceMeta["team"] != "core" ||
		a1.ModifyIndex == 0 {
		t.Errorf("catalog entry of api-1 = %+v", a1)
	}
	primary, _, err := s.consul.Catalog().Service("api", "primary", nil)
	if err != nil || len(primary) != 1 || primary[0].ServiceID != "api-1" {
		t.Errorf("catalog service api ?tag=primary: %v, %v; want api-1 only", ids(primary), err)
	}
	both, _, err := s.consul.Catalog().ServiceMultipleTags("api", []string{"v1", "primary"}, nil)
	if err != nil || len(both) != 1 {
		t.Errorf("catalog service api with tags v1 and primary: %v, %v; want api-1 only", ids(both), err)
	}
	none, _, err := s.consul.Catalog().Service("api", "v2", nil)
	if err != nil || len(none) != 0 {
		t.Errorf("catalog service api ?tag=v2: %v, %v; want none", ids(none), err)
	}

	// IDs and tags that are not valid Sluice names keep their exact form.
	db, _, err := s.consul.Catalog().Service("db", "Needs Quoting!", nil)
	if err != nil || len(db) != 1 || db[0].ServiceID != "DB Primary" || db[0].ServiceAddress != "db-1.internal" {
		t.Errorf("catalog service db: %+v, %v", db, err)
	}
	if err := agent.PassTTL("service:DB Primary", ""); err == nil {
		t.Errorf("pass of a check db never registered: no error")
	}

	// The natively registered Endpoint: its ID is its name, its port the
	// one named like the Service's.
	cache, _, err := s.consul.Catalog().Service("cache", "", nil)
	if err != nil || len(cache) != 1 || cache[0].ServiceID != "cache-a" || cache[0].ServicePort != 6380 ||
		!slices.Equal(cache[0].ServiceTags, []string{"fast"}) {
		t.Errorf("catalog service cache: %+v, %v", cache, err)
	}
	entries, _, err := s.consul.Health().Service("cache", "fast", true, nil)
	if err != nil || len(entries) != 1 || entries[0].Service.Port != 6380 {
		t.Errorf("passing instances of cache: %v, %v", entries, err)
	}

	// Deregistering the last instance takes the service out of the catalog.
	for _, id := range []string{"api-1", "api-2"} {
		if err := agent.ServiceDeregister(id); err != nil {
			t.Fatal(err)
		}
	}
	services, _, err = s.consul.Catalog().Services(nil)
	if _, ok := services["api"]; err != nil || ok {
		t.Errorf("catalog services after deregistering api: %v, %v", services, err)
	}
}

func ids(entries []*api.CatalogService) []string {
	out := make([]string, len(entries))
	for i, e := range entries {
		out[i] = e.ServiceID
	}
	return out
}

// TestReregisterKeepsHealth: registering an ID again replaces what it
// says (tags, port) and keeps its check's state.
func TestReregisterKeepsHealth(t *testing.T) {
	t.Parallel()
	s := start(t, server.Config{}, "")
	agent := s.consul.Agent()
	reg := &api.AgentServiceRegistration{ID: "job-1", Name: "job", Address: "127.0.0.1", Port: 7000, Tags: []string{"a"},
		Check: &api.AgentServiceCheck{TTL: "30s", Status: api.HealthPassing}}
	if err := agent.ServiceRegister(reg); err != nil {
		t.Fatal(err)
	}
	// The initial status counts as a first heartbeat.
	waitHealth(t, s.consul, "job", true, 5*time.Second, "job-1 passing")
	reg.Tags, reg.Port = []string{"b"}, 7001
	reg.Check.Status = api.HealthCritical // as Consul: a known check keeps its state
	if err := agent.ServiceRegister(reg); err != nil {
		t.Fatal(err)
	}
	entries, _, err := s.consul.Health().Service("job", "", true, nil)
	if err != nil || len(entries) != 1 || entries[0].Service.Port != 7001 || !slices.Equal(entries[0].Service.Tags, []string{"b"}) {
		t.Fatalf("job after registering again: %v, %v; want job-1 passing on 7001 with tag b", entries, err)
	}
}
