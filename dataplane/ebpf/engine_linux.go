//go:build linux && (386 || amd64 || arm || arm64 || loong64 || mips64le || mipsle || ppc64le || riscv64)

package ebpf

import (
	"errors"
	"fmt"
	"log/slog"
	"math/bits"
	"net"
	"net/netip"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"github.com/cilium/ebpf/ringbuf"
	"golang.org/x/sys/unix"

	"github.com/recfork/recfork/dataplane"
)

// Must be in sync with bpf/rtpfork.h.
const (
	modeActive   = 1
	flagResolved = 1
	flagRemote   = 2
	statMax      = 16
	familyV4     = 4
	familyV6     = 6
)

// Engine is the eBPF data-plane engine. It implements dataplane.Engine: media
// endpoints and joins stay with Config.Media, forks are entries of the
// kernel's stream table.
type Engine struct {
	media dataplane.Engine
	log   *slog.Logger
	cfg   Config

	objs rtpforkObjects
	// attached are the interfaces the programs are attached to, by name;
	// the resolver goroutine re-attaches one that is deleted and created
	// again. Only New and that goroutine touch them before release.
	attached []*attachment
	// netns is the engine's network namespace, for attaching from a
	// goroutine that does not run in it.
	netns *os.File
	// barrier is an array of maps: updating it makes the kernel wait for
	// every running BPF program to finish (synchronize_rcu), which turns a
	// map write into "no packet that saw the old value is still in flight".
	barrier, barrierInner *ebpf.Map
	ncpu                  int

	nl    *rtnl
	watch *watcher
	wg    sync.WaitGroup
	stop  chan struct{}
	// kick asks the resolver goroutine to re-resolve every fork.
	kick chan struct{}

	mu     sync.Mutex
	closed bool
	// memo answers relayValueLocked during a refresh pass.
	memo      *hopMemo
	endpoints map[dataplane.EndpointID]*endpoint
	forks     map[forkID]*fork
	// sourced indexes forks by their source endpoint (linkForkLocked).
	sourced map[dataplane.EndpointID]map[forkID]struct{}
	// entries is what the stream table holds per key (see streamEntry).
	entries map[rtpforkStreamKey]streamEntry
	// sizes are the kernel tables' capacities; freeSlots and nextSlot
	// allocate counter slots up to sizes.slots.
	sizes     tableSizes
	freeSlots []uint32
	nextSlot  uint32
	// gone totals the counters of removed forks, for Stats.
	goneCopied, goneMuted uint64
	// out holds the joins as Media applies them: from -> the endpoints
	// that send what from receives. relays are the directions the kernel
	// relays; relayGone totals removed relays' counts per endpoint.
	out    map[dataplane.EndpointID]map[dataplane.EndpointID]bool
	relays map[relayID]*relay
	// joinsOf and relaysOf index out and relays by both their endpoints.
	joinsOf, relaysOf pairIndex
	relayGone         map[dataplane.EndpointID]dataplane.EndpointStats
	goneRelayed       uint64
	relayWhy          map[relayID]string
	relayLogged       map[relayID]bool
	// changed is closed and replaced whenever the kernel reports a change of
	// routes, neighbours or links; AddFork waits on it for a resolution.
	changed chan struct{}
	// latchIndex maps latch-table keys to their endpoint's socket; latches
	// reads the programs' latch reports.
	latchIndex map[rtpforkStreamKey]latchRef
	latches    *ringbuf.Reader
}

// endpoint is what the engine knows of one of Media's endpoints.
type endpoint struct {
	local netip.AddrPort
	// remote is the signalled remote; with latch false it is the only
	// source Media accepts, and the copies follow the same rule.
	remote netip.AddrPort
	latch  bool
	// tapPT is EndpointConfig.TapPayloadType: relays into a tap are Media's.
	tapPT uint8
	// guarded endpoints have latch-table entries under latchKeys (RTP,
	// RTCP); guardGone totals what replaced entries had dropped.
	guarded   bool
	latchKeys [2]rtpforkStreamKey
	guardGone uint64
	// srtp endpoints (opened with a Cipher) are relayed, forked and
	// guarded by Media only: the kernel sees their packets encrypted.
	srtp bool
}

// attachment is one interface and its two TCX links.
type attachment struct {
	name    string
	ifindex int // 0 while the interface is missing
	links   []link.Link
}

type forkID struct {
	ep  dataplane.EndpointID
	dir dataplane.Direction
}

type fork struct {
	// media is set for a fork the kernel path cannot carry (a loopback
	// endpoint, a recorder on this host, a non-Ethernet route): Media makes
	// its copies instead, so each packet is still copied once.
	media    bool
	why      string // why media is set, for MediaPaths
	source   dataplane.EndpointID
	recorder netip.AddrPort
	srcAddr  netip.AddrPort
	key      rtpforkStreamKey
	val      rtpforkStreamValue
	// settled holds the counters read when the fork was removed.
	settled dataplane.ForkStats
}

var _ dataplane.Engine = (*Engine)(nil)

