package dataplane

import (
	"fmt"
	"net/netip"
)

// Engine is the media plane. Implementations are safe for concurrent use.
//
// Endpoints own a local RTP port (always even) and its RTCP port (RTP+1). Joins
// relay media between endpoints. Forks copy one direction of one endpoint to a
// recorder; their Mode is one atomic update of a per-stream table, and once
// SetForkMode returns, no further copy of a muted direction leaves the engine.
type Engine interface {
	// Name is the engine's short name: "userspace" or "ebpf".
	Name() string

	// OpenEndpoint allocates an RTP/RTCP port pair on cfg.LocalIP from the
	// engine's port range and starts receiving on it.
	OpenEndpoint(cfg EndpointConfig) (EndpointInfo, error)
	// SetRemote sets the remote RTP address of an endpoint (RTCP is Port+1), for
	// example from an SDP offer or answer. It resets latching: the next packet
	// from another source is accepted only if the endpoint was opened with Latch.
	SetRemote(id EndpointID, remote netip.AddrPort) error
	// CloseEndpoint removes the endpoint's joins and forks, and the forks whose
	// copies leave from it (ForkConfig.Source), and frees its ports.
	CloseEndpoint(id EndpointID) error

	// Join relays media between two endpoints. Full relays both ways; Half
	// relays only what is received on from out of to (to's remote hears from's
	// remote). Joining an endpoint to itself echoes its media back to its remote.
	Join(from, to EndpointID, d Duplex) error
	// Unjoin undoes Join for the pair, in both directions.
	Unjoin(a, b EndpointID) error

	// AddFork starts copying one direction of an endpoint to a recorder.
	// At most one fork exists per endpoint and direction.
	AddFork(ep EndpointID, dir Direction, cfg ForkConfig) error
	// SetForkMode switches a fork between Active and Inactive. It is one atomic
	// table update: when it returns, no later packet of that direction is copied
	// (Inactive) or every later one is (Active).
	SetForkMode(ep EndpointID, dir Direction, m Mode) error
	// RemoveFork stops and forgets a fork.
	RemoveFork(ep EndpointID, dir Direction) error

	// EndpointStats returns the counters of one endpoint.
	EndpointStats(id EndpointID) (EndpointStats, error)
	// ForkStats returns the counters of one fork.
	ForkStats(ep EndpointID, dir Direction) (ForkStats, error)
	// Stats returns engine-wide counters and gauges.
	Stats() EngineStats

	// Close closes every endpoint, removes every fork and join and releases
	// everything the engine holds (sockets, ports, kernel objects).
	Close() error
}

// EndpointID names an endpoint within one engine; zero is never a valid ID.
type EndpointID uint64

// EndpointConfig describes a new endpoint.
type EndpointConfig struct {
	// LocalIP is the address to bind; required, IPv4 or IPv6.
	LocalIP netip.Addr
	// Remote is the remote RTP address if already known (RTCP is Port+1);
	// zero means "learn it from the first packet received".
	Remote netip.AddrPort
	// Latch makes the endpoint follow the source of the first RTP packet it
	// receives even when Remote is set (symmetric RTP, for parties behind NAT).
	// After latching, packets from any other source are counted and dropped.
	Latch bool
	// Cipher, when set, makes the endpoint speak SRTP with its remote (RFC
	// 3711): every packet received is opened (authenticated, checked against
	// replay, decrypted) on arrival, and everything sent to the remote is
	// sealed with it. Joins, echo and forks see the clear packets, so copies
	// to a recorder are plain RTP. Packets that fail to open are dropped and
	// counted (EndpointStats.AuthFailures, Dropped). Nil is plain RTP. An
	// engine that cannot apply a Cipher in its fast path (the eBPF one)
	// carries such an endpoint's relays and forks in userspace.
	Cipher Cipher
	// TapPayloadType, when non-zero, makes the endpoint a tap for one RTP
	// payload type (an RFC 4733 telephone-event type, 96-127): relays into
	// it carry only RTP packets of that type, never other RTP or RTCP. The
	// daemon's DTMF tap is one; an endpoint that relays to one party and to
	// taps keeps its relay to the party in the kernel (eBPF engine).
	TapPayloadType uint8
}

