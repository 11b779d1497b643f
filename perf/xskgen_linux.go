package perf

import (
	"errors"
	"fmt"
	"os"
	"runtime"
	"sync/atomic"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/recfork/recfork/perf/xdpgen"
)

// xskSender is the AF_XDP generator: each worker owns an AF_XDP socket in
// copy mode (XDP_COPY, which veth supports) bound to its own queue of the
// generator's veth, transmit-only. Every stream's frame is written once into
// the socket's UMEM; a send is a run of descriptors pointing at them, and the
// kernel builds one skb per descriptor and hands it to the veth. Unlike a
// packet socket's sendmmsg, a frame costs no message header, iovec or
// flow-dissector pass, so more of the machine is left to the engine.
type xskSender struct {
	pair    *Pair
	streams int
	next    atomic.Uint64
	idle    chan *xskWorker
	all     []*xskWorker
}

const (
	xskFrame = 2048 // UMEM chunk size
	xskRing  = 2048 // TX, completion and fill ring entries (powers of two)
	// xskSlot is how far apart the streams' frames lie in the UMEM, which
	// is registered with unaligned chunks so that they need not be a
	// chunk apart: the kernel copies each frame out of the UMEM once per
	// round over the streams, and 2,400 frames a chunk apart (4.8 MB, a
	// page per two frames) made that copy a cache and TLB miss, about a
	// tenth of the machine at the top rate, a cost of the generator that
	// the engines under test would pay.
	xskSlot = 256
)

// xskRingMap is one mapped ring: its producer and consumer indexes and its
// entries.
type xskRingMap struct {
	mem        []byte
	prod, cons *uint32
	desc       unsafe.Pointer
}

type xskWorker struct {
	fd       int
	umem     []byte
	tx, cq   xskRingMap
	frameLen uint32
	// prod is the TX producer index this worker has published, cqCons
	// the completion consumer index it has reached.
	prod, cqCons uint32
}

// newXSKSender opens one AF_XDP socket per worker on the generator's end of
// the pair, queue w for worker w. It must be called on a thread inside the
// generator namespace.
func newXSKSender(p *Pair, maxStreams int) (*xskSender, error) {
	s := &xskSender{pair: p, idle: make(chan *xskWorker, runtime.NumCPU())}
	for q := 0; q < cap(s.idle); q++ {
		w, err := openXSK(p.GIndex, q, maxStreams)
		if err != nil {
			s.Close()
			return nil, fmt.Errorf("af_xdp socket on %s queue %d: %w", p.GIf, q, err)
		}
		s.all = append(s.all, w)
		s.idle <- w
	}
	return s, nil
}

