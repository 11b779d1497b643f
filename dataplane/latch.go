package dataplane

import (
	"fmt"
	"net/netip"
)

// LatchPolicy says which source an endpoint opened with EndpointConfig.Latch
// may latch to (symmetric RTP, RFC 4961 section 3). Without a rule, whoever
// sends first takes the call's media; the policies bound that. Both engines
// apply the same policy, packet for packet.
type LatchPolicy uint8

const (
	// LatchAddress latches only to a source whose address equals the
	// signalled (SDP connection) address; the port may differ, as it does
	// behind a NAT that keeps the address. The default.
	LatchAddress LatchPolicy = iota
	// LatchNAT also latches to any source, but only among the first
	// NATLatchWindow packets after SetRemote and only when the signalled
	// address is private or unroutable (see Unroutable): the party is then
	// behind a NAT that rewrites the address and no source can match it.
	LatchNAT
	// LatchOff never latches: a signalled remote is the only source
	// accepted, as if no endpoint had Latch set.
	LatchOff
)

// NATLatchWindow is how many RTP (or RTCP) packets an endpoint receives
// after SetRemote during which LatchNAT may latch to a foreign address.
const NATLatchWindow = 8

func (p LatchPolicy) String() string {
	switch p {
	case LatchAddress:
		return "address"
	case LatchNAT:
		return "nat"
	case LatchOff:
		return "off"
	}
	return fmt.Sprintf("latch(%d)", uint8(p))
}

// Valid reports whether p is one of the policies.
func (p LatchPolicy) Valid() bool { return p <= LatchOff }

// ParseLatchPolicy reads "address", "nat" or "off"; empty means address.
func ParseLatchPolicy(s string) (LatchPolicy, error) {
	switch s {
	case "", "address":
		return LatchAddress, nil
	case "nat":
		return LatchNAT, nil
	case "off":
		return LatchOff, nil
	}
	return 0, fmt.Errorf("latch policy %q (want address, nat or off): %w", s, ErrInvalid)
}

// cgnat is the shared address space of RFC 6598.
var cgnat = netip.MustParsePrefix("100.64.0.0/10")

// Unroutable reports whether a is an address a party behind a NAT would
// signal: private (RFC 1918, unique local RFC 4193), shared (RFC 6598),
// link-local (RFC 3927, RFC 4291) or loopback. A NAT in front of such an
// address rewrites it, so LatchNAT may latch to another one.
func Unroutable(a netip.Addr) bool {
	a = a.Unmap()
	return a.IsPrivate() || a.IsLinkLocalUnicast() || a.IsLoopback() || (a.Is4() && cgnat.Contains(a))
}

// MayLatch reports whether an endpoint whose signalled remote is signalled
// may latch to src, which is the n-th packet (counting from 1) its port
// received since SetRemote, under policy p. A source equal to the signalled
// address always may, except with LatchOff.
func (p LatchPolicy) MayLatch(signalled, src netip.Addr, n uint32) bool {
	switch p {
	case LatchOff:
		return false
	case LatchNAT:
		if n <= NATLatchWindow && Unroutable(signalled) {
			return true
		}
	}
	return signalled.Unmap() == src.Unmap()
}
