package perf

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/recfork/recfork/dataplane"
	"github.com/recfork/recfork/dataplane/srtp"
	"github.com/recfork/recfork/perf/xdpgen"
)

// The fork.srtp subject: the userspace engine with every fork's copies
// sent, as siprec does for an SRTP recording (siprec/srtp.go), in clear to a
// dataplane/srtp Relay of their own on the media address, which encrypts
// them (AES_CM_128_HMAC_SHA1_80, the stream's own keys) and sends them on to
// the recorder. The userspace engine is the one SRTP forks take in
// production (the eBPF clone cannot encrypt), so fork.srtp against
// fork.userspace in the same run is the SRTP cost of a copy. It forks the
// inbound only (one relay per stream), where fork.userspace forks both
// directions a relayed packet feeds; the report says so beside the ratio.

// VerifyPort is the generator-side port the SRTP verifier listens on,
// outside the sink's callee and recorder ranges so its datagrams reach it.
const VerifyPort = 29000

type srtpSubject struct {
	*engineSubject
	mu      sync.Mutex
	relays  []*srtp.Relay
	cryptos []srtp.Crypto
	recs    []netip.AddrPort
}

func openSRTP(ctx context.Context, env *Env, p *Pair, name string) (forkSubject, error) {
	e, err := newUserspace(p)
	if err != nil {
		return nil, err
	}
	s := &srtpSubject{engineSubject: &engineSubject{eng: e, pair: p}}
	s.recorder = s.relayFor
	env.Config(name, map[string]any{"engine": "userspace", "srtp_suite": srtp.SuiteSHA1_80,
		"srtp_relay": "one dataplane/srtp Relay per forked stream, as siprec uses for an SRTP recording"})
	return s, nil
}

// relayFor gives stream i's recording leg its own keys and relay, which
// takes the clear copies from source only and sends SRTP to rec. It runs
// in the media namespace (grow), so the relay's sockets are opened there.
func (s *srtpSubject) relayFor(i int, source dataplane.EndpointInfo, rec netip.AddrPort) (netip.AddrPort, error) {
	c, err := srtp.NewCrypto(1, srtp.SuiteSHA1_80)
	if err != nil {
		return netip.AddrPort{}, err
	}
	r, err := srtp.NewRelay(source.Local.Addr(), c)
	if err != nil {
		return netip.AddrPort{}, err
	}
	r.SetSource(source.Local)
	r.SetDestination(rec)
	s.mu.Lock()
	defer s.mu.Unlock()
	if i != len(s.relays) {
		r.Close()
		return netip.AddrPort{}, fmt.Errorf("srtp relay for stream %d made out of order (have %d)", i, len(s.relays))
	}
	s.relays, s.cryptos, s.recs = append(s.relays, r), append(s.cryptos, c), append(s.recs, rec)
	return r.In(), nil
}

// Encrypted is the number of SRTP packets every relay has sent.
func (s *srtpSubject) Encrypted() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	var n uint64
	for _, r := range s.relays {
		n += r.Stats().Packets
	}
	return n
}

// Check reports a relay that refused a datagram: a copy that could not be
// encrypted or came from anything but its recording leg.
func (s *srtpSubject) Check() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	var bad uint64
	for _, r := range s.relays {
		bad += r.Stats().Errors
	}
	if bad > 0 {
		return fmt.Errorf("srtp relays counted %d errors (datagrams not encrypted or from a foreign source)", bad)
	}
	return nil
}

// Close closes the engine, then every relay.
func (s *srtpSubject) Close() error {
	err := s.engineSubject.Close()
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, r := range s.relays {
		r.Close()
	}
	s.relays = nil
	return err
}

// VerifyResult is what the verifier received.
type VerifyResult struct {
	// Authenticated counts datagrams that authenticated and decrypted, with
	// the stream's own keys, to exactly the RTP packet the caller sent.
	Authenticated int
	// Failed counts datagrams that did not (plain RTP among them).
	Failed int
}

