package userspace

import (
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"sync"
	"sync/atomic"

	"golang.org/x/sys/unix"

	"github.com/recfork/recfork/dataplane"
)

// Engine is the userspace data plane. It is safe for concurrent use.
type Engine struct {
	log   *slog.Logger
	cfg   Config
	ports portPool

	// mu serialises control operations; it is taken before any worker's mutex.
	mu      sync.Mutex
	closed  bool
	nextID  dataplane.EndpointID
	eps     map[dataplane.EndpointID]*endpoint
	joins   map[joinKey]joinRec
	nforks  int
	workers []*worker
	next    int // round robin over workers
	wg      sync.WaitGroup
	// retired holds the counters of removed endpoints and forks, so engine
	// totals cover everything since the engine started.
	retired struct{ copied, muted, relayed, dropped, authFailures uint64 }
	// sendErrors counts datagrams sendmmsg refused (full socket buffer or no
	// route); they are not counted as sent anywhere.
	sendErrors atomic.Uint64
}

// counter is a packet and byte counter written by workers.
type counter struct{ packets, bytes atomic.Uint64 }

func (c *counter) add(n int) {
	c.packets.Add(1)
	c.bytes.Add(uint64(n))
}

func (c *counter) addN(packets, bytes int) {
	c.packets.Add(uint64(packets))
	c.bytes.Add(uint64(bytes))
}

// sock is one media socket of an endpoint.
type sock struct {
	fd   int
	ep   *endpoint
	kind kind // kindRTP or kindRTCP: which port of the pair
}

// Indices of an endpoint's two sockets and remotes.
const (
	rtpIdx  = 0
	rtcpIdx = 1
)

// endpoint is an RTP/RTCP port pair. Fields marked "all workers" are written
// only with every worker's mutex held and read by workers under their own.
type endpoint struct {
	id    dataplane.EndpointID
	local netip.AddrPort
	v6    bool
	latch bool
	// tapPT is EndpointConfig.TapPayloadType: relayed into, only that
	// payload type's RTP.
	tapPT uint8
	pair  int // index in the port pool
	w     *worker
	socks [2]*sock

	// remote is the RTP and RTCP destination; other workers read it while the
	// owning worker latches, hence atomic.
	remote [2]atomic.Pointer[peer]
	// latched is owned by the endpoint's worker (and "all workers" writers).
	latched [2]bool
	// signalled is the address of the remote given by SetRemote or
	// OpenEndpoint (invalid: none), which the latch policy compares sources
	// with; seen counts each socket's packets offered to the policy since
	// (owned like latched).
	signalled netip.Addr
	seen      [2]uint32

	// all workers:
	targets []*endpoint        // where what this endpoint receives is relayed
	forks   [2]*fork           // by direction-1
	sources map[*fork]struct{} // forks whose copies leave from this endpoint
	joined  map[joinKey]struct{}

	rx, tx           counter
	relayed, dropped atomic.Uint64

	// cipher, when set, opens what arrives and seals what is sent to the
	// remote (SRTP); authFailures counts packets it refused as forged.
	cipher       dataplane.Cipher
	authFailures atomic.Uint64
}

// fork copies one direction of an endpoint.
type fork struct {
	ep  *endpoint
	dir dataplane.Direction
	src *endpoint
	rec [2]*peer
	// mode is loaded per packet by workers; see the package doc for how
	// SetForkMode makes a change final.
	mode          atomic.Uint32
	copied, muted counter
}

type joinKey struct{ lo, hi dataplane.EndpointID }

func keyFor(a, b dataplane.EndpointID) joinKey {
	if a > b {
		a, b = b, a
	}
	return joinKey{a, b}
}

type joinRec struct {
	from, to dataplane.EndpointID
	d        dataplane.Duplex
}

var _ dataplane.Engine = (*Engine)(nil)

