package apiserver

import (
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

type metrics struct {
	requests *prometheus.CounterVec
	latency  *prometheus.HistogramVec
	watches  prometheus.Gauge
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sluice_apiserver_requests_total",
			Help: "API requests by method, resource and status code.",
		}, []string{"method", "resource", "code"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "sluice_apiserver_request_duration_seconds",
			Help:    "Latency of API requests other than watches, by method and resource.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 15),
		}, []string{"method", "resource"}),
		watches: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "sluice_apiserver_watches",
			Help: "Open watch streams.",
		}),
	}
	if reg != nil {
		reg.MustRegister(m.requests, m.latency, m.watches)
	}
	return m
}

// statusRecorder remembers the status code a handler wrote.
type statusRecorder struct {
	http.ResponseWriter
	code int
}

func (r *statusRecorder) WriteHeader(code int) {
	if r.code == 0 {
		r.code = code
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *statusRecorder) Write(b []byte) (int, error) {
	if r.code == 0 {
		r.code = http.StatusOK
	}
	return r.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach Flush on the real writer.
func (r *statusRecorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

func (s *Server) instrument(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rec := &statusRecorder{ResponseWriter: w}
		next.ServeHTTP(rec, r)
		res := s.resourceLabel(r.URL.Path)
		isWatch := isWatchRequest(r)
		if !isWatch {
			s.metrics.latency.WithLabelValues(r.Method, res).Observe(time.Since(start).Seconds())
		}
		method := r.Method
		if isWatch {
			method = "WATCH"
		}
		s.metrics.requests.WithLabelValues(method, res, strconv.Itoa(rec.code)).Inc()
		s.log.Debug("request", "method", r.Method, "path", r.URL.Path, "code", rec.code, "took", time.Since(start))
	})
}

// resourceLabel is the plural of a known kind in an API path, else "other",
// so that the label's values stay few whatever paths clients send.
func (s *Server) resourceLabel(path string) string {
	parts := strings.Split(strings.Trim(path, "/"), "/")
	var group, version string
	switch {
	case len(parts) >= 4 && parts[0] == "apis":
		group, version, parts = parts[1], parts[2], parts[3:]
	case len(parts) >= 3 && parts[0] == "api":
		version, parts = parts[1], parts[2:]
	default:
		return "other"
	}
	if len(parts) >= 3 && parts[0] == "namespaces" {
		parts = parts[2:]
	}
	if k, ok := s.store.Kinds().ByPlural(group, version, parts[0]); ok {
		return k.Plural
	}
	return "other"
}

func isWatchRequest(r *http.Request) bool {
	v := r.URL.Query().Get("watch")
	return v == "true" || v == "1"
}
