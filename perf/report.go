package perf

import (
	"bytes"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"text/template"
)

// Summary returns the report's findings against the project's targets, one
// sentence each, computed from r (and saying so where a figure is missing).
func Summary(r *Results) []string {
	v := func(k string) (float64, bool) { return r.Value(k) }
	var out []string
	e, okE := v("fork.ebpf.cpu_ns_per_copy")
	u, okU := v("fork.userspace.cpu_ns_per_copy")
	g, okG := v("fork.rtpengine.cpu_ns_per_copy")
	switch {
	case okE && (okU || okG):
		s := fmt.Sprintf("Per-copy CPU: eBPF %s ns", Human(e))
		verdict := "met"
		if okU {
			s += fmt.Sprintf(", userspace %s ns (eBPF/userspace %.2f)", Human(u), e/u)
			if e > u/3 {
				verdict = "missed"
			}
		}
		if okG {
			s += fmt.Sprintf(", rtpengine %s ns (eBPF/rtpengine %.2f)", Human(g), e/g)
			if e > g/3 {
				verdict = "missed"
			}
		}
		out = append(out, s+fmt.Sprintf("; target eBPF <= 1/3 of either: %s.", verdict))
	default:
		out = append(out, "Per-copy CPU of eBPF against userspace and rtpengine: "+missing(r, "fork.ebpf.cpu_ns_per_copy", "fork.userspace.cpu_ns_per_copy", "fork.rtpengine.cpu_ns_per_copy")+".")
	}
	if p, ok := v("fork.ebpf.pps"); ok {
		verdict := "met"
		if p < 1e6 {
			verdict = "missed"
		}
		out = append(out, fmt.Sprintf("Copy rate of the eBPF engine on this %d-core machine: %s copies/s (%.0f recorded calls at 2 x 50 pps); target 1 Mpps: %s.",
			r.Machine.Cores, Human(p), p/100, verdict))
	} else {
		out = append(out, "Copy rate of the eBPF engine: "+missing(r, "fork.ebpf.pps")+".")
	}
	if p, ok := v("mute.map_write_us.p99"); ok {
		out = append(out, fmt.Sprintf("Mute map write p99: %.1f us; target < 50 us: %s.", p, verdict(p < 50)))
	} else {
		out = append(out, "Mute map write: "+missing(r, "mute.map_write_us.p99")+".")
	}
	if p, ok := v("mute.send_to_silence_us.p99"); ok {
		out = append(out, fmt.Sprintf("CCXML send to silence p99: %.0f us; target < 1 ms: %s.", p, verdict(p < 1000)))
	} else {
		out = append(out, "CCXML send to silence: "+missing(r, "mute.send_to_silence_us.p99")+".")
	}
	if p, ok := v("calls.cps"); ok {
		out = append(out, fmt.Sprintf("Recorded calls per second: %.0f; target 500: %s.", p, verdict(p >= 500)))
	} else {
		out = append(out, "Recorded calls per second: "+missing(r, "calls.cps")+".")
	}
	if p, ok := v("calls.bytes_per_call"); ok {
		out = append(out, fmt.Sprintf("Memory per established recorded call: %s bytes of RSS.", Human(p)))
	} else {
		out = append(out, "Memory per recorded call: "+missing(r, "calls.bytes_per_call")+".")
	}
	return out
}

func verdict(ok bool) string {
	if ok {
		return "met"
	}
	return "missed"
}

func missing(r *Results, keys ...string) string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var parts []string
	for _, k := range keys {
		if m := r.Metrics[k]; m != nil && m.Value == nil {
			parts = append(parts, fmt.Sprintf("%s %s (%s)", k, m.Status, m.Reason))
		}
	}
	if len(parts) == 0 {
		return "no figure"
	}
	return strings.Join(parts, "; ")
}

// tableRow is one line of the results table.
type tableRow struct {
	Key, Value, Unit, Ratio, Target, Status string
}

func tableRows(r *Results) []tableRow {
	var rows []tableRow
	for _, k := range r.SortedKeys() {
		m := r.Metrics[k]
		row := tableRow{Key: k, Unit: m.Unit, Target: m.Target, Status: m.Status, Value: "—"}
		if m.Value != nil {
			row.Value = Human(*m.Value)
			if m.Unit == "fraction" {
				row.Value = fmt.Sprintf("%.5f", *m.Value)
			}
		} else if m.Reason != "" {
			row.Status = m.Status + ": " + m.Reason
		}
		if m.Ratio != nil && !math.IsNaN(*m.Ratio) {
			row.Ratio = fmt.Sprintf("%.3g × %s", *m.Ratio, m.RatioTo)
		}
		for _, p := range []*string{&row.Status, &row.Target} {
			*p = strings.ReplaceAll(*p, "|", "\\|")
			*p = strings.ReplaceAll(*p, "\n", " ")
		}
		rows = append(rows, row)
	}
	return rows
}

