//go:build linux

package ebpf

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// rtnl is a NETLINK_ROUTE socket. It is bound to the network namespace of the
// thread that opened it, so every query it answers concerns the namespace the
// engine was created in, whatever thread asks later.
type rtnl struct {
	mu  sync.Mutex
	fd  int
	seq uint32
	// buf receives every reply, under mu; request returns a copy of the
	// payload. A buffer per request was 16 KiB of garbage per question,
	// several questions a fork or relay.
	buf []byte
}

func openRTNL() (*rtnl, error) {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_ROUTE)
	if err != nil {
		return nil, fmt.Errorf("open rtnetlink: %w", err)
	}
	// A reply never takes long; the timeout only guards against a kernel
	// that never answers.
	tv := unix.NsecToTimeval(int64(2 * time.Second))
	if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("set rtnetlink timeout: %w", err)
	}
	if err := unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("bind rtnetlink: %w", err)
	}
	return &rtnl{fd: fd, buf: make([]byte, 16384)}, nil
}

// Close closes the socket; later requests fail instead of reaching a
// descriptor number the process may have reused.
func (r *rtnl) Close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	fd := r.fd
	r.fd = -1
	return unix.Close(fd)
}

// attr is one rtnetlink attribute.
type attr struct {
	typ  uint16
	data []byte
}

func appendAttr(b []byte, typ uint16, data []byte) []byte {
	l := 4 + len(data)
	b = binary.NativeEndian.AppendUint16(b, uint16(l))
	b = binary.NativeEndian.AppendUint16(b, typ)
	b = append(b, data...)
	for len(b)%4 != 0 {
		b = append(b, 0)
	}
	return b
}

func parseAttrs(b []byte) []attr {
	var out []attr
	for len(b) >= 4 {
		l := int(binary.NativeEndian.Uint16(b))
		if l < 4 || l > len(b) {
			break
		}
		out = append(out, attr{typ: binary.NativeEndian.Uint16(b[2:]) & 0x3fff, data: b[4:l]})
		al := (l + 3) &^ 3
		if al > len(b) {
			break
		}
		b = b[al:]
	}
	return out
}

// request sends one message and returns the payload of the single reply
// (nil for a bare acknowledgement).
func (r *rtnl) request(typ, flags uint16, body []byte) ([]byte, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.fd < 0 {
		return nil, net.ErrClosed
	}
	r.seq++
	seq := r.seq
	msg := make([]byte, unix.SizeofNlMsghdr, unix.SizeofNlMsghdr+len(body))
	msg = append(msg, body...)
	binary.NativeEndian.PutUint32(msg[0:], uint32(len(msg)))
	binary.NativeEndian.PutUint16(msg[4:], typ)
	binary.NativeEndian.PutUint16(msg[6:], flags|unix.NLM_F_REQUEST)
	binary.NativeEndian.PutUint32(msg[8:], seq)
	if err := unix.Sendto(r.fd, msg, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return nil, err
	}
	buf := r.buf
	for {
		n, _, err := unix.Recvfrom(r.fd, buf, 0)
		if err != nil {
			if errors.Is(err, unix.EINTR) {
				continue
			}
			return nil, err
		}
		msgs, err := syscall.ParseNetlinkMessage(buf[:n])
		if err != nil {
			return nil, err
		}
		for _, m := range msgs {
			if m.Header.Seq != seq {
				continue // a late answer to an earlier, timed-out request
			}
			if m.Header.Type == unix.NLMSG_ERROR {
				if len(m.Data) < 4 {
					return nil, errors.New("short netlink error")
				}
				if code := int32(binary.NativeEndian.Uint32(m.Data)); code != 0 {
					return nil, unix.Errno(-code)
				}
				return nil, nil
			}
			return bytes.Clone(m.Data), nil
		}
	}
}

// route is the kernel's answer to "how does a packet from src reach dst".
type route struct {
	ifindex int
	nexthop netip.Addr // the gateway, or dst itself on the same link
}

