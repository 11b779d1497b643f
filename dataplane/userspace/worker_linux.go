package userspace

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/recfork/recfork/dataplane"
)

// maxOuts bounds the distinct sockets one worker sends from between flushes.
// A received batch needs one per relay target, one per copy source and one for
// each target's outbound fork; more than that flushes early, which is correct,
// only less batched.
const maxOuts = 16

// worker serves the sockets registered with its epoll instance. Everything
// below mu is owned by the worker goroutine; see the package doc for the
// locking protocol.
type worker struct {
	e     *Engine
	epfd  int
	evfd  int
	batch int

	// mu is held by the worker from epoll_wait's return until the last send
	// of that wake-up, and by control operations that need no batch in flight.
	mu       sync.Mutex
	stopping bool
	socks    map[int32]*sock

	events  []unix.EpollEvent
	buf     []byte
	rxMsgs  []unix.Mmsghdr
	rxIov   []unix.Iovec
	rxNames []unix.RawSockaddrInet6
	outs    [maxOuts]outQueue
	nouts   int
	// gso merges equal copies into UDP GSO messages, gsoRelays relays too.
	gso, gsoRelays bool
	single         unix.Msghdr
	// sealed holds the SRTP packets made for endpoints with a Cipher in
	// this wake-up; they are sent from here, so it is reused only after a
	// flush. Allocated on first use.
	sealed     []byte
	sealedUsed int

	// tid is the worker's OS thread, for per-thread CPU accounting.
	tid atomic.Int64

	// beforeFlush, if set (by tests only, with the worker locked), runs after
	// a batch is decided and before its datagrams are sent.
	beforeFlush func()
}

// outQueue is one sendmmsg vector: datagrams that leave from one socket. With
// UDP GSO, consecutive datagrams of equal size to the same destination share
// one message as segments, so the stack is traversed once for all of them.
type outQueue struct {
	fd   int
	n    int // messages queued
	niov int // datagrams queued, one iovec each
	msgs []unix.Mmsghdr
	iov  []unix.Iovec
	// per message:
	dst   []*peer
	acct  []*counter // what its datagrams count as once sent
	first []int      // index of its first iovec
	segs  []int      // datagrams in it (more than one: UDP GSO)
	size  []int      // size of each of its datagrams
	ctrl  []byte     // its UDP_SEGMENT control message
}

// UDP GSO limits (udp(7), UDP_SEGMENT): at most 64 segments of one size, at
// most 64 KiB in all. Segments must also fit the path MTU unfragmented; 1232
// bytes is what any IPv6 path carries (RFC 8200 §5), and covers RTP audio.
const (
	maxGSOSegments = 64
	maxGSOBytes    = 65000
	maxGSOSize     = 1232
)

var (
	cmsgSpace  = unix.CmsgSpace(2)
	cmsgHdrLen = unix.CmsgLen(0)
)

