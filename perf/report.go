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
			s += perCopyWhere(r, e)
		}
		out = append(out, s)
	default:
		out = append(out, "Per-copy CPU of eBPF against userspace and rtpengine: "+missing(r, "fork.ebpf.cpu_ns_per_copy", "fork.userspace.cpu_ns_per_copy", "fork.rtpengine.cpu_ns_per_copy")+".")
	}
	if p, ok := v("fork.ebpf.pps"); ok {
		verdict := "met"
		switch {
		case p < 1e6 && configString(r, "fork.ebpf", "bound") == BoundLadderTop:
			// Nothing was lost at the ladder's top: the engine may do
			// more than this run asked of it.
			verdict = "not shown, the ladder's highest rate was below it and was sustained"
		case p < 1e6:
			verdict = "missed"
		}
		s := fmt.Sprintf("Copy rate of the eBPF engine on this %d-core machine: %s copies/s%s; target 1 Mpps: %s.",
			r.Machine.Cores, Human(p), copiesWhat(r, p), verdict)
		if p < 1e6 {
			s += copyRateWhere(r)
		}
		out = append(out, s)
	} else {
		out = append(out, "Copy rate of the eBPF engine: "+missing(r, "fork.ebpf.pps")+".")
	}
	out = append(out, relaySummary(r), srtpSummary(r), guardSummary(r))
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

// config returns a value a scenario recorded in its configuration.
func config(r *Results, scenario, key string) (any, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	v, ok := r.Scenarios[scenario].Config[key]
	return v, ok
}

// configFloat returns a number of a scenario's configuration (a float64 in
// memory and after a JSON round trip alike).
func configFloat(r *Results, scenario, key string) (float64, bool) {
	v, ok := config(r, scenario, key)
	if !ok {
		return 0, false
	}
	f, ok := v.(float64)
	return f, ok && f > 0
}

func configString(r *Results, scenario, key string) string {
	v, _ := config(r, scenario, key)
	s, _ := v.(string)
	return s
}

// boundText says what ended a scenario's rate ladder, as a clause.
func boundText(r *Results, scenario string) string {
	switch configString(r, scenario, "bound") {
	case BoundLoss:
		return "the next rate tried lost 0.1 % or more"
	case BoundGenerator:
		return "the generator reached less than 90 % of the next rate asked of it; nothing was lost"
	case BoundLadderTop:
		return "the highest rate tried was sustained, so this is a lower bound"
	}
	return ""
}

// perCopyWhere splits the eBPF engine's extra CPU per copy e into the
// ingress program's live run time for the copy (with forks against
// relaying only) and the rest, from this run's figures.
func perCopyWhere(r *Results, e float64) string {
	bf, okF := configFloat(r, "fork.ebpf", "bpf_ingress_ns_per_packet")
	br, okR := configFloat(r, "relay.ebpf", "bpf_ingress_ns_per_packet")
	if okF && okR {
		f := forksPerPacket(r)
		in := max(bf-br, 0) / f
		return fmt.Sprintf(" Of the eBPF engine's %s ns per copy, %s ns are the TCX ingress program's own live run time for the copy (%s ns per packet with the forks against %s ns relaying only, BPF run-time statistics, over the %.0f copies a packet makes); the other %s ns are spent outside the program (the copy's delivery through the veth pair in softirq and the sink's drop).",
			Human(e), Human(in), Human(bf), Human(br), f, Human(max(e-in, 0)))
	}
	if v, ok := r.Value("bpf.testrun_ns.active"); ok {
		return fmt.Sprintf(" The TCX program alone costs %s ns per copy in a test run (bpf.testrun_ns.active); the live split needs fork.ebpf and relay.ebpf in the same run.", Human(v))
	}
	return ""
}

// forksPerPacket is how many copies each relayed packet of fork.ebpf made
// (1 where the run does not say).
func forksPerPacket(r *Results) float64 {
	f, _ := configFloat(r, "fork.ebpf", "forks_per_packet")
	return max(f, 1)
}

