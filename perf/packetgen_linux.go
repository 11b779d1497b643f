package perf

import (
	"fmt"
	"runtime"
	"sync/atomic"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/recfork/recfork/perf/xdpgen"
)

// packetSender is the AF_PACKET generator: whole Ethernet frames handed to
// the generator's veth with sendmmsg on packet sockets that bypass the qdisc
// (PACKET_QDISC_BYPASS), one socket per worker. The kernel neither routes
// nor builds headers, so a frame costs an skb, a copy and the veth's
// transmit: several times cheaper than the raw IP socket of mmsgSender, and
// the fallback of the AF_XDP generator (xskSender).
type packetSender struct {
	pair   *Pair
	frames [][]byte
	cur    atomic.Uint64
	// idle holds the workers' sockets and message arrays; Send takes one.
	idle chan *packetWorker
}

// packetBatch is the most frames one sendmmsg carries.
const packetBatch = 256

type packetWorker struct {
	fd   int
	msgs []unix.Mmsghdr
	iovs []unix.Iovec
}

// newPacketSender opens one packet socket per worker, bound to the
// generator's end of the pair. It must be called on a thread inside the
// generator namespace.
func newPacketSender(p *Pair) (*packetSender, error) {
	s := &packetSender{pair: p, idle: make(chan *packetWorker, runtime.NumCPU())}
	for i := 0; i < cap(s.idle); i++ {
		fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			s.Close()
			return nil, fmt.Errorf("packet socket: %w", err)
		}
		w := &packetWorker{fd: fd, msgs: make([]unix.Mmsghdr, packetBatch), iovs: make([]unix.Iovec, packetBatch)}
		s.idle <- w
		if err := unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_QDISC_BYPASS, 1); err != nil {
			s.Close()
			return nil, fmt.Errorf("packet socket: qdisc bypass: %w", err)
		}
		// Send only: protocol 0 in the bind receives nothing.
		if err := unix.Bind(fd, &unix.SockaddrLinklayer{Ifindex: p.GIndex}); err != nil {
			s.Close()
			return nil, fmt.Errorf("packet socket: bind to %s: %w", p.GIf, err)
		}
	}
	return s, nil
}

func (s *packetSender) SetStreams(src, dst []uint16) error {
	f := s.pair.frame()
	frames := make([][]byte, len(dst))
	for i, d := range dst {
		frames[i] = xdpgen.Packet(f, xdpgen.Stream{SrcPort: src[i], DstPort: d})
	}
	s.frames = frames
	s.cur.Store(0)
	return nil
}

// Send sends n frames, continuing the round robin over the streams; workers
// may call it at once, each on its own socket.
func (s *packetSender) Send(n uint32) error {
	if len(s.frames) == 0 {
		return fmt.Errorf("packet generator: no streams")
	}
	w := <-s.idle
	defer func() { s.idle <- w }()
	next := s.cur.Add(uint64(n)) - uint64(n)
	for n > 0 {
		k := min(int(n), packetBatch)
		for j := 0; j < k; j++ {
			f := s.frames[(next+uint64(j))%uint64(len(s.frames))]
			w.iovs[j].Base = &f[0]
			w.iovs[j].SetLen(len(f))
			w.msgs[j] = unix.Mmsghdr{}
			w.msgs[j].Hdr.Iov = &w.iovs[j]
			w.msgs[j].Hdr.SetIovlen(1)
		}
		for sent := 0; sent < k; {
			r, _, errno := unix.Syscall6(unix.SYS_SENDMMSG, uintptr(w.fd), uintptr(unsafe.Pointer(&w.msgs[sent])), uintptr(k-sent), 0, 0, 0)
			if errno == unix.EINTR {
				continue
			}
			if errno == unix.ENOBUFS {
				// The veth refused the frame (its peer's queue is full):
				// it was offered and lost, as a NIC's overflowing ring
				// loses it, so it counts as sent and the sink's count
				// shows the loss.
				sent++
				continue
			}
			if errno != 0 {
				return fmt.Errorf("packet generator: sendmmsg: %w", errno)
			}
			sent += int(r)
		}
		next += uint64(k)
		n -= uint32(k)
	}
	return nil
}

func (s *packetSender) Close() error {
	for {
		select {
		case w := <-s.idle:
			unix.Close(w.fd)
		default:
			return nil
		}
	}
}

func (s *packetSender) Interval() time.Duration { return time.Millisecond }
func (s *packetSender) Workers() int            { return runtime.NumCPU() }
