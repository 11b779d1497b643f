package perf

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/netip"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/recfork/recfork/ccxml"
	"github.com/recfork/recfork/dataplane"
	"github.com/recfork/recfork/perf/xdpgen"
)

// MuteScenario times a mute on the eBPF engine: SetForkMode alone (the map
// write, plus the wait for running programs that muting includes), and from a
// CCXML <send name="'bvr.record'"> with inactive to the last copy seen at the
// recorder's interface.
type MuteScenario struct{}

func (*MuteScenario) Name() string { return "mute" }
func (*MuteScenario) Keys() []string {
	return []string{"baseline.map_update_us", "baseline.wakeup_us.p99", "mute.map_write_us.p50", "mute.map_write_us.p99", "mute.send_to_silence_us.p99"}
}
func (*MuteScenario) Steps(bool) int { return 13 }

// muteDoc is the CCXML document of the send-to-silence trials: each
// perf.mute event sends bvr.record with inbound inactive.
const muteDoc = `<?xml version="1.0"?>
<ccxml version="1.0" xmlns="http://www.w3.org/2002/09/ccxml">
<var name="type" expr="'siprec'"/>
<var name="uri" expr="'sip:srs@10.77.0.1:5080'"/>
<var name="inbound" expr="'inactive'"/>
<var name="outbound" expr="'nochange'"/>
<eventprocessor>
<transition event="perf.mute">
  <send name="'bvr.record'" target="'perf-conn'" targettype="'connection'" namelist="type uri inbound outbound"/>
</transition>
<transition event="send.successful"/>
<transition event="bvr.record.update"/>
<transition event="perf.stop"><exit/></transition>
</eventprocessor>
</ccxml>`

// mutePlatform carries bvr.record's inbound mode to the eBPF engine's fork,
// as the control plane does for a recording already established, and answers
// with bvr.record.update. Send must not block, so the map write runs on its
// own goroutine.
type mutePlatform struct {
	ccxml.Unsupported
	apply func(dataplane.Mode) error
	done  chan muteDone
	wg    sync.WaitGroup
}

// muteDone reports one carried-out bvr.record: when the interpreter called
// Send and when the engine's SetForkMode returned (CLOCK_MONOTONIC).
type muteDone struct {
	sendAt, appliedAt time.Duration
	err               error
}

func (m *mutePlatform) Send(ctx context.Context, s *ccxml.Session, r ccxml.SendRequest) error {
	if r.Name != "bvr.record" {
		return ccxml.ErrUnsupported
	}
	mode := dataplane.Active
	if r.Fields["inbound"] == "inactive" {
		mode = dataplane.Inactive
	}
	sendAt := xdpgen.Monotonic()
	inbound, _ := r.Fields["inbound"].(string)
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		err := m.apply(mode)
		applied := xdpgen.Monotonic()
		_ = s.Post(ccxml.Event{Name: "bvr.record.update", Fields: map[string]any{
			"connectionid": r.Target, "type": "siprec", "inbound": inbound, "operation": "update"}})
		m.done <- muteDone{sendAt: sendAt, appliedAt: applied, err: err}
	}()
	return nil
}