func newWorker(e *Engine, batch int, gso, gsoRelays bool) (*worker, error) {
	w := &worker{e: e, batch: batch, gso: gso, gsoRelays: gsoRelays, epfd: -1, evfd: -1, socks: make(map[int32]*sock)}
	var err error
	if w.epfd, err = unix.EpollCreate1(unix.EPOLL_CLOEXEC); err != nil {
		return nil, fmt.Errorf("epoll_create1: %w", err)
	}
	if w.evfd, err = unix.Eventfd(0, unix.EFD_NONBLOCK|unix.EFD_CLOEXEC); err != nil {
		w.closeFDs()
		return nil, fmt.Errorf("eventfd: %w", err)
	}
	ev := unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(w.evfd)}
	if err := unix.EpollCtl(w.epfd, unix.EPOLL_CTL_ADD, w.evfd, &ev); err != nil {
		w.closeFDs()
		return nil, fmt.Errorf("epoll_ctl add eventfd: %w", err)
	}
	w.events = make([]unix.EpollEvent, 256)
	w.buf = make([]byte, batch*maxDatagram)
	w.rxMsgs = make([]unix.Mmsghdr, batch)
	w.rxIov = make([]unix.Iovec, batch)
	w.rxNames = make([]unix.RawSockaddrInet6, batch)
	for i := range batch {
		w.rxIov[i].Base = &w.buf[i*maxDatagram]
		w.rxIov[i].SetLen(maxDatagram)
		h := &w.rxMsgs[i].Hdr
		h.Name = (*byte)(unsafe.Pointer(&w.rxNames[i]))
		h.Iov = &w.rxIov[i]
		h.SetIovlen(1)
	}
	for i := range w.outs {
		q := outQueue{
			msgs:  make([]unix.Mmsghdr, batch),
			iov:   make([]unix.Iovec, batch),
			dst:   make([]*peer, batch),
			acct:  make([]*counter, batch),
			first: make([]int, batch),
			segs:  make([]int, batch),
			size:  make([]int, batch),
			ctrl:  make([]byte, batch*cmsgSpace),
		}
		for m := range batch {
			c := (*unix.Cmsghdr)(unsafe.Pointer(&q.ctrl[m*cmsgSpace]))
			c.Level = unix.SOL_UDP
			c.Type = unix.UDP_SEGMENT
			c.SetLen(unix.CmsgLen(2))
		}
		w.outs[i] = q
	}
	return w, nil
}

// add registers an endpoint's sockets with the worker.
func (w *worker) add(socks []*sock) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	for i, s := range socks {
		ev := unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(s.fd)}
		if err := unix.EpollCtl(w.epfd, unix.EPOLL_CTL_ADD, s.fd, &ev); err != nil {
			w.removeLocked(socks[:i])
			return fmt.Errorf("epoll_ctl add: %w", err)
		}
		w.socks[int32(s.fd)] = s
	}
	return nil
}

// remove unregisters sockets; the caller holds w.mu (through lockWorkers).
func (w *worker) remove(socks []*sock) { w.removeLocked(socks) }

func (w *worker) removeLocked(socks []*sock) {
	for _, s := range socks {
		if w.socks[int32(s.fd)] == s {
			delete(w.socks, int32(s.fd))
			// Closing the socket would drop it from the epoll set too; doing it
			// now keeps the set exact while the fd is still open.
			_ = unix.EpollCtl(w.epfd, unix.EPOLL_CTL_DEL, s.fd, nil)
		}
	}
}

// stop asks the worker goroutine to return.
func (w *worker) stop() error {
	w.mu.Lock()
	w.stopping = true
	w.mu.Unlock()
	if w.evfd < 0 {
		return nil
	}
	var one [8]byte
	binary.NativeEndian.PutUint64(one[:], 1)
	if _, err := unix.Write(w.evfd, one[:]); err != nil && !errors.Is(err, unix.EAGAIN) {
		return fmt.Errorf("wake worker: %w", err)
	}
	return nil
}

func (w *worker) closeFDs() {
	for _, fd := range []*int{&w.epfd, &w.evfd} {
		if *fd >= 0 {
			unix.Close(*fd)
			*fd = -1
		}
	}
}

// run is the worker goroutine. It keeps one OS thread for its life: the
// thread blocks in epoll_wait anyway, and a fixed thread keeps the worker's
// buffers in one CPU's cache and its CPU time attributable (tid).
func (w *worker) run() {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	w.tid.Store(int64(unix.Gettid()))
	for {
		n, err := unix.EpollWait(w.epfd, w.events, -1)
		if err != nil {
			if errors.Is(err, unix.EINTR) {
				continue
			}
			w.e.log.Error("userspace worker stopped", "err", fmt.Errorf("epoll_wait: %w", err))
			return
		}
		w.mu.Lock()
		if w.stopping {
			w.mu.Unlock()
			return
		}
		for i := range n {
			// A socket removed after epoll_wait returned is no longer in the
			// map; its fd number may already belong to a new socket of this
			// worker, which is then merely read early.
			if s := w.socks[w.events[i].Fd]; s != nil {
				w.serve(s)
			}
		}
		w.mu.Unlock()
	}
}