// New starts an engine with cfg's workers and no endpoints.
func New(cfg Config) (*Engine, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	e := &Engine{
		log:   cfg.Logger,
		cfg:   cfg,
		ports: newPortPool(cfg.PortRange),
		eps:   make(map[dataplane.EndpointID]*endpoint),
		joins: make(map[joinKey]joinRec),
	}
	gso := !cfg.DisableGSO && gsoSupported()
	for range cfg.Workers {
		w, err := newWorker(e, cfg.Batch, gso, gso && cfg.GSORelays)
		if err != nil {
			e.stopWorkers()
			return nil, fmt.Errorf("start userspace engine: %w", err)
		}
		e.workers = append(e.workers, w)
	}
	for _, w := range e.workers {
		e.wg.Add(1)
		go func() {
			defer e.wg.Done()
			w.run()
		}()
	}
	e.log.Info("userspace data plane started", "workers", cfg.Workers, "batch", cfg.Batch,
		"udp_gso", gso, "udp_gso_relays", gso && cfg.GSORelays, "port_min", cfg.PortRange.Min, "port_max", cfg.PortRange.Max)
	return e, nil
}

// Name returns "userspace".
func (e *Engine) Name() string { return "userspace" }

// lockWorkers takes every worker's mutex: no batch is in flight until
// unlockWorkers. Callers hold e.mu, which orders concurrent callers.
func (e *Engine) lockWorkers() {
	for _, w := range e.workers {
		w.mu.Lock()
	}
}

func (e *Engine) unlockWorkers() {
	for _, w := range e.workers {
		w.mu.Unlock()
	}
}

// barrier waits until every batch that was in flight when it was called has
// been sent.
func (e *Engine) barrier() {
	for _, w := range e.workers {
		//lint:ignore SA2001 the empty critical section is the barrier (package doc)
		w.mu.Lock()
		w.mu.Unlock()
	}
}

func (e *Engine) endpoint(id dataplane.EndpointID) (*endpoint, error) {
	if e.closed {
		return nil, dataplane.ErrClosed
	}
	ep, ok := e.eps[id]
	if !ok {
		return nil, fmt.Errorf("endpoint %d: %w", id, dataplane.ErrNotFound)
	}
	return ep, nil
}

// OpenEndpoint binds an RTP/RTCP pair on cfg.LocalIP and starts receiving.
func (e *Engine) OpenEndpoint(cfg dataplane.EndpointConfig) (dataplane.EndpointInfo, error) {
	if !cfg.LocalIP.IsValid() || cfg.LocalIP.IsUnspecified() {
		return dataplane.EndpointInfo{}, fmt.Errorf("open endpoint: local IP %q: %w", cfg.LocalIP, dataplane.ErrInvalid)
	}
	if cfg.TapPayloadType > 127 {
		return dataplane.EndpointInfo{}, fmt.Errorf("open endpoint: tap payload type %d (want 1-127): %w", cfg.TapPayloadType, dataplane.ErrInvalid)
	}
	ip := cfg.LocalIP.Unmap()
	v6 := ip.Is6()
	if cfg.Remote.IsValid() {
		if err := checkRemote(cfg.Remote, v6); err != nil {
			return dataplane.EndpointInfo{}, fmt.Errorf("open endpoint: %w", err)
		}
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return dataplane.EndpointInfo{}, fmt.Errorf("open endpoint: %w", dataplane.ErrClosed)
	}
	pair, fds, err := e.ports.bind(ip, e.cfg.SocketBuffer)
	if err != nil {
		return dataplane.EndpointInfo{}, fmt.Errorf("open endpoint on %s: %w", ip, err)
	}
	e.nextID++
	ep := &endpoint{
		id:      e.nextID,
		local:   netip.AddrPortFrom(ip, e.ports.port(pair)),
		v6:      v6,
		latch:   cfg.Latch,
		tapPT:   cfg.TapPayloadType,
		pair:    pair,
		w:       e.workers[e.next%len(e.workers)],
		sources: make(map[*fork]struct{}),
		joined:  make(map[joinKey]struct{}),
		cipher:  cfg.Cipher,
	}
	e.next++
	ep.socks[rtpIdx] = &sock{fd: fds[0], ep: ep, kind: kindRTP}
	ep.socks[rtcpIdx] = &sock{fd: fds[1], ep: ep, kind: kindRTCP}
	if cfg.Remote.IsValid() {
		ep.setRemote(cfg.Remote)
	}
	if err := ep.w.add(ep.socks[:]); err != nil {
		unix.Close(fds[0])
		unix.Close(fds[1])
		e.ports.release(pair)
		return dataplane.EndpointInfo{}, fmt.Errorf("open endpoint on %s: %w", ip, err)
	}
	e.eps[ep.id] = ep
	info := dataplane.EndpointInfo{ID: ep.id, Local: ep.local}
	if r := ep.remote[rtpIdx].Load(); r != nil {
		info.Remote = r.ap
	}
	return info, nil
}