// Cipher protects one endpoint's media toward its remote. Open and Seal may
// be called from several goroutines; an implementation serialises its own
// state (keys, rollover counters and replay windows per SSRC).
type Cipher interface {
	// Open authenticates and decrypts a received packet into dst[:0] (which
	// may be pkt[:0]: decryption in place); rtcp says it is RTCP. A packet
	// that fails authentication returns an error wrapping ErrAuth.
	Open(dst, pkt []byte, rtcp bool) ([]byte, error)
	// Seal protects a clear packet to be sent to the remote into dst[:0],
	// which never aliases pkt; the result is longer than pkt by at most
	// SealOverhead bytes.
	Seal(dst, pkt []byte, rtcp bool) ([]byte, error)
}

// SealOverhead bounds how much longer Cipher.Seal makes a packet: the SRTCP
// index and the largest authentication tag of the suites recfork uses (4 +
// 10 bytes, RFC 3711 §3.4), with room for an MKI.
const SealOverhead = 64

// EndpointInfo describes an open endpoint.
type EndpointInfo struct {
	ID EndpointID
	// Local is the local RTP address; the RTCP port is Local.Port()+1.
	Local netip.AddrPort
	// Remote is the remote RTP address, zero until known.
	Remote netip.AddrPort
}

// ForkConfig describes where the copies of a direction go.
type ForkConfig struct {
	// Recorder is the recorder's RTP address; RTCP copies go to Port+1.
	Recorder netip.AddrPort
	// Source is the endpoint whose local RTP and RTCP ports the copies leave
	// from (the ports offered in the recording SDP). It must be on the same
	// engine and is typically opened for the recording leg only.
	Source EndpointID
	// Mode is the initial mode; zero means Active.
	Mode Mode
}

// Direction is a direction of media through an endpoint, seen from the platform.
type Direction uint8

const (
	// Inbound is media from the remote party to the platform.
	Inbound Direction = 1
	// Outbound is media from the platform to the remote party.
	Outbound Direction = 2
)

func (d Direction) String() string {
	switch d {
	case Inbound:
		return "inbound"
	case Outbound:
		return "outbound"
	}
	return fmt.Sprintf("direction(%d)", uint8(d))
}

// Valid reports whether d is Inbound or Outbound.
func (d Direction) Valid() bool { return d == Inbound || d == Outbound }

// Mode is the mode of a fork.
type Mode uint8

const (
	// Active copies every packet of the direction.
	Active Mode = 1
	// Inactive copies nothing and counts what it did not copy (mute).
	Inactive Mode = 2
)

func (m Mode) String() string {
	switch m {
	case Active:
		return "active"
	case Inactive:
		return "inactive"
	}
	return fmt.Sprintf("mode(%d)", uint8(m))
}

// Valid reports whether m is Active or Inactive.
func (m Mode) Valid() bool { return m == Active || m == Inactive }

// Duplex is the shape of a join.
type Duplex uint8

const (
	// Full relays both ways.
	Full Duplex = 1
	// Half relays one way only (see Engine.Join).
	Half Duplex = 2
)

func (d Duplex) String() string {
	switch d {
	case Full:
		return "full"
	case Half:
		return "half"
	}
	return fmt.Sprintf("duplex(%d)", uint8(d))
}

// PortRange is an inclusive range of local UDP ports for RTP/RTCP pairs.
type PortRange struct {
	Min, Max uint16
}

// DefaultPortRange is used when an engine's configured range is zero.
var DefaultPortRange = PortRange{Min: 20000, Max: 29999}

// Validate reports whether the range holds at least one even/odd port pair.
func (r PortRange) Validate() error {
	if r.Min == 0 || r.Max < r.Min {
		return fmt.Errorf("port range %d-%d: %w", r.Min, r.Max, ErrInvalid)
	}
	first := r.Min + r.Min%2
	if first < r.Min || first+1 > r.Max {
		return fmt.Errorf("port range %d-%d holds no even/odd pair: %w", r.Min, r.Max, ErrInvalid)
	}
	return nil
}

// Pairs is the number of RTP/RTCP pairs in the range.
func (r PortRange) Pairs() int {
	if r.Validate() != nil {
		return 0
	}
	first := int(r.Min) + int(r.Min)%2
	return (int(r.Max) - first + 1) / 2
}
