package userspace

import (
	"errors"
	"fmt"
	"net/netip"

	"golang.org/x/sys/unix"

	"github.com/recfork/recfork/dataplane"
)

// portPool hands out RTP/RTCP pairs (even port, port+1) from a range. It is
// guarded by Engine.mu.
type portPool struct {
	first  uint16 // first even port
	used   []bool
	nfree  int
	cursor int
}

func newPortPool(r dataplane.PortRange) portPool {
	n := r.Pairs()
	return portPool{first: r.Min + r.Min%2, used: make([]bool, n), nfree: n}
}

func (p *portPool) port(pair int) uint16 { return p.first + uint16(2*pair) }

func (p *portPool) free() int { return p.nfree }

func (p *portPool) release(pair int) {
	if p.used[pair] {
		p.used[pair] = false
		p.nfree++
	}
}

// bind takes the next free pair that both sockets can be bound to, starting
// after the last one handed out so a just-freed pair rests before reuse. Pairs
// another process holds are skipped.
func (p *portPool) bind(ip netip.Addr, sockBuf int) (int, [2]int, error) {
	n := len(p.used)
	for i := range n {
		pair := (p.cursor + i) % n
		if p.used[pair] {
			continue
		}
		fds, err := bindPair(ip, p.port(pair), sockBuf)
		if errors.Is(err, unix.EADDRINUSE) {
			continue
		}
		if err != nil {
			return 0, fds, err
		}
		p.used[pair] = true
		p.nfree--
		p.cursor = (pair + 1) % n
		return pair, fds, nil
	}
	return 0, [2]int{}, fmt.Errorf("ports %d-%d: %w", p.first, p.port(n-1)+1, dataplane.ErrPortsExhausted)
}

func bindPair(ip netip.Addr, port uint16, sockBuf int) ([2]int, error) {
	var fds [2]int
	for i := range fds {
		fd, err := bindUDP(ip, port+uint16(i), sockBuf)
		if err != nil {
			if i == 1 {
				unix.Close(fds[0])
			}
			return fds, err
		}
		fds[i] = fd
	}
	return fds, nil
}

func bindUDP(ip netip.Addr, port uint16, sockBuf int) (int, error) {
	family := unix.AF_INET6
	var sa unix.Sockaddr = &unix.SockaddrInet6{Port: int(port), Addr: ip.As16()}
	if ip.Is4() {
		family = unix.AF_INET
		sa = &unix.SockaddrInet4{Port: int(port), Addr: ip.As4()}
	}
	fd, err := unix.Socket(family, unix.SOCK_DGRAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, unix.IPPROTO_UDP)
	if err != nil {
		return -1, fmt.Errorf("socket: %w", err)
	}
	fail := func(op string, err error) (int, error) {
		unix.Close(fd)
		return -1, fmt.Errorf("%s: %w", op, err)
	}
	if family == unix.AF_INET6 {
		if err := unix.SetsockoptInt(fd, unix.IPPROTO_IPV6, unix.IPV6_V6ONLY, 1); err != nil {
			return fail("set IPV6_V6ONLY", err)
		}
	}
	if sockBuf > 0 {
		if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, sockBuf); err != nil {
			return fail("set SO_RCVBUF", err)
		}
		if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_SNDBUF, sockBuf); err != nil {
			return fail("set SO_SNDBUF", err)
		}
	}
	if err := unix.Bind(fd, sa); err != nil {
		return fail(fmt.Sprintf("bind %s", netip.AddrPortFrom(ip, port)), err)
	}
	return fd, nil
}
