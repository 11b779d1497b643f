package controlplane_test

import (
	"fmt"
	"net"
	"net/netip"
	"sync"

	"github.com/recfork/recfork/dataplane"
)

// testEngine is a small relay-and-copy engine in Go for the control plane's
// own unit tests, so they do not depend on the real engines' progress. It
// keeps the contract's semantics for what the control plane uses: endpoints
// on real sockets, joins (self-join echoes), forks with modes and counters.
type testEngine struct {
	mu     sync.Mutex
	next   dataplane.EndpointID
	eps    map[dataplane.EndpointID]*testEP
	closed bool
	wg     sync.WaitGroup
}

type testEP struct {
	id     dataplane.EndpointID
	rtp    *net.UDPConn
	rtcp   *net.UDPConn
	local  netip.AddrPort
	remote netip.AddrPort
	joins  map[dataplane.EndpointID]dataplane.Duplex // relay what we receive to these
	forks  map[dataplane.Direction]*testFork
	stats  dataplane.EndpointStats
}

type testFork struct {
	cfg   dataplane.ForkConfig
	stats dataplane.ForkStats
}

func newTestEngine() *testEngine {
	return &testEngine{eps: map[dataplane.EndpointID]*testEP{}}
}

func (e *testEngine) Name() string { return "test" }

func (e *testEngine) OpenEndpoint(cfg dataplane.EndpointConfig) (dataplane.EndpointInfo, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return dataplane.EndpointInfo{}, dataplane.ErrClosed
	}
	for i := 0; i < 100; i++ {
		rtp, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(cfg.LocalIP, 0)))
		if err != nil {
			return dataplane.EndpointInfo{}, err
		}
		port := rtp.LocalAddr().(*net.UDPAddr).Port
		if port%2 != 0 {
			rtp.Close()
			continue
		}
		rtcp, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(cfg.LocalIP, uint16(port+1))))
		if err != nil {
			rtp.Close()
			continue
		}
		e.next++
		ep := &testEP{id: e.next, rtp: rtp, rtcp: rtcp, local: netip.AddrPortFrom(cfg.LocalIP, uint16(port)),
			remote: cfg.Remote, joins: map[dataplane.EndpointID]dataplane.Duplex{}, forks: map[dataplane.Direction]*testFork{}}
		e.eps[ep.id] = ep
		e.wg.Add(1)
		go e.read(ep)
		return dataplane.EndpointInfo{ID: ep.id, Local: ep.local, Remote: ep.remote}, nil
	}
	return dataplane.EndpointInfo{}, dataplane.ErrPortsExhausted
}

func (e *testEngine) read(ep *testEP) {
	defer e.wg.Done()
	buf := make([]byte, 2048)
	for {
		n, from, err := ep.rtp.ReadFromUDPAddrPort(buf)
		if err != nil {
			return
		}
		from = netip.AddrPortFrom(from.Addr().Unmap(), from.Port())
		pkt := buf[:n]
		e.mu.Lock()
		if !ep.remote.IsValid() {
			ep.remote = from
		}
		ep.stats.RxPackets++
		ep.stats.RxBytes += uint64(n)
		e.fork(ep, dataplane.Inbound, pkt)
		relayed := false
		for to := range ep.joins {
			t := e.eps[to]
			if t == nil || !t.remote.IsValid() {
				continue
			}
			if _, err := t.rtp.WriteToUDPAddrPort(pkt, t.remote); err == nil {
				relayed = true
				t.stats.TxPackets++
				t.stats.TxBytes += uint64(n)
				e.fork(t, dataplane.Outbound, pkt)
			}
		}
		if relayed {
			ep.stats.Relayed++
		}
		e.mu.Unlock()
	}
}

// fork copies pkt for ep's direction; e.mu is held.
func (e *testEngine) fork(ep *testEP, dir dataplane.Direction, pkt []byte) {
	f := ep.forks[dir]
	if f == nil {
		return
	}
	if f.cfg.Mode == dataplane.Inactive {
		f.stats.MutedPackets++
		f.stats.MutedBytes += uint64(len(pkt))
		return
	}
	src := e.eps[f.cfg.Source]
	if src == nil {
		return
	}
	if _, err := src.rtp.WriteToUDPAddrPort(pkt, f.cfg.Recorder); err == nil {
		f.stats.CopiedPackets++
		f.stats.CopiedBytes += uint64(len(pkt))
	}
}