// maxRounds bounds how many full batches one socket is served per wake-up, so
// a flooded socket cannot starve the others.
const maxRounds = 4

func (w *worker) serve(s *sock) {
	for range maxRounds {
		n := w.recv(s.fd)
		if n <= 0 {
			return
		}
		w.process(s, n)
		if w.beforeFlush != nil {
			w.beforeFlush()
		}
		w.flush()
		if n < w.batch {
			return
		}
	}
}

// recv reads up to one batch; it returns 0 when nothing is waiting. The call
// never blocks (MSG_DONTWAIT) and only copies out queued datagrams, so it is
// made as a raw system call, without handing the P to the scheduler; sendmmsg
// is not, as on loopback or under load it also runs the receivers' softirq
// work.
func (w *worker) recv(fd int) int {
	for i := range w.rxMsgs {
		w.rxMsgs[i].Hdr.Namelen = unix.SizeofSockaddrInet6
	}
	for {
		r, _, errno := unix.RawSyscall6(unix.SYS_RECVMMSG, uintptr(fd),
			uintptr(unsafe.Pointer(&w.rxMsgs[0])), uintptr(len(w.rxMsgs)), unix.MSG_DONTWAIT, 0, 0)
		if errno == unix.EINTR {
			continue
		}
		if errno != 0 {
			// EAGAIN, or a pending error (ICMP) reported instead of data; the
			// next readiness event retries.
			return 0
		}
		return int(r)
	}
}

// process decides the fate of n received datagrams of one socket.
func (w *worker) process(s *sock, n int) {
	ep := s.ep
	idx := rtpIdx
	if s.kind == kindRTCP {
		idx = rtcpIdx
	}
	in := ep.forks[dataplane.Inbound-1]
	var rxPackets, rxBytes, dropped, relayed, authFailures uint64
	for i := range n {
		m := &w.rxMsgs[i]
		size := int(m.Len)
		b := w.buf[i*maxDatagram : i*maxDatagram+size]
		k := classify(b)
		if m.Hdr.Flags&unix.MSG_TRUNC != 0 || k == kindInvalid || (idx == rtcpIdx && k != kindRTCP) {
			dropped++
			continue
		}
		if ep.cipher != nil {
			// Opened before the source rule: only an authentic packet
			// may move a latch, and what follows (relays, forks, echo)
			// sees clear RTP. Decrypted in place.
			clear, err := ep.cipher.Open(b[:0], b, k == kindRTCP)
			if err != nil {
				if errors.Is(err, dataplane.ErrAuth) {
					authFailures++
				}
				dropped++
				continue
			}
			b = clear
		}
		src, ok := keyOf(&w.rxNames[i])
		if !ok || !w.accept(ep, idx, src) {
			dropped++
			continue
		}
		rxPackets++
		rxBytes += uint64(size)
		if in != nil {
			w.copy(in, idx, b)
		}
		sent := false
		for _, t := range ep.targets {
			r := t.remote[idx].Load()
			if r == nil {
				continue // the target's remote is not known yet
			}
			if t.tapPT != 0 && (k == kindRTCP || b[1]&0x7f != t.tapPT) {
				continue // a tap takes RTP of its payload type only
			}
			out := b
			if t.cipher != nil {
				var err error
				if out, err = w.seal(t.cipher, b, k == kindRTCP); err != nil {
					w.e.sendErrors.Add(1)
					continue
				}
			}
			w.queue(t.socks[idx].fd, r, out, &t.tx, w.gsoRelays)
			sent = true
			if out := t.forks[dataplane.Outbound-1]; out != nil {
				w.copy(out, idx, b)
			}
		}
		if sent {
			relayed++
		}
	}
	if rxPackets > 0 {
		ep.rx.packets.Add(rxPackets)
		ep.rx.bytes.Add(rxBytes)
	}
	if relayed > 0 {
		ep.relayed.Add(relayed)
	}
	if dropped > 0 {
		ep.dropped.Add(dropped)
	}
	if authFailures > 0 {
		ep.authFailures.Add(authFailures)
	}
}

