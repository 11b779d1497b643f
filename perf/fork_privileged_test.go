package perf

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"syscall"
	"testing"
	"time"

	"github.com/recfork/recfork/dataplane"
	rfebpf "github.com/recfork/recfork/dataplane/ebpf"
	"github.com/recfork/recfork/internal/testenv"
	"github.com/recfork/recfork/perf/xdpgen"
)

// TestForkSubjectsRelayAndCopy drives each engine of the fork and relay
// scenarios the way the scenario does — streams from Prepare, frames from the
// sendmmsg generator — and checks that every frame reaches its callee and,
// for the forked pool, its recorder once per fork (both forks for the
// engines and rtpengine, one for srtp), as counted by the sink. The unforked
// pool is what the relay.* scenarios measure: for the eBPF engine every one
// of its packets must have been relayed by the kernel. The SRTP subject's
// copies must all have left its relays and decrypt with each stream's keys.
func TestForkSubjectsRelayAndCopy(t *testing.T) {
	testenv.Privileged(t)
	for _, tc := range []struct {
		name string
		open forkOpener
	}{
		{"userspace", openUserspace},
		{"ebpf", openEBPF},
		{"rtpengine", openRTPEngine},
		{"srtp", openSRTP},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.name == "rtpengine" {
				if _, err := exec.LookPath("rtpengine"); err != nil {
					testenv.Unavailable(t, "rtpengine is not installed")
				}
			}
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			p, err := NewPair()
			if err != nil {
				t.Fatal(err)
			}
			closed := false
			defer func() {
				if !closed {
					p.Close()
				}
			}()
			objs, err := xdpgen.Load(CalleeBase, CalleeBase+2*MaxStreams, RecBase, RecBase+2*MaxStreams)
			if err != nil {
				t.Fatal(err)
			}
			defer objs.Close()
			var sink *xdpgen.Sink
			if err := p.G.Do(func() (err error) { sink, err = objs.AttachSink(p.GIndex); return err }); err != nil {
				t.Fatal(err)
			}
			defer sink.Close()
			env := &Env{Results: NewResults(true), Progress: NewProgress(nil), Log: discardLogger(), Shared: map[string]any{}}
			subj, err := tc.open(ctx, env, p, "fork."+tc.name)
			if err != nil {
				t.Fatal(err)
			}
			subjClosed := false
			defer func() {
				if !subjClosed {
					subj.Close()
				}
			}()
			sender, err := newMmsgSender(p)
			if err != nil {
				t.Fatal(err)
			}
			defer sender.Close()

			const streams, rounds = 20, 10
			var wantCallee, wantRec uint64
			for _, fork := range []bool{false, true} {
				ports, err := subj.Prepare(ctx, streams, fork)
				if err != nil {
					t.Fatal(err)
				}
				if err := sender.SetStreams(callerPorts(streams, fork), ports); err != nil {
					t.Fatal(err)
				}
				var kernel0 uint64
				eng, isEBPF := subjectEngine(subj).(*rfebpf.Engine)
				if isEBPF {
					ks, err := eng.KernelStats()
					if err != nil {
						t.Fatal(err)
					}
					kernel0 = ks.Relayed
				}
				if err := p.G.Do(func() error { return sender.Send(streams * rounds) }); err != nil {
					t.Fatal(err)
				}
				wantCallee += streams * rounds
				if fork {
					// Every relayed packet feeds each of the subject's
					// forks once.
					wantRec += uint64(streams * rounds * subj.Forks())
				}
				if err := waitCounts(ctx, sink, wantCallee, wantRec); err != nil {
					t.Fatalf("fork=%v: %v", fork, err)
				}
				if isEBPF {
					ks, err := eng.KernelStats()
					if err != nil {
						t.Fatal(err)
					}
					if got := ks.Relayed - kernel0; got != streams*rounds {
						t.Errorf("fork=%v: the kernel relayed %d packets, want all %d", fork, got, streams*rounds)
					}
				}
			}
			if s, ok := subj.(*srtpSubject); ok {
				if err := waitEncrypted(ctx, s, wantRec); err != nil {
					t.Error(err)
				}
				res, err := s.Verify(ctx, streams)
				if err != nil {
					t.Fatal(err)
				}
				if res != (VerifyResult{Authenticated: streams}) {
					t.Errorf("verify = %+v, want all %d authenticated", res, streams)
				}
				// Verify's packets were relayed to the callees too.
				wantCallee += streams
				// With two streams' keys swapped, their copies fail to
				// authenticate: the check can fail.
				s.cryptos[0], s.cryptos[1] = s.cryptos[1], s.cryptos[0]
				res, err = s.Verify(ctx, streams)
				s.cryptos[0], s.cryptos[1] = s.cryptos[1], s.cryptos[0]
				if !errors.Is(err, errNotSRTP) || res != (VerifyResult{Authenticated: streams - 2, Failed: 2}) {
					t.Errorf("verify with swapped keys = %+v, %v; want 2 failed", res, err)
				}
				wantCallee += streams
				if err := waitEncrypted(ctx, s, wantRec+2*streams); err != nil {
					t.Errorf("after verify: %v", err)
				}
				// The relays point at the recorder again.
				if err := sender.SetStreams(callerPorts(streams, true), mustPorts(t, ctx, subj, streams)); err != nil {
					t.Fatal(err)
				}
				if err := p.G.Do(func() error { return sender.Send(streams) }); err != nil {
					t.Fatal(err)
				}
				wantCallee += streams
				wantRec += streams
				if err := waitCounts(ctx, sink, wantCallee, wantRec); err != nil {
					t.Fatalf("after verify: %v", err)
				}
			}
			if err := subj.Check(); err != nil {
				t.Fatal(err)
			}
			// Everything the subject started ends with Close: rtpengine's
			// process, and then the namespaces with the pair.
			pids := subj.Pids()
			subjClosed = true
			if err := subj.Close(); err != nil {
				t.Fatal(err)
			}
			for _, pid := range pids {
				if err := syscall.Kill(pid, 0); err == nil {
					t.Errorf("process %d still runs after Close", pid)
				}
			}
			// The sink and the programs go first: they hold the interface.
			sink.Close()
			objs.Close()
			closed = true
			if err := p.Close(); err != nil {
				t.Fatal(err)
			}
			for _, ns := range []*Netns{p.G, p.M} {
				if _, err := os.Stat("/run/netns/" + ns.Name); err == nil {
					t.Errorf("namespace %s left after Close", ns.Name)
				}
			}
		})
	}
}

