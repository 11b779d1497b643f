package srs

import (
	"fmt"
	"net"
	"net/netip"
	"sync"
)

// Default RTP port range used when Config.PortRange is zero.
const (
	defaultPortMin = 40000
	defaultPortMax = 49999
)

// PortRange is an inclusive range of local UDP ports for RTP; RTCP uses
// RTP+1 (RFC 3550 §11), so RTP ports are even and the pair must fit.
type PortRange struct {
	Min, Max uint16
}

// portAlloc hands out RTP/RTCP socket pairs round-robin from a range, skipping
// ports something else holds.
type portAlloc struct {
	mu       sync.Mutex
	ip       netip.Addr
	min, max int
	next     int
}

func newPortAlloc(ip netip.Addr, r PortRange) (*portAlloc, error) {
	lo, hi := int(r.Min), int(r.Max)
	if lo == 0 && hi == 0 {
		lo, hi = defaultPortMin, defaultPortMax
	}
	if lo%2 == 1 {
		lo++
	}
	if lo == 0 || hi < lo+1 {
		return nil, fmt.Errorf("rtp port range %d-%d: %w", r.Min, r.Max, ErrConfig)
	}
	return &portAlloc{ip: ip, min: lo, max: hi, next: lo}, nil
}

// open binds the next free even port and the port above it.
func (p *portAlloc) open() (rtpConn, rtcpConn *net.UDPConn, err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	pairs := (p.max-p.min+1)/2 + 1
	for range pairs {
		port := p.next
		p.next += 2
		if p.next+1 > p.max {
			p.next = p.min
		}
		if port+1 > p.max {
			continue
		}
		a, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(p.ip, uint16(port))))
		if err != nil {
			continue
		}
		b, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(p.ip, uint16(port+1))))
		if err != nil {
			a.Close()
			continue
		}
		return a, b, nil
	}
	return nil, nil, fmt.Errorf("open rtp ports %d-%d on %s: %w", p.min, p.max, p.ip, ErrNoPorts)
}
