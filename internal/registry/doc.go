// Package registry keeps the health of Endpoints, the service registry's
// instances.
//
// A TTL Endpoint (spec.ttl) is alive while heartbeats arrive: each keeps an
// etcd lease alive, bound to a marker key that carries the last heartbeat's
// state. When heartbeats stop, etcd deletes the marker, and the Endpoint is
// marked unhealthy or removed (spec.onTTLExpiry). Because the lease lives in
// etcd, a heartbeat may reach any server replica, and a restart loses
// nothing: etcd renews every lease when it starts.
//
// An Endpoint with spec.healthCheck is probed (HTTP, TCP or gRPC, see
// package probe) by exactly one replica: the one holding its claim key in
// etcd, bound to that replica's session lease. Replicas claim the Endpoints
// for which they rank first by rendezvous hashing over the live replicas;
// when a replica dies its session expires, its claims go with it, and the
// others take its checks over.
//
// The replica that owns an Endpoint writes its status: one CheckStatus per
// check ("ttl", "active") and the overall health, which decides whether the
// Endpoint receives traffic through xDS.
package registry
