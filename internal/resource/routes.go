package resource

import (
	"strings"

	"k8s.io/apimachinery/pkg/util/validation/field"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"
)

func defaultHTTPRoute(r *gatewayv1.HTTPRoute) {
	defaultParentRefs(r.Spec.ParentRefs)
	if r.Status.Parents == nil {
		// The field is required (not omitempty): an empty list, not null.
		r.Status.Parents = []gatewayv1.RouteParentStatus{}
	}
	if len(r.Spec.Rules) == 0 {
		r.Spec.Rules = []gatewayv1.HTTPRouteRule{{}}
	}
	for i := range r.Spec.Rules {
		rule := &r.Spec.Rules[i]
		if len(rule.Matches) == 0 {
			rule.Matches = []gatewayv1.HTTPRouteMatch{{}}
		}
		for j := range rule.Matches {
			m := &rule.Matches[j]
			if m.Path == nil {
				m.Path = &gatewayv1.HTTPPathMatch{}
			}
			if m.Path.Type == nil {
				m.Path.Type = ptr(gatewayv1.PathMatchPathPrefix)
			}
			if m.Path.Value == nil {
				m.Path.Value = ptr("/")
			}
			for k := range m.Headers {
				if m.Headers[k].Type == nil {
					m.Headers[k].Type = ptr(gatewayv1.HeaderMatchExact)
				}
			}
			for k := range m.QueryParams {
				if m.QueryParams[k].Type == nil {
					m.QueryParams[k].Type = ptr(gatewayv1.QueryParamMatchExact)
				}
			}
		}
		defaultHTTPFilters(rule.Filters)
		for j := range rule.BackendRefs {
			defaultWeightedBackendRef(&rule.BackendRefs[j].BackendRef)
			defaultHTTPFilters(rule.BackendRefs[j].Filters)
		}
	}
}

func defaultHTTPFilters(filters []gatewayv1.HTTPRouteFilter) {
	for i := range filters {
		if m := filters[i].RequestMirror; m != nil {
			defaultBackendRef(&m.BackendRef)
		}
	}
}

func validateHTTPRoute(r *gatewayv1.HTTPRoute) field.ErrorList {
	p := field.NewPath("spec")
	errs := validateParentRefs(p.Child("parentRefs"), r.Spec.ParentRefs)
	errs = append(errs, validateHostnames(p.Child("hostnames"), r.Spec.Hostnames)...)
	if n := len(r.Spec.Rules); n > 16 {
		errs = append(errs, field.TooMany(p.Child("rules"), n, 16))
	}
	for i, rule := range r.Spec.Rules {
		rp := p.Child("rules").Index(i)
		if rule.Name != nil {
			errs = append(errs, validSectionName(rp.Child("name"), string(*rule.Name))...)
		}
		if n := len(rule.Matches); n > 64 {
			errs = append(errs, field.TooMany(rp.Child("matches"), n, 64))
		}
		prefixOnly := len(rule.Matches) > 0
		for j, m := range rule.Matches {
			errs = append(errs, validateHTTPMatch(rp.Child("matches").Index(j), m)...)
			if m.Path == nil || m.Path.Type == nil || *m.Path.Type != gatewayv1.PathMatchPathPrefix {
				prefixOnly = false
			}
		}
		errs = append(errs, validateHTTPFilters(rp.Child("filters"), rule.Filters, prefixOnly)...)
		if n := len(rule.BackendRefs); n > 16 {
			errs = append(errs, field.TooMany(rp.Child("backendRefs"), n, 16))
		}
		for j, ref := range rule.BackendRefs {
			bp := rp.Child("backendRefs").Index(j)
			errs = append(errs, validateBackendRef(bp, ref.BackendRef)...)
			errs = append(errs, validateHTTPFilters(bp.Child("filters"), ref.Filters, prefixOnly)...)
		}
		if t := rule.Timeouts; t != nil {
			tp := rp.Child("timeouts")
			req, e1 := validDuration(tp.Child("request"), t.Request)
			be, e2 := validDuration(tp.Child("backendRequest"), t.BackendRequest)
			errs = append(append(errs, e1...), e2...)
			if req > 0 && be > req {
				errs = append(errs, field.Invalid(tp.Child("backendRequest"), *t.BackendRequest, "must not be longer than request"))
			}
		}
		if rt := rule.Retry; rt != nil {
			tp := rp.Child("retry")
			if rt.Attempts != nil && *rt.Attempts < 0 {
				errs = append(errs, field.Invalid(tp.Child("attempts"), *rt.Attempts, "must not be negative"))
			}
			for k, c := range rt.Codes {
				if c < 400 || c > 599 {
					errs = append(errs, field.Invalid(tp.Child("codes").Index(k), c, "must be 400-599"))
				}
			}
			_, e := validDuration(tp.Child("backoff"), rt.Backoff)
			errs = append(errs, e...)
		}
	}
	return errs
}

