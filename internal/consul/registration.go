package consul

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net"
	"net/url"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/consul/api"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/sluice/sluice/internal/resource"
)

// Labels and annotations of the objects a registration becomes.
const (
	annotationID     = "consul.sluice.io/id"     // the exact service ID
	annotationTags   = "consul.sluice.io/tags"   // the tags, as a JSON array
	annotationMeta   = "consul.sluice.io/meta"   // the meta, as a JSON object
	annotationNode   = "consul.sluice.io/node"   // the node that took the registration
	annotationChecks = "consul.sluice.io/checks" // the checks, as a JSON array of checkDef

	labelApp     = "app"
	labelService = "consul.sluice.io/service" // the Consul service name: marks a Consul registration
	labelManaged = "consul.sluice.io/managed" // on Services the facade created
	// tagLabelPrefix + tag is "true" for every tag that is a valid label name.
	tagLabelPrefix = "tag.consul.sluice.io/"
	// checkLabelPrefix + checkHash(id) is "true" for every custom check ID,
	// so a heartbeat to it finds its Endpoint.
	checkLabelPrefix = "check.consul.sluice.io/"
)

// Check types Sluice runs, with Consul's names.
const (
	checkTTL  = "ttl"
	checkHTTP = "http"
	checkTCP  = "tcp"
	checkGRPC = "grpc"
)

// checkDef is what the facade keeps of a registered check, to answer for it.
type checkDef struct {
	ID    string `json:"id"`
	Name  string `json:"name"`
	Type  string `json:"type"` // ttl, http, tcp or grpc
	Notes string `json:"notes,omitempty"`
	// Target is the HTTP URL, TCP address or gRPC target as registered.
	Target   string              `json:"target,omitempty"`
	Header   map[string][]string `json:"header,omitempty"`
	Interval string              `json:"interval,omitempty"`
	Timeout  string              `json:"timeout,omitempty"`
	TTL      string              `json:"ttl,omitempty"`
}

// statusName is the name of the check's entry in an Endpoint's status.checks.
func (d checkDef) statusName() string {
	if d.Type == checkTTL {
		return resource.CheckTTL
	}
	return resource.CheckActive
}

// registration is what one Consul service registration becomes.
type registration struct {
	id       string
	endpoint *resource.Endpoint
	// service is created if the namespace has no Service of its name.
	service *resource.Service
	checks  []checkDef
	// initial is the state the TTL check starts in ("" leaves it waiting
	// for its first heartbeat, which Consul shows as critical).
	initial resource.CheckState
}

// Limits of Consul's service meta (agent/structs).
const (
	metaMaxPairs       = 64
	metaKeyMaxLength   = 128
	metaValueMaxLength = 512
	metaReservedPrefix = "consul-"
)

var metaKeyFormat = regexp.MustCompile(`^[a-zA-Z0-9_-]+$`)

// maxTTL is the longest TTL an Endpoint takes.
const maxTTL = 24 * time.Hour

// minInterval is the shortest interval of an active check: a shorter one
// is raised to it, as Consul's agent does.
const minInterval = time.Second