func checkRemote(ap netip.AddrPort, v6 bool) error {
	a := ap.Addr().Unmap()
	if a.Is6() != v6 || a.IsUnspecified() || ap.Port() == 0 || ap.Port() == 65535 {
		return fmt.Errorf("remote %s for an IPv%d endpoint: %w", ap, map[bool]int{false: 4, true: 6}[v6], dataplane.ErrInvalid)
	}
	return nil
}

// setRemote installs the RTP remote and its RTCP companion (RFC 3550 §11:
// RTCP on the next higher port) and forgets any latching.
func (ep *endpoint) setRemote(ap netip.AddrPort) {
	ap = netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
	ep.remote[rtpIdx].Store(newPeer(ap, ep.v6))
	ep.remote[rtcpIdx].Store(newPeer(netip.AddrPortFrom(ap.Addr(), ap.Port()+1), ep.v6))
	ep.latched = [2]bool{}
	ep.signalled = ap.Addr()
	ep.seen = [2]uint32{}
}

// SetLatched makes the endpoint latched to src on its RTP (rtcp false) or
// RTCP socket, as if that socket had latched to it. The eBPF engine calls it
// when its programs latch in the kernel, where the packet may never reach
// the socket, so that what this engine still sends to the endpoint (echo, a
// join relayed here) goes where the kernel's relays go.
func (e *Engine) SetLatched(id dataplane.EndpointID, rtcp bool, src netip.AddrPort) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	ep, err := e.endpoint(id)
	if err != nil {
		return fmt.Errorf("set latched: %w", err)
	}
	src = netip.AddrPortFrom(src.Addr().Unmap(), src.Port())
	if err := checkRemote(src, ep.v6); err != nil {
		return fmt.Errorf("set latched of endpoint %d: %w", id, err)
	}
	idx := rtpIdx
	if rtcp {
		idx = rtcpIdx
	}
	e.lockWorkers()
	ep.latchTo(idx, src)
	e.unlockWorkers()
	return nil
}

// LatchPolicy is the policy the engine latches endpoints by.
func (e *Engine) LatchPolicy() dataplane.LatchPolicy { return e.cfg.LatchPolicy }

// PortRange is the range the engine's endpoints take their port pairs from;
// it never holds more endpoints than the range has pairs.
func (e *Engine) PortRange() dataplane.PortRange { return e.cfg.PortRange }

// SetRemote sets the remote RTP address and resets latching.
func (e *Engine) SetRemote(id dataplane.EndpointID, remote netip.AddrPort) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	ep, err := e.endpoint(id)
	if err != nil {
		return fmt.Errorf("set remote: %w", err)
	}
	if err := checkRemote(remote, ep.v6); err != nil {
		return fmt.Errorf("set remote of endpoint %d: %w", id, err)
	}
	e.lockWorkers()
	ep.setRemote(remote)
	e.unlockWorkers()
	return nil
}