func validateHTTPMatch(p *field.Path, m gatewayv1.HTTPRouteMatch) field.ErrorList {
	var errs field.ErrorList
	if path := m.Path; path != nil && path.Type != nil && path.Value != nil {
		pp := p.Child("path")
		errs = append(errs, oneOf(pp.Child("type"), *path.Type, gatewayv1.PathMatchExact, gatewayv1.PathMatchPathPrefix, gatewayv1.PathMatchRegularExpression)...)
		v := *path.Value
		switch *path.Type {
		case gatewayv1.PathMatchExact, gatewayv1.PathMatchPathPrefix:
			if len(v) == 0 || v[0] != '/' {
				errs = append(errs, field.Invalid(pp.Child("value"), v, "must be an absolute path starting with /"))
			}
		case gatewayv1.PathMatchRegularExpression:
			errs = append(errs, validRegex(pp.Child("value"), v)...)
		}
		if len(v) > 1024 {
			errs = append(errs, field.TooLong(pp.Child("value"), v, 1024))
		}
	}
	if n := len(m.Headers); n > 16 {
		errs = append(errs, field.TooMany(p.Child("headers"), n, 16))
	}
	seen := map[string]bool{}
	for i, h := range m.Headers {
		hp := p.Child("headers").Index(i)
		errs = append(errs, validHeaderName(hp.Child("name"), string(h.Name))...)
		errs = append(errs, uniqueFold(hp.Child("name"), string(h.Name), seen)...)
		if h.Type != nil {
			errs = append(errs, oneOf(hp.Child("type"), *h.Type, gatewayv1.HeaderMatchExact, gatewayv1.HeaderMatchRegularExpression)...)
			if *h.Type == gatewayv1.HeaderMatchRegularExpression {
				errs = append(errs, validRegex(hp.Child("value"), h.Value)...)
			}
		}
	}
	seen = map[string]bool{}
	for i, q := range m.QueryParams {
		qp := p.Child("queryParams").Index(i)
		errs = append(errs, validHeaderName(qp.Child("name"), string(q.Name))...)
		if seen[string(q.Name)] {
			errs = append(errs, field.Duplicate(qp.Child("name"), q.Name))
		}
		seen[string(q.Name)] = true
		if q.Type != nil {
			errs = append(errs, oneOf(qp.Child("type"), *q.Type, gatewayv1.QueryParamMatchExact, gatewayv1.QueryParamMatchRegularExpression)...)
			if *q.Type == gatewayv1.QueryParamMatchRegularExpression {
				errs = append(errs, validRegex(qp.Child("value"), q.Value)...)
			}
		}
	}
	if m.Method != nil {
		errs = append(errs, oneOf(p.Child("method"), *m.Method,
			gatewayv1.HTTPMethodGet, gatewayv1.HTTPMethodHead, gatewayv1.HTTPMethodPost, gatewayv1.HTTPMethodPut,
			gatewayv1.HTTPMethodDelete, gatewayv1.HTTPMethodConnect, gatewayv1.HTTPMethodOptions,
			gatewayv1.HTTPMethodTrace, gatewayv1.HTTPMethodPatch)...)
	}
	return errs
}

func uniqueFold(p *field.Path, name string, seen map[string]bool) field.ErrorList {
	key := strings.ToLower(name)
	if seen[key] {
		return field.ErrorList{field.Duplicate(p, name)}
	}
	seen[key] = true
	return nil
}

