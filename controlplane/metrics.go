package controlplane

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/recfork/recfork/dataplane"
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
	limited        *prometheus.CounterVec
	malformed      *prometheus.CounterVec
	mediaTimeouts  *prometheus.CounterVec
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
		limited:        prometheus.NewCounterVec(prometheus.CounterOpts{Name: "recfork_limit_rejections_total", Help: "Requests and connections refused by a limit, by limit."}, []string{"limit"}),
		malformed:      prometheus.NewCounterVec(prometheus.CounterOpts{Name: "recfork_sip_requests_refused_total", Help: "SIP requests refused before handling (missing mandatory headers, Max-Forwards 0), by status."}, []string{"code"}),
		mediaTimeouts:  prometheus.NewCounterVec(prometheus.CounterOpts{Name: "recfork_media_timeouts_total", Help: "Calls ended because no RTP arrived, by timeout (media or hold)."}, []string{"timeout"}),
	}
	m.reg.MustRegister(m.invites, m.answered, m.rejected, m.unknownDialog, m.panics, m.connections, m.recordRequests, m.recordErrors,
		m.limited, m.malformed, m.mediaTimeouts,
		collectors.NewGoCollector())
	return m
}

// engineCollector exports the data plane's counters at scrape time.
type engineCollector struct {
	engine  func() dataplane.EngineStats
	gauges  map[string]*prometheus.Desc
	counter map[string]*prometheus.Desc
}

func newEngineCollector(stats func() dataplane.EngineStats) *engineCollector {
	g := func(name, help string) *prometheus.Desc {
		return prometheus.NewDesc("recfork_dataplane_"+name, help, []string{"engine"}, nil)
	}
	return &engineCollector{engine: stats,
		gauges: map[string]*prometheus.Desc{
			"endpoints":  g("endpoints", "Open media endpoints."),
			"joins":      g("joins", "Media joins."),
			"forks":      g("forks", "Recording forks."),
			"ports_free": g("ports_free", "Free RTP/RTCP port pairs."),
		},
		counter: map[string]*prometheus.Desc{
			"copied":  g("copied_packets_total", "Packets copied to recorders."),
			"muted":   g("muted_packets_total", "Packets not copied while a fork was inactive."),
			"relayed": g("relayed_packets_total", "Packets relayed between joined endpoints."),
			"dropped": g("dropped_packets_total", "Packets dropped (unexpected source, malformed)."),
		}}
}

func (c *engineCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range c.gauges {
		ch <- d
	}
	for _, d := range c.counter {
		ch <- d
	}
}

func (c *engineCollector) Collect(ch chan<- prometheus.Metric) {
	st := c.engine()
	for k, v := range map[string]int{"endpoints": st.Endpoints, "joins": st.Joins, "forks": st.Forks, "ports_free": st.PortsFree} {
		ch <- prometheus.MustNewConstMetric(c.gauges[k], prometheus.GaugeValue, float64(v), st.Engine)
	}
	for k, v := range map[string]uint64{"copied": st.CopiedPackets, "muted": st.MutedPackets, "relayed": st.Relayed, "dropped": st.Dropped} {
		ch <- prometheus.MustNewConstMetric(c.counter[k], prometheus.CounterValue, float64(v), st.Engine)
	}
}