// seal makes the SRTP packet of b for a target with a Cipher, in the
// wake-up's sealed buffer, flushing first when it is full.
func (w *worker) seal(c dataplane.Cipher, b []byte, rtcp bool) ([]byte, error) {
	need := len(b) + dataplane.SealOverhead
	if w.sealed == nil {
		w.sealed = make([]byte, w.batch*maxDatagram)
	}
	if w.sealedUsed+need > len(w.sealed) {
		w.flush()
	}
	dst := w.sealed[w.sealedUsed : w.sealedUsed : w.sealedUsed+need]
	out, err := c.Seal(dst, b, rtcp)
	if err != nil {
		return nil, err
	}
	if len(out) > need || (len(out) > 0 && &out[0] != &w.sealed[w.sealedUsed]) {
		// The cipher did not write where it was asked to; the result is its
		// own allocation, which queue may still send from safely.
		return out, nil
	}
	w.sealedUsed += len(out)
	return out, nil
}

// accept applies the endpoint's source rule to a valid packet on socket idx.
// A latched socket accepts its latched source only. A remote not signalled
// yet is learnt from the first packet. Without Latch (or with LatchOff) only
// the signalled remote is accepted. With Latch, a source the policy allows
// (dataplane.LatchPolicy.MayLatch, given how many packets this socket was
// offered since SetRemote) becomes the remote (symmetric RTP, RFC 4961 §3)
// and others are refused; the eBPF engine's programs apply the same rule.
func (w *worker) accept(ep *endpoint, idx int, src addrKey) bool {
	r := ep.remote[idx].Load()
	if ep.latched[idx] {
		return r.key == src
	}
	if !ep.signalled.IsValid() {
		ep.latchTo(idx, src.addrPort())
		return true
	}
	if !ep.latch || w.e.cfg.LatchPolicy == dataplane.LatchOff {
		return r.key == src
	}
	if ep.seen[idx] < ^uint32(0) {
		ep.seen[idx]++
	}
	ap := src.addrPort()
	if !w.e.cfg.LatchPolicy.MayLatch(ep.signalled, ap.Addr(), ep.seen[idx]) {
		return false
	}
	ep.latchTo(idx, ap)
	return true
}

// latchTo makes ap the remote of socket idx for good (until SetRemote). Its
// caller owns ep.latched.
func (ep *endpoint) latchTo(idx int, ap netip.AddrPort) {
	ep.remote[idx].Store(newPeer(ap, ep.v6))
	ep.latched[idx] = true
	if idx == rtpIdx && !ep.latched[rtcpIdx] && ap.Port() < 65535 {
		// Until RTCP is seen, send it next to the latched RTP (RFC 3550 §11).
		ep.remote[rtcpIdx].Store(newPeer(netip.AddrPortFrom(ap.Addr(), ap.Port()+1), ep.v6))
	}
}

// copy queues a fork's copy of b, or counts it as muted. The mode is loaded
// here, per packet, right before queuing: together with SetForkMode's barrier
// that makes a mute final when SetForkMode returns.
func (w *worker) copy(f *fork, idx int, b []byte) {
	if f.mode.Load() != uint32(dataplane.Active) {
		f.muted.add(len(b))
		return
	}
	w.queue(f.src.socks[idx].fd, f.rec[idx], b, &f.copied, w.gso)
}

