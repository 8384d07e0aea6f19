package resource

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Group and Version of Sluice's own kinds.
const (
	Group   = "sluice.io"
	Version = "v1alpha1"
)

// Protocol is what a Service port speaks.
type Protocol string

// Service port protocols.
const (
	ProtocolHTTP  Protocol = "http"
	ProtocolHTTP2 Protocol = "http2"
	ProtocolGRPC  Protocol = "grpc"
	ProtocolTCP   Protocol = "tcp"
)

// Service is a logical service: a label selector over Endpoints and the ports
// it serves. Versions of a service are Services with narrower selectors.
//
// +k8s:deepcopy-gen=true
// +k8s:deepcopy-gen:interfaces=k8s.io/apimachinery/pkg/runtime.Object
type Service struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec ServiceSpec `json:"spec"`
}

// ServiceSpec is the desired state of a Service.
//
// +k8s:deepcopy-gen=true
type ServiceSpec struct {
	// Selector selects Endpoints by their labels (Kubernetes semantics: every
	// key/value must match). An empty selector selects no Endpoint.
	Selector map[string]string `json:"selector,omitempty"`
	// Ports the service serves; at least one.
	Ports []ServicePort `json:"ports"`
}

// ServicePort is one port of a Service.
//
// +k8s:deepcopy-gen=true
type ServicePort struct {
	// Name matches Endpoint ports by name. Required when there is more than one port.
	Name string `json:"name,omitempty"`
	// Port is the service port, 1-65535.
	Port int32 `json:"port"`
	// Protocol is http, http2, grpc or tcp (default http).
	Protocol Protocol `json:"protocol,omitempty"`
}

// ServiceList is a list of Services.
//
// +k8s:deepcopy-gen=true
// +k8s:deepcopy-gen:interfaces=k8s.io/apimachinery/pkg/runtime.Object
type ServiceList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []Service `json:"items"`
}

// Health is the health of an Endpoint.
type Health string

// Endpoint health values.
const (
	HealthHealthy   Health = "healthy"
	HealthUnhealthy Health = "unhealthy"
	HealthUnknown   Health = "unknown"
)

// Endpoint is one instance of a service: an address, named ports, and labels
// that Services select.
//
// +k8s:deepcopy-gen=true
// +k8s:deepcopy-gen:interfaces=k8s.io/apimachinery/pkg/runtime.Object
type Endpoint struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   EndpointSpec   `json:"spec"`
	Status EndpointStatus `json:"status,omitempty"`
}

// EndpointSpec is the desired state of an Endpoint.
//
// +k8s:deepcopy-gen=true
type EndpointSpec struct {
	// Address is an IP address or a DNS hostname.
	Address string `json:"address"`
	// Ports are matched to Service ports by name; a single unnamed port serves
	// every port of every Service that selects the Endpoint.
	Ports []EndpointPort `json:"ports"`
	// Weight is the Endpoint's relative share of its Service's traffic
	// (1-10000, default 1).
	Weight *int32 `json:"weight,omitempty"`
	// HealthCheck, when set, makes the server check the Endpoint actively.
	HealthCheck *HealthCheck `json:"healthCheck,omitempty"`
	// TTL, when set, makes the Endpoint a TTL registration: it is healthy
	// only while heartbeats (POST .../endpoints/{name}/heartbeat) arrive at
	// least once per TTL. Whole seconds, 1s to 24h; it is an etcd lease, so
	// it survives a server restart and any replica takes heartbeats.
	TTL *metav1.Duration `json:"ttl,omitempty"`
	// OnTTLExpiry is what happens when heartbeats stop: MarkUnhealthy (the
	// default: the Endpoint stays, out of traffic, until heartbeats resume)
	// or Remove (the Endpoint is deleted). Only with TTL.
	OnTTLExpiry TTLExpiry `json:"onTTLExpiry,omitempty"`
}

// TTLExpiry is what happens to a TTL Endpoint whose heartbeats stop.
type TTLExpiry string

// TTLExpiry values.
const (
	TTLExpiryMarkUnhealthy TTLExpiry = "MarkUnhealthy"
	TTLExpiryRemove        TTLExpiry = "Remove"
)

// EndpointPort is one port of an Endpoint.
//
// +k8s:deepcopy-gen=true
type EndpointPort struct {
	Name string `json:"name,omitempty"`
	Port int32  `json:"port"`
}

// HealthCheck describes an active health check. Exactly one of HTTP, TCP and
// GRPC is set.
//
// +k8s:deepcopy-gen=true
type HealthCheck struct {
	HTTP *HTTPHealthCheck `json:"http,omitempty"`
	TCP  *TCPHealthCheck  `json:"tcp,omitempty"`
	GRPC *GRPCHealthCheck `json:"grpc,omitempty"`
	// Port is the port to check: a port name of the Endpoint, a port number
	// (a health port that serves no traffic), or empty for its first port.
	Port string `json:"port,omitempty"`
	// Interval between checks (default 10s).
	Interval *metav1.Duration `json:"interval,omitempty"`
	// Timeout of one check (default 2s); must be shorter than Interval.
	Timeout *metav1.Duration `json:"timeout,omitempty"`
	// HealthyThreshold is how many consecutive successes make an unhealthy
	// Endpoint healthy (default 1).
	HealthyThreshold int32 `json:"healthyThreshold,omitempty"`
	// UnhealthyThreshold is how many consecutive failures make a healthy
	// Endpoint unhealthy (default 3).
	UnhealthyThreshold int32 `json:"unhealthyThreshold,omitempty"`
}

