package perf

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"runtime"

	"github.com/recfork/recfork/dataplane"
	rfebpf "github.com/recfork/recfork/dataplane/ebpf"
	"github.com/recfork/recfork/dataplane/userspace"
)

// The recfork engines under test, driven only through dataplane.Engine and
// opened inside the media namespace of the pair.

// enginePorts is the engines' port range in the media namespace: up to
// MaxStreams forked streams of three endpoints and MaxStreams/2 unforked ones
// of two.
var enginePorts = dataplane.PortRange{Min: 10000, Max: 49999}

func newUserspace(p *Pair) (*userspace.Engine, error) {
	var e *userspace.Engine
	err := p.M.Do(func() (err error) {
		// As many workers as cores, as in production (the default,
		// GOMAXPROCS, is raised in this process for the generator).
		e, err = userspace.New(userspace.Config{PortRange: enginePorts, Workers: runtime.NumCPU()})
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("start userspace engine: %w", err)
	}
	return e, nil
}

func openUserspaceRelay(ctx context.Context, env *Env, p *Pair, name string) (forkSubject, error) {
	e, err := newUserspace(p)
	if err != nil {
		return nil, err
	}
	return &engineSubject{eng: e, pair: p, both: true}, nil
}

func openUserspace(ctx context.Context, env *Env, p *Pair, name string) (forkSubject, error) {
	return openUserspaceRelay(ctx, env, p, name)
}

// engineSubject runs the fork scenarios on a dataplane.Engine: stream i is
// a caller-facing endpoint joined (half duplex) to a callee-facing one and,
// in the forked pool, the caller's inbound forked to the recorder from a
// third, recording-leg endpoint and, with both set, the callee's outbound
// (the same packets after the relay) from a fourth: a relayed packet feeds
// both forks, as when both connections of a bridge are recorded. The forked
// and the unforked streams are two pools that live side by side, and pools
// only grow: removing a fork of the eBPF engine waits for an RCU grace
// period, so switching forks on and off per run would measure that wait
// instead of the data path. Stream i of the
// unforked pool uses the ports of stream MaxStreams-1-i on the generator side;
// where the pools' generator ports overlap nothing breaks (an endpoint
// accepts its own remote; the sink counts ranges).
type engineSubject struct {
	eng   dataplane.Engine
	pair  *Pair
	pools map[bool][]engineStream
	// kernel requires every join to be relayed by the BPF programs: a
	// relay figure of the eBPF engine must not be its userspace fallback's.
	kernel bool
	// recorder, when set, returns where stream i's fork must send for its
	// copies to reach rec (the SRTP subject puts a relay in between).
	recorder func(i int, source dataplane.EndpointInfo, rec netip.AddrPort) (netip.AddrPort, error)
	// both adds the callee's outbound fork to each forked stream.
	both bool
}

type engineStream struct {
	caller, callee, source, source2 dataplane.EndpointInfo
}

func (s *engineSubject) Pids() []int  { return nil }
func (s *engineSubject) Check() error { return nil }

func (s *engineSubject) Forks() int {
	if s.both {
		return 2
	}
	return 1
}

// Prepare returns the first n streams of the pool, growing it as needed.
func (s *engineSubject) Prepare(ctx context.Context, n int, fork bool) ([]uint16, error) {
	if s.pools == nil {
		s.pools = map[bool][]engineStream{}
	}
	if n > MaxStreams {
		return nil, fmt.Errorf("%d streams: more than the port plan holds: %w", n, dataplane.ErrInvalid)
	}
	if have := len(s.pools[fork]); have < n {
		if err := s.pair.M.Do(func() error { return s.grow(ctx, n, fork) }); err != nil {
			return nil, err
		}
	}
	ports := make([]uint16, n)
	for i, st := range s.pools[fork][:n] {
		ports[i] = st.caller.Local.Port()
	}
	return ports, nil
}

func (s *engineSubject) grow(ctx context.Context, n int, fork bool) error {
	local := netip.AddrFrom4([4]byte(s.pair.MAddr.To4()))
	gen := netip.AddrFrom4([4]byte(s.pair.GAddr.To4()))
	for i := len(s.pools[fork]); i < n; i++ {
		if err := ctx.Err(); err != nil {
			return err
		}
		caller, callee, rec := StreamPorts(i)
		if !fork {
			caller, callee, rec = StreamPorts(MaxStreams - 1 - i)
		}
		var st engineStream
		var err error
		if st.caller, err = s.eng.OpenEndpoint(dataplane.EndpointConfig{LocalIP: local, Remote: netip.AddrPortFrom(gen, caller)}); err != nil {
			return fmt.Errorf("stream %d: open caller leg: %w", i, err)
		}
		if st.callee, err = s.eng.OpenEndpoint(dataplane.EndpointConfig{LocalIP: local, Remote: netip.AddrPortFrom(gen, callee)}); err != nil {
			return fmt.Errorf("stream %d: open callee leg: %w", i, err)
		}
		if err := s.eng.Join(st.caller.ID, st.callee.ID, dataplane.Half); err != nil {
			return fmt.Errorf("stream %d: join: %w", i, err)
		}
		if s.kernel {
			k, ok := s.eng.(interface {
				RelayedInKernel(from, to dataplane.EndpointID) bool
			})
			if !ok || !k.RelayedInKernel(st.caller.ID, st.callee.ID) {
				return fmt.Errorf("stream %d: join not relayed in the kernel", i)
			}
		}
		if fork {
			if st.source, err = s.eng.OpenEndpoint(dataplane.EndpointConfig{LocalIP: local}); err != nil {
				return fmt.Errorf("stream %d: open recording leg: %w", i, err)
			}
			to := netip.AddrPortFrom(gen, rec)
			if s.recorder != nil {
				if to, err = s.recorder(i, st.source, to); err != nil {
					return fmt.Errorf("stream %d: %w", i, err)
				}
			}
			if err := s.eng.AddFork(st.caller.ID, dataplane.Inbound, dataplane.ForkConfig{
				Recorder: to, Source: st.source.ID, Mode: dataplane.Active}); err != nil {
				return fmt.Errorf("stream %d: add fork: %w", i, err)
			}
			if s.both {
				// The second recording's copies go to the same recorder
				// port from their own leg: the sink counts by port range.
				if st.source2, err = s.eng.OpenEndpoint(dataplane.EndpointConfig{LocalIP: local}); err != nil {
					return fmt.Errorf("stream %d: open second recording leg: %w", i, err)
				}
				if err := s.eng.AddFork(st.callee.ID, dataplane.Outbound, dataplane.ForkConfig{
					Recorder: to, Source: st.source2.ID, Mode: dataplane.Active}); err != nil {
					return fmt.Errorf("stream %d: add outbound fork: %w", i, err)
				}
			}
		}
		s.pools[fork] = append(s.pools[fork], st)
	}
	return nil
}

// Close closes the engine, which drops every endpoint, join and fork at once.
func (s *engineSubject) Close() error { return s.eng.Close() }

// newEBPF starts the eBPF engine on the media end of the pair, with a
// userspace engine as its Media (sockets, and what the kernel cannot relay).
func newEBPF(p *Pair) (*rfebpf.Engine, error) {
	us, err := newUserspace(p)
	if err != nil {
		return nil, err
	}
	var e *rfebpf.Engine
	err = p.M.Do(func() (err error) {
		e, err = rfebpf.New(rfebpf.Config{Media: us, Interfaces: []string{p.MIf}, Logger: slog.New(slog.DiscardHandler)})
		return err
	})
	if err != nil {
		us.Close()
		if errors.Is(err, dataplane.ErrNotSupported) {
			return nil, Skip("ebpf engine: %v", err)
		}
		return nil, fmt.Errorf("start ebpf engine: %w", err)
	}
	return e, nil
}

func openEBPF(ctx context.Context, env *Env, p *Pair, name string) (forkSubject, error) {
	e, err := newEBPF(p)
	if err != nil {
		return nil, err
	}
	return &engineSubject{eng: e, pair: p, kernel: true, both: true}, nil
}