// New loads the fork programs, attaches them to cfg.Interfaces and starts
// following route and neighbour changes. Everything it creates belongs to the
// network namespace of the calling thread. It fails with an error wrapping
// dataplane.ErrNotSupported when the kernel or the privileges cannot carry
// the engine; the caller may then fall back to the userspace engine. On any
// failure cfg.Media is left open for the caller to use or close.
func New(cfg Config) (*Engine, error) {
	if cfg.Media == nil {
		return nil, fmt.Errorf("new ebpf engine: Config.Media is required: %w", dataplane.ErrInvalid)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.ResolveTimeout <= 0 {
		cfg.ResolveTimeout = 3 * time.Second
	}
	if cfg.NeighRefresh <= 0 {
		cfg.NeighRefresh = 30 * time.Second
	}
	e := &Engine{
		media:       cfg.Media,
		log:         cfg.Logger,
		cfg:         cfg,
		stop:        make(chan struct{}),
		kick:        make(chan struct{}, 1),
		endpoints:   make(map[dataplane.EndpointID]*endpoint),
		forks:       make(map[forkID]*fork),
		sourced:     make(map[dataplane.EndpointID]map[forkID]struct{}),
		out:         make(map[dataplane.EndpointID]map[dataplane.EndpointID]bool),
		relays:      make(map[relayID]*relay),
		joinsOf:     make(pairIndex),
		relaysOf:    make(pairIndex),
		entries:     make(map[rtpforkStreamKey]streamEntry),
		relayGone:   make(map[dataplane.EndpointID]dataplane.EndpointStats),
		relayWhy:    make(map[relayID]string),
		relayLogged: make(map[relayID]bool),
		changed:     make(chan struct{}),
		latchIndex:  make(map[rtpforkStreamKey]latchRef),
	}
	ns, err := os.Open(fmt.Sprintf("/proc/%d/task/%d/ns/net", os.Getpid(), unix.Gettid()))
	if err != nil {
		return nil, fmt.Errorf("open the network namespace: %w", err)
	}
	e.netns = ns
	if err := e.load(); err != nil {
		e.release()
		return nil, err
	}
	if err := e.attach(cfg.Interfaces); err != nil {
		e.release()
		return nil, err
	}
	if e.nl, err = openRTNL(); err != nil {
		e.release()
		return nil, err
	}
	if e.watch, err = openWatcher(); err != nil {
		e.release()
		return nil, err
	}
	if e.latches, err = ringbuf.NewReader(e.objs.LatchEvents); err != nil {
		e.release()
		return nil, unsupported("read latch events", err)
	}
	e.wg.Add(3)
	go func() { defer e.wg.Done(); e.readLatches(e.latches) }()
	go func() { defer e.wg.Done(); e.watch.run(e.onChange) }()
	go func() { defer e.wg.Done(); e.resolver() }()
	return e, nil
}

// unsupported wraps err with dataplane.ErrNotSupported and says what is
// missing, so that the --dataplane flag's error names the cause.
func unsupported(op string, err error) error {
	why := ""
	switch {
	case errors.Is(err, unix.EPERM), errors.Is(err, unix.EACCES):
		why = "needs CAP_BPF and CAP_NET_ADMIN (run as root)"
	case errors.Is(err, ebpf.ErrNotSupported), errors.Is(err, unix.EINVAL):
		why = "the kernel lacks TCX links or a BPF feature used here (needs Linux 6.6 or newer)"
	case errors.Is(err, unix.ENOSYS):
		why = "the kernel has no bpf() system call"
	}
	if why != "" {
		return fmt.Errorf("%s: %w: %s: %w", op, dataplane.ErrNotSupported, why, err)
	}
	return fmt.Errorf("%s: %w: %w", op, dataplane.ErrNotSupported, err)
}

func (e *Engine) load() error {
	spec, err := loadRtpfork()
	if err != nil {
		return fmt.Errorf("load fork programs: %w", err)
	}
	e.sizes = sizesFor(mediaEndpoints(e.media))
	if err := e.sizes.size(spec); err != nil {
		return err
	}
	if err := spec.LoadAndAssign(&e.objs, nil); err != nil {
		var ve *ebpf.VerifierError
		if errors.As(err, &ve) {
			return unsupported("load fork programs (verifier rejected them)", err)
		}
		return unsupported("load fork programs", err)
	}
	n, err := ebpf.PossibleCPU()
	if err != nil {
		return fmt.Errorf("count possible cpus: %w", err)
	}
	e.ncpu = n
	inner := &ebpf.MapSpec{Type: ebpf.Array, KeySize: 4, ValueSize: 4, MaxEntries: 1}
	if e.barrierInner, err = ebpf.NewMap(inner); err != nil {
		return unsupported("create barrier map", err)
	}
	if e.barrier, err = ebpf.NewMap(&ebpf.MapSpec{Type: ebpf.ArrayOfMaps, KeySize: 4, ValueSize: 4, MaxEntries: 1, InnerMap: inner}); err != nil {
		return unsupported("create barrier map", err)
	}
	return nil
}

func (e *Engine) attach(names []string) error {
	if len(names) == 0 {
		ifs, err := net.Interfaces()
		if err != nil {
			return fmt.Errorf("list interfaces: %w", err)
		}
		for _, ifc := range ifs {
			if ifc.Flags&net.FlagUp != 0 && ifc.Flags&net.FlagLoopback == 0 && len(ifc.HardwareAddr) == 6 {
				names = append(names, ifc.Name)
			}
		}
		if len(names) == 0 {
			return fmt.Errorf("attach fork programs: no Ethernet interface is up: %w", dataplane.ErrNotSupported)
		}
	}
	for _, name := range names {
		ifc, err := net.InterfaceByName(name)
		if err != nil {
			return fmt.Errorf("attach fork programs to %s: %w", name, err)
		}
		a := &attachment{name: name}
		e.attached = append(e.attached, a)
		if err := e.attachTo(a, ifc.Index); err != nil {
			return err
		}
		e.log.Info("ebpf fork programs attached", "interface", name, "ifindex", ifc.Index)
	}
	return nil
}

// attachTo attaches both programs to ifindex; it must run in the engine's
// namespace, where the kernel resolves the index.
func (e *Engine) attachTo(a *attachment, ifindex int) error {
	for _, h := range []struct {
		prog *ebpf.Program
		at   ebpf.AttachType
		hook string
	}{{e.objs.RtpforkIngress, ebpf.AttachTCXIngress, "ingress"}, {e.objs.RtpforkEgress, ebpf.AttachTCXEgress, "egress"}} {
		l, err := link.AttachTCX(link.TCXOptions{Interface: ifindex, Program: h.prog, Attach: h.at})
		if err != nil {
			return unsupported(fmt.Sprintf("attach tcx %s %s", h.hook, a.name), err)
		}
		a.links = append(a.links, l)
	}
	a.ifindex = ifindex
	return nil
}

func (a *attachment) detach() error {
	var errs []error
	for _, l := range a.links {
		errs = append(errs, l.Close())
	}
	a.links, a.ifindex = nil, 0
	return errors.Join(errs...)
}

// inNetns runs fn on a thread switched into the engine's namespace. The
// thread is never unlocked: it ends with its goroutine instead of going
// back to the scheduler inside another namespace.
func (e *Engine) inNetns(fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		if err := unix.Setns(int(e.netns.Fd()), unix.CLONE_NEWNET); err != nil {
			errc <- fmt.Errorf("enter the engine's network namespace: %w", err)
			return
		}
		errc <- fn()
	}()
	return <-errc
}