func (e *testEngine) ep(id dataplane.EndpointID) (*testEP, error) {
	ep := e.eps[id]
	if ep == nil {
		return nil, fmt.Errorf("endpoint %d: %w", id, dataplane.ErrNotFound)
	}
	return ep, nil
}

func (e *testEngine) SetRemote(id dataplane.EndpointID, remote netip.AddrPort) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	ep, err := e.ep(id)
	if err != nil {
		return err
	}
	ep.remote = remote
	return nil
}

func (e *testEngine) CloseEndpoint(id dataplane.EndpointID) error {
	e.mu.Lock()
	ep, err := e.ep(id)
	if err != nil {
		e.mu.Unlock()
		return err
	}
	delete(e.eps, id)
	for _, o := range e.eps {
		delete(o.joins, id)
	}
	e.mu.Unlock()
	ep.rtp.Close()
	ep.rtcp.Close()
	return nil
}

func (e *testEngine) Join(from, to dataplane.EndpointID, d dataplane.Duplex) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	a, err := e.ep(from)
	if err != nil {
		return err
	}
	b, err := e.ep(to)
	if err != nil {
		return err
	}
	a.joins[to] = d
	if d == dataplane.Full {
		b.joins[from] = d
	}
	return nil
}

func (e *testEngine) Unjoin(x, y dataplane.EndpointID) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	a, err := e.ep(x)
	if err != nil {
		return err
	}
	b, err := e.ep(y)
	if err != nil {
		return err
	}
	delete(a.joins, y)
	delete(b.joins, x)
	return nil
}

func (e *testEngine) AddFork(id dataplane.EndpointID, dir dataplane.Direction, cfg dataplane.ForkConfig) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	ep, err := e.ep(id)
	if err != nil {
		return err
	}
	if ep.forks[dir] != nil {
		return dataplane.ErrExists
	}
	if cfg.Mode == 0 {
		cfg.Mode = dataplane.Active
	}
	ep.forks[dir] = &testFork{cfg: cfg}
	return nil
}

func (e *testEngine) SetForkMode(id dataplane.EndpointID, dir dataplane.Direction, m dataplane.Mode) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	ep, err := e.ep(id)
	if err != nil {
		return err
	}
	f := ep.forks[dir]
	if f == nil {
		return dataplane.ErrNotFound
	}
	f.cfg.Mode = m
	return nil
}

func (e *testEngine) RemoveFork(id dataplane.EndpointID, dir dataplane.Direction) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	ep, err := e.ep(id)
	if err != nil {
		return err
	}
	if ep.forks[dir] == nil {
		return dataplane.ErrNotFound
	}
	delete(ep.forks, dir)
	return nil
}

func (e *testEngine) EndpointStats(id dataplane.EndpointID) (dataplane.EndpointStats, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	ep, err := e.ep(id)
	if err != nil {
		return dataplane.EndpointStats{}, err
	}
	return ep.stats, nil
}

func (e *testEngine) ForkStats(id dataplane.EndpointID, dir dataplane.Direction) (dataplane.ForkStats, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	ep, err := e.ep(id)
	if err != nil {
		return dataplane.ForkStats{}, err
	}
	f := ep.forks[dir]
	if f == nil {
		return dataplane.ForkStats{}, dataplane.ErrNotFound
	}
	return f.stats, nil
}

func (e *testEngine) Stats() dataplane.EngineStats {
	e.mu.Lock()
	defer e.mu.Unlock()
	st := dataplane.EngineStats{Engine: "test", Endpoints: len(e.eps)}
	for _, ep := range e.eps {
		st.Joins += len(ep.joins)
		st.Forks += len(ep.forks)
	}
	return st
}

func (e *testEngine) Close() error {
	e.mu.Lock()
	e.closed = true
	ids := make([]dataplane.EndpointID, 0, len(e.eps))
	for id := range e.eps {
		ids = append(ids, id)
	}
	e.mu.Unlock()
	for _, id := range ids {
		_ = e.CloseEndpoint(id)
	}
	e.wg.Wait()
	return nil
}

var _ dataplane.Engine = (*testEngine)(nil)
