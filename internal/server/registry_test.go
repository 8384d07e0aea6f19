package server_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/sluice/sluice/internal/client"
	"github.com/sluice/sluice/internal/resource"
	"github.com/sluice/sluice/internal/server"
	"github.com/sluice/sluice/internal/servertest"
)

var endpoints = client.ResourceOf(resource.EndpointKind)

func heartbeat(t *testing.T, url, name, body string) (int, resource.Status) {
	t.Helper()
	resp, err := http.Post(url+"/apis/sluice.io/v1alpha1/namespaces/default/endpoints/"+name+"/heartbeat", "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	var st resource.Status
	if resp.StatusCode != http.StatusOK {
		if err := json.Unmarshal(data, &st); err != nil {
			t.Fatalf("error body %q is not a Status: %v", data, err)
		}
	}
	return resp.StatusCode, st
}

func endpointHealth(t *testing.T, c *client.Client, name string) resource.Health {
	t.Helper()
	var ep resource.Endpoint
	if err := c.Get(context.Background(), endpoints, "default", name, &ep); err != nil {
		t.Fatal(err)
	}
	return ep.Status.Health
}

func waitHealth(t *testing.T, c *client.Client, name string, want resource.Health, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		got := endpointHealth(t, c, name)
		if got == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("endpoint %s health %s after %s, want %s", name, got, timeout, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestHeartbeatsSurviveRestart: a TTL registration heartbeats through the
// API, the server restarts (embedded etcd and all), and the Endpoint stays
// in traffic as long as heartbeats go on; they then stop and it drops out.
func TestHeartbeatsSurviveRestart(t *testing.T) {
	srv := servertest.Start(t, server.Config{RegistryLeaseTTL: 2 * time.Second})
	c := srv.Client(t, "")
	ctx := context.Background()
	ep := &resource.Endpoint{
		TypeMeta:   metav1.TypeMeta{APIVersion: "sluice.io/v1alpha1", Kind: "Endpoint"},
		ObjectMeta: metav1.ObjectMeta{Name: "web-1", Labels: map[string]string{"app": "web"}},
		Spec: resource.EndpointSpec{Address: "127.0.0.1", Ports: []resource.EndpointPort{{Port: 8080}},
			TTL: &metav1.Duration{Duration: 3 * time.Second}},
	}
	if err := c.Create(ctx, endpoints, "default", ep, nil, false); err != nil {
		t.Fatal(err)
	}
	if code, st := heartbeat(t, srv.URL, "web-1", ""); code != http.StatusOK {
		t.Fatalf("heartbeat: %d %+v", code, st)
	}
	waitHealth(t, c, "web-1", resource.HealthHealthy, 3*time.Second)

	srv.Restart(t)
	if h := endpointHealth(t, c, "web-1"); h != resource.HealthHealthy {
		t.Fatalf("health right after the restart = %s, want healthy", h)
	}
	for range 6 {
		if code, st := heartbeat(t, srv.URL, "web-1", `{"state":"passing","output":"ok"}`); code != http.StatusOK {
			t.Fatalf("heartbeat after restart: %d %+v", code, st)
		}
		time.Sleep(time.Second)
		if h := endpointHealth(t, c, "web-1"); h != resource.HealthHealthy {
			t.Fatalf("health while heartbeating after the restart = %s, want healthy", h)
		}
	}
	waitHealth(t, c, "web-1", resource.HealthUnhealthy, 8*time.Second)

	// Errors name the reason, in the API's error format.
	plain := ep.DeepCopy()
	plain.Name, plain.Spec.TTL = "plain", nil
	if err := c.Create(ctx, endpoints, "default", plain, nil, false); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ name, body, msg string }{
		{"nope", "", "not found"},
		{"plain", "", "has no spec.ttl"},
		{"web-1", `{"state":"fine"}`, `state "fine": must be passing, warning or critical`},
		{"web-1", `{"state":`, "heartbeat body"},
	} {
		code, st := heartbeat(t, srv.URL, tc.name, tc.body)
		if code == http.StatusOK || st.Code != code || !strings.Contains(st.Message, tc.msg) {
			t.Errorf("heartbeat %s %q: %d %+v, want an error saying %q", tc.name, tc.body, code, st, tc.msg)
		}
	}
}
