package main

import (
	"strings"
	"testing"

	"github.com/sluice/sluice/internal/resource"
)

// testKinds are served kinds, two of them sharing the name "route".
var testKinds = kinds{
	{Group: "sluice.io", Version: "v1alpha1", Kind: "Service", Plural: "services", Singular: "service", ShortNames: []string{"svc"}},
	{Group: "a.example", Version: "v1", Kind: "Route", Plural: "routes", Singular: "route"},
	{Group: "b.example", Version: "v2", Kind: "Route", Plural: "routes", Singular: "route", ShortNames: []string{"brt"}},
	{Group: "", Version: "v1", Kind: "Secret", Plural: "secrets", Singular: "secret"},
}

func TestKindsByName(t *testing.T) {
	tests := []struct {
		name      string
		wantGroup string
		wantErr   string
	}{
		{name: "svc", wantGroup: "sluice.io"},
		{name: "Service", wantGroup: "sluice.io"},
		{name: "SERVICES", wantGroup: "sluice.io"},
		{name: "services.sluice.io", wantGroup: "sluice.io"},
		{name: "brt", wantGroup: "b.example"},
		{name: "routes.a.example", wantGroup: "a.example"},
		{name: "secret", wantGroup: ""},
		{name: "routes", wantErr: `kind "routes" is ambiguous: say routes.a.example or routes.b.example`},
		{name: "services.other.io", wantErr: `unknown kind "services.other.io"; the server serves routes, routes (brt), secrets, services (svc)`},
		{name: "", wantErr: `unknown kind ""`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			k, err := testKinds.byName(tt.name)
			if tt.wantErr != "" {
				if err == nil || !strings.HasPrefix(err.Error(), tt.wantErr) {
					t.Fatalf("byName(%q) = %v, %v; want error %q", tt.name, k, err, tt.wantErr)
				}
				return
			}
			if err != nil || k.Group != tt.wantGroup {
				t.Fatalf("byName(%q) = %+v, %v; want the kind of group %q", tt.name, k, err, tt.wantGroup)
			}
		})
	}
}

func TestKindsByType(t *testing.T) {
	for _, tt := range []struct{ apiVersion, kind, want string }{
		{"sluice.io/v1alpha1", "Service", "services"},
		{"b.example/v2", "Route", "routes"},
		{"v1", "Secret", "secrets"},
	} {
		k, err := testKinds.byType(tt.apiVersion, tt.kind)
		if err != nil || k.Plural != tt.want || apiVersionOf(k) != tt.apiVersion {
			t.Errorf("byType(%q, %q) = %+v, %v; want %s", tt.apiVersion, tt.kind, k, err, tt.want)
		}
	}
	_, err := testKinds.byType("sluice.io/v1", "Service")
	want := `kind "Service" of apiVersion "sluice.io/v1" is not served; the server serves Route (a.example/v1), Route (b.example/v2), Secret (v1), Service (sluice.io/v1alpha1)`
	if err == nil || err.Error() != want {
		t.Errorf("byType of an unserved version: %v, want %q", err, want)
	}
}

func TestRef(t *testing.T) {
	if got := ref(resource.APIResource{Kind: "GRPCRoute"}, "greeter-split"); got != "grpcroute/greeter-split" {
		t.Errorf("ref = %q", got)
	}
}
