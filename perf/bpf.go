package perf

import (
	"context"
	"fmt"
	"net/netip"
	"strings"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"

	"github.com/recfork/recfork/dataplane"
	rfebpf "github.com/recfork/recfork/dataplane/ebpf"
	"github.com/recfork/recfork/perf/xdpgen"
)

// BPFScenario test-runs the eBPF engine's TCX ingress program, the one the
// engine really attached (found on the interface by BPF_PROG_QUERY, so its
// maps are the engine's, filled through dataplane.Engine), on one RTP frame
// of a forked stream (active, then inactive) and of no stream (miss).
type BPFScenario struct{}

func (*BPFScenario) Name() string { return "bpf" }
func (*BPFScenario) Keys() []string {
	return []string{"baseline.xdp_pass_ns", "bpf.testrun_ns.active", "bpf.testrun_ns.inactive", "bpf.testrun_ns.miss",
		"bpf.testrun_ns.relay_fork", "bpf.testrun_ns.relay", "bpf.testrun_ns.guard_drop"}
}
func (*BPFScenario) Steps(bool) int { return 8 }

func (*BPFScenario) Run(ctx context.Context, env *Env) error {
	if err := needRoot(); err != nil {
		return err
	}
	repeat, rounds := uint32(200000), 5
	if env.Quick {
		repeat, rounds = 20000, 3
	}
	env.Config("bpf", map[string]any{"repeat": repeat, "rounds": rounds, "statistic": "median over rounds of the test run's own ns per repeat (BPF_PROG_TEST_RUN duration)"})
	p, err := NewPair()
	if err != nil {
		return err
	}
	defer p.Close()
	objs, err := xdpgen.Load(CalleeBase, CalleeBase+2*MaxStreams, RecBase, RecBase+2*MaxStreams)
	if err != nil {
		return Skip("load the traffic programs: %v", err)
	}
	defer objs.Close()
	var sink *xdpgen.Sink
	if err := p.G.Do(func() (err error) { sink, err = objs.AttachSink(p.GIndex); return err }); err != nil {
		return err
	}
	defer sink.Close()

	caller, _, rec := StreamPorts(0)
	frame := func(dport uint16) []byte {
		return xdpgen.Packet(p.frame(), xdpgen.Stream{SrcPort: caller, DstPort: dport})
	}
	// The floor: an XDP program that returns at once, test-run the same way.
	var pass []float64
	for i := 0; i < rounds; i++ {
		ns, err := objs.PassNs(frame(20000), repeat)
		if err != nil {
			return err
		}
		pass = append(pass, ns)
	}
	env.Results.Set("baseline.xdp_pass_ns", Median(pass), rounds)
	env.Progress.Step("xdp pass floor")

	eng, err := newEBPF(p)
	if err != nil {
		return err
	}
	defer eng.Close()
	local := netip.AddrFrom4([4]byte(p.MAddr.To4()))
	gen := netip.AddrFrom4([4]byte(p.GAddr.To4()))
	var a dataplane.EndpointInfo
	var prog *ebpf.Program
	err = p.M.Do(func() error {
		var err error
		if a, err = eng.OpenEndpoint(dataplane.EndpointConfig{LocalIP: local, Remote: netip.AddrPortFrom(gen, caller)}); err != nil {
			return err
		}
		src, err := eng.OpenEndpoint(dataplane.EndpointConfig{LocalIP: local})
		if err != nil {
			return err
		}
		if err := eng.AddFork(a.ID, dataplane.Inbound, dataplane.ForkConfig{Recorder: netip.AddrPortFrom(gen, rec), Source: src.ID}); err != nil {
			return err
		}
		prog, err = attachedProgram(p.MIndex, ebpf.AttachTCXIngress, "rtpfork_ingres")
		return err
	})
	if err != nil {
		return fmt.Errorf("set up the ebpf engine: %w", err)
	}
	defer prog.Close()

	run := func(name string, data []byte) (float64, error) {
		var xs []float64
		for i := 0; i < rounds; i++ {
			if err := ctx.Err(); err != nil {
				return 0, err
			}
			var ns float64
			err := p.M.Do(func() error {
				_, d, err := prog.Benchmark(data, int(repeat), nil)
				ns = float64(d.Nanoseconds())
				return err
			})
			if err != nil {
				return 0, fmt.Errorf("test run %s: %w", name, err)
			}
			xs = append(xs, ns)
		}
		env.Progress.Step(name)
		return Median(xs), nil
	}

	_, rec0, err := sink.Counts()
	if err != nil {
		return err
	}
	active, err := run("active", frame(a.Local.Port()))
	if err != nil {
		return err
	}
	// Proof that the active runs really copied: the copies reached the
	// recorder's side of the pair.
	if err := waitCopies(ctx, sink, rec0+uint64(repeat)*uint64(rounds)*999/1000); err != nil {
		return fmt.Errorf("active test runs: %w", err)
	}
	env.Results.Set("bpf.testrun_ns.active", active, rounds)

	if err := p.M.Do(func() error { return eng.SetForkMode(a.ID, dataplane.Inbound, dataplane.Inactive) }); err != nil {
		return err
	}
	inactive, err := run("inactive", frame(a.Local.Port()))
	if err != nil {
		return err
	}
	env.Results.Set("bpf.testrun_ns.inactive", inactive, rounds)
	miss, err := run("miss", frame(a.Local.Port()+100))
	if err != nil {
		return err
	}
	env.Results.Set("bpf.testrun_ns.miss", miss, rounds)

	// The kernel relay: a joins b (half), so a's packets are rewritten to
	// b's remote and redirected. A test run does not restore what the
	// program rewrote between repeats (the next repeat would be a miss), so
	// each sample is one run on a fresh copy of the frame, median of many.
	var b dataplane.EndpointInfo
	_, callee, _ := StreamPorts(0)
	err = p.M.Do(func() (err error) {
		if b, err = eng.OpenEndpoint(dataplane.EndpointConfig{LocalIP: local, Remote: netip.AddrPortFrom(gen, callee)}); err != nil {
			return err
		}
		if err := eng.Join(a.ID, b.ID, dataplane.Half); err != nil {
			return err
		}
		if !eng.RelayedInKernel(a.ID, b.ID) {
			return fmt.Errorf("join not relayed in the kernel")
		}
		return eng.SetForkMode(a.ID, dataplane.Inbound, dataplane.Active)
	})
	if err != nil {
		return fmt.Errorf("set up the kernel relay: %w", err)
	}
	single := func(name string, data []byte) (float64, error) {
		n := int(repeat) / 100
		xs := make([]float64, 0, n)
		for i := 0; i < n; i++ {
			if err := ctx.Err(); err != nil {
				return 0, err
			}
			var ret uint32
			var d time.Duration
			err := p.M.Do(func() (err error) {
				ret, d, err = prog.Benchmark(data, 1, nil)
				return err
			})
			if err != nil {
				return 0, fmt.Errorf("test run %s: %w", name, err)
			}
			if ret != tcxRedirect { // the packet was relayed
				return 0, fmt.Errorf("test run %s returned %d, want TCX_REDIRECT", name, ret)
			}
			xs = append(xs, float64(d.Nanoseconds()))
		}
		env.Progress.Step(name)
		return Median(xs), nil
	}
	relayFork, err := single("relay+fork", frame(a.Local.Port()))
	if err != nil {
		return err
	}
	env.Results.Set("bpf.testrun_ns.relay_fork", relayFork, int(repeat)/100)
	if err := p.M.Do(func() error { return eng.RemoveFork(a.ID, dataplane.Inbound) }); err != nil {
		return err
	}
	relayOnly, err := single("relay", frame(a.Local.Port()))
	if err != nil {
		return err
	}
	env.Results.Set("bpf.testrun_ns.relay", relayOnly, int(repeat)/100)

	// The guard: RTP to a's port from an address that is neither its
	// signalled nor a latched remote is dropped before any relay or fork.
	// A drop leaves the frame as it was, so repeats are real repeats.
	foreign := xdpgen.Packet(xdpgen.Frame{SrcMAC: p.GMAC, DstMAC: p.MMAC,
		SrcIP: netip.AddrFrom4([4]byte{10, 77, 0, 99}), DstIP: local},
		xdpgen.Stream{SrcPort: caller, DstPort: a.Local.Port()})
	guardNs, err := guardDrop(ctx, p, eng, prog, a.ID, foreign, repeat, rounds)
	if err != nil {
		return err
	}
	env.Progress.Step("guard drop")
	env.Results.Set("bpf.testrun_ns.guard_drop", guardNs, rounds)
	return nil
}