// HTTPHealthCheck checks an HTTP path.
//
// +k8s:deepcopy-gen=true
type HTTPHealthCheck struct {
	// Path to request (default /).
	Path string `json:"path,omitempty"`
	// ExpectedStatuses are the status code ranges that count as healthy
	// (default 200-399).
	ExpectedStatuses []StatusRange `json:"expectedStatuses,omitempty"`
	// Headers added to the check request.
	Headers map[string]string `json:"headers,omitempty"`
}

// StatusRange is an inclusive range of HTTP status codes.
//
// +k8s:deepcopy-gen=true
type StatusRange struct {
	Start int32 `json:"start"`
	End   int32 `json:"end"`
}

// TCPHealthCheck checks that a TCP connection can be opened.
//
// +k8s:deepcopy-gen=true
type TCPHealthCheck struct{}

// GRPCHealthCheck uses the gRPC health checking protocol.
//
// +k8s:deepcopy-gen=true
type GRPCHealthCheck struct {
	// Service is the service name sent in the HealthCheckRequest ("" = the server).
	Service string `json:"service,omitempty"`
}

// EndpointStatus is the observed state of an Endpoint.
//
// +k8s:deepcopy-gen=true
type EndpointStatus struct {
	// Health is healthy, unhealthy or unknown. Without a health check an
	// Endpoint is healthy; with one it is unknown until the first result.
	Health Health `json:"health,omitempty"`
	// Message is the last check's result or output excerpt.
	Message string `json:"message,omitempty"`
	// LastCheckTime is when the last check ran.
	LastCheckTime *metav1.Time `json:"lastCheckTime,omitempty"`
	// LastTransitionTime is when Health last changed.
	LastTransitionTime *metav1.Time `json:"lastTransitionTime,omitempty"`
	// Checks are the results of each of the Endpoint's checks: "ttl" for
	// heartbeats and "active" for spec.healthCheck. Health is unhealthy when
	// one is critical, unknown while one has no result yet, else healthy.
	Checks []CheckStatus `json:"checks,omitempty"`
}

// CheckState is the result of one check, in Consul's terms.
type CheckState string

// CheckState values. A warning keeps the Endpoint in traffic (as Consul's
// own xDS does) but not in Consul's ?passing lists.
const (
	CheckPassing  CheckState = "passing"
	CheckWarning  CheckState = "warning"
	CheckCritical CheckState = "critical"
)

// Check names in EndpointStatus.Checks.
const (
	CheckTTL    = "ttl"
	CheckActive = "active"
)

// CheckStatus is the last result of one check of an Endpoint.
//
// +k8s:deepcopy-gen=true
type CheckStatus struct {
	// Name is "ttl" or "active".
	Name string `json:"name"`
	// State is passing, warning or critical; empty before the first result.
	State CheckState `json:"state,omitempty"`
	// Output is the check's output or an excerpt of it (at most 4 KiB).
	Output string `json:"output,omitempty"`
	// LastTransitionTime is when State last changed.
	LastTransitionTime *metav1.Time `json:"lastTransitionTime,omitempty"`
}

// EndpointList is a list of Endpoints.
//
// +k8s:deepcopy-gen=true
// +k8s:deepcopy-gen:interfaces=k8s.io/apimachinery/pkg/runtime.Object
type EndpointList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []Endpoint `json:"items"`
}

// BackendPolicy sets how traffic reaches the Endpoints of the Services it
// targets: load balancing, timeouts, retries, circuit breaking, outlier
// detection and health checks (Gateway API policy attachment, GEP-713).
//
// +k8s:deepcopy-gen=true
// +k8s:deepcopy-gen:interfaces=k8s.io/apimachinery/pkg/runtime.Object
type BackendPolicy struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec BackendPolicySpec `json:"spec"`
}

// BackendPolicySpec is the desired state of a BackendPolicy.
//
// +k8s:deepcopy-gen=true
type BackendPolicySpec struct {
	// TargetRefs name the Services in the policy's namespace it applies to.
	TargetRefs []PolicyTargetRef `json:"targetRefs"`
	// LoadBalancer picks the algorithm (default RoundRobin).
	LoadBalancer *LoadBalancer `json:"loadBalancer,omitempty"`
	// Timeouts for requests to the targets.
	Timeouts *Timeouts `json:"timeouts,omitempty"`
	// Retry policy for requests to the targets.
	Retry *Retry `json:"retry,omitempty"`
	// CircuitBreaker limits concurrency towards the targets.
	CircuitBreaker *CircuitBreaker `json:"circuitBreaker,omitempty"`
	// OutlierDetection ejects misbehaving Endpoints.
	OutlierDetection *OutlierDetection `json:"outlierDetection,omitempty"`
	// HealthCheck is an active health check that the proxies (sluice
	// gateway, Envoy) run from the data plane against every Endpoint of the
	// targets, sent as the clusters' health_checks (its port, when set, as
	// each endpoint's health_check_config); an Endpoint failing it gets no
	// requests from that proxy. Proxyless gRPC clients do not run it. An
	// Endpoint's own spec.healthCheck is the server-side check (the
	// registry), which decides whether the Endpoint is sent at all.
	HealthCheck *HealthCheck `json:"healthCheck,omitempty"`
}

