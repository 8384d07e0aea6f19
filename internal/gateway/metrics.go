package gateway

import (
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// metrics are the gateway's Prometheus metrics, in a registry of its own.
type metrics struct {
	reg      *prometheus.Registry
	requests *prometheus.CounterVec
	latency  *prometheus.HistogramVec
	updates  *prometheus.CounterVec
	// overflows counts the requests and retries the clusters' circuit
	// breakers refused.
	overflows *prometheus.CounterVec
	// healthChecks counts the active health checks by cluster and result;
	// unhealthy is how many endpoints of a cluster fail theirs.
	healthChecks *prometheus.CounterVec
	unhealthy    *prometheus.GaugeVec

	// counters and observers cache the request series by their labels:
	// a vector's lookup hashes the label values under a lock, on every
	// request otherwise.
	counters  sync.Map // requestSeries → prometheus.Counter
	observers sync.Map // latencySeries → prometheus.Observer
}

type requestSeries struct {
	listener, route, cluster string
	class                    int
}

type latencySeries struct{ route, cluster string }

func newMetrics() *metrics {
	m := &metrics{
		reg: prometheus.NewRegistry(),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sluice_gateway_requests_total",
			Help: "Requests served, by listener, route, cluster and status class (2xx, 4xx, ...).",
		}, []string{"listener", "route", "cluster", "code_class"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "sluice_gateway_request_duration_seconds",
			Help:    "Time from a request's arrival to the end of its response, by route and cluster.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}, []string{"route", "cluster"}),
		updates: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sluice_gateway_xds_updates_total",
			Help: "xDS responses received, by type (LDS, RDS, CDS, EDS, SDS) and result (ack, nack).",
		}, []string{"type", "result"}),
		overflows: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sluice_gateway_circuit_breaker_overflows_total",
			Help: "Requests and retries a cluster's circuit breaker refused, by cluster and limit (requests, pending, retries).",
		}, []string{"cluster", "limit"}),
		healthChecks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sluice_gateway_health_checks_total",
			Help: "Active health checks of upstream endpoints, by cluster and result (success, failure).",
		}, []string{"cluster", "result"}),
		unhealthy: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "sluice_gateway_unhealthy_endpoints",
			Help: "Endpoints of a cluster that fail their active health check.",
		}, []string{"cluster"}),
	}
	m.reg.MustRegister(m.requests, m.latency, m.updates, m.overflows, m.healthChecks, m.unhealthy,
		// The process's memory, CPU, file descriptors and garbage collector
		// (go_gc_gogc_percent shows the heap floor's pace).
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

func (m *metrics) observe(r *request, status int, took time.Duration) {
	if status == 0 {
		status = 200
	}
	rk := requestSeries{r.listener, r.route, r.cluster, status / 100}
	c, ok := m.counters.Load(rk)
	if !ok {
		c, _ = m.counters.LoadOrStore(rk, m.requests.WithLabelValues(r.listener, r.route, r.cluster, strconv.Itoa(rk.class)+"xx"))
	}
	c.(prometheus.Counter).Inc()
	lk := latencySeries{r.route, r.cluster}
	o, ok := m.observers.Load(lk)
	if !ok {
		o, _ = m.observers.LoadOrStore(lk, m.latency.WithLabelValues(r.route, r.cluster))
	}
	o.(prometheus.Observer).Observe(took.Seconds())
}

// overflow counts a circuit breaker's refusal: limit is requests, pending
// or retries.
func (m *metrics) overflow(cluster, limit string) {
	m.overflows.WithLabelValues(cluster, limit).Inc()
}

// forgetHealth drops the health-check series of a cluster that has no
// health check any more.
func (m *metrics) forgetHealth(cluster string) {
	m.unhealthy.DeleteLabelValues(cluster)
	m.healthChecks.DeletePartialMatch(prometheus.Labels{"cluster": cluster})
}
