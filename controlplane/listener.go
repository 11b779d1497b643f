package controlplane

import (
	"errors"
	"net"
	"net/netip"
	"sync"
	"time"
)

// limitedListener caps the connections a stream listener holds, in all and
// per source address, and gives each connection read deadlines: the first
// bytes must come within first, and then no read may wait longer than idle.
// A connection over a cap is accepted and closed at once, so the kernel's
// backlog never fills with them and the refusal is counted.
type limitedListener struct {
	net.Listener
	max, perSource int
	first, idle    time.Duration
	onReject       func(limit string)

	mu    sync.Mutex
	total int
	bySrc map[netip.Addr]int
}

func newLimitedListener(ln net.Listener, max, perSource int, first, idle time.Duration, onReject func(string)) *limitedListener {
	return &limitedListener{Listener: ln, max: max, perSource: perSource, first: first, idle: idle,
		onReject: onReject, bySrc: map[netip.Addr]int{}}
}

func (l *limitedListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			// EMFILE and friends: back off instead of spinning; net/http and
			// sipgo would otherwise log an accept error in a tight loop.
			if !errors.Is(err, net.ErrClosed) && isTemporaryAccept(err) {
				time.Sleep(50 * time.Millisecond)
				continue
			}
			return nil, err
		}
		src := addrOf(c.RemoteAddr())
		l.mu.Lock()
		limit := ""
		switch {
		case l.max > 0 && l.total >= l.max:
			limit = "connections"
		case l.perSource > 0 && l.bySrc[src] >= l.perSource:
			limit = "connections_source"
		}
		if limit == "" {
			l.total++
			l.bySrc[src]++
		}
		l.mu.Unlock()
		if limit != "" {
			c.Close()
			if l.onReject != nil {
				l.onReject(limit)
			}
			continue
		}
		return &limitedConn{Conn: c, l: l, src: src, wait: l.first}, nil
	}
}

func isTemporaryAccept(err error) bool {
	var ne interface{ Temporary() bool }
	return errors.As(err, &ne) && ne.Temporary()
}

func (l *limitedListener) release(src netip.Addr) {
	l.mu.Lock()
	l.total--
	if l.bySrc[src]--; l.bySrc[src] <= 0 {
		delete(l.bySrc, src)
	}
	l.mu.Unlock()
}

func addrOf(a net.Addr) netip.Addr {
	if ta, ok := a.(*net.TCPAddr); ok {
		ip, _ := netip.AddrFromSlice(ta.IP)
		return ip.Unmap()
	}
	return sourceAddr(a.String())
}

// limitedConn is one accepted connection; Read arms the deadline, so a peer
// that goes silent is cut off even when the reader above never sets one.
type limitedConn struct {
	net.Conn
	l    *limitedListener
	src  netip.Addr
	once sync.Once
	mu   sync.Mutex
	wait time.Duration
}

func (c *limitedConn) Read(b []byte) (int, error) {
	c.mu.Lock()
	wait := c.wait
	c.mu.Unlock()
	if wait > 0 {
		if err := c.Conn.SetReadDeadline(time.Now().Add(wait)); err != nil {
			return 0, err
		}
	}
	n, err := c.Conn.Read(b)
	if n > 0 {
		c.mu.Lock()
		c.wait = c.l.idle
		c.mu.Unlock()
	}
	return n, err
}

// SetReadDeadline lets a reader above (net/http) set a shorter deadline of
// its own; ours is then no longer re-armed on each Read.
func (c *limitedConn) SetReadDeadline(t time.Time) error {
	c.mu.Lock()
	c.wait = 0
	c.mu.Unlock()
	return c.Conn.SetReadDeadline(t)
}

func (c *limitedConn) SetDeadline(t time.Time) error {
	c.mu.Lock()
	c.wait = 0
	c.mu.Unlock()
	return c.Conn.SetDeadline(t)
}

func (c *limitedConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() { c.l.release(c.src) })
	return err
}
