package resource

import (
	"fmt"
	"regexp"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"
)

// GatewayClassName is the GatewayClass Sluice serves.
const GatewayClassName = "sluice"

// Defaults and validation of the Gateway API kinds follow the upstream CRDs'
// OpenAPI defaults and validation rules (kubebuilder markers and CEL), which a
// Kubernetes API server would enforce and Sluice must enforce itself.

var (
	hostnameRE        = regexp.MustCompile(`^(\*\.)?[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`)
	preciseHostnameRE = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`)
	durationRE        = regexp.MustCompile(`^([0-9]{1,5}(h|m|s|ms)){1,4}$`)
	headerNameRE      = regexp.MustCompile(`^[A-Za-z0-9!#$%&'*+\-.^_` + "`" + `|~]+$`)
	protocolRE        = regexp.MustCompile(`^[a-zA-Z0-9]([-a-zA-Z0-9]*[a-zA-Z0-9])?$|[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*\/[A-Za-z0-9]+$`)
	grpcServiceRE     = regexp.MustCompile(`^(?i)\.?[a-z_][a-z_0-9]*(\.[a-z_][a-z_0-9]*)*$`)
	grpcMethodRE      = regexp.MustCompile(`^[A-Za-z_][A-Za-z_0-9]*$`)
)

func ptr[T any](v T) *T { return &v }

func defaultGateway(g *gatewayv1.Gateway) {
	for i := range g.Spec.Listeners {
		l := &g.Spec.Listeners[i]
		if l.AllowedRoutes == nil {
			l.AllowedRoutes = &gatewayv1.AllowedRoutes{}
		}
		if l.AllowedRoutes.Namespaces == nil {
			l.AllowedRoutes.Namespaces = &gatewayv1.RouteNamespaces{}
		}
		if l.AllowedRoutes.Namespaces.From == nil {
			l.AllowedRoutes.Namespaces.From = ptr(gatewayv1.NamespacesFromSame)
		}
		if l.TLS != nil {
			if l.TLS.Mode == nil {
				l.TLS.Mode = ptr(gatewayv1.TLSModeTerminate)
			}
			for j := range l.TLS.CertificateRefs {
				ref := &l.TLS.CertificateRefs[j]
				if ref.Group == nil {
					ref.Group = ptr(gatewayv1.Group(""))
				}
				if ref.Kind == nil {
					ref.Kind = ptr(gatewayv1.Kind("Secret"))
				}
			}
		}
	}
	for i := range g.Spec.Addresses {
		if g.Spec.Addresses[i].Type == nil {
			g.Spec.Addresses[i].Type = ptr(gatewayv1.IPAddressType)
		}
	}
}

func validateGateway(g *gatewayv1.Gateway) field.ErrorList {
	var errs field.ErrorList
	p := field.NewPath("spec")
	if g.Spec.GatewayClassName == "" {
		errs = append(errs, field.Required(p.Child("gatewayClassName"), "is required"))
	}
	lp := p.Child("listeners")
	switch n := len(g.Spec.Listeners); {
	case n == 0:
		errs = append(errs, field.Required(lp, "at least one listener is required"))
	case n > 64:
		errs = append(errs, field.TooMany(lp, n, 64))
	}
	names := map[gatewayv1.SectionName]bool{}
	distinct := map[string]bool{}
	for i, l := range g.Spec.Listeners {
		ip := lp.Index(i)
		errs = append(errs, validSectionName(ip.Child("name"), string(l.Name))...)
		if names[l.Name] {
			errs = append(errs, field.Duplicate(ip.Child("name"), l.Name))
		}
		names[l.Name] = true
		errs = append(errs, validPort(ip.Child("port"), l.Port)...)
		if !protocolRE.MatchString(string(l.Protocol)) {
			errs = append(errs, field.Invalid(ip.Child("protocol"), l.Protocol, "must be HTTP, HTTPS, TLS, TCP, UDP or a domain-prefixed protocol"))
		}
		host := ""
		if l.Hostname != nil {
			host = string(*l.Hostname)
			errs = append(errs, validHostname(ip.Child("hostname"), host)...)
		}
		key := fmt.Sprintf("%d/%s/%s", l.Port, l.Protocol, host)
		if distinct[key] {
			errs = append(errs, field.Invalid(ip, string(l.Name), "port, protocol and hostname must be distinct from every other listener's"))
		}
		distinct[key] = true
		switch l.Protocol {
		case gatewayv1.HTTPProtocolType, gatewayv1.TCPProtocolType, gatewayv1.UDPProtocolType:
			if l.TLS != nil {
				errs = append(errs, field.Forbidden(ip.Child("tls"), "must not be set for protocol "+string(l.Protocol)))
			}
		case gatewayv1.HTTPSProtocolType, gatewayv1.TLSProtocolType:
			if l.TLS == nil {
				errs = append(errs, field.Required(ip.Child("tls"), "is required for protocol "+string(l.Protocol)))
				continue
			}
			mode := gatewayv1.TLSModeTerminate
			if l.TLS.Mode != nil {
				mode = *l.TLS.Mode
			}
			errs = append(errs, oneOf(ip.Child("tls", "mode"), mode, gatewayv1.TLSModeTerminate, gatewayv1.TLSModePassthrough)...)
			if l.Protocol == gatewayv1.HTTPSProtocolType && mode != gatewayv1.TLSModeTerminate {
				errs = append(errs, field.Invalid(ip.Child("tls", "mode"), mode, "must be Terminate for protocol HTTPS"))
			}
			if mode == gatewayv1.TLSModeTerminate && len(l.TLS.CertificateRefs) == 0 {
				errs = append(errs, field.Required(ip.Child("tls", "certificateRefs"), "at least one certificate is required when tls.mode is Terminate"))
			}
			for j, ref := range l.TLS.CertificateRefs {
				rp := ip.Child("tls", "certificateRefs").Index(j)
				if ref.Name == "" {
					errs = append(errs, field.Required(rp.Child("name"), "is required"))
				}
				if ref.Kind != nil && *ref.Kind != "Secret" {
					errs = append(errs, field.NotSupported(rp.Child("kind"), *ref.Kind, []string{"Secret"}))
				}
			}
		}
		if ar := l.AllowedRoutes; ar != nil && ar.Namespaces != nil && ar.Namespaces.From != nil {
			np := ip.Child("allowedRoutes", "namespaces")
			errs = append(errs, oneOf(np.Child("from"), *ar.Namespaces.From, gatewayv1.NamespacesFromAll, gatewayv1.NamespacesFromSame, gatewayv1.NamespacesFromSelector)...)
			if *ar.Namespaces.From == gatewayv1.NamespacesFromSelector && ar.Namespaces.Selector == nil {
				errs = append(errs, field.Required(np.Child("selector"), "is required when from is Selector"))
			}
		}
	}
	return errs
}

func validSectionName(p *field.Path, name string) field.ErrorList {
	if name == "" {
		return field.ErrorList{field.Required(p, "is required")}
	}
	return dnsErrors(p, name, validation.IsDNS1123Subdomain(name))
}

func validHostname(p *field.Path, host string) field.ErrorList {
	if len(host) > 253 || !hostnameRE.MatchString(host) {
		return field.ErrorList{field.Invalid(p, host, "must be a lower-case DNS name, optionally with a leading *. wildcard label")}
	}
	if strings.Count(host, "*") > 1 {
		return field.ErrorList{field.Invalid(p, host, "may hold at most one wildcard")}
	}
	return nil
}

func validDuration(p *field.Path, d *gatewayv1.Duration) (time.Duration, field.ErrorList) {
	if d == nil {
		return 0, nil
	}
	if !durationRE.MatchString(string(*d)) {
		return 0, field.ErrorList{field.Invalid(p, *d, "must be a Gateway API duration such as 500ms, 10s or 1h30m")}
	}
	v, err := time.ParseDuration(string(*d))
	if err != nil {
		return 0, field.ErrorList{field.Invalid(p, *d, err.Error())}
	}
	return v, nil
}

// validRegexPart checks a regular expression that the translation embeds in
// a larger one (a gRPC service or method inside a path pattern): it must also
// compile as a group, which rules out an unterminated \Q quoting the rest.
func validRegexPart(p *field.Path, expr string) field.ErrorList {
	if errs := validRegex(p, expr); len(errs) > 0 {
		return errs
	}
	if _, err := regexp.Compile("(?:" + expr + ")"); err != nil {
		return field.ErrorList{field.Invalid(p, expr, "must be a regular expression that can be embedded in the method path pattern (an unterminated \\Q would quote the rest): "+err.Error())}
	}
	return nil
}

func validRegex(p *field.Path, expr string) field.ErrorList {
	if _, err := regexp.Compile(expr); err != nil {
		return field.ErrorList{field.Invalid(p, expr, "must be a valid RE2 regular expression: "+err.Error())}
	}
	return nil
}

func defaultParentRefs(refs []gatewayv1.ParentReference) {
	for i := range refs {
		if refs[i].Group == nil {
			refs[i].Group = ptr(gatewayv1.Group(gatewayv1.GroupName))
		}
		if refs[i].Kind == nil {
			refs[i].Kind = ptr(gatewayv1.Kind("Gateway"))
		}
	}
}

func defaultBackendRef(ref *gatewayv1.BackendObjectReference) {
	if ref.Group == nil {
		ref.Group = ptr(gatewayv1.Group(""))
	}
	if ref.Kind == nil {
		ref.Kind = ptr(gatewayv1.Kind("Service"))
	}
}

func defaultWeightedBackendRef(ref *gatewayv1.BackendRef) {
	defaultBackendRef(&ref.BackendObjectReference)
	if ref.Weight == nil {
		ref.Weight = ptr(int32(1))
	}
}

// isServiceRef says whether group/kind name a Sluice Service: kind Service in
// the core group (the Gateway API default) or in sluice.io.
func isServiceRef(group *gatewayv1.Group, kind *gatewayv1.Kind) bool {
	return kind != nil && *kind == "Service" && group != nil && (*group == "" || *group == Group)
}

func validateParentRefs(p *field.Path, refs []gatewayv1.ParentReference) field.ErrorList {
	var errs field.ErrorList
	if len(refs) > 32 {
		errs = append(errs, field.TooMany(p, len(refs), 32))
	}
	for i, ref := range refs {
		rp := p.Index(i)
		if ref.Name == "" {
			errs = append(errs, field.Required(rp.Child("name"), "is required"))
		}
		switch {
		case ref.Kind != nil && *ref.Kind == "Gateway":
			if ref.Group == nil || *ref.Group != gatewayv1.GroupName {
				errs = append(errs, field.Invalid(rp.Child("group"), ref.Group, "must be "+gatewayv1.GroupName+" for kind Gateway"))
			}
		case isServiceRef(ref.Group, ref.Kind):
		default:
			errs = append(errs, field.Invalid(rp.Child("kind"), ref.Kind, `must be Gateway (group gateway.networking.k8s.io) or Service (group "" or sluice.io)`))
		}
		if ref.Port != nil {
			errs = append(errs, validPort(rp.Child("port"), *ref.Port)...)
		}
	}
	return errs
}

func validateBackendObjectRef(p *field.Path, ref gatewayv1.BackendObjectReference) field.ErrorList {
	var errs field.ErrorList
	if ref.Name == "" {
		errs = append(errs, field.Required(p.Child("name"), "is required"))
	}
	if !isServiceRef(ref.Group, ref.Kind) {
		errs = append(errs, field.Invalid(p.Child("kind"), ref.Kind, `must be Service (group "" or sluice.io)`))
	} else if ref.Port == nil {
		errs = append(errs, field.Required(p.Child("port"), "is required when kind is Service"))
	}
	if ref.Port != nil {
		errs = append(errs, validPort(p.Child("port"), *ref.Port)...)
	}
	return errs
}

func validateBackendRef(p *field.Path, ref gatewayv1.BackendRef) field.ErrorList {
	errs := validateBackendObjectRef(p, ref.BackendObjectReference)
	if ref.Weight != nil && (*ref.Weight < 0 || *ref.Weight > 1000000) {
		errs = append(errs, field.Invalid(p.Child("weight"), *ref.Weight, "must be 0-1000000"))
	}
	return errs
}

func validateHostnames(p *field.Path, hosts []gatewayv1.Hostname) field.ErrorList {
	var errs field.ErrorList
	if len(hosts) > 16 {
		errs = append(errs, field.TooMany(p, len(hosts), 16))
	}
	for i, h := range hosts {
		errs = append(errs, validHostname(p.Index(i), string(h))...)
	}
	return errs
}

func validHeaderName(p *field.Path, name string) field.ErrorList {
	if name == "" {
		return field.ErrorList{field.Required(p, "is required")}
	}
	if len(name) > 256 || !headerNameRE.MatchString(name) {
		return field.ErrorList{field.Invalid(p, name, "must be a valid HTTP header name")}
	}
	return nil
}

func validateHeaderFilter(p *field.Path, f *gatewayv1.HTTPHeaderFilter) field.ErrorList {
	if f == nil {
		return field.ErrorList{field.Required(p, "is required by the filter type")}
	}
	var errs field.ErrorList
	seen := map[string]bool{}
	check := func(fp *field.Path, name string) {
		errs = append(errs, validHeaderName(fp, name)...)
		if key := strings.ToLower(name); seen[key] {
			errs = append(errs, field.Duplicate(fp, name))
		} else {
			seen[key] = true
		}
	}
	for i, h := range f.Set {
		check(p.Child("set").Index(i).Child("name"), string(h.Name))
	}
	for i, h := range f.Add {
		check(p.Child("add").Index(i).Child("name"), string(h.Name))
	}
	for i, name := range f.Remove {
		check(p.Child("remove").Index(i), name)
	}
	return errs
}

func validateMirror(p *field.Path, m *gatewayv1.HTTPRequestMirrorFilter) field.ErrorList {
	if m == nil {
		return field.ErrorList{field.Required(p, "is required by the filter type")}
	}
	errs := validateBackendObjectRef(p.Child("backendRef"), m.BackendRef)
	if m.Percent != nil && m.Fraction != nil {
		errs = append(errs, field.Invalid(p, "percent and fraction", "only one of percent and fraction may be set"))
	}
	if m.Percent != nil && (*m.Percent < 0 || *m.Percent > 100) {
		errs = append(errs, field.Invalid(p.Child("percent"), *m.Percent, "must be 0-100"))
	}
	if f := m.Fraction; f != nil {
		den := int32(100)
		if f.Denominator != nil {
			den = *f.Denominator
		}
		if den < 1 || f.Numerator < 0 || f.Numerator > den {
			errs = append(errs, field.Invalid(p.Child("fraction"), fmt.Sprintf("%d/%d", f.Numerator, den), "numerator must be 0 to denominator, denominator at least 1"))
		}
	}
	return errs
}

// filterField is one of a filter's type-specific fields and whether it is set.
type filterField struct {
	name string
	set  bool
}

// filterFields checks that a filter sets the field its type names and no other.
func filterFields(p *field.Path, typ string, fields ...filterField) field.ErrorList {
	var errs field.ErrorList
	for _, f := range fields {
		if f.set && !strings.EqualFold(f.name, typ) {
			errs = append(errs, field.Forbidden(p.Child(f.name), "must not be set when type is "+typ))
		}
	}
	return errs
}