func (*MuteScenario) Run(ctx context.Context, env *Env) error {
	if err := needRoot(); err != nil {
		return err
	}
	writes, trials := 2000, 200
	if env.Quick {
		writes, trials = 100, 30
	}
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

	base, err := objs.TimeMapUpdates(writes)
	if err != nil {
		return err
	}
	env.Results.Set("baseline.map_update_us", Median(Micros(base)), len(base))
	env.Progress.Step("array map update floor")

	eng, err := newEBPF(p)
	if err != nil {
		return err
	}
	defer eng.Close()
	caller, _, rec := StreamPorts(0)
	local := netip.AddrFrom4([4]byte(p.MAddr.To4()))
	gen := netip.AddrFrom4([4]byte(p.GAddr.To4()))
	var a dataplane.EndpointInfo
	if err := p.M.Do(func() error {
		var err error
		if a, err = eng.OpenEndpoint(dataplane.EndpointConfig{LocalIP: local, Remote: netip.AddrPortFrom(gen, caller)}); err != nil {
			return err
		}
		src, err := eng.OpenEndpoint(dataplane.EndpointConfig{LocalIP: local})
		if err != nil {
			return err
		}
		return eng.AddFork(a.ID, dataplane.Inbound, dataplane.ForkConfig{Recorder: netip.AddrPortFrom(gen, rec), Source: src.ID})
	}); err != nil {
		return fmt.Errorf("set up the ebpf engine: %w", err)
	}
	setMode := func(m dataplane.Mode) error { return eng.SetForkMode(a.ID, dataplane.Inbound, m) }

	// SetForkMode, alternating mute and unmute.
	var mute, unmute []time.Duration
	for i := 0; i < writes; i++ {
		for _, m := range []dataplane.Mode{dataplane.Inactive, dataplane.Active} {
			start := time.Now()
			if err := setMode(m); err != nil {
				return err
			}
			if m == dataplane.Inactive {
				mute = append(mute, time.Since(start))
			} else {
				unmute = append(unmute, time.Since(start))
			}
		}
	}
	mu := Micros(mute)
	env.Results.Set("mute.map_write_us.p50", Percentile(mu, 50), len(mu))
	env.Results.Set("mute.map_write_us.p99", Percentile(mu, 99), len(mu))
	um := Micros(unmute)
	why := ""
	if Percentile(mu, 50) > 10*Percentile(um, 50) && Percentile(mu, 50) > 50 {
		why = " Muting costs more than unmuting: SetForkMode(inactive) waits until no fork program that read the old mode is still running, and that wait is where a mute's time goes."
	}
	env.Results.Note("mute: SetForkMode(inactive) p50 %.1f us, p99 %.1f us; SetForkMode(active) p50 %.1f us, p99 %.1f us; a plain array-map update from Go p50 %.1f us.%s",
		Percentile(mu, 50), Percentile(mu, 99), Percentile(um, 50), Percentile(um, 99), Median(Micros(base)), why)
	env.Progress.Step("SetForkMode")

	// The machine's scheduling latency, the floor under anything that hands
	// work from one goroutine to another (as the interpreter does).
	wake := wakeupLatency(max(trials, 200))
	env.Results.Set("baseline.wakeup_us.p99", Percentile(Micros(wake), 99), len(wake))

	// Send to silence: a steady stream, a CCXML session, a mute per trial.
	d, err := sendToSilence(ctx, env, p, sink, a.Local.Port(), setMode, trials)
	if err != nil {
		return fmt.Errorf("send to silence: %w", err)
	}
	env.Results.Set("mute.send_to_silence_us.p99", Percentile(Micros(d), 99), len(d))
	env.Results.Note("mute: CCXML send to last copy p50 %.0f us, p99 %.0f us over %d trials (copies timestamped by the sink at the recorder's interface; stream rate in the scenario's config)",
		Percentile(Micros(d), 50), Percentile(Micros(d), 99), len(d))
	env.Config("mute", map[string]any{"map_writes": writes, "trials": trials,
		"path": "ccxml <send> -> Platform.Send -> ebpf.Engine.SetForkMode (the control plane's mute of an established recording); SIP re-INVITE to the SRS not included"})
	return nil
}

