// Package apiserver serves Sluice's REST API over net/http: one generic
// handler for every kind (list, watch, get, create, update, apply, delete and
// the status subresource), discovery, health and metrics, behind bearer-token
// authentication.
//
// Paths follow Kubernetes: /apis/{group}/{version}/namespaces/{ns}/{plural}
// [/{name}[/status]], cluster-wide lists at /apis/{group}/{version}/{plural},
// and the core group under /api/{version}. Errors are resource.Status JSON
// bodies. The package holds no state of its own: everything is in the store.
package apiserver

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/sluice/sluice/internal/auth"
	"github.com/sluice/sluice/internal/resource"
	"github.com/sluice/sluice/internal/store"
)

// Defaults of Config.
const (
	DefaultMaxBodyBytes   = 3 << 20
	DefaultRequestTimeout = 60 * time.Second
)

// Config configures the API server.
type Config struct {
	Store *store.Store
	// Tokens authenticates requests; nil lets every request in as admin.
	Tokens *auth.Tokens
	// MaxBodyBytes bounds request bodies (default 3 MiB); larger ones get 413.
	MaxBodyBytes int64
	// RequestTimeout bounds every request but watches (default 60s), so that
	// an unreachable etcd answers 503 instead of holding the request forever.
	RequestTimeout time.Duration
	Logger         *slog.Logger
	// Registerer receives the API metrics; Gatherer serves /metrics.
	Registerer prometheus.Registerer
	Gatherer   prometheus.Gatherer
	// Extra serves more endpoints behind the same authentication, by
	// ServeMux pattern: views of other components' state, such as the
	// connected xDS proxies ("GET /apis/sluice.io/v1alpha1/proxies").
	Extra map[string]http.Handler
}

// Server is the HTTP API.
type Server struct {
	store   *store.Store
	tokens  *auth.Tokens
	maxBody int64
	timeout time.Duration
	log     *slog.Logger
	metrics *metrics
	handler http.Handler

	// watches ends with CloseWatches, so that a graceful shutdown does not
	// wait for watch streams, which never go idle on their own.
	watches     context.Context
	stopWatches context.CancelFunc
}

// New builds the API server.
func New(cfg Config) *Server {
	if cfg.MaxBodyBytes <= 0 {
		cfg.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if cfg.RequestTimeout <= 0 {
		cfg.RequestTimeout = DefaultRequestTimeout
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Gatherer == nil {
		cfg.Gatherer = prometheus.NewRegistry()
	}
	s := &Server{
		store:   cfg.Store,
		tokens:  cfg.Tokens,
		maxBody: cfg.MaxBodyBytes,
		timeout: cfg.RequestTimeout,
		log:     cfg.Logger,
		metrics: newMetrics(cfg.Registerer),
	}
	s.watches, s.stopWatches = context.WithCancel(context.Background())

	api := http.NewServeMux()
	for _, prefix := range []string{"/apis/{group}/{version}", "/api/{version}"} {
		ns := prefix + "/namespaces/{namespace}/{plural}"
		api.HandleFunc("GET "+prefix+"/{plural}", s.list)
		api.HandleFunc("GET "+ns, s.list)
		api.HandleFunc("POST "+ns, s.writer(http.StatusCreated, s.store.Create))
		api.HandleFunc("GET "+ns+"/{name}", s.get)
		api.HandleFunc("PUT "+ns+"/{name}", s.writer(http.StatusOK, s.store.Update))
		api.HandleFunc("PATCH "+ns+"/{name}", s.patch)
		api.HandleFunc("DELETE "+ns+"/{name}", s.delete)
		api.HandleFunc("GET "+ns+"/{name}/status", s.get)
		api.HandleFunc("PUT "+ns+"/{name}/status", s.writer(http.StatusOK, s.store.UpdateStatus))
	}
	api.HandleFunc("GET /apis", s.discovery)
	for pattern, h := range cfg.Extra {
		api.Handle(pattern, h)
	}
	api.Handle("GET /metrics", promhttp.HandlerFor(cfg.Gatherer, promhttp.HandlerOpts{}))
	api.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		s.writeError(w, r, fmt.Errorf("%w: no API at %s %s", resource.ErrNotFound, r.Method, r.URL.Path))
	})

	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) { fmt.Fprintln(w, "ok") })
	mux.HandleFunc("GET /readyz", s.readyz)
	mux.Handle("/", s.authenticate(api))
	s.handler = s.instrument(mux)
	return s
}

