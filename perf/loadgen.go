package perf

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"runtime"
	"time"

	"golang.org/x/net/ipv4"

	"github.com/recfork/recfork/perf/xdpgen"
)

// Port plan of the fork scenarios: stream i's caller sends from
// CallerBase+2i, its callee listens on CalleeBase+2i and its recorder on
// RecBase+2i, all on the generator's address. RTP ports are even (RFC 3550
// section 11). The engines' own ports come from their ranges in the media
// namespace.
const (
	CallerBase = 30000
	CalleeBase = 40000
	RecBase    = 50000
	MaxStreams = 4000
)

// StreamPorts returns the ports of stream i.
func StreamPorts(i int) (caller, callee, rec uint16) {
	return uint16(CallerBase + 2*i), uint16(CalleeBase + 2*i), uint16(RecBase + 2*i)
}

// CallerPort returns the generator-side caller port of stream i of a pool
// (see engineSubject): the unforked pool counts down from the top of the plan.
func CallerPort(i int, fork bool) uint16 {
	if !fork {
		i = MaxStreams - 1 - i
	}
	c, _, _ := StreamPorts(i)
	return c
}

// Sender sends n more frames of the current streams.
type Sender interface {
	// SetStreams installs the source and destination port of each stream.
	SetStreams(src, dst []uint16) error
	// Send sends n frames, continuing the round robin over the streams.
	Send(n uint32) error
	// Interval is how often the pacer calls Send: each live-frames test run
	// costs a fixed ~25 ms of waiting in the kernel (the run's page pool is
	// set up and torn down per call), so that generator sends in 50 ms
	// chunks; sendmmsg sends every millisecond.
	Interval() time.Duration
	// Workers is how many threads may call Send at once; the live-frames
	// generator overlaps its per-call waits with several.
	Workers() int
	Close() error
}

// paceIn runs the sender's workers on threads inside ns, each offering its
// share of rate for d, and returns the total sent and the longest worker time.
func paceIn(ctx context.Context, ns *Netns, rate float64, d time.Duration, s Sender) (uint64, time.Duration, error) {
	k := max(s.Workers(), 1)
	type out struct {
		sent uint64
		took time.Duration
		err  error
	}
	outs := make(chan out, k)
	for w := 0; w < k; w++ {
		go func() {
			var o out
			o.err = ns.Do(func() (err error) { o.sent, o.took, err = pace(ctx, rate/float64(k), d, s); return err })
			outs <- o
		}()
	}
	var total uint64
	var longest time.Duration
	var errs []error
	for w := 0; w < k; w++ {
		o := <-outs
		total += o.sent
		longest = max(longest, o.took)
		errs = append(errs, o.err)
	}
	return total, longest, errors.Join(errs...)
}

// pace calls send so that rate frames per second leave for d; it returns how
// many frames were sent and how long it took. It must run on a thread in the
// generator's namespace when the sender needs that.
func pace(ctx context.Context, rate float64, d time.Duration, s Sender) (uint64, time.Duration, error) {
	start := time.Now()
	var sent uint64
	iv := s.Interval()
	// Each call sends the traffic of the coming interval (at most two
	// intervals' worth when behind). The streams are sent in round robin, so
	// with thousands of streams a chunk holds only a few packets of any one.
	maxChunk := uint64(max(2*rate*iv.Seconds(), 64))
	for {
		el := time.Since(start)
		if el >= d {
			break
		}
		if err := ctx.Err(); err != nil {
			return sent, el, err
		}
		goal := uint64(rate * min(el+iv, d).Seconds())
		if goal <= sent {
			time.Sleep(min(iv/4, d-el))
			continue
		}
		due := min(goal-sent, maxChunk)
		if err := s.Send(uint32(due)); err != nil {
			return sent, time.Since(start), err
		}
		sent += due
	}
	return sent, time.Since(start), nil
}