var readmeTmpl = template.Must(template.New("readme").Parse(`# perf/ — recfork's performance suite

This file is written by the suite (` + "`make bench`" + `); edit ` + "`perf/report.go`" + ` instead.

## How to reproduce

As root on Linux (network namespaces, BPF), from the repository root:

` + "```" + `
DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends rtpengine-daemon rtpengine-utils sip-tester
make bench         # full run, a few minutes: perf/results/latest.json, this README, perf/results/fork.svg
make bench-quick   # the same scenarios with fewer samples, under a minute
go run ./perf/cmd/recforkperf -only fork.   # one family of scenarios
` + "```" + `

Without rtpengine (or sipp) the scenarios that need it are reported as skipped, with the
reason, in the JSON; they do not fail the run. Every scenario runs in throw-away network
namespaces (or on loopback), is bounded in count and time, shows a progress bar, and stops
every process it started, also on error and on Ctrl-C.

## Latest run

{{.When}} — {{if .Quick}}quick run (` + "`make bench-quick`" + `){{else}}full run (` + "`make bench`" + `){{end}}, {{.Cores}} cores, kernel {{.Kernel}}, {{.Go}}, load average {{.Load}} at start.
The machine is shared and noisy: compare the ratios (each figure divided by a baseline
measured in the same run) rather than the absolute values across runs.

{{range .Summary}}- {{.}}
{{end}}
![fork scenarios](results/fork.svg)

| key | value | unit | ratio to same-run baseline | target | status |
|---|---|---|---|---|---|
{{range .Rows}}| ` + "`{{.Key}}`" + ` | {{.Value}} | {{.Unit}} | {{.Ratio}} | {{.Target}} | {{.Status}} |
{{end}}
{{if .Notes}}Findings of the run:

{{range .Notes}}- {{.}}
{{end}}{{end}}
## What each scenario does

- **bpf.testrun_ns.*** — ns per packet of the eBPF engine's TCX ingress program in
  ` + "`BPF_PROG_TEST_RUN`" + ` on one RTP frame: a stream in active mode (rewrite, clone to the
  recorder, restore), in inactive mode (lookup and count) and a frame of no stream. Ratio to an
  XDP program that only returns XDP_PASS, test-run the same way (` + "`baseline.xdp_pass_ns`" + `).
- **fork.<engine>.*** — two namespaces joined by a veth pair. The generator namespace sends
  RTP (214-byte frames, 172-byte PCMU payload) from thousands of 5-tuples; the media namespace
  holds the engine, which relays every stream to its callee and copies it to its recorder,
  both back in the generator namespace, where a TCX sink counts and drops them (so the
  recorder costs the same, nearly nothing, for every engine). Load comes from an XDP program
  driven by ` + "`BPF_PROG_TEST_RUN`" + ` with ` + "`BPF_F_TEST_XDP_LIVE_FRAMES`" + ` (` + "`perf/xdpgen`" + `), paced
  from Go; a raw-socket sendmmsg generator is the fallback. ` + "`pps`" + ` is the highest offered
  rate (a ladder, doubling; ×4 in the quick run) whose copies and relays both arrive with less
  than 0.1 % loss, reported as delivered copies per second. ` + "`cpu_ns_per_copy`" + ` is
  (CPU of a run with forks − CPU of the same engine's run without forks at the same rate,
  50 pps per stream) / copies; CPU is the run time of every thread of the suite's process and
  of rtpengine plus every ksoftirqd thread (the kernel has no IRQ time accounting, so softirq
  work lands in the task it interrupts or in ksoftirqd). Engines:
  - ` + "`none`" + ` — the userspace engine relaying without forks: the baseline of the relay path.
  - ` + "`userspace`" + ` — recfork's Go engine copying with sendmmsg.
  - ` + "`ebpf`" + ` — recfork's TCX engine (relay delegated to the userspace engine, copy in the kernel).
  - ` + "`rtpengine`" + ` — Sipwise rtpengine (Debian package) in its userspace path, driven over
    its ng control protocol: per stream ` + "`offer`" + `/` + "`answer`" + ` (relay caller → callee) and
    ` + "`subscribe request`" + `/` + "`subscribe answer`" + ` (copy to the recorder), fresh calls for every
    run. Started as ` + "`rtpengine {{.RTPEngineArgs}}`" + ` inside the media
    namespace. Its kernel module cannot load on these machines, so this is its userspace path.
- **mute.*** — ` + "`SetForkMode`" + ` on the eBPF engine (one map write) timed from Go, ratio to a plain
  BPF array-map update; and from a CCXML ` + "`<send name=\"'bvr.record'\">`" + ` with mode inactive to
  the last copy seen at the recorder.
- **calls.*** — sipp as the caller against recforkd with the built-in SRS: recorded call
  setups per second, calls established at once, RSS per established recorded call. Ratio to
  sipp against a sipp UAS with the same call shape.
- **ccxml.*** — events handled per second by one interpreter, heap per idle session; ratio
  to calls of a compiled goja function.

Results: ` + "`perf/results/latest.json`" + ` — every key is always present with ` + "`status`" + `
(` + "`measured`" + `, ` + "`skipped`" + `, ` + "`not measured`" + `, ` + "`n/a`" + `) and ` + "`reason`" + `; ` + "`scenarios`" + ` holds
each scenario's configuration (rates offered, ladder steps, generator, rtpengine arguments).
`))

// WriteReadme writes the README with the results table and summary.
func WriteReadme(path string, r *Results) error {
	var b bytes.Buffer
	data := map[string]any{
		"When":          r.Finished.Format("2006-01-02 15:04 UTC"),
		"Quick":         r.Quick,
		"Cores":         r.Machine.Cores,
		"Kernel":        r.Machine.Kernel,
		"Go":            r.Machine.Go,
		"Load":          r.Machine.Load1,
		"Summary":       Summary(r),
		"Rows":          tableRows(r),
		"Notes":         r.Notes,
		"RTPEngineArgs": strings.Join(RTPEngineArgs("10.77.0.2", "PIDFILE", 2), " "),
	}
	if err := readmeTmpl.Execute(&b, data); err != nil {
		return fmt.Errorf("render readme: %w", err)
	}
	return writeAtomic(path, b.Bytes())
}

// WriteChart writes the fork chart next to the results file.
func WriteChart(path string, r *Results) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("create %s: %w", filepath.Dir(path), err)
	}
	return writeAtomic(path, ForkChart(r))
}