// Handler returns the HTTP handler of the API.
func (s *Server) Handler() http.Handler { return s.handler }

// CloseWatches ends every open watch stream cleanly; call it when shutdown begins.
func (s *Server) CloseWatches() { s.stopWatches() }

// readyz answers 200 only when the store answers a linearizable read.
func (s *Server) readyz(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	if _, err := s.store.Revision(ctx); err != nil {
		s.log.Warn("not ready: store does not answer", "err", err)
		http.Error(w, "store unavailable", http.StatusServiceUnavailable)
		return
	}
	fmt.Fprintln(w, "ok")
}

type identityKey struct{}

// identityOf is who the request comes from; authenticate sets it.
func identityOf(r *http.Request) auth.Identity {
	if id, ok := r.Context().Value(identityKey{}).(auth.Identity); ok {
		return id
	}
	return auth.Identity{Name: "unauthenticated"} // no role: fail closed
}

// authenticate checks the bearer token and the role's right to the method.
func (s *Server) authenticate(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		id := auth.Anonymous
		if s.tokens != nil {
			token, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
			if !ok || token == "" {
				w.Header().Set("WWW-Authenticate", `Bearer realm="sluice"`)
				s.writeError(w, r, fmt.Errorf("%w: a bearer token is required", resource.ErrUnauthorized))
				return
			}
			var err error
			if id, err = s.tokens.Lookup(token); err != nil {
				w.Header().Set("WWW-Authenticate", `Bearer realm="sluice", error="invalid_token"`)
				s.writeError(w, r, fmt.Errorf("%w: the bearer token is not valid", resource.ErrUnauthorized))
				return
			}
		}
		if r.Method != http.MethodGet && r.Method != http.MethodHead && !id.CanWrite() {
			s.writeError(w, r, fmt.Errorf("%w: %s has role %s, which cannot %s", resource.ErrForbidden, id.Name, id.Role, r.Method))
			return
		}
		ctx := context.WithValue(r.Context(), identityKey{}, id)
		if !isWatchRequest(r) {
			var cancel context.CancelFunc
			ctx, cancel = context.WithTimeout(ctx, s.timeout)
			defer cancel()
		}
		next.ServeHTTP(w, r.WithContext(ctx))
	})
}

// writeJSON writes v with the status code.
func (s *Server) writeJSON(w http.ResponseWriter, code int, v any) {
	if err := WriteJSON(w, code, v); err != nil {
		s.log.Debug("write response", "err", err)
	}
}

// WriteJSON writes v as JSON with the status code; handlers served through
// Config.Extra answer with it and WriteError, like the API's own.
func WriteJSON(w http.ResponseWriter, code int, v any) error {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	return json.NewEncoder(w).Encode(v)
}

// WriteError answers with the Status of err (see resource.StatusOf). An
// unavailable store is reported without its detail.
func WriteError(w http.ResponseWriter, err error) {
	st := resource.StatusOf(err)
	if errors.Is(err, resource.ErrUnavailable) {
		st = &resource.Status{Code: st.Code, Reason: st.Reason, Message: "the store is unavailable; retry later"}
	}
	WriteJSON(w, st.Code, st)
}

// writeError answers with the Status of err. Internal errors are logged with
// their detail, which the client does not see.
func (s *Server) writeError(w http.ResponseWriter, r *http.Request, err error) {
	if st := resource.StatusOf(err); st.Code >= 500 {
		s.log.Error("request failed", "method", r.Method, "path", r.URL.Path, "code", st.Code, "err", err)
	}
	WriteError(w, err)
}
