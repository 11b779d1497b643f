package controlplane

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"syscall"
	"time"

	"github.com/recfork/recfork/dataplane"
)

// Limits bound what callers can make the daemon hold, so that a flood of
// calls, connections or sessions is refused (SIP 503 with Retry-After, HTTP
// 429 or 503) instead of exhausting file descriptors, ports or CPU. Every
// refusal is counted in recfork_limit_rejections_total{limit}. The zero value
// of each field means its default, chosen so that a 2-core machine keeps
// serving the calls it has; a negative value turns that limit off.
type Limits struct {
	// MaxCalls bounds live connections (inbound and outbound); zero means
	// 1000. It is lowered at start to what the RTP port range and the
	// process's file descriptor limit can hold (FDsPerCall each).
	MaxCalls int
	// InviteRate bounds new INVITEs per second from all sources, with a
	// burst of twice the rate; zero means 100.
	InviteRate float64
	// InviteRatePerSource bounds new INVITEs per second from one source
	// address, with a burst of twice the rate; zero means 20.
	InviteRatePerSource float64
	// MaxTCPConns bounds SIP over TCP connections accepted at once; zero
	// means 512. Connections over it are closed at once.
	MaxTCPConns int
	// MaxTCPConnsPerSource bounds SIP TCP connections from one address;
	// zero means 32.
	MaxTCPConnsPerSource int
	// TCPFirstReadTimeout is how long a new SIP TCP connection may stay
	// silent before its first bytes; zero means 10 s.
	TCPFirstReadTimeout time.Duration
	// TCPIdleTimeout closes a SIP TCP connection that sent nothing (not
	// even an RFC 5626 CRLF keepalive) for this long; zero means 5 min.
	TCPIdleTimeout time.Duration
	// MaxHTTPConns bounds connections to the --http listener; zero means 64.
	MaxHTTPConns int
	// HTTPReadTimeout bounds reading one HTTP request, headers and body;
	// zero means 10 s. Idle keep-alive connections close after 6 times it.
	HTTPReadTimeout time.Duration
	// MaxHTTPBody bounds an HTTP request body in bytes; zero means 64 KiB.
	MaxHTTPBody int64
	// MaxHTTPHeader bounds an HTTP request's header bytes; zero means 16 KiB.
	MaxHTTPHeader int
	// MaxSessions bounds CCXML sessions started over HTTP (createsession)
	// that are alive at once; zero means 64.
	MaxSessions int
	// MediaTimeout ends an established call with BYE when no RTP or RTCP
	// arrived for this long; zero means 60 s.
	MediaTimeout time.Duration
	// HoldTimeout replaces MediaTimeout while a call is on hold (the far end
	// may rightly send nothing); zero means 2 h.
	HoldTimeout time.Duration
}

// FDsPerCall is the file descriptors one call may hold with the userspace
// engine and DTMF detection: the caller's RTP/RTCP pair, the DTMF tap's pair,
// the recording legs' pairs and their relay sockets. The daemon's fd budget
// assumes it.
const FDsPerCall = 12

// portPairsPerCall is how many RTP/RTCP port pairs one recorded call takes.
const portPairsPerCall = 3

// fdReserve is kept free of calls and connections: listeners, the admin API,
// logs, the engine's own descriptors and the SRS.
const fdReserve = 256

func (l Limits) withDefaults() Limits {
	def := func(v *int, d int) {
		if *v == 0 {
			*v = d
		}
	}
	defDur := func(v *time.Duration, d time.Duration) {
		if *v == 0 {
			*v = d
		}
	}
	def(&l.MaxCalls, 1000)
	if l.InviteRate == 0 {
		l.InviteRate = 100
	}
	if l.InviteRatePerSource == 0 {
		l.InviteRatePerSource = 20
	}
	def(&l.MaxTCPConns, 512)
	def(&l.MaxTCPConnsPerSource, 32)
	defDur(&l.TCPFirstReadTimeout, 10*time.Second)
	defDur(&l.TCPIdleTimeout, 5*time.Minute)
	def(&l.MaxHTTPConns, 64)
	defDur(&l.HTTPReadTimeout, 10*time.Second)
	if l.MaxHTTPBody == 0 {
		l.MaxHTTPBody = 64 << 10
	}
	def(&l.MaxHTTPHeader, 16<<10)
	def(&l.MaxSessions, 64)
	defDur(&l.MediaTimeout, 60*time.Second)
	defDur(&l.HoldTimeout, 2*time.Hour)
	return l
}

