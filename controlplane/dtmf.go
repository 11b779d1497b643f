package controlplane

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"

	"github.com/recfork/recfork/dataplane"
)

// DTMF in RTP (RFC 4733) without a data-plane event tap: a connection that
// negotiated telephone-event gets a second, private endpoint half-joined to
// it, so the engine relays the caller's RTP (as it relays to any joined
// party) to that endpoint's remote, which is one UDP socket of the daemon.
// The tap endpoint is opened with EndpointConfig.TapPayloadType, so only the
// telephone-event packets are relayed into it (both engines), and the eBPF
// engine keeps relaying the connection's audio to its party in the kernel,
// handing just the events to userspace. The daemon reads them and raises
// connection.signal. It costs one port pair per call and one relayed packet
// per event packet; Config.DisableDTMF turns it off.

// dtmfTap receives the relayed RTP of every tapped connection.
type dtmfTap struct {
	conn *net.UDPConn
	addr netip.AddrPort
	done chan struct{}

	mu     sync.Mutex
	byPort map[uint16]*tapState // tap endpoint's local port -> state
}

type tapState struct {
	c      *Connection
	pt     uint8
	lastTS uint32
	seen   bool
}

func newDTMFTap(ip netip.Addr) (*dtmfTap, error) {
	conn, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(ip, 0)))
	if err != nil {
		return nil, fmt.Errorf("open dtmf tap socket: %w", err)
	}
	ap := conn.LocalAddr().(*net.UDPAddr).AddrPort()
	t := &dtmfTap{conn: conn, addr: netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()), done: make(chan struct{}),
		byPort: map[uint16]*tapState{}}
	go t.read()
	return t, nil
}

func (t *dtmfTap) close() {
	t.conn.Close()
	<-t.done
}

func (t *dtmfTap) read() {
	defer close(t.done)
	buf := make([]byte, 2048)
	for {
		n, from, err := t.conn.ReadFromUDPAddrPort(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		t.mu.Lock()
		st := t.byPort[from.Port()]
		t.mu.Unlock()
		if st == nil {
			continue
		}
		if digit, ok := st.event(buf[:n]); ok {
			st.c.emit("connection.signal", st.c.eventFields(map[string]any{"dtmf": digit}))
		}
	}
}

// event reads one RTP packet and returns the key of a new RFC 4733 event:
// one per event, on its first packet (events are keyed by RTP timestamp,
// §2.5.1.1; the end packet is sent three times).
func (st *tapState) event(pkt []byte) (string, bool) {
	if len(pkt) < 12 || pkt[0]>>6 != 2 {
		return "", false
	}
	if pkt[1]&0x7f != st.pt {
		return "", false
	}
	off := 12 + 4*int(pkt[0]&0x0f)
	if pkt[0]&0x10 != 0 { // header extension (RFC 3550 §5.3.1)
		if len(pkt) < off+4 {
			return "", false
		}
		off += 4 + 4*int(binary.BigEndian.Uint16(pkt[off+2:]))
	}
	if len(pkt) < off+4 {
		return "", false
	}
	ts := binary.BigEndian.Uint32(pkt[4:8])
	if st.seen && ts == st.lastTS {
		return "", false
	}
	st.seen, st.lastTS = true, ts
	ev := pkt[off]
	const keys = "0123456789*#ABCD"
	if int(ev) >= len(keys) {
		return "", false
	}
	return keys[ev : ev+1], true
}

// startDTMF taps c's received RTP when it negotiated telephone-event.
func (d *Daemon) startDTMF(c *Connection) {
	if d.tap == nil {
		return
	}
	c.mu.Lock()
	ep := c.ep
	var pt int = -1
	for _, k := range c.codecs {
		if k.Name == "telephone-event" {
			pt = int(k.PT)
		}
	}
	c.mu.Unlock()
	if pt < 0 || ep == 0 {
		return
	}
	// A tap of the telephone-event type: only those packets are relayed
	// into it, and the connection's relay to its party stays in the kernel.
	info, err := d.engine.OpenEndpoint(dataplane.EndpointConfig{LocalIP: d.cfg.MediaIP, Remote: d.tap.addr, TapPayloadType: uint8(pt)})
	if err != nil {
		c.log.Warn("dtmf tap: open endpoint", "err", err)
		return
	}
	if err := d.engine.Join(ep, info.ID, dataplane.Half); err != nil {
		c.log.Warn("dtmf tap: join", "err", err)
		_ = d.engine.CloseEndpoint(info.ID)
		return
	}
	d.tap.mu.Lock()
	d.tap.byPort[info.Local.Port()] = &tapState{c: c, pt: uint8(pt)}
	d.tap.mu.Unlock()
	c.mu.Lock()
	c.tapEP, c.tapPort = info.ID, info.Local.Port()
	c.mu.Unlock()
	select {
	case <-c.ended:
		// The call ended while the tap was being set up.
		d.stopDTMF(c)
	default:
	}
}

// stopDTMF removes c's tap (its endpoint, and with it the join).
func (d *Daemon) stopDTMF(c *Connection) {
	c.mu.Lock()
	ep, port := c.tapEP, c.tapPort
	c.tapEP, c.tapPort = 0, 0
	c.mu.Unlock()
	if ep == 0 {
		return
	}
	if err := d.engine.CloseEndpoint(ep); err != nil && !errors.Is(err, dataplane.ErrNotFound) {
		c.log.Warn("dtmf tap: close endpoint", "err", err)
	}
	d.tap.mu.Lock()
	delete(d.tap.byPort, port)
	d.tap.mu.Unlock()
}
