package perf

import (
	"context"
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"

	"github.com/recfork/recfork/perf/xdpgen"
)

// forkSubject is one media engine under the fork scenarios, running in the
// media namespace of a Pair.
type forkSubject interface {
	// Prepare makes n streams ready, relaying each caller to its callee and,
	// when fork is set, copying it to its recorder. It returns the engine
	// port each caller must send to; stream i's caller port is
	// CallerPort(i, fork).
	Prepare(ctx context.Context, n int, fork bool) ([]uint16, error)
	// Pids are the processes besides this one whose CPU counts.
	Pids() []int
	// Check returns a reason when the subject noticed it was overloaded in a
	// way the counters do not show (rtpengine's receive-queue trap).
	Check() error
	// Forks is how many copies a forked stream's relayed packet makes: 2
	// for "relay + both forks" (the caller's inbound and the
	// callee's outbound, each recorded from its own recording leg), 1
	// where a subject forks only the inbound.
	Forks() int
	Close() error
}

// forkOpener starts a subject for the scenario called name (its
// configuration is recorded under that name).
type forkOpener func(ctx context.Context, env *Env, p *Pair, name string) (forkSubject, error)

// ForkScenario measures one engine: the highest lossless copy rate (relay
// rate for "none") and the extra CPU per copy at a reference rate. With
// Relay set it is relay.<engine> instead: the same ladder and reference
// windows on the engine's unforked streams only, for its relay rate and CPU
// per relayed packet.
type ForkScenario struct {
	Engine string
	Relay  bool
	open   forkOpener
	// Generator chooses the load generator: "xdp" (live frames, the
	// default; AF_XDP when the kernel refuses live frames), "xsk" (AF_XDP
	// copy mode), "packet" (AF_PACKET sendmmsg) or "sendmmsg" (raw IP
	// socket).
	Generator string
}

func (f *ForkScenario) Name() string {
	if f.Relay {
		return "relay." + f.Engine
	}
	return "fork." + f.Engine
}

func (f *ForkScenario) Keys() []string {
	if f.Relay {
		return []string{f.Name() + ".pps", f.Name() + ".cpu_ns_per_packet", f.Name() + ".loss"}
	}
	ks := []string{"fork." + f.Engine + ".pps", "fork." + f.Engine + ".cpu_ns_per_copy", "fork." + f.Engine + ".loss"}
	if f.Engine == "none" {
		ks = append(ks, "fork.none.cpu_ns_per_packet")
	}
	return ks
}

// forkParams are the bounds of one scenario run.
type forkParams struct {
	Streams    int           // streams of the rate ladder
	Rates      []float64     // offered rates, ascending
	Warm, Step time.Duration // per rate: warm-up, then measured window
	RefRate    float64       // reference rate of the CPU comparison
	RefStreams int           // RefRate / 50: 50 pps per stream
	CPUPairs   int           // with/without-fork window pairs at the reference rate
	CPUWarm    time.Duration // warm-up before each CPU window
	CPUWindow  time.Duration // one CPU window
	Bisect     int           // extra rates tried between the last good and first bad
}

func paramsFor(quick bool) forkParams {
	if quick {
		return forkParams{Streams: 500, Rates: Ladder(50000, 800000, 4), Warm: 200 * time.Millisecond,
			Step: 500 * time.Millisecond, RefRate: 20000, RefStreams: 400, CPUPairs: 3, CPUWarm: 100 * time.Millisecond, CPUWindow: 250 * time.Millisecond, Bisect: 1}
	}
	return forkParams{Streams: 2400, Rates: Ladder(25000, 1600000, 2), Warm: 500 * time.Millisecond,
		Step: 3 * time.Second, RefRate: 20000, RefStreams: 400, CPUPairs: 12, CPUWarm: 300 * time.Millisecond, CPUWindow: 1500 * time.Millisecond, Bisect: 2}
}

func (f *ForkScenario) Steps(quick bool) int {
	p := paramsFor(quick)
	return len(p.Rates) + p.Bisect + 2*p.CPUPairs + 1
}