func sendToSilence(ctx context.Context, env *Env, p *Pair, sink *xdpgen.Sink, port uint16, setMode func(dataplane.Mode) error, trials int) ([]time.Duration, error) {
	in, err := ccxml.New(ccxml.Config{})
	if err != nil {
		return nil, err
	}
	defer in.Close()
	doc, err := in.Compile(ctx, "perf-mute.ccxml", []byte(muteDoc))
	if err != nil {
		return nil, fmt.Errorf("compile mute document: %w", err)
	}
	plat := &mutePlatform{apply: setMode, done: make(chan muteDone, 1)}
	s, err := in.NewSession(doc, plat, ccxml.SessionOptions{Log: func(string, string) {}})
	if err != nil {
		return nil, err
	}
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	runDone := make(chan struct{})
	go func() { _ = s.Run(sctx); close(runDone) }()
	defer func() { cancel(); <-runDone; plat.wg.Wait() }()

	// The stream: one packet, then a 20 us nanosleep with the thread's timer
	// slack at 1 ns (Go's own timers are far coarser here), so the last copy
	// before a mute is a few tens of microseconds older than the mute. A
	// spinning sender would be finer but would take a whole core from the
	// session and the engine on a 2-core machine.
	sender, err := newMmsgSender(p)
	if err != nil {
		return nil, err
	}
	defer sender.Close()
	if err := sender.SetStreams([]uint16{CallerPort(0, true)}, []uint16{port}); err != nil {
		return nil, err
	}
	stop := make(chan struct{})
	sendErr := make(chan error, 1)
	var sent atomic.Uint64
	streamStart := time.Now()
	go func() {
		sendErr <- p.G.Do(func() error {
			_ = unix.Prctl(unix.PR_SET_TIMERSLACK, 1, 0, 0, 0)
			pause := unix.Timespec{Nsec: 20000}
			for {
				select {
				case <-stop:
					return nil
				default:
				}
				if err := sender.Send(1); err != nil {
					return err
				}
				sent.Add(1)
				_ = unix.Nanosleep(&pause, nil)
				// A goroutine looping on short system calls keeps its P
				// until sysmon takes it away (up to 10 ms later when
				// sysmon is idle); yield so the session and the engine
				// run at once.
				runtime.Gosched()
			}
		})
	}()
	defer func() {
		close(stop)
		<-sendErr
		env.Config("mute", map[string]any{"stream_pps": math.Round(float64(sent.Load()) / time.Since(streamStart).Seconds())})
	}()

	var out, toSend, toApplied []time.Duration
	defer func() {
		if len(toSend) > 0 {
			env.Results.Note("mute: from posting the event, the interpreter called Platform.Send after p50 %.0f us / p99 %.0f us and SetForkMode had returned after p50 %.0f us / p99 %.0f us (the rest of send-to-silence is the packet in flight)",
				Percentile(Micros(toSend), 50), Percentile(Micros(toSend), 99), Percentile(Micros(toApplied), 50), Percentile(Micros(toApplied), 99))
		}
	}()
	for i := 0; i < trials; i++ {
		if err := setMode(dataplane.Active); err != nil {
			return nil, err
		}
		// Wait for copies to flow again.
		since := xdpgen.Monotonic()
		for {
			last, err := sink.LastCopy()
			if err != nil {
				return nil, err
			}
			if last > since+time.Millisecond {
				break
			}
			if xdpgen.Monotonic()-since > 2*time.Second {
				return nil, errors.New("no copies reach the recorder after unmute")
			}
			if err := sleepCtx(ctx, 200*time.Microsecond); err != nil {
				return nil, err
			}
		}
		t0 := xdpgen.Monotonic()
		if err := s.Post(ccxml.Event{Name: "perf.mute"}); err != nil {
			return nil, err
		}
		select {
		case md := <-plat.done:
			if md.err != nil {
				return nil, md.err
			}
			toSend = append(toSend, md.sendAt-t0)
			toApplied = append(toApplied, md.appliedAt-t0)
		case <-time.After(5 * time.Second):
			return nil, errors.New("bvr.record was not carried out within 5 s")
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		// Copies cloned before the mute are on the wire for microseconds.
		if err := sleepCtx(ctx, 2*time.Millisecond); err != nil {
			return nil, err
		}
		last, err := sink.LastCopy()
		if err != nil {
			return nil, err
		}
		out = append(out, max(last-t0, 0))
		if i%max(trials/10, 1) == 0 {
			env.Progress.Step(fmt.Sprintf("send to silence: trial %d/%d", i+1, trials))
		}
	}
	_ = s.Post(ccxml.Event{Name: "perf.stop"})
	return out, nil
}

// wakeupLatency times n hand-offs to a goroutine blocked on a channel, from
// the send to the moment the receiver runs, 1 ms apart.
func wakeupLatency(n int) []time.Duration {
	ch := make(chan time.Time)
	got := make(chan time.Duration)
	go func() {
		for t := range ch {
			got <- time.Since(t)
		}
		close(got)
	}()
	out := make([]time.Duration, 0, n)
	for i := 0; i < n; i++ {
		time.Sleep(time.Millisecond)
		ch <- time.Now()
		out = append(out, <-got)
	}
	close(ch)
	<-got
	return out
}
