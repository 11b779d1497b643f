package userspace

import (
	crypto "crypto/rand"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"

	"golang.org/x/sys/unix"

	"github.com/recfork/recfork/dataplane"
)

// portPool hands out RTP/RTCP pairs (even port, port+1) from a range. It is
// guarded by Engine.mu.
//
// The pair is drawn at random (ChaCha8 keyed from crypto/rand) among the
// free ones, so the next call's media ports cannot be guessed from the last
// one's (an injector would otherwise aim at them before the caller's first
// packet). A released pair rests in a queue and is not handed out again while
// other pairs are free, until more than a quarter of the range has been
// released after it, so late packets of an ended call do not reach a new one.
type portPool struct {
	first uint16 // first even port
	n     int
	// freeList holds the pairs that may be drawn, pos[pair] their index
	// in it (-1: not in it).
	freeList []int
	pos      []int
	// resting holds released pairs, oldest first.
	resting []int
	used    []bool
	rnd     *rand.Rand
}

func newPortPool(r dataplane.PortRange) portPool {
	n := r.Pairs()
	p := portPool{first: r.Min + r.Min%2, n: n, freeList: make([]int, n), pos: make([]int, n), used: make([]bool, n), rnd: newRand()}
	for i := range n {
		p.freeList[i], p.pos[i] = i, i
	}
	return p
}

func (p *portPool) port(pair int) uint16 { return p.first + uint16(2*pair) }

func (p *portPool) free() int { return len(p.freeList) + len(p.resting) }

func (p *portPool) release(pair int) {
	if p.used[pair] {
		p.used[pair] = false
		p.resting = append(p.resting, pair)
		// The oldest of more than a quarter of the range has rested
		// long enough to be drawn again, at random like the others.
		if len(p.resting) > max(1, p.n/4) {
			old := p.resting[0]
			p.resting = p.resting[1:]
			p.pos[old] = len(p.freeList)
			p.freeList = append(p.freeList, old)
		}
	}
}

func (p *portPool) take(pair int) {
	i := p.pos[pair]
	last := len(p.freeList) - 1
	p.freeList[i] = p.freeList[last]
	p.pos[p.freeList[i]] = i
	p.freeList = p.freeList[:last]
	p.pos[pair] = -1
}

// pick draws a candidate pair: a random free one, else the pair that has
// rested longest.
func (p *portPool) pick() (int, bool) {
	if len(p.freeList) > 0 {
		pair := p.freeList[p.rnd.IntN(len(p.freeList))]
		p.take(pair)
		return pair, true
	}
	if len(p.resting) > 0 {
		pair := p.resting[0]
		p.resting = p.resting[1:]
		return pair, true
	}
	return 0, false
}

// bind takes a free pair that both sockets can be bound to. Pairs another
// process holds are skipped and put back once a pair is found or none is.
func (p *portPool) bind(ip netip.Addr, sockBuf int) (int, [2]int, error) {
	var busy []int
	defer func() {
		// Held by someone else now; they may be free by the next call.
		for _, pair := range busy {
			p.pos[pair] = len(p.freeList)
			p.freeList = append(p.freeList, pair)
		}
	}()
	for {
		pair, ok := p.pick()
		if !ok {
			return 0, [2]int{}, fmt.Errorf("ports %d-%d: %w", p.first, p.port(p.n-1)+1, dataplane.ErrPortsExhausted)
		}
		fds, err := bindPair(ip, p.port(pair), sockBuf)
		if errors.Is(err, unix.EADDRINUSE) {
			busy = append(busy, pair)
			continue
		}
		if err != nil {
			p.pos[pair] = len(p.freeList)
			p.freeList = append(p.freeList, pair)
			return 0, fds, err
		}
		p.used[pair] = true
		return pair, fds, nil
	}
}

// newRand is a ChaCha8 generator keyed from crypto/rand, one per pool: its
// draws cannot be predicted from the ports seen. crypto/rand.Read never
// fails on Linux (Go 1.24+).
func newRand() *rand.Rand {
	var seed [32]byte
	_, _ = crypto.Read(seed[:])
	return rand.New(rand.NewChaCha8(seed))
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