// translate turns a registration into an Endpoint and a Service of
// namespace ns. node is the node taking it and remote the address the
// request came from, the service's address when the registration names
// none. Errors are 400s in Consul's words, or in its style for what Sluice
// cannot map.
func translate(reg *api.AgentServiceRegistration, ns, node, remote string) (*registration, error) {
	// What Consul itself refuses, with its texts.
	if reg.Name == "" {
		return nil, badRequest("Missing service name")
	}
	if isAny(reg.Address) {
		return nil, badRequest("Invalid service address")
	}
	weight := int32(1)
	if w := reg.Weights; w != nil {
		switch {
		case w.Passing < 1:
			return nil, badRequest("Invalid Weights: Passing must be greater than 0")
		case w.Warning < 0:
			return nil, badRequest("Invalid Weights: Warning must be greater or equal than 0")
		case w.Passing > 65535 || w.Warning > 65535:
			return nil, badRequest("Invalid Weights: DNS Weight must be between 0 and 65535")
		case w.Passing > 10000:
			return nil, badRequest("Invalid Weights: Passing %d: Sluice weights are 1-10000 (an Endpoint's spec.weight)", w.Passing)
		}
		weight = int32(w.Passing)
	}
	if p := metaProblem(reg.Meta); p != "" {
		return nil, badRequest("Invalid Service Meta: %s", p)
	}
	checks := collectChecks(reg)
	for _, c := range checks {
		if err := validateCheck(c); err != nil {
			return nil, err
		}
	}

	// What Sluice cannot map.
	name := reg.Name
	if msgs := validation.IsDNS1035Label(name); len(msgs) > 0 {
		return nil, badRequest("Invalid service name %q: Sluice service names must be DNS-1035 labels (lowercase letters, digits, '-')", name)
	}
	switch {
	case reg.Kind != "":
		return nil, badRequest("Invalid service Kind %q: Sluice registers typical services only (no Connect proxies or gateways)", reg.Kind)
	case reg.Connect != nil && (reg.Connect.Native || reg.Connect.SidecarService != nil):
		return nil, badRequest("Invalid service Connect: Sluice does not run Consul Connect; its mesh is xDS")
	case reg.Proxy != nil:
		return nil, badRequest("Invalid service Proxy: Sluice does not run Consul Connect proxies")
	case reg.SocketPath != "":
		return nil, badRequest("Invalid service SocketPath: Sluice routes to an address and port")
	case len(reg.Ports) > 0:
		return nil, badRequest("Invalid service Ports: Sluice takes one port per registration (Port)")
	case reg.Partition != "" && reg.Partition != "default":
		return nil, badRequest("Invalid service Partition %q: Sluice has the default partition only", reg.Partition)
	case reg.Port == 0:
		return nil, badRequest("Missing service port: Sluice routes traffic to the registration's Port, so it is required")
	case reg.Port < 1 || reg.Port > 65535:
		return nil, badRequest("Invalid service port %d: must be 1-65535", reg.Port)
	}
	id := reg.ID
	if id == "" {
		id = name
	}
	addr := reg.Address
	if addr == "" {
		addr = remote
	}
	if net.ParseIP(addr) == nil {
		addr = strings.ToLower(addr)
		if msgs := validation.IsDNS1123Subdomain(addr); len(msgs) > 0 {
			return nil, badRequest("Invalid service address %q: must be an IP address or a DNS hostname", reg.Address)
		}
	}
	port := int32(reg.Port)

	ep := resource.EndpointKind.New().(*resource.Endpoint)
	ep.Name, ep.Namespace = endpointName(id), ns
	ep.Labels = map[string]string{labelApp: name, labelService: name}
	for k, v := range reg.Meta {
		if k != labelApp && len(validation.IsQualifiedName(k)) == 0 && len(validation.IsValidLabelValue(v)) == 0 {
			ep.Labels[k] = v
		}
	}
	for _, tag := range reg.Tags {
		if len(validation.IsQualifiedName(tagLabelPrefix+tag)) == 0 {
			ep.Labels[tagLabelPrefix+tag] = "true"
		}
	}
	ep.Spec = resource.EndpointSpec{
		Address: addr,
		Ports:   []resource.EndpointPort{{Port: port}},
		Weight:  &weight,
	}

	out := &registration{id: id, endpoint: ep}
	seen := map[string]bool{}
	for i, c := range checks {
		def := checkDef{ID: c.CheckID, Name: c.Name, Notes: c.Notes, Type: checkType(c)}
		if def.ID == "" {
			def.ID = defaultCheckID(id, i, len(checks))
		} else {
			ep.Labels[checkLabelPrefix+checkHash(def.ID)] = "true"
		}
		if def.Name == "" {
			def.Name = fmt.Sprintf("Service '%s' check", name)
		}
		if seen[def.ID] {
			return nil, badRequest("Invalid check: CheckID %q is used twice", def.ID)
		}
		seen[def.ID] = true
		switch def.Type {
		case checkTTL:
			if ep.Spec.TTL != nil {
				return nil, badRequest("Invalid check %q: Sluice takes at most one TTL check per service", def.ID)
			}
			ttl, _ := time.ParseDuration(c.TTL) // validated
			if ttl > maxTTL {
				return nil, badRequest("Invalid check TTL %q: Sluice TTLs are at most %s", c.TTL, maxTTL)
			}
			// An etcd lease has whole seconds.
			secs := max(1, (ttl+time.Second-1)/time.Second)
			ep.Spec.TTL = &metav1.Duration{Duration: secs * time.Second}
			ep.Spec.OnTTLExpiry = resource.TTLExpiryMarkUnhealthy
			if d, _ := time.ParseDuration(c.DeregisterCriticalServiceAfter); d > 0 {
				ep.Spec.OnTTLExpiry = resource.TTLExpiryRemove
			}
			def.TTL = c.TTL
			if c.Status == api.HealthPassing || c.Status == api.HealthWarning {
				out.initial = resource.CheckState(c.Status)
			}
		case checkHTTP, checkTCP, checkGRPC:
			if ep.Spec.HealthCheck != nil {
				return nil, badRequest("Invalid check %q: Sluice takes at most one HTTP, TCP or gRPC check per service", def.ID)
			}
			hc, err := activeCheck(c, def.Type, addr, port)
			if err != nil {
				return nil, err
			}
			ep.Spec.HealthCheck = hc
			def.Target, def.Header = targetOf(c), c.Header
			def.Interval, def.Timeout = hc.Interval.Duration.String(), hc.Timeout.Duration.String()
		default:
			return nil, unsupportedCheck(def.Type)
		}
		out.checks = append(out.checks, def)
	}

	tags, _ := json.Marshal(orEmpty(reg.Tags))
	meta, _ := json.Marshal(orEmptyMap(reg.Meta))
	ep.Annotations = map[string]string{
		annotationID: id, annotationTags: string(tags), annotationMeta: string(meta), annotationNode: node,
	}
	if len(out.checks) > 0 {
		defs, _ := json.Marshal(out.checks)
		ep.Annotations[annotationChecks] = string(defs)
	}

	svc := resource.ServiceKind.New().(*resource.Service)
	svc.Name, svc.Namespace = name, ns
	svc.Labels = map[string]string{labelManaged: "true"}
	svc.Spec = resource.ServiceSpec{
		Selector: map[string]string{labelApp: name},
		Ports:    []resource.ServicePort{{Port: port, Protocol: protocolOf(reg.Meta)}},
	}
	out.service = svc
	return out, nil
}

