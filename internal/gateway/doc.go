// Package gateway is Sluice's L7 data plane: an HTTP reverse proxy that takes
// all of its configuration over xDS (ADS, State of the World) from a control
// plane, exactly as Envoy would. It knows the control plane only through the
// Envoy v3 protos: it imports no server-side package of Sluice (a test over
// `go list -deps` keeps it so).
//
// # Model
//
// The xDS client (xds.go) keeps, per type, the last resources it accepted.
// Every response is parsed into Go values (parse.go); a response that does
// not parse, or that cannot be applied (a listener port that cannot be
// bound), is NACKed with the reason and changes nothing. An accepted one is
// ACKed and linked with the others into a new immutable Config
// (config.go): listeners → virtual hosts → routes → weighted clusters →
// endpoints. The Config is swapped atomically; a request reads it once when
// it arrives and uses that Config to its end, so a change never shows a
// request half of a config.
//
// Listeners (listeners.go) are bound on the bind address at the ports of
// the LDS listeners, serving HTTP/1.x and h2c, or, for a listener whose
// filter chains terminate TLS, HTTPS (HTTP/2 by ALPN) with the certificates
// of SDS secrets, chosen by SNI at each handshake from the config in force
// (a rotated secret serves new handshakes; open connections keep theirs).
// HTTP/1.x runs in the gateway's own connection loop (h1server.go: a plain
// request's head read by h1head.go and any other by net/http's parser, the
// handler in the connection's goroutine, a small answer in one write; a
// head must come within 30 s, a body may pause 60 s, a client may leave
// its answer unread 60 s, and a connection may idle 5 min); HTTP/2 connections
// are handed to net/http's server. A
// request picks a virtual host by its Host header (exact, then the longest
// wildcard, then "*"), the first route whose match holds, and runs that
// route's action (proxy.go):
// a direct response, a redirect, or a forward to a cluster chosen by weight,
// with header modifiers, rewrites, mirrors, a timeout and retries, relayed
// as a reverse proxy does (relay.go). Upstreams (upstream.go) keep a
// connection pool per cluster across config swaps (HTTP/1.1 through the
// gateway's own client, h1client.go, which sends a request and reads its
// answer in the request's goroutine, a plain answer's head by itself
// (h1head.go) and any other with net/http's parser; HTTP/2 through
// net/http's) and pick
// endpoints by smooth weighted round-robin, least request (two random
// choices) or a consistent hash ring. A cluster's circuit breaker
// (breaker.go) caps, as Envoy's thresholds do, its requests in flight, the
// connections its pool holds (across all its endpoints), the requests
// waiting for one (beyond them: 503 with x-envoy-overloaded) and its
// retries in flight; its outlier detection (outlier.go) ejects endpoints
// that fail in a row.
//
// With an OTLP endpoint, tracing (tracing.go) gives each request a server
// span named after its route, continuing the caller's W3C trace
// (traceparent, tracestate), and each upstream attempt and mirror a client
// span, its child, whose traceparent the upstream receives; spans go out in
// batches over OTLP (gRPC, or HTTP with protobuf bodies) and are flushed
// when Run returns. Without one, the request path only checks a nil
// pointer and the caller's traceparent reaches the upstream unchanged.
//
// The admin server (admin.go) serves /ready, /stats (Prometheus) and
// /config_dump (the xDS resources in force, as JSON).
//
// It does not own the translation of Sluice resources to xDS (the server's
// internal/xds). It serves the endpoints EDS gives it (the server sends only
// those its registry finds healthy) and, for a cluster with CDS
// health_checks (a BackendPolicy's healthCheck), checks them itself
// (healthcheck.go): one loop per endpoint, probing at the interval with the
// attempts of internal/probe (the one package of the module it imports,
// shared with the registry), at the endpoint's health_check_config port.
// A new endpoint's first result decides at once, later ones flip its state
// after healthy_threshold or unhealthy_threshold results in a row; failing
// endpoints get no requests, pending ones only while no endpoint is
// healthy, and with every endpoint failing a request gets 503 "no healthy
// upstream" (no panic mode). Checks survive config swaps and stop when
// their endpoint or cluster goes.
package gateway
