package consul

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/sluice/sluice/internal/auth"
	"github.com/sluice/sluice/internal/kv"
	"github.com/sluice/sluice/internal/resource"
	"github.com/sluice/sluice/internal/store"
)

// Datacenter is the one datacenter the facade reports.
const Datacenter = "dc1"

// Heartbeater takes TTL heartbeats: *registry.Registry.
type Heartbeater interface {
	Heartbeat(ctx context.Context, namespace, name string, state resource.CheckState, output string) error
}

// Options configure a Facade.
type Options struct {
	Store *store.Store
	// Registry takes the heartbeats of TTL checks.
	Registry Heartbeater
	// KV is the config center that /v1/kv serves.
	KV *kv.Store
	// Tokens, when set, makes every request but /v1/status/* present a
	// token (X-Consul-Token, Authorization: Bearer or ?token=).
	Tokens *auth.Tokens
	// NodeName is the node registrations report (default: the host name).
	NodeName string
	// RequestTimeout bounds a request's store operations; a blocking query
	// may wait that long on top of its wait time (default 60s).
	RequestTimeout time.Duration
	// MaxBodyBytes bounds request bodies (default 3 MiB).
	MaxBodyBytes int64
	Logger       *slog.Logger
}

// Facade serves the Consul-compatible API over the store.
type Facade struct {
	store    *store.Store
	registry Heartbeater
	kv       *kv.Store
	tokens   *auth.Tokens
	node     string
	timeout  time.Duration
	maxBody  int64
	log      *slog.Logger
	handler  http.Handler

	closing   chan struct{} // closed by Close: blocking queries answer at once
	closeOnce sync.Once

	snaps     sharedReads[*snapshot] // by namespace
	kvReads   sharedReads[kvRead]    // by what is read
	snapReads atomic.Int64           // snapshots read from the store (waiters share them)

	checksMu sync.Mutex        // guards checks
	checks   map[string]string // namespace/check ID → the Endpoint that had it
}

// New returns a facade; Handler serves it.
func New(opts Options) *Facade {
	if opts.NodeName == "" {
		opts.NodeName, _ = os.Hostname()
		if opts.NodeName == "" {
			opts.NodeName = "sluice"
		}
	}
	if opts.RequestTimeout <= 0 {
		opts.RequestTimeout = 60 * time.Second
	}
	if opts.MaxBodyBytes <= 0 {
		opts.MaxBodyBytes = 3 << 20
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	f := &Facade{
		store: opts.Store, registry: opts.Registry, kv: opts.KV, tokens: opts.Tokens, node: opts.NodeName,
		timeout: opts.RequestTimeout, maxBody: opts.MaxBodyBytes, log: opts.Logger,
		closing: make(chan struct{}),
		checks:  map[string]string{},
	}
	f.handler = f.routes()
	return f
}

// Handler returns the HTTP handler of the API.
func (f *Facade) Handler() http.Handler { return f.handler }

// Close makes every blocking query answer at once, as if its wait had
// passed, so that a graceful shutdown does not wait for them. Requests after
// Close answer without blocking.
func (f *Facade) Close() { f.closeOnce.Do(func() { close(f.closing) }) }

// endpoint is a handler in Consul's style: it returns what to answer as JSON
// (nothing when nil) or an error, which serve turns into a status and text.
type endpoint func(w http.ResponseWriter, r *http.Request) (any, error)

// raw adapts a plain handler, which writes its own answer (KV's ?raw does).
func raw(h http.HandlerFunc) endpoint {
	return func(w http.ResponseWriter, r *http.Request) (any, error) {
		h(w, r)
		return nil, nil
	}
}

// routes is the list of endpoints, by path and method.
func (f *Facade) routes() http.Handler {
	mux := http.NewServeMux()
	handle := func(pattern string, methods map[string]endpoint) {
		mux.Handle(pattern, f.serve(methods))
	}
	get := func(e endpoint) map[string]endpoint { return map[string]endpoint{http.MethodGet: e} }
	put := func(e endpoint) map[string]endpoint { return map[string]endpoint{http.MethodPut: e} }

	handle("/v1/agent/service/register", put(f.registerService))
	handle("/v1/agent/service/deregister/{id...}", put(f.deregisterService))
	handle("/v1/agent/service/{id...}", get(f.agentServiceByID))
	handle("/v1/agent/services", get(f.agentServices))
	handle("/v1/agent/checks", get(f.agentChecks))
	handle("/v1/agent/check/pass/{id...}", put(f.checkState(resource.CheckPassing)))
	handle("/v1/agent/check/warn/{id...}", put(f.checkState(resource.CheckWarning)))
	handle("/v1/agent/check/fail/{id...}", put(f.checkState(resource.CheckCritical)))
	handle("/v1/agent/check/update/{id...}", put(f.checkUpdate))
	handle("/v1/agent/self", get(f.agentSelf))
	handle("/v1/status/leader", get(f.statusLeader))
	handle("/v1/status/peers", get(f.statusPeers))
	handle("/v1/catalog/services", get(f.catalogServices))
	handle("/v1/catalog/service/{name...}", get(f.catalogService))
	handle("/v1/health/service/{name...}", get(f.healthService))
	handle("/v1/health/checks/{name...}", get(f.healthChecks))
	handle("/v1/kv/{key...}", map[string]endpoint{
		http.MethodGet:    raw(f.kvGet),
		http.MethodPut:    raw(f.kvPut),
		http.MethodDelete: raw(f.kvDelete),
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/" {
			fmt.Fprint(w, "Consul Agent (Sluice)")
			return
		}
		w.WriteHeader(http.StatusNotFound) // as Consul: no body
	})
	return mux
}

