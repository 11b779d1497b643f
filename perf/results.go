package perf

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"time"
)

// Metric statuses. Every key the suite knows is present in every results file,
// whatever happened to the scenario that writes it, so the file's keys never
// change from run to run; Status and Reason say why a key has no value.
const (
	StatusMeasured    = "measured"
	StatusSkipped     = "skipped"      // a prerequisite of the machine is missing (rtpengine, root, ...)
	StatusNotMeasured = "not measured" // the scenario failed or its dependency is not built yet
	StatusNA          = "n/a"          // the figure has no meaning for this key (e.g. per-copy CPU of "no fork")
)

// Metric is one figure of the results file.
type Metric struct {
	// Value is nil unless Status is measured.
	Value *float64 `json:"value"`
	Unit  string   `json:"unit"`
	// Ratio is Value divided by the value of RatioTo, a baseline measured in the
	// same run, so that figures which depend on the machine's speed can be
	// compared across machines and noisy runs. Nil when it has no ratio.
	Ratio   *float64 `json:"ratio,omitempty"`
	RatioTo string   `json:"ratio_to,omitempty"`
	Status  string   `json:"status"`
	Reason  string   `json:"reason,omitempty"`
	// Target is the figure the project aims at, as prose (e.g. "<= 50").
	Target string `json:"target,omitempty"`
	// Samples is how many observations the value summarises.
	Samples int `json:"samples,omitempty"`
	// StdErr is the standard error of Value where the suite estimates one.
	StdErr *float64 `json:"stderr,omitempty"`
}

// KeySpec declares one metric key: its unit, the baseline its ratio is taken
// to (if any) and the project's target for it.
type KeySpec struct {
	Key, Unit, RatioTo, Target, Doc string
}

