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
//
// A proxyless gRPC client dialing xds:///greeter.default asks for Listener
// "greeter.default"; one dialing xds:///greeter.default:50051 for
// "greeter.default:50051".
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
