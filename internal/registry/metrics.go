package registry

import "github.com/prometheus/client_golang/prometheus"

type metrics struct {
	heartbeats   prometheus.Counter
	checks       *prometheus.CounterVec
	checkers     prometheus.Gauge
	reconciles   prometheus.Counter
	statusWrites prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		heartbeats: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "sluice_registry_heartbeats_total", Help: "TTL heartbeats taken by this replica.",
		}),
		checks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sluice_registry_checks_total", Help: "Active health check attempts run by this replica, by result.",
		}, []string{"state"}),
		checkers: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "sluice_registry_owned_checks", Help: "Active health checks this replica owns and runs.",
		}),
		reconciles: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "sluice_registry_reconciles_total", Help: "Reconciles of Endpoints owned by this replica.",
		}),
		statusWrites: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "sluice_registry_status_writes_total", Help: "Endpoint status updates written by this replica.",
		}),
	}
	if reg != nil {
		reg.MustRegister(m.heartbeats, m.checks, m.checkers, m.reconciles, m.statusWrites)
	}
	return m
}