// Verify proves that the first n forked streams' copies leave as SRTP: it
// points their relays at a socket in the generator namespace, sends one
// packet per stream, authenticates and decrypts each datagram with its
// stream's keys (dataplane/srtp, pion/srtp underneath) and compares it with
// the caller's RTP; then the relays go back to the recorder. Streams are
// done in chunks, each waited for, so no datagram is lost to a full socket.
func (s *srtpSubject) Verify(ctx context.Context, n int) (VerifyResult, error) {
	var res VerifyResult
	ports, err := s.Prepare(ctx, n, true)
	if err != nil {
		return res, err
	}
	var conn *net.UDPConn
	vaddr := netip.AddrPortFrom(netip.AddrFrom4([4]byte(s.pair.GAddr.To4())), VerifyPort)
	if err := s.pair.G.Do(func() (err error) {
		conn, err = net.ListenUDP("udp", net.UDPAddrFromAddrPort(vaddr))
		return err
	}); err != nil {
		return res, fmt.Errorf("srtp verifier: %w", err)
	}
	defer conn.Close()
	sender, err := newMmsgSender(s.pair)
	if err != nil {
		return res, err
	}
	defer sender.Close()

	// The plain RTP every caller sends (the frames differ in their ports
	// only), which each decrypted copy must equal.
	want := xdpgen.Packet(xdpgen.Frame{SrcMAC: make(net.HardwareAddr, 6), DstMAC: make(net.HardwareAddr, 6),
		SrcIP: netip.AddrFrom4([4]byte{10, 77, 0, 1}), DstIP: netip.AddrFrom4([4]byte{10, 77, 0, 2})},
		xdpgen.Stream{SrcPort: 1, DstPort: 2})[xdpgen.HeaderLen:]

	s.mu.Lock()
	relays, cryptos, recs := s.relays[:n], s.cryptos[:n], s.recs[:n]
	s.mu.Unlock()
	byPort := map[uint16]int{}
	for i, r := range relays {
		byPort[r.Out().Port()] = i
	}
	// Fresh contexts: every generator packet carries the same sequence
	// number, which a context that saw it once would refuse as a replay.
	ctxs := make([]*srtp.Context, n)
	for i, c := range cryptos {
		if ctxs[i], err = srtp.NewContext(c); err != nil {
			return res, err
		}
	}
	defer func() {
		for i, r := range relays {
			r.SetDestination(recs[i])
		}
	}()
	buf := make([]byte, 2048)
	dec := make([]byte, 0, 2048)
	const chunk = 64
	for lo := 0; lo < n; lo += chunk {
		hi := min(lo+chunk, n)
		for _, r := range relays[lo:hi] {
			r.SetDestination(vaddr)
		}
		if err := sender.SetStreams(callerPorts(n, true)[lo:hi], ports[lo:hi]); err != nil {
			return res, err
		}
		if err := s.pair.G.Do(func() error { return sender.Send(uint32(hi - lo)) }); err != nil {
			return res, err
		}
		for got := 0; got < hi-lo; got++ {
			if err := ctx.Err(); err != nil {
				return res, err
			}
			_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
			k, from, err := conn.ReadFromUDPAddrPort(buf)
			if err != nil {
				return res, fmt.Errorf("srtp verifier: %d of %d streams' copies arrived: %w", res.Authenticated+res.Failed, n, err)
			}
			i, ok := byPort[from.Port()]
			if !ok || i < lo || i >= hi {
				res.Failed++
				continue
			}
			out, err := ctxs[i].Decrypt(dec, buf[:k])
			if err != nil || !bytes.Equal(out, want) {
				res.Failed++
				continue
			}
			res.Authenticated++
		}
		for i, r := range relays[lo:hi] {
			r.SetDestination(recs[lo+i])
		}
	}
	if res.Authenticated != n || res.Failed != 0 {
		return res, fmt.Errorf("srtp verifier: %d of %d streams' copies authenticated, %d failed: %w", res.Authenticated, n, res.Failed, errNotSRTP)
	}
	return res, nil
}

var errNotSRTP = errors.New("copies are not the streams' SRTP")