// copiesWhat says what a copy rate p of the eBPF engine is made of: the
// relayed packets and the forks each feeds.
func copiesWhat(r *Results, p float64) string {
	f := forksPerPacket(r)
	switch {
	case f == 1:
		return ""
	case f == 2:
		return fmt.Sprintf(" (relay + both forks: %s relayed packets/s, each copied for the caller's inbound and the callee's outbound recording)", Human(p/2))
	}
	return fmt.Sprintf(" (%s relayed packets/s, %.0f copies each)", Human(p/f), f)
}

// copyRateWhere says, from this run's figures, what bounds the eBPF
// engine's copy rate and what reaching 1 Mpps would take.
func copyRateWhere(r *Results) string {
	var s string
	if b := boundText(r, "fork.ebpf"); b != "" {
		s += " The ladder ended: " + b + "."
	}
	if rp, ok := r.Value("relay.ebpf.pps"); ok {
		s += fmt.Sprintf(" The kernel relay alone reached %s pps (relay.ebpf.pps", Human(rp))
		if b := boundText(r, "relay.ebpf"); b != "" {
			s += "; " + b
		}
		s += ")."
	}
	cores := max(r.Machine.Cores, 1)
	budget := float64(cores) * 1e9 / 1e6
	if busy, ok := configFloat(r, "fork.ebpf", "best_cpu_cores"); ok {
		if w, ok := configFloat(r, "fork.ebpf", "best_cpu_ns_per_out"); ok {
			s += fmt.Sprintf(" At that rate the CPU the suite measures (its own process with the engine and the generator, rtpengine when it runs, ksoftirqd) was %.2f of the %d cores, %s ns per copy",
				busy, cores, Human(w))
			if rw, ok := configFloat(r, "relay.ebpf", "best_cpu_ns_per_out"); ok {
				f := forksPerPacket(r)
				s += fmt.Sprintf(", of which %s ns are the relayed packet's own share (a packet relayed without forks costs %s ns, generator included, at the relay's best rate", Human(rw/f), Human(rw))
				if f > 1 {
					s += fmt.Sprintf(", shared by its %.0f copies", f)
				}
				s += ")"
			}
			s += fmt.Sprintf("; 1 Mpps on %d cores needs at most %s ns per copy, all of it included, which at the current cost would take %.1f cores.",
				cores, Human(budget), w*1e6/1e9)
		}
	}
	if bf, ok := configFloat(r, "fork.ebpf", "bpf_ingress_ns_per_packet"); ok {
		s += fmt.Sprintf(" The TCX ingress program itself ran %s ns per packet with relay and fork in the reference windows (BPF run-time statistics): alone it would fill a core at %s packets/s.",
			Human(bf), Human(1e9/bf))
	}
	if bpfNs, ok := r.Value("bpf.testrun_ns.active"); ok {
		s += fmt.Sprintf(" The in-kernel fork alone costs %s ns per copy in a test run (bpf.testrun_ns.active), about %s copies/s per core.", Human(bpfNs), Human(1e9/bpfNs))
	}
	return s
}

// relaySummary compares the three relays of joined pairs without forks.
func relaySummary(r *Results) string {
	type eng struct{ key, name string }
	var parts []string
	for _, e := range []eng{{"ebpf", "eBPF (in the kernel)"}, {"userspace", "userspace"}, {"rtpengine", "rtpengine (userspace)"}} {
		p, okP := r.Value("relay." + e.key + ".pps")
		c, okC := r.Value("relay." + e.key + ".cpu_ns_per_packet")
		switch {
		case okP && okC:
			parts = append(parts, fmt.Sprintf("%s %s pps, %s ns of CPU per packet at the reference rate", e.name, Human(p), Human(c)))
		case okP:
			parts = append(parts, fmt.Sprintf("%s %s pps", e.name, Human(p)))
		}
	}
	if len(parts) == 0 {
		return "Relay of joined pairs: " + missing(r, "relay.ebpf.pps", "relay.userspace.pps", "relay.rtpengine.pps") + "."
	}
	s := "Relay of joined pairs without forks: " + strings.Join(parts, ", ")
	if e, ok := r.Value("relay.ebpf.cpu_ns_per_packet"); ok {
		for _, o := range []eng{{"userspace", "userspace"}, {"rtpengine", "rtpengine"}} {
			if c, ok := r.Value("relay." + o.key + ".cpu_ns_per_packet"); ok {
				s += fmt.Sprintf("; CPU per packet eBPF/%s %.2f", o.name, e/c)
			}
		}
	}
	s += "."
	if b := boundText(r, "relay.ebpf"); b != "" {
		if _, ok := r.Value("relay.ebpf.pps"); ok {
			s += " eBPF: " + b + "."
		}
	}
	if bf, ok := configFloat(r, "relay.ebpf", "bpf_ingress_ns_per_packet"); ok {
		s += fmt.Sprintf(" The TCX ingress program ran %s ns per relayed packet in live traffic.", Human(bf))
	}
	return s
}