// forkRun is the state of one scenario run.
type forkRun struct {
	env    *Env
	pair   *Pair
	sink   *xdpgen.Sink
	sender Sender
	subj   forkSubject
	meter  *CPUMeter
	gen    string
	// bpf, when set, accumulates the TCX ingress program's run time over
	// the windows whose fork setting is bpfFork (eBPF engine only): those
	// with forks in a fork scenario, those without in a relay scenario.
	bpf     *progRun
	bpfFork bool
}

// stepResult is one measured window.
type stepResult struct {
	RateStep
	Sent, Relayed, Copied uint64
	CPU, Wall             time.Duration
	RelayLoss, CopyLoss   float64
}

func (f *ForkScenario) Run(ctx context.Context, env *Env) (err error) {
	if f.open == nil {
		return fmt.Errorf("engine %s: %w", f.Engine, ErrNotBuilt)
	}
	if err := needRoot(); err != nil {
		return err
	}
	p := paramsFor(env.Quick)
	if lim, ok := env.Shared["fd_limit"].(uint64); ok {
		// Eight sockets per forked stream (caller, callee and two
		// recording legs; six and the SRTP relay's two for srtp), four
		// per unforked one, some spare.
		const per = 8
		fit := int((lim - 1000 - uint64(4*p.RefStreams)) / per)
		if fit < p.Streams {
			env.Results.Note("%s: %d streams instead of %d: the open-file limit is %d", f.Name(), fit, p.Streams, lim)
			p.Streams = max(fit, p.RefStreams)
		}
	}
	r := &forkRun{env: env}
	if r.pair, err = NewPair(); err != nil {
		return err
	}
	defer r.pair.Close()
	objs, err := xdpgen.Load(CalleeBase, CalleeBase+2*MaxStreams, RecBase, RecBase+2*MaxStreams)
	if err != nil {
		return Skip("load the traffic programs: %v", err)
	}
	defer objs.Close()
	if err := r.pair.G.Do(func() (err error) { r.sink, err = objs.AttachSink(r.pair.GIndex); return err }); err != nil {
		return Skip("attach the tcx sink: %v", err)
	}
	defer r.sink.Close()

	if r.subj, err = f.open(ctx, env, r.pair, f.Name()); err != nil {
		return err
	}
	defer r.subj.Close()
	r.meter = NewCPUMeter(append([]int{0}, r.subj.Pids()...)...)

	fork := f.Engine != "none" && !f.Relay
	r.bpfFork = fork
	gen := f.Generator
	if g, ok := env.Shared["generator"].(string); ok && gen == "" {
		gen = g
	}
	if err := r.chooseSender(ctx, objs, gen, p.Streams, fork); err != nil {
		return err
	}
	defer r.sender.Close()
	if fork {
		env.Config(f.Name(), map[string]any{"forks_per_packet": float64(r.subj.Forks())})
	}
	env.Config(f.Name(), map[string]any{
		"generator": r.gen, "streams": p.Streams, "step_s": p.Step.Seconds(), "warmup_s": p.Warm.Seconds(),
		"rates": p.Rates, "ref_rate_pps": p.RefRate, "ref_streams": p.RefStreams, "cpu_pairs": p.CPUPairs, "cpu_window_s": p.CPUWindow.Seconds(),
		"frame_bytes": xdpgen.HeaderLen + xdpgen.PayloadLen, "loss_threshold": LossThreshold,
	})

	if err := r.verify(ctx, f.Name(), p.RefStreams, "before the ladder"); err != nil {
		return err
	}

	// The rate ladder: stop at the first rate the engine does not sustain.
	var steps []RateStep
	var best stepResult
	// bound says what ended the ladder, for the findings: the engine's
	// loss, the generator, or the ladder's own top rate.
	bound := BoundLadderTop
	for _, rate := range p.Rates {
		s, err := r.measure(ctx, p.Streams, fork, rate, p.Warm, p.Step)
		if err != nil {
			return err
		}
		steps = append(steps, s.RateStep)
		env.Progress.Step(fmt.Sprintf("%.0f pps offered: out %.0f/s, loss %.4f", rate, s.Out, s.Loss))
		if s.Sustained() && s.Out > best.Out {
			best = s
		}
		if !s.Sustained() {
			bound = BoundLoss
			break
		}
		if s.Achieved < 0.9*s.Target {
			bound = BoundGenerator
			// The machine could not offer more: the generator shares the
			// two cores with the engine. The engine lost nothing at the
			// rate it was offered, which is what the step reports.
			env.Results.Note("%s: generator reached %.0f of %.0f pps offered; the ladder stops there (machine-bound, not engine loss)",
				f.Name(), s.Achieved, s.Target)
			break
		}
	}
	// Bisect (geometrically) between the last sustained rate and the first
	// that lost packets.
	if n := len(steps); n >= 2 && steps[n-2].Sustained() && !steps[n-1].Sustained() {
		lo, hi := steps[n-2], steps[n-1]
		for b := 0; b < p.Bisect; b++ {
			rate := math.Round(math.Sqrt(lo.Target * hi.Target))
			s, err := r.measure(ctx, p.Streams, fork, rate, p.Warm, p.Step)
			if err != nil {
				return err
			}
			steps = append(steps, s.RateStep)
			env.Progress.Step(fmt.Sprintf("%.0f pps offered: out %.0f/s, loss %.4f", rate, s.Out, s.Loss))
			if s.Sustained() {
				lo = s.RateStep
				if s.Out > best.Out {
					best = s
				}
			} else {
				hi = s.RateStep
			}
		}
	}
	env.Progress.Total(len(steps) + 2*p.CPUPairs + 1)
	env.Config(f.Name(), map[string]any{"ladder": steps, "bound": bound})
	prefix := f.Name()
	if best.Out > 0 {
		// All the CPU the meter saw at the best rate (engine, generator,
		// softirq), per unit delivered: where the time goes at full load,
		// which the reference windows' figures (fixed costs spread over
		// fewer packets) do not say.
		units := best.Relayed
		if fork {
			units = best.Copied
		}
		if best.Wall > 0 && units > 0 {
			env.Config(f.Name(), map[string]any{
				"best_cpu_cores":      best.CPU.Seconds() / best.Wall.Seconds(),
				"best_cpu_ns_per_out": float64(best.CPU.Nanoseconds()) / float64(units)})
		}
		env.Results.Set(prefix+".pps", best.Out, len(steps))
		env.Results.Set(prefix+".loss", best.Loss, 1)
	} else {
		env.Results.Mark(prefix+".pps", StatusNotMeasured, fmt.Sprintf("no offered rate was sustained (lowest %.0f pps)", p.Rates[0]))
		if len(steps) > 0 {
			env.Results.Set(prefix+".loss", steps[0].Loss, 1)
		}
	}

	// CPU at the reference rate, 50 pps per stream, in short windows that
	// alternate between the forked and the unforked streams (ABBA), so a
	// change of the shared machine's load hits both sides alike; each
	// adjacent pair of windows gives one estimate and the median is kept.
	if f.Engine == "ebpf" {
		if stats, err := ebpf.EnableStats(uint32(unix.BPF_STATS_RUN_TIME)); err == nil {
			defer stats.Close()
			_ = r.pair.M.Do(func() error {
				prog, err := attachedProgram(r.pair.MIndex, ebpf.AttachTCXIngress, "rtpfork_ingres")
				if err == nil {
					r.bpf = &progRun{prog: prog}
				}
				return err
			})
			if r.bpf != nil {
				defer r.bpf.prog.Close()
			}
		}
	}
	if !fork {
		var per []float64
		for i := 0; i < p.CPUPairs; i++ {
			s, err := r.measure(ctx, p.RefStreams, false, p.RefRate, p.CPUWarm, p.CPUWindow)
			if err != nil {
				return err
			}
			env.Progress.Step("reference rate without forks")
			if s.RelayLoss < LossThreshold {
				per = append(per, float64(s.CPU)/float64(max(s.Sent, 1)))
			}
		}
		if len(per) == 0 {
			return fmt.Errorf("no loss-free run at the %.0f pps reference rate", p.RefRate)
		}
		env.Results.Set(prefix+".cpu_ns_per_packet", Median(per), len(per))
		if !f.Relay {
			env.Results.Mark("fork.none.cpu_ns_per_copy", StatusNA, "no copies are made without a fork; see fork.none.cpu_ns_per_packet")
		}
		env.Config(f.Name(), map[string]any{"cpu_ns_per_packet_windows": per})
		r.noteBPF(f.Name(), "without forks (relay rewrite, redirect and the relayed packet's transmit are inside it)")
		return nil
	}
	var prof *cpuProfile
	if f.Engine == "userspace" || f.Engine == "ebpf" || f.Engine == "srtp" {
		prof = startCPUProfile()
	}
	var perCopy []float64
	var copies uint64
	for i := 0; i < p.CPUPairs; i++ {
		var with, without stepResult
		for _, fk := range []bool{i%2 == 1, i%2 == 0} {
			s, err := r.measure(ctx, p.RefStreams, fk, p.RefRate, p.CPUWarm, p.CPUWindow)
			if err != nil {
				return err
			}
			if fk {
				with = s
				env.Progress.Step(fmt.Sprintf("reference rate with forks: copy loss %.4f", s.CopyLoss))
			} else {
				without = s
				env.Progress.Step("reference rate without forks")
			}
		}
		if with.CopyLoss >= LossThreshold || with.RelayLoss >= LossThreshold || without.RelayLoss >= LossThreshold {
			env.Results.Note("%s: loss at the %.0f pps reference rate (with forks %.4f, without %.4f); that pair of windows discarded",
				f.Name(), p.RefRate, max(with.CopyLoss, with.RelayLoss), without.RelayLoss)
			continue
		}
		// Scale the window without forks to the packets of the window with
		// forks: both offered the same rate.
		base := float64(without.CPU) * float64(with.Sent) / float64(max(without.Sent, 1))
		perCopy = append(perCopy, PerUnit(float64(with.CPU), base, with.Copied))
		copies += with.Copied
	}
	if prof != nil {
		if top := prof.stop(6); len(top) > 0 {
			env.Results.Note("%s: CPU profile of the suite's process (engine, generator pacing, Go runtime) over the reference windows, top self time: %s",
				f.Name(), strings.Join(top, ", "))
		}
	}
	r.noteBPF(f.Name(), "with forks (clone, redirect and the copy's transmit are inside it)")
	if len(perCopy) == 0 {
		return fmt.Errorf("no loss-free run at the %.0f pps reference rate", p.RefRate)
	}
	if err := r.verify(ctx, f.Name(), p.RefStreams, "after the reference windows"); err != nil {
		return err
	}
	// The mean over the ABBA pairs (each order equally often), with its
	// standard error: the machine is shared, and the error says how much of
	// the figure is noise.
	est, se := Mean(perCopy), StdErr(perCopy)
	env.Results.Set(prefix+".cpu_ns_per_copy", est, len(perCopy))
	env.Config(f.Name(), map[string]any{"cpu_ns_per_copy_pairs": perCopy, "cpu_ns_per_copy_stderr": se})
	env.Results.Note("%s: extra CPU per copy %.0f ns ± %.0f ns (standard error over %d window pairs)", f.Name(), est, se, len(perCopy))
	env.Results.SetStdErr(prefix+".cpu_ns_per_copy", se)
	return nil
}