// PolicyTargetRef names the object a policy attaches to.
//
// +k8s:deepcopy-gen=true
type PolicyTargetRef struct {
	// Group is "" or sluice.io (both mean a Sluice Service).
	Group string `json:"group,omitempty"`
	// Kind is Service (default).
	Kind string `json:"kind,omitempty"`
	Name string `json:"name"`
}

// LoadBalancerType is a load balancing algorithm.
type LoadBalancerType string

// Load balancing algorithms.
const (
	LoadBalancerRoundRobin   LoadBalancerType = "RoundRobin"
	LoadBalancerLeastRequest LoadBalancerType = "LeastRequest"
	LoadBalancerRingHash     LoadBalancerType = "RingHash"
	LoadBalancerRandom       LoadBalancerType = "Random"
)

// LoadBalancer chooses the load balancing algorithm.
//
// +k8s:deepcopy-gen=true
type LoadBalancer struct {
	Type LoadBalancerType `json:"type,omitempty"`
	// HashOn names what RingHash hashes: a request header, a cookie or the
	// source IP. Only with type RingHash.
	HashOn *HashOn `json:"hashOn,omitempty"`
}

// HashOn names the request attribute a consistent hash uses. Exactly one is set.
//
// +k8s:deepcopy-gen=true
type HashOn struct {
	Header   string `json:"header,omitempty"`
	Cookie   string `json:"cookie,omitempty"`
	SourceIP bool   `json:"sourceIP,omitempty"`
}

// Timeouts for requests to a backend.
//
// +k8s:deepcopy-gen=true
type Timeouts struct {
	Connect *metav1.Duration `json:"connect,omitempty"`
	Request *metav1.Duration `json:"request,omitempty"`
	Idle    *metav1.Duration `json:"idle,omitempty"`
}

// Retry is a retry policy.
//
// +k8s:deepcopy-gen=true
type Retry struct {
	// Attempts is the number of retries after the first try (0-10).
	Attempts int32 `json:"attempts"`
	// PerTryTimeout bounds each try.
	PerTryTimeout *metav1.Duration `json:"perTryTimeout,omitempty"`
	// RetryOn lists the conditions that trigger a retry, in Envoy's vocabulary
	// (5xx, gateway-error, reset, connect-failure, retriable-4xx,
	// refused-stream, retriable-status-codes, cancelled, deadline-exceeded,
	// internal, resource-exhausted, unavailable). Default: connect-failure,
	// refused-stream, unavailable.
	RetryOn []string `json:"retryOn,omitempty"`
	// Backoff is the base interval between tries.
	Backoff *metav1.Duration `json:"backoff,omitempty"`
}

// CircuitBreaker limits concurrency towards a backend. Zero means no limit.
//
// +k8s:deepcopy-gen=true
type CircuitBreaker struct {
	MaxConnections     int32 `json:"maxConnections,omitempty"`
	MaxPendingRequests int32 `json:"maxPendingRequests,omitempty"`
	MaxRequests        int32 `json:"maxRequests,omitempty"`
	MaxRetries         int32 `json:"maxRetries,omitempty"`
}

// OutlierDetection ejects Endpoints that fail repeatedly.
//
// +k8s:deepcopy-gen=true
type OutlierDetection struct {
	// Consecutive5xx ejects an Endpoint after this many 5xx in a row (default 5).
	Consecutive5xx int32 `json:"consecutive5xx,omitempty"`
	// ConsecutiveConnectFailures ejects after this many connection failures in
	// a row (default 5).
	ConsecutiveConnectFailures int32 `json:"consecutiveConnectFailures,omitempty"`
	// Interval between ejection sweeps (default 10s).
	Interval *metav1.Duration `json:"interval,omitempty"`
	// BaseEjectionTime is how long an Endpoint stays ejected the first time
	// (default 30s); it grows with each ejection.
	BaseEjectionTime *metav1.Duration `json:"baseEjectionTime,omitempty"`
	// MaxEjectionPercent caps the share of ejected Endpoints (default 10).
	MaxEjectionPercent int32 `json:"maxEjectionPercent,omitempty"`
}

// BackendPolicyList is a list of BackendPolicies.
//
// +k8s:deepcopy-gen=true
// +k8s:deepcopy-gen:interfaces=k8s.io/apimachinery/pkg/runtime.Object
type BackendPolicyList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []BackendPolicy `json:"items"`
}