// unauthenticated are the paths Consul serves without an ACL check.
var unauthenticated = []string{"/v1/status/leader", "/v1/status/peers"}

// serve runs one request through the pipeline: method, token, datacenter,
// then the endpoint, whose result or error it writes.
func (f *Facade) serve(methods map[string]endpoint) http.Handler {
	allowed := make([]string, 0, len(methods)+1)
	allowed = append(allowed, http.MethodOptions)
	for m := range methods {
		allowed = append(allowed, m)
	}
	slices.Sort(allowed[1:])
	allow := strings.Join(allowed, ",")
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodOptions {
			w.Header().Set("Allow", allow)
			return
		}
		e, ok := methods[r.Method]
		if !ok {
			w.Header().Set("Allow", allow)
			f.writeError(w, r, errorf(http.StatusMethodNotAllowed, "method %s not allowed", r.Method))
			return
		}
		if err := f.authorize(r); err != nil {
			f.writeError(w, r, err)
			return
		}
		if dc := r.URL.Query().Get("dc"); dc != "" && dc != Datacenter {
			f.writeError(w, r, errorf(http.StatusInternalServerError, "No path to datacenter"))
			return
		}
		// A blocking query may wait its wait time on top of the usual bound
		// (with room for the jitter, drawn again where it waits).
		timeout := f.timeout
		if q, err := parseBlocking(r); err == nil && q.Index > 0 {
			timeout += q.Wait + q.Wait/jitterFraction
		}
		ctx, cancel := context.WithTimeout(r.Context(), timeout)
		defer cancel()
		r = r.WithContext(ctx)
		if r.Body != nil {
			r.Body = http.MaxBytesReader(w, r.Body, f.maxBody)
		}
		if r.Method == http.MethodGet {
			// Every read says there is a leader; reads of the store also
			// say their index (setQueryMeta).
			w.Header().Set("X-Consul-KnownLeader", "true")
			w.Header().Set("X-Consul-LastContact", "0")
		}
		obj, err := e(w, r)
		if err != nil && errors.Is(err, context.Canceled) && r.Context().Err() != nil {
			// The client left (clients cancel blocking queries all the
			// time): nobody reads an answer.
			f.log.Debug("consul request canceled", "method", r.Method, "path", r.URL.Path)
			return
		}
		if err != nil {
			f.writeError(w, r, err)
			return
		}
		if obj != nil {
			f.writeJSON(w, r, obj)
		}
	})
}