// xdpSender is the live-frames generator.
type xdpSender struct {
	o       *xdpgen.Objects
	pair    *Pair
	frame   []byte
	streams int
}

func newXDPSender(o *xdpgen.Objects, p *Pair) *xdpSender {
	return &xdpSender{o: o, pair: p}
}

// frame is the Ethernet and IP part of every frame the generators send on
// the pair: G's end to M's end.
func (p *Pair) frame() xdpgen.Frame {
	return xdpgen.Frame{SrcMAC: p.GMAC, DstMAC: p.MMAC,
		SrcIP: netip.AddrFrom4([4]byte(p.GAddr.To4())), DstIP: netip.AddrFrom4([4]byte(p.MAddr.To4()))}
}

func (x *xdpSender) SetStreams(src, dst []uint16) error {
	ss := make([]xdpgen.Stream, len(dst))
	for i, d := range dst {
		ss[i] = xdpgen.Stream{SrcPort: src[i], DstPort: d}
	}
	x.streams = len(dst)
	x.frame = xdpgen.Packet(x.pair.frame(), ss[0])
	return x.o.SetStreams(x.pair.frame(), ss)
}

// Send must be called on a thread inside the generator namespace.
func (x *xdpSender) Send(n uint32) error { return x.o.Send(x.pair.GIndex, x.frame, n) }
func (x *xdpSender) Close() error        { return nil }

func (x *xdpSender) Interval() time.Duration { return 50 * time.Millisecond }
func (x *xdpSender) Workers() int            { return runtime.NumCPU() }

// mmsgSender is the sendmmsg generator: one raw UDP socket in the generator
// namespace; the kernel builds the IPv4 header, the datagrams carry their own
// ports and checksums, so one socket plays thousands of callers.
type mmsgSender struct {
	pc    *ipv4.PacketConn
	conn  net.PacketConn
	msgs  []ipv4.Message
	dst   *net.IPAddr
	cur   int
	batch []ipv4.Message
}

func newMmsgSender(p *Pair) (*mmsgSender, error) {
	var c net.PacketConn
	err := p.G.Do(func() (err error) {
		c, err = net.ListenPacket("ip4:udp", p.GAddr.String())
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("open raw udp socket: %w", err)
	}
	return &mmsgSender{pc: ipv4.NewPacketConn(c), conn: c, dst: &net.IPAddr{IP: p.MAddr}}, nil
}

func (m *mmsgSender) SetStreams(srcPorts, dst []uint16) error {
	src := [4]byte{10, 77, 0, 1}
	dip := [4]byte{10, 77, 0, 2}
	m.msgs = m.msgs[:0]
	for i, d := range dst {
		c := srcPorts[i]
		f := xdpgen.Packet(xdpgen.Frame{SrcMAC: make(net.HardwareAddr, 6), DstMAC: make(net.HardwareAddr, 6),
			SrcIP: netip.AddrFrom4(src), DstIP: netip.AddrFrom4(dip)}, xdpgen.Stream{SrcPort: c, DstPort: d})
		m.msgs = append(m.msgs, ipv4.Message{Buffers: [][]byte{f[34:]}, Addr: m.dst})
	}
	m.cur = 0
	return nil
}

func (m *mmsgSender) Send(n uint32) error {
	for n > 0 {
		k := min(int(n), 64, len(m.msgs)-m.cur)
		m.batch = append(m.batch[:0], m.msgs[m.cur:m.cur+k]...)
		sent := 0
		for sent < k {
			w, err := m.pc.WriteBatch(m.batch[sent:k], 0)
			if err != nil {
				return fmt.Errorf("sendmmsg: %w", err)
			}
			sent += w
		}
		m.cur = (m.cur + k) % len(m.msgs)
		n -= uint32(k)
	}
	return nil
}

func (m *mmsgSender) Close() error { return m.conn.Close() }

func (m *mmsgSender) Interval() time.Duration { return time.Millisecond }
func (m *mmsgSender) Workers() int            { return 1 }