// srtpSummary compares SRTP copies with plain copies of the same engine.
func srtpSummary(r *Results) string {
	p, okP := r.Value("fork.srtp.pps")
	c, okC := r.Value("fork.srtp.cpu_ns_per_copy")
	if !okP && !okC {
		return "SRTP copies: " + missing(r, "fork.srtp.pps", "fork.srtp.cpu_ns_per_copy") + "."
	}
	s := "SRTP copies (userspace engine, each stream's copies encrypted by its own dataplane/srtp relay, AES_CM_128_HMAC_SHA1_80, copies authenticated and decrypted at the receiver; the inbound fork only, one copy per relayed packet where fork.userspace makes two, so the plain copy compared with shares its packet's receive and send batch with a second copy):"
	if okP {
		s += fmt.Sprintf(" %s copies/s", Human(p))
		if u, ok := r.Value("fork.userspace.pps"); ok {
			s += fmt.Sprintf(" (%.2f of the plain copies' %s)", p/u, Human(u))
		}
		if b := boundText(r, "fork.srtp"); b != "" {
			s += ", where " + b
		}
		s += ";"
	}
	if okC {
		s += fmt.Sprintf(" %s ns of CPU per copy", Human(c))
		if u, ok := r.Value("fork.userspace.cpu_ns_per_copy"); ok {
			d := c - u
			s += fmt.Sprintf(" against %s ns for a plain copy: SRTP adds %s ns per copy (%.2f times the plain copy)", Human(u), Human(d), c/u)
			se1, ok1 := r.StdErrOf("fork.srtp.cpu_ns_per_copy")
			se2, ok2 := r.StdErrOf("fork.userspace.cpu_ns_per_copy")
			if ok1 && ok2 {
				s += fmt.Sprintf(", ± %s ns", Human(math.Hypot(se1, se2)))
			}
			s += "; the addition is the relay's receive, encryption and send of each copy"
		}
	}
	return strings.TrimSuffix(s, ";") + "."
}