// chooseSender starts the generator the scenario asks for on its probe
// streams (see openGenerator) and notes any fallback.
func (r *forkRun) chooseSender(ctx context.Context, objs *xdpgen.Objects, want string, n int, fork bool) error {
	ports, err := r.subj.Prepare(ctx, min(n, 16), fork)
	if err != nil {
		return fmt.Errorf("prepare probe streams: %w", err)
	}
	s, name, notes, err := openGenerator(objs, r.pair, want, callerPorts(len(ports), fork), ports)
	for _, n := range notes {
		r.env.Results.Note("%s", n)
	}
	if err != nil {
		return err
	}
	r.sender, r.gen = s, name
	return nil
}

// Generators maps each load generator a fork scenario can be asked for
// (recforkperf -generator) to the name its results give it.
var Generators = map[string]string{"xdp": "xdp-live-frames", "xsk": "af-xdp-copy", "packet": "packet-sendmmsg", "sendmmsg": "sendmmsg"}

// openGenerator opens the load generator want names ("xdp", "xsk",
// "packet" or "sendmmsg"), its streams set to src and dst: live frames are
// tried with a send of 16 frames and, when the kernel refuses them, AF_XDP
// copy-mode sockets take over; those fall back to AF_PACKET sendmmsg, and
// packet sockets to raw-socket sendmmsg. It returns the generator's name
// and a note for each fallback, with the reason.
func openGenerator(objs *xdpgen.Objects, p *Pair, want string, src, dst []uint16) (Sender, string, []string, error) {
	var notes []string
	if want == "xdp" || want == "" {
		x := newXDPSender(objs, p)
		err := x.SetStreams(src, dst)
		if err == nil {
			err = p.G.Do(func() error { return x.Send(16) })
		}
		if err == nil {
			return x, Generators["xdp"], nil, nil
		}
		notes = append(notes, fmt.Sprintf("xdp live-frames generator unavailable (%v); the AF_XDP generator is used", err))
		want = "xsk"
	}
	if want == "xsk" {
		var xs *xskSender
		err := p.G.Do(func() (err error) { xs, err = newXSKSender(p, MaxStreams); return err })
		if err == nil {
			if err = xs.SetStreams(src, dst); err == nil {
				return xs, Generators["xsk"], notes, nil
			}
			xs.Close()
		}
		notes = append(notes, fmt.Sprintf("AF_XDP generator unavailable (%v); the packet-socket generator is used", err))
		want = "packet"
	}
	if want == "packet" {
		var ps *packetSender
		err := p.G.Do(func() (err error) { ps, err = newPacketSender(p); return err })
		if err == nil {
			if err = ps.SetStreams(src, dst); err == nil {
				return ps, Generators["packet"], notes, nil
			}
			ps.Close()
		}
		notes = append(notes, fmt.Sprintf("packet-socket generator unavailable (%v); raw-socket sendmmsg is used", err))
	}
	m, err := newMmsgSender(p)
	if err != nil {
		return nil, "", notes, err
	}
	if err := m.SetStreams(src, dst); err != nil {
		m.Close()
		return nil, "", notes, err
	}
	return m, Generators["sendmmsg"], notes, nil
}