// reattach follows interfaces that were deleted and created again: their
// TCX links died with the old device.
func (e *Engine) reattach() {
	for _, a := range e.attached {
		idx, err := e.nl.linkIndex(a.name)
		if err != nil {
			if a.ifindex != 0 {
				_ = a.detach()
				e.log.Warn("ebpf fork programs lost their interface", "interface", a.name)
			}
			continue
		}
		if idx == a.ifindex {
			continue
		}
		_ = a.detach()
		if err := e.inNetns(func() error { return e.attachTo(a, idx) }); err != nil {
			_ = a.detach()
			e.log.Warn("ebpf fork programs not re-attached", "interface", a.name, "error", err.Error())
			continue
		}
		e.log.Info("ebpf fork programs re-attached", "interface", a.name, "ifindex", idx)
	}
}

// release frees every kernel object and socket; it is safe on a partly built
// engine.
func (e *Engine) release() error {
	var errs []error
	if e.watch != nil {
		errs = append(errs, e.watch.Close())
	}
	if e.latches != nil {
		errs = append(errs, e.latches.Close())
	}
	close(e.stop)
	e.wg.Wait()
	for _, a := range e.attached {
		errs = append(errs, a.detach())
	}
	e.attached = nil
	if e.netns != nil {
		errs = append(errs, e.netns.Close())
	}
	if e.nl != nil {
		errs = append(errs, e.nl.Close())
	}
	errs = append(errs, e.objs.Close())
	for _, m := range []*ebpf.Map{e.barrier, e.barrierInner} {
		if m != nil {
			errs = append(errs, m.Close())
		}
	}
	return errors.Join(errs...)
}

// Name implements dataplane.Engine.
func (e *Engine) Name() string { return "ebpf" }

// OpenEndpoint implements dataplane.Engine by delegating to Media.
func (e *Engine) OpenEndpoint(cfg dataplane.EndpointConfig) (dataplane.EndpointInfo, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return dataplane.EndpointInfo{}, dataplane.ErrClosed
	}
	info, err := e.media.OpenEndpoint(cfg)
	if err != nil {
		return info, err
	}
	ep := &endpoint{local: info.Local, remote: unmap(cfg.Remote), latch: cfg.Latch, srtp: cfg.Cipher != nil, tapPT: cfg.TapPayloadType}
	e.endpoints[info.ID] = ep
	if ep.srtp {
		e.log.Info("srtp endpoint: relays and forks in userspace", "endpoint", uint64(info.ID), "local", info.Local.String())
	}
	if err := e.openLatchLocked(info.ID, ep); err != nil {
		// Unguarded, the kernel would relay what Media refuses.
		_ = e.closeLatchLocked(ep)
		delete(e.endpoints, info.ID)
		_ = e.media.CloseEndpoint(info.ID)
		return dataplane.EndpointInfo{}, fmt.Errorf("open endpoint: %w", err)
	}
	return info, nil
}

// SetRemote implements dataplane.Engine by delegating to Media; an inbound
// fork of the endpoint then copies from the new remote only (without Latch).
func (e *Engine) SetRemote(id dataplane.EndpointID, remote netip.AddrPort) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return dataplane.ErrClosed
	}
	if err := e.media.SetRemote(id, remote); err != nil {
		return err
	}
	ep, ok := e.endpoints[id]
	if !ok {
		return nil
	}
	ep.remote = unmap(remote)
	if err := e.writeLatchLocked(id, ep); err != nil {
		return fmt.Errorf("set remote %d: %w", id, err)
	}
	if f, ok := e.forks[forkID{id, dataplane.Inbound}]; ok && !f.media {
		nv := f.val
		ep.applyRemote(&nv)
		if nv != f.val {
			if err := e.putForkLocked(f.key, &nv); err != nil {
				return fmt.Errorf("set remote %d: update inbound fork: %w", id, err)
			}
			f.val = nv
		}
	}
	return e.syncRelaysLocked(true, id)
}

func unmap(ap netip.AddrPort) netip.AddrPort {
	if !ap.IsValid() {
		return ap
	}
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
}

// applyRemote sets or clears the source rule of an inbound fork's value.
func (ep *endpoint) applyRemote(v *rtpforkStreamValue) {
	v.Flags &^= flagRemote
	v.RemAddr, v.RemPort = [16]byte{}, 0
	r := ep.remote
	if ep.latch || !r.IsValid() || r.Addr().Is4() != (v.Family == familyV4) {
		return
	}
	v.Flags |= flagRemote
	copy(v.RemAddr[:], r.Addr().AsSlice())
	v.RemPort = r.Port()
}

