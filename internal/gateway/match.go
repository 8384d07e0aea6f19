package gateway

import (
	"net/http"
	"strings"
)

// Route returns the first route of vh whose match holds for r, in the
// order the control plane gave them (it orders them by precedence), or nil.
func (vh *VirtualHost) Route(r *http.Request, host string) *Route {
	for _, rt := range vh.Routes {
		if rt.Match.Matches(r, host) {
			return rt
		}
	}
	return nil
}

// Matches says whether every part of m holds for r; host is the request's
// host without its port.
func (m *Match) Matches(r *http.Request, host string) bool {
	if !m.matchPath(r.URL.Path) {
		return false
	}
	if m.GRPC && !strings.HasPrefix(r.Header.Get("Content-Type"), "application/grpc") {
		return false
	}
	for i := range m.Headers {
		if !m.Headers[i].matches(r, host) {
			return false
		}
	}
	if len(m.Query) > 0 {
		q := r.URL.Query()
		for i := range m.Query {
			if !m.Query[i].matches(q) {
				return false
			}
		}
	}
	return true
}

func (m *Match) matchPath(path string) bool {
	if path == "" {
		path = "/"
	}
	switch m.PathKind {
	case PathExact:
		if m.CaseSensitive {
			return path == m.Path
		}
		return strings.EqualFold(path, m.Path)
	case PathPrefix:
		if m.CaseSensitive {
			return strings.HasPrefix(path, m.Path)
		}
		return len(path) >= len(m.Path) && strings.EqualFold(path[:len(m.Path)], m.Path)
	case PathSeparatedPrefix:
		p := m.Path
		if !m.CaseSensitive {
			path, p = strings.ToLower(path), strings.ToLower(p)
		}
		return path == p || (strings.HasPrefix(path, p) && path[len(p)] == '/')
	case PathRegex:
		return m.PathRE.MatchString(path)
	}
	return false
}

// headerValue is a request header as Envoy sees it: several values joined
// by commas, pseudo-headers from the request line.
func headerValue(r *http.Request, host, name string) (string, bool) {
	switch strings.ToLower(name) {
	case ":method":
		return r.Method, true
	case ":authority", "host":
		return host, true
	case ":path":
		return r.URL.RequestURI(), true
	case ":scheme":
		if r.TLS != nil {
			return "https", true
		}
		return "http", true
	}
	vs, ok := r.Header[http.CanonicalHeaderKey(name)]
	if !ok {
		return "", false
	}
	return strings.Join(vs, ","), true
}

func (hm *HeaderMatch) matches(r *http.Request, host string) bool {
	v, ok := headerValue(r, host, hm.Name)
	var res bool
	switch {
	case hm.Present != nil:
		res = ok == *hm.Present
	case hm.String != nil:
		res = ok && hm.String.matches(v)
	default:
		res = ok
	}
	return res != hm.Invert
}

func (qm *QueryMatch) matches(q map[string][]string) bool {
	vs, ok := q[qm.Name]
	if qm.Present || qm.String == nil {
		return ok
	}
	return ok && len(vs) > 0 && qm.String.matches(vs[0])
}

func (sm *StringMatch) matches(v string) bool {
	cmp := func(a, b string) bool {
		if sm.IgnoreCase {
			return strings.EqualFold(a, b)
		}
		return a == b
	}
	switch {
	case sm.Exact != nil:
		return cmp(v, *sm.Exact)
	case sm.Prefix != nil:
		return len(v) >= len(*sm.Prefix) && cmp(v[:len(*sm.Prefix)], *sm.Prefix)
	case sm.Suffix != nil:
		return len(v) >= len(*sm.Suffix) && cmp(v[len(v)-len(*sm.Suffix):], *sm.Suffix)
	case sm.Contains != nil:
		if sm.IgnoreCase {
			return strings.Contains(strings.ToLower(v), strings.ToLower(*sm.Contains))
		}
		return strings.Contains(v, *sm.Contains)
	case sm.RE != nil:
		return sm.RE.MatchString(v)
	}
	return false
}
