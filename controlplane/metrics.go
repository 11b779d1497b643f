package controlplane

import (
	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the daemon's Prometheus collectors, on a registry of its own so
// that several daemons (tests) never collide.
type metrics struct {
	reg            *prometheus.Registry
	invites        prometheus.Counter
	answered       prometheus.Counter
	rejected       *prometheus.CounterVec
	unknownDialog  prometheus.Counter
	panics         prometheus.Counter
	connections    prometheus.Gauge
	recordRequests prometheus.Counter
	recordErrors   *prometheus.CounterVec
}

func newMetrics() *metrics {
	m := &metrics{
		reg:            prometheus.NewRegistry(),
		invites:        prometheus.NewCounter(prometheus.CounterOpts{Name: "recfork_sip_invites_total", Help: "New INVITEs received."}),
		answered:       prometheus.NewCounter(prometheus.CounterOpts{Name: "recfork_calls_connected_total", Help: "Connections that reached CONNECTED."}),
		rejected:       prometheus.NewCounterVec(prometheus.CounterOpts{Name: "recfork_sip_invites_rejected_total", Help: "INVITEs answered with a final failure, by status."}, []string{"code"}),
		unknownDialog:  prometheus.NewCounter(prometheus.CounterOpts{Name: "recfork_sip_unknown_dialog_total", Help: "In-dialog requests matching no dialog (481)."}),
		panics:         prometheus.NewCounter(prometheus.CounterOpts{Name: "recfork_panics_recovered_total", Help: "Panics recovered in request handling or CCXML sessions."}),
		connections:    prometheus.NewGauge(prometheus.GaugeOpts{Name: "recfork_connections", Help: "Live connections."}),
		recordRequests: prometheus.NewCounter(prometheus.CounterOpts{Name: "recfork_record_requests_total", Help: "bvr.record requests handed to the SIPREC client."}),
		recordErrors:   prometheus.NewCounterVec(prometheus.CounterOpts{Name: "recfork_record_errors_total", Help: "error.bvr.record events, by reason code."}, []string{"reason"}),
	}
	m.reg.MustRegister(m.invites, m.answered, m.rejected, m.unknownDialog, m.panics, m.connections, m.recordRequests, m.recordErrors,
		prometheus.NewGoCollector())
	return m
}
