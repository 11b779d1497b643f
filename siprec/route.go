package siprec

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"syscall"

	"github.com/emiago/sipgo/sip"
)

// maxUDPMessage is the largest SIP message the SRC sends over UDP: the
// largest IPv4 UDP payload. Larger than the path MTU, the kernel fragments it,
// as SBCs do with SIPREC INVITEs to UDP-only recording servers.
const maxUDPMessage = 65507

func init() {
	// sipgo guards every UDP write with one process-wide limit
	// (len > sip.UDPMTUSize-200 fails with "size of packet larger than
	// MTU"); it is a guard, not a transport policy. The SRC makes the RFC
	// 3261 §18.1.1 choice itself before sending (see doc.go: TCP first for a
	// large request, UDP when TCP is refused or UDP is forced), so the guard
	// is raised to what UDP can carry at all. Raised at init, before any
	// transport runs, so no write ever races the change.
	if sip.UDPMTUSize < maxUDPMessage+200 {
		sip.UDPMTUSize = maxUDPMessage + 200
	}
}

// tooLargeForUDP applies RFC 3261 §18.1.1: a request within 200 bytes of the
// path MTU (1500 on Ethernet), or over 1300 bytes when the MTU is unknown,
// must go over a congestion-controlled transport when one is available. It
// leaves room for the Via header sipgo adds.
func tooLargeForUDP(n, mtu int) bool {
	const viaRoom = 160
	return n+viaRoom > mtu-200
}

// pathMTU is the MTU §18.1.1 is applied with.
const pathMTU = 1500

// ParseSRSList splits the uri field of bvr.record into its SRS URIs: one SIP
// URI, or several separated by commas, tried in order (doc.go, "SRS lists").
// Each must be a sip: (or sips:) URI with a host; whitespace around the
// commas is ignored.
func ParseSRSList(s string) ([]sip.Uri, error) {
	var out []sip.Uri
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			return nil, fmt.Errorf("empty uri in list %q", s)
		}
		var u sip.Uri
		if err := sip.ParseUri(f, &u); err != nil || (u.Scheme != "sip" && u.Scheme != "sips") || u.Host == "" {
			return nil, fmt.Errorf("%q is not a sip: or sips: URI", f)
		}
		out = append(out, u)
	}
	return out, nil
}

// Resolver looks up the DNS records RFC 3263 uses; *net.Resolver is one.
// sipgo resolves only one address per request, so the SRC resolves an SRS
// name itself and sends each attempt to one address.
type Resolver interface {
	LookupSRV(ctx context.Context, service, proto, name string) (string, []*net.SRV, error)
	LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error)
}

// hop is one place an INVITE can be sent: a transport and an address.
type hop struct {
	tport string // "UDP", "TCP" or "TLS"
	addr  netip.AddrPort
	// name is the URI's host: the identity a TLS certificate must carry.
	name string
	// forced reports that the transport was chosen by the URI or the
	// profile, so no other transport may be tried for it.
	forced bool
}

func (h hop) String() string { return strings.ToLower(h.tport) + ":" + h.addr.String() }

// uriTransport is the transport a URI or its profile forces: "udp", "tcp",
// "tls" or "" (free choice). A sips: URI is TLS whatever else is said (RFC
// 3261 §19.1: every hop to it must be secure).
func (c *Client) uriTransport(u sip.Uri) string {
	if u.Scheme == "sips" {
		return "tls"
	}
	tp := c.profile(u).Transport
	if v, ok := u.UriParams.Get("transport"); ok && v != "" {
		tp = strings.ToLower(v)
	}
	return tp
}

// resolve turns an SRS URI into the hops to try, in order (RFC 3263 §4):
//   - a numeric host, or an explicit port, is used as it is (no SRV);
//   - else SRV records (_sip._tcp and _sip._udp, or only the forced
//     transport's), in priority and weight order, each target's addresses in
//     the resolver's order;
//   - else the name's A/AAAA records on port 5060.
//
// NAPTR (RFC 3263 §4.1) is not looked up: neither the Go resolver nor sipgo
// support it; SRV for the transports the SRC has stands in, as §4.1 allows
// when no NAPTR records exist. large puts TCP hops first (§18.1.1).
func (c *Client) resolve(ctx context.Context, u sip.Uri, large bool) ([]hop, error) {
	forced := c.uriTransport(u)
	tports := []string{"UDP", "TCP"}
	if large {
		tports = []string{"TCP", "UDP"}
	}
	switch forced {
	case "udp":
		tports = []string{"UDP"}
	case "tcp":
		tports = []string{"TCP"}
	case "tls":
		tports = []string{"TLS"}
	}
	defPort := 5060
	if forced == "tls" {
		defPort = tlsPort
	}
	name := strings.Trim(u.Host, "[]")
	mk := func(tp string, ap netip.AddrPort) hop {
		return hop{tport: tp, addr: ap, forced: forced != "", name: name}
	}
	port := u.Port
	if a, err := netip.ParseAddr(name); err == nil {
		if port == 0 {
			port = defPort
		}
		return []hop{mk(tports[0], netip.AddrPortFrom(a.Unmap(), uint16(port)))}, nil
	}
	res := c.cfg.Resolver
	if port == 0 {
		var hops []hop
		for _, tp := range tports {
			// RFC 3263 §4.1: TLS is looked up as _sips._tcp.
			service, proto := "sip", strings.ToLower(tp)
			if tp == "TLS" {
				service, proto = "sips", "tcp"
			}
			_, srvs, err := res.LookupSRV(ctx, service, proto, u.Host)
			if err != nil {
				continue // no SRV for this transport: fall through to A/AAAA
			}
			for _, r := range srvs {
				addrs, err := res.LookupNetIP(ctx, "ip", strings.TrimSuffix(r.Target, "."))
				if err != nil {
					continue
				}
				for _, a := range addrs {
					// DNS named the transport: no other is tried for it.
					hops = append(hops, hop{tport: tp, addr: netip.AddrPortFrom(a.Unmap(), r.Port), forced: true, name: name})
				}
			}
		}
		if len(hops) > 0 {
			return hops, nil
		}
		port = defPort
	}
	addrs, err := res.LookupNetIP(ctx, "ip", u.Host)
	if err != nil {
		return nil, fmt.Errorf("resolve %s: %w", u.Host, err)
	}
	var hops []hop
	for _, a := range addrs {
		hops = append(hops, mk(tports[0], netip.AddrPortFrom(a.Unmap(), uint16(port))))
	}
	if len(hops) == 0 {
		return nil, fmt.Errorf("resolve %s: no addresses", u.Host)
	}
	return hops, nil
}

// refusedOrReset reports whether err is a TCP connection refused or reset:
// the cases where RFC 3261 §18.1.1 says to retry a large request over UDP.
func refusedOrReset(err error) bool {
	return errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET) ||
		errors.Is(err, syscall.EPIPE) || strings.Contains(err.Error(), "connection refused") ||
		strings.Contains(err.Error(), "connection reset")
}

// srsKey names an SRS in the health table and the metrics: the URI without
// parameters other than transport.
func srsKey(u sip.Uri) string {
	k := u.Scheme + ":"
	if u.User != "" {
		k += u.User + "@"
	}
	k += u.Host
	if u.Port != 0 {
		k += ":" + strconv.Itoa(u.Port)
	}
	if tp, ok := u.UriParams.Get("transport"); ok && tp != "" {
		k += ";transport=" + strings.ToLower(tp)
	}
	return k
}