// Keys is the full, stable list of metric keys written by the suite. Tests
// check that a results file carries exactly these.
var Keys = []KeySpec{
	// Baselines measured in the same run; ratios below divide by these.
	{Key: "baseline.xdp_pass_ns", Unit: "ns/pkt", Doc: "test run of an XDP program that only returns XDP_PASS"},
	{Key: "baseline.map_update_us", Unit: "us", Doc: "one BPF array-map update from Go (p50)"},
	{Key: "baseline.wakeup_us.p99", Unit: "us", Doc: "a goroutine blocked on a channel woken by another (p99): the machine's scheduling latency"},
	{Key: "baseline.goja_calls_per_s", Unit: "1/s", Doc: "calls of a compiled ECMAScript function in goja"},
	{Key: "baseline.sipp_uas_cps", Unit: "calls/s", Doc: "sipp caller against a sipp UAS, same call shape as calls.cps"},

	{Key: "bpf.testrun_ns.active", Unit: "ns/pkt", RatioTo: "baseline.xdp_pass_ns", Doc: "TCX ingress fork program, stream active (rewrite + clone + restore)"},
	{Key: "bpf.testrun_ns.inactive", Unit: "ns/pkt", RatioTo: "baseline.xdp_pass_ns", Doc: "TCX ingress fork program, stream muted (lookup + count)"},
	{Key: "bpf.testrun_ns.miss", Unit: "ns/pkt", RatioTo: "baseline.xdp_pass_ns", Doc: "TCX ingress fork program, packet of no stream"},
	{Key: "bpf.testrun_ns.relay_fork", Unit: "ns/pkt", RatioTo: "baseline.xdp_pass_ns", Doc: "TCX ingress program, joined endpoint with an active inbound fork (fork + relay rewrite + redirect); one cold run per sample (a rewritten frame cannot be repeated), so not comparable with the repeated active figure"},
	{Key: "bpf.testrun_ns.relay", Unit: "ns/pkt", RatioTo: "baseline.xdp_pass_ns", Doc: "TCX ingress program, joined endpoint without forks (relay rewrite + redirect); one cold run per sample, as relay_fork"},
	{Key: "bpf.testrun_ns.guard_drop", Unit: "ns/pkt", RatioTo: "baseline.xdp_pass_ns", Doc: "TCX ingress program, RTP from a foreign source to a guarded (joined) endpoint: latch-table lookup, drop and count; every run checked to be TCX_DROP and counted by the engine's guard"},

	{Key: "fork.none.pps", Unit: "pps", Doc: "highest lossless relay rate without forks (userspace relay)"},
	{Key: "fork.none.cpu_ns_per_copy", Unit: "ns", Doc: "no copies are made: not applicable"},
	{Key: "fork.none.cpu_ns_per_packet", Unit: "ns", Doc: "CPU per relayed packet without forks, the per-packet baseline"},
	{Key: "fork.none.loss", Unit: "fraction", Doc: "relay loss at fork.none.pps"},
	{Key: "fork.userspace.pps", Unit: "copies/s", RatioTo: "fork.none.pps", Doc: "highest copy rate with loss < 0.1%"},
	{Key: "fork.userspace.cpu_ns_per_copy", Unit: "ns", RatioTo: "fork.none.cpu_ns_per_packet", Doc: "extra CPU per copy against the same engine without forks"},
	{Key: "fork.userspace.loss", Unit: "fraction", Doc: "copy loss at fork.userspace.pps"},
	{Key: "fork.ebpf.pps", Unit: "copies/s", RatioTo: "fork.none.pps", Target: ">= 1000000", Doc: "highest copy rate with loss < 0.1%"},
	{Key: "fork.ebpf.cpu_ns_per_copy", Unit: "ns", RatioTo: "fork.none.cpu_ns_per_packet", Target: "<= 1/3 of userspace and rtpengine", Doc: "extra CPU per copy against the same engine without forks"},
	{Key: "fork.ebpf.loss", Unit: "fraction", Doc: "copy loss at fork.ebpf.pps"},
	{Key: "fork.rtpengine.pps", Unit: "copies/s", RatioTo: "fork.none.pps", Doc: "highest copy rate with loss < 0.1% (rtpengine userspace, publish/subscribe)"},
	{Key: "fork.rtpengine.cpu_ns_per_copy", Unit: "ns", RatioTo: "fork.none.cpu_ns_per_packet", Doc: "extra CPU per copy against rtpengine relaying without subscriptions"},
	{Key: "fork.rtpengine.loss", Unit: "fraction", Doc: "copy loss at fork.rtpengine.pps"},
	{Key: "fork.srtp.pps", Unit: "copies/s", RatioTo: "fork.userspace.pps", Doc: "highest copy rate with loss < 0.1%, copies leaving as SRTP through dataplane/srtp relays (userspace engine, AES_CM_128_HMAC_SHA1_80); ratio to the plain copies of the same engine"},
	{Key: "fork.srtp.cpu_ns_per_copy", Unit: "ns", RatioTo: "fork.userspace.cpu_ns_per_copy", Doc: "extra CPU per SRTP copy (fork, relay receive, encrypt, send) against the same engine without forks, the inbound fork only; ratio to the plain copy's, made two per relayed packet"},
	{Key: "fork.srtp.loss", Unit: "fraction", Doc: "copy loss at fork.srtp.pps"},

	{Key: "relay.userspace.pps", Unit: "pps", RatioTo: "fork.none.pps", Doc: "highest lossless relay rate of joined pairs, userspace engine; ratio to fork.none, the same engine and work in another scenario of the run (how repeatable the relay figure is)"},
	{Key: "relay.userspace.cpu_ns_per_packet", Unit: "ns", RatioTo: "fork.none.cpu_ns_per_packet", Doc: "CPU per relayed packet, userspace engine"},
	{Key: "relay.userspace.loss", Unit: "fraction", Doc: "relay loss at relay.userspace.pps"},
	{Key: "relay.ebpf.pps", Unit: "pps", RatioTo: "relay.userspace.pps", Doc: "highest lossless relay rate of joined pairs relayed in the kernel by the eBPF engine (every join checked to be a kernel relay); ratio to the userspace engine's relay"},
	{Key: "relay.ebpf.cpu_ns_per_packet", Unit: "ns", RatioTo: "relay.userspace.cpu_ns_per_packet", Doc: "CPU per packet relayed in the kernel, eBPF engine"},
	{Key: "relay.ebpf.loss", Unit: "fraction", Doc: "relay loss at relay.ebpf.pps"},
	{Key: "relay.rtpengine.pps", Unit: "pps", RatioTo: "relay.userspace.pps", Doc: "highest lossless relay rate of offer/answer calls, rtpengine userspace"},
	{Key: "relay.rtpengine.cpu_ns_per_packet", Unit: "ns", RatioTo: "relay.userspace.cpu_ns_per_packet", Doc: "CPU per relayed packet, rtpengine userspace (all its threads)"},
	{Key: "relay.rtpengine.loss", Unit: "fraction", Doc: "relay loss at relay.rtpengine.pps"},

	{Key: "mute.map_write_us.p50", Unit: "us", RatioTo: "baseline.map_update_us", Doc: "SetForkMode on the eBPF engine"},
	{Key: "mute.map_write_us.p99", Unit: "us", RatioTo: "baseline.map_update_us", Target: "< 50", Doc: "SetForkMode on the eBPF engine"},
	{Key: "mute.send_to_silence_us.p99", Unit: "us", RatioTo: "baseline.wakeup_us.p99", Target: "< 1000", Doc: "CCXML bvr.record inactive to the last copy seen at the recorder"},

	{Key: "calls.cps", Unit: "calls/s", RatioTo: "baseline.sipp_uas_cps", Target: ">= 500", Doc: "recorded call setups per second, sipp caller, built-in SRS"},
	{Key: "calls.concurrent", Unit: "calls", Doc: "recorded calls established at once during the run"},
	{Key: "calls.bytes_per_call", Unit: "bytes", Doc: "RSS per established recorded call"},

	{Key: "ccxml.events_per_s", Unit: "1/s", RatioTo: "baseline.goja_calls_per_s", Doc: "events handled per second by one interpreter"},
	{Key: "ccxml.bytes_per_session", Unit: "bytes", Doc: "heap per idle CCXML session"},
}

