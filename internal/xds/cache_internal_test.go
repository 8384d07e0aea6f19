package xds

import "testing"

func TestSameScopes(t *testing.T) {
	routes := NewSnapshot()
	routes.AddScope("default/edge", ListenerType, "default/edge:80")
	routes.AddScope("default/edge", RouteType, "default/edge:80")
	// The Gateway's first route adds the clusters it routes to.
	clusters := NewSnapshot()
	clusters.AddScope("default/edge", ListenerType, "default/edge:80")
	clusters.AddScope("default/edge", RouteType, "default/edge:80")
	clusters.AddScope("default/edge", ClusterType, "web.default")
	other := NewSnapshot()
	other.AddScope("default/edge", ListenerType, "default/edge:80")
	other.AddScope("default/edge", RouteType, "default/edge:8080")
	for _, tc := range []struct {
		name string
		a, b *Snapshot
		want bool
	}{
		{"equal", routes, routes, true},
		{"a type added", routes, clusters, false},
		{"a type removed", clusters, routes, false},
		{"a name changed", routes, other, false},
	} {
		if got := sameScopes(tc.a, tc.b); got != tc.want {
			t.Errorf("%s: sameScopes = %v, want %v", tc.name, got, tc.want)
		}
	}
}