// validateHTTPFilters checks a rule's (or backendRef's) filters. prefixOnly says
// every match of the rule is a PathPrefix match, which ReplacePrefixMatch needs.
func validateHTTPFilters(p *field.Path, filters []gatewayv1.HTTPRouteFilter, prefixOnly bool) field.ErrorList {
	var errs field.ErrorList
	if n := len(filters); n > 16 {
		errs = append(errs, field.TooMany(p, n, 16))
	}
	count := map[gatewayv1.HTTPRouteFilterType]int{}
	for i, f := range filters {
		fp := p.Index(i)
		count[f.Type]++
		errs = append(errs, filterFields(fp, string(f.Type),
			filterField{"requestHeaderModifier", f.RequestHeaderModifier != nil},
			filterField{"responseHeaderModifier", f.ResponseHeaderModifier != nil},
			filterField{"requestMirror", f.RequestMirror != nil},
			filterField{"requestRedirect", f.RequestRedirect != nil},
			filterField{"urlRewrite", f.URLRewrite != nil},
			filterField{"cors", f.CORS != nil},
			filterField{"externalAuth", f.ExternalAuth != nil},
			filterField{"extensionRef", f.ExtensionRef != nil})...)
		switch f.Type {
		case gatewayv1.HTTPRouteFilterRequestHeaderModifier:
			errs = append(errs, validateHeaderFilter(fp.Child("requestHeaderModifier"), f.RequestHeaderModifier)...)
		case gatewayv1.HTTPRouteFilterResponseHeaderModifier:
			errs = append(errs, validateHeaderFilter(fp.Child("responseHeaderModifier"), f.ResponseHeaderModifier)...)
		case gatewayv1.HTTPRouteFilterRequestMirror:
			errs = append(errs, validateMirror(fp.Child("requestMirror"), f.RequestMirror)...)
		case gatewayv1.HTTPRouteFilterRequestRedirect:
			errs = append(errs, validateRedirect(fp.Child("requestRedirect"), f.RequestRedirect, prefixOnly)...)
		case gatewayv1.HTTPRouteFilterURLRewrite:
			errs = append(errs, validateRewrite(fp.Child("urlRewrite"), f.URLRewrite, prefixOnly)...)
		default:
			errs = append(errs, field.NotSupported(fp.Child("type"), f.Type, []string{
				string(gatewayv1.HTTPRouteFilterRequestHeaderModifier), string(gatewayv1.HTTPRouteFilterResponseHeaderModifier),
				string(gatewayv1.HTTPRouteFilterRequestMirror), string(gatewayv1.HTTPRouteFilterRequestRedirect),
				string(gatewayv1.HTTPRouteFilterURLRewrite)}))
		}
	}
	for _, t := range []gatewayv1.HTTPRouteFilterType{gatewayv1.HTTPRouteFilterRequestHeaderModifier, gatewayv1.HTTPRouteFilterResponseHeaderModifier, gatewayv1.HTTPRouteFilterRequestRedirect, gatewayv1.HTTPRouteFilterURLRewrite} {
		if count[t] > 1 {
			errs = append(errs, field.Invalid(p, t, "filter type "+string(t)+" may appear at most once"))
		}
	}
	if count[gatewayv1.HTTPRouteFilterRequestRedirect] > 0 && count[gatewayv1.HTTPRouteFilterURLRewrite] > 0 {
		errs = append(errs, field.Invalid(p, "RequestRedirect and URLRewrite", "RequestRedirect and URLRewrite cannot be used together"))
	}
	return errs
}

func validatePathModifier(p *field.Path, m *gatewayv1.HTTPPathModifier, prefixOnly bool) field.ErrorList {
	if m == nil {
		return nil
	}
	var errs field.ErrorList
	switch m.Type {
	case gatewayv1.FullPathHTTPPathModifier:
		if m.ReplaceFullPath == nil {
			errs = append(errs, field.Required(p.Child("replaceFullPath"), "is required when type is ReplaceFullPath"))
		}
		if m.ReplacePrefixMatch != nil {
			errs = append(errs, field.Forbidden(p.Child("replacePrefixMatch"), "must not be set when type is ReplaceFullPath"))
		}
	case gatewayv1.PrefixMatchHTTPPathModifier:
		if m.ReplacePrefixMatch == nil {
			errs = append(errs, field.Required(p.Child("replacePrefixMatch"), "is required when type is ReplacePrefixMatch"))
		}
		if m.ReplaceFullPath != nil {
			errs = append(errs, field.Forbidden(p.Child("replaceFullPath"), "must not be set when type is ReplacePrefixMatch"))
		}
		if !prefixOnly {
			errs = append(errs, field.Invalid(p.Child("type"), m.Type, "ReplacePrefixMatch needs every match of the rule to be a PathPrefix match"))
		}
	default:
		errs = append(errs, field.NotSupported(p.Child("type"), m.Type, []string{string(gatewayv1.FullPathHTTPPathModifier), string(gatewayv1.PrefixMatchHTTPPathModifier)}))
	}
	return errs
}

