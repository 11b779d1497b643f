package userspace

import (
	"encoding/binary"
	"net/netip"
	"unsafe"

	"golang.org/x/sys/unix"
)

// addrKey identifies a UDP source cheaply: IPv4 addresses in their IPv4-mapped
// IPv6 form, the port in host order.
type addrKey struct {
	ip   [16]byte
	port uint16
}

// peer is a destination in the raw form sendmmsg takes, and the key a source
// address is compared with. Peers are immutable once built: a new remote is a
// new peer, so a worker holding an old one while it sends is harmless.
type peer struct {
	ap    netip.AddrPort
	key   addrKey
	sa    [unix.SizeofSockaddrInet6]byte
	salen uint32
}

func newPeer(ap netip.AddrPort, v6 bool) *peer {
	p := &peer{ap: ap, key: addrKey{ip: ap.Addr().As16(), port: ap.Port()}}
	if v6 {
		binary.NativeEndian.PutUint16(p.sa[0:2], unix.AF_INET6)
		binary.BigEndian.PutUint16(p.sa[2:4], ap.Port())
		a := ap.Addr().As16()
		copy(p.sa[8:24], a[:])
		p.salen = unix.SizeofSockaddrInet6
	} else {
		binary.NativeEndian.PutUint16(p.sa[0:2], unix.AF_INET)
		binary.BigEndian.PutUint16(p.sa[2:4], ap.Port())
		a := ap.Addr().Unmap().As4()
		copy(p.sa[4:8], a[:])
		p.salen = unix.SizeofSockaddrInet4
	}
	return p
}

// keyOf reads the source key out of a sockaddr the kernel filled in.
func keyOf(sa *unix.RawSockaddrInet6) (addrKey, bool) {
	var k addrKey
	b := (*[unix.SizeofSockaddrInet6]byte)(unsafe.Pointer(sa))
	k.port = binary.BigEndian.Uint16(b[2:4])
	switch sa.Family {
	case unix.AF_INET:
		k.ip[10], k.ip[11] = 0xff, 0xff
		copy(k.ip[12:], b[4:8])
	case unix.AF_INET6:
		copy(k.ip[:], b[8:24])
	default:
		return k, false
	}
	return k, true
}

func (k addrKey) addrPort() netip.AddrPort {
	return netip.AddrPortFrom(netip.AddrFrom16(k.ip).Unmap(), k.port)
}
