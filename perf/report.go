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
	se := func(k string) float64 {
		if x, ok := r.StdErrOf(k); ok {
			return x
		}
		return 0
	}
	pm := func(k string, x float64) string {
		if e := se(k); e > 0 {
			return fmt.Sprintf("%s ± %s ns", Human(x), Human(e))
		}
		return Human(x) + " ns"
	}
	// cmp judges eBPF against a third of another engine, saying so when the
	// difference is within two standard errors.
	cmp := func(k string, other float64) string {
		d := e - other/3
		noise := 2 * math.Hypot(se("fork.ebpf.cpu_ns_per_copy"), se(k)/3)
		switch {
		case noise > 0 && math.Abs(d) < noise && d > 0:
			return "missed on the point estimate, but within two standard errors"
		case noise > 0 && math.Abs(d) < noise:
			return "met on the point estimate, but within two standard errors"
		case d <= 0:
			return "met"
		}
		return "missed"
	}
	switch {
	case okE && (okU || okG):
		s := "Per-copy CPU: eBPF " + pm("fork.ebpf.cpu_ns_per_copy", e)
		var verdicts []string
		if okU {
			v := cmp("fork.userspace.cpu_ns_per_copy", u)
			s += fmt.Sprintf(", userspace %s (eBPF/userspace %.2f, %s)", pm("fork.userspace.cpu_ns_per_copy", u), e/u, v)
			verdicts = append(verdicts, v)
		}
		if okG {
			v := cmp("fork.rtpengine.cpu_ns_per_copy", g)
			s += fmt.Sprintf(", rtpengine %s (eBPF/rtpengine %.2f, %s)", pm("fork.rtpengine.cpu_ns_per_copy", g), e/g, v)
			verdicts = append(verdicts, v)
		}
		// The overall verdict is the worst of the comparisons.
		rank := func(v string) int {
			switch {
			case v == "missed":
				return 3
			case strings.HasPrefix(v, "missed"):
				return 2
			case strings.HasPrefix(v, "met on"):
				return 1
			}
			return 0
		}
		verdict := "met"
		for _, v := range verdicts {
			if rank(v) > rank(verdict) {
				verdict = v
			}
		}
		s += "; target eBPF <= 1/3 of either: " + verdict + "."
		if verdict != "met" {
			if v, ok := r.Value("bpf.testrun_ns.active"); ok {
				s += fmt.Sprintf(" The TCX program alone costs %s ns per copy in a test run (bpf.testrun_ns.active); the findings give its live run time, which includes the clone and the copy's transmit.", Human(v))
			}
		}
		out = append(out, s)
	default:
		out = append(out, "Per-copy CPU of eBPF against userspace and rtpengine: "+missing(r, "fork.ebpf.cpu_ns_per_copy", "fork.userspace.cpu_ns_per_copy", "fork.rtpengine.cpu_ns_per_copy")+".")
	}
	if p, ok := v("fork.ebpf.pps"); ok {
		verdict := "met"
		if p < 1e6 {
			verdict = "missed"
		}
		s := fmt.Sprintf("Copy rate of the eBPF engine on this %d-core machine: %s copies/s (%.0f recorded calls at 2 x 50 pps); target 1 Mpps: %s.",
			r.Machine.Cores, Human(p), p/100, verdict)
		if n, ok := v("fork.none.pps"); ok && p < 1e6 {
			// Since issue 11 the eBPF engine relays joins in the kernel,
			// so the userspace relay no longer bounds it.
			s += fmt.Sprintf(" The relay and both forks run in the TCX ingress program (the userspace relay alone reaches %s pps, fork.none.pps); what is left is the program's run time and the veth transmit in softirq on the two cores the generator shares.", Human(n))
		}
		if bpfNs, ok := v("bpf.testrun_ns.active"); ok && p < 1e6 {
			s += fmt.Sprintf(" The in-kernel fork alone costs %s ns per copy in a test run (bpf.testrun_ns.active), about %s copies/s per core.", Human(bpfNs), Human(1e9/bpfNs))
		}
		out = append(out, s)
	} else {
		out = append(out, "Copy rate of the eBPF engine: "+missing(r, "fork.ebpf.pps")+".")
	}
	if p, ok := v("mute.map_write_us.p99"); ok {
		s := fmt.Sprintf("Mute map write (SetForkMode inactive) p99: %s us; target < 50 us: %s.", Human(p), verdict(p < 50))
		if p >= 50 {
			s += " SetForkMode(inactive) also waits until no fork program that read the old mode is still running before it returns; the findings below compare it with unmute and with a plain map update."
		}
		out = append(out, s)
	} else {
		out = append(out, "Mute map write: "+missing(r, "mute.map_write_us.p99")+".")
	}
	if p, ok := v("mute.send_to_silence_us.p99"); ok {
		out = append(out, fmt.Sprintf("CCXML send to silence p99: %.0f us; target < 1 ms: %s.", p, verdict(p < 1000)))
	} else {
		out = append(out, "CCXML send to silence: "+missing(r, "mute.send_to_silence_us.p99")+".")
	}
	if p, ok := v("calls.cps"); ok {
		s := fmt.Sprintf("Recorded calls per second: %.0f; target 500: %s.", p, verdict(p >= 500))
		if b, ok := v("baseline.sipp_uas_cps"); ok && p < 500 && b <= p {
			s += fmt.Sprintf(" sipp against a sipp UAS reached only %.0f calls/s in the same run: the rate ladder is bounded by the caller and the machine here.", b)
		} else if p < 500 {
			s += " The findings give the CPU per call of recforkd and of the SRS at the rates that failed."
		}
		out = append(out, s)
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
			if m.StdErr != nil {
				row.Value += " ± " + Human(*m.StdErr)
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
make bench-quick   # the same scenarios with fewer samples, under two minutes
go run ./perf/cmd/recforkperf -only fork.   # one family of scenarios
go run ./perf/cmd/recforkperf -only fork. -generator sendmmsg   # the fork scenarios with the sendmmsg generator
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

All traffic stays inside two throw-away network namespaces joined by a veth pair (one queue
per CPU): **G** holds the load generator, the callees and the recorder (10.77.0.1), **M**
holds the engine under test (10.77.0.2). A TCX program on G's end (` + "`perf/xdpgen`" + `) counts
and drops what comes back — relayed packets by their callee port range, copies by their
recorder port range — so the recorder costs every engine the same, next to nothing, and loss
is counted exactly in the kernel.

- **bpf.testrun_ns.*** — ` + "`BPF_PROG_TEST_RUN`" + ` of the TCX ingress program the eBPF engine
  really attached (found on the interface with ` + "`BPF_PROG_QUERY`" + `, so its maps are the
  engine's, filled through ` + "`dataplane.Engine`" + `): one 214-byte RTP frame of a forked
  stream in active mode (rewrite, clone to the recorder, restore; the copies are checked to
  arrive), the same stream muted, and a frame of no stream. Median over rounds of the test
  run's own ns per repeat. Ratio to an XDP program that only returns ` + "`XDP_PASS`" + `, test-run
  the same way (` + "`baseline.xdp_pass_ns`" + `).
- **` + "`fork.<engine>.*`" + `** — the generator sends RTP (214-byte frames: 172-byte PCMU payload) from
  thousands of 5-tuples; the engine relays every stream to its callee and copies it to its
  recorder. Load comes from an XDP program run with ` + "`BPF_PROG_TEST_RUN`" + ` and
  ` + "`BPF_F_TEST_XDP_LIVE_FRAMES`" + ` (its ` + "`XDP_TX`" + ` becomes a transmit into the veth pair),
  one worker per CPU, paced from Go in 50 ms chunks (each live-frames call costs about 25 ms of
  kernel waiting, so chunks are what works; streams are sent in round robin, so a chunk holds
  only a few packets of any one stream). A raw-socket ` + "`sendmmsg`" + ` generator is the fallback
  and drives the mute scenario.
  - ` + "`pps`" + `: a ladder of offered rates (×2 from 25 kpps in the full run, ×4 from 50 kpps
    in the quick run) over {{.Streams}} streams, then a geometric bisection between the last
    sustained rate and the first that was not. A rate is sustained when copies **and** relays
    arrive with less than 0.1 % loss; the figure is the copies (relays for ` + "`none`" + `)
    delivered per second at the best sustained rate. When the generator itself cannot offer
    more (the machine's two cores are shared by generator, engine and everyone else) the
    ladder stops and the findings say so.
  - ` + "`cpu_ns_per_copy`" + `: at a reference rate of 50 pps per stream, short windows alternate
    (ABBA) between a pool of forked streams and a pool of unforked streams of the same engine
    (both pools live side by side, so nothing is set up or torn down between windows); each
    adjacent pair gives (CPU with forks − CPU without forks, scaled to the same packets) /
    copies, and the mean over pairs is reported, its standard error in the findings. CPU is all CPU: the suite's process
    (` + "`getrusage`" + `, which keeps exited threads; the in-process engines and the generator live
    there), every thread of rtpengine (` + "`/proc/PID/task/*/schedstat`" + `) and every ksoftirqd
    thread. The kernel has no IRQ time accounting, so softirq work (veth NAPI, delivery,
    TCX programs) is charged to the task it runs in or to ksoftirqd: the three engines are
    compared on the same footing. The generator's own cost is the same in both windows and
    cancels out.
  - Engines: ` + "`none`" + ` — recfork's userspace engine relaying without forks (the relay
    path's baseline; its ` + "`cpu_ns_per_packet`" + ` is the ratio base of the per-copy figures);
    ` + "`userspace`" + ` — recfork's Go engine copying with sendmmsg; ` + "`ebpf`" + ` — recfork's TCX
    engine (relay delegated to the userspace engine, copies cloned in the kernel);
    ` + "`rtpengine`" + ` — Sipwise rtpengine from Debian, see below. recfork's engines run inside
    the suite's process with one worker per core, as in production; the process's
    GOMAXPROCS is raised so that the generator's goroutines, which spend milliseconds inside
    test-run system calls, never hold the Ps the engine's goroutines need (as a separate
    generator process would not).
- **mute.*** — ` + "`SetForkMode(inactive)`" + ` on the eBPF engine timed from Go (alternating with
  unmutes), ratio to one plain BPF array-map update from Go; and from a CCXML
  ` + "`<send name=\"'bvr.record'\">`" + ` with ` + "`inbound`" + ` inactive (the real interpreter; a
  platform that carries the mode to the engine's ` + "`SetForkMode`" + `, as the control plane does
  for an established recording, without the SIP re-INVITE to the SRS) to the last copy seen
  at the recorder's interface (the sink stamps copies with ` + "`bpf_ktime_get_ns`" + `; the stream
  sends a packet, sleeps 20 µs, and so on — its rate is in the scenario's config — so a
  figure carries up to one packet interval of uncertainty; trials where no copy followed the
  send count as 0). Its ratio is to the p99 wake-up latency of a goroutine blocked on a
  channel, measured in the same process just before (` + "`baseline.wakeup_us.p99`" + `); the
  findings split the figure into the interpreter's dispatch and ` + "`SetForkMode`" + `.
- **calls.*** — ` + "`recforkd`" + ` (built from this tree, ` + "`--dataplane auto`" + `) in M with the
  built-in SRS (` + "`recforkctl srs`" + `) in G, each its own process; sipp in G places calls
  (INVITE with a PCMU offer, ACK, hold, BYE; no RTP). ` + "`cps`" + `: a ladder of call rates, a
  rate counts when every call is answered and at least 99.9 % of them show up as finished
  recording sessions at the SRS. ` + "`concurrent`" + `: a batch of calls held at once, counted
  as recordings with both directions active in the admin API; ` + "`bytes_per_call`" + `: recforkd's
  RSS growth divided by that count, measured first, on a fresh recforkd. Each rate of the
  ladder also records the CPU per call of recforkd and of the SRS (all their threads), which
  the findings quote for the rates that failed. Ratio to the same sipp caller against
  ` + "`sipp -sn uas`" + `.
- **ccxml.*** — events handled per second by one session of one interpreter (a transition
  that assigns ` + "`n = n + 1`" + `, events posted in batches of 1000), and heap plus goroutine stack
  per idle session after GC. Ratio to calls of the same ECMAScript in goja.

Where a target is missed, the findings above say where the time goes: a CPU profile of the
suite's process over the reference windows (kernel time charged to the Go function that made
the system call) and the live BPF run-time statistics of the eBPF engine's ingress program.

## rtpengine, the like-for-like peer

Install (Debian 12): ` + "`DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends rtpengine-daemon rtpengine-utils`" + `
(` + "`--no-install-recommends`" + ` keeps the DKMS kernel module out: modules cannot load on these
machines, so rtpengine runs its **userspace** path — its in-kernel forwarding is not measured).
The suite starts it inside namespace M, with no config file (the packaged one turns kernel
forwarding back on):

` + "```" + `
rtpengine {{.RTPEngineArgs}}
` + "```" + `

with two worker threads (one per core), and drives it over its ng control protocol (bencode over UDP, ` + "`perf/ng.go`" + `). Per stream:
` + "`offer`" + ` (caller's SDP) and ` + "`answer`" + ` (callee's SDP) make it relay caller → callee;
` + "`subscribe request`" + ` and ` + "`subscribe answer`" + ` (the recorder's recvonly SDP) make it copy
the caller's RTP to the recorder — the only way rtpengine 10.5 sends RTP copies over the
network. Its CPU is counted from all its threads. Its overload is permanent per stream (after
five receive-queue overflows it stops reading a socket), so after any lossy run the suite
deletes every call and sets up fresh ones, and a run whose log shows ` + "`receive queue exceeded`" + `
counts as lost. Every call is deleted before rtpengine is stopped (SIGTERM, then SIGKILL).
No engine is pinned to a core: rtpengine, recfork's engines and the generator all share the
machine's two cores the same way, and the reference rate for the CPU comparison (20 kpps,
400 streams) is one every engine sustains here.

Results: ` + "`perf/results/latest.json`" + ` — every key is always present with ` + "`status`" + `
(` + "`measured`" + `, ` + "`skipped`" + `, ` + "`not measured`" + `, ` + "`n/a`" + `) and ` + "`reason`" + `; ` + "`scenarios`" + ` holds
each scenario's configuration and raw steps (rates offered and achieved, per-window CPU
estimates, generator, rtpengine arguments); ` + "`notes`" + ` holds the findings listed above.
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
		"Streams":       fmt.Sprintf("%d (full) or %d (quick)", paramsFor(false).Streams, paramsFor(true).Streams),
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