// Spec returns the declaration of key.
func Spec(key string) (KeySpec, bool) {
	for _, k := range Keys {
		if k.Key == key {
			return k, true
		}
	}
	return KeySpec{}, false
}

// Scenario records how one scenario went.
type ScenarioResult struct {
	Status  string         `json:"status"`
	Reason  string         `json:"reason,omitempty"`
	Seconds float64        `json:"seconds"`
	Config  map[string]any `json:"config,omitempty"`
}

// Machine describes where the run happened.
type Machine struct {
	Cores  int    `json:"cores"`
	Kernel string `json:"kernel"`
	Go     string `json:"go"`
	Load1  string `json:"load1_at_start"`
}

// Results is the results file. Safe for concurrent use.
type Results struct {
	mu        sync.Mutex
	Schema    int                       `json:"schema"`
	Started   time.Time                 `json:"started"`
	Finished  time.Time                 `json:"finished"`
	Quick     bool                      `json:"quick"`
	Machine   Machine                   `json:"machine"`
	Metrics   map[string]*Metric        `json:"metrics"`
	Scenarios map[string]ScenarioResult `json:"scenarios"`
	// Notes are short findings the report repeats (where the time goes).
	Notes []string `json:"notes,omitempty"`
}

// NewResults returns a results file with every key present and not measured.
func NewResults(quick bool) *Results {
	r := &Results{Schema: 1, Quick: quick, Metrics: map[string]*Metric{}, Scenarios: map[string]ScenarioResult{}}
	for _, k := range Keys {
		r.Metrics[k.Key] = &Metric{Unit: k.Unit, RatioTo: k.RatioTo, Target: k.Target, Status: StatusNotMeasured, Reason: "scenario did not run"}
	}
	return r
}

// Set records a measured value.
func (r *Results) Set(key string, v float64, samples int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	m := r.metric(key)
	if math.IsNaN(v) || math.IsInf(v, 0) {
		m.Value, m.Status, m.Reason = nil, StatusNotMeasured, "no finite value"
		return
	}
	m.Value, m.Status, m.Reason, m.Samples = &v, StatusMeasured, "", samples
}

// SetStdErr records the standard error of a measured value.
func (r *Results) SetStdErr(key string, se float64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if m := r.metric(key); m.Value != nil && !math.IsNaN(se) {
		m.StdErr = &se
	}
}

