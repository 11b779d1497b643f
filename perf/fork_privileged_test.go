package perf

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"syscall"
	"testing"
	"time"

	"github.com/recfork/recfork/internal/testenv"
	"github.com/recfork/recfork/perf/xdpgen"
)

// TestForkSubjectsRelayAndCopy drives each engine of the fork scenarios the
// way the scenario does — streams from Prepare, frames from the sendmmsg
// generator — and checks that every frame reaches its callee and, for the
// forked pool, its recorder, as counted by the sink.
func TestForkSubjectsRelayAndCopy(t *testing.T) {
	testenv.Privileged(t)
	for _, tc := range []struct {
		name string
		open forkOpener
	}{
		{"userspace", openUserspace},
		{"ebpf", openEBPF},
		{"rtpengine", openRTPEngine},
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
			subj, err := tc.open(ctx, env, p)
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
				if err := p.G.Do(func() error { return sender.Send(streams * rounds) }); err != nil {
					t.Fatal(err)
				}
				wantCallee += streams * rounds
				if fork {
					wantRec += streams * rounds
				}
				if err := waitCounts(ctx, sink, wantCallee, wantRec); err != nil {
					t.Fatalf("fork=%v: %v", fork, err)
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
