package ebpf

import (
	"log/slog"
	"time"

	"github.com/recfork/recfork/dataplane"
)

// Config configures New.
type Config struct {
	// Media is the engine that owns media endpoints and joins (normally the
	// userspace engine); the eBPF engine delegates OpenEndpoint, SetRemote,
	// CloseEndpoint, Join, Unjoin and EndpointStats to it and never calls its
	// fork methods, so a packet is never copied twice. Required. Close closes
	// it too. The kernel's tables are sized for as many endpoints as Media's
	// port range has pairs, when Media has a PortRange method (the userspace
	// engine does), else for every pair of the 16-bit port space.
	Media dataplane.Engine
	// Interfaces are the media interfaces the fork programs attach to (TCX
	// ingress and egress). Empty means every interface that is up, is not
	// loopback and has an Ethernet address when New runs.
	Interfaces []string
	// Logger receives the engine's few log lines (attach, detach, next-hop
	// changes). Nil means slog.Default().
	Logger *slog.Logger
	// ResolveTimeout bounds how long AddFork waits for the recorder's next hop
	// to be resolved (ARP or neighbour discovery). A fork whose next hop is
	// still unknown is installed anyway and starts copying once the kernel
	// resolves it. Zero means 3 seconds.
	ResolveTimeout time.Duration
	// NeighRefresh is how often the next hops of forks are re-confirmed with
	// the kernel, so a recorder whose MAC changes is followed even if no
	// other traffic refreshes the neighbour entry. Zero means 30 seconds.
	NeighRefresh time.Duration
	// UserspaceRelay leaves every join to Media's sockets: the programs then
	// only fork. By default a join the kernel can carry is relayed by the
	// ingress program.
	UserspaceRelay bool
}

// KernelStats are what the fork programs passed on untouched, and why, since
// the engine was created. They are engine-wide, not per stream.
type KernelStats struct {
	// Miss counts UDP packets with no stream entry.
	Miss uint64
	// NotIP counts frames that are neither IPv4 nor IPv6 (VLAN tags included).
	NotIP uint64
	// NotUDP counts other protocols and IPv6 packets with extension headers.
	NotUDP uint64
	// Short counts truncated headers or UDP lengths.
	Short uint64
	// Fragment counts IPv4 fragments.
	Fragment uint64
	// IPOptions counts IPv4 headers with options.
	IPOptions uint64
	// GSO counts GSO or GRO-coalesced packets.
	GSO uint64
	// Looped counts copies seen again by a fork program (never forked twice).
	Looped uint64
	// NotRTP counts datagrams of a forked stream that are not RTP or RTCP.
	NotRTP uint64
	// VLAN counts packets whose VLAN tag is in skb metadata (seen on the
	// parent of a VLAN device): attach to the VLAN device instead.
	VLAN uint64
	// Foreign counts inbound packets of a forked stream from a source the
	// endpoint does not accept (not its signalled remote, without Latch).
	Foreign uint64
	// GSOEgress counts UDP GSO packets from the local stack (the userspace
	// engine's UDP_SEGMENT batches) that the egress program handled as the
	// datagrams they carry; not an untouched pass.
	GSOEgress uint64
	// Relayed counts packets the ingress program relayed in the kernel
	// (redirected to a joined endpoint's other leg) instead of passing them
	// to the socket.
	Relayed uint64
	// Guard counts inbound RTP and RTCP dropped in the kernel because it
	// came from a source its endpoint does not accept (neither the
	// signalled nor the latched remote, or one the latch policy refuses).
	Guard uint64
	// Latched counts sockets that latched to a source in the kernel.
	Latched uint64
	// CsumHelpers counts header rewrites of CHECKSUM_PARTIAL or _COMPLETE
	// skbs (the local stack's, or a NIC's full checksum), whose UDP
	// checksum the kernel's helpers update; for the others (CHECKSUM_NONE,
	// _UNNECESSARY) the program computes it.
	CsumHelpers uint64
	// Failed counts packets of active forks that could not be copied (next
	// hop unresolved, clone failed), summed over live forks.
	Failed uint64
}