func openXSK(ifindex, queue, frames int) (w *xskWorker, err error) {
	fd, err := unix.Socket(unix.AF_XDP, unix.SOCK_RAW|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	w = &xskWorker{fd: fd}
	defer func() {
		if err != nil {
			w.close()
		}
	}()
	page := os.Getpagesize()
	size := (max(frames*xskSlot, xskFrame) + page - 1) / page * page
	if w.umem, err = unix.Mmap(-1, 0, size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS|unix.MAP_POPULATE); err != nil {
		return w, fmt.Errorf("umem: %w", err)
	}
	reg := unix.XDPUmemReg{Addr: uint64(uintptr(unsafe.Pointer(&w.umem[0]))), Len: uint64(size), Size: xskFrame,
		Flags: unix.XDP_UMEM_UNALIGNED_CHUNK_FLAG}
	if _, _, e := unix.Syscall6(unix.SYS_SETSOCKOPT, uintptr(fd), unix.SOL_XDP, unix.XDP_UMEM_REG,
		uintptr(unsafe.Pointer(&reg)), unsafe.Sizeof(reg), 0); e != 0 {
		return w, fmt.Errorf("register umem (unaligned chunks): %w", e)
	}
	for _, opt := range []int{unix.XDP_UMEM_FILL_RING, unix.XDP_UMEM_COMPLETION_RING, unix.XDP_TX_RING} {
		if err := unix.SetsockoptInt(fd, unix.SOL_XDP, opt, xskRing); err != nil {
			return w, fmt.Errorf("ring size (option %d): %w", opt, err)
		}
	}
	var off unix.XDPMmapOffsets
	l := uint32(unsafe.Sizeof(off))
	if _, _, e := unix.Syscall6(unix.SYS_GETSOCKOPT, uintptr(fd), unix.SOL_XDP, unix.XDP_MMAP_OFFSETS,
		uintptr(unsafe.Pointer(&off)), uintptr(unsafe.Pointer(&l)), 0); e != 0 {
		return w, fmt.Errorf("ring offsets: %w", e)
	}
	if w.tx, err = mapXSKRing(fd, off.Tx, unix.XDP_PGOFF_TX_RING, int(unsafe.Sizeof(unix.XDPDesc{}))); err != nil {
		return w, fmt.Errorf("map tx ring: %w", err)
	}
	if w.cq, err = mapXSKRing(fd, off.Cr, unix.XDP_UMEM_PGOFF_COMPLETION_RING, 8); err != nil {
		return w, fmt.Errorf("map completion ring: %w", err)
	}
	if err := unix.Bind(fd, &unix.SockaddrXDP{Flags: unix.XDP_COPY, Ifindex: uint32(ifindex), QueueID: uint32(queue)}); err != nil {
		return w, fmt.Errorf("bind: %w", err)
	}
	return w, nil
}

func mapXSKRing(fd int, off unix.XDPRingOffset, pgoff int64, entry int) (xskRingMap, error) {
	mem, err := unix.Mmap(fd, pgoff, int(off.Desc)+xskRing*entry, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED|unix.MAP_POPULATE)
	if err != nil {
		return xskRingMap{}, err
	}
	return xskRingMap{mem: mem, prod: (*uint32)(unsafe.Pointer(&mem[off.Producer])),
		cons: (*uint32)(unsafe.Pointer(&mem[off.Consumer])), desc: unsafe.Pointer(&mem[off.Desc])}, nil
}

func (w *xskWorker) close() {
	if w.tx.mem != nil {
		unix.Munmap(w.tx.mem)
	}
	if w.cq.mem != nil {
		unix.Munmap(w.cq.mem)
	}
	unix.Close(w.fd)
	if w.umem != nil {
		unix.Munmap(w.umem)
	}
}

// SetStreams writes stream i's frame at UMEM offset i*xskSlot of every worker.
func (s *xskSender) SetStreams(src, dst []uint16) error {
	if len(s.all) == 0 {
		return errors.New("af_xdp generator: closed")
	}
	if len(dst) > len(s.all[0].umem)/xskSlot {
		return fmt.Errorf("af_xdp generator: %d streams, room for %d", len(dst), len(s.all[0].umem)/xskSlot)
	}
	f := s.pair.frame()
	for _, w := range s.all {
		for i, d := range dst {
			b := xdpgen.Packet(f, xdpgen.Stream{SrcPort: src[i], DstPort: d})
			if len(b) > xskSlot {
				return fmt.Errorf("af_xdp generator: %d-byte frames, room for %d", len(b), xskSlot)
			}
			copy(w.umem[i*xskSlot:], b)
			w.frameLen = uint32(len(b))
		}
	}
	s.streams = len(dst)
	s.next.Store(0)
	return nil
}

// Send queues n descriptors, continuing the round robin over the streams,
// and kicks the kernel until it has taken them all.
func (s *xskSender) Send(n uint32) error {
	if s.streams == 0 {
		return errors.New("af_xdp generator: no streams")
	}
	w := <-s.idle
	defer func() { s.idle <- w }()
	next := s.next.Add(uint64(n)) - uint64(n)
	descs := unsafe.Slice((*unix.XDPDesc)(w.tx.desc), xskRing)
	for n > 0 {
		w.reap()
		free := xskRing - (w.prod - w.cqCons)
		k := min(n, free)
		if k == 0 {
			runtime.Gosched()
			continue
		}
		for j := uint32(0); j < k; j++ {
			i := (next + uint64(j)) % uint64(s.streams)
			descs[(w.prod+j)%xskRing] = unix.XDPDesc{Addr: i * xskSlot, Len: w.frameLen}
		}
		w.prod += k
		atomic.StoreUint32(w.tx.prod, w.prod)
		next += uint64(k)
		n -= k
		if err := w.kick(); err != nil {
			return err
		}
	}
	return nil
}

// kick has the kernel transmit what the TX ring holds; copy mode takes a
// bounded batch per call and answers EAGAIN while more is left.
func (w *xskWorker) kick() error {
	for atomic.LoadUint32(w.tx.cons) != w.prod {
		_, _, e := unix.Syscall6(unix.SYS_SENDTO, uintptr(w.fd), 0, 0, unix.MSG_DONTWAIT, 0, 0)
		switch e {
		case 0, unix.EAGAIN, unix.EBUSY, unix.ENOBUFS:
			// EBUSY and ENOBUFS: the veth dropped a frame (its peer's
			// queue was full); it was offered and is lost, and the
			// sink's count shows it.
		case unix.EINTR:
		default:
			return fmt.Errorf("af_xdp generator: kick: %w", e)
		}
		if e == unix.EAGAIN {
			// The completion ring may be what is full.
			w.reap()
		}
	}
	return nil
}

// reap takes every completion the kernel has posted. Completions free TX
// slots: the kernel reserves one per frame it takes and fills it when the
// frame's skb is freed.
func (w *xskWorker) reap() {
	w.cqCons = atomic.LoadUint32(w.cq.prod)
	atomic.StoreUint32(w.cq.cons, w.cqCons)
}

func (s *xskSender) Close() error {
	for _, w := range s.all {
		w.close()
	}
	s.all = nil
	return nil
}

func (s *xskSender) Interval() time.Duration { return time.Millisecond }
func (s *xskSender) Workers() int            { return len(s.all) }
