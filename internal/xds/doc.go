// Package xds is Sluice's xDS control plane: it translates resources from
// the store into Envoy v3 resources, and serves them over ADS (State of the
// World and Delta) to Envoy, to proxyless gRPC clients and to Sluice's own
// gateway, keeping the status of every connected proxy.
//
// # Names
//
// Resource names are a contract (DESIGN.md); they never depend on anything
// but the resources they come from:
//
//	Cluster, ClusterLoadAssignment  <service>.<namespace>          the Service's first port
//	                                <service>.<namespace>:<port>   each port, for a Service with several
//	Listener (API listener), RouteConfiguration
//	                                <service>.<namespace>          mesh routing to the first port
//	                                <service>.<namespace>:<port>   mesh routing to each port
//	Listener, RouteConfiguration    <namespace>/<gateway>:<port>   a Gateway's listeners on one port
//	Secret (SDS)                    <namespace>/<secret>           a kubernetes.io/tls Secret a Gateway listener names
//
// A proxyless gRPC client dialing xds:///greeter.default asks for Listener
// "greeter.default"; one dialing xds:///greeter.default:50051 for
// "greeter.default:50051".
//
// # Secrets
//
// A Secret is served only to nodes whose metadata names ("sluice.io/gateway":
// "<namespace>/<name>") a Gateway whose listeners reference it, whether they
// subscribe to everything or ask for it by name; to any other node it does
// not exist. A reference to a missing Secret, or to one that is not a valid
// kubernetes.io/tls pair, is left out of its filter chain (a chain left with
// none is left out) and shows in the Gateway's listener status as
// ResolvedRefs False, InvalidCertificateRef. The node's Gateway is what the
// node says: the xDS port is for trusted networks (loopback by default)
// until xDS clients authenticate with mTLS.
//
// # Decisions
//
// While translating, the translation records which listener each route
// attached to and why not, and which references resolve (Decide returns
// them); internal/gatewaystatus writes them as route and Gateway status.
//
// # Versions
//
// Every resource carries a version that is a hash of its serialized content
// (see NewResource). The version_info of a State-of-the-World response is a
// hash of the names and versions of what it holds, so equal content always
// has an equal version, on any server replica. A client is sent a response
// only when what it would receive differs from what it last received: an
// ACK, or a NACK of a version that has not changed since, gets no answer.
package xds