// authorize checks the request's token, when tokens are configured: an
// unknown or missing token is Consul's 403 "ACL not found", a read token
// changing anything its 403 "Permission denied".
func (f *Facade) authorize(r *http.Request) error {
	if f.tokens == nil || slices.Contains(unauthenticated, r.URL.Path) {
		return nil
	}
	id, err := f.tokens.Lookup(tokenOf(r))
	if err != nil {
		return errorf(http.StatusForbidden, "ACL not found")
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead && !id.CanWrite() {
		return errorf(http.StatusForbidden, "Permission denied")
	}
	return nil
}

// tokenOf is the request's token, from where Consul looks for one.
func tokenOf(r *http.Request) string {
	if t := r.Header.Get("X-Consul-Token"); t != "" {
		return t
	}
	if t, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); ok && t != "" {
		return strings.TrimSpace(t)
	}
	return r.URL.Query().Get("token")
}

// httpError is an answer in Consul's format: a status and a plain-text body.
type httpError struct {
	code int
	msg  string
}

func (e *httpError) Error() string { return e.msg }

func errorf(code int, format string, args ...any) error {
	return &httpError{code: code, msg: fmt.Sprintf(format, args...)}
}

// badRequest is a 400 in Consul's style.
func badRequest(format string, args ...any) error {
	return errorf(http.StatusBadRequest, format, args...)
}

// writeError answers err as Consul would: its status and a plain-text body.
// Errors of the store that are not the client's fault are 500s whose detail
// is logged, not shown.
func (f *Facade) writeError(w http.ResponseWriter, r *http.Request, err error) {
	var he *httpError
	var mbe *http.MaxBytesError
	switch {
	case errors.As(err, &he):
	case errors.As(err, &mbe):
		he = &httpError{http.StatusRequestEntityTooLarge, fmt.Sprintf("Request body too large: the limit is %d bytes", mbe.Limit)}
	case errors.Is(err, resource.ErrUnavailable):
		he = &httpError{http.StatusInternalServerError, "Sluice's store is unavailable; retry later"}
	case errors.Is(err, context.DeadlineExceeded):
		he = &httpError{http.StatusInternalServerError, "Request timed out"}
	case errors.Is(err, resource.ErrInvalid), errors.Is(err, resource.ErrBadRequest):
		// A registration the facade accepted but the store refused: say why.
		he = &httpError{http.StatusBadRequest, err.Error()}
	default:
		he = &httpError{http.StatusInternalServerError, "internal error"}
	}
	if he.code >= 500 {
		f.log.Error("consul request failed", "method", r.Method, "path", r.URL.Path, "code", he.code, "err", err)
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(he.code)
	fmt.Fprint(w, he.msg)
}

// writeJSON answers obj as JSON, indented with ?pretty as Consul does; a
// json.RawMessage is an answer encoded already (by encodeJSON).
func (f *Facade) writeJSON(w http.ResponseWriter, r *http.Request, obj any) {
	data, ok := obj.(json.RawMessage)
	if !ok {
		var err error
		if data, err = encodeJSON(r, obj); err != nil {
			f.writeError(w, r, err)
			return
		}
	}
	w.Header().Set("Content-Type", "application/json")
	w.Write(data)
}

// encodeJSON encodes an answer to r, indented with ?pretty.
func encodeJSON(r *http.Request, obj any) (json.RawMessage, error) {
	if _, pretty := r.URL.Query()["pretty"]; pretty {
		data, err := json.MarshalIndent(obj, "", "    ")
		return append(data, '\n'), err
	}
	return json.Marshal(obj)
}

// namespace is the Sluice namespace a request is about: Consul Enterprise's
// ?ns=, else default.
func namespace(r *http.Request) (string, error) {
	ns := r.URL.Query().Get("ns")
	if ns == "" {
		return resource.DefaultNamespace, nil
	}
	return checkNamespace(ns)
}

func checkNamespace(ns string) (string, error) {
	if msgs := validation.IsDNS1123Label(ns); len(msgs) > 0 {
		return "", badRequest("Invalid namespace %q: Sluice namespaces must be DNS-1123 labels (lowercase letters, digits, '-')", ns)
	}
	return ns, nil
}

// remoteIP is the IP address the request came from.
func remoteIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}