func familyOf(a netip.Addr) uint8 {
	if a.Is4() {
		return unix.AF_INET
	}
	return unix.AF_INET6
}

// routeGet asks for the route to dst as the socket bound to src would use it
// (RTM_GETROUTE, as `ip route get DST from SRC`).
func (r *rtnl) routeGet(dst, src netip.Addr) (route, error) {
	rtm := make([]byte, unix.SizeofRtMsg)
	rtm[0] = familyOf(dst)
	rtm[1] = uint8(dst.BitLen())
	if src.IsValid() {
		rtm[2] = uint8(src.BitLen())
	}
	body := appendAttr(rtm, unix.RTA_DST, dst.AsSlice())
	if src.IsValid() {
		body = appendAttr(body, unix.RTA_SRC, src.AsSlice())
	}
	reply, err := r.request(unix.RTM_GETROUTE, 0, body)
	if err != nil {
		return route{}, fmt.Errorf("route to %s: %w", dst, err)
	}
	if len(reply) < unix.SizeofRtMsg {
		return route{}, fmt.Errorf("route to %s: short reply", dst)
	}
	if typ := reply[7]; typ == unix.RTN_LOCAL {
		return route{}, fmt.Errorf("recorder %s is on this host: %w", dst, errKernelCannot)
	} else if typ != unix.RTN_UNICAST {
		return route{}, fmt.Errorf("route to %s is of type %d, not unicast (a local, blackhole or unreachable recorder cannot be forked to)", dst, typ)
	}
	rt := route{nexthop: dst}
	for _, a := range parseAttrs(reply[unix.SizeofRtMsg:]) {
		switch a.typ {
		case unix.RTA_OIF:
			if len(a.data) >= 4 {
				rt.ifindex = int(binary.NativeEndian.Uint32(a.data))
			}
		case unix.RTA_GATEWAY:
			if gw, ok := netip.AddrFromSlice(a.data); ok {
				rt.nexthop = gw
			}
		}
	}
	if rt.ifindex == 0 {
		return route{}, fmt.Errorf("route to %s has no output interface", dst)
	}
	return rt, nil
}

// linkMAC returns the Ethernet address of an interface.
func (r *rtnl) linkMAC(ifindex int) ([6]byte, error) {
	ifi := make([]byte, unix.SizeofIfInfomsg)
	binary.NativeEndian.PutUint32(ifi[4:], uint32(ifindex))
	reply, err := r.request(unix.RTM_GETLINK, 0, ifi)
	if err != nil {
		return [6]byte{}, fmt.Errorf("link %d: %w", ifindex, err)
	}
	if len(reply) < unix.SizeofIfInfomsg {
		return [6]byte{}, fmt.Errorf("link %d: short reply", ifindex)
	}
	if typ := binary.NativeEndian.Uint16(reply[2:]); typ != unix.ARPHRD_ETHER {
		return [6]byte{}, fmt.Errorf("link %d is of type %d, not Ethernet: %w", ifindex, typ, errKernelCannot)
	}
	for _, a := range parseAttrs(reply[unix.SizeofIfInfomsg:]) {
		if a.typ == unix.IFLA_ADDRESS && len(a.data) == 6 {
			return [6]byte(a.data), nil
		}
	}
	return [6]byte{}, fmt.Errorf("link %d has no Ethernet address", ifindex)
}

// linkIndex returns the index of the interface called name.
func (r *rtnl) linkIndex(name string) (int, error) {
	body := appendAttr(make([]byte, unix.SizeofIfInfomsg), unix.IFLA_IFNAME, append([]byte(name), 0))
	reply, err := r.request(unix.RTM_GETLINK, 0, body)
	if err != nil {
		return 0, fmt.Errorf("link %s: %w", name, err)
	}
	if len(reply) < unix.SizeofIfInfomsg {
		return 0, fmt.Errorf("link %s: short reply", name)
	}
	return int(int32(binary.NativeEndian.Uint32(reply[4:]))), nil
}