// CloseEndpoint implements dataplane.Engine: it removes the endpoint's forks
// (and the forks whose copies leave from it) from the kernel, then closes the
// endpoint in Media.
func (e *Engine) CloseEndpoint(id dataplane.EndpointID) error {
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		return dataplane.ErrClosed
	}
	var errs []error
	// Relays first: what still arrives goes to Media until it closes.
	e.forgetLocked(id)
	if err := e.syncRelaysLocked(true, id); err != nil {
		errs = append(errs, err)
	}
	delete(e.relayGone, id)
	if ep := e.endpoints[id]; ep != nil {
		if err := e.closeLatchLocked(ep); err != nil {
			errs = append(errs, err)
		}
	}
	// Forget the endpoint first, so no AddFork can use it meanwhile.
	delete(e.endpoints, id)
	var gone []*fork
	var mediaGone []forkID
	// The endpoint's forks and those whose copies leave from it.
	mine := []forkID{{id, dataplane.Inbound}, {id, dataplane.Outbound}}
	for fid := range e.sourced[id] {
		mine = append(mine, fid)
	}
	for _, fid := range mine {
		f, ok := e.forks[fid]
		if !ok {
			continue
		}
		if f.media {
			e.forgetForkLocked(fid)
			if fid.ep != id {
				mediaGone = append(mediaGone, fid)
			}
			continue
		}
		if err := e.unlinkForkLocked(fid, f); err != nil {
			errs = append(errs, err)
		}
		gone = append(gone, f)
	}
	e.mu.Unlock()
	for _, fid := range mediaGone {
		if err := e.media.RemoveFork(fid.ep, fid.dir); err != nil && !errors.Is(err, dataplane.ErrNotFound) {
			errs = append(errs, err)
		}
	}
	if len(gone) > 0 {
		errs = append(errs, e.settle(gone...))
	}
	if err := e.media.CloseEndpoint(id); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// Join implements dataplane.Engine: Media joins the endpoints, then each
// direction the kernel can carry gets a relay part in its stream entry (one
// map update), so from then on its packets are redirected before they reach
// Media's socket.
func (e *Engine) Join(from, to dataplane.EndpointID, d dataplane.Duplex) error {
	e.warmRelays(from, to, d)
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return dataplane.ErrClosed
	}
	if err := e.media.Join(from, to, d); err != nil {
		return err
	}
	e.joinLocked(from, to, d)
	return e.syncRelaysLocked(true, from, to)
}

// Unjoin implements dataplane.Engine: the relay parts go first (one map
// update each), so packets in flight fall back to Media's relay, which stops
// after them; no packet of another stream is touched.
func (e *Engine) Unjoin(a, b dataplane.EndpointID) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return dataplane.ErrClosed
	}
	saved := map[relayID]bool{{a, b}: e.out[a][b], {b, a}: e.out[b][a]}
	e.unjoinLocked(a, b)
	serr := e.syncRelaysLocked(true, a, b)
	if err := e.media.Unjoin(a, b); err != nil {
		for id, ok := range saved {
			if ok {
				e.joinLocked(id.from, id.to, dataplane.Half)
			}
		}
		return errors.Join(err, e.syncRelaysLocked(true, a, b))
	}
	return serr
}

// EndpointStats implements dataplane.Engine: Media's figures plus what the
// kernel relayed for the endpoint.
func (e *Engine) EndpointStats(id dataplane.EndpointID) (dataplane.EndpointStats, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return dataplane.EndpointStats{}, dataplane.ErrClosed
	}
	s, err := e.media.EndpointStats(id)
	if err != nil {
		return s, err
	}
	e.addRelayStatsLocked(id, &s)
	if ep := e.endpoints[id]; ep != nil {
		dropped, latched := e.latchStateLocked(ep)
		s.Dropped += dropped
		if latched.IsValid() {
			s.Remote, s.Latched = latched, true
		}
	}
	return s, nil
}

func (e *Engine) isClosed() bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.closed
}

func htons(v uint16) uint16 { return bits.ReverseBytes16(v) }

// keyOf builds the stream-table key of an endpoint's RTP address and a
// direction.
func keyOf(local netip.AddrPort, dir dataplane.Direction) rtpforkStreamKey {
	a := local.Addr().Unmap()
	k := rtpforkStreamKey{Port: htons(local.Port()), Dir: uint8(dir), Family: familyV6}
	if a.Is4() {
		k.Family = familyV4
	}
	copy(k.Addr[:], a.AsSlice())
	return k
}

