package dataplane

import "net/netip"

// EndpointStats are the counters of one endpoint. Packets and bytes count RTP and
// RTCP together; bytes are UDP payload bytes.
type EndpointStats struct {
	// RxPackets and RxBytes count everything received from the accepted remote.
	RxPackets, RxBytes uint64
	// TxPackets and TxBytes count what was sent to the remote (relays, echo).
	TxPackets, TxBytes uint64
	// Relayed counts received packets that were relayed to at least one joined
	// endpoint.
	Relayed uint64
	// Dropped counts packets that were not accepted: from a source the
	// endpoint does not accept (not its signalled or latched remote, or one
	// the latch policy refused), too short, or not RTP/RTCP. The eBPF engine
	// drops foreign RTP and RTCP in the kernel and counts them here too.
	Dropped uint64
	// Remote is where the endpoint's RTP goes now: the latched or learnt
	// source, else the signalled remote; zero while unknown.
	Remote netip.AddrPort
	// Latched reports that Remote was learnt from a received RTP packet
	// (latching, or a remote not signalled) rather than signalled.
	Latched bool
	// SRTP reports that the endpoint was opened with a Cipher.
	SRTP bool
	// AuthFailures counts received packets that failed SRTP authentication
	// (wrong keys, tampering); they are also in Dropped, as are replays.
	AuthFailures uint64
}

// ForkStats are the counters of one fork.
type ForkStats struct {
	// CopiedPackets and CopiedBytes count copies sent to the recorder.
	CopiedPackets, CopiedBytes uint64
	// MutedPackets and MutedBytes count packets not copied while Inactive.
	MutedPackets, MutedBytes uint64
}

// EngineStats are engine-wide counters and gauges.
type EngineStats struct {
	Engine    string
	Endpoints int
	Joins     int
	Forks     int
	// PortsFree is the number of free RTP/RTCP pairs in the range.
	PortsFree int
	// Copied and Muted total all forks' packets since the engine started.
	CopiedPackets, MutedPackets uint64
	// Relayed and Dropped total all endpoints' packets since the engine started.
	Relayed, Dropped uint64
	// SRTPEndpoints is the number of open endpoints with a Cipher, and
	// AuthFailures totals their packets that failed authentication since
	// the engine started.
	SRTPEndpoints int
	AuthFailures  uint64
}