// StdErrOf returns the standard error of a value, if known.
func (r *Results) StdErrOf(key string) (float64, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	m, ok := r.Metrics[key]
	if !ok || m.StdErr == nil {
		return 0, false
	}
	return *m.StdErr, true
}

// Mark records that key has no value, with the status and the reason.
func (r *Results) Mark(key, status, reason string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	m := r.metric(key)
	m.Value, m.Ratio, m.Status, m.Reason = nil, nil, status, reason
}

// MarkUnset gives every key in keys that is still unmeasured the status and
// reason; keys a scenario did measure before failing keep their value.
func (r *Results) MarkUnset(keys []string, status, reason string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, k := range keys {
		m := r.metric(k)
		if m.Status != StatusMeasured && m.Status != StatusNA {
			m.Value, m.Status, m.Reason = nil, status, reason
		}
	}
}

// Value returns a measured value.
func (r *Results) Value(key string) (float64, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	m, ok := r.Metrics[key]
	if !ok || m.Value == nil {
		return 0, false
	}
	return *m.Value, true
}

// Note adds a finding to the report.
func (r *Results) Note(format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.Notes = append(r.Notes, fmt.Sprintf(format, args...))
}

// SetScenario records how a scenario went.
func (r *Results) SetScenario(name string, s ScenarioResult) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.Scenarios[name] = s
}

// metric returns key's metric; an undeclared key is a bug of the suite, so it
// panics rather than write a key the stable list does not know.
func (r *Results) metric(key string) *Metric {
	m, ok := r.Metrics[key]
	if !ok {
		panic("perf: undeclared metric key " + key)
	}
	return m
}

// ComputeRatios fills Ratio for every measured key whose baseline is measured.
func (r *Results) ComputeRatios() {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, m := range r.Metrics {
		m.Ratio = nil
		if m.Value == nil || m.RatioTo == "" {
			continue
		}
		b, ok := r.Metrics[m.RatioTo]
		if !ok || b.Value == nil || *b.Value == 0 {
			continue
		}
		q := *m.Value / *b.Value
		m.Ratio = &q
	}
}

// SortedKeys returns the metric keys in the declared order.
func (r *Results) SortedKeys() []string {
	order := map[string]int{}
	for i, k := range Keys {
		order[k.Key] = i
	}
	keys := make([]string, 0, len(r.Metrics))
	for k := range r.Metrics {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return order[keys[i]] < order[keys[j]] })
	return keys
}

// MarshalJSON writes the file under the lock; encoding/json sorts map keys, so
// the output's key order is stable.
func (r *Results) MarshalJSON() ([]byte, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	type plain struct {
		Schema    int                       `json:"schema"`
		Started   time.Time                 `json:"started"`
		Finished  time.Time                 `json:"finished"`
		Quick     bool                      `json:"quick"`
		Machine   Machine                   `json:"machine"`
		Metrics   map[string]*Metric        `json:"metrics"`
		Scenarios map[string]ScenarioResult `json:"scenarios"`
		Notes     []string                  `json:"notes,omitempty"`
	}
	return json.Marshal(plain{r.Schema, r.Started, r.Finished, r.Quick, r.Machine, r.Metrics, r.Scenarios, r.Notes})
}

// WriteFile writes the results as indented JSON, atomically.
func (r *Results) WriteFile(path string) error {
	b, err := json.Marshal(r)
	if err != nil {
		return fmt.Errorf("marshal results: %w", err)
	}
	var out []byte
	if out, err = indent(b); err != nil {
		return err
	}
	return writeAtomic(path, out)
}

func indent(b []byte) ([]byte, error) {
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		return nil, fmt.Errorf("reindent results: %w", err)
	}
	out, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("reindent results: %w", err)
	}
	return append(out, '\n'), nil
}

func writeAtomic(path string, b []byte) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("create %s: %w", filepath.Dir(path), err)
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		return fmt.Errorf("write %s: %w", tmp, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("rename %s: %w", tmp, err)
	}
	return nil
}

// ReadResults loads a results file written by WriteFile.
func ReadResults(path string) (*Results, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read results: %w", err)
	}
	r := NewResults(false)
	if err := json.Unmarshal(b, r); err != nil {
		return nil, fmt.Errorf("parse results %s: %w", path, err)
	}
	return r, nil
}