// protocolOf is the protocol of a new Service: Meta["protocol"] when Sluice
// knows it (Consul's service-defaults use the same names), else tcp.
func protocolOf(meta map[string]string) resource.Protocol {
	switch p := resource.Protocol(meta["protocol"]); p {
	case resource.ProtocolHTTP, resource.ProtocolHTTP2, resource.ProtocolGRPC, resource.ProtocolTCP:
		return p
	}
	return resource.ProtocolTCP
}

// endpointName is the name of the Endpoint of a service ID: the ID itself
// when it is a valid name, else a sanitized form with a hash of the ID, so
// that the same ID always names the same Endpoint.
func endpointName(id string) string {
	if len(validation.IsDNS1123Subdomain(id)) == 0 {
		return id
	}
	var b strings.Builder
	dash := true // no leading '-'
	for _, r := range strings.ToLower(id) {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' {
			b.WriteRune(r)
			dash = false
		} else if !dash {
			b.WriteByte('-')
			dash = true
		}
	}
	s := b.String()
	if len(s) > validation.DNS1123SubdomainMaxLength-9 {
		s = s[:validation.DNS1123SubdomainMaxLength-9]
	}
	s = strings.TrimRight(s, "-")
	if s == "" {
		s = "consul"
	}
	sum := sha256.Sum256([]byte(id))
	return s + "-" + hex.EncodeToString(sum[:4])
}

// defaultCheckID is Consul's ID of the i-th of n checks of a service.
func defaultCheckID(serviceID string, i, n int) string {
	if n > 1 {
		return fmt.Sprintf("service:%s:%d", serviceID, i+1)
	}
	return "service:" + serviceID
}

// checkHash names a custom check ID in a label.
func checkHash(checkID string) string {
	sum := sha256.Sum256([]byte(checkID))
	return hex.EncodeToString(sum[:8])
}

// collectChecks lists a registration's checks, Check first, skipping empty
// ones as Consul does.
func collectChecks(reg *api.AgentServiceRegistration) []*api.AgentServiceCheck {
	var out []*api.AgentServiceCheck
	for _, c := range append(api.AgentServiceChecks{reg.Check}, reg.Checks...) {
		if c != nil && !reflect.ValueOf(*c).IsZero() {
			out = append(out, c)
		}
	}
	return out
}

