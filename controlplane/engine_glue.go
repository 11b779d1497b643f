package controlplane

import (
	"net"
	"net/netip"

	"github.com/recfork/recfork/dataplane"
)

// newEngine builds the configured media engine (NewEngine), attaching the
// eBPF programs to the configured interfaces or, by default, to the one that
// owns the media address.
func newEngine(cfg Config) (dataplane.Engine, error) {
	ifaces := cfg.Ifaces
	if len(ifaces) == 0 {
		if name := ifaceOwning(cfg.MediaIP); name != "" {
			ifaces = []string{name}
		}
	}
	return NewEngine(cfg.Dataplane, EngineConfig{PortRange: cfg.RTPPorts, Interfaces: ifaces, Logger: cfg.Logger})
}

// ifaceOwning returns the name of the interface that has addr, or "".
func ifaceOwning(addr netip.Addr) string {
	ifs, err := net.Interfaces()
	if err != nil {
		return ""
	}
	for _, ifc := range ifs {
		addrs, err := ifc.Addrs()
		if err != nil {
			continue
		}
		for _, a := range addrs {
			if pn, ok := a.(*net.IPNet); ok {
				if ip, ok := netip.AddrFromSlice(pn.IP); ok && ip.Unmap() == addr.Unmap() {
					return ifc.Name
				}
			}
		}
	}
	return ""
}