// checkFork validates an AddFork under e.mu and returns the endpoint's and the
// source's local addresses.
func (e *Engine) checkFork(ep dataplane.EndpointID, dir dataplane.Direction, cfg dataplane.ForkConfig) (local, src netip.AddrPort, err error) {
	if e.closed {
		return local, src, dataplane.ErrClosed
	}
	if !dir.Valid() {
		return local, src, fmt.Errorf("add fork: direction %d: %w", dir, dataplane.ErrInvalid)
	}
	if cfg.Mode != 0 && !cfg.Mode.Valid() {
		return local, src, fmt.Errorf("add fork: mode %d: %w", cfg.Mode, dataplane.ErrInvalid)
	}
	if !cfg.Recorder.IsValid() || cfg.Recorder.Port() == 0 || cfg.Recorder.Port() == 65535 || cfg.Recorder.Addr().Unmap().IsUnspecified() {
		return local, src, fmt.Errorf("add fork: recorder %s: %w", cfg.Recorder, dataplane.ErrInvalid)
	}
	epInfo, ok := e.endpoints[ep]
	if !ok {
		return local, src, fmt.Errorf("add fork: endpoint %d: %w", ep, dataplane.ErrNotFound)
	}
	srcInfo, ok := e.endpoints[cfg.Source]
	if !ok {
		return local, src, fmt.Errorf("add fork: source endpoint %d: %w", cfg.Source, dataplane.ErrNotFound)
	}
	local, src = epInfo.local, srcInfo.local
	if _, ok := e.forks[forkID{ep, dir}]; ok {
		return local, src, fmt.Errorf("add fork %d %s: %w", ep, dir, dataplane.ErrExists)
	}
	rec := cfg.Recorder.Addr().Unmap()
	if local.Addr().Unmap().Is4() != rec.Is4() || src.Addr().Unmap().Is4() != rec.Is4() {
		// The copy is the original rewritten in place: the IP version
		// cannot change.
		return local, src, fmt.Errorf("add fork: endpoint %s, source %s and recorder %s differ in IP version: %w",
			local, src, cfg.Recorder, dataplane.ErrNotSupported)
	}
	return local, src, nil
}

// AddFork implements dataplane.Engine: it resolves the recorder's next hop
// and writes one stream-table entry; RTCP follows from the same entry.
func (e *Engine) AddFork(ep dataplane.EndpointID, dir dataplane.Direction, cfg dataplane.ForkConfig) error {
	e.mu.Lock()
	local, src, err := e.checkFork(ep, dir, cfg)
	e.mu.Unlock()
	if err != nil {
		return err
	}
	if local.Addr().Unmap().IsLoopback() {
		// Loopback traffic never crosses the media interfaces.
		return e.addMediaFork(ep, dir, cfg, fmt.Errorf("endpoint %s is on loopback: %w", local, errKernelCannot))
	}
	e.mu.Lock()
	srtp := e.endpoints[ep] != nil && e.endpoints[ep].srtp
	e.mu.Unlock()
	if srtp {
		// The kernel would clone SRTP; the copies must be the clear
		// packets Media opens.
		return e.addMediaFork(ep, dir, cfg, fmt.Errorf("endpoint uses srtp: %w", errKernelCannot))
	}
	rec := netip.AddrPortFrom(cfg.Recorder.Addr().Unmap(), cfg.Recorder.Port())
	src = netip.AddrPortFrom(src.Addr().Unmap(), src.Port())
	hop, err := e.resolveWait(rec.Addr(), src.Addr())
	if errors.Is(err, errKernelCannot) {
		return e.addMediaFork(ep, dir, cfg, err)
	}
	if err != nil {
		return fmt.Errorf("add fork %d %s: %w", ep, dir, err)
	}

	e.mu.Lock()
	defer e.mu.Unlock()
	// Re-check: the engine, the endpoints or a racing AddFork may have
	// changed while the next hop was resolved.
	if _, _, err := e.checkFork(ep, dir, cfg); err != nil {
		return err
	}
	slot, err := e.allocSlot()
	if err != nil {
		return fmt.Errorf("add fork %d %s: %w", ep, dir, err)
	}
	mode := cfg.Mode
	if mode == 0 {
		mode = dataplane.Active
	}
	f := &fork{source: cfg.Source, recorder: rec, srcAddr: src, key: keyOf(local, dir)}
	f.val = rtpforkStreamValue{Slot: slot, Mode: uint8(mode), Family: f.key.Family, RecPort: rec.Port(), SrcPort: src.Port()}
	copy(f.val.RecAddr[:], rec.Addr().AsSlice())
	copy(f.val.SrcAddr[:], src.Addr().AsSlice())
	hop.apply(&f.val)
	if dir == dataplane.Inbound {
		e.endpoints[ep].applyRemote(&f.val)
	}
	if err := e.objs.Counters.Put(slot, make([]rtpforkForkCounters, e.ncpu)); err != nil {
		e.freeSlots = append(e.freeSlots, slot)
		return fmt.Errorf("add fork %d %s: reset counters: %w", ep, dir, err)
	}
	if e.entries[f.key].fork != nil {
		e.freeSlots = append(e.freeSlots, slot)
		return fmt.Errorf("add fork %d %s: stream entry taken: %w", ep, dir, dataplane.ErrInvalid)
	}
	if err := e.putForkLocked(f.key, &f.val); err != nil {
		e.freeSlots = append(e.freeSlots, slot)
		return fmt.Errorf("add fork %d %s: write stream entry: %w", ep, dir, err)
	}
	e.linkForkLocked(forkID{ep, dir}, f)
	if !hop.resolved {
		e.log.Warn("ebpf fork next hop unresolved; copying starts when it resolves",
			"endpoint", uint64(ep), "direction", dir.String(), "recorder", rec.String(), "next_hop", hop.nexthop.String())
	}
	return nil
}

// addMediaFork hands a fork the kernel path cannot carry to Media.
func (e *Engine) addMediaFork(ep dataplane.EndpointID, dir dataplane.Direction, cfg dataplane.ForkConfig, why error) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if _, _, err := e.checkFork(ep, dir, cfg); err != nil {
		return err
	}
	// A userspace fork sees only what reaches the sockets: the relays it
	// depends on go back to Media before it starts.
	e.linkForkLocked(forkID{ep, dir}, &fork{media: true, why: why.Error(), source: cfg.Source})
	if err := e.syncRelaysLocked(true, ep); err != nil {
		e.log.Warn("kernel relay update failed", "err", err)
	}
	if err := e.media.AddFork(ep, dir, cfg); err != nil {
		e.forgetForkLocked(forkID{ep, dir})
		_ = e.syncRelaysLocked(true, ep)
		return err
	}
	e.log.Info("fork copied in userspace", "endpoint", uint64(ep), "direction", dir.String(), "reason", why.Error())
	return nil
}