// CloseEndpoint removes the endpoint's joins, its forks and the forks whose
// copies leave from it, then closes its sockets and frees its ports.
func (e *Engine) CloseEndpoint(id dataplane.EndpointID) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	ep, err := e.endpoint(id)
	if err != nil {
		return fmt.Errorf("close endpoint: %w", err)
	}
	e.lockWorkers()
	e.detach(ep)
	ep.w.remove(ep.socks[:])
	e.unlockWorkers()
	// No worker can reach the sockets any more: closing them cannot race a
	// send, and the fd numbers may be reused at once.
	e.closeSockets(ep)
	return nil
}

// detach removes everything that refers to ep. All workers are locked.
func (e *Engine) detach(ep *endpoint) {
	for k := range ep.joined {
		e.dropJoin(k)
	}
	for _, f := range ep.forks {
		if f != nil {
			e.dropFork(f)
		}
	}
	for f := range ep.sources {
		e.dropFork(f)
	}
	e.retired.relayed += ep.relayed.Load()
	e.retired.dropped += ep.dropped.Load()
	e.retired.authFailures += ep.authFailures.Load()
	delete(e.eps, ep.id)
}

func (e *Engine) closeSockets(ep *endpoint) {
	for _, s := range ep.socks {
		unix.Close(s.fd)
	}
	e.ports.release(ep.pair)
}

// Join relays between two endpoints.
func (e *Engine) Join(from, to dataplane.EndpointID, d dataplane.Duplex) error {
	if d != dataplane.Full && d != dataplane.Half {
		return fmt.Errorf("join %d and %d: duplex %s: %w", from, to, d, dataplane.ErrInvalid)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	a, err := e.endpoint(from)
	if err != nil {
		return fmt.Errorf("join: %w", err)
	}
	b, err := e.endpoint(to)
	if err != nil {
		return fmt.Errorf("join: %w", err)
	}
	k := keyFor(from, to)
	if _, ok := e.joins[k]; ok {
		return fmt.Errorf("join %d and %d: %w", from, to, dataplane.ErrExists)
	}
	e.lockWorkers()
	e.joins[k] = joinRec{from: from, to: to, d: d}
	a.joined[k] = struct{}{}
	b.joined[k] = struct{}{}
	a.targets = appendTarget(a.targets, b)
	if d == dataplane.Full && a != b {
		b.targets = appendTarget(b.targets, a)
	}
	e.unlockWorkers()
	return nil
}

// appendTarget returns a new slice, never modifying one a reader may hold.
func appendTarget(ts []*endpoint, t *endpoint) []*endpoint {
	out := make([]*endpoint, 0, len(ts)+1)
	return append(append(out, ts...), t)
}

func removeTarget(ts []*endpoint, t *endpoint) []*endpoint {
	out := make([]*endpoint, 0, len(ts))
	for _, x := range ts {
		if x != t {
			out = append(out, x)
		}
	}
	return out
}

// Unjoin removes the join between a and b, whichever way it was made.
func (e *Engine) Unjoin(a, b dataplane.EndpointID) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return fmt.Errorf("unjoin: %w", dataplane.ErrClosed)
	}
	k := keyFor(a, b)
	if _, ok := e.joins[k]; !ok {
		return fmt.Errorf("unjoin %d and %d: %w", a, b, dataplane.ErrNotFound)
	}
	e.lockWorkers()
	e.dropJoin(k)
	e.unlockWorkers()
	return nil
}

// dropJoin removes a join. All workers are locked.
func (e *Engine) dropJoin(k joinKey) {
	j := e.joins[k]
	delete(e.joins, k)
	a, b := e.eps[j.from], e.eps[j.to]
	delete(a.joined, k)
	delete(b.joined, k)
	a.targets = removeTarget(a.targets, b)
	b.targets = removeTarget(b.targets, a)
}