// guardDrop test-runs prog on a frame the guard must drop, rounds times
// repeat, and returns the median ns per run; every run must return TCX_DROP
// and be counted exactly once by the engine's guard, in the kernel's total
// and in the endpoint's own drops.
func guardDrop(ctx context.Context, p *Pair, eng *rfebpf.Engine, prog *ebpf.Program, id dataplane.EndpointID, frame []byte, repeat uint32, rounds int) (float64, error) {
	ks0, err := eng.KernelStats()
	if err != nil {
		return 0, err
	}
	es0, err := eng.EndpointStats(id)
	if err != nil {
		return 0, err
	}
	var xs []float64
	for i := 0; i < rounds; i++ {
		if err := ctx.Err(); err != nil {
			return 0, err
		}
		var ret uint32
		var d time.Duration
		if err := p.M.Do(func() (err error) {
			ret, d, err = prog.Benchmark(frame, int(repeat), nil)
			return err
		}); err != nil {
			return 0, fmt.Errorf("test run guard drop: %w", err)
		}
		if ret != tcxDrop {
			return 0, fmt.Errorf("test run guard drop returned %d, want TCX_DROP", ret)
		}
		xs = append(xs, float64(d.Nanoseconds()))
	}
	ks1, err := eng.KernelStats()
	if err != nil {
		return 0, err
	}
	es1, err := eng.EndpointStats(id)
	if err != nil {
		return 0, err
	}
	runs := uint64(repeat) * uint64(rounds)
	if g := ks1.Guard - ks0.Guard; g != runs {
		return 0, fmt.Errorf("guard drop: the kernel counted %d guard drops for %d runs", g, runs)
	}
	if dr := es1.Dropped - es0.Dropped; dr != runs {
		return 0, fmt.Errorf("guard drop: the endpoint counted %d drops for %d runs", dr, runs)
	}
	return Median(xs), nil
}

