// Package resource owns Sluice's resource model: the kinds the store keeps, their
// Go types, defaulting and validation, and the API error shape shared by the
// server and its clients.
//
// Every kind is a Kubernetes-style object (TypeMeta + ObjectMeta + spec/status) so
// that client-go's informer machinery can run over Sluice's API and the same
// objects can later be served as CRDs. Sluice's own kinds live in group sluice.io,
// version v1alpha1; Gateway, HTTPRoute and GRPCRoute are the upstream types of
// sigs.k8s.io/gateway-api.
//
// The package does no I/O: the store calls Default and Validate on every write,
// whichever component writes, so there is one validation path.
package resource

//go:generate go run k8s.io/code-generator/cmd/deepcopy-gen@v0.37.2 --output-file zz_generated.deepcopy.go --go-header-file /dev/null .