const nudUsable = unix.NUD_REACHABLE | unix.NUD_STALE | unix.NUD_DELAY | unix.NUD_PROBE |
	unix.NUD_PERMANENT | unix.NUD_NOARP

func ndmsg(ifindex int, family uint8) []byte {
	nd := make([]byte, unix.SizeofNdMsg)
	nd[0] = family
	binary.NativeEndian.PutUint32(nd[4:], uint32(ifindex))
	return nd
}

// neighGet returns the link-layer address of addr on ifindex if the kernel
// holds a usable one, and its state.
func (r *rtnl) neighGet(ifindex int, addr netip.Addr) (mac [6]byte, state uint16, ok bool, err error) {
	body := appendAttr(ndmsg(ifindex, familyOf(addr)), unix.NDA_DST, addr.AsSlice())
	reply, err := r.request(unix.RTM_GETNEIGH, 0, body)
	if errors.Is(err, unix.ENOENT) {
		return mac, 0, false, nil
	}
	if err != nil {
		return mac, 0, false, fmt.Errorf("neighbour %s: %w", addr, err)
	}
	if len(reply) < unix.SizeofNdMsg {
		return mac, 0, false, fmt.Errorf("neighbour %s: short reply", addr)
	}
	state = binary.NativeEndian.Uint16(reply[8:])
	for _, a := range parseAttrs(reply[unix.SizeofNdMsg:]) {
		if a.typ == unix.NDA_LLADDR && len(a.data) == 6 {
			mac = [6]byte(a.data)
			return mac, state, state&nudUsable != 0, nil
		}
	}
	return mac, state, false, nil
}

// neighUse asks the kernel to resolve (or re-confirm) addr on ifindex as if
// a packet were waiting for it (NTF_USE): ARP or neighbour discovery starts,
// and the outcome arrives as a neighbour notification.
func (r *rtnl) neighUse(ifindex int, addr netip.Addr) error {
	nd := ndmsg(ifindex, familyOf(addr))
	nd[10] = unix.NTF_USE // ndm_flags
	body := appendAttr(nd, unix.NDA_DST, addr.AsSlice())
	if _, err := r.request(unix.RTM_NEWNEIGH, unix.NLM_F_CREATE|unix.NLM_F_ACK, body); err != nil {
		return fmt.Errorf("resolve neighbour %s: %w", addr, err)
	}
	return nil
}

// watcher reports every change of routes, neighbours and links in the
// engine's namespace. Its socket is pollable, so Close stops the reader.
type watcher struct {
	f *os.File
}

func openWatcher() (*watcher, error) {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, unix.NETLINK_ROUTE)
	if err != nil {
		return nil, fmt.Errorf("open rtnetlink watch: %w", err)
	}
	groups := uint32(unix.RTMGRP_LINK | unix.RTMGRP_NEIGH | unix.RTMGRP_IPV4_ROUTE | unix.RTMGRP_IPV6_ROUTE)
	if err := unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK, Groups: groups}); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("bind rtnetlink watch: %w", err)
	}
	return &watcher{f: os.NewFile(uintptr(fd), "rtnetlink")}, nil
}

// run calls changed after every batch of notifications until Close. A
// receive buffer overrun (ENOBUFS) is a change too: something was missed.
func (w *watcher) run(changed func()) {
	rc, err := w.f.SyscallConn()
	if err != nil {
		return
	}
	buf := make([]byte, 65536)
	for {
		var rerr error
		err := rc.Read(func(fd uintptr) bool {
			_, _, rerr = unix.Recvfrom(int(fd), buf, 0)
			return rerr != unix.EAGAIN
		})
		if err != nil {
			return // closed
		}
		if rerr != nil && !errors.Is(rerr, unix.ENOBUFS) && !errors.Is(rerr, unix.EINTR) {
			return
		}
		changed()
	}
}

func (w *watcher) Close() error { return w.f.Close() }
