package store

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sluice/sluice/internal/resource"
)

type metrics struct {
	ops         *prometheus.HistogramVec
	watchers    prometheus.Gauge
	compactions prometheus.Counter
	defrags     prometheus.Counter
	dbSize      prometheus.Gauge
	dbSizeInUse prometheus.Gauge
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		ops: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "sluice_store_operation_duration_seconds",
			Help:    "Latency of store operations by operation and kind.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14),
		}, []string{"operation", "kind"}),
		watchers: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "sluice_store_watchers",
			Help: "Open store watches.",
		}),
		compactions: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "sluice_store_compactions_total",
			Help: "etcd compactions this server performed.",
		}),
		defrags: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "sluice_store_defragmentations_total",
			Help: "etcd defragmentations this server performed.",
		}),
		dbSize: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "sluice_store_db_size_bytes",
			Help: "Size of the etcd database file at the last maintenance check.",
		}),
		dbSizeInUse: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "sluice_store_db_size_in_use_bytes",
			Help: "Bytes of the etcd database in use at the last maintenance check.",
		}),
	}
	if reg != nil {
		reg.MustRegister(m.ops, m.watchers, m.compactions, m.defrags, m.dbSize, m.dbSizeInUse)
	}
	return m
}

func (m *metrics) observe(op string, k *resource.Kind, start time.Time) {
	m.ops.WithLabelValues(op, k.Kind).Observe(time.Since(start).Seconds())
}