// linkForkLocked and forgetForkLocked add and remove a fork of e.forks and
// keep its index by source, so closing an endpoint finds the forks it is
// the source of without a pass over every fork.
func (e *Engine) linkForkLocked(id forkID, f *fork) {
	e.forks[id] = f
	if e.sourced[f.source] == nil {
		e.sourced[f.source] = make(map[forkID]struct{})
	}
	e.sourced[f.source][id] = struct{}{}
}

func (e *Engine) forgetForkLocked(id forkID) {
	f, ok := e.forks[id]
	if !ok {
		return
	}
	delete(e.forks, id)
	delete(e.sourced[f.source], id)
	if len(e.sourced[f.source]) == 0 {
		delete(e.sourced, f.source)
	}
}

func (e *Engine) allocSlot() (uint32, error) {
	if n := len(e.freeSlots); n > 0 {
		s := e.freeSlots[n-1]
		e.freeSlots = e.freeSlots[:n-1]
		return s, nil
	}
	if e.nextSlot >= e.sizes.slots {
		return 0, fmt.Errorf("%d forks and relays in the kernel's counter tables: %w", e.sizes.slots, dataplane.ErrPortsExhausted)
	}
	e.nextSlot++
	return e.nextSlot - 1, nil
}

// SetForkMode implements dataplane.Engine with one map update. Muting also
// waits until no fork program that could have read the old value is still
// running, so once it returns no further copy of the direction leaves.
func (e *Engine) SetForkMode(ep dataplane.EndpointID, dir dataplane.Direction, m dataplane.Mode) error {
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		return dataplane.ErrClosed
	}
	f, ok := e.forks[forkID{ep, dir}]
	if !ok {
		e.mu.Unlock()
		return fmt.Errorf("set fork mode %d %s: %w", ep, dir, dataplane.ErrNotFound)
	}
	if !m.Valid() {
		e.mu.Unlock()
		return fmt.Errorf("set fork mode %d %s: mode %d: %w", ep, dir, m, dataplane.ErrInvalid)
	}
	if f.media {
		e.mu.Unlock()
		return e.media.SetForkMode(ep, dir, m)
	}
	nv := f.val
	nv.Mode = uint8(m)
	err := e.putForkLocked(f.key, &nv)
	if err == nil {
		f.val = nv
	}
	e.mu.Unlock()
	if err != nil {
		return fmt.Errorf("set fork mode %d %s: %w", ep, dir, err)
	}
	if m == dataplane.Inactive {
		return e.sync()
	}
	return nil
}

// fence is the target of a locked read-modify-write: a full memory barrier
// between the map write and the reads of the in-flight counters.
var fence atomic.Uint64

// syncSpin bounds how long sync watches the in-flight counters before it
// falls back to waiting for an RCU grace period.
const syncSpin = 2 * time.Millisecond

// sync waits until every fork program run that could have read the stream
// table before the caller's last write has finished. It reads each CPU's
// in-flight counters (struct inflight_count) and waits until every CPU has
// left as many runs as it had entered; runs take a microsecond, so this
// normally returns at once. A CPU that seems stuck (a run preempted on a
// PREEMPT_RT kernel) makes it fall back to the kernel's own barrier.
func (e *Engine) sync() error {
	fence.Add(1)
	var snap, now []rtpforkInflightCount
	if err := e.objs.Inflight.Lookup(uint32(0), &snap); err != nil {
		return e.rcuSync()
	}
	deadline := time.Now().Add(syncSpin)
	for {
		if err := e.objs.Inflight.Lookup(uint32(0), &now); err != nil {
			return e.rcuSync()
		}
		done := true
		for i := range snap {
			if i < len(now) && now[i].Leave < snap[i].Enter {
				done = false
				break
			}
		}
		if done {
			return nil
		}
		if time.Now().After(deadline) {
			return e.rcuSync()
		}
		runtime.Gosched()
	}
}

// rcuSync waits for an RCU grace period: updating an array of maps makes the
// kernel wait until every running BPF program has finished.
func (e *Engine) rcuSync() error {
	if err := e.barrier.Put(uint32(0), e.barrierInner); err != nil {
		return fmt.Errorf("wait for running fork programs: %w", err)
	}
	return nil
}

// RemoveFork implements dataplane.Engine. Like a mute, it returns only when
// no fork program that could still see the entry is running.
func (e *Engine) RemoveFork(ep dataplane.EndpointID, dir dataplane.Direction) error {
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		return dataplane.ErrClosed
	}
	id := forkID{ep, dir}
	f, ok := e.forks[id]
	if !ok {
		e.mu.Unlock()
		return fmt.Errorf("remove fork %d %s: %w", ep, dir, dataplane.ErrNotFound)
	}
	if f.media {
		e.forgetForkLocked(id)
		e.mu.Unlock()
		return e.media.RemoveFork(ep, dir)
	}
	err := e.unlinkForkLocked(id, f)
	e.mu.Unlock()
	return errors.Join(err, e.settle(f))
}

// unlinkForkLocked deletes a fork's stream entry and forgets the fork; its
// counter slot stays reserved until settle.
func (e *Engine) unlinkForkLocked(id forkID, f *fork) error {
	e.forgetForkLocked(id)
	if s, err := e.counters(f.val.Slot); err == nil {
		e.goneCopied += s.CopiedPackets
		e.goneMuted += s.MutedPackets
		f.settled = s.ForkStats
	}
	if err := e.putForkLocked(f.key, nil); err != nil {
		return fmt.Errorf("remove fork %d %s: %w", id.ep, id.dir, err)
	}
	return nil
}

