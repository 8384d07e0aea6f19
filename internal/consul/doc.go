// Package consul is Sluice's Consul-compatible HTTP API: the subset of
// Consul's agent, catalog, health and KV endpoints that the official Consul
// clients use, so a program written for Consul registers, heartbeats,
// discovers and reads its configuration against Sluice unchanged.
//
// It owns the translation between Consul's wire format and Sluice's
// resources, and nothing else: Services and Endpoints live in the store
// (package store), heartbeats and active checks belong to package registry,
// and KV data to package kv. The facade keeps no state of its own that
// another replica would need: every answer is read from the store.
//
// It is served on a listener of its own (the main API already serves
// Sluice's native KV under /v1/kv with a different wire format).
//
// # Registrations
//
// PUT /v1/agent/service/register with a Consul service definition becomes
//
//   - an Endpoint named after the service ID (the ID itself when it is a
//     lowercase DNS-1123 subdomain, else a sanitized form plus "-" and eight
//     hex digits of its SHA-256, so the same ID always names the same
//     Endpoint). Its labels are app: <service name> (so Sluice's
//     convention-based Services select it), consul.sluice.io/service,
//     every Meta pair that is a valid label, and tag.consul.sluice.io/<tag>
//     for every tag that is a valid label name; its annotations keep the
//     exact ID, tags, meta, node and check definitions, which is what the
//     read endpoints answer with;
//   - a Service <service name> selecting app: <service name>, created only
//     if there is none (an existing Service is never changed);
//   - spec.ttl for a TTL check (heartbeats go to the registry), and
//     spec.healthCheck for an HTTP, TCP or gRPC check, which the server runs
//     against the service's address.
//
// A Consul agent runs checks next to the service; Sluice runs them from the
// server, so a check must target the service's address (or a loopback
// address standing for it), and only one TTL and one active check fit an
// Endpoint. What cannot be mapped is refused with a 400 naming the field,
// in Consul's style.
//
// # Indexes and blocking queries
//
// X-Consul-Index is an etcd revision and means "the state as of this
// revision": a read lists Services then Endpoints, and answers with the
// revision of the first list, so a later change to either is after the
// index. A blocking query (?index=N&wait=D) returns at once if a relevant
// object changed after N (a store.Watch from N replays it), else when one
// does, else after D with index N. Watches go through the store's hub, so a
// thousand waiters share one etcd watch per kind; waiters woken by the same
// change share the read that answers them (see snapshot).
//
// The whole Sluice namespace (default "default", Consul Enterprise's ?ns=
// selects another) is one datacenter, dc1, and one agent: every replica
// answers for every registration of the namespace; the node a registration
// reports is the host name of the replica that took it.
package consul