// guardSummary states the guard's drop cost from the test runs.
func guardSummary(r *Results) string {
	g, ok := r.Value("bpf.testrun_ns.guard_drop")
	if !ok {
		return "Guard drop: " + missing(r, "bpf.testrun_ns.guard_drop") + "."
	}
	s := fmt.Sprintf("Guard: RTP from a foreign source to a guarded endpoint is dropped and counted in %s ns per packet in a test run (bpf.testrun_ns.guard_drop)", Human(g))
	if b, ok := r.Value("baseline.xdp_pass_ns"); ok {
		s += fmt.Sprintf(", %.1f times the XDP_PASS floor", g/b)
	}
	if m, ok := r.Value("bpf.testrun_ns.miss"); ok {
		s += fmt.Sprintf("; a packet of no stream takes %s ns", Human(m))
	}
	if rl, ok := r.Value("bpf.testrun_ns.relay"); ok {
		s += fmt.Sprintf(", one the kernel relays %s ns", Human(rl))
	}
	return s + "."
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
  run's own ns per repeat. ` + "`relay`" + ` and ` + "`relay_fork`" + `: the endpoint joined (half duplex) to
  a second one, without and with its inbound fork; each run must return ` + "`TCX_REDIRECT`" + `, and
  since a run rewrites the frame it is one cold run per sample (median of many).
  ` + "`guard_drop`" + `: the same joined endpoint gets RTP from an address that is neither its
  signalled nor a latched remote; every run must return ` + "`TCX_DROP`" + ` and be counted exactly
  once by the engine's guard, in the kernel's total and in the endpoint's drops. Ratio to an
  XDP program that only returns ` + "`XDP_PASS`" + `, test-run the same way (` + "`baseline.xdp_pass_ns`" + `).
- **` + "`fork.<engine>.*`" + `** — the generator sends RTP (214-byte frames: 172-byte PCMU payload) from
  thousands of 5-tuples; the engine relays every stream to its callee and copies each
  relayed packet twice ("relay + both forks"): for the caller's inbound and for
  the callee's outbound recording, each from its own recording leg (rtpengine: two
  subscriptions to the caller; the ` + "`srtp`" + ` subject forks the inbound only). Load comes
  from an XDP program run with ` + "`BPF_PROG_TEST_RUN`" + ` and
  ` + "`BPF_F_TEST_XDP_LIVE_FRAMES`" + ` (its ` + "`XDP_TX`" + ` becomes a transmit into the veth pair),
  one worker per CPU, paced from Go in 50 ms chunks (each live-frames call costs about 25 ms of
  kernel waiting, so chunks are what works; streams are sent in round robin, so a chunk holds
  only a few packets of any one stream). Where the kernel refuses live-frames runs (EPERM, as
  on 6.18.44-fc-v1300), ` + "`AF_XDP`" + ` sockets in copy mode take over: one per CPU, each bound
  to its own queue of G's veth, transmit-only, every stream's frame written once into the
  socket's UMEM, 256 bytes apart (unaligned chunks), so the frames the kernel copies stay in
  cache, and sent as descriptors that point at it (the kernel builds an skb per
  descriptor: no message header, iovec or flow-dissector pass per frame), paced every
  millisecond. Then ` + "`AF_PACKET`" + ` sockets with ` + "`sendmmsg`" + ` (` + "`PACKET_QDISC_BYPASS`" + `), then a
  raw-socket ` + "`sendmmsg`" + `, which also drives the mute scenario; the run's config and notes
  name the generator used.
  - ` + "`pps`" + `: a ladder of offered rates (×2 from 25 kpps in the full run, ×4 from 50 kpps
    in the quick run) over {{.Streams}} streams, then a geometric bisection between the last
    sustained rate and the first that was not. A rate is sustained when copies **and** relays
    arrive with less than 0.1 % loss (every fork's copy counts); the figure is the copies
    (relays for ` + "`none`" + `) delivered per second at the best sustained rate. When the generator itself cannot offer
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
    ` + "`userspace`" + ` — recfork's Go engine copying with sendmmsg; ` + "`srtp`" + ` — the same engine
    with every fork's copies sent, as an SRTP recording does, to a ` + "`dataplane/srtp`" + ` relay of
    their own (` + "`AES_CM_128_HMAC_SHA1_80`" + `, the stream's own keys) that encrypts and sends them
    to the recorder; ` + "`ebpf`" + ` — recfork's TCX engine (joined pairs relayed and copies cloned
    in the kernel; every join is checked to be a kernel relay, or the scenario fails);
    ` + "`rtpengine`" + ` — Sipwise rtpengine from Debian, see below. recfork's engines run inside
    the suite's process with one worker per core, as in production; the process's
    GOMAXPROCS is raised so that the generator's goroutines, which spend milliseconds inside
    test-run system calls, never hold the Ps the engine's goroutines need (as a separate
    generator process would not).
- **` + "`fork.srtp.*`" + `** — the fork scenario on the ` + "`srtp`" + ` subject above: ` + "`pps`" + ` and ` + "`cpu_ns_per_copy`" + `
  are taken as for the plain engines, with ratios to ` + "`fork.userspace`" + ` (the plain copy of the
  same engine in the same run), so the difference is the SRTP relay's cost per copy. The
  figures cannot be plain copies by mistake: in every window the recorder side may count no
  more copies than the relays encrypted, a relay that refuses a datagram fails the window,
  and before the ladder and after the reference windows each of the reference streams' copies
  is sent to a socket in G instead, where it must authenticate and decrypt with its stream's
  keys (` + "`dataplane/srtp`" + `, pion/srtp) to exactly the RTP packet the caller sent.
