package controlplane

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/recfork/recfork/siprec"
)

// srsHealthReporter is the part of the SIPREC client that knows the SRSs'
// health; *siprec.Client is one. A Recorder without it reports none.
type srsHealthReporter interface {
	SRSHealth() []siprec.SRSState
}

// SRSInfo is one recording server's health as the admin API shows it.
type SRSInfo struct {
	URI        string    `json:"uri"`
	Up         bool      `json:"up"`
	Configured bool      `json:"configured"`
	Failures   int       `json:"failures,omitempty"`
	RetryAfter time.Time `json:"retry_after,omitzero"`
	LastError  string    `json:"last_error,omitempty"`
	LastProbe  time.Time `json:"last_probe,omitzero"`
	LastOK     time.Time `json:"last_ok,omitzero"`
	Probes     uint64    `json:"probes"`
	ProbeFails uint64    `json:"probe_failures"`
}

// SRSHealth returns what the SIPREC client knows of each SRS.
func (d *Daemon) SRSHealth() []SRSInfo {
	out := []SRSInfo{}
	rp := d.recorder.Load()
	if rp == nil {
		return out
	}
	hr, ok := (*rp).(srsHealthReporter)
	if !ok {
		return out
	}
	for _, s := range hr.SRSHealth() {
		out = append(out, SRSInfo{URI: s.URI, Up: s.Up, Configured: s.Configured, Failures: s.Failures,
			RetryAfter: s.RetryAfter, LastError: s.LastError, LastProbe: s.LastProbe, LastOK: s.LastOK,
			Probes: s.Probes, ProbeFails: s.ProbeFailures})
	}
	return out
}

// srsCollector exports the SRSs' health and the recordings' transports at
// scrape time.
type srsCollector struct {
	d                     *Daemon
	up, probes, probeFail *prometheus.Desc
	byTransport           *prometheus.Desc
}

func newSRSCollector(d *Daemon) *srsCollector {
	return &srsCollector{d: d,
		up:          prometheus.NewDesc("recfork_srs_up", "1 while the SRS is used, 0 while it is skipped (failed probes or Retry-After).", []string{"srs"}, nil),
		probes:      prometheus.NewDesc("recfork_srs_probes_total", "OPTIONS keepalive probes sent to the SRS.", []string{"srs"}, nil),
		probeFail:   prometheus.NewDesc("recfork_srs_probe_failures_total", "OPTIONS probes unanswered or answered 503.", []string{"srs"}, nil),
		byTransport: prometheus.NewDesc("recfork_recordings_by_transport", "Recording sessions by the transport of their SIP dialog.", []string{"transport"}, nil),
	}
}

func (c *srsCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.up
	ch <- c.probes
	ch <- c.probeFail
	ch <- c.byTransport
}

func (c *srsCollector) Collect(ch chan<- prometheus.Metric) {
	for _, s := range c.d.SRSHealth() {
		up := 0.0
		if s.Up && time.Now().After(s.RetryAfter) {
			up = 1
		}
		ch <- prometheus.MustNewConstMetric(c.up, prometheus.GaugeValue, up, s.URI)
		ch <- prometheus.MustNewConstMetric(c.probes, prometheus.CounterValue, float64(s.Probes), s.URI)
		ch <- prometheus.MustNewConstMetric(c.probeFail, prometheus.CounterValue, float64(s.ProbeFails), s.URI)
	}
	n := map[string]int{"udp": 0, "tcp": 0}
	if rp := c.d.recorder.Load(); rp != nil {
		for _, st := range (*rp).Recordings() {
			if st.Transport != "" {
				n[st.Transport]++
			}
		}
	}
	for tp, v := range n {
		ch <- prometheus.MustNewConstMetric(c.byTransport, prometheus.GaugeValue, float64(v), tp)
	}
}