// settle waits (without the engine lock, so that removals overlap) until no
// program can still count into the removed forks' slots, adds what they
// counted meanwhile to the totals and frees the slots for reuse.
func (e *Engine) settle(forks ...*fork) error {
	err := e.sync()
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return err
	}
	for _, f := range forks {
		if s, cerr := e.counters(f.val.Slot); cerr == nil {
			e.goneCopied += s.CopiedPackets - f.settled.CopiedPackets
			e.goneMuted += s.MutedPackets - f.settled.MutedPackets
		}
		if err == nil {
			e.freeSlots = append(e.freeSlots, f.val.Slot)
		}
	}
	return err
}

type counters struct {
	dataplane.ForkStats
	failed uint64
}

func (e *Engine) counters(slot uint32) (counters, error) {
	var per []rtpforkForkCounters
	if err := e.objs.Counters.Lookup(slot, &per); err != nil {
		return counters{}, fmt.Errorf("read fork counters: %w", err)
	}
	var c counters
	for _, p := range per {
		c.CopiedPackets += p.CopiedPackets
		c.CopiedBytes += p.CopiedBytes
		c.MutedPackets += p.MutedPackets
		c.MutedBytes += p.MutedBytes
		c.failed += p.FailedPackets
	}
	return c, nil
}

// ForkStats implements dataplane.Engine from the per-CPU counters.
func (e *Engine) ForkStats(ep dataplane.EndpointID, dir dataplane.Direction) (dataplane.ForkStats, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return dataplane.ForkStats{}, dataplane.ErrClosed
	}
	f, ok := e.forks[forkID{ep, dir}]
	if !ok {
		return dataplane.ForkStats{}, fmt.Errorf("fork stats %d %s: %w", ep, dir, dataplane.ErrNotFound)
	}
	if f.media {
		return e.media.ForkStats(ep, dir)
	}
	c, err := e.counters(f.val.Slot)
	return c.ForkStats, err
}

// Stats implements dataplane.Engine: Media's endpoint figures with the
// kernel's fork counters.
func (e *Engine) Stats() dataplane.EngineStats {
	s := e.media.Stats()
	s.Engine = e.Name()
	e.mu.Lock()
	defer e.mu.Unlock()
	s.Forks = len(e.forks)
	if !e.closed {
		s.Relayed += e.kernelRelayedLocked()
	}
	// Media's figures count only the forks handed to it.
	s.CopiedPackets += e.goneCopied
	s.MutedPackets += e.goneMuted
	if e.closed {
		return s
	}
	for _, f := range e.forks {
		if f.media {
			continue
		}
		if c, err := e.counters(f.val.Slot); err == nil {
			s.CopiedPackets += c.CopiedPackets
			s.MutedPackets += c.MutedPackets
		}
	}
	return s
}

// KernelStats returns what the fork programs passed on untouched, and why.
func (e *Engine) KernelStats() (KernelStats, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return KernelStats{}, dataplane.ErrClosed
	}
	var r [statMax]uint64
	for i := range r {
		var per []uint64
		if err := e.objs.Stats.Lookup(uint32(i), &per); err != nil {
			return KernelStats{}, fmt.Errorf("read kernel stats: %w", err)
		}
		for _, v := range per {
			r[i] += v
		}
	}
	ks := KernelStats{Miss: r[0], NotIP: r[1], NotUDP: r[2], Short: r[3], Fragment: r[4],
		IPOptions: r[5], GSO: r[6], Looped: r[7], NotRTP: r[8], VLAN: r[9], Foreign: r[10], GSOEgress: r[11], Relayed: r[12],
		Guard: r[statGuard], Latched: r[statLatched], CsumHelpers: r[statHelpers]}
	for _, f := range e.forks {
		if f.media {
			continue
		}
		if c, err := e.counters(f.val.Slot); err == nil {
			ks.Failed += c.failed
		}
	}
	return ks, nil
}

// Close implements dataplane.Engine: it removes every fork, detaches the
// programs, frees every map and closes Media. Nothing is pinned, so nothing
// is left in the kernel.
func (e *Engine) Close() error {
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		return dataplane.ErrClosed
	}
	e.closed = true
	for id, f := range e.forks {
		if !f.media {
			if s, err := e.counters(f.val.Slot); err == nil {
				e.goneCopied += s.CopiedPackets
				e.goneMuted += s.MutedPackets
			}
		}
		e.forgetForkLocked(id)
	}
	clear(e.endpoints)
	e.mu.Unlock()
	err := e.release()
	e.log.Info("ebpf fork programs detached")
	if merr := e.media.Close(); merr != nil && !errors.Is(merr, dataplane.ErrClosed) {
		err = errors.Join(err, merr)
	}
	return err
}

// nextHop is where copies to one recorder leave: interface and MACs.
type nextHop struct {
	ifindex  int
	nexthop  netip.Addr
	src, dst [6]byte
	resolved bool
}

func (h nextHop) apply(v *rtpforkStreamValue) {
	v.Ifindex = uint32(h.ifindex)
	v.SrcMac, v.DstMac = h.src, h.dst
	v.Flags &^= flagResolved
	if h.resolved {
		v.Flags |= flagResolved
	}
}

// hopMemo keeps the answers of one refresh pass. The forks of many calls
// share a recorder and their relays a router, and every answer costs up to
// four netlink round trips: without it, a pass over 2,175 calls' forks and
// relays (8,700 answers) sent some 30,000 requests, a third of a CPU second
// every NeighRefresh, with the engine's lock held for the relays.
type hopMemo struct {
	routes map[[2]netip.Addr]hopAnswer // by destination and source
	hops   map[hopKey]hopAnswer        // by interface and next hop
}