func validateRedirect(p *field.Path, r *gatewayv1.HTTPRequestRedirectFilter, prefixOnly bool) field.ErrorList {
	if r == nil {
		return field.ErrorList{field.Required(p, "is required by the filter type")}
	}
	var errs field.ErrorList
	if r.Scheme != nil {
		errs = append(errs, oneOf(p.Child("scheme"), *r.Scheme, "http", "https")...)
	}
	if r.Hostname != nil && !preciseHostnameRE.MatchString(string(*r.Hostname)) {
		errs = append(errs, field.Invalid(p.Child("hostname"), *r.Hostname, "must be a lower-case DNS name without wildcard"))
	}
	if r.Port != nil {
		errs = append(errs, validPort(p.Child("port"), *r.Port)...)
	}
	if r.StatusCode != nil {
		switch *r.StatusCode {
		case 301, 302, 303, 307, 308:
		default:
			errs = append(errs, field.NotSupported(p.Child("statusCode"), *r.StatusCode, []string{"301", "302", "303", "307", "308"}))
		}
	}
	return append(errs, validatePathModifier(p.Child("path"), r.Path, prefixOnly)...)
}

func validateRewrite(p *field.Path, r *gatewayv1.HTTPURLRewriteFilter, prefixOnly bool) field.ErrorList {
	if r == nil {
		return field.ErrorList{field.Required(p, "is required by the filter type")}
	}
	var errs field.ErrorList
	if r.Hostname != nil && !preciseHostnameRE.MatchString(string(*r.Hostname)) {
		errs = append(errs, field.Invalid(p.Child("hostname"), *r.Hostname, "must be a lower-case DNS name without wildcard"))
	}
	return append(errs, validatePathModifier(p.Child("path"), r.Path, prefixOnly)...)
}

func defaultGRPCRoute(r *gatewayv1.GRPCRoute) {
	defaultParentRefs(r.Spec.ParentRefs)
	if r.Status.Parents == nil {
		r.Status.Parents = []gatewayv1.RouteParentStatus{}
	}
	for i := range r.Spec.Rules {
		rule := &r.Spec.Rules[i]
		for j := range rule.Matches {
			m := &rule.Matches[j]
			if m.Method != nil && m.Method.Type == nil {
				m.Method.Type = ptr(gatewayv1.GRPCMethodMatchExact)
			}
			for k := range m.Headers {
				if m.Headers[k].Type == nil {
					m.Headers[k].Type = ptr(gatewayv1.GRPCHeaderMatchExact)
				}
			}
		}
		defaultGRPCFilters(rule.Filters)
		for j := range rule.BackendRefs {
			defaultWeightedBackendRef(&rule.BackendRefs[j].BackendRef)
			defaultGRPCFilters(rule.BackendRefs[j].Filters)
		}
	}
}

func defaultGRPCFilters(filters []gatewayv1.GRPCRouteFilter) {
	for i := range filters {
		if m := filters[i].RequestMirror; m != nil {
			defaultBackendRef(&m.BackendRef)
		}
	}
}

func validateGRPCRoute(r *gatewayv1.GRPCRoute) field.ErrorList {
	p := field.NewPath("spec")
	errs := validateParentRefs(p.Child("parentRefs"), r.Spec.ParentRefs)
	errs = append(errs, validateHostnames(p.Child("hostnames"), r.Spec.Hostnames)...)
	if n := len(r.Spec.Rules); n > 16 {
		errs = append(errs, field.TooMany(p.Child("rules"), n, 16))
	}
	for i, rule := range r.Spec.Rules {
		rp := p.Child("rules").Index(i)
		if rule.Name != nil {
			errs = append(errs, validSectionName(rp.Child("name"), string(*rule.Name))...)
		}
		if n := len(rule.Matches); n > 64 {
			errs = append(errs, field.TooMany(rp.Child("matches"), n, 64))
		}
		for j, m := range rule.Matches {
			errs = append(errs, validateGRPCMatch(rp.Child("matches").Index(j), m)...)
		}
		errs = append(errs, validateGRPCFilters(rp.Child("filters"), rule.Filters)...)
		if n := len(rule.BackendRefs); n > 16 {
			errs = append(errs, field.TooMany(rp.Child("backendRefs"), n, 16))
		}
		for j, ref := range rule.BackendRefs {
			bp := rp.Child("backendRefs").Index(j)
			errs = append(errs, validateBackendRef(bp, ref.BackendRef)...)
			errs = append(errs, validateGRPCFilters(bp.Child("filters"), ref.Filters)...)
		}
	}
	return errs
}