// Return codes of a TCX program (linux/bpf.h).
const (
	tcxDrop     = 2
	tcxRedirect = 7
)

// waitCopies waits until the sink has counted at least want recorder copies.
func waitCopies(ctx context.Context, sink *xdpgen.Sink, want uint64) error {
	deadline := time.Now().Add(5 * time.Second)
	for {
		_, got, err := sink.Counts()
		if err != nil {
			return err
		}
		if got >= want {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("recorder side counted %d copies, want %d", got, want)
		}
		if err := sleepCtx(ctx, 10*time.Millisecond); err != nil {
			return err
		}
	}
}

// attachedProgram returns the program attached at (ifindex, at) whose
// kernel name starts with name (kernel names hold 15 characters). Call it
// in the interface's namespace.
func attachedProgram(ifindex int, at ebpf.AttachType, name string) (*ebpf.Program, error) {
	res, err := link.QueryPrograms(link.QueryOptions{Target: ifindex, Attach: at})
	if err != nil {
		return nil, fmt.Errorf("query programs on ifindex %d: %w", ifindex, err)
	}
	for _, ap := range res.Programs {
		prog, err := ebpf.NewProgramFromID(ap.ID)
		if err != nil {
			continue
		}
		info, err := prog.Info()
		if err == nil && strings.HasPrefix(info.Name, name) {
			return prog, nil
		}
		prog.Close()
	}
	return nil, fmt.Errorf("no program %s attached to ifindex %d", name, ifindex)
}