// fitCalls lowers maxCalls to what the port range and the fd limit nofile
// can hold, and says why when it does.
func (l Limits) fitCalls(ports dataplane.PortRange, nofile uint64) (int, string) {
	n := l.MaxCalls
	if n < 0 {
		return n, ""
	}
	why := ""
	if pairs := (int(ports.Max) - int(ports.Min) + 1) / 2 / portPairsPerCall; pairs < n {
		n, why = max(pairs, 1), fmt.Sprintf("rtp port range %d-%d holds %d calls of %d port pairs", ports.Min, ports.Max, pairs, portPairsPerCall)
	}
	if nofile > 0 && nofile < 1<<31 {
		conns := max(l.MaxTCPConns, 0) + max(l.MaxHTTPConns, 0)
		byFD := (int(nofile) - fdReserve - conns) / FDsPerCall
		if byFD < n {
			n, why = max(byFD, 1), fmt.Sprintf("file descriptor limit %d holds %d calls of %d descriptors (after %d for connections and %d reserved)", nofile, byFD, FDsPerCall, conns, fdReserve)
		}
	}
	return n, why
}

// nofileLimit is the process's soft RLIMIT_NOFILE, zero when unknown.
func nofileLimit() uint64 {
	var r syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &r); err != nil {
		return 0
	}
	return r.Cur
}

// mediaCause names why a media endpoint could not be opened, for the log and
// the Warning header: the operator must see "out of file descriptors", not
// a port shortage, when that is what happened.
func mediaCause(err error) string {
	switch {
	case errors.Is(err, syscall.EMFILE), errors.Is(err, syscall.ENFILE):
		return "out of file descriptors"
	case errors.Is(err, syscall.ENOBUFS), errors.Is(err, syscall.ENOMEM):
		return "out of kernel memory"
	case errors.Is(err, dataplane.ErrPortsExhausted):
		return "no free rtp port pair"
	default:
		return "media endpoint unavailable"
	}
}

// rateLimiter is a token bucket: rate tokens a second, at most burst saved.
type rateLimiter struct {
	rate, burst float64
	tokens      float64
	last        time.Time
}

func (b *rateLimiter) allow(now time.Time) bool {
	if b.last.IsZero() {
		b.tokens = b.burst
	} else {
		b.tokens = min(b.burst, b.tokens+now.Sub(b.last).Seconds()*b.rate)
	}
	b.last = now
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}

// maxSources bounds the per-source buckets kept; a flood from spoofed
// addresses cannot grow the table past it.
const maxSources = 8192

// inviteLimiter applies the overall and per-source INVITE rates.
type inviteLimiter struct {
	mu        sync.Mutex
	all       rateLimiter
	perRate   float64
	bySource  map[netip.Addr]*rateLimiter
	lastPrune time.Time
}

func newInviteLimiter(l Limits) *inviteLimiter {
	il := &inviteLimiter{perRate: l.InviteRatePerSource, bySource: map[netip.Addr]*rateLimiter{}}
	il.all = rateLimiter{rate: l.InviteRate, burst: 2 * l.InviteRate}
	return il
}

// allow says whether a new INVITE from src may be handled, and if not, which
// limit ("invite_rate" or "invite_rate_source") refused it. The per-source
// bucket is charged first, so one noisy source does not use up the shared
// rate for everyone.
func (il *inviteLimiter) allow(src netip.Addr, now time.Time) (bool, string) {
	il.mu.Lock()
	defer il.mu.Unlock()
	if il.perRate > 0 && src.IsValid() {
		b := il.bySource[src]
		if b == nil {
			if len(il.bySource) >= maxSources {
				il.prune(now)
			}
			if len(il.bySource) >= maxSources {
				return false, "invite_rate_source"
			}
			b = &rateLimiter{rate: il.perRate, burst: 2 * il.perRate}
			il.bySource[src] = b
		}
		if !b.allow(now) {
			return false, "invite_rate_source"
		}
	}
	if il.all.rate > 0 && !il.all.allow(now) {
		return false, "invite_rate"
	}
	if now.Sub(il.lastPrune) > time.Minute {
		il.prune(now)
	}
	return true, ""
}

// prune drops buckets that have refilled completely: they hold no state.
func (il *inviteLimiter) prune(now time.Time) {
	il.lastPrune = now
	full := time.Duration(2 * float64(time.Second))
	for a, b := range il.bySource {
		if now.Sub(b.last) > full {
			delete(il.bySource, a)
		}
	}
}

// sourceAddr is the IP of a "host:port" source, invalid when unparsable.
func sourceAddr(s string) netip.Addr {
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return ap.Addr().Unmap()
	}
	host, _, err := net.SplitHostPort(s)
	if err != nil {
		host = s
	}
	a, _ := netip.ParseAddr(host)
	return a.Unmap()
}