// validateCheck refuses what Consul refuses, with its texts.
func validateCheck(c *api.AgentServiceCheck) error {
	var durs [4]time.Duration
	for i, s := range []string{c.Interval, c.Timeout, c.TTL, c.DeregisterCriticalServiceAfter} {
		if s == "" {
			continue
		}
		d, err := time.ParseDuration(s)
		if err != nil {
			return badRequest("Request decode failed: %v", err)
		}
		durs[i] = d
	}
	interval, ttl := durs[0], durs[2]
	intervalCheck := len(c.Args) > 0 || c.HTTP != "" || c.TCP != "" || c.UDP != "" || c.GRPC != "" || c.H2PING != ""
	alias := c.AliasNode != "" || c.AliasService != ""
	switch {
	case interval > 0 && ttl > 0:
		return badRequest("Invalid check: Interval and TTL cannot both be specified")
	case intervalCheck && interval <= 0:
		return badRequest("Invalid check: Interval must be > 0 for Script, HTTP, H2PING, TCP, UDP or OSService checks")
	case intervalCheck && alias:
		return badRequest("Invalid check: Interval cannot be set for Alias checks")
	case alias && ttl > 0:
		return badRequest("Invalid check: TTL must be not be set for Alias checks")
	case !intervalCheck && !alias && ttl <= 0:
		return badRequest("Invalid check: TTL must be > 0 for TTL checks")
	case c.FailuresBeforeWarning > c.FailuresBeforeCritical:
		return badRequest("Invalid check: FailuresBeforeWarning can't be higher than FailuresBeforeCritical")
	}
	switch c.Status {
	case "", api.HealthPassing, api.HealthWarning, api.HealthCritical:
	default:
		return badRequest("Status for checks must 'passing', 'warning', 'critical'")
	}
	return nil
}

// checkType is Consul's type of a valid check.
func checkType(c *api.AgentServiceCheck) string {
	switch {
	case c.GRPC != "":
		return checkGRPC
	case c.HTTP != "":
		return checkHTTP
	case c.TTL != "":
		return checkTTL
	case c.TCP != "":
		return checkTCP
	case c.UDP != "":
		return "udp"
	case c.AliasNode != "" || c.AliasService != "":
		return "alias"
	case c.DockerContainerID != "":
		return "docker"
	case len(c.Args) > 0:
		return "script"
	case c.H2PING != "":
		return "h2ping"
	}
	return "unknown"
}

func unsupportedCheck(typ string) error {
	why := ""
	switch typ {
	case "script", "docker":
		why = ": Sluice runs checks from the server, not commands on the service's host"
	case "alias":
		why = ": Sluice checks each instance on its own"
	}
	return badRequest("Invalid check: %s checks are not supported by Sluice%s; use a TTL, HTTP, TCP or gRPC check", typ, why)
}