- **` + "`relay.<engine>.*`" + `** — the fork scenario's ladder and reference windows on the unforked
  streams alone: joined pairs relayed caller → callee, no copies. ` + "`pps`" + ` is the highest relay
  rate with < 0.1 % loss, ` + "`cpu_ns_per_packet`" + ` the median CPU per relayed packet at the
  reference rate (all CPU, the generator's share included, as for ` + "`fork.none`" + `). Engines:
  ` + "`userspace`" + ` (ratio to ` + "`fork.none`" + `, the same engine and work in another scenario: how
  repeatable the figure is in the run), ` + "`ebpf`" + ` (the kernel relay; ratio to ` + "`relay.userspace`" + `;
  its live BPF run time per packet is in the findings) and ` + "`rtpengine`" + ` (offer/answer only;
  ratio to ` + "`relay.userspace`" + `).
- **mute.*** — ` + "`SetForkMode(inactive)`" + ` on the eBPF engine timed from Go (alternating with
  unmutes), ratio to one plain BPF array-map update from Go; and from a CCXML
  ` + "`<send name=\"'bvr.record'\">`" + ` with ` + "`inbound`" + ` inactive (the real interpreter; a
  platform that carries the mode to the engine's ` + "`SetForkMode`" + `, as the control plane does
  for an established recording, without the SIP re-INVITE to the SRS) to the last copy seen
  at the recorder's interface (the sink stamps copies with ` + "`bpf_ktime_get_ns`" + `, per CPU, and
  the latest stamp is the last copy; the stream
  sends a packet, sleeps 20 µs, and so on — its rate is in the scenario's config — so a
  figure carries up to one packet interval of uncertainty; trials where no copy followed the
  send count as 0). Its ratio is to the p99 wake-up latency of a goroutine blocked on a
  channel, measured in the same process just before (` + "`baseline.wakeup_us.p99`" + `); the
  findings split the figure into the interpreter's dispatch and ` + "`SetForkMode`" + `.
- **calls.*** — ` + "`recforkd`" + ` (built from this tree, ` + "`--dataplane auto`" + `) in M with the
  built-in SRS (` + "`recforkctl srs`" + `) in G, each its own process; sipp in G places calls
  (INVITE with a PCMU offer, ACK, hold, BYE; no RTP). ` + "`cps`" + `: a ladder of call rates, a
  rate counts when every call is answered and at least 99.9 % of them show up as finished
  recording sessions at the SRS; each rate starts once recforkd holds no call and the SRS
  has finished what the rate before left, so a rate counts its own sessions only.
  ` + "`concurrent`" + `: a batch of calls held at once, counted
  as recordings with both directions active in the admin API; ` + "`bytes_per_call`" + `: recforkd's
  RSS growth divided by that count, measured first, on a fresh recforkd. Each rate of the
  ladder also records the CPU per call of recforkd and of the SRS (all their threads), which
  the findings quote for the rates that failed. Ratio to the same sipp caller against
  ` + "`sipp -sn uas`" + `.
- **ccxml.*** — events handled per second by one session of one interpreter (a transition
  that assigns ` + "`n = n + 1`" + `, events posted in batches of 1000), and heap plus goroutine stack
  per idle session after GC. Ratio to calls of the same ECMAScript in goja.

Where a target is missed, the findings above say where the time goes, computed from the
run's own figures: the CPU of a copied packet split into its relay (` + "`relay.ebpf`" + `) and its
copy (` + "`fork.ebpf`" + `), the share of it the eBPF engine's ingress program ran (live BPF run-time
statistics with forks and relaying only), what ended each rate ladder (loss, the generator,
or the ladder's top), and a CPU profile of the suite's process over the reference windows
(kernel time charged to the Go function that made the system call).

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