// waitCounts waits until the sink has counted exactly the packets wanted.
func waitCounts(ctx context.Context, sink *xdpgen.Sink, callee, rec uint64) error {
	for {
		c, r, err := sink.Counts()
		if err != nil {
			return err
		}
		if c == callee && r == rec {
			return nil
		}
		if c > callee || r > rec {
			return fmt.Errorf("sink counted %d relayed and %d copies, more than the %d and %d sent", c, r, callee, rec)
		}
		if err := sleepCtx(ctx, 10*time.Millisecond); err != nil {
			return fmt.Errorf("sink counted %d relayed and %d copies, want %d and %d: %w", c, r, callee, rec, err)
		}
	}
}

// subjectEngine returns the dataplane engine under a subject, if it has one.
func subjectEngine(s forkSubject) dataplane.Engine {
	switch s := s.(type) {
	case *engineSubject:
		return s.eng
	case *srtpSubject:
		return s.eng
	}
	return nil
}

func mustPorts(t *testing.T, ctx context.Context, s forkSubject, n int) []uint16 {
	t.Helper()
	ports, err := s.Prepare(ctx, n, true)
	if err != nil {
		t.Fatal(err)
	}
	return ports
}

// TestBPFScenarioMeasuresEveryKey runs the test-run scenario once: each of
// its figures is checked inside it (copies arrive, relays return
// TCX_REDIRECT, every guard drop returns TCX_DROP and is counted once by the
// kernel and by the endpoint), so here every key must be measured.
func TestBPFScenarioMeasuresEveryKey(t *testing.T) {
	testenv.Privileged(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	s := &BPFScenario{}
	env := &Env{Quick: true, Results: NewResults(true), Progress: NewProgress(nil), Log: discardLogger(), Shared: map[string]any{}}
	if err := s.Run(ctx, env); err != nil {
		t.Fatal(err)
	}
	for _, k := range s.Keys() {
		if v, ok := env.Results.Value(k); !ok || v <= 0 {
			t.Errorf("%s = %v, %v: want a measured positive figure", k, v, ok)
		}
	}
}

// waitEncrypted waits until the SRTP relays have counted exactly want
// packets (a relay counts a packet just after its send returns, so the
// receiver may see it first).
func waitEncrypted(ctx context.Context, s *srtpSubject, want uint64) error {
	for {
		got := s.Encrypted()
		if got == want {
			return nil
		}
		if got > want {
			return fmt.Errorf("srtp relays sent %d packets, more than the %d expected", got, want)
		}
		if err := sleepCtx(ctx, 5*time.Millisecond); err != nil {
			return fmt.Errorf("srtp relays sent %d packets, want %d: %w", got, want, err)
		}
	}
}