// activeCheck maps an HTTP, TCP or gRPC check to an Endpoint's health check.
// Consul runs a check on the service's host, Sluice from the server against
// the service's address: the check must target that address, or a loopback
// address standing for it.
func activeCheck(c *api.AgentServiceCheck, typ, addr string, port int32) (*resource.HealthCheck, error) {
	hc := &resource.HealthCheck{}
	var host, portStr string
	switch typ {
	case checkHTTP:
		switch {
		case c.Method != "" && c.Method != "GET":
			return nil, badRequest("Invalid check Method %q: Sluice's HTTP checks send GET", c.Method)
		case c.Body != "":
			return nil, badRequest("Invalid check Body: Sluice's HTTP checks send no body")
		case c.TLSSkipVerify:
			return nil, badRequest("Invalid check TLSSkipVerify: Sluice's HTTP checks do not speak TLS (https)")
		}
		u, err := url.Parse(c.HTTP)
		if err != nil || u.Host == "" {
			return nil, badRequest("Invalid check HTTP %q: want an http:// URL", c.HTTP)
		}
		switch u.Scheme {
		case "http":
		case "https":
			return nil, badRequest("Invalid check HTTP %q: Sluice's HTTP checks do not speak TLS (https)", c.HTTP)
		default:
			return nil, badRequest("Invalid check HTTP %q: want an http:// URL", c.HTTP)
		}
		host, portStr = u.Hostname(), u.Port()
		if portStr == "" {
			portStr = "80"
		}
		path := u.EscapedPath()
		if path == "" {
			path = "/"
		}
		if u.RawQuery != "" {
			path += "?" + u.RawQuery
		}
		hc.HTTP = &resource.HTTPHealthCheck{Path: path}
		for k, vs := range c.Header {
			if len(vs) > 0 {
				if hc.HTTP.Headers == nil {
					hc.HTTP.Headers = map[string]string{}
				}
				hc.HTTP.Headers[k] = vs[0]
			}
		}
	case checkTCP:
		if c.TCPUseTLS {
			return nil, badRequest("Invalid check TCPUseTLS: Sluice's TCP checks do not speak TLS")
		}
		var err error
		if host, portStr, err = net.SplitHostPort(c.TCP); err != nil {
			return nil, badRequest("Invalid check TCP %q: want host:port", c.TCP)
		}
		hc.TCP = &resource.TCPHealthCheck{}
	case checkGRPC:
		if c.GRPCUseTLS {
			return nil, badRequest("Invalid check GRPCUseTLS: Sluice's gRPC checks do not speak TLS")
		}
		target, service, _ := strings.Cut(c.GRPC, "/")
		var err error
		if host, portStr, err = net.SplitHostPort(target); err != nil {
			return nil, badRequest("Invalid check GRPC %q: want host:port or host:port/service", c.GRPC)
		}
		hc.GRPC = &resource.GRPCHealthCheck{Service: service}
	}
	checkPort, err := strconv.Atoi(portStr)
	if err != nil || checkPort < 1 || checkPort > 65535 {
		return nil, badRequest("Invalid check %s %q: port %q must be 1-65535", strings.ToUpper(typ), targetOf(c), portStr)
	}
	if !sameHost(host, addr) {
		return nil, badRequest("Invalid check %s %q: Sluice runs checks from the server against the service's address, "+
			"so a check must target %s (or a loopback address, which stands for it), not %s",
			strings.ToUpper(typ), targetOf(c), addr, host)
	}
	if int32(checkPort) != port {
		hc.Port = strconv.Itoa(checkPort)
	}
	interval, _ := time.ParseDuration(c.Interval) // validated: > 0
	interval = max(interval, minInterval)
	timeout, _ := time.ParseDuration(c.Timeout)
	if timeout <= 0 {
		timeout = 2 * time.Second
	}
	// Consul lets a timeout exceed the interval; Sluice does not.
	timeout = min(timeout, interval)
	hc.Interval = &metav1.Duration{Duration: interval}
	hc.Timeout = &metav1.Duration{Duration: timeout}
	// Consul turns a check critical at the first failure and passing at the
	// first success unless told otherwise.
	hc.HealthyThreshold = int32(max(1, c.SuccessBeforePassing))
	hc.UnhealthyThreshold = int32(max(1, c.FailuresBeforeCritical))
	return hc, nil
}

// targetOf is what an active check targets, as registered.
func targetOf(c *api.AgentServiceCheck) string {
	switch {
	case c.GRPC != "":
		return c.GRPC
	case c.HTTP != "":
		return c.HTTP
	}
	return c.TCP
}

// sameHost says whether a check's host stands for the service's address:
// it is that address, or a loopback name or IP.
func sameHost(host, addr string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	hip := net.ParseIP(host)
	if hip != nil && hip.IsLoopback() {
		return true
	}
	if aip := net.ParseIP(addr); aip != nil && hip != nil {
		return aip.Equal(hip)
	}
	return strings.EqualFold(strings.TrimSuffix(host, "."), strings.TrimSuffix(addr, "."))
}

// isAny says whether addr is the unspecified address (0.0.0.0 or ::), which
// Consul refuses as a service address.
func isAny(addr string) bool {
	ip := net.ParseIP(strings.Trim(addr, "[]"))
	return ip != nil && ip.IsUnspecified()
}

// metaProblem says, in Consul's words, what is wrong with service meta
// ("" when nothing is).
func metaProblem(meta map[string]string) string {
	if len(meta) > metaMaxPairs {
		return fmt.Sprintf("Node metadata cannot contain more than %d key/value pairs", metaMaxPairs)
	}
	for k, v := range meta {
		var p string
		switch {
		case k == "":
			p = "Key cannot be blank"
		case !metaKeyFormat.MatchString(k):
			p = "Key contains invalid characters"
		case len(k) > metaKeyMaxLength:
			p = fmt.Sprintf("Key is too long (limit: %d characters)", metaKeyMaxLength)
		case strings.HasPrefix(k, metaReservedPrefix):
			p = fmt.Sprintf("Key prefix '%s' is reserved for internal use", metaReservedPrefix)
		case len(v) > metaValueMaxLength:
			p = fmt.Sprintf("Value is too long (limit: %d characters)", metaValueMaxLength)
		}
		if p != "" {
			return fmt.Sprintf("Couldn't load metadata pair ('%s', '%s'): %s", k, v, p)
		}
	}
	return ""
}

func orEmpty(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

func orEmptyMap(m map[string]string) map[string]string {
	if m == nil {
		return map[string]string{}
	}
	return m
}
