package xds

import (
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

type metrics struct {
	proxies   prometheus.Gauge
	pushes    *prometheus.CounterVec
	pushTime  *prometheus.HistogramVec
	nacks     *prometheus.CounterVec
	builds    prometheus.Counter
	buildTime prometheus.Histogram
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		proxies: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "sluice_xds_connected_proxies",
			Help: "xDS streams open to this server.",
		}),
		pushes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sluice_xds_pushes_total",
			Help: "Responses sent to waiting xDS streams because their resources changed, by type.",
		}, []string{"type"}),
		pushTime: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "sluice_xds_push_duration_seconds",
			Help:    "Time from a change being seen in the store to its push being handed to a stream, debounce included.",
			Buckets: prometheus.ExponentialBuckets(0.005, 2, 12),
		}, []string{"type"}),
		nacks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sluice_xds_nacks_total",
			Help: "Responses clients rejected, by type.",
		}, []string{"type"}),
		builds: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "sluice_xds_snapshot_builds_total",
			Help: "Snapshots translated from the store.",
		}),
		buildTime: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "sluice_xds_snapshot_build_duration_seconds",
			Help:    "Time to translate the store into a snapshot.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14),
		}),
	}
	if reg != nil {
		reg.MustRegister(m.proxies, m.pushes, m.pushTime, m.nacks, m.builds, m.buildTime)
	}
	return m
}

func (m *metrics) pushed(typeURL string, changedAt time.Time) {
	t := shortType(typeURL)
	m.pushes.WithLabelValues(t).Inc()
	if !changedAt.IsZero() {
		m.pushTime.WithLabelValues(t).Observe(time.Since(changedAt).Seconds())
	}
}

// shortType names a type URL the way operators do: LDS, RDS, CDS, EDS, SDS.
func shortType(typeURL string) string {
	switch typeURL {
	case ListenerType:
		return "LDS"
	case RouteType:
		return "RDS"
	case ClusterType:
		return "CDS"
	case EndpointType:
		return "EDS"
	case SecretType:
		return "SDS"
	}
	return typeURL[strings.LastIndexByte(typeURL, '.')+1:]
}