type hopKey struct {
	ifindex int
	nexthop netip.Addr
}

type hopAnswer struct {
	h   nextHop
	err error
}

func newHopMemo() *hopMemo {
	return &hopMemo{routes: make(map[[2]netip.Addr]hopAnswer), hops: make(map[hopKey]hopAnswer)}
}

// resolveIn looks the next hop from src to rec up in the kernel's routing
// and neighbour tables (an unknown or stale neighbour is (re-)probed),
// answered from m where m has the answer; m may be nil.
func (e *Engine) resolveIn(m *hopMemo, rec, src netip.Addr) (nextHop, error) {
	rk := [2]netip.Addr{rec, src}
	if m != nil {
		if a, ok := m.routes[rk]; ok {
			return a.h, a.err
		}
	}
	rt, err := e.nl.routeGet(rec, src)
	if err != nil {
		if m != nil {
			m.routes[rk] = hopAnswer{err: err}
		}
		return nextHop{}, err
	}
	hk := hopKey{rt.ifindex, rt.nexthop}
	if m != nil {
		if a, ok := m.hops[hk]; ok {
			m.routes[rk] = a
			return a.h, a.err
		}
	}
	h, err := e.neighbour(rt)
	if m != nil {
		m.routes[rk] = hopAnswer{h, err}
		m.hops[hk] = hopAnswer{h, err}
	}
	return h, err
}

// neighbour finds the MACs of a route's next hop; an unknown or stale
// neighbour is (re-)probed.
func (e *Engine) neighbour(rt route) (nextHop, error) {
	h := nextHop{ifindex: rt.ifindex, nexthop: rt.nexthop}
	var err error
	if h.src, err = e.nl.linkMAC(rt.ifindex); err != nil {
		return nextHop{}, fmt.Errorf("next hop %s: %w", rt.nexthop, err)
	}
	mac, state, ok, err := e.nl.neighGet(rt.ifindex, rt.nexthop)
	if err != nil {
		return nextHop{}, fmt.Errorf("next hop %s: %w", rt.nexthop, err)
	}
	if ok {
		h.dst, h.resolved = mac, true
	}
	// Our copies never confirm a neighbour entry the way the stack's own
	// traffic does, so ask the kernel to probe one that is not confirmed.
	if !ok || state&(unix.NUD_STALE|unix.NUD_FAILED) != 0 {
		if err := e.nl.neighUse(rt.ifindex, rt.nexthop); err != nil {
			return h, err
		}
	}
	return h, nil
}

// resolveWait resolves and, while the neighbour is unresolved, waits for
// kernel notifications up to ResolveTimeout.
func (e *Engine) resolveWait(rec, src netip.Addr) (nextHop, error) {
	deadline := time.NewTimer(e.cfg.ResolveTimeout)
	defer deadline.Stop()
	for {
		e.mu.Lock()
		changed := e.changed
		e.mu.Unlock()
		h, err := e.resolveIn(nil, rec, src)
		if err != nil || h.resolved {
			return h, err
		}
		select {
		case <-changed:
		case <-deadline.C:
			return h, nil
		case <-e.stop:
			return h, dataplane.ErrClosed
		}
	}
}

// onChange runs on the watcher goroutine for every batch of notifications.
func (e *Engine) onChange() {
	e.mu.Lock()
	close(e.changed)
	e.changed = make(chan struct{})
	e.mu.Unlock()
	select {
	case e.kick <- struct{}{}:
	default:
	}
}

// resolver re-resolves every fork's next hop when the kernel reports a
// change, and re-confirms them every NeighRefresh.
func (e *Engine) resolver() {
	t := time.NewTicker(e.cfg.NeighRefresh)
	defer t.Stop()
	for {
		select {
		case <-e.stop:
			return
		case <-e.kick:
			e.reattach()
		case <-t.C:
		}
		e.reresolve()
	}
}

func (e *Engine) reresolve() {
	type item struct {
		id       forkID
		rec, src netip.Addr
	}
	e.mu.Lock()
	items := make([]item, 0, len(e.forks))
	for id, f := range e.forks {
		if !f.media {
			items = append(items, item{id, f.recorder.Addr(), f.srcAddr.Addr()})
		}
	}
	e.mu.Unlock()
	memo := newHopMemo()
	for _, it := range items {
		h, err := e.resolveIn(memo, it.rec, it.src)
		if err != nil {
			// A route that disappeared: keep the last known next hop and
			// let the counters show the failure if copies stop arriving.
			continue
		}
		e.mu.Lock()
		f, ok := e.forks[it.id]
		if ok && !e.closed {
			nv := f.val
			h.apply(&nv)
			if nv != f.val {
				if err := e.putForkLocked(f.key, &nv); err == nil {
					f.val = nv
					e.log.Info("ebpf fork next hop changed", "endpoint", uint64(it.id.ep), "direction", it.id.dir.String(),
						"ifindex", h.ifindex, "next_hop", h.nexthop.String(), "mac", net.HardwareAddr(h.dst[:]).String(), "resolved", h.resolved)
				}
			}
		}
		e.mu.Unlock()
	}
	// Relays follow their remotes' next hops the same way.
	e.mu.Lock()
	if !e.closed {
		e.memo = memo
		if err := e.syncRelaysLocked(false); err != nil {
			e.log.Warn("kernel relay update failed", "err", err)
		}
		e.memo = nil
	}
	e.mu.Unlock()
}
