package srtp

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
)

// RelayStats are a Relay's counters.
type RelayStats struct {
	// Packets and Bytes count SRTP packets sent (bytes on the wire).
	Packets, Bytes uint64
	// Errors counts copies that could not be encrypted or sent, and
	// datagrams from anything but the data plane's fork.
	Errors uint64
}

// Relay takes one stream's clear copies on a local socket (the fork's
// recorder address, In) and sends them as SRTP from a second socket (Out,
// the address the recording SDP announces) to the SRS. One goroutine per
// Relay; nothing is logged per packet.
type Relay struct {
	in, out *net.UDPConn
	ctx     *Context
	dst     atomic.Pointer[netip.AddrPort]
	src     atomic.Pointer[netip.AddrPort]
	pkts    atomic.Uint64
	bytes   atomic.Uint64
	errs    atomic.Uint64
	done    chan struct{}
	once    sync.Once
}

// NewRelay opens the relay's two sockets on ip (free ports) and starts it;
// copies go nowhere until SetDestination.
func NewRelay(ip netip.Addr, c Crypto) (*Relay, error) {
	ctx, err := NewContext(c)
	if err != nil {
		return nil, err
	}
	in, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(ip, 0)))
	if err != nil {
		return nil, fmt.Errorf("srtp relay: listen in: %w", err)
	}
	out, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(ip, 0)))
	if err != nil {
		in.Close()
		return nil, fmt.Errorf("srtp relay: listen out: %w", err)
	}
	r := &Relay{in: in, out: out, ctx: ctx, done: make(chan struct{})}
	go r.run()
	go r.drain()
	return r, nil
}

// In is where the data plane must send the stream's clear copies.
func (r *Relay) In() netip.AddrPort { return r.in.LocalAddr().(*net.UDPAddr).AddrPort() }

// Out is the address the SRTP leaves from (the m-line's port).
func (r *Relay) Out() netip.AddrPort { return r.out.LocalAddr().(*net.UDPAddr).AddrPort() }

// SetDestination sets where SRTP goes (the SRS's RTP address); a zero
// address stops sending.
func (r *Relay) SetDestination(ap netip.AddrPort) { r.dst.Store(&ap) }

// SetSource restricts In to datagrams from ap (the recording leg the data
// plane sends the copies from), so nobody else can have packets encrypted
// toward the SRS; zero accepts any source.
func (r *Relay) SetSource(ap netip.AddrPort) { r.src.Store(&ap) }

// Stats returns the counters.
func (r *Relay) Stats() RelayStats {
	return RelayStats{Packets: r.pkts.Load(), Bytes: r.bytes.Load(), Errors: r.errs.Load()}
}

func (r *Relay) run() {
	defer close(r.done)
	buf := make([]byte, 1500)
	enc := make([]byte, 0, 1500+16)
	for {
		n, from, err := r.in.ReadFromUDPAddrPort(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			r.errs.Add(1)
			continue
		}
		if src := r.src.Load(); src != nil && src.IsValid() && netip.AddrPortFrom(from.Addr().Unmap(), from.Port()) != *src {
			r.errs.Add(1)
			continue
		}
		dst := r.dst.Load()
		if dst == nil || !dst.IsValid() {
			continue
		}
		out, err := r.ctx.Encrypt(enc, buf[:n])
		if err != nil {
			// Not RTP (too short, bad version): never sent in clear.
			r.errs.Add(1)
			continue
		}
		if _, err := r.out.WriteToUDPAddrPort(out, *dst); err != nil {
			r.errs.Add(1)
			continue
		}
		r.pkts.Add(1)
		r.bytes.Add(uint64(len(out)))
	}
}

// drain reads what the SRS sends to Out (RTCP, stray media) so the socket
// never fills; it is not used.
func (r *Relay) drain() {
	buf := make([]byte, 1500)
	for {
		if _, _, err := r.out.ReadFromUDPAddrPort(buf); errors.Is(err, net.ErrClosed) {
			return
		}
	}
}

// Close stops the relay and releases both sockets.
func (r *Relay) Close() error {
	r.once.Do(func() {
		r.in.Close()
		r.out.Close()
	})
	<-r.done
	return nil
}
