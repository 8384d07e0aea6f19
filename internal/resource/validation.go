package resource

import (
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"

	apivalidation "k8s.io/apimachinery/pkg/api/validation"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	metav1validation "k8s.io/apimachinery/pkg/apis/meta/v1/validation"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// DefaultNamespace is the namespace of objects that name none.
const DefaultNamespace = "default"

func validateMeta(k *Kind, obj Object) field.ErrorList {
	var errs field.ErrorList
	p := field.NewPath("metadata")
	name := obj.GetName()
	switch {
	case name == "":
		errs = append(errs, field.Required(p.Child("name"), "is required"))
	case k == ServiceKind:
		// Service names become xDS names "<service>.<namespace>": no dots.
		errs = append(errs, dnsErrors(p.Child("name"), name, validation.IsDNS1035Label(name))...)
	default:
		errs = append(errs, dnsErrors(p.Child("name"), name, validation.IsDNS1123Subdomain(name))...)
	}
	if ns := obj.GetNamespace(); ns == "" {
		errs = append(errs, field.Required(p.Child("namespace"), "is required"))
	} else {
		errs = append(errs, dnsErrors(p.Child("namespace"), ns, validation.IsDNS1123Label(ns))...)
	}
	errs = append(errs, metav1validation.ValidateLabels(obj.GetLabels(), p.Child("labels"))...)
	errs = append(errs, apivalidation.ValidateAnnotations(obj.GetAnnotations(), p.Child("annotations"))...)
	return errs
}

func dnsErrors(p *field.Path, value string, msgs []string) field.ErrorList {
	var errs field.ErrorList
	for _, m := range msgs {
		errs = append(errs, field.Invalid(p, value, m))
	}
	return errs
}

func validPort(p *field.Path, port int32) field.ErrorList {
	if port < 1 || port > 65535 {
		return field.ErrorList{field.Invalid(p, port, "must be 1-65535")}
	}
	return nil
}

func positiveDuration(p *field.Path, d *metav1.Duration) field.ErrorList {
	if d != nil && d.Duration <= 0 {
		return field.ErrorList{field.Invalid(p, d.Duration.String(), "must be greater than zero")}
	}
	return nil
}

func oneOf[T ~string](p *field.Path, v T, allowed ...T) field.ErrorList {
	for _, a := range allowed {
		if v == a {
			return nil
		}
	}
	names := make([]string, len(allowed))
	for i, a := range allowed {
		names[i] = string(a)
	}
	return field.ErrorList{field.NotSupported(p, v, names)}
}

func defaultService(s *Service) {
	for i := range s.Spec.Ports {
		if s.Spec.Ports[i].Protocol == "" {
			s.Spec.Ports[i].Protocol = ProtocolHTTP
		}
	}
}

func validateService(s *Service) field.ErrorList {
	p := field.NewPath("spec")
	errs := metav1validation.ValidateLabels(s.Spec.Selector, p.Child("selector"))
	if len(s.Spec.Ports) == 0 {
		errs = append(errs, field.Required(p.Child("ports"), "at least one port is required"))
	}
	names, numbers := map[string]bool{}, map[int32]bool{}
	for i, port := range s.Spec.Ports {
		pp := p.Child("ports").Index(i)
		errs = append(errs, validPortName(pp.Child("name"), port.Name, len(s.Spec.Ports), names)...)
		errs = append(errs, validPort(pp.Child("port"), port.Port)...)
		if numbers[port.Port] {
			errs = append(errs, field.Duplicate(pp.Child("port"), port.Port))
		}
		numbers[port.Port] = true
		errs = append(errs, oneOf(pp.Child("protocol"), port.Protocol, ProtocolHTTP, ProtocolHTTP2, ProtocolGRPC, ProtocolTCP)...)
	}
	return errs
}

// validPortName checks a port name: required when there are several ports,
// a DNS label, unique among seen.
func validPortName(p *field.Path, name string, count int, seen map[string]bool) field.ErrorList {
	if name == "" {
		if count > 1 {
			return field.ErrorList{field.Required(p, "is required when there is more than one port")}
		}
		return nil
	}
	errs := dnsErrors(p, name, validation.IsDNS1123Label(name))
	if seen[name] {
		errs = append(errs, field.Duplicate(p, name))
	}
	seen[name] = true
	return errs
}

func defaultEndpoint(e *Endpoint) {
	if e.Spec.Weight == nil {
		one := int32(1)
		e.Spec.Weight = &one
	}
	defaultHealthCheck(e.Spec.HealthCheck)
	if e.Status.Health == "" {
		e.Status.Health = HealthHealthy
		if e.Spec.HealthCheck != nil || e.Spec.TTL != nil {
			e.Status.Health = HealthUnknown
		}
	}
	if e.Spec.TTL != nil && e.Spec.OnTTLExpiry == "" {
		e.Spec.OnTTLExpiry = TTLExpiryMarkUnhealthy
	}
}

func defaultHealthCheck(hc *HealthCheck) {
	if hc == nil {
		return
	}
	if hc.Interval == nil {
		hc.Interval = &metav1.Duration{Duration: 10 * time.Second}
	}
	if hc.Timeout == nil {
		hc.Timeout = &metav1.Duration{Duration: 2 * time.Second}
	}
	if hc.HealthyThreshold == 0 {
		hc.HealthyThreshold = 1
	}
	if hc.UnhealthyThreshold == 0 {
		hc.UnhealthyThreshold = 3
	}
	if h := hc.HTTP; h != nil {
		if h.Path == "" {
			h.Path = "/"
		}
		if len(h.ExpectedStatuses) == 0 {
			h.ExpectedStatuses = []StatusRange{{Start: 200, End: 399}}
		}
	}
}

func validateEndpoint(e *Endpoint) field.ErrorList {
	var errs field.ErrorList
	p := field.NewPath("spec")
	errs = append(errs, validAddress(p.Child("address"), e.Spec.Address)...)
	if len(e.Spec.Ports) == 0 {
		errs = append(errs, field.Required(p.Child("ports"), "at least one port is required"))
	}
	names := map[string]bool{}
	for i, port := range e.Spec.Ports {
		pp := p.Child("ports").Index(i)
		errs = append(errs, validPortName(pp.Child("name"), port.Name, len(e.Spec.Ports), names)...)
		errs = append(errs, validPort(pp.Child("port"), port.Port)...)
	}
	if w := e.Spec.Weight; w != nil && (*w < 1 || *w > 10000) {
		errs = append(errs, field.Invalid(p.Child("weight"), *w, "must be 1-10000"))
	}
	if hc := e.Spec.HealthCheck; hc != nil {
		errs = append(errs, validateHealthCheck(p.Child("healthCheck"), hc)...)
		if hc.Port != "" && !names[hc.Port] {
			if n, err := strconv.Atoi(hc.Port); err != nil {
				errs = append(errs, field.Invalid(p.Child("healthCheck", "port"), hc.Port, "must name one of spec.ports or be a port number"))
			} else {
				errs = append(errs, validPort(p.Child("healthCheck", "port"), int32(n))...)
			}
		}
	}
	if ttl := e.Spec.TTL; ttl != nil {
		switch {
		case ttl.Duration < time.Second || ttl.Duration > 24*time.Hour:
			errs = append(errs, field.Invalid(p.Child("ttl"), ttl.Duration.String(), "must be 1s to 24h"))
		case ttl.Duration%time.Second != 0:
			errs = append(errs, field.Invalid(p.Child("ttl"), ttl.Duration.String(), "must be whole seconds (it is an etcd lease)"))
		}
		errs = append(errs, oneOf(p.Child("onTTLExpiry"), e.Spec.OnTTLExpiry, TTLExpiryMarkUnhealthy, TTLExpiryRemove)...)
	} else if e.Spec.OnTTLExpiry != "" {
		errs = append(errs, field.Invalid(p.Child("onTTLExpiry"), e.Spec.OnTTLExpiry, "needs spec.ttl"))
	}
	return errs
}

func validAddress(p *field.Path, addr string) field.ErrorList {
	if addr == "" {
		return field.ErrorList{field.Required(p, "is required")}
	}
	if net.ParseIP(addr) != nil {
		return nil
	}
	if msgs := validation.IsDNS1123Subdomain(addr); len(msgs) > 0 {
		return field.ErrorList{field.Invalid(p, addr, "must be an IP address or a DNS hostname")}
	}
	return nil
}

func validateHealthCheck(p *field.Path, hc *HealthCheck) field.ErrorList {
	var errs field.ErrorList
	set := 0
	for _, b := range []bool{hc.HTTP != nil, hc.TCP != nil, hc.GRPC != nil} {
		if b {
			set++
		}
	}
	if set != 1 {
		errs = append(errs, field.Invalid(p, set, "exactly one of http, tcp and grpc must be set"))
	}
	errs = append(errs, positiveDuration(p.Child("interval"), hc.Interval)...)
	errs = append(errs, positiveDuration(p.Child("timeout"), hc.Timeout)...)
	if hc.Interval != nil && hc.Timeout != nil && hc.Timeout.Duration > hc.Interval.Duration {
		errs = append(errs, field.Invalid(p.Child("timeout"), hc.Timeout.Duration.String(), "must not be longer than interval"))
	}
	if hc.HealthyThreshold < 1 {
		errs = append(errs, field.Invalid(p.Child("healthyThreshold"), hc.HealthyThreshold, "must be at least 1"))
	}
	if hc.UnhealthyThreshold < 1 {
		errs = append(errs, field.Invalid(p.Child("unhealthyThreshold"), hc.UnhealthyThreshold, "must be at least 1"))
	}
	if h := hc.HTTP; h != nil {
		hp := p.Child("http")
		if !strings.HasPrefix(h.Path, "/") {
			errs = append(errs, field.Invalid(hp.Child("path"), h.Path, "must start with /"))
		}
		for i, r := range h.ExpectedStatuses {
			if r.Start < 100 || r.End > 599 || r.Start > r.End {
				errs = append(errs, field.Invalid(hp.Child("expectedStatuses").Index(i), fmt.Sprintf("%d-%d", r.Start, r.End), "must be a range within 100-599 with start <= end"))
			}
		}
		for name := range h.Headers {
			for _, m := range validation.IsHTTPHeaderName(name) {
				errs = append(errs, field.Invalid(hp.Child("headers").Key(name), name, m))
			}
		}
	}
	return errs
}

func validateEndpointStatus(e *Endpoint) field.ErrorList {
	errs := oneOf(field.NewPath("status", "health"), e.Status.Health, HealthHealthy, HealthUnhealthy, HealthUnknown)
	seen := map[string]bool{}
	for i, c := range e.Status.Checks {
		p := field.NewPath("status", "checks").Index(i)
		errs = append(errs, oneOf(p.Child("name"), c.Name, CheckTTL, CheckActive)...)
		if seen[c.Name] {
			errs = append(errs, field.Duplicate(p.Child("name"), c.Name))
		}
		seen[c.Name] = true
		errs = append(errs, oneOf(p.Child("state"), c.State, "", CheckPassing, CheckWarning, CheckCritical)...)
		if len(c.Output) > MaxCheckOutput {
			errs = append(errs, field.TooLong(p.Child("output"), "", MaxCheckOutput))
		}
	}
	return errs
}

// MaxCheckOutput is the most of a check's output an Endpoint's status keeps.
const MaxCheckOutput = 4096

// retryOn is the vocabulary of BackendPolicy.spec.retry.retryOn (Envoy's retry_on).
var retryOn = []string{
	"5xx", "gateway-error", "reset", "connect-failure", "retriable-4xx", "refused-stream",
	"retriable-status-codes", "cancelled", "deadline-exceeded", "internal",
	"resource-exhausted", "unavailable",
}

func defaultBackendPolicy(b *BackendPolicy) {
	for i := range b.Spec.TargetRefs {
		if b.Spec.TargetRefs[i].Kind == "" {
			b.Spec.TargetRefs[i].Kind = "Service"
		}
	}
	if lb := b.Spec.LoadBalancer; lb != nil && lb.Type == "" {
		lb.Type = LoadBalancerRoundRobin
	}
	if r := b.Spec.Retry; r != nil && len(r.RetryOn) == 0 {
		r.RetryOn = []string{"connect-failure", "refused-stream", "unavailable"}
	}
	if o := b.Spec.OutlierDetection; o != nil {
		if o.Consecutive5xx == 0 {
			o.Consecutive5xx = 5
		}
		if o.ConsecutiveConnectFailures == 0 {
			o.ConsecutiveConnectFailures = 5
		}
		if o.Interval == nil {
			o.Interval = &metav1.Duration{Duration: 10 * time.Second}
		}
		if o.BaseEjectionTime == nil {
			o.BaseEjectionTime = &metav1.Duration{Duration: 30 * time.Second}
		}
		if o.MaxEjectionPercent == 0 {
			o.MaxEjectionPercent = 10
		}
	}
	defaultHealthCheck(b.Spec.HealthCheck)
}

func validateBackendPolicy(b *BackendPolicy) field.ErrorList {
	var errs field.ErrorList
	p := field.NewPath("spec")
	if len(b.Spec.TargetRefs) == 0 {
		errs = append(errs, field.Required(p.Child("targetRefs"), "at least one target is required"))
	}
	for i, t := range b.Spec.TargetRefs {
		tp := p.Child("targetRefs").Index(i)
		errs = append(errs, oneOf(tp.Child("group"), t.Group, "", Group)...)
		errs = append(errs, oneOf(tp.Child("kind"), t.Kind, "Service")...)
		if t.Name == "" {
			errs = append(errs, field.Required(tp.Child("name"), "is required"))
		} else {
			errs = append(errs, dnsErrors(tp.Child("name"), t.Name, validation.IsDNS1035Label(t.Name))...)
		}
	}
	if lb := b.Spec.LoadBalancer; lb != nil {
		lp := p.Child("loadBalancer")
		errs = append(errs, oneOf(lp.Child("type"), lb.Type, LoadBalancerRoundRobin, LoadBalancerLeastRequest, LoadBalancerRingHash, LoadBalancerRandom)...)
		if h := lb.HashOn; h != nil {
			if lb.Type != LoadBalancerRingHash {
				errs = append(errs, field.Invalid(lp.Child("hashOn"), lb.Type, "is only allowed with type RingHash"))
			}
			n := 0
			for _, b := range []bool{h.Header != "", h.Cookie != "", h.SourceIP} {
				if b {
					n++
				}
			}
			if n != 1 {
				errs = append(errs, field.Invalid(lp.Child("hashOn"), n, "exactly one of header, cookie and sourceIP must be set"))
			}
		}
	}
	if t := b.Spec.Timeouts; t != nil {
		tp := p.Child("timeouts")
		errs = append(errs, positiveDuration(tp.Child("connect"), t.Connect)...)
		errs = append(errs, positiveDuration(tp.Child("request"), t.Request)...)
		errs = append(errs, positiveDuration(tp.Child("idle"), t.Idle)...)
	}
	if r := b.Spec.Retry; r != nil {
		rp := p.Child("retry")
		if r.Attempts < 0 || r.Attempts > 10 {
			errs = append(errs, field.Invalid(rp.Child("attempts"), r.Attempts, "must be 0-10"))
		}
		errs = append(errs, positiveDuration(rp.Child("perTryTimeout"), r.PerTryTimeout)...)
		errs = append(errs, positiveDuration(rp.Child("backoff"), r.Backoff)...)
		for i, on := range r.RetryOn {
			errs = append(errs, oneOf(rp.Child("retryOn").Index(i), on, retryOn...)...)
		}
	}
	if c := b.Spec.CircuitBreaker; c != nil {
		cp := p.Child("circuitBreaker")
		for _, f := range []struct {
			name string
			v    int32
		}{{"maxConnections", c.MaxConnections}, {"maxPendingRequests", c.MaxPendingRequests}, {"maxRequests", c.MaxRequests}, {"maxRetries", c.MaxRetries}} {
			if f.v < 0 {
				errs = append(errs, field.Invalid(cp.Child(f.name), f.v, "must not be negative"))
			}
		}
	}
	if o := b.Spec.OutlierDetection; o != nil {
		op := p.Child("outlierDetection")
		if o.Consecutive5xx < 0 {
			errs = append(errs, field.Invalid(op.Child("consecutive5xx"), o.Consecutive5xx, "must not be negative"))
		}
		if o.ConsecutiveConnectFailures < 0 {
			errs = append(errs, field.Invalid(op.Child("consecutiveConnectFailures"), o.ConsecutiveConnectFailures, "must not be negative"))
		}
		errs = append(errs, positiveDuration(op.Child("interval"), o.Interval)...)
		errs = append(errs, positiveDuration(op.Child("baseEjectionTime"), o.BaseEjectionTime)...)
		if o.MaxEjectionPercent < 0 || o.MaxEjectionPercent > 100 {
			errs = append(errs, field.Invalid(op.Child("maxEjectionPercent"), o.MaxEjectionPercent, "must be 0-100"))
		}
	}
	if hc := b.Spec.HealthCheck; hc != nil {
		errs = append(errs, validateHealthCheck(p.Child("healthCheck"), hc)...)
	}
	return errs
}