func validateGRPCMatch(p *field.Path, m gatewayv1.GRPCRouteMatch) field.ErrorList {
	var errs field.ErrorList
	if mm := m.Method; mm != nil {
		mp := p.Child("method")
		typ := gatewayv1.GRPCMethodMatchExact
		if mm.Type != nil {
			typ = *mm.Type
		}
		errs = append(errs, oneOf(mp.Child("type"), typ, gatewayv1.GRPCMethodMatchExact, gatewayv1.GRPCMethodMatchRegularExpression)...)
		if mm.Service == nil && mm.Method == nil {
			errs = append(errs, field.Required(mp, "one or both of service and method must be set"))
		}
		switch typ {
		case gatewayv1.GRPCMethodMatchExact:
			if mm.Service != nil && !grpcServiceRE.MatchString(*mm.Service) {
				errs = append(errs, field.Invalid(mp.Child("service"), *mm.Service, "must be a fully qualified gRPC service name such as helloworld.Greeter"))
			}
			if mm.Method != nil && !grpcMethodRE.MatchString(*mm.Method) {
				errs = append(errs, field.Invalid(mp.Child("method"), *mm.Method, "must be a gRPC method name such as SayHello"))
			}
		case gatewayv1.GRPCMethodMatchRegularExpression:
			if mm.Service != nil {
				errs = append(errs, validRegexPart(mp.Child("service"), *mm.Service)...)
			}
			if mm.Method != nil {
				errs = append(errs, validRegexPart(mp.Child("method"), *mm.Method)...)
			}
		}
	}
	if n := len(m.Headers); n > 16 {
		errs = append(errs, field.TooMany(p.Child("headers"), n, 16))
	}
	seen := map[string]bool{}
	for i, h := range m.Headers {
		hp := p.Child("headers").Index(i)
		errs = append(errs, validHeaderName(hp.Child("name"), string(h.Name))...)
		errs = append(errs, uniqueFold(hp.Child("name"), string(h.Name), seen)...)
		if h.Type != nil {
			errs = append(errs, oneOf(hp.Child("type"), *h.Type, gatewayv1.GRPCHeaderMatchExact, gatewayv1.GRPCHeaderMatchRegularExpression)...)
			if *h.Type == gatewayv1.GRPCHeaderMatchRegularExpression {
				errs = append(errs, validRegex(hp.Child("value"), h.Value)...)
			}
		}
		if h.Value == "" {
			errs = append(errs, field.Required(hp.Child("value"), "is required"))
		}
	}
	return errs
}

func validateGRPCFilters(p *field.Path, filters []gatewayv1.GRPCRouteFilter) field.ErrorList {
	var errs field.ErrorList
	if n := len(filters); n > 16 {
		errs = append(errs, field.TooMany(p, n, 16))
	}
	count := map[gatewayv1.GRPCRouteFilterType]int{}
	for i, f := range filters {
		fp := p.Index(i)
		count[f.Type]++
		errs = append(errs, filterFields(fp, string(f.Type),
			filterField{"requestHeaderModifier", f.RequestHeaderModifier != nil},
			filterField{"responseHeaderModifier", f.ResponseHeaderModifier != nil},
			filterField{"requestMirror", f.RequestMirror != nil},
			filterField{"extensionRef", f.ExtensionRef != nil})...)
		switch f.Type {
		case gatewayv1.GRPCRouteFilterRequestHeaderModifier:
			errs = append(errs, validateHeaderFilter(fp.Child("requestHeaderModifier"), f.RequestHeaderModifier)...)
		case gatewayv1.GRPCRouteFilterResponseHeaderModifier:
			errs = append(errs, validateHeaderFilter(fp.Child("responseHeaderModifier"), f.ResponseHeaderModifier)...)
		case gatewayv1.GRPCRouteFilterRequestMirror:
			errs = append(errs, validateMirror(fp.Child("requestMirror"), f.RequestMirror)...)
		default:
			errs = append(errs, field.NotSupported(fp.Child("type"), f.Type, []string{
				string(gatewayv1.GRPCRouteFilterRequestHeaderModifier), string(gatewayv1.GRPCRouteFilterResponseHeaderModifier),
				string(gatewayv1.GRPCRouteFilterRequestMirror)}))
		}
	}
	for _, t := range []gatewayv1.GRPCRouteFilterType{gatewayv1.GRPCRouteFilterRequestHeaderModifier, gatewayv1.GRPCRouteFilterResponseHeaderModifier} {
		if count[t] > 1 {
			errs = append(errs, field.Invalid(p, t, "filter type "+string(t)+" may appear at most once"))
		}
	}
	return errs
}