// AddFork starts copying one direction of ep to cfg.Recorder from cfg.Source.
func (e *Engine) AddFork(id dataplane.EndpointID, dir dataplane.Direction, cfg dataplane.ForkConfig) error {
	if !dir.Valid() {
		return fmt.Errorf("add fork to endpoint %d: direction %s: %w", id, dir, dataplane.ErrInvalid)
	}
	mode := cfg.Mode
	if mode == 0 {
		mode = dataplane.Active
	}
	if !mode.Valid() {
		return fmt.Errorf("add fork to endpoint %d: mode %s: %w", id, cfg.Mode, dataplane.ErrInvalid)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	ep, err := e.endpoint(id)
	if err != nil {
		return fmt.Errorf("add fork: %w", err)
	}
	src, err := e.endpoint(cfg.Source)
	if err != nil {
		return fmt.Errorf("add fork: source: %w", err)
	}
	if !cfg.Recorder.IsValid() {
		return fmt.Errorf("add fork to endpoint %d: no recorder: %w", id, dataplane.ErrInvalid)
	}
	if err := checkRemote(cfg.Recorder, src.v6); err != nil {
		return fmt.Errorf("add fork to endpoint %d: recorder: %w", id, err)
	}
	if ep.forks[dir-1] != nil {
		return fmt.Errorf("add %s fork to endpoint %d: %w", dir, id, dataplane.ErrExists)
	}
	r := netip.AddrPortFrom(cfg.Recorder.Addr().Unmap(), cfg.Recorder.Port())
	f := &fork{ep: ep, dir: dir, src: src, rec: [2]*peer{
		newPeer(r, src.v6),
		newPeer(netip.AddrPortFrom(r.Addr(), r.Port()+1), src.v6),
	}}
	f.mode.Store(uint32(mode))
	e.lockWorkers()
	ep.forks[dir-1] = f
	src.sources[f] = struct{}{}
	e.nforks++
	e.unlockWorkers()
	return nil
}

func (e *Engine) fork(id dataplane.EndpointID, dir dataplane.Direction) (*fork, error) {
	if !dir.Valid() {
		return nil, fmt.Errorf("endpoint %d direction %s: %w", id, dir, dataplane.ErrInvalid)
	}
	ep, err := e.endpoint(id)
	if err != nil {
		return nil, err
	}
	f := ep.forks[dir-1]
	if f == nil {
		return nil, fmt.Errorf("%s fork of endpoint %d: %w", dir, id, dataplane.ErrNotFound)
	}
	return f, nil
}

// SetForkMode mutes or unmutes a fork. When it returns, no copy made under
// the old mode is still to leave (see the package doc).
func (e *Engine) SetForkMode(id dataplane.EndpointID, dir dataplane.Direction, m dataplane.Mode) error {
	if !m.Valid() {
		return fmt.Errorf("set fork mode: mode %s: %w", m, dataplane.ErrInvalid)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	f, err := e.fork(id, dir)
	if err != nil {
		return fmt.Errorf("set fork mode: %w", err)
	}
	// The one atomic update; workers load it per packet.
	f.mode.Store(uint32(m))
	// The flush: batches that may have loaded the old mode finish sending
	// before we can take their worker's mutex.
	e.barrier()
	return nil
}

// RemoveFork stops and forgets a fork.
func (e *Engine) RemoveFork(id dataplane.EndpointID, dir dataplane.Direction) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	f, err := e.fork(id, dir)
	if err != nil {
		return fmt.Errorf("remove fork: %w", err)
	}
	e.lockWorkers()
	e.dropFork(f)
	e.unlockWorkers()
	return nil
}

// dropFork removes a fork. All workers are locked.
func (e *Engine) dropFork(f *fork) {
	if f.ep.forks[f.dir-1] != f {
		return // already removed through its other endpoint
	}
	f.ep.forks[f.dir-1] = nil
	delete(f.src.sources, f)
	e.nforks--
	e.retired.copied += f.copied.packets.Load()
	e.retired.muted += f.muted.packets.Load()
}

// EndpointStats returns the counters of one endpoint, including every packet
// of batches finished before the call.
func (e *Engine) EndpointStats(id dataplane.EndpointID) (dataplane.EndpointStats, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	ep, err := e.endpoint(id)
	if err != nil {
		return dataplane.EndpointStats{}, fmt.Errorf("endpoint stats: %w", err)
	}
	e.lockWorkers()
	s := dataplane.EndpointStats{
		RxPackets: ep.rx.packets.Load(), RxBytes: ep.rx.bytes.Load(),
		TxPackets: ep.tx.packets.Load(), TxBytes: ep.tx.bytes.Load(),
		Relayed: ep.relayed.Load(), Dropped: ep.dropped.Load(),
		Latched: ep.latched[rtpIdx],
		SRTP:    ep.cipher != nil, AuthFailures: ep.authFailures.Load(),
	}
	if r := ep.remote[rtpIdx].Load(); r != nil {
		s.Remote = r.ap
	}
	e.unlockWorkers()
	return s, nil
}

// ForkStats returns the counters of one fork.
func (e *Engine) ForkStats(id dataplane.EndpointID, dir dataplane.Direction) (dataplane.ForkStats, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	f, err := e.fork(id, dir)
	if err != nil {
		return dataplane.ForkStats{}, fmt.Errorf("fork stats: %w", err)
	}
	e.barrier()
	return dataplane.ForkStats{
		CopiedPackets: f.copied.packets.Load(), CopiedBytes: f.copied.bytes.Load(),
		MutedPackets: f.muted.packets.Load(), MutedBytes: f.muted.bytes.Load(),
	}, nil
}

// Stats returns engine-wide counters; it works after Close too.
func (e *Engine) Stats() dataplane.EngineStats {
	e.mu.Lock()
	defer e.mu.Unlock()
	if !e.closed {
		e.barrier()
	}
	s := dataplane.EngineStats{
		Engine:        e.Name(),
		Endpoints:     len(e.eps),
		Joins:         len(e.joins),
		Forks:         e.nforks,
		PortsFree:     e.ports.free(),
		CopiedPackets: e.retired.copied,
		MutedPackets:  e.retired.muted,
		Relayed:       e.retired.relayed,
		Dropped:       e.retired.dropped,
		AuthFailures:  e.retired.authFailures,
	}
	for _, ep := range e.eps {
		s.Relayed += ep.relayed.Load()
		s.Dropped += ep.dropped.Load()
		s.AuthFailures += ep.authFailures.Load()
		if ep.cipher != nil {
			s.SRTPEndpoints++
		}
		for _, f := range ep.forks {
			if f != nil {
				s.CopiedPackets += f.copied.packets.Load()
				s.MutedPackets += f.muted.packets.Load()
			}
		}
	}
	return s
}

// SendErrors is the number of datagrams (relays or copies) the kernel refused
// to send, for example because a socket buffer was full.
func (e *Engine) SendErrors() uint64 { return e.sendErrors.Load() }

// Close stops the workers, closes every socket and frees every port. Closing
// twice is harmless.
func (e *Engine) Close() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return nil
	}
	e.closed = true
	e.stopWorkers()
	for _, ep := range e.eps {
		e.detach(ep)
		e.closeSockets(ep)
	}
	e.log.Info("userspace data plane stopped", "send_errors", e.sendErrors.Load())
	return nil
}

// stopWorkers stops every worker goroutine, waits for them and closes their
// epoll and event descriptors.
func (e *Engine) stopWorkers() {
	var errs []error
	for _, w := range e.workers {
		if err := w.stop(); err != nil {
			errs = append(errs, err)
		}
	}
	e.wg.Wait()
	for _, w := range e.workers {
		w.closeFDs()
	}
	if err := errors.Join(errs...); err != nil {
		e.log.Error("stop userspace workers", "err", err)
	}
}

// gsoSupported reports whether the kernel knows UDP_SEGMENT (Linux 4.18+).
// Whether a given route can use it is learnt from the first send.
func gsoSupported() bool {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return false
	}
	defer unix.Close(fd)
	_, err = unix.GetsockoptInt(fd, unix.SOL_UDP, unix.UDP_SEGMENT)
	return err == nil
}