// measure offers rate for warm, lets the queues drain, then offers it again
// for d and counts what arrived at the callees and the recorder.
func (r *forkRun) measure(ctx context.Context, n int, fork bool, rate float64, warm, d time.Duration) (stepResult, error) {
	var res stepResult
	ports, err := r.subj.Prepare(ctx, n, fork)
	if err != nil {
		return res, fmt.Errorf("prepare %d streams: %w", n, err)
	}
	if err := r.sender.SetStreams(callerPorts(n, fork), ports); err != nil {
		return res, err
	}
	if _, _, err := paceIn(ctx, r.pair.G, rate, warm, r.sender); err != nil {
		return res, err
	}
	if err := sleepCtx(ctx, 150*time.Millisecond); err != nil {
		return res, err
	}
	var enc0 uint64
	ec, encrypts := r.subj.(encryptedCounter)
	if encrypts && fork {
		// The relays work through their backlog after the pacer
		// stops; their count is read first and once they are idle,
		// so no copy is counted by the sink and not by them.
		if err := r.settle(ctx, ec); err != nil {
			return res, err
		}
		enc0 = ec.Encrypted()
	}
	c0, k0, err := r.sink.Counts()
	if err != nil {
		return res, err
	}
	cpu0 := r.meter.Sample()
	if fork == r.bpfFork {
		r.bpf.mark()
	}
	sent, took, err := paceIn(ctx, r.pair.G, rate, d, r.sender)
	if fork == r.bpfFork {
		r.bpf.add()
	}
	if err != nil {
		return res, err
	}
	if err := sleepCtx(ctx, 150*time.Millisecond); err != nil {
		return res, err
	}
	res.CPU, res.Wall = r.meter.Since(cpu0)
	if encrypts && fork {
		if err := r.settle(ctx, ec); err != nil {
			return res, err
		}
	}
	c1, k1, err := r.sink.Counts()
	if err != nil {
		return res, err
	}
	res.Sent, res.Relayed, res.Copied = sent, c1-c0, k1-k0
	if encrypts && fork {
		// Every copy the recorder side counted must have left an SRTP
		// relay: a plain copy that bypassed them would count too.
		if enc := ec.Encrypted() - enc0; res.Copied > enc {
			return res, fmt.Errorf("the recorder side counted %d copies but the srtp relays sent %d: copies bypassed srtp", res.Copied, enc)
		}
	}
	res.RelayLoss = Loss(sent, res.Relayed)
	res.CopyLoss = 0
	if fork {
		res.CopyLoss = Loss(sent*uint64(r.subj.Forks()), res.Copied)
	}
	// Rates are per nominal window: the pacer never sends ahead of rate*d,
	// so sent/d is what was offered, and the last call's tail (a live-frames
	// run returns ~25 ms after its frames left) is not held against it.
	_ = took
	window := d.Seconds()
	res.Target = rate
	res.Achieved = float64(sent) / window
	res.Loss = math.Max(res.RelayLoss, res.CopyLoss)
	if fork {
		res.Out = float64(res.Copied) / window
	} else {
		res.Out = float64(res.Relayed) / window
	}
	r.env.Log.Debug("fork window", "rate", rate, "fork", fork, "streams", n, "sent", sent,
		"relayed", res.Relayed, "copied", res.Copied, "cpu", res.CPU)
	if l, ok := r.subj.(interface{ Lossy() }); ok && res.Loss >= LossThreshold {
		l.Lossy()
	}
	if err := r.subj.Check(); err != nil {
		res.Loss = math.Max(res.Loss, 1)
		r.env.Results.Note("%.0f pps: %v", rate, err)
	}
	return res, nil
}