// queue adds b, to be sent from fd to p, to the current wake-up's batches.
// The datagram is sent from the receive buffer itself; merge lets it join the
// previous message as a GSO segment.
func (w *worker) queue(fd int, p *peer, b []byte, acct *counter, merge bool) {
	q := w.out(fd)
	j := q.niov
	q.iov[j].Base = &b[0]
	q.iov[j].SetLen(len(b))
	q.niov++
	if m := q.n - 1; merge && m >= 0 && q.dst[m] == p && q.acct[m] == acct && q.size[m] == len(b) &&
		len(b) <= maxGSOSize && q.segs[m] < maxGSOSegments && (q.segs[m]+1)*len(b) <= maxGSOBytes {
		// One more segment of the previous message; its iovecs stay
		// contiguous because only the last message ever grows.
		q.segs[m]++
		h := &q.msgs[m].Hdr
		h.SetIovlen(q.segs[m])
		if q.segs[m] == 2 {
			off := m * cmsgSpace
			binary.NativeEndian.PutUint16(q.ctrl[off+cmsgHdrLen:], uint16(len(b)))
			h.Control = &q.ctrl[off]
			h.SetControllen(cmsgSpace)
		}
	} else {
		m := q.n
		q.n++
		h := &q.msgs[m].Hdr
		h.Name = &p.sa[0]
		h.Namelen = p.salen
		h.Iov = &q.iov[j]
		h.SetIovlen(1)
		h.Control = nil
		h.SetControllen(0)
		q.dst[m], q.acct[m], q.first[m], q.segs[m], q.size[m] = p, acct, j, 1, len(b)
	}
	if q.niov == len(q.iov) {
		w.send(q)
	}
}

func (w *worker) out(fd int) *outQueue {
	for i := range w.nouts {
		if w.outs[i].fd == fd {
			return &w.outs[i]
		}
	}
	if w.nouts == len(w.outs) {
		w.flush()
	}
	q := &w.outs[w.nouts]
	w.nouts++
	q.fd, q.n = fd, 0
	return q
}

// flush sends every queued datagram.
func (w *worker) flush() {
	for i := range w.nouts {
		if w.outs[i].n > 0 {
			w.send(&w.outs[i])
		}
	}
	w.nouts = 0
	w.sealedUsed = 0
}

// send hands one queue to sendmmsg, resuming after partial sends and skipping
// a message the kernel refuses (full buffer, no route) so one bad destination
// cannot hold up the rest.
func (w *worker) send(q *outQueue) {
	for i := 0; i < q.n; {
		r, _, errno := unix.Syscall6(unix.SYS_SENDMMSG, uintptr(q.fd),
			uintptr(unsafe.Pointer(&q.msgs[i])), uintptr(q.n-i), unix.MSG_DONTWAIT, 0, 0)
		if errno == unix.EINTR {
			continue
		}
		if errno != 0 || r == 0 {
			if q.segs[i] > 1 && gsoRefused(errno) {
				w.sendSegments(q, i)
			} else {
				w.e.sendErrors.Add(uint64(q.segs[i]))
			}
			i++
			continue
		}
		for m := i; m < i+int(r); m++ {
			q.acct[m].addN(q.segs[m], q.segs[m]*q.size[m])
		}
		i += int(r)
	}
	q.n, q.niov = 0, 0
}

// gsoRefused reports an error that means "no UDP GSO here": the device lacks
// checksum offload (EIO), the segment exceeds the path MTU (EINVAL), or the
// kernel predates UDP_SEGMENT.
func gsoRefused(errno syscall.Errno) bool {
	return errno == unix.EIO || errno == unix.EINVAL || errno == unix.ENOPROTOOPT || errno == unix.EOPNOTSUPP
}

// sendSegments sends a GSO message's datagrams one by one, and stops this
// worker merging datagrams from now on.
func (w *worker) sendSegments(q *outQueue, m int) {
	if w.gso {
		w.gso, w.gsoRelays = false, false
		w.e.log.Warn("udp gso refused; sending datagrams one by one", "err", "sendmmsg with UDP_SEGMENT failed")
	}
	h := &w.single
	h.Name = q.msgs[m].Hdr.Name
	h.Namelen = q.msgs[m].Hdr.Namelen
	h.SetIovlen(1)
	for k := range q.segs[m] {
		h.Iov = &q.iov[q.first[m]+k]
		for {
			_, _, errno := unix.Syscall(unix.SYS_SENDMSG, uintptr(q.fd), uintptr(unsafe.Pointer(h)), unix.MSG_DONTWAIT)
			if errno == unix.EINTR {
				continue
			}
			if errno != 0 {
				w.e.sendErrors.Add(1)
			} else {
				q.acct[m].addN(1, q.size[m])
			}
			break
		}
	}
	h.Iov = nil
}