// What ended a scenario's rate ladder (its config's "bound").
const (
	BoundLoss      = "loss"       // the next rate lost 0.1 % or more
	BoundGenerator = "generator"  // the generator could not offer more
	BoundLadderTop = "ladder top" // the highest rate tried was sustained
)

// noteBPF reports the live run time of the TCX ingress program over the
// windows it was accounted in.
func (r *forkRun) noteBPF(name, what string) {
	if r.bpf == nil || r.bpf.runs == 0 {
		return
	}
	r.env.Results.Note("%s: the TCX ingress program ran %.0f ns per packet in live traffic %s (BPF run-time statistics, %d runs)",
		name, r.bpf.nsPerRun(), what, r.bpf.runs)
	r.env.Config(name, map[string]any{"bpf_ingress_ns_per_packet": r.bpf.nsPerRun()})
}

// verifier is a subject that can prove what its copies are on the wire
// (the SRTP subject decrypts them).
type verifier interface {
	Verify(ctx context.Context, n int) (VerifyResult, error)
}

// verify runs the subject's own check of its copies, if it has one, on n
// streams; a failure fails the scenario, so its figures are never reported
// for copies that are not what the key says.
func (r *forkRun) verify(ctx context.Context, name string, n int, when string) error {
	v, ok := r.subj.(verifier)
	if !ok {
		return nil
	}
	res, err := v.Verify(ctx, n)
	if err != nil {
		return fmt.Errorf("%s: %w", when, err)
	}
	r.env.Config(name, map[string]any{"verified_" + strings.ReplaceAll(when, " ", "_"): res.Authenticated})
	return nil
}

// encryptedCounter is a subject whose copies leave through SRTP relays:
// Encrypted counts the SRTP packets they sent.
type encryptedCounter interface {
	Encrypted() uint64
}

// settle waits until the subject's encrypted count and the sink's copy
// count stop moving (20 ms apart), for at most two seconds: the window's
// counts are then read with nothing in flight between the two.
func (r *forkRun) settle(ctx context.Context, ec encryptedCounter) error {
	last, lastK := ec.Encrypted(), uint64(0)
	if _, k, err := r.sink.Counts(); err == nil {
		lastK = k
	}
	for range 100 {
		if err := sleepCtx(ctx, 20*time.Millisecond); err != nil {
			return err
		}
		_, k, err := r.sink.Counts()
		if err != nil {
			return err
		}
		now := ec.Encrypted()
		if now == last && k == lastK {
			return nil
		}
		last, lastK = now, k
	}
	return nil
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

func callerPorts(n int, fork bool) []uint16 {
	out := make([]uint16, n)
	for i := range out {
		out[i] = CallerPort(i, fork)
	}
	return out
}
